package jobs_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/surge-commerce/surge/internal/admission"
	"github.com/surge-commerce/surge/internal/jobs"
)

// The pressure signal reads what an API replica publishes: shedding since
// the last look, queued requests, or the CPU guard turning browse away.
func TestMetricsPressure(t *testing.T) {
	var mu sync.Mutex
	shed, queued, cpu := 5.0, 0.0, 1.0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(w, "# TYPE surge_admission_shed_total counter\nsurge_admission_shed_total{class=\"browse\"} %g\nsurge_admission_shed_total{class=\"high\"} 0\n", shed)
		fmt.Fprintf(w, "# TYPE surge_admission_queued gauge\nsurge_admission_queued %g\n", queued)
		fmt.Fprintf(w, "# TYPE surge_admission_cpu_share gauge\nsurge_admission_cpu_share %g\n", cpu)
	}))
	defer srv.Close()
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	p := &jobs.MetricsPressure{URLs: []string{gone.URL, srv.URL}, Every: time.Nanosecond}
	ctx := context.Background()
	for _, step := range []struct {
		name              string
		shed, queued, cpu float64
		want              bool
	}{
		{"first look, calm", 5, 0, 1, false},
		{"shed since", 7, 0, 1, true},
		{"no new shedding", 7, 0, 1, false},
		{"queued", 7, 3, 1, true},
		{"cpu guard", 7, 0, 0.5, true},
		{"calm again", 7, 0, 1, false},
	} {
		mu.Lock()
		shed, queued, cpu = step.shed, step.queued, step.cpu
		mu.Unlock()
		if got := p.Pressured(ctx); got != step.want {
			t.Errorf("%s: Pressured = %v, want %v", step.name, got, step.want)
		}
	}
}

// The names the signal reads are the ones admission control publishes.
func TestPressureReadsAdmissionMetrics(t *testing.T) {
	adm, err := admission.New(admission.Config{})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	if err := adm.Register(reg); err != nil {
		t.Fatal(err)
	}
	// The shed counter is labelled; count one so it is published.
	h := adm.Wrap(admission.Browse, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, f := range fams {
		have[f.GetName()] = true
	}
	for _, name := range []string{"surge_admission_queued", "surge_admission_cpu_share"} {
		if !have[name] {
			t.Errorf("admission publishes no %s", name)
		}
	}
}
