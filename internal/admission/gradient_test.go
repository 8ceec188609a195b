package admission

import (
	"context"
	"sync"
	"testing"
	"time"
)

// fakeClock is the injected clock for the limit algorithm: time moves only
// when the test says so.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func mustLimiter(tb testing.TB, cfg LimitConfig) *Limiter {
	tb.Helper()
	l, err := NewLimiter(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return l
}

// round admits n Critical requests together, lets rtt pass on the clock,
// and releases them: n requests that each took rtt at concurrency n.
func round(tb testing.TB, l *Limiter, clk *fakeClock, n int, rtt time.Duration) {
	tb.Helper()
	if lim := l.Limit(); n > lim {
		tb.Fatalf("round of %d over the limit %d would block", n, lim)
	}
	rels := make([]func(Outcome), n)
	for i := range rels {
		rel, err := l.Acquire(context.Background(), Critical)
		if err != nil {
			tb.Fatalf("acquire %d of %d: %v", i, n, err)
		}
		rels[i] = rel
	}
	clk.Advance(rtt)
	for _, rel := range rels {
		rel(Success)
	}
}

// window runs rounds at full concurrency until one sampling window has
// passed, and returns the limit after it.
func window(tb testing.TB, l *Limiter, clk *fakeClock, cfg LimitConfig, rtt time.Duration) int {
	tb.Helper()
	for elapsed := time.Duration(0); elapsed < cfg.Window; elapsed += rtt {
		round(tb, l, clk, l.Limit(), rtt)
	}
	return l.Limit()
}

func algConfig(clk *fakeClock) LimitConfig {
	return LimitConfig{Floor: 4, Ceiling: 200, Initial: 20, Window: 100 * time.Millisecond, MinWindowSamples: 10,
		MinRTTSamples: 8, MinRTTInterval: time.Hour, Now: clk.Now}
}

// measured returns a limiter past its first minimum-latency measurement,
// taken at rtt.
func measured(t *testing.T, clk *fakeClock, cfg LimitConfig, rtt time.Duration) *Limiter {
	t.Helper()
	l := mustLimiter(t, cfg)
	if got := l.Limit(); got != cfg.Floor {
		t.Fatalf("limit while measuring = %d, want the floor %d", got, cfg.Floor)
	}
	for l.MinRTT() == 0 {
		round(t, l, clk, cfg.Floor, rtt)
	}
	if got := l.MinRTT(); got != rtt {
		t.Fatalf("MinRTT = %v, want %v", got, rtt)
	}
	if got := l.Limit(); got != cfg.Initial {
		t.Fatalf("limit after measuring = %d, want Initial %d", got, cfg.Initial)
	}
	return l
}

func TestLimitGrowsWhileLatencyIsFlatUpToTheCeiling(t *testing.T) {
	clk := newFakeClock()
	cfg := algConfig(clk)
	l := measured(t, clk, cfg, 10*time.Millisecond)
	prev := l.Limit()
	for i := range 40 {
		got := window(t, l, clk, cfg, 10*time.Millisecond)
		if got < prev {
			t.Fatalf("window %d: limit fell from %d to %d with flat latency", i, prev, got)
		}
		if got > cfg.Ceiling {
			t.Fatalf("window %d: limit %d above the ceiling %d", i, got, cfg.Ceiling)
		}
		prev = got
	}
	if prev != cfg.Ceiling {
		t.Fatalf("limit after 40 flat windows = %d, want the ceiling %d", prev, cfg.Ceiling)
	}
}

