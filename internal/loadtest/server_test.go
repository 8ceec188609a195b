package loadtest

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeServer exports metrics that grow at a known rate: every 100 ms,
// 0.5 CPU-seconds, 10 browse sheds, 4 page cache hits and 1 miss, 20
// requests of which 2 answered 503; the line holds 7. Its /readyz fails
// while failing is set.
type fakeServer struct {
	born    time.Time
	scrapes atomic.Int64
	failing atomic.Bool
}

func (f *fakeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/livez":
	case "/readyz":
		if f.failing.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
		}
	case "/metrics":
		f.scrapes.Add(1)
		n := time.Since(f.born).Seconds() * 10
		fmt.Fprintf(w, `# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total %g
# TYPE surge_admission_shed_total counter
surge_admission_shed_total{class="browse",reason="cpu"} %g
surge_admission_shed_total{class="critical",reason="cpu"} 0
# TYPE surge_page_cache_requests_total counter
surge_page_cache_requests_total{result="hit"} %g
surge_page_cache_requests_total{result="miss"} %g
surge_page_cache_requests_total{result="stale"} 0
# TYPE surge_waitroom_waiting gauge
surge_waitroom_waiting{drop="d1"} 7
# TYPE surge_admission_sched_delay_seconds gauge
surge_admission_sched_delay_seconds 0.012
# TYPE go_sched_latencies_seconds histogram
go_sched_latencies_seconds_bucket{le="0.001"} %g
go_sched_latencies_seconds_bucket{le="+Inf"} %g
go_sched_latencies_seconds_sum %g
go_sched_latencies_seconds_count %g
# TYPE http_server_request_duration_seconds histogram
http_server_request_duration_seconds_bucket{http_request_method="GET",http_route="/",http_response_status_code="200",le="+Inf"} %g
http_server_request_duration_seconds_sum{http_request_method="GET",http_route="/",http_response_status_code="200"} 1
http_server_request_duration_seconds_count{http_request_method="GET",http_route="/",http_response_status_code="200"} %g
http_server_request_duration_seconds_bucket{http_request_method="GET",http_route="/",http_response_status_code="503",le="+Inf"} %g
http_server_request_duration_seconds_sum{http_request_method="GET",http_route="/",http_response_status_code="503"} 1
http_server_request_duration_seconds_count{http_request_method="GET",http_route="/",http_response_status_code="503"} %g
`, 0.5*n, 10*n, 4*n, n, 100*n, 100*n, 0.2*n, 100*n, 18*n, 18*n, 2*n, 2*n)
	default:
		http.NotFound(w, r)
	}
}

func TestMonitorScrapesAndProbes(t *testing.T) {
	fake := &fakeServer{born: time.Now()}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	start := time.Now()
	m := StartMonitor(context.Background(), MonitorConfig{Scrape: []string{srv.URL + "/metrics"},
		Probes: []string{srv.URL + "/livez", srv.URL + "/readyz"}, Interval: 100 * time.Millisecond,
		ProbeEvery: 50 * time.Millisecond, Start: start})
	// Wait, without sleeping on a guess, for the monitor to have read
	// the metrics a few times; then fail readiness for a few probes.
	waitFor(t, func() bool { return fake.scrapes.Load() >= 4 })
	fake.failing.Store(true)
	n := fake.scrapes.Load()
	waitFor(t, func() bool { return fake.scrapes.Load() >= n+2 })
	fake.failing.Store(false)
	srvRes, probes := m.Stop()

	if srvRes == nil || len(srvRes.Timeline) < 4 || srvRes.ScrapeErrors != 0 {
		t.Fatalf("server result %+v", srvRes)
	}
	shed := srvRes.Shed["browse"]
	if got := srvRes.CPUSeconds; !near(got*20, shed) {
		t.Errorf("CPU seconds %v, browse sheds %v: want 1 to 20", got, shed)
	}
	if srvRes.PageCache != 0.8 || srvRes.ObjectCache != -1 {
		t.Errorf("page cache hit ratio %v (want 0.8), object cache %v (want -1: not exported)", srvRes.PageCache, srvRes.ObjectCache)
	}
	if shed < 40 || srvRes.Shed["critical"] != 0 {
		t.Errorf("shed %v", srvRes.Shed)
	}
	for i, p := range srvRes.Timeline {
		// 0.5 CPU-s, 10 sheds, 20 requests and 2 errors per 100 ms of the
		// server's clock. Each point divides by the monitor's own clock
		// between two readings, which a busy machine stretches or shrinks
		// against the server's, so a point's rates are judged against each
		// other (their ratios do not depend on the interval), not alone.
		if p.Requests <= 0 || !sameRate(p.CPU/p.Requests, 0.025) || !sameRate(p.Shed["browse"]/p.Requests, 0.5) ||
			!sameRate(p.Errors/p.Requests, 0.1) || p.Line != 7 || p.Guard != 12 || !sameRate(p.Sched, 2) {
			t.Errorf("point %d: %+v", i, p)
		}
		if i > 0 && p.T <= srvRes.Timeline[i-1].T {
			t.Errorf("point %d at %v after %v", i, p.T, srvRes.Timeline[i-1].T)
		}
	}
	if v, ok := srvRes.Delta(selector{name: "surge_admission_shed_total", labels: map[string]string{"class": "critical"}}); !ok || v != 0 {
		t.Errorf("critical sheds %v %v", v, ok)
	}
	if len(probes) != 2 {
		t.Fatalf("probes %+v", probes)
	}
	live, ready := probes[0], probes[1]
	if live.Checks < 5 || live.Failures != 0 || !strings.HasPrefix(live.String(), "pass  "+srv.URL+"/livez") {
		t.Errorf("livez: %+v %s", live, live)
	}
	if ready.Failures == 0 || len(ready.FailedAt) == 0 || ready.FailedAt[0].What != "status 503" ||
		!strings.HasPrefix(ready.String(), "FAIL  "+srv.URL+"/readyz") {
		t.Errorf("readyz: %+v %s", ready, ready)
	}
	r := &Result{Probes: probes, Total: newStats("total")}
	if r.Passed() {
		t.Error("a run whose readiness probe failed passed")
	}
}

func TestProbeTimesOut(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(block)
	m := StartMonitor(context.Background(), MonitorConfig{Probes: []string{srv.URL + "/livez"},
		ProbeEvery: 20 * time.Millisecond, ProbeTimeout: 30 * time.Millisecond})
	waitFor(t, func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.probes[0].res.Failures >= 2
	})
	_, probes := m.Stop()
	if probes[0].Failures < 2 || !strings.Contains(probes[0].FailedAt[0].What, "Timeout") {
		t.Errorf("%+v", probes[0])
	}
}

// within reports whether v is within a third of want: a rate over an
// interval the scheduler stretched or cut short.
// sameRate: equal but for the six digits the exposition format prints.
func sameRate(v, want float64) bool { return math.Abs(v-want) <= 1e-3*want }

// waitFor waits for cond with a deadline.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
