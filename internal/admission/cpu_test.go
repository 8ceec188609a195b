package admission

import (
	"math"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"testing"
	"time"
)

// fakeSched is a SchedDelay the test moves by hand.
type fakeSched struct {
	mu      sync.Mutex
	total   time.Duration
	wakeups uint64
}

func (f *fakeSched) read() (time.Duration, uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.total, f.wakeups
}

// window adds n wake-ups that each waited d.
func (f *fakeSched) window(n uint64, d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.total += time.Duration(n) * d
	f.wakeups += n
}

func TestCPUGuardSteersShare(t *testing.T) {
	clock := newFakeClock()
	sched := &fakeSched{}
	g := newCPUGuard(CPUConfig{Target: 20 * time.Millisecond, Window: 100 * time.Millisecond, MinWakeups: 100, Delay: sched.read}, clock.Now)
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
	// Too few wake-ups say nothing on their own, however long they
	// waited: they count with the next window's.
	if s := step(10, 400*time.Millisecond); s != 0.5 {
		t.Fatalf("share %v after a window of 10 wake-ups, want it unchanged at 0.5", s)
	}
	if s := step(90, 0); s != 0.5*math.Sqrt(0.5) {
		t.Fatalf("share %v after two windows of 100 wake-ups at a mean 40ms, want 0.5*sqrt(0.5)", s)
	}
	// Ten windows without enough wake-ups: idle, which is calm.
	g.storeShare(0.5)
	for range 9 {
		step(1, time.Second)
	}
	if s := step(1, time.Second); s != 0.625 {
		t.Fatalf("share %v after ten idle windows, want 0.625", s)
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
	sched := &fakeSched{}
	a := mustAdmission(t, Config{Now: clock.Now, CPU: CPUConfig{Delay: sched.read}})
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
	sched := &fakeSched{}
	g := newCPUGuard(CPUConfig{Target: -1, Window: 100 * time.Millisecond, MinWakeups: 1, Delay: sched.read}, clock.Now)
	sched.window(1000, time.Second)
	clock.Advance(time.Second)
	for range 100 {
		if !g.allow(Background) {
			t.Fatal("a guard turned off shed a request")
		}
	}
}

// TestRuntimeSchedDelaySeesSaturation runs more CPU-bound goroutines than
// there are Ps and checks that the runtime's scheduling latency, as the
// guard reads it, shows them waiting. Waiting only grows on a busy
// machine, so the check holds however loaded this one is.
func TestRuntimeSchedDelaySeesSaturation(t *testing.T) {
	read := RuntimeSchedDelay()
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	total0, n0 := read()
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
	total, n := read()
	if n <= n0 {
		t.Fatalf("no wake-ups counted (%d then %d)", n0, n)
	}
	mean := (total - total0) / time.Duration(n-n0)
	t.Logf("%d wake-ups, mean scheduling delay %v", n-n0, mean)
	// Seven goroutines ahead in the queue, each running ~2ms: the mean
	// wait is several milliseconds.
	if mean < 2*time.Millisecond {
		t.Errorf("mean scheduling delay %v with 8 CPU-bound goroutines on one P, want several ms", mean)
	}
}
