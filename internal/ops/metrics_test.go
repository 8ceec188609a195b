package ops_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/surge-commerce/surge/internal/ops"
)

// TestReadyGauge: surge_ready says what /readyz says, one state at a time.
func TestReadyGauge(t *testing.T) {
	h := ops.NewHealth()
	reg := prometheus.NewRegistry()
	if err := h.Register(reg); err != nil {
		t.Fatal(err)
	}
	var redisDown, dbDown atomic.Bool
	h.AddDegradedCheck("redis", "sessions", func(context.Context) error {
		if redisDown.Load() {
			return errors.New("connection refused")
		}
		return nil
	})
	h.AddCheck("database", func(context.Context) error {
		if dbDown.Load() {
			return errors.New("connection refused")
		}
		return nil
	})
	want := func(state string) {
		t.Helper()
		var exp strings.Builder
		exp.WriteString("# HELP surge_ready " + "Readiness as /readyz answers it, 1 for the state it is in: ready, degraded (serving with an optional dependency down) or not_ready (starting, draining, or a required dependency down).\n# TYPE surge_ready gauge\n")
		for _, s := range []string{"degraded", "not_ready", "ready"} {
			v := "0"
			if s == state {
				v = "1"
			}
			exp.WriteString(`surge_ready{state="` + s + `"} ` + v + "\n")
		}
		if err := testutil.GatherAndCompare(reg, strings.NewReader(exp.String()), "surge_ready"); err != nil {
			t.Fatalf("want %s: %v", state, err)
		}
	}
	want("not_ready") // starting
	h.SetReady(true)
	want("ready")
	redisDown.Store(true)
	want("degraded")
	dbDown.Store(true)
	want("not_ready")
	dbDown.Store(false)
	redisDown.Store(false)
	want("ready")
	h.Drain()
	want("not_ready")
}
