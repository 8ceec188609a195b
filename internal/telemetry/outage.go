package telemetry

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultOutageQuiet is how long a dependency must go without a failed
// call before a successful one ends its outage.
const DefaultOutageQuiet = time.Second

// Outage logs a dependency's outages: once at ERROR when one begins, and
// once when it ends with how many calls failed and for how long, instead
// of a line per failed call (thousands a second in a spike). Whoever calls
// the dependency reports every outcome; it is safe for concurrent use and
// cheap on the success path.
//
// An outage ends with a success that comes at least Quiet after the last
// failure, so a dependency failing every other call (an exhausted pool)
// is one outage, not one per call.
type Outage struct {
	dependency string
	log        *slog.Logger
	quiet      time.Duration
	now        func() time.Time

	down atomic.Bool // read without the lock on every success

	mu       sync.Mutex
	since    time.Time // when the outage began
	lastFail time.Time
	failures int64
}

// NewOutage returns an Outage for dependency, logging to log, with
// DefaultOutageQuiet and the wall clock.
func NewOutage(log *slog.Logger, dependency string) *Outage {
	return NewOutageClock(log, dependency, DefaultOutageQuiet, time.Now)
}

// NewOutageClock is NewOutage with its quiet period and clock given.
func NewOutageClock(log *slog.Logger, dependency string, quiet time.Duration, now func() time.Time) *Outage {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Outage{dependency: dependency, log: log, quiet: quiet, now: now}
}

// Failed records a call that could not reach the dependency.
func (o *Outage) Failed(err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := o.now()
	o.lastFail = now
	o.failures++
	if o.down.Load() {
		return
	}
	o.down.Store(true)
	o.since, o.failures = now, 1
	o.log.Error("dependency unavailable; requests that need it are answered 503 until it is back (logged once per outage)",
		"dependency", o.dependency, "err", err)
}

// Succeeded records a call the dependency answered.
func (o *Outage) Succeeded() {
	if !o.down.Load() {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	now := o.now()
	if !o.down.Load() || now.Sub(o.lastFail) < o.quiet {
		return
	}
	o.down.Store(false)
	o.log.Warn("dependency available again", "dependency", o.dependency, "failures", o.failures,
		"down_for", now.Sub(o.since).Round(time.Millisecond).String())
}

// Down reports whether an outage is going on.
func (o *Outage) Down() bool { return o.down.Load() }
