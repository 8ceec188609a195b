package shop

import (
	"log/slog"
	"net"
	"time"

	"github.com/surge-commerce/surge/internal/pagecache"
	"github.com/surge-commerce/surge/internal/storefront"
	"github.com/surge-commerce/surge/internal/telemetry"
)

// Listener wraps the public listener with the page cache's fast path when
// Config.FastHits has it on; otherwise it returns ln.
func (s *Shop) Listener(ln net.Listener) net.Listener {
	if s.fast == nil {
		return ln
	}
	return s.Cache.FastListener(ln, *s.fast)
}

// fastConfig keeps on fast responses what the handlers in front of the page
// cache do to a hit: the security headers, the request metrics and access
// log, and the standby line, which takes every request while it is on. The
// other layers do nothing to an anonymous GET of a cached page: admission
// lets hits through (Cheap), cross-origin protection only looks at unsafe
// methods, and the per-client rate limit and tracing turn the fast path
// off (see Config.FastHits).
func (s *Shop) fastConfig(cfg Config, log *slog.Logger, metrics *telemetry.HTTPMetrics) *pagecache.FastConfig {
	fc := &pagecache.FastConfig{
		Header: storefront.SecurityHeaders(),
		Observe: func(method, route string, status int, d time.Duration) {
			if route == "" {
				route = "unmatched"
			}
			metrics.Observe(method, route, "http", status, d)
		},
		// As the public http.Server in cmd/surge.
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       120 * time.Second,
		WriteTimeout:      60 * time.Second,
	}
	if cfg.AccessLog {
		fc.Log = log
	}
	if sb := s.Standby; sb != nil {
		fc.Off = sb.Active
	}
	return fc
}
