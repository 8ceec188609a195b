package admission

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// LimitConfig configures a Limiter. Zero fields take the defaults listed on
// each; see docs/overload.md for how to choose them.
type LimitConfig struct {
	// Floor is the lowest concurrency limit (default 4). The limit never
	// goes below it, and the minimum latency is measured at it.
	Floor int
	// Ceiling is the highest concurrency limit (default 1000).
	Ceiling int
	// Initial is the limit the process starts with once the first
	// minimum-latency measurement is done (default 20).
	Initial int
	// Window is how often the limit is recalculated under load (default
	// 100ms); a window also needs MinWindowSamples completed requests.
	Window time.Duration
	// MinWindowSamples is the fewest completed requests a window needs
	// (default 10).
	MinWindowSamples int
	// Tolerance is how far median latency may rise above the minimum before
	// the limit shrinks (default 0.25, i.e. 25%).
	Tolerance float64
	// MinRTTInterval is how often the minimum latency is measured again
	// (default 60s), plus up to MinRTTJitter (default 0.15) of it at
	// random so that replicas do not all measure at once.
	MinRTTInterval time.Duration
	MinRTTJitter   float64
	// MinRTTSamples is how many requests completed at the floor make a
	// minimum-latency measurement (default 25).
	MinRTTSamples int
	// Reserve is the share of the limit that each class below Critical
	// gives up (default 0.1): Critical may fill the whole limit, High 90%,
	// Browse 80%, Background 70%. Must be below 1/3.
	Reserve float64
	// MaxQueue bounds the requests waiting for a slot (default 1024). When
	// it is full a newcomer displaces the oldest waiter of a lower class,
	// or is shed itself.
	MaxQueue int
	// QueueTarget and QueueInterval make the queue CoDel-like (defaults
	// 5ms and 100ms): when the queue has not been empty for QueueInterval it
	// is a standing queue, not a burst; it is then served newest first and
	// Browse and Background wait at most QueueTarget.
	QueueTarget   time.Duration
	QueueInterval time.Duration
	// Now is the clock (default time.Now). Queue timeouts use runtime
	// timers, so tests of queueing use testing/synctest rather than Now.
	Now func() time.Time
}

