// Package ops serves the operations endpoints on their own listener:
// liveness, readiness, Prometheus metrics and pprof. It is separate from
// the public listener so that a saturated shop can never delay a health
// check or a scrape.
package ops

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/pprof"
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

// Ready reports readiness and, when not ready, why; degraded names the
// optional dependencies that are down and what they turn off.
func (h *Health) Ready(ctx context.Context) (ok bool, why, degraded map[string]string) {
	switch {
	case h.draining.Load():
		return false, map[string]string{"process": "draining"}, nil
	case !h.ready.Load():
		return false, map[string]string{"process": "starting"}, nil
	}
	h.mu.Lock()
	checks := make(map[string]Check, len(h.checks))
	for k, v := range h.checks {
		checks[k] = v
	}
	optional := make(map[string]degradedCheck, len(h.degraded))
	for k, v := range h.degraded {
		optional[k] = v
	}
	h.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	why, degraded = map[string]string{}, map[string]string{}
	for name, c := range checks {
		if err := c(ctx); err != nil {
			why[name] = err.Error()
		}
	}
	for name, d := range optional {
		if err := d.check(ctx); err != nil {
			degraded[name] = d.affects + " unavailable: " + err.Error()
		}
	}
	return len(why) == 0, why, degraded
}

// NewHandler returns the operations mux.
func NewHandler(h *Health, gatherer prometheus.Gatherer) http.Handler {
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
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
