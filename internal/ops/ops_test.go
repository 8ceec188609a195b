package ops_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/surge-commerce/surge/internal/ops"
)

func TestReadyz(t *testing.T) {
	down := func(context.Context) error { return errors.New("connection refused") }
	up := func(context.Context) error { return nil }
	tests := []struct {
		name             string
		setup            func(h *ops.Health)
		code             int
		status           string
		reasons, degrade []string
	}{
		{"starting", func(h *ops.Health) {}, 503, "not ready", []string{"process"}, nil},
		{"ready", func(h *ops.Health) { h.SetReady(true); h.AddCheck("database", up) }, 200, "ready", nil, nil},
		{"required dependency down", func(h *ops.Health) { h.SetReady(true); h.AddCheck("database", down) },
			503, "not ready", []string{"database"}, nil},
		// A shared optional dependency down must not pull every replica
		// out of the load balancer: browse still works.
		{"optional dependency down", func(h *ops.Health) {
			h.SetReady(true)
			h.AddCheck("database", up)
			h.AddDegradedCheck("redis", "sessions, cart, checkout and waiting room", down)
		}, 200, "degraded", nil, []string{"redis"}},
		{"draining", func(h *ops.Health) { h.SetReady(true); h.Drain() }, 503, "not ready", []string{"process"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := ops.NewHealth()
			tt.setup(h)
			srv := httptest.NewServer(ops.NewHandler(h, prometheus.NewRegistry()))
			defer srv.Close()
			resp, err := http.Get(srv.URL + "/readyz")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body struct {
				Status            string
				Reasons, Degraded map[string]string
			}
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.code || body.Status != tt.status || len(body.Reasons) != len(tt.reasons) || len(body.Degraded) != len(tt.degrade) {
				t.Fatalf("%d %+v; want %d %q, reasons %v, degraded %v", resp.StatusCode, body, tt.code, tt.status, tt.reasons, tt.degrade)
			}
			for _, k := range tt.reasons {
				if body.Reasons[k] == "" {
					t.Errorf("no reason %q: %+v", k, body)
				}
			}
			for _, k := range tt.degrade {
				if body.Degraded[k] == "" {
					t.Errorf("no degraded %q: %+v", k, body)
				}
			}
		})
	}
}

// TestPprofOnlyWhenAsked: no profiles by default; WithPprof serves them
// behind its token, and cmdline shows the arguments it was given.
func TestPprofOnlyWhenAsked(t *testing.T) {
	get := func(h http.Handler, path, token string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", path, nil)
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	off := ops.NewHandler(ops.NewHealth(), prometheus.NewRegistry())
	for _, p := range []string{"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/symbol"} {
		if w := get(off, p, ""); w.Code != 404 {
			t.Errorf("by default GET %s = %d, want 404", p, w.Code)
		}
	}
	on := ops.NewHandler(ops.NewHealth(), prometheus.NewRegistry(), ops.WithPprof("ops-token-0123456789", []string{"surge", "serve", "--admin-token=[redacted]"}))
	for _, tok := range []string{"", "wrong"} {
		if w := get(on, "/debug/pprof/cmdline", tok); w.Code != 401 {
			t.Errorf("token %q: %d, want 401", tok, w.Code)
		}
	}
	if w := get(on, "/debug/pprof/cmdline", "ops-token-0123456789"); w.Code != 200 || w.Body.String() != "surge\x00serve\x00--admin-token=[redacted]" {
		t.Errorf("cmdline: %d %q", w.Code, w.Body.String())
	}
	if w := get(on, "/livez", ""); w.Code != 200 {
		t.Errorf("livez needs no token: %d", w.Code)
	}
	open := ops.NewHandler(ops.NewHealth(), prometheus.NewRegistry(), ops.WithPprof("", nil))
	if w := get(open, "/debug/pprof/", ""); w.Code != 200 {
		t.Errorf("pprof without a token configured: %d", w.Code)
	}
}
