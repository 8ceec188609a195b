package admission

import (
	"fmt"
	"testing"
	"time"
)

func TestTokenBucket(t *testing.T) {
	type step struct {
		after     time.Duration // clock advance before this request
		key       string
		want      bool
		wantRetry time.Duration
	}
	for _, tc := range []struct {
		name  string
		rate  Rate
		steps []step
	}{
		{"burst then refuse", Rate{PerSecond: 1, Burst: 3}, []step{
			{0, "a", true, 0}, {0, "a", true, 0}, {0, "a", true, 0}, {0, "a", false, time.Second},
		}},
		{"refills at the rate", Rate{PerSecond: 2, Burst: 1}, []step{
			{0, "a", true, 0}, {0, "a", false, 500 * time.Millisecond},
			{250 * time.Millisecond, "a", false, 250 * time.Millisecond},
			{250 * time.Millisecond, "a", true, 0},
		}},
		{"never above the burst", Rate{PerSecond: 10, Burst: 2}, []step{
			{time.Hour, "a", true, 0}, {0, "a", true, 0}, {0, "a", false, 100 * time.Millisecond},
		}},
		{"keys are separate", Rate{PerSecond: 1, Burst: 1}, []step{
			{0, "a", true, 0}, {0, "b", true, 0}, {0, "a", false, time.Second}, {0, "b", false, time.Second},
		}},
		{"fractional rate", Rate{PerSecond: 0.5, Burst: 1}, []step{
			{0, "a", true, 0}, {time.Second, "a", false, time.Second}, {time.Second, "a", true, 0},
		}},
		{"disabled", Rate{}, []step{{0, "a", true, 0}, {0, "a", true, 0}, {0, "a", true, 0}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := newFakeClock()
			rl := NewRateLimiter(tc.rate, 1000, clk.Now)
			for i, s := range tc.steps {
				clk.Advance(s.after)
				ok, retry := rl.Allow(s.key)
				if ok != s.want || retry != s.wantRetry {
					t.Fatalf("step %d (%s): Allow = %v, %v; want %v, %v", i, s.key, ok, retry, s.want, s.wantRetry)
				}
			}
		})
	}
}

func TestRateLimiterMemoryIsBounded(t *testing.T) {
	clk := newFakeClock()
	rl := NewRateLimiter(Rate{PerSecond: 1, Burst: 1}, 160, clk.Now)
	// A flood of distinct addresses, each sending once.
	for i := range 10_000 {
		rl.Allow(fmt.Sprintf("198.51.%d.%d", i/256, i%256))
	}
	if n := rl.Len(); n > 160 {
		t.Fatalf("holding %d buckets, bound 160", n)
	}
	// Later waves replace the idle buckets rather than growing the set.
	clk.Advance(time.Second)
	for i := range 1000 {
		rl.Allow(fmt.Sprintf("203.0.%d.%d", i/256, i%256))
	}
	if n := rl.Len(); n > 160 {
		t.Fatalf("holding %d buckets, bound 160", n)
	}
}
