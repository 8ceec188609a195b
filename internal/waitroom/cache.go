package waitroom

import (
	"sync"
	"sync/atomic"
	"time"
)

// cached keeps one value for a short time, so that a hundred thousand
// pollers cost one fill per TTL. Readers never wait while a value exists:
// when it is stale one of them refills it and the others keep using the
// stale one meanwhile.
type cached[T any] struct {
	mu sync.Mutex // held while filling
	v  atomic.Pointer[stamped[T]]
}

type stamped[T any] struct {
	v  T
	at time.Time
}

func (e *stamped[T]) fresh(now time.Time, ttl time.Duration) bool {
	return e != nil && !now.Before(e.at) && now.Sub(e.at) < ttl
}

// get returns the value, filling it when missing or older than ttl. A
// failed fill keeps the old value (returned with the error) if there is
// one.
func (c *cached[T]) get(now time.Time, ttl time.Duration, fill func() (T, error)) (T, error) {
	e := c.v.Load()
	if e.fresh(now, ttl) {
		return e.v, nil
	}
	if !c.mu.TryLock() {
		if e != nil {
			return e.v, nil
		}
		c.mu.Lock()
	}
	defer c.mu.Unlock()
	if e = c.v.Load(); e.fresh(now, ttl) {
		return e.v, nil
	}
	v, err := fill()
	if err != nil {
		if e != nil {
			return e.v, err
		}
		return v, err
	}
	c.v.Store(&stamped[T]{v: v, at: now})
	return v, nil
}

// set stores a value known to be current, keeping the time of the last
// fill: a stream of writes (joins) must not keep the value looking fresh
// forever, since the fill does work of its own (writing the flow).
func (c *cached[T]) set(v T, now time.Time) {
	at := now
	if e := c.v.Load(); e != nil && !now.Before(e.at) {
		at = e.at
	}
	c.v.Store(&stamped[T]{v: v, at: at})
}

// peek returns the value without filling, and whether there is one.
func (c *cached[T]) peek() (T, bool) {
	if e := c.v.Load(); e != nil {
		return e.v, true
	}
	var zero T
	return zero, false
}

// clear forgets the value.
func (c *cached[T]) clear() { c.v.Store(nil) }
