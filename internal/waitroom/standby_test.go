package waitroom_test

import (
	"context"
	"log/slog"
	"sync"
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

// TestStandbyModeByHand: an operator holds the line on (at once, one new
// episode, whatever the load) or off (whatever the load), and hands it
// back to the load, which turns it off only once calm for MinOn.
func TestStandbyModeByHand(t *testing.T) {
	now := time.Date(2026, 12, 6, 20, 15, 0, 0, time.UTC)
	sb, err := waitroom.NewStandby(waitroom.StandbyConfig{Paths: []string{"/"}, OnActive: 100, OffActive: 60, MinOn: time.Minute,
		Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if sb.Mode() != waitroom.StandbyAuto || sb.Active() || !sb.Since().IsZero() {
		t.Fatalf("new line: mode %s, on %v, since %v", sb.Mode(), sb.Active(), sb.Since())
	}
	if err := sb.SetMode(waitroom.StandbyOn); err != nil {
		t.Fatal(err)
	}
	if !sb.Active() || sb.Episode() != 1 || !sb.Since().Equal(now) {
		t.Fatalf("held on: on %v, episode %d, since %v", sb.Active(), sb.Episode(), sb.Since())
	}
	// Calm load does not turn a line held on off, nor start episodes.
	now = now.Add(5 * time.Minute)
	if !sb.Observe(0, 0) || sb.SetMode(waitroom.StandbyOn) != nil || sb.Episode() != 1 {
		t.Fatalf("held on under calm load: on %v, episode %d", sb.Active(), sb.Episode())
	}
	// Back to auto: calm for long enough, it turns off.
	if err := sb.SetMode(waitroom.StandbyAuto); err != nil || !sb.Active() {
		t.Fatalf("auto: %v, on %v: want still on until the load says", err, sb.Active())
	}
	if sb.Observe(0, 0) || !sb.Since().IsZero() {
		t.Fatal("auto after five calm minutes: want off")
	}
	// Held off, the worst load does not turn it on.
	if err := sb.SetMode(waitroom.StandbyOff); err != nil {
		t.Fatal(err)
	}
	if sb.Observe(10_000, 0) || sb.Episode() != 1 {
		t.Fatalf("held off under load: on %v, episode %d", sb.Active(), sb.Episode())
	}
	// Held on from on by the load: the same episode goes on.
	if err := sb.SetMode(waitroom.StandbyAuto); err != nil || !sb.Observe(10_000, 0) || sb.Episode() != 2 {
		t.Fatalf("auto under load: %v, episode %d", err, sb.Episode())
	}
	if err := sb.SetMode(waitroom.StandbyOn); err != nil || sb.Episode() != 2 {
		t.Fatalf("held on while on: %v, episode %d: want the same episode", err, sb.Episode())
	}
	if err := sb.SetMode("sometimes"); err == nil || sb.Mode() != waitroom.StandbyOn {
		t.Fatalf("bad mode: %v, mode %s", err, sb.Mode())
	}
}

// TestStandbyModeConcurrent: operators and the load switching the line at
// once start exactly one episode.
func TestStandbyModeConcurrent(t *testing.T) {
	sb, err := waitroom.NewStandby(waitroom.StandbyConfig{Paths: []string{"/"}, OnActive: 10, OffActive: 5})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Go(func() {
			if i%2 == 0 {
				_ = sb.SetMode(waitroom.StandbyOn)
			} else {
				sb.Observe(100, 0)
			}
			_ = sb.Since()
		})
	}
	wg.Wait()
	if !sb.Active() || sb.Episode() != 1 || sb.Mode() != waitroom.StandbyOn {
		t.Fatalf("on %v, episode %d, mode %s: want one episode", sb.Active(), sb.Episode(), sb.Mode())
	}
}
