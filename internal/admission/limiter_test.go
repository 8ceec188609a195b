package admission

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// fixedLimit pins the limit at n, so that queueing and priority can be
// tested apart from the adaptive algorithm.
func fixedLimit(n int) LimitConfig {
	return LimitConfig{Floor: n, Ceiling: n, Initial: n, MinRTTSamples: 1, MinRTTInterval: time.Hour}
}

func TestReserveKeepsSlotsForHigherClasses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := mustLimiter(t, fixedLimit(10)) // Reserve 0.1: 7, 8, 9, 10 slots
		want := map[Class]int{Background: 7, Browse: 8, High: 9, Critical: 10}
		for _, c := range []Class{Background, Browse, High, Critical} {
			for {
				ctx, cancel := context.WithTimeout(t.Context(), time.Millisecond)
				_, err := l.Acquire(ctx, c)
				cancel()
				if err != nil {
					if !errors.Is(err, ErrShed) {
						t.Fatalf("%s: error %v does not match ErrShed", c, err)
					}
					break
				}
			}
			// Each class fills up to its own share, on top of the lower ones.
			if in := l.InFlight(); in != want[c] {
				t.Errorf("%s: in flight after filling = %d, want %d", c, in, want[c])
			}
		}
	})
}

func TestQueuedSlotsGoToTheHighestClassFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := mustLimiter(t, fixedLimit(1))
		hold, err := l.Acquire(t.Context(), Critical)
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var order []Class
		var wg sync.WaitGroup
		for _, c := range []Class{Background, Browse, High, Critical, Browse, Critical} {
			wg.Go(func() {
				rel, err := l.Acquire(t.Context(), c) // no deadline: waits its turn
				if err != nil {
					t.Errorf("%s: %v", c, err)
					return
				}
				mu.Lock()
				order = append(order, c)
				mu.Unlock()
				time.Sleep(time.Millisecond) // the work
				rel(Success)
			})
			synctest.Wait() // queued in this order
		}
		hold(Success)
		wg.Wait()
		want := []Class{Critical, Critical, High, Browse, Browse, Background}
		for i := range want {
			if i >= len(order) || order[i] != want[i] {
				t.Fatalf("admission order %v, want %v", order, want)
			}
		}
	})
}

// TestSaturationShedsLowestClassesFirst offers three times the capacity,
// mostly browse and background, with a little checkout and cart on top,
// and counts what each class got.
func TestSaturationShedsLowestClassesFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := fixedLimit(10)
		cfg.MaxQueue = 50
		l := mustLimiter(t, cfg)
		deadline := [NumClasses]time.Duration{200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, 2 * time.Second}
		// 10 slots x 10ms of work = 1,000 requests/s of capacity. Per 10
		// arrivals: 1 critical, 2 high, 4 browse, 3 background; 3 arrivals
		// a millisecond for a second.
		mix := []Class{Critical, Browse, High, Background, Browse, Background, High, Browse, Background, Browse}
		var mu sync.Mutex
		var offered, served [NumClasses]int
		shed := map[Class]map[Reason]int{}
		var wg sync.WaitGroup
		n := 0
		for range 1000 {
			for range 3 {
				c := mix[n%len(mix)]
				n++
				wg.Go(func() {
					ctx, cancel := context.WithTimeout(t.Context(), deadline[c])
					defer cancel()
					rel, err := l.Acquire(ctx, c)
					mu.Lock()
					offered[c]++
					if err != nil {
						var se *ShedError
						if !errors.As(err, &se) {
							t.Errorf("unexpected error %v", err)
						} else {
							if shed[c] == nil {
								shed[c] = map[Reason]int{}
							}
							shed[c][se.Reason]++
						}
						mu.Unlock()
						return
					}
					served[c]++
					mu.Unlock()
					time.Sleep(10 * time.Millisecond)
					rel(Success)
				})
			}
			time.Sleep(time.Millisecond)
		}
		wg.Wait()
		ratio := func(c Class) float64 { return float64(served[c]) / float64(offered[c]) }
		for c := Critical; c >= Background; c-- {
			t.Logf("%-10s offered %4d served %4d (%.2f) shed %v", c, offered[c], served[c], ratio(c), shed[c])
		}
		if served[Critical] != offered[Critical] {
			t.Errorf("critical: served %d of %d; want all", served[Critical], offered[Critical])
		}
		if ratio(High) < 0.95 {
			t.Errorf("high: served ratio %.2f, want >= 0.95", ratio(High))
		}
		for c := Browse; c >= Background; c-- {
			if ratio(c) > ratio(c+1) {
				t.Errorf("%s served ratio %.2f above %s's %.2f", c, ratio(c), c+1, ratio(c+1))
			}
		}
		if offered[Background]-served[Background] == 0 {
			t.Error("background: nothing shed at 3x capacity")
		}
		if l.InFlight() != 0 || l.Queued() != 0 {
			t.Errorf("after the run: in flight %d, queued %d; want 0, 0", l.InFlight(), l.Queued())
		}
	})
}

