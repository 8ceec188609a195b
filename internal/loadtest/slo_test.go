package loadtest

import (
	"strings"
	"testing"
	"time"
)

func TestSamplePathFillsTemplates(t *testing.T) {
	sc, err := Journey("buy")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"list": "/api/v1/products", "product": "/api/v1/products/x",
		"add-to-cart": "/api/v1/cart/items", "checkout": "/api/v1/checkout"}
	for _, st := range sc.Steps {
		if got := st.samplePath(); got != want[st.Name] {
			t.Errorf("step %s: %q, want %q", st.Name, got, want[st.Name])
		}
	}
}

func TestCountAbove(t *testing.T) {
	h := NewHistogram()
	for _, ms := range []int{10, 20, 300, 900, 1500, 2000} {
		h.Record(time.Duration(ms) * time.Millisecond)
	}
	for d, want := range map[time.Duration]int64{time.Second: 2, 250 * time.Millisecond: 4, 5 * time.Second: 0, time.Millisecond: 6} {
		if got := h.CountAbove(d); got != want {
			t.Errorf("above %v: %d, want %d", d, got, want)
		}
	}
}

// TestEvaluateSLOs judges objectives on the steps whose requests they
// count: by status for availability (no answer is bad), by latency for a
// bound; objectives on events no load test sees, or whose requests the
// run did not make, are skipped, not failed.
func TestEvaluateSLOs(t *testing.T) {
	sc, err := Journey("buy")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Mix: []Weighted{{sc, 1}}}
	step := func(name string, statuses map[string]int64, lat time.Duration) *Stats {
		s := newStats(name)
		for k, n := range statuses {
			s.Statuses[k] = n
			s.Requests += n
			for range n {
				s.Hist.Record(lat)
			}
		}
		return s
	}
	r := &Result{Steps: []*Stats{
		step("list", map[string]int64{"200": 1000}, 5*time.Millisecond),
		step("product", map[string]int64{"200": 998, "503": 2}, 5*time.Millisecond),
		step("add-to-cart", map[string]int64{"201": 1000}, 5*time.Millisecond),
		step("checkout", map[string]int64{"201": 990, "409": 8, "none": 2}, 1500*time.Millisecond),
	}}
	is := func(method, prefix string) func(string, string) bool {
		return func(m, p string) bool { return m == method && strings.HasPrefix(p, prefix) }
	}
	fivexx := func(c int) bool { return c >= 500 }
	slos := []SLO{
		{Name: "browse", Objective: 99.5, Counts: is("GET", "/api/v1/products"), BadStatus: fivexx},
		{Name: "browse-strict", Objective: 99.9, Counts: is("GET", "/api/v1/products"), BadStatus: fivexx},
		{Name: "checkout", Objective: 99.9, Counts: is("POST", "/api/v1/checkout"), BadStatus: fivexx},
		{Name: "checkout-latency", Objective: 99, Counts: is("POST", "/api/v1/checkout"), Within: time.Second},
		{Name: "payments", Objective: 99, Note: "server-side events"},
		{Name: "waitroom", Objective: 99.9, Counts: is("POST", "/api/v1/drops/"), BadStatus: fivexx, Describes: "joins"},
	}
	if cfg.EvaluateSLOs(r, slos) {
		t.Fatal("passed with failing objectives")
	}
	want := map[string]string{"browse": SLOPass, "browse-strict": SLOPass, "checkout": SLOFail,
		"checkout-latency": SLOFail, "payments": SLOSkip, "waitroom": SLOSkip}
	for _, s := range r.SLOs {
		if s.Verdict != want[s.Name] {
			t.Errorf("%s: %s (%+v), want %s", s.Name, s.Verdict, s, want[s.Name])
		}
	}
	// 2 of 2000 browse requests bad: 99.9% exactly holds.
	if s := r.SLOs[1]; s.Requests != 2000 || s.Bad != 2 {
		t.Errorf("browse-strict counted %d requests, %d bad", s.Requests, s.Bad)
	}
	if s := r.SLOs[2]; s.Bad != 2 || s.Good != 99.8 {
		t.Errorf("checkout: %+v (409 is an answer, no answer is bad)", s)
	}
	if !strings.HasPrefix(r.SLOs[2].String(), "FAIL  checkout >= 99.9% good (actual 99.8%, 2 of 1000 requests bad)") {
		t.Errorf("line %q", r.SLOs[2])
	}
	if r.Passed() {
		t.Error("Result.Passed with a failed SLO")
	}
}

// TestSLOTooFewRequests: a run whose error budget is under one request
// cannot tell a single bad request from the objective, so one bad request
// there is not judged; none is a pass, and two or more fail as before.
func TestSLOTooFewRequests(t *testing.T) {
	sc, err := Journey("buy")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Mix: []Weighted{{sc, 1}}}
	for _, tc := range []struct {
		objective      float64
		requests, slow int
		want           string
	}{
		{99, 93, 1, SLOSkip},    // budget 0.93 of a request
		{99, 93, 0, SLOPass},    // nothing against it
		{99, 93, 2, SLOFail},    // more than one is more than chance
		{99, 100, 1, SLOPass},   // 99% exactly
		{99, 100, 2, SLOFail},   // budget one, two spent
		{99.9, 999, 1, SLOSkip}, // 99.9% needs 1000
		{99.9, 1000, 1, SLOPass},
		{99.5, 199, 1, SLOSkip},
		{99.5, 200, 1, SLOPass},
		{100, 5000, 1, SLOFail}, // no budget at any size
	} {
		s := newStats("checkout")
		for i := range tc.requests {
			s.Requests++
			s.Statuses["201"]++
			lat := 5 * time.Millisecond
			if i < tc.slow {
				lat = 2 * time.Second
			}
			s.Hist.Record(lat)
		}
		r := &Result{Steps: []*Stats{s}}
		ok := cfg.EvaluateSLOs(r, []SLO{{Name: "checkout-latency", Objective: tc.objective,
			Counts: func(m, p string) bool { return m == "POST" && p == "/api/v1/checkout" }, Within: time.Second, Describes: "checkouts"}})
		got := r.SLOs[0]
		if got.Verdict != tc.want || ok != (tc.want != SLOFail) {
			t.Errorf("%v%% with %d of %d slow: %s (ok %v), want %s: %s", tc.objective, tc.slow, tc.requests, got.Verdict, ok, tc.want, got)
		}
		if tc.want == SLOSkip && !strings.Contains(got.String(), "too few requests to judge: 1 of") {
			t.Errorf("skip line %q", got)
		}
	}
}
