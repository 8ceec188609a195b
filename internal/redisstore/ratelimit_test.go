package redisstore_test

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/surge-commerce/surge/internal/admission"
	"github.com/surge-commerce/surge/internal/enginetest"
	"github.com/surge-commerce/surge/internal/redisstore"
)

// TestRateLimiterExactUnderConcurrency spends one client's allowance from
// two replicas at once: exactly the burst gets through.
func TestRateLimiterExactUnderConcurrency(t *testing.T) {
	ctx := context.Background()
	url, prefix := enginetest.Redis(t)
	const burst = 25
	rate := admission.Rate{PerSecond: 1.0 / 3600, Burst: burst} // no refill within the test
	replicas := []*redisstore.RateLimiter{
		redisstore.NewRateLimiter(mustClient(t, redisstore.Config{URL: url, Prefix: prefix}), "api", rate, nil),
		redisstore.NewRateLimiter(mustClient(t, redisstore.Config{URL: url, Prefix: prefix}), "api", rate, nil),
	}
	var allowed, other atomic.Int64
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			rl := replicas[w%2]
			for range 20 {
				ok, retry, err := rl.Allow(ctx, "203.0.113.7")
				if err != nil {
					t.Error(err)
					return
				}
				if ok {
					allowed.Add(1)
				} else if retry < 3500*time.Second {
					t.Errorf("denied with retry after %v; want about an hour", retry)
				}
				if ok, _, _ := rl.Allow(ctx, "198.51.100.1"); ok {
					other.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if allowed.Load() != burst || other.Load() != burst {
		t.Errorf("allowed %d and %d of 160 each; want exactly the burst %d", allowed.Load(), other.Load(), burst)
	}
	// Another limiter has buckets of its own.
	join := redisstore.NewRateLimiter(mustClient(t, redisstore.Config{URL: url, Prefix: prefix}), "join", rate, nil)
	if ok, _, err := join.Allow(ctx, "203.0.113.7"); err != nil || !ok {
		t.Errorf("another limiter's Allow = %v, %v; want allowed", ok, err)
	}
}

// TestRateLimiterMatchesInProcess drives the shared limiter and
// admission.RateLimiter with one clock through bursts and lulls: they
// must agree on every call.
func TestRateLimiterMatchesInProcess(t *testing.T) {
	ctx := context.Background()
	rate := admission.Rate{PerSecond: 5, Burst: 3}
	// Redis keeps microseconds; so does this clock.
	now := time.Now().Truncate(time.Microsecond)
	clock := func() time.Time { return now }
	shared := redisstore.NewRateLimiter(newClient(t), "api", rate, clock)
	local := admission.NewRateLimiter(rate, 1000, clock)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 300 {
		now = now.Add(time.Duration(rng.IntN(400)) * time.Millisecond / time.Duration(1+rng.IntN(8))).Truncate(time.Microsecond)
		key := []string{"a", "b"}[rng.IntN(2)]
		ok, retry, err := shared.Allow(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		wantOK, wantRetry := local.Allow(key)
		// retryAfter is rounded up to the microsecond, not the nanosecond.
		if ok != wantOK || retry < wantRetry-time.Microsecond || retry > wantRetry+time.Microsecond {
			t.Fatalf("call %d (%s): Allow = %v, %v; in-process %v, %v", i, key, ok, retry, wantOK, wantRetry)
		}
	}
}

func TestRateLimiterForgetsIdleClients(t *testing.T) {
	ctx := context.Background()
	url, prefix := enginetest.Redis(t)
	rl := redisstore.NewRateLimiter(mustClient(t, redisstore.Config{URL: url, Prefix: prefix}), "api", admission.Rate{PerSecond: 10, Burst: 5}, nil)
	for range 3 {
		if _, _, err := rl.Allow(ctx, "k"); err != nil {
			t.Fatal(err)
		}
	}
	// Three tokens short of full at ten a second: gone in 300ms.
	if ttl := pttl(t, url, prefix+"rate:api:k"); ttl <= 0 || ttl > 300*time.Millisecond {
		t.Errorf("bucket TTL = %v; want at most the 300ms it takes to refill", ttl)
	}

	off := redisstore.NewRateLimiter(mustClient(t, redisstore.Config{URL: url, Prefix: prefix}), "off", admission.Rate{}, nil)
	for range 100 {
		if ok, _, err := off.Allow(ctx, "k"); !ok || err != nil {
			t.Fatalf("Allow with no rate = %v, %v; want allowed", ok, err)
		}
	}
	if ttl := pttl(t, url, prefix+"rate:off:k"); ttl != -2 {
		t.Errorf("a disabled limiter wrote a bucket (TTL %v)", ttl)
	}
}
