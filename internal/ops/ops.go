// Package ops serves the operations endpoints on their own listener:
// liveness, readiness, Prometheus metrics and pprof. It is separate from
// the public listener so that a saturated shop can never delay a health
// check or a scrape.
package ops

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check is a readiness dependency check. It must return quickly; it is
// called with a short deadline.
type Check func(ctx context.Context) error

// Health holds the process's readiness: starting, serving, draining, and
// the dependency checks that must pass to take traffic.
type Health struct {
	ready    atomic.Bool
	draining atomic.Bool
	mu       sync.Mutex
	checks   map[string]Check
	degraded map[string]degradedCheck
}

type degradedCheck struct {
	check   Check
	affects string
}

// NewHealth returns a Health that is not ready until SetReady(true).
func NewHealth() *Health {
	return &Health{checks: map[string]Check{}, degraded: map[string]degradedCheck{}}
}

// AddDegradedCheck registers a dependency that only some features need
// (affects names them). When it fails the process stays ready, since
// taking every replica out of the load balancer because of a shared
// dependency would stop the features that still work too; /readyz says
// "degraded" and which features are off.
func (h *Health) AddDegradedCheck(name, affects string, c Check) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.degraded[name] = degradedCheck{c, affects}
}

// AddCheck registers a required dependency for readiness.
func (h *Health) AddCheck(name string, c Check) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.checks[name] = c
}

// SetReady marks start-up complete (or not).
func (h *Health) SetReady(v bool) { h.ready.Store(v) }

// Drain marks the process as shutting down: readiness turns false for good,
// so load balancers stop sending new traffic before the listener closes.
func (h *Health) Drain() { h.draining.Store(true) }

// DependencyWait bounds how long /readyz waits for any one dependency
// check. The checks run side by side, so /readyz answers within about this
// long however many dependencies hang: it must answer before a load
// balancer's or kubelet's own probe timeout, or a slow shared dependency
// would be read as a dead replica.
const DependencyWait = time.Second

// Ready reports readiness and, when not ready, why; degraded names the
// optional dependencies that are down and what they turn off. Every check
// gets its own DependencyWait: one hanging dependency neither delays the
// answer past that nor eats the time of the others.
func (h *Health) Ready(ctx context.Context) (ok bool, why, degraded map[string]string) {
	switch {
	case h.draining.Load():
		return false, map[string]string{"process": "draining"}, nil
	case !h.ready.Load():
		return false, map[string]string{"process": "starting"}, nil
	}
	h.mu.Lock()
	type named struct {
		name, affects string // affects is empty for a required check
		check         Check
	}
	all := make([]named, 0, len(h.checks)+len(h.degraded))
	for k, c := range h.checks {
		all = append(all, named{name: k, check: c})
	}
	for k, d := range h.degraded {
		all = append(all, named{name: k, affects: d.affects, check: d.check})
	}
	h.mu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, DependencyWait)
	defer cancel()
	type result struct {
		named
		err error
	}
	results := make(chan result, len(all))
	for _, c := range all {
		go func() { results <- result{c, c.check(ctx)} }()
	}
	why, degraded = map[string]string{}, map[string]string{}
	record := func(r result) {
		if r.err == nil {
			return
		}
		if r.affects == "" {
			why[r.name] = r.err.Error()
		} else {
			degraded[r.name] = r.affects + " unavailable: " + r.err.Error()
		}
	}
	answered := map[string]bool{}
	take := func(r result) {
		answered[r.name] = true
		record(r)
	}
wait:
	for range all {
		select {
		case r := <-results:
			take(r)
		case <-ctx.Done():
			// Keep what answered in time, however the select chose.
			for {
				select {
				case r := <-results:
					take(r)
				default:
					break wait
				}
			}
		}
	}
	// A check that ignores its deadline is not waited for: it counts as
	// not answering. Its goroutine ends when the check returns.
	for _, c := range all {
		if !answered[c.name] {
			record(result{c, fmt.Errorf("no answer within %v", DependencyWait)})
		}
	}
	return len(why) == 0, why, degraded
}

// Option configures NewHandler.
type Option func(*options)

type options struct {
	pprof   bool
	token   string
	cmdline []string
	page    http.Handler
}

// WithPage serves h, the operations page, under /ops (it does its own
// authentication).
func WithPage(h http.Handler) Option {
	return func(o *options) { o.page = h }
}

// WithPprof serves Go's profiles under /debug/pprof. They are off unless
// asked for: a profile exposes the program's internals and costs it CPU.
// token, when not empty, is required as "Authorization: Bearer <token>";
// cmdline is what /debug/pprof/cmdline shows in place of the process's
// real arguments, which may hold secrets: pass it with them redacted.
func WithPprof(token string, cmdline []string) Option {
	return func(o *options) { o.pprof, o.token, o.cmdline = true, token, cmdline }
}

// NewHandler returns the operations mux.
func NewHandler(h *Health, gatherer prometheus.Gatherer, opts ...Option) http.Handler {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	mux := http.NewServeMux()
	// Liveness answers from the process alone: it must never fail because
	// the shop is busy or a database is down, or a restart loop follows.
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ok, why, degraded := h.Ready(r.Context())
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		status := "ready"
		switch {
		case !ok:
			status = "not ready"
			w.WriteHeader(http.StatusServiceUnavailable)
		case len(degraded) > 0:
			status = "degraded"
		}
		_ = json.NewEncoder(w).Encode(struct {
			Status   string            `json:"status"`
			Reasons  map[string]string `json:"reasons,omitempty"`
			Degraded map[string]string `json:"degraded,omitempty"`
		}{status, why, degraded})
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	if o.page != nil {
		mux.Handle("/ops", o.page)
		mux.Handle("/ops/", o.page)
	}
	if o.pprof {
		guard := bearer(o.token)
		mux.Handle("/debug/pprof/", guard(http.HandlerFunc(pprof.Index)))
		mux.Handle("/debug/pprof/cmdline", guard(cmdline(o.cmdline)))
		mux.Handle("/debug/pprof/profile", guard(http.HandlerFunc(pprof.Profile)))
		mux.Handle("/debug/pprof/symbol", guard(http.HandlerFunc(pprof.Symbol)))
		mux.Handle("/debug/pprof/trace", guard(http.HandlerFunc(pprof.Trace)))
	}
	return mux
}

// cmdline answers as pprof.Cmdline does (arguments separated by NUL
// bytes), with args instead of os.Args.
func cmdline(args []string) http.Handler {
	body := []byte(strings.Join(args, "\x00"))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write(body)
	})
}

// bearer requires token as a bearer token; an empty token requires
// nothing.
func bearer(token string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		if token == "" {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="surge-admin"`)
				w.Header().Set("Cache-Control", "no-store")
				http.Error(w, "profiling needs the admin token: Authorization: Bearer <token>", http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}
