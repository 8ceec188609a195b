package admission

import (
	"math"
	"net/http"
	"net/http/httptest"
	"runtime"
	runtimemetrics "runtime/metrics"
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeSched is a scheduling-latency histogram the test moves by hand:
// 1ms buckets centred on whole milliseconds up to 2s, then one to +Inf.
type fakeSched struct {
	mu sync.Mutex
	h  runtimemetrics.Float64Histogram
}

func newFakeSched() *fakeSched {
	f := &fakeSched{}
	for i := range 2002 {
		f.h.Buckets = append(f.h.Buckets, (float64(i)-0.5)/1000)
	}
	f.h.Buckets = append(f.h.Buckets, math.Inf(1))
	f.h.Counts = make([]uint64, len(f.h.Buckets)-1)
	return f
}

func (f *fakeSched) read() *runtimemetrics.Float64Histogram {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &runtimemetrics.Float64Histogram{Counts: slices.Clone(f.h.Counts), Buckets: f.h.Buckets}
}

// window adds n wake-ups that each waited d (whole ms).
func (f *fakeSched) window(n uint64, d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.h.Counts[min(int(d/time.Millisecond), len(f.h.Counts)-1)] += n
}

func TestCPUGuardSteersShare(t *testing.T) {
	clock := newFakeClock()
	sched := newFakeSched()
	g := newCPUGuard(CPUConfig{Target: 20 * time.Millisecond, Window: 100 * time.Millisecond, MinWakeups: 100, Latencies: sched.read}, clock.Now)
	step := func(n uint64, d time.Duration) float64 {
		sched.window(n, d)
		clock.Advance(100 * time.Millisecond)
		g.tick()
		return g.Share()
	}
	if s := step(1000, time.Millisecond); s != 1 {
		t.Fatalf("share %v after a calm window, want 1", s)
	}
	// Four times the target: the share halves (the square root of the
	// ratio, bounded at a half) and the delay is reported.
	if s := step(1000, 80*time.Millisecond); s != 0.5 {
		t.Fatalf("share %v after a window at 4x the target, want 0.5", s)
	}
	if d := g.Delay(); d != 80*time.Millisecond {
		t.Fatalf("delay %v, want 80ms", d)
	}
	// A window with too few wake-ups is quiet, however long they waited:
	// calm.
	if s := step(10, time.Second); s != 0.625 {
		t.Fatalf("share %v after a window of 10 wake-ups, want 0.625", s)
	}
	// The 90th percentile is what counts.
	g.storeShare(0.5)
	sched.window(80, 0)
	if s := step(20, 80*time.Millisecond); s != 0.25 {
		t.Fatalf("share %v after 100 wake-ups with the top 20 waiting 80ms, want 0.25", s)
	}
	g.storeShare(0.5)
	sched.window(95, 0)
	if s := step(5, 80*time.Millisecond); s != 0.625 {
		t.Fatalf("share %v after 100 wake-ups with the top 5 waiting 80ms, want 0.625", s)
	}
	// Sustained saturation drives it to the floor, never to zero.
	for range 50 {
		step(1000, time.Second)
	}
	if s := g.Share(); s != minCPUShare {
		t.Fatalf("share %v after sustained saturation, want the floor %v", s, minCPUShare)
	}
	// Slightly over the target: a gentle step down.
	g.storeShare(0.5)
	if s := step(1000, 25*time.Millisecond); s < 0.44 || s > 0.45 {
		t.Fatalf("share %v after a window at 1.25x the target, want 0.5*sqrt(0.8)", s)
	}
	// Calm again: back to 1 within a few seconds of windows.
	for range 30 {
		step(1000, time.Millisecond)
	}
	if s := g.Share(); s != 1 {
		t.Fatalf("share %v after 3s of calm, want 1", s)
	}
	// Between a quarter of the target and the target: up 5%.
	g.storeShare(0.5)
	if s := step(1000, 10*time.Millisecond); s != 0.525 {
		t.Fatalf("share %v after a window under the target, want 0.525", s)
	}
	// Within a window nothing moves.
	sched.window(1000, time.Second)
	clock.Advance(50 * time.Millisecond)
	g.tick()
	if s := g.Share(); s != 0.525 {
		t.Fatalf("share %v moved within a window", s)
	}
}

func (g *cpuGuard) storeShare(s float64) { g.share.Store(math.Float64bits(s)) }

// TestCPUGuardShedsLowClassesOnly drives the guard to a low share and
// checks who gets through the middleware: every High and Critical request,
// about the share of Browse, about its square of Background. The shed ones
// get the 503 with Retry-After and are counted with reason "cpu".
func TestCPUGuardShedsLowClassesOnly(t *testing.T) {
	clock := newFakeClock()
	sched := newFakeSched()
	a := mustAdmission(t, Config{Now: clock.Now, CPU: CPUConfig{Latencies: sched.read}})
	for a.cpu.Share() > 0.3 {
		sched.window(1000, time.Second)
		clock.Advance(time.Second)
		a.cpu.tick()
	}
	share := a.cpu.Share()
	ok := func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) }
	const n = 4000
	var served [NumClasses]int
	for c := range Class(NumClasses) {
		h := a.Wrap(c, http.HandlerFunc(ok))
		for range n {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
			switch rec.Code {
			case http.StatusOK:
				served[c]++
			case http.StatusServiceUnavailable:
				if rec.Header().Get("Retry-After") == "" {
					t.Fatal("503 without Retry-After")
				}
			default:
				t.Fatalf("status %d", rec.Code)
			}
		}
	}
	t.Logf("share %.3f; served of %d: %v", share, n, served)
	for _, c := range []Class{High, Critical} {
		if served[c] != n {
			t.Errorf("%s: %d of %d served; the CPU guard must not shed it", c, served[c], n)
		}
	}
	near := func(got int, want float64) bool { return float64(got) > 0.8*want*n && float64(got) < 1.2*want*n }
	if !near(served[Browse], share) {
		t.Errorf("browse: %d of %d served at share %.3f", served[Browse], n, share)
	}
	if !near(served[Background], share*share) {
		t.Errorf("background: %d of %d served at share %.3f (squared %.3f)", served[Background], n, share, share*share)
	}
	counts := shedCounts(a)
	if got, want := counts["browse/cpu"], float64(n-served[Browse]); got != want {
		t.Errorf("browse shed for cpu counted %v, want %v (all: %v)", got, want, counts)
	}
}

