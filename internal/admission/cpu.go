package admission

import (
	"errors"
	"math"
	"math/rand/v2"
	runtimemetrics "runtime/metrics"
	"slices"
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
	// Target is the 90th percentile of the wait for a CPU, over a
	// window, above which the process counts as CPU-saturated (default
	// 15ms). A saturated window lowers the share of Browse requests
	// admitted (Background gets the square of it); a calm one raises it
	// back. Negative turns the guard off.
	Target time.Duration
	// Window is how often the wait is measured and the share adjusted
	// (default 100ms).
	Window time.Duration
	// MinWakeups is the fewest goroutine wake-ups a window needs to say
	// anything (default 25 recorded, and the runtime records about one
	// in eight, so some 2,000 a second); a quieter window counts as calm.
	// The guard is for floods of short requests, where thousands arrive a
	// second; a process overloaded by a few heavy ones shows it in their
	// latency, which the concurrency limit acts on.
	MinWakeups uint64
	// Latencies reads the process's cumulative distribution of the time
	// goroutines spent runnable before they ran: bucket counts only grow,
	// and the buckets never change (default RuntimeSchedLatencies).
	Latencies func() *runtimemetrics.Float64Histogram
}

// cpuQuantile is the quantile of the wait the guard steers by. The mean
// would understate it: goroutines handed the CPU directly by the one that
// woke them wait nothing, and they are many. A request woken by the
// network waits a whole turn of the run queue, which the upper part of
// the distribution shows.
const cpuQuantile = 0.9

// minCPUShare is the lowest share of Browse admitted: even at the worst
// some requests go through, so the share is steered by real outcomes.
const minCPUShare = 0.02

func (c *CPUConfig) setDefaults() {
	if c.Target == 0 {
		c.Target = 15 * time.Millisecond
	}
	if c.Window == 0 {
		c.Window = 100 * time.Millisecond
	}
	if c.MinWakeups == 0 {
		c.MinWakeups = 25
	}
	if c.Latencies == nil {
		c.Latencies = RuntimeSchedLatencies()
	}
}

func (c CPUConfig) validate() error {
	if c.Window <= 0 {
		return errors.New("cpu guard window must be positive")
	}
	return nil
}

// RuntimeSchedLatencies reads the Go runtime's scheduling-latency
// histogram (/sched/latencies:seconds), or an empty one where the runtime
// has none.
func RuntimeSchedLatencies() func() *runtimemetrics.Float64Histogram {
	var mu sync.Mutex
	s := []runtimemetrics.Sample{{Name: "/sched/latencies:seconds"}}
	return func() *runtimemetrics.Float64Histogram {
		mu.Lock()
		defer mu.Unlock()
		runtimemetrics.Read(s)
		if s[0].Value.Kind() != runtimemetrics.KindFloat64Histogram {
			return &runtimemetrics.Float64Histogram{Buckets: []float64{0}}
		}
		h := s[0].Value.Float64Histogram()
		// Read may reuse the counts' memory; the guard keeps the last one.
		return &runtimemetrics.Float64Histogram{Counts: slices.Clone(h.Counts), Buckets: h.Buckets}
	}
}

// quantile is the q quantile of the counts added between prev and cur
// (the same buckets), with the number added; a bucket stands for its
// midpoint.
func quantile(prev, cur *runtimemetrics.Float64Histogram, q float64) (time.Duration, uint64) {
	if len(prev.Counts) != len(cur.Counts) {
		prev = &runtimemetrics.Float64Histogram{Counts: make([]uint64, len(cur.Counts))}
	}
	var n uint64
	for i, c := range cur.Counts {
		n += c - prev.Counts[i]
	}
	if n == 0 {
		return 0, 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	var seen uint64
	for i, c := range cur.Counts {
		seen += c - prev.Counts[i]
		if seen < rank {
			continue
		}
		lo, hi := cur.Buckets[i], cur.Buckets[i+1]
		v := (lo + hi) / 2
		switch {
		case math.IsInf(hi, 1):
			v = lo
		case math.IsInf(lo, -1):
			v = hi
		}
		return time.Duration(math.Round(v * float64(time.Second))), n
	}
	return 0, n
}

// cpuGuard holds the admitted share. The request path reads it with one
// atomic load; whoever first sees the window over takes the lock and
// moves it.
type cpuGuard struct {
	cfg   CPUConfig
	now   func() time.Time
	share atomic.Uint64 // math.Float64bits of the Browse share in [minCPUShare, 1]
	delay atomic.Int64  // the last counted window's wait quantile, ns
	next  atomic.Int64  // UnixNano when the window is over

	mu   sync.Mutex                       // held while the window moves
	prev *runtimemetrics.Float64Histogram // as read at the start of the window
}

func newCPUGuard(cfg CPUConfig, now func() time.Time) *cpuGuard {
	g := &cpuGuard{cfg: cfg, now: now}
	g.share.Store(math.Float64bits(1))
	if cfg.Target > 0 {
		g.prev = cfg.Latencies()
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

// Delay is the wait for a CPU (its 90th percentile) in the last window
// that had enough wake-ups to count.
func (g *cpuGuard) Delay() time.Duration { return time.Duration(g.delay.Load()) }

// tick moves the window when it is over. The step is multiplicative both
// ways, so the share finds the right order of magnitude quickly at 3x or
// at 30x overload: down by the square root of how far the wait is over
// the target (at most halving), up 5% a calm window, or 25% when the
// wait is far below the target.
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
	cur := g.cfg.Latencies()
	d, dn := quantile(g.prev, cur, cpuQuantile)
	if dn < g.cfg.MinWakeups {
		// A quiet window: the process is not flooded, whatever its few
		// wake-ups waited (on a busy machine, an idle process's timers
		// wait for the OS too). Calm.
		g.prev = cur
		g.share.Store(math.Float64bits(min(1, g.Share()*1.25)))
		return
	}
	g.prev = cur
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
