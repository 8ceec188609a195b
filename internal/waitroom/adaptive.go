package waitroom

import (
	"fmt"
	"math"
	"sync"
	"time"
)

// AdaptiveTargets steers a drop's admission rate from live checkout
// latency and error rate (reported with Room.ObserveCheckout): every
// Interval with at least MinSamples checkouts, if the p95 latency or the
// error rate is over its target the rate is cut in proportion (at most
// by half), and if both are comfortably under (p95 below 80% of its
// target) it grows by 10%; always within [MinRate, MaxRate]. Admitting
// fewer people when checkout struggles keeps it from collapsing; it is
// the waiting room's version of the admission package's adaptive limit.
type AdaptiveTargets struct {
	// Latency is the target p95 checkout latency; 0 ignores latency.
	Latency time.Duration
	// ErrorRate is the target fraction of failed checkouts (0.01 = 1%);
	// 0 ignores errors.
	ErrorRate float64
	// MinRate and MaxRate bound the rate (admissions per minute).
	// Defaults: a tenth of DropSpec.RatePerMinute (at least 1), and four
	// times it.
	MinRate, MaxRate int
	// Interval is how often the rate is reconsidered (default 10s).
	Interval time.Duration
	// MinSamples is how many checkouts an interval needs before the rate
	// moves (default 20); quieter intervals leave it alone.
	MinSamples int
}

func (a AdaptiveTargets) withDefaults(rate int) AdaptiveTargets {
	if a.MinRate <= 0 {
		a.MinRate = max(1, rate/10)
	}
	if a.MaxRate <= 0 {
		a.MaxRate = rate * 4
	}
	if a.Interval <= 0 {
		a.Interval = 10 * time.Second
	}
	if a.MinSamples <= 0 {
		a.MinSamples = 20
	}
	return a
}

func (a AdaptiveTargets) validate() error {
	switch {
	case a.Latency <= 0 && a.ErrorRate <= 0:
		return fmt.Errorf("%w: adaptive: set Latency or ErrorRate", ErrInvalid)
	case a.ErrorRate < 0 || a.ErrorRate >= 1:
		return fmt.Errorf("%w: adaptive: ErrorRate must be in [0, 1)", ErrInvalid)
	case a.MinRate > a.MaxRate:
		return fmt.Errorf("%w: adaptive: MinRate above MaxRate", ErrInvalid)
	}
	return nil
}

// Latency histogram: bucket i holds latencies up to latencyBounds[i]
// (1ms growing by 20% a step, about 100s at the top); the p95 is read
// as the bound of the bucket it falls in, within 20%, plenty to steer by.
const latencyBuckets = 64

var latencyBounds = func() (b [latencyBuckets]time.Duration) {
	v := float64(time.Millisecond)
	for i := range b {
		b[i] = time.Duration(v)
		v *= 1.2
	}
	return b
}()

// adaptive is one drop's rate controller.
type adaptive struct {
	mu      sync.Mutex
	t       AdaptiveTargets
	rate    float64
	since   time.Time // start of the current interval
	hist    [latencyBuckets + 1]uint32
	n, errs int
}

func newAdaptive(t AdaptiveTargets, rate int, now time.Time) *adaptive {
	t = t.withDefaults(rate)
	return &adaptive{t: t, rate: math.Min(math.Max(float64(rate), float64(t.MinRate)), float64(t.MaxRate)), since: now}
}

// observe records one checkout.
func (a *adaptive) observe(now time.Time, latency time.Duration, failed bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.rollLocked(now)
	i := 0
	for i < latencyBuckets && latency > latencyBounds[i] {
		i++
	}
	a.hist[i]++
	a.n++
	if failed {
		a.errs++
	}
}

// current returns the rate in force at now.
func (a *adaptive) current(now time.Time) float64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.rollLocked(now)
	return a.rate
}

// rollLocked closes the interval when it is over and moves the rate.
func (a *adaptive) rollLocked(now time.Time) {
	if now.Sub(a.since) < a.t.Interval {
		return
	}
	if a.n >= a.t.MinSamples {
		p95 := a.quantileLocked(0.95)
		errRate := float64(a.errs) / float64(a.n)
		factor, calm := 1.0, true
		if a.t.Latency > 0 {
			if p95 > a.t.Latency {
				factor = math.Min(factor, float64(a.t.Latency)/float64(p95))
			}
			calm = calm && float64(p95) < 0.8*float64(a.t.Latency)
		}
		if a.t.ErrorRate > 0 {
			if errRate > a.t.ErrorRate {
				factor = math.Min(factor, a.t.ErrorRate/errRate)
			}
			calm = calm && errRate <= a.t.ErrorRate
		}
		switch {
		case factor < 1:
			a.rate *= math.Max(factor, 0.5)
		case calm:
			a.rate *= 1.1
		}
		a.rate = math.Min(math.Max(a.rate, float64(a.t.MinRate)), float64(a.t.MaxRate))
	}
	a.hist = [latencyBuckets + 1]uint32{}
	a.n, a.errs = 0, 0
	a.since = now
}

func (a *adaptive) quantileLocked(q float64) time.Duration {
	need := uint32(math.Ceil(q * float64(a.n)))
	var sum uint32
	for i, c := range a.hist {
		sum += c
		if sum >= need {
			if i == latencyBuckets {
				return latencyBounds[latencyBuckets-1] * 2
			}
			return latencyBounds[i]
		}
	}
	return latencyBounds[latencyBuckets-1] * 2
}
