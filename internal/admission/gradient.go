package admission

import (
	"math"
	"math/rand/v2"
	"slices"
	"time"
)

// maxWindowSamples bounds the latencies kept per sampling window; beyond
// it the newest overwrite the oldest, so memory does not grow with traffic.
const maxWindowSamples = 1024

// floorWindowsBeforeRemeasure is how many consecutive windows the limit
// may sit at the floor before the minimum latency is measured again: a
// limit pinned at the floor usually means the baseline went stale (the
// database got slower for good), not that the process can only serve the
// floor.
const floorWindowsBeforeRemeasure = 5

// gradient is the adaptive concurrency limit: a gradient controller in the
// style of Envoy's adaptive concurrency filter, itself after Netflix's
// Gradient2.
//
// It compares the latency requests see now with the latency they see when
// nothing queues (minRTT). Every window it sets
//
//	g     = clamp(minRTT × (1 + tolerance) / p50(window), 0.5, 2)
//	limit = limit × g + √(limit × g)
//
// so the limit grows while latency stays within tolerance of the baseline
// and shrinks, at most by half a window, as soon as it rises: queueing shows
// up as latency long before it shows up as errors. The √ headroom keeps a
// little room to discover that more concurrency became possible.
//
// minRTT is measured, not remembered forever: every minRTTInterval (and when
// the limit sits at the floor for several windows) the limit is pinned to
// the floor until minRTTSamples requests have completed at that
// concurrency, and their median becomes the new baseline. A baseline learnt
// once would go stale; one learnt from the long average (Gradient2) drifts
// upwards under sustained overload, which for a CPU-bound server means the
// limit creeps up until latency is unbounded.
//
// gradient is not safe for concurrent use; Limiter holds its lock.
type gradient struct {
	cfg LimitConfig

	limit  float64
	minRTT time.Duration
	// lastRTT is the median of the latest window: the best guess of how
	// long an admitted request takes now.
	lastRTT time.Duration

	windowStart time.Time
	samples     []time.Duration
	seen        int // samples offered to this window, including overwritten ones
	maxInFlight int
	dropped     bool
	atFloor     int

	measuring    bool
	measureStart time.Time
	restore      float64 // limit to return to after measuring
	nextMeasure  time.Time
}

func newGradient(cfg LimitConfig, now time.Time) *gradient {
	g := &gradient{cfg: cfg, limit: float64(cfg.Initial), samples: make([]time.Duration, 0, 64)}
	g.startMeasuring(now)
	return g
}

// current is the limit in force.
func (g *gradient) current() int {
	if g.measuring {
		return g.cfg.Floor
	}
	return int(g.limit)
}

// serviceEstimate is how long an admitted request is expected to take,
// used to drop queued requests that could no longer finish in time.
func (g *gradient) serviceEstimate() time.Duration {
	if g.lastRTT > 0 {
		return g.lastRTT
	}
	return g.minRTT
}

func (g *gradient) startMeasuring(now time.Time) {
	if !g.measuring {
		g.restore = g.limit
	}
	g.measuring = true
	g.measureStart = now
	g.atFloor = 0
	g.resetWindow(now)
}

func (g *gradient) resetWindow(now time.Time) {
	g.windowStart = now
	g.samples = g.samples[:0]
	g.seen = 0
	g.maxInFlight = 0
	g.dropped = false
}

func (g *gradient) add(rtt time.Duration) {
	if len(g.samples) < maxWindowSamples {
		g.samples = append(g.samples, rtt)
	} else {
		g.samples[g.seen%maxWindowSamples] = rtt
	}
	g.seen++
}

// sample records one completed request that was admitted at start with
// inFlight requests (itself included) running, and took rtt.
func (g *gradient) sample(now, start time.Time, rtt time.Duration, inFlight int, dropped bool) {
	if g.measuring {
		// Only requests admitted after the limit dropped to the floor ran
		// at the floor's concurrency.
		// A request that failed at once (its deadline already gone, the
		// client away) says nothing about the work's real latency; taken
		// as the baseline it would pin the limit to the floor.
		if start.Before(g.measureStart) || dropped {
			return
		}
		g.add(rtt)
		if len(g.samples) >= g.cfg.MinRTTSamples {
			g.minRTT = max(median(g.samples), time.Microsecond)
			g.lastRTT = g.minRTT
			g.measuring = false
			g.limit = g.restore
			g.nextMeasure = now.Add(g.jittered())
			g.resetWindow(now)
		}
		return
	}
	g.add(rtt)
	g.maxInFlight = max(g.maxInFlight, inFlight)
	g.dropped = g.dropped || dropped
	if now.Sub(g.windowStart) < g.cfg.Window || g.seen < g.cfg.MinWindowSamples {
		return
	}
	g.update()
	g.resetWindow(now)
	if !now.Before(g.nextMeasure) || g.atFloor >= floorWindowsBeforeRemeasure {
		g.startMeasuring(now)
	}
}

func (g *gradient) update() {
	rtt := median(g.samples)
	g.lastRTT = rtt
	grad := 2.0
	if rtt > 0 {
		grad = float64(g.minRTT) * (1 + g.cfg.Tolerance) / float64(rtt)
		grad = min(max(grad, 0.5), 2)
	}
	if g.dropped {
		// Requests ran out of time in this window: never a reason to
		// admit more.
		grad = min(grad, 1)
	}
	next := g.limit * grad
	next += math.Sqrt(next)
	if g.maxInFlight < int(g.limit)/2 {
		// Application-limited: the window says nothing about whether more
		// concurrency would help, so it may lower the limit but not raise
		// it. Without this an idle night grows the limit to the ceiling
		// and the morning spike finds no protection.
		next = min(next, g.limit)
	}
	g.limit = min(max(next, float64(g.cfg.Floor)), float64(g.cfg.Ceiling))
	if int(g.limit) <= g.cfg.Floor {
		g.atFloor++
	} else {
		g.atFloor = 0
	}
}

func (g *gradient) jittered() time.Duration {
	d := g.cfg.MinRTTInterval
	if j := int64(float64(d) * g.cfg.MinRTTJitter); j > 0 {
		d += time.Duration(rand.Int64N(j))
	}
	return d
}

// median returns the middle sample; it reorders a copy, not s.
func median(s []time.Duration) time.Duration {
	if len(s) == 0 {
		return 0
	}
	c := slices.Clone(s)
	slices.Sort(c)
	return c[len(c)/2]
}