func (c *LimitConfig) setDefaults() {
	def := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	defDur := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	def(&c.Floor, 4)
	def(&c.Ceiling, 1000)
	def(&c.Initial, max(20, c.Floor))
	def(&c.MinWindowSamples, 10)
	def(&c.MinRTTSamples, 25)
	def(&c.MaxQueue, 1024)
	defDur(&c.Window, 100*time.Millisecond)
	defDur(&c.MinRTTInterval, time.Minute)
	defDur(&c.QueueTarget, 5*time.Millisecond)
	defDur(&c.QueueInterval, 100*time.Millisecond)
	if c.Tolerance == 0 {
		c.Tolerance = 0.25
	}
	if c.MinRTTJitter == 0 {
		c.MinRTTJitter = 0.15
	}
	if c.Reserve == 0 {
		c.Reserve = 0.1
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

func (c LimitConfig) validate() error {
	var errs []error
	if c.Floor < 1 {
		errs = append(errs, errors.New("limit floor must be at least 1"))
	}
	if c.Ceiling < c.Floor {
		errs = append(errs, fmt.Errorf("limit ceiling %d is below the floor %d", c.Ceiling, c.Floor))
	}
	if c.Initial < c.Floor || c.Initial > c.Ceiling {
		errs = append(errs, fmt.Errorf("initial limit %d is outside [%d, %d]", c.Initial, c.Floor, c.Ceiling))
	}
	if c.Window <= 0 || c.MinRTTInterval <= 0 || c.QueueTarget <= 0 || c.QueueInterval <= 0 {
		errs = append(errs, errors.New("limit window, min-RTT interval and queue target and interval must be positive"))
	}
	if c.MinWindowSamples < 1 || c.MinRTTSamples < 1 || c.MaxQueue < 0 {
		errs = append(errs, errors.New("sample counts must be at least 1 and the queue bound not negative"))
	}
	if c.Tolerance <= 0 || c.Tolerance > 10 {
		errs = append(errs, fmt.Errorf("latency tolerance %g must be in (0, 10]", c.Tolerance))
	}
	if c.MinRTTJitter < 0 || c.MinRTTJitter > 1 {
		errs = append(errs, fmt.Errorf("min-RTT jitter %g must be in [0, 1]", c.MinRTTJitter))
	}
	if c.Reserve < 0 || c.Reserve >= 1.0/3 {
		errs = append(errs, fmt.Errorf("reserve %g must be in [0, 1/3)", c.Reserve))
	}
	return errors.Join(errs...)
}

// Outcome tells the Limiter what became of an admitted request, so that
// only meaningful latencies steer the limit.
type Outcome int

const (
	// Success: the request was served; its latency is a sample.
	Success Outcome = iota
	// Dropped: the request ran out of time while being served. Its
	// latency is a sample and the limit will not grow this window.
	Dropped
	// Ignore: the latency says nothing about capacity (the client went
	// away, the handler panicked, the answer came from memory).
	Ignore
)

// Reason says why a request was shed; it is the reason label of
// surge_admission_shed_total.
type Reason string

const (
	// ReasonQueueFull: the queue was at MaxQueue and the request was the
	// lowest class in it.
	ReasonQueueFull Reason = "queue_full"
	// ReasonQueueTimeout: the request waited its class's share of a
	// standing queue (QueueTarget) without getting a slot.
	ReasonQueueTimeout Reason = "queue_timeout"
	// ReasonDeadline: the request could no longer finish before its
	// deadline, on arrival or after waiting, so it was not served late.
	ReasonDeadline Reason = "deadline"
	// ReasonCanceled: the client went away while the request waited.
	ReasonCanceled Reason = "canceled"
	// ReasonCPU: the process's CPU was oversubscribed and the request's
	// class was being shed to make room (see CPUConfig).
	ReasonCPU Reason = "cpu"
)

var reasons = [...]Reason{ReasonQueueFull, ReasonQueueTimeout, ReasonDeadline, ReasonCPU, ReasonCanceled}

// ErrShed matches every error Acquire returns: errors.Is(err, ErrShed).
var ErrShed = errors.New("admission: request shed")

// ShedError is the error Acquire returns when a request is not admitted.
type ShedError struct {
	Class  Class
	Reason Reason
}

func (e *ShedError) Error() string {
	return fmt.Sprintf("admission: %s request shed: %s", e.Class, e.Reason)
}

// Is makes errors.Is(err, ErrShed) true.
func (e *ShedError) Is(target error) bool { return target == ErrShed }

// Limiter admits requests up to an adaptive concurrency limit, queueing the
// rest by class. Invariants, all under mu:
//   - inFlight never exceeds the limit for the class being admitted, so a
//     class below Critical can never take the slots reserved above it;
//   - a waiting request is admitted only before the point where, given the
//     latency admitted requests see now, it could still meet its deadline;
//   - a slot that frees goes to the highest class waiting.
type Limiter struct {
	cfg       LimitConfig
	now       func() time.Time
	shares    [NumClasses]float64
	mu        sync.Mutex
	alg       *gradient
	inFlight  int
	queues    [NumClasses]list.List // of *waiter, oldest at the front
	queued    int
	lastEmpty time.Time // the last moment the queue was empty
}

type waiter struct {
	class    Class
	deadline time.Time // zero: none
	elem     *list.Element
	done     chan struct{} // closed once admitted or shed by the limiter
	admitted bool
	inFlight int
	start    time.Time
	shed     Reason
}

// NewLimiter returns a Limiter; zero LimitConfig fields take defaults.
func NewLimiter(cfg LimitConfig) (*Limiter, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("admission: %w", err)
	}
	now := cfg.Now()
	l := &Limiter{cfg: cfg, now: cfg.Now, alg: newGradient(cfg, now), lastEmpty: now}
	for c := range NumClasses {
		l.shares[c] = 1 - cfg.Reserve*float64(Critical-Class(c))
	}
	return l, nil
}

// Limit is the concurrency limit in force.
func (l *Limiter) Limit() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.alg.current()
}

// InFlight is the number of admitted requests not yet released.
func (l *Limiter) InFlight() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.inFlight
}

// Queued is the number of requests waiting for a slot.
func (l *Limiter) Queued() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.queued
}

// MinRTT is the latest no-load latency measurement; zero until the first.
func (l *Limiter) MinRTT() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.alg.minRTT
}

// classLimitLocked is how many requests may be in flight when one of
// class c is admitted.
func (l *Limiter) classLimitLocked(c Class) int {
	return max(1, int(float64(l.alg.current())*l.shares[c]))
}

func (l *Limiter) standingLocked(now time.Time) bool {
	return l.queued > 0 && now.Sub(l.lastEmpty) > l.cfg.QueueInterval
}

