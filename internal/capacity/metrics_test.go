package capacity

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"math"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/surge-commerce/surge/internal/telemetry"
)

// exposition gathers reg in the text format a replica's /metrics serves.
func exposition(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	for _, f := range fams {
		if _, err := expfmt.MetricFamilyToText(&b, f); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

// TestParseMetrics reads what a replica's registry exposes: the process
// and runtime metrics, the build info, requests by route and status, and
// the pipeline's counters summed over their labels.
func TestParseMetrics(t *testing.T) {
	reg := telemetry.NewRegistry()
	if err := telemetry.RegisterBuildInfo(reg, "v1.4.0"); err != nil {
		t.Fatal(err)
	}
	hm, err := telemetry.NewHTTPMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		hm.Observe("GET", "GET /products/{slug}", "http", 200, time.Millisecond)
	}
	hm.Observe("GET", "GET /products/{slug}", "http", 503, time.Millisecond)
	hm.Observe("POST", "POST /api/v1/checkout", "https", 201, 40*time.Millisecond)
	hm.Observe("GET", "GET /{$}", "http", 304, time.Millisecond)
	published := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "surge_events_published_total", Help: "h"}, []string{"subject"})
	processed := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "surge_events_processed_total", Help: "h"}, []string{"consumer", "result"})
	reg.MustRegister(published, processed)
	published.WithLabelValues("surge.order.created").Add(7)
	published.WithLabelValues("surge.order.paid").Add(5)
	processed.WithLabelValues("payment-capture", "ok").Add(4)
	processed.WithLabelValues("stock-commit", "retry").Add(2)

	text := exposition(t, reg)
	s, err := ParseMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if s.Routes["GET /products/{slug}"] != 4 || s.Errors["GET /products/{slug}"] != 1 || s.Routes["POST /api/v1/checkout"] != 1 ||
		s.Routes["GET /{$}"] != 1 || s.Errors["GET /{$}"] != 0 || len(s.Routes) != 3 {
		t.Errorf("routes %v, errors %v", s.Routes, s.Errors)
	}
	if s.Events != 12 || s.Processed != 6 {
		t.Errorf("events published %g, processed %g; want 12 and 6", s.Events, s.Processed)
	}
	if s.Version != "v1.4.0" || s.GoVersion != runtime.Version() {
		t.Errorf("version %q, Go %q", s.Version, s.GoVersion)
	}
	if s.MaxProcs != float64(runtime.GOMAXPROCS(0)) {
		t.Errorf("GOMAXPROCS %g, want %d", s.MaxProcs, runtime.GOMAXPROCS(0))
	}
	// The process collector's figures, as the exposition said them.
	for name, got := range map[string]float64{"process_cpu_seconds_total": s.CPU, "process_open_fds": s.FDs,
		"process_resident_memory_bytes": s.RSS, "go_memstats_heap_alloc_bytes": s.HeapLive} {
		want := sample(t, text, name)
		if got != want || (want <= 0 && name != "process_cpu_seconds_total") {
			t.Errorf("%s: parsed %g, exposition says %g", name, got, want)
		}
	}
	if targetVersion(s) != "v1.4.0 ("+runtime.Version()+")" {
		t.Errorf("target version %q", targetVersion(s))
	}
}

func sample(t *testing.T, text, name string) float64 {
	t.Helper()
	for _, l := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			var f float64
			if _, err := fmt.Sscan(v, &f); err != nil {
				t.Fatalf("%s: %v", l, err)
			}
			return f
		}
	}
	t.Fatalf("no %s in the exposition", name)
	return 0
}

