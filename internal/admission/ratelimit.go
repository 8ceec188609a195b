package admission

import (
	"hash/maphash"
	"math"
	"sync"
	"time"
)

// Rate is a token bucket: PerSecond tokens a second, at most Burst saved
// up. A zero PerSecond disables the limit.
type Rate struct {
	PerSecond float64
	Burst     int
}

// rateShards spreads clients over several locks.
const rateShards = 16

// evictScan is how many buckets an insert into a full shard looks at.
const evictScan = 8

// RateLimiter is a set of token buckets keyed by client, in bounded
// memory. A bucket that has refilled to its burst is the same as no bucket,
// so idle clients are forgotten first; when every bucket looked at is still
// in use one of them is forgotten anyway, which forgives that client rather
// than letting a flood of new addresses exhaust memory.
type RateLimiter struct {
	rate     Rate
	perShard int
	now      func() time.Time
	seed     maphash.Seed
	shards   [rateShards]rateShard
}

type rateShard struct {
	mu sync.Mutex
	m  map[string]bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// NewRateLimiter returns a limiter holding at most maxKeys buckets (at
// least one per shard). now is the clock; nil means time.Now.
func NewRateLimiter(r Rate, maxKeys int, now func() time.Time) *RateLimiter {
	if now == nil {
		now = time.Now
	}
	if r.Burst < 1 {
		r.Burst = 1
	}
	rl := &RateLimiter{rate: r, perShard: max(1, maxKeys/rateShards), now: now, seed: maphash.MakeSeed()}
	for i := range rl.shards {
		rl.shards[i].m = make(map[string]bucket)
	}
	return rl
}

// Allow takes a token from key's bucket. When there is none it returns
// false and how long until there will be one.
func (rl *RateLimiter) Allow(key string) (ok bool, retryAfter time.Duration) {
	if rl.rate.PerSecond <= 0 {
		return true, 0
	}
	now := rl.now()
	burst := float64(rl.rate.Burst)
	sh := &rl.shards[maphash.String(rl.seed, key)%rateShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	b, found := sh.m[key]
	if !found {
		if len(sh.m) >= rl.perShard {
			rl.evictLocked(sh, now)
		}
		b = bucket{tokens: burst, last: now}
	} else if d := now.Sub(b.last); d > 0 {
		b.tokens = min(burst, b.tokens+d.Seconds()*rl.rate.PerSecond)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		sh.m[key] = b
		return true, 0
	}
	sh.m[key] = b
	wait := (1 - b.tokens) / rl.rate.PerSecond
	return false, time.Duration(math.Ceil(wait * float64(time.Second)))
}

// Len is the number of buckets held.
func (rl *RateLimiter) Len() int {
	n := 0
	for i := range rl.shards {
		sh := &rl.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}

// evictLocked makes room in a full shard: it drops the refilled buckets
// among a few looked at (map iteration starts at a random place), or the
// first one looked at when none has refilled.
func (rl *RateLimiter) evictLocked(sh *rateShard, now time.Time) {
	burst := float64(rl.rate.Burst)
	var first string
	dropped, seen := 0, 0
	for k, b := range sh.m {
		if seen == 0 {
			first = k
		}
		if b.tokens+now.Sub(b.last).Seconds()*rl.rate.PerSecond >= burst {
			delete(sh.m, k)
			dropped++
		}
		if seen++; seen >= evictScan {
			break
		}
	}
	if dropped == 0 {
		delete(sh.m, first)
	}
}
