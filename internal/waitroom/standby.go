package waitroom

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// StandbyConfig configures a Standby trigger. The queue turns on when
// active users reach OnActive or p95 latency reaches OnLatency (either
// one), and off only when both are back at or below OffActive and
// OffLatency and it has been on for MinOn: the gap between the on and off
// thresholds, and the minimum time on, keep it from flapping.
type StandbyConfig struct {
	// Paths are the URL path prefixes the queue protects ("/" is the
	// whole shop). A prefix matches itself and what lies below it at a
	// "/" boundary: "/products" matches "/products" and "/products/x",
	// not "/productsale".
	Paths []string
	// Except are prefixes never protected even under Paths: the waiting
	// room's own page and API, static assets, health checks.
	Except []string
	// OnActive and OffActive are active-user thresholds; OnActive 0
	// ignores active users. OffActive must be below OnActive.
	OnActive, OffActive int
	// OnLatency and OffLatency are p95 latency thresholds; OnLatency 0
	// ignores latency. OffLatency must be below OnLatency.
	OnLatency, OffLatency time.Duration
	// MinOn is the least time the queue stays on (default 1 minute).
	MinOn time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Standby decides when standby mode is in force. Feed it with Observe
// (every few seconds, from the shop's live numbers); Room consults
// Active for a ModeStandby drop, and the HTTP gate consults Protects.
// Each time it turns on an episode begins, and the Room starts that
// drop's queue afresh.
type Standby struct {
	cfg     StandbyConfig
	active  atomic.Bool
	episode atomic.Uint64
	mu      sync.Mutex
	since   time.Time
}

// NewStandby returns a Standby that is off.
func NewStandby(cfg StandbyConfig) (*Standby, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MinOn <= 0 {
		cfg.MinOn = time.Minute
	}
	switch {
	case cfg.OnActive <= 0 && cfg.OnLatency <= 0:
		return nil, fmt.Errorf("%w: standby: set OnActive or OnLatency", ErrInvalid)
	case cfg.OnActive > 0 && (cfg.OffActive < 0 || cfg.OffActive >= cfg.OnActive):
		return nil, fmt.Errorf("%w: standby: OffActive must be in [0, OnActive)", ErrInvalid)
	case cfg.OnLatency > 0 && (cfg.OffLatency < 0 || cfg.OffLatency >= cfg.OnLatency):
		return nil, fmt.Errorf("%w: standby: OffLatency must be in [0, OnLatency)", ErrInvalid)
	case len(cfg.Paths) == 0:
		return nil, fmt.Errorf("%w: standby: no Paths to protect", ErrInvalid)
	}
	for _, p := range append(append([]string(nil), cfg.Paths...), cfg.Except...) {
		if !strings.HasPrefix(p, "/") {
			return nil, fmt.Errorf("%w: standby: path %q must start with /", ErrInvalid, p)
		}
	}
	return &Standby{cfg: cfg}, nil
}

// Observe takes the current number of active users and p95 latency and
// returns whether standby mode is now on.
func (s *Standby) Observe(active int, p95 time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now()
	c := s.cfg
	if !s.active.Load() {
		if (c.OnActive > 0 && active >= c.OnActive) || (c.OnLatency > 0 && p95 >= c.OnLatency) {
			s.episode.Add(1)
			s.since = now
			s.active.Store(true)
		}
		return s.active.Load()
	}
	calm := (c.OnActive <= 0 || active <= c.OffActive) && (c.OnLatency <= 0 || p95 <= c.OffLatency)
	if calm && now.Sub(s.since) >= c.MinOn {
		s.active.Store(false)
	}
	return s.active.Load()
}

// Active reports whether standby mode is on.
func (s *Standby) Active() bool { return s.active.Load() }

// Episode counts the times standby mode turned on.
func (s *Standby) Episode() uint64 { return s.episode.Load() }

// Protects reports whether path is behind the standby queue (whether or
// not it is on).
func (s *Standby) Protects(path string) bool {
	for _, p := range s.cfg.Except {
		if underPrefix(path, p) {
			return false
		}
	}
	for _, p := range s.cfg.Paths {
		if underPrefix(path, p) {
			return true
		}
	}
	return false
}

func underPrefix(path, prefix string) bool {
	if !strings.HasPrefix(path, prefix) {
		return false
	}
	return len(path) == len(prefix) || strings.HasSuffix(prefix, "/") || path[len(prefix)] == '/'
}