func TestLimitShrinksWhenLatencyRisesDownToTheFloor(t *testing.T) {
	clk := newFakeClock()
	cfg := algConfig(clk)
	l := measured(t, clk, cfg, 10*time.Millisecond)
	for range 10 {
		window(t, l, clk, cfg, 10*time.Millisecond)
	}
	high := l.Limit()
	if high <= cfg.Initial {
		t.Fatalf("limit did not grow first: %d", high)
	}

	// Latency doubles: queueing. The limit must come down, steadily.
	prev := high
	for i := range 3 {
		got := window(t, l, clk, cfg, 20*time.Millisecond)
		if got >= prev {
			t.Fatalf("window %d at 2x latency: limit %d, was %d; want it to shrink", i, got, prev)
		}
		prev = got
	}
	// Latency stays at 4x: down to the floor, never below it.
	reachedFloor := false
	for i := range 12 {
		got := window(t, l, clk, cfg, 40*time.Millisecond)
		if got < cfg.Floor {
			t.Fatalf("window %d: limit %d below the floor %d", i, got, cfg.Floor)
		}
		reachedFloor = reachedFloor || got == cfg.Floor
	}
	if !reachedFloor {
		t.Fatalf("limit never reached the floor at 4x latency; last %d", l.Limit())
	}
	// Pinned at the floor, the baseline is measured again and follows the
	// new normal instead of holding the process at the floor for good.
	if got := l.MinRTT(); got != 40*time.Millisecond {
		t.Fatalf("MinRTT after sitting at the floor = %v, want it re-measured at 40ms", got)
	}
}

func TestLimitDoesNotGrowWhenApplicationLimited(t *testing.T) {
	clk := newFakeClock()
	cfg := algConfig(clk)
	l := measured(t, clk, cfg, 10*time.Millisecond)
	// A trickle: two at a time against a limit of 20, for a long while.
	for range 200 {
		round(t, l, clk, 2, 10*time.Millisecond)
	}
	if got := l.Limit(); got != cfg.Initial {
		t.Fatalf("limit after an idle period = %d, want it unchanged at %d", got, cfg.Initial)
	}
}

func TestMinRTTIsMeasuredAgainAfterTheInterval(t *testing.T) {
	clk := newFakeClock()
	cfg := algConfig(clk)
	cfg.MinRTTInterval = time.Second
	cfg.MinRTTJitter = 0.01
	l := measured(t, clk, cfg, 10*time.Millisecond)
	begin := clk.Now()
	for l.Limit() != cfg.Floor {
		round(t, l, clk, l.Limit(), 10*time.Millisecond)
		if clk.Now().Sub(begin) > 2*cfg.MinRTTInterval {
			t.Fatalf("no new measurement after %v; limit %d", clk.Now().Sub(begin), l.Limit())
		}
	}
	if took := clk.Now().Sub(begin); took < cfg.MinRTTInterval {
		t.Fatalf("measured again after %v, before the interval %v", took, cfg.MinRTTInterval)
	}
	for l.Limit() == cfg.Floor {
		round(t, l, clk, cfg.Floor, 5*time.Millisecond)
	}
	if got := l.MinRTT(); got != 5*time.Millisecond {
		t.Fatalf("re-measured MinRTT = %v, want 5ms", got)
	}
}

func TestSamplesFromBeforeMeasuringAreNotTheBaseline(t *testing.T) {
	clk := newFakeClock()
	g := newGradient(LimitConfig{Floor: 2, Ceiling: 10, Initial: 5, MinRTTSamples: 2}, clk.Now())
	start := clk.Now()
	clk.Advance(time.Millisecond)
	g.startMeasuring(clk.Now())
	// A slow request admitted before measuring began says nothing about
	// latency at the floor.
	g.sample(clk.Now(), start, time.Second, 5, false)
	g.sample(clk.Now(), start, time.Second, 5, false)
	if g.minRTT != 0 || !g.measuring {
		t.Fatalf("measured from stale samples: minRTT %v, measuring %v", g.minRTT, g.measuring)
	}
}

func TestLimitConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  LimitConfig
	}{
		{"ceiling below floor", LimitConfig{Floor: 10, Ceiling: 5, Initial: 10}},
		{"initial outside", LimitConfig{Floor: 2, Ceiling: 5, Initial: 50}},
		{"reserve too big", LimitConfig{Reserve: 0.4}},
		{"negative tolerance", LimitConfig{Tolerance: -1}},
	} {
		if _, err := NewLimiter(tc.cfg); err == nil {
			t.Errorf("%s: NewLimiter accepted %+v", tc.name, tc.cfg)
		}
	}
	if _, err := NewLimiter(LimitConfig{}); err != nil {
		t.Errorf("zero LimitConfig: %v", err)
	}
}