func TestCPUGuardOff(t *testing.T) {
	clock := newFakeClock()
	sched := newFakeSched()
	g := newCPUGuard(CPUConfig{Target: -1, Window: 100 * time.Millisecond, MinWakeups: 1, Latencies: sched.read}, clock.Now)
	sched.window(1000, time.Second)
	clock.Advance(time.Second)
	for range 100 {
		if !g.allow(Background) {
			t.Fatal("a guard turned off shed a request")
		}
	}
}

// TestRuntimeSchedLatenciesSeeSaturation runs more CPU-bound goroutines than
// there are Ps and checks that the runtime's scheduling latency, as the
// guard reads it, shows them waiting. Waiting only grows on a busy
// machine, so the check holds however loaded this one is.
func TestRuntimeSchedLatenciesSeeSaturation(t *testing.T) {
	read := RuntimeSchedLatencies()
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	before := read()
	stop := time.Now().Add(300 * time.Millisecond)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for time.Now().Before(stop) {
				spin(2 * time.Millisecond)
				// Block briefly and wake, as a connection's goroutine
				// does when its next request arrives.
				time.Sleep(50 * time.Microsecond)
			}
		})
	}
	wg.Wait()
	p90, n := quantile(before, read(), cpuQuantile)
	if n == 0 {
		t.Fatal("no wake-ups counted")
	}
	t.Logf("%d wake-ups, p90 wait for a CPU %v", n, p90)
	// Seven goroutines ahead in the queue, each running ~2ms: the wait
	// is several milliseconds.
	if p90 < 4*time.Millisecond {
		t.Errorf("p90 wait for a CPU %v with 8 CPU-bound goroutines on one P, want several ms", p90)
	}
}
