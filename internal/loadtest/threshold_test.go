package loadtest

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestParseThreshold(t *testing.T) {
	tests := []struct {
		in      string
		step    string
		metric  string
		op      string
		value   float64
		wantErr string
	}{
		{"p99<300ms", "", "p99", "<", 300, ""},
		{"p99.9 <= 1s", "", "p99.9", "<=", 1000, ""},
		{"max<2.5s", "", "max", "<", 2500, ""},
		{"avg<100ms", "", "mean", "<", 100, ""},
		{"errors<0.1%", "", "errors", "<", 0.1, ""},
		{"errors<0.001", "", "errors", "<", 0.1, ""},
		{"rps>=950", "", "rps", ">=", 950, ""},
		{"rate>10/s", "", "rps", ">", 10, ""},
		{"requests>0", "", "requests", ">", 0, ""},
		{"checkout:p95<800ms", "checkout", "p95", "<", 800, ""},
		{"browse/product:errors<1%", "browse/product", "errors", "<", 1, ""},
		{"", "", "", "", 0, "empty"},
		{"p99", "", "", "", 0, "want metric<value"},
		{"p99<", "", "", "", 0, "missing value"},
		{"p99<300", "", "", "", 0, "not a duration"},
		{"p101<1s", "", "", "", 0, "unknown metric"},
		{"latency<1s", "", "", "", 0, "unknown metric"},
		{"errors<lots", "", "", "", 0, "not a rate"},
		{":p99<1s", "", "", "", 0, "empty step"},
		{"<1s", "", "", "", 0, "want metric<value"},
	}
	for _, tt := range tests {
		th, err := ParseThreshold(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%q: error %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		if th.Step != tt.step || th.Metric != tt.metric || th.Op != tt.op || th.Value != tt.value {
			t.Errorf("%q: got step %q metric %q op %q value %v", tt.in, th.Step, th.Metric, th.Op, th.Value)
		}
	}
}

// sampleResult has two steps: "home", 100 requests at 10..1000ms with no
// errors, and "checkout", 10 requests at 500ms of which 2 failed.
func sampleResult() *Result {
	rec := newRecorder([]string{"browse/home", "buy/checkout"}, time.Unix(0, 0), time.Second)
	at := time.Unix(1, 0)
	for i := 1; i <= 100; i++ {
		rec.record(0, at, at, at.Add(time.Duration(i)*10*time.Millisecond), 200, "", 10)
	}
	for i := range 10 {
		failure := ""
		if i < 2 {
			failure = "status 503"
		}
		rec.record(1, at, at, at.Add(500*time.Millisecond), 200, failure, 10)
	}
	r := rec.result()
	r.Duration = 10
	return r
}

func TestEvaluateThresholds(t *testing.T) {
	r := sampleResult()
	tests := []struct {
		expr string
		pass bool
	}{
		{"p50<600ms", true},   // total: 110 values, p50 = 500ms
		{"p50<500ms", false},  // exactly 500ms is not below
		{"p50<=501ms", true},  // 500ms, reported as the top of its 0.1% bucket
		{"home:p99<1s", true}, // 990ms
		{"home:p99<900ms", false},
		{"home:max<=1001ms", true},
		{"checkout:p99<501ms", true},
		{"checkout:errors<10%", false}, // 20%
		{"checkout:errors<=20%", true},
		{"buy/checkout:errors<25%", true},
		{"errors<2%", true}, // 2 of 110 = 1.8%
		{"errors<1%", false},
		{"rps>=11", true}, // 110 over 10s
		{"rps>11", false},
		{"requests>=110", true},
		{"home:mean<510ms", true}, // 505ms
		{"nosuchstep:p99<1s", false},
	}
	for _, tt := range tests {
		th, err := ParseThreshold(tt.expr)
		if err != nil {
			t.Fatal(err)
		}
		if got := th.Eval(r); got.Pass != tt.pass {
			t.Errorf("%s: pass=%v (actual %v%s %s), want %v", tt.expr, got.Pass, got.Actual, got.Unit, got.Note, tt.pass)
		}
	}
	ths, _ := ParseThresholds([]string{"p99<2s", "errors<1%"})
	if Evaluate(r, ths) || r.Passed() || len(r.Thresholds) != 2 || !r.Thresholds[0].Pass {
		t.Errorf("Evaluate: %+v", r.Thresholds)
	}
	if !strings.HasPrefix(r.Thresholds[1].String(), "FAIL  errors<1% (actual 1.818") {
		t.Errorf("String: %q", r.Thresholds[1].String())
	}
}

func TestEmptyStepFailsThreshold(t *testing.T) {
	rec := newRecorder([]string{"home"}, time.Unix(0, 0), time.Second)
	r := rec.result()
	th, _ := ParseThreshold("p99<1s")
	if got := th.Eval(r); got.Pass || got.Note != "no requests" {
		t.Errorf("threshold on no requests: %+v", got)
	}
}

// TestResultJSONRoundTrip encodes a result and merges two decoded copies:
// counts double and percentiles stay put.
func TestResultJSONRoundTrip(t *testing.T) {
	r := sampleResult()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var a, c Result
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	m := Merge(&a, &c)
	if m.Total.Requests != 220 || m.Total.Hist.Count() != 220 || m.Total.Errors != 4 {
		t.Errorf("merged total %d requests (%d in histogram), %d errors", m.Total.Requests, m.Total.Hist.Count(), m.Total.Errors)
	}
	if m.Total.Latency.P50 != r.Total.Latency.P50 || m.Total.Latency.P99 != r.Total.Latency.P99 {
		t.Errorf("merged latency %+v, single %+v", m.Total.Latency, r.Total.Latency)
	}
	home, _ := m.Step("home")
	if home.Requests != 200 || home.Statuses["200"] != 200 {
		t.Errorf("merged home: %d requests, statuses %v", home.Requests, home.Statuses)
	}
	if len(m.Timeline) != len(r.Timeline) || m.Timeline[1].Requests != 2*r.Timeline[1].Requests {
		t.Errorf("merged timeline %d points", len(m.Timeline))
	}
}

func TestParseRehearsalThresholds(t *testing.T) {
	tests := []struct {
		in      string
		metric  string
		op      string
		value   float64
		wantErr string
	}{
		{"server_errors<=0.01%", "server_errors", "<=", 0.01, ""},
		{"server_errors<1", "server_errors", "<", 1, ""},
		{"checkout:503<1", "503", "<", 1, ""},
		{"5xx==0", "5xx", "==", 0, ""},
		{"sold==100%", "sold", "==", 100, ""},
		{`delta(surge_admission_shed_total{class="critical"})<1`, "delta", "<", 1, ""},
		{`delta(surge_admission_shed_total{class="critical",reason="cpu"})==0`, "delta", "==", 0, ""},
		{"p99@with-job<=1.2*p99@alone", "p99", "<=", 1.2, ""},
		{"server_errors@peak<=0.01%", "server_errors", "<=", 0.01, ""},
		{"checkout:p99@peak<1s", "", "", 0, "leave out the step"},
		{"browse:sold==100%", "", "", 0, "leave out the step"},
		{"p99@a<=1.2*errors@b", "", "", 0, "compare p99 with p99"},
		{"p99@a<=x*p99@b", "", "", 0, "want a factor"},
		{"600<1", "", "", 0, "unknown metric"},
		{"5x<1", "", "", 0, "unknown metric"},
		{`delta(1bad)<1`, "", "", 0, "not a metric name"},
		{`delta(m{class=critical})<1`, "", "", 0, "want labels"},
		{"5xx<lots", "", "", 0, "not a count or a share"},
		{"p99@bad/phase<1s", "", "", 0, "phase"},
	}
	for _, tt := range tests {
		th, err := ParseThreshold(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%q: error %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		if th.Metric != tt.metric || th.Op != tt.op || th.Value != tt.value {
			t.Errorf("%q: metric %q op %q value %v", tt.in, th.Metric, th.Op, th.Value)
		}
	}
}

// rehearsalResult: 1,000 requests, 990 answered 200, 6 answered 503 (all
// on checkout), 4 not answered; a drop of 10 units of which buyers
// bought 10; two phases, the second slower; one scraped counter.
func rehearsalResult() *Result {
	rec := newRecorder([]string{"browse/home", "buy/checkout"}, time.Unix(0, 0), time.Second)
	for i := range 1000 {
		at := time.Unix(int64(i/100), 0) // 100 a second for 10 s
		lat := 10 * time.Millisecond
		if i >= 500 {
			lat = 30 * time.Millisecond // the second half is slower
		}
		step, status, failure := 0, 200, ""
		switch {
		case i%100 == 7 && i < 600:
			step, status, failure = 1, 503, "status 503"
		case i%250 == 3:
			status, failure = 0, "timeout"
		}
		rec.record(step, at, at, at.Add(lat), status, failure, 0)
	}
	r := rec.result()
	r.Duration = 10
	r.Phases = []Phase{{"alone", 0, 5}, {"with-job", 5, 10}}
	r.Drop = &DropResult{Buyers: 100, Bought: 10, Units: 10, Allocated: 10}
	r.Server = &ServerResult{Targets: []string{"x"}, Counters: []Series{
		{Name: "surge_admission_shed_total", Labels: map[string]string{"class": "browse", "reason": "cpu"}, Delta: 12},
		{Name: "surge_admission_shed_total", Labels: map[string]string{"class": "critical", "reason": "cpu"}, Delta: 0},
	}}
	return r
}

func TestEvaluateRehearsalThresholds(t *testing.T) {
	r := rehearsalResult()
	tests := []struct {
		expr   string
		pass   bool
		actual float64
	}{
		{"server_errors<=1%", true, 1},              // 6 + 4 of 1000
		{"server_errors<1%", false, 1},              //
		{"server_errors<11", true, 10},              // a count
		{"5xx<1", false, 6},                         //
		{"checkout:503<1", false, 6},                // checkout was shed
		{"home:503<1", true, 0},                     //
		{"home:5xx==0%", true, 0},                   //
		{"sold==100%", true, 100},                   //
		{"sold==10", true, 10},                      //
		{"sold>10", false, 10},                      //
		{"server_errors@alone<=1.4%", true, 1.4},    // 5 shed + 2 timeouts of 500
		{"server_errors@with-job<=0.6%", true, 0.6}, // 1 shed + 2 timeouts
		{"p99@with-job<=1.2*p99@alone", false, 30},  // 30ms against 1.2 x 10ms
		{"p99@with-job<=3.1*p99@alone", true, 30},
		{"rps@alone==100", true, 100},
		{`delta(surge_admission_shed_total{class="critical"})<1`, true, 0},
		{`delta(surge_admission_shed_total{class="browse"})==12`, true, 12},
		{`delta(surge_admission_shed_total)==12`, true, 12},
		{`delta(surge_nothing_total)<1`, false, 0},
		{"p99@nosuch<1s", false, 0},
	}
	for _, tt := range tests {
		th, err := ParseThreshold(tt.expr)
		if err != nil {
			t.Fatalf("%s: %v", tt.expr, err)
		}
		got := th.Eval(r)
		if got.Pass != tt.pass || (got.Note == "" && !near(got.Actual, tt.actual)) {
			t.Errorf("%s: pass=%v actual %v%s (%s), want pass=%v actual %v", tt.expr, got.Pass, got.Actual, got.Unit, got.Note, tt.pass, tt.actual)
		}
	}
	noDrop := rehearsalResult()
	noDrop.Drop.Allocated = 0
	th, _ := ParseThreshold("sold==100%")
	if got := th.Eval(noDrop); got.Pass || !strings.Contains(got.Note, "units are unknown") {
		t.Errorf("sold of a drop of unknown size: %+v", got)
	}
	noDrop.Server = nil
	th, _ = ParseThreshold("delta(surge_admission_shed_total)<1")
	if got := th.Eval(noDrop); got.Pass || !strings.Contains(got.Note, "--scrape") {
		t.Errorf("delta without scraping: %+v", got)
	}
}

func near(a, b float64) bool { return a-b < 0.2 && b-a < 0.2 }

// TestShareThresholdTooFewRequests: a bound on a share of requests that
// the run is too small to allow one of (0.01% of 3,934) does not fail on
// exactly one such request, and says why; with two, or in a run large
// enough, it fails as before.
func TestShareThresholdTooFewRequests(t *testing.T) {
	run := func(requests, shed int) *Result {
		s := newStats("browse")
		for i := range requests {
			code := "200"
			if i < shed {
				code = "503"
			}
			s.Statuses[code]++
			s.Requests++
			s.Hist.Record(time.Millisecond)
		}
		return &Result{Steps: []*Stats{s}, Total: s}
	}
	for _, tc := range []struct {
		expr           string
		requests, shed int
		pass           bool
		note           string
	}{
		{"server_errors<=0.01%", 3934, 1, true, "not judged: 1 of 3934 requests, and 0.01% allows one only from 10000 on"},
		{"server_errors<=0.01%", 3934, 2, false, ""},
		{"server_errors<=0.01%", 3934, 0, true, ""},
		{"server_errors<=0.01%", 10000, 1, true, ""},
		{"server_errors<=0.01%", 20000, 3, false, ""},
		{"503<=0.1%", 500, 1, true, "not judged: 1 of 500 requests, and 0.1% allows one only from 1000 on"},
		{"503<1", 500, 1, false, ""}, // a count, not a share: never one is never one
		{"server_errors>=0.01%", 500, 0, false, ""},
	} {
		th, err := ParseThreshold(tc.expr)
		if err != nil {
			t.Fatal(err)
		}
		got := th.Eval(run(tc.requests, tc.shed))
		if got.Pass != tc.pass || got.Note != tc.note {
			t.Errorf("%s with %d of %d: %s, want pass=%v note %q", tc.expr, tc.shed, tc.requests, got, tc.pass, tc.note)
		}
	}
}

// TestRelativeLatencyWithinSendLag: a latency bound relative to another
// phase, missed by less than the generator's own send lag p99, is not
// judged (the note says so); missed by more, it fails. 30 ms against
// 1.2 x 10 ms is 18 ms over.
func TestRelativeLatencyWithinSendLag(t *testing.T) {
	th, err := ParseThreshold("p99@with-job<=1.2*p99@alone")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		lag  float64
		pass bool
	}{{0, false}, {1.6, false}, {17.9, false}, {18.5, true}, {40, true}} {
		r := rehearsalResult()
		r.SendLag.P99 = tc.lag
		got := th.Eval(r)
		if got.Pass != tc.pass || tc.pass != strings.Contains(got.Note, "not judged: over by 18") {
			t.Errorf("send lag p99 %vms: %s, want pass=%v", tc.lag, got, tc.pass)
		}
	}
	// Not for absolute bounds, which the lag is part of.
	abs, _ := ParseThreshold("p99@with-job<29ms")
	r := rehearsalResult()
	r.SendLag.P99 = 40
	if got := abs.Eval(r); got.Pass {
		t.Errorf("absolute bound passed within the lag: %s", got)
	}
}

// TestPercentileComparedWhereResolved: a p99 of each of two phases of 340
// requests is their 4th slowest, chance; the comparison is made at the
// highest percentile both resolve with ten requests above it (p97.058),
// where the few slow requests of the with-job phase no longer decide it,
// while a phase slow throughout still fails; with 1,000 requests a side
// the p99 itself is compared.
func TestPercentileComparedWhereResolved(t *testing.T) {
	run := func(perPhase int, slowWithJob int, slowAll bool) *Result {
		rec := newRecorder([]string{"home"}, time.Unix(0, 0), time.Second)
		for i := range 2 * perPhase {
			at := time.Unix(0, 0).Add(time.Duration(i) * 5 * time.Second / time.Duration(perPhase)) // 5 s a phase
			lat := 4 * time.Millisecond
			if i >= perPhase && (slowAll || i-perPhase < slowWithJob) {
				lat = 6 * time.Millisecond
			}
			rec.record(0, at, at, at.Add(lat), 200, "", 0)
		}
		r := rec.result()
		r.Duration = 10
		r.Phases = []Phase{{"alone", 0, 5}, {"with-job", 5, 10}}
		return r
	}
	th, err := ParseThreshold("p99@with-job<=1.2*p99@alone")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		r        *Result
		pass     bool
		resolved string
	}{
		{"4 slow of 340", run(340, 4, false), true, "compared as p97.058: 340 requests"},
		{"slow throughout, 340", run(340, 0, true), false, "compared as p97.058"},
		{"4 slow of 1000", run(1000, 4, false), true, ""},
		{"20 slow of 1000", run(1000, 20, false), false, ""},
		{"too few for any", run(15, 0, true), true, "not judged: 15 requests"},
	} {
		got := th.Eval(tc.r)
		resolvedOK := strings.Contains(got.Note, tc.resolved)
		if tc.resolved == "" {
			resolvedOK = !strings.Contains(got.Note, "compared as") && !strings.Contains(got.Note, "not judged")
		}
		if got.Pass != tc.pass || !resolvedOK {
			t.Errorf("%s: %s, want pass=%v and %q", tc.name, got, tc.pass, tc.resolved)
		}
	}
}
