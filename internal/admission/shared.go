package admission

import (
	"context"
	"time"
)

// SharedBuckets is a token bucket per key kept outside the process (in
// Redis), so every replica behind a load balancer spends from the same
// bucket: a client spread over three replicas gets its limit once, not
// three times.
type SharedBuckets interface {
	Allow(ctx context.Context, key string) (ok bool, retryAfter time.Duration, err error)
}

// Buckets limits by key with Shared buckets when they answer and the Local
// ones when they do not: a rate limit that fails closed would turn a
// Redis outage into a shop outage, one that fails open would drop the
// protection exactly when things go wrong, so each replica falls back to
// counting alone.
type Buckets struct {
	Shared SharedBuckets // nil: Local only
	Local  *RateLimiter
	// OnError hears the shared buckets' failures; nil ignores them.
	OnError func(error)
}

// Allow takes a token from key's bucket.
func (b *Buckets) Allow(ctx context.Context, key string) (ok bool, retryAfter time.Duration) {
	if b.Shared != nil {
		ok, wait, err := b.Shared.Allow(ctx, key)
		if err == nil {
			return ok, wait
		}
		if b.OnError != nil {
			b.OnError(err)
		}
	}
	return b.Local.Allow(key)
}