// Acquire admits a request of class c or returns a *ShedError. It waits
// in the queue only while the request could still meet ctx's deadline (and
// under a standing queue, for Browse and Background, at most QueueTarget);
// it returns at once when ctx is done. On success the caller must call
// release exactly once when the request is finished; later calls are
// no-ops.
func (l *Limiter) Acquire(ctx context.Context, c Class) (release func(Outcome), err error) {
	if !c.valid() {
		c = Background
	}
	if ctx.Err() != nil {
		return nil, &ShedError{c, ReasonCanceled}
	}
	now := l.now()
	l.mu.Lock()
	if l.inFlight < l.classLimitLocked(c) && !l.waitingAtOrAboveLocked(c) {
		l.inFlight++
		n := l.inFlight
		l.mu.Unlock()
		return l.releaser(now, n), nil
	}

	// No slot: decide how long this request may wait, if at all.
	w := &waiter{class: c, done: make(chan struct{})}
	wait, timeoutReason := time.Duration(-1), ReasonDeadline
	if dl, ok := ctx.Deadline(); ok {
		w.deadline = dl
		wait = dl.Sub(now) - l.alg.serviceEstimate()
		if wait <= 0 {
			l.mu.Unlock()
			return nil, &ShedError{c, ReasonDeadline}
		}
	}
	if c < High && l.standingLocked(now) && (wait < 0 || wait > l.cfg.QueueTarget) {
		wait, timeoutReason = l.cfg.QueueTarget, ReasonQueueTimeout
	}
	if l.queued >= l.cfg.MaxQueue && !l.evictBelowLocked(c) {
		l.mu.Unlock()
		return nil, &ShedError{c, ReasonQueueFull}
	}
	if l.queued == 0 {
		l.lastEmpty = now
	}
	w.elem = l.queues[c].PushBack(w)
	l.queued++
	l.mu.Unlock()

	var timeout <-chan time.Time
	if wait >= 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		timeout = t.C
	}
	reason := timeoutReason
	select {
	case <-w.done:
	case <-timeout:
	case <-ctx.Done():
		reason = ReasonCanceled
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			reason = ReasonDeadline
		}
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case w.admitted:
		return l.releaser(w.start, w.inFlight), nil
	case w.shed != "":
		return nil, &ShedError{c, w.shed}
	}
	l.removeLocked(w, l.now())
	return nil, &ShedError{c, reason}
}

// waitingAtOrAboveLocked reports whether a request of class c or higher
// is queued; a newcomer must not overtake it.
func (l *Limiter) waitingAtOrAboveLocked(c Class) bool {
	for k := c; k < NumClasses; k++ {
		if l.queues[k].Len() > 0 {
			return true
		}
	}
	return false
}

// evictBelowLocked sheds the oldest waiter of the lowest class below c to
// make room, and reports whether there was one.
func (l *Limiter) evictBelowLocked(c Class) bool {
	for k := Background; k < c; k++ {
		if e := l.queues[k].Front(); e != nil {
			w := e.Value.(*waiter)
			w.shed = ReasonQueueFull
			l.removeLocked(w, l.now())
			close(w.done)
			return true
		}
	}
	return false
}

func (l *Limiter) removeLocked(w *waiter, now time.Time) {
	l.queues[w.class].Remove(w.elem)
	l.queued--
	if l.queued == 0 {
		l.lastEmpty = now
	}
}

func (l *Limiter) releaser(start time.Time, inFlight int) func(Outcome) {
	var once sync.Once
	return func(o Outcome) {
		once.Do(func() {
			now := l.now()
			l.mu.Lock()
			defer l.mu.Unlock()
			l.inFlight--
			if o != Ignore {
				l.alg.sample(now, start, now.Sub(start), inFlight, o == Dropped)
			}
			l.dispatchLocked(now)
		})
	}
}

// dispatchLocked hands free slots to waiters, highest class first. Within
// a class it serves the oldest first, or the newest under a standing queue
// (adaptive LIFO): in a standing queue the oldest are the likeliest to miss
// their deadline anyway, and the newest have the most time left.
func (l *Limiter) dispatchLocked(now time.Time) {
	lifo := l.standingLocked(now)
	est := l.alg.serviceEstimate()
	for c := Critical; c >= Background; c-- {
		q := &l.queues[c]
		for q.Len() > 0 && l.inFlight < l.classLimitLocked(c) {
			e := q.Front()
			if lifo {
				e = q.Back()
			}
			w := e.Value.(*waiter)
			l.removeLocked(w, now)
			if !w.deadline.IsZero() && now.Add(est).After(w.deadline) {
				w.shed = ReasonDeadline
				close(w.done)
				continue
			}
			l.inFlight++
			w.admitted, w.inFlight, w.start = true, l.inFlight, now
			close(w.done)
		}
		if q.Len() > 0 {
			// Class limits only shrink going down, so nothing below fits.
			return
		}
	}
}
