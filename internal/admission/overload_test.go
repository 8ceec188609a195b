package admission

import (
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// spin computes SHA-256 rounds for d of wall time: CPU-bound work whose
// cost in time does not depend on how fast this machine is or how busy it
// is with other work, so the server's capacity is the same on every run.
func spin(d time.Duration) byte {
	var sum [32]byte
	for end := time.Now().Add(d); time.Now().Before(end); {
		for range 64 {
			sum = sha256.Sum256(sum[:])
		}
	}
	return sum[0]
}

// TestOverloadKeepsCheckoutServing offers a CPU-bound server about three
// times what it can do, mostly browse and background with some checkout,
// for a couple of seconds, and checks the outcome classes got relative to
// each other: checkout keeps succeeding, background is shed. It asserts no
// absolute latency, so a slow or noisy machine changes the numbers, not
// the verdict.
func TestOverloadKeepsCheckoutServing(t *testing.T) {
	if testing.Short() {
		t.Skip("overload run takes a few seconds")
	}
	// The server has one "core": a semaphore of one around 20ms of CPU
	// work. Its capacity is 50 requests/s on any machine, latency grows
	// with concurrency exactly as on a saturated CPU, and on a two-core
	// machine the other core is left to the load generator and the race
	// detector.
	const work = 20 * time.Millisecond
	core := make(chan struct{}, 1)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		core <- struct{}{}
		b := spin(work)
		<-core
		fmt.Fprintf(w, "ok %d", b)
	})
	a := mustAdmission(t, Config{
		Deadlines: [NumClasses]time.Duration{Background: 500 * time.Millisecond, Browse: time.Second, High: 1500 * time.Millisecond, Critical: 3 * time.Second},
	})
	mux := http.NewServeMux()
	for c := range Class(NumClasses) {
		mux.Handle("/"+c.String(), a.Wrap(c, handler))
	}
	srv := httptest.NewServer(mux)
	defer srv.Close()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 512}}
	defer client.CloseIdleConnections()

	// Open model: arrivals on a schedule, whether or not earlier requests
	// have finished. 3x capacity: 150 requests/s for 3s, as 10% critical
	// (a third of capacity), 50% browse, 40% background.
	const rate, run = 150, 3 * time.Second
	mix := []Class{Critical, Browse, Background, Browse, Background, Browse, Background, Browse, Background, Browse}
	var mu sync.Mutex
	var offered, ok, shed, other [NumClasses]int
	var wg sync.WaitGroup
	ticker := time.NewTicker(5 * time.Millisecond)
	defer ticker.Stop()
	start, sent := time.Now(), 0
	for now := range ticker.C {
		elapsed := now.Sub(start)
		if elapsed >= run {
			break
		}
		// Catch up on every arrival due by now, so a late tick delays
		// arrivals but never drops them.
		for due := int(elapsed.Seconds() * rate); sent < due; sent++ {
			c := mix[sent%len(mix)]
			wg.Go(func() {
				status := 0
				res, err := client.Get(srv.URL + "/" + c.String())
				if err == nil {
					_, _ = io.Copy(io.Discard, res.Body)
					res.Body.Close()
					status = res.StatusCode
					if status == http.StatusServiceUnavailable && res.Header.Get("Retry-After") == "" {
						t.Error("503 without Retry-After")
					}
				}
				mu.Lock()
				defer mu.Unlock()
				offered[c]++
				switch status {
				case http.StatusOK:
					ok[c]++
				case http.StatusServiceUnavailable:
					shed[c]++
				default:
					other[c]++
				}
			})
		}
	}
	wg.Wait()

	ratio := func(c Class) float64 { return float64(ok[c]) / float64(max(1, offered[c])) }
	for _, c := range []Class{Critical, Browse, Background} {
		t.Logf("%-10s offered %4d ok %4d (%.3f) shed %4d other %d", c, offered[c], ok[c], ratio(c), shed[c], other[c])
	}
	t.Logf("limit %d, min RTT %v", a.Limiter().Limit(), a.Limiter().MinRTT())
	t.Logf("shed: %v", shedCounts(a))
	if r := ratio(Critical); r < 0.95 {
		t.Errorf("critical success ratio %.3f, want >= 0.95", r)
	}
	if shed[Background] == 0 {
		t.Error("nothing in the background class was shed at 3x capacity")
	}
	if ratio(Background) > ratio(Browse) || ratio(Browse) > ratio(Critical) {
		t.Errorf("success ratios out of priority order: critical %.3f, browse %.3f, background %.3f",
			ratio(Critical), ratio(Browse), ratio(Background))
	}
}

// shedCounts reads surge_admission_shed_total back as class/reason: count.
func shedCounts(a *Admission) map[string]float64 {
	out := map[string]float64{}
	for c := range Class(NumClasses) {
		for i, r := range reasons {
			var m dto.Metric
			_ = a.m.shed[c][i].(prometheus.Metric).Write(&m)
			if v := m.GetCounter().GetValue(); v > 0 {
				out[c.String()+"/"+string(r)] = v
			}
		}
	}
	return out
}