// A server of an older build: the route label carried the method, there
// is no build info and no pipeline. Broken input is an error, not a panic.
func TestParseMetricsOlderAndBroken(t *testing.T) {
	s, err := ParseMetrics(strings.NewReader(`# TYPE http_server_request_duration_seconds histogram
http_server_request_duration_seconds_bucket{http_route="GET /search",http_response_status_code="200",le="+Inf"} 9
http_server_request_duration_seconds_sum{http_route="GET /search",http_response_status_code="200"} 0.3
http_server_request_duration_seconds_count{http_route="GET /search",http_response_status_code="200"} 9
go_info{version="go1.25.1"} 1
`))
	if err != nil {
		t.Fatal(err)
	}
	if s.Routes["GET /search"] != 9 || s.Version != "" || s.GoVersion != "go1.25.1" || s.Events != 0 {
		t.Errorf("%+v", s)
	}
	if v := targetVersion(s); !strings.HasPrefix(v, "unknown") || !strings.Contains(v, "go1.25.1") {
		t.Errorf("target version %q", v)
	}
	for _, bad := range []string{"process_cpu_seconds_total one\n", "# TYPE x counter\nx{a=\"b\" 1\n"} {
		if _, err := ParseMetrics(strings.NewReader(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

// cpuProfile builds a CPU profile as the Go runtime writes one (gzipped
// protobuf, samples/count and cpu/nanoseconds), each sample a stack of
// functions listed leaf first and worth ms milliseconds.
func cpuProfile(t *testing.T, stacks map[string]int64) []byte {
	t.Helper()
	p := &profile.Profile{
		SampleType: []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}},
		PeriodType: &profile.ValueType{Type: "cpu", Unit: "nanoseconds"}, Period: 10e6,
	}
	funcs := map[string]*profile.Function{}
	for stack, ms := range stacks {
		var locs []*profile.Location
		for _, name := range strings.Split(stack, ";") {
			f := funcs[name]
			if f == nil {
				f = &profile.Function{ID: uint64(len(funcs) + 1), Name: name, SystemName: name}
				funcs[name] = f
				p.Function = append(p.Function, f)
			}
			l := &profile.Location{ID: uint64(len(p.Location) + 1), Line: []profile.Line{{Function: f}}}
			p.Location = append(p.Location, l)
			locs = append(locs, l)
		}
		p.Sample = append(p.Sample, &profile.Sample{Location: locs, Value: []int64{ms / 10, ms * 1e6}})
	}
	var b bytes.Buffer
	if err := p.Write(&b); err != nil { // Write gzips
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestSplitProfile: a sample belongs to the engine nearest its leaf
// (SQLite called by the pipeline is database work), else to the worker
// when the order pipeline is on its stack, else to the API; the garbage
// collector's background work is left out, so it is shared in proportion.
func TestSplitProfile(t *testing.T) {
	b := cpuProfile(t, map[string]int64{
		"net/http.(*conn).serve;runtime.goexit": 400,
		"modernc.org/sqlite/lib.sqlite3VdbeExec;modernc.org/sqlite.(*conn).exec;github.com/surge-commerce/surge/internal/sqlitestore.(*Store).PlaceOrder;net/http.(*conn).serve": 200,
		"modernc.org/sqlite/lib.sqlite3BtreeInsert;github.com/surge-commerce/surge/internal/pipeline.(*Runner).handle":                                                           100,
		"encoding/json.Marshal;github.com/surge-commerce/surge/internal/pipeline.(*Runner).handle":                                                                               100,
		"github.com/nats-io/nats-server/v2/server.(*client).processInboundMsg;github.com/nats-io/nats-server/v2/server.(*client).readLoop":                                       200,
		"runtime.scanobject;runtime.gcDrain;runtime.gcBgMarkWorker":                                                                                                              500,
	})
	s, err := SplitProfile(b)
	if err != nil {
		t.Fatal(err)
	}
	want := Split{API: 0.4, Database: 0.3, Worker: 0.1, NATS: 0.2, Samples: 5, CPU: 1}
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	if !near(s.API, want.API) || !near(s.Database, want.Database) || !near(s.Worker, want.Worker) || !near(s.NATS, want.NATS) ||
		s.Samples != want.Samples || !near(s.CPU, want.CPU) {
		t.Errorf("split %+v, want %+v", s, want)
	}
	// The same bytes ungzipped read the same.
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	var raw bytes.Buffer
	if _, err := raw.ReadFrom(zr); err != nil {
		t.Fatal(err)
	}
	if s2, err := SplitProfile(raw.Bytes()); err != nil || s2 != s {
		t.Errorf("raw protobuf: %+v, %v", s2, err)
	}
	// Two profiles merge weighed by the CPU each covers.
	api := cpuProfile(t, map[string]int64{"net/http.(*conn).serve": 3000})
	s3, err := SplitProfile(api)
	if err != nil {
		t.Fatal(err)
	}
	m := s.Merge(s3)
	if !near(m.API, (0.4*1+1*3)/4) || !near(m.NATS, 0.2/4) || m.Samples != 6 || !near(m.CPU, 4) {
		t.Errorf("merged %+v", m)
	}
	if z := (Split{}).Merge(Split{}); z.CPU != 0 || z.API != 0 {
		t.Errorf("empty merge %+v", z)
	}
	if _, err := SplitProfile([]byte("not a profile")); err == nil {
		t.Error("garbage accepted")
	}
}
