package waitroom_test

import (
	"context"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"github.com/surge-commerce/surge/internal/waitroom"
)

// TestStandbyWatchesItsRequests: the requests counted between Begin and
// End turn the standby line on through Watch: by how many are in flight,
// and by their p95 latency.
func TestStandbyWatchesItsRequests(t *testing.T) {
	for _, tc := range []struct {
		name string
		load func(sb *waitroom.Standby)
	}{
		{"in flight", func(sb *waitroom.Standby) {
			for range 3 {
				sb.Begin() // never ended: still in flight
			}
		}},
		{"slow", func(sb *waitroom.Standby) {
			for range 20 {
				start := sb.Begin()
				time.Sleep(3 * time.Second) // a slow request, on the bubble's clock
				sb.End(start)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				sb, err := waitroom.NewStandby(waitroom.StandbyConfig{Paths: []string{"/"}, OnActive: 3, OffActive: 1,
					OnLatency: 2 * time.Second, OffLatency: 500 * time.Millisecond})
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				go sb.Watch(ctx, time.Second, slog.New(slog.DiscardHandler))
				time.Sleep(1500 * time.Millisecond)
				if sb.Active() {
					t.Fatal("on before any load")
				}
				tc.load(sb)
				time.Sleep(time.Second)
				synctest.Wait()
				if !sb.Active() {
					t.Fatal("still off under load")
				}
			})
		})
	}
}

// TestOpenStandby: the standby line opens in the room under StandbyDrop
// and turns off again only below its off thresholds.
func TestOpenStandby(t *testing.T) {
	e := newEnv(t, nil)
	sb, err := e.room.OpenStandby(t.Context(), waitroom.StandbyLine{OnActive: 100, OnLatency: 2 * time.Second,
		RatePerMinute: 60, MaxActive: 10, Paths: []string{"/"}, Except: []string{"/queue"}})
	if err != nil {
		t.Fatal(err)
	}
	spec, err := e.room.Spec(waitroom.StandbyDrop)
	if err != nil || spec.Mode != waitroom.ModeStandby || spec.RatePerMinute != 60 || spec.MaxActive != 10 || spec.AccessTTL != 30*time.Minute {
		t.Fatalf("standby line %+v, %v", spec, err)
	}
	if !sb.Protects("/products/x") || sb.Protects("/queue") {
		t.Error("paths not as given")
	}
	if !sb.Observe(100, 0) {
		t.Fatal("100 in flight did not turn it on")
	}
}