func TestQueueFullDisplacesTheLowestClass(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := fixedLimit(1)
		cfg.MaxQueue = 2
		l := mustLimiter(t, cfg)
		hold, _ := l.Acquire(t.Context(), Critical)
		errs := make(chan error, 3)
		for _, c := range []Class{Background, Browse} {
			go func() {
				rel, err := l.Acquire(t.Context(), c)
				if err == nil {
					rel(Success)
				}
				errs <- err
			}()
			synctest.Wait()
		}
		// The queue is full; a critical request displaces the background one.
		go func() {
			rel, err := l.Acquire(t.Context(), Critical)
			if err == nil {
				rel(Success)
			}
			errs <- err
		}()
		synctest.Wait()
		var se *ShedError
		if err := <-errs; !errors.As(err, &se) || se.Class != Background || se.Reason != ReasonQueueFull {
			t.Fatalf("first refusal = %v, want background queue_full", err)
		}
		// A background newcomer finds nothing lower to displace.
		if _, err := l.Acquire(t.Context(), Background); !errors.As(err, &se) || se.Reason != ReasonQueueFull {
			t.Fatalf("background into a full queue: %v, want queue_full", err)
		}
		hold(Success)
		for range 2 {
			if err := <-errs; err != nil {
				t.Errorf("queued request: %v", err)
			}
		}
	})
}

func TestCanceledWaiterLeavesTheQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := mustLimiter(t, fixedLimit(1))
		hold, _ := l.Acquire(t.Context(), Critical)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() {
			_, err := l.Acquire(ctx, Browse)
			done <- err
		}()
		synctest.Wait()
		if l.Queued() != 1 {
			t.Fatalf("queued = %d, want 1", l.Queued())
		}
		cancel() // the client went away
		var se *ShedError
		if err := <-done; !errors.As(err, &se) || se.Reason != ReasonCanceled {
			t.Fatalf("canceled waiter: %v, want canceled", err)
		}
		if l.Queued() != 0 {
			t.Fatalf("queued after cancel = %d, want 0", l.Queued())
		}
		hold(Success)
		hold(Success) // a second release is a no-op
		if l.InFlight() != 0 {
			t.Fatalf("in flight = %d, want 0", l.InFlight())
		}
	})
}

func TestStandingQueueGivesLowClassesOnlyTheTarget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := mustLimiter(t, fixedLimit(1))
		hold, _ := l.Acquire(t.Context(), Critical)
		// A patient high-priority waiter makes the queue stand.
		go func() {
			if rel, err := l.Acquire(t.Context(), High); err == nil {
				rel(Success)
			}
		}()
		synctest.Wait()
		time.Sleep(200 * time.Millisecond) // longer than QueueInterval
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		defer cancel()
		start := time.Now()
		_, err := l.Acquire(ctx, Browse)
		var se *ShedError
		if !errors.As(err, &se) || se.Reason != ReasonQueueTimeout {
			t.Fatalf("browse in a standing queue: %v, want queue_timeout", err)
		}
		if waited := time.Since(start); waited != 5*time.Millisecond {
			t.Fatalf("browse waited %v in a standing queue, want the 5ms target", waited)
		}
		hold(Success)
	})
}
