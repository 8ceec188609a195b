package admission

import (
	"errors"
	"math"
	"math/rand/v2"
	runtimemetrics "runtime/metrics"
	"sync"
	"sync/atomic"
	"time"
)

// CPUConfig configures the CPU guard: the part of admission that sheds
// Browse and Background requests while the process has more runnable work
// than CPU to run it.
//
// The concurrency limit alone cannot see that case. A request's latency is
// measured from the moment its handler starts, but when the CPU is
// oversubscribed the wait happens before that: the goroutine that will read
// and parse the request sits in the Go scheduler's run queue behind every
// other one. Handlers that do get the CPU finish as fast as ever, so the
// limit never shrinks and nothing is shed while clients wait seconds. The
// run queue's wait is measured by the runtime itself (the scheduling
// latency in runtime/metrics), and that is the guard's signal.
type CPUConfig struct {
	// Target is the mean scheduling delay, over a window, above which the
	// process counts as CPU-saturated (default 20ms). A saturated window
	// lowers the share of Browse requests admitted (Background gets the
	// square of it); a calm one raises it back. Negative turns the guard
	// off.
	Target time.Duration
	// Window is how often the delay is measured and the share adjusted
	// (default 100ms).
	Window time.Duration
	// MinWakeups is the fewest goroutine wake-ups a window needs to say
	// anything (default 25; the runtime records about one wake-up in
	// eight): an idle process's few timer wake-ups can wait on a busy
	// machine without the process being overloaded.
	MinWakeups uint64
	// Delay reads the process's cumulative scheduling delay (default
	// RuntimeSchedDelay).
	Delay SchedDelay
}

// SchedDelay returns a process's cumulative scheduling delay: the total
// time goroutines spent runnable before they ran, and how many times a
// goroutine became runnable. Both only grow.
type SchedDelay func() (total time.Duration, wakeups uint64)

// minCPUShare is the lowest share of Browse admitted: even at the worst
// some requests go through, so the share is steered by real outcomes.
const minCPUShare = 0.02

func (c *CPUConfig) setDefaults() {
	if c.Target == 0 {
		c.Target = 20 * time.Millisecond
	}
	if c.Window == 0 {
		c.Window = 100 * time.Millisecond
	}
	if c.MinWakeups == 0 {
		c.MinWakeups = 25
	}
	if c.Delay == nil {
		c.Delay = RuntimeSchedDelay()
	}
}

func (c CPUConfig) validate() error {
	if c.Window <= 0 {
		return errors.New("cpu guard window must be positive")
	}
	return nil
}

// RuntimeSchedDelay reads the Go runtime's scheduling-latency histogram
// (/sched/latencies:seconds). The total is estimated from bucket
// midpoints; the buckets are narrow enough that the mean is good to a few
// percent.
func RuntimeSchedDelay() SchedDelay {
	var mu sync.Mutex
	s := []runtimemetrics.Sample{{Name: "/sched/latencies:seconds"}}
	return func() (time.Duration, uint64) {
		mu.Lock()
		defer mu.Unlock()
		runtimemetrics.Read(s)
		if s[0].Value.Kind() != runtimemetrics.KindFloat64Histogram {
			return 0, 0
		}
		h := s[0].Value.Float64Histogram()
		var sum float64
		var n uint64
		for i, c := range h.Counts {
			if c == 0 {
				continue
			}
			lo, hi := h.Buckets[i], h.Buckets[i+1]
			v := (lo + hi) / 2
			switch {
			case math.IsInf(hi, 1):
				v = lo
			case math.IsInf(lo, -1):
				v = hi
			}
			sum += float64(c) * v
			n += c
		}
		return time.Duration(sum * float64(time.Second)), n
	}
}

// cpuGuard holds the admitted share. The request path reads it with one
// atomic load; whoever first sees the window over takes the lock and
// moves it.
type cpuGuard struct {
	cfg   CPUConfig
	now   func() time.Time
	share atomic.Uint64 // math.Float64bits of the Browse share in [minCPUShare, 1]
	delay atomic.Int64  // the last window's mean delay, ns
	next  atomic.Int64  // UnixNano when the window is over

	mu      sync.Mutex // held while the window moves
	total   time.Duration
	wakeups uint64
	since   time.Time // when total and wakeups were read
}

func newCPUGuard(cfg CPUConfig, now func() time.Time) *cpuGuard {
	g := &cpuGuard{cfg: cfg, now: now}
	g.share.Store(math.Float64bits(1))
	if cfg.Target > 0 {
		g.total, g.wakeups = cfg.Delay()
		g.since = now()
		g.next.Store(now().Add(cfg.Window).UnixNano())
	}
	return g
}

// allow reports whether a request of class c may go on to the limiter.
// High and Critical always may: they are what the shedding of the others
// keeps the CPU for, and the concurrency limit still bounds them.
func (g *cpuGuard) allow(c Class) bool {
	if g.cfg.Target < 0 || c >= High {
		return true
	}
	g.tick()
	s := g.Share()
	if c == Background {
		s *= s
	}
	return s >= 1 || rand.Float64() < s
}

// Share is the share of Browse requests admitted now (Background gets
// its square).
func (g *cpuGuard) Share() float64 { return math.Float64frombits(g.share.Load()) }

// Delay is the mean scheduling delay of the last window that had enough
// wake-ups to count.
func (g *cpuGuard) Delay() time.Duration { return time.Duration(g.delay.Load()) }

// tick moves the window when it is over. The step is multiplicative both
// ways, so the share finds the right order of magnitude quickly at 3x or
// at 30x overload: down by the square root of how far the delay is over
// the target (at most halving), up 5% a calm window, or 25% when the
// delay is far below the target.
func (g *cpuGuard) tick() {
	now := g.now()
	if now.UnixNano() < g.next.Load() || !g.mu.TryLock() {
		return
	}
	defer g.mu.Unlock()
	if now.UnixNano() < g.next.Load() {
		return // another caller just moved it
	}
	g.next.Store(now.Add(g.cfg.Window).UnixNano())
	total, n := g.cfg.Delay()
	dn, dt := n-g.wakeups, total-g.total
	if dn < g.cfg.MinWakeups {
		// Too few to say anything yet: a slow process (few requests of
		// heavy work) gets a longer window, up to ten. After that the
		// process is idle, which is calm.
		if now.Sub(g.since) >= 10*g.cfg.Window {
			g.total, g.wakeups, g.since = total, n, now
			g.share.Store(math.Float64bits(min(1, g.Share()*1.25)))
		}
		return
	}
	g.total, g.wakeups, g.since = total, n, now
	d := dt / time.Duration(dn)
	g.delay.Store(int64(d))
	share, target := g.Share(), g.cfg.Target
	switch {
	case d > target:
		share *= max(0.5, math.Sqrt(float64(target)/float64(d)))
	case d < target/4:
		share *= 1.25
	default:
		share *= 1.05
	}
	g.share.Store(math.Float64bits(min(1, max(minCPUShare, share))))
}
