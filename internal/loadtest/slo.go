package loadtest

import (
	"bytes"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"time"
)

// SLO is a service level objective judged on the requests of a run: of
// the requests it counts, the share of good ones must reach Objective.
// Surge's SLO file (deploy/slo/surge.yaml) is turned into these by the
// command, so a rehearsal passes or fails by what production alerts on.
type SLO struct {
	Name string
	// Objective is the share of good requests, in percent (99.9).
	Objective float64
	// Counts tells which requests count, by method and URL path. Nil
	// means the objective is not on requests a load test sends (events
	// only the server sees); it is reported, not judged, with Note.
	Counts func(method, path string) bool
	// BadStatus makes a counted request bad by its status code; a request
	// with no answer is always bad. Nil for a latency objective.
	BadStatus func(code int) bool
	// Within makes a counted request slower than it bad (latency).
	Within time.Duration
	// Describes says what the objective counts and judges, for the report.
	Describes string
	Note      string
}

// SLO verdicts.
const (
	SLOPass = "pass"
	SLOFail = "fail"
	SLOSkip = "skip" // nothing to judge: not on requests, none counted, or too few for one bad request
)

// SLOResult is one objective judged on a run.
type SLOResult struct {
	Name      string   `json:"name"`
	Objective float64  `json:"objective"`
	Verdict   string   `json:"verdict"`
	Good      float64  `json:"good_percent,omitempty"`
	Requests  int64    `json:"requests,omitempty"`
	Bad       int64    `json:"bad,omitempty"`
	Steps     []string `json:"steps,omitempty"`
	Note      string   `json:"note,omitempty"`
}

// String is the verdict line of the report.
func (r SLOResult) String() string {
	obj := strconv.FormatFloat(r.Objective, 'f', -1, 64) + "%"
	switch r.Verdict {
	case SLOSkip:
		return fmt.Sprintf("skip  %s >= %s: %s", r.Name, obj, r.Note)
	case SLOFail:
		return fmt.Sprintf("FAIL  %s >= %s good (actual %s%%, %d of %d requests bad)", r.Name, obj,
			strconv.FormatFloat(r.Good, 'f', -1, 64), r.Bad, r.Requests)
	}
	return fmt.Sprintf("pass  %s >= %s good (actual %s%%, %d of %d requests bad)", r.Name, obj,
		strconv.FormatFloat(r.Good, 'f', -1, 64), r.Bad, r.Requests)
}

// EvaluateSLOs judges each objective on the result of a run of cfg, sets
// r.SLOs and reports whether none failed. A step's requests count for an
// objective when the step's method and URL path do (steps with
// templated URLs are judged by their URL with every variable filled in,
// which names the same route).
func (c Config) EvaluateSLOs(r *Result, slos []SLO) bool {
	type stepReq struct{ name, method, path string }
	var steps []stepReq
	multi := len(c.Mix) > 1
	for _, w := range c.Mix {
		for _, st := range w.Scenario.Steps {
			name := st.Name
			if multi {
				name = w.Scenario.Name + "/" + st.Name
			}
			steps = append(steps, stepReq{name, st.Method, st.samplePath()})
		}
	}
	for _, w := range c.Mix {
		if ln := w.Scenario.Line; ln != nil {
			// The line page's reloads, recorded apart from the steps.
			steps = append(steps, stepReq{lineStat, "GET", ln.Path})
			break
		}
	}
	stats := map[string]*Stats{}
	for _, s := range r.Steps {
		stats[s.Name] = s
	}
	r.SLOs = r.SLOs[:0]
	ok := true
	for _, o := range slos {
		res := SLOResult{Name: o.Name, Objective: o.Objective}
		if o.Counts == nil {
			res.Verdict, res.Note = SLOSkip, o.Note
			r.SLOs = append(r.SLOs, res)
			continue
		}
		for _, st := range steps {
			s := stats[st.name]
			if s == nil || !o.Counts(st.method, st.path) {
				continue
			}
			res.Steps = append(res.Steps, st.name)
			res.Requests += s.Requests
			res.Bad += badRequests(s, o)
		}
		switch {
		case res.Requests == 0:
			res.Verdict, res.Note = SLOSkip, "no request of this run counts ("+o.Describes+")"
		default:
			// Judged on the share rounded to seven digits, so 1998 good of
			// 2000 meets 99.9% rather than missing it by a float's last bit.
			res.Good = round(100*float64(res.Requests-res.Bad)/float64(res.Requests), 4)
			res.Verdict = SLOPass
			switch need := tooFew(o.Objective); {
			case res.Good >= o.Objective:
			case res.Bad == 1 && res.Requests < need:
				// The run's error budget is under one request: a single
				// slow or failed request would fail any objective, which
				// says more about the run's size than about the shop.
				res.Verdict, res.Note = SLOSkip, fmt.Sprintf("too few requests to judge: 1 of %d bad, and a %s%% objective allows one bad request only from %d on (%s)",
					res.Requests, strconv.FormatFloat(o.Objective, 'f', -1, 64), need, o.Describes)
			default:
				res.Verdict, ok = SLOFail, false
			}
		}
		r.SLOs = append(r.SLOs, res)
	}
	return ok
}

// tooFew is the number of requests from which an objective's error
// budget reaches one whole request: 100 for 99%, 1000 for 99.9%. A 100%
// objective has no budget at any size, so every run judges it.
func tooFew(objective float64) int64 {
	if objective >= 100 {
		return 0
	}
	return int64(math.Ceil(round(100/(100-objective), 4)))
}

// badRequests counts a step's requests the objective calls bad.
func badRequests(s *Stats, o SLO) int64 {
	if o.Within > 0 {
		return s.Hist.CountAbove(o.Within)
	}
	var bad int64
	for k, n := range s.Statuses {
		switch code, err := strconv.Atoi(k); {
		case k == "none":
			bad += n // no answer: timed out or failed to connect
		case err == nil && o.BadStatus != nil && o.BadStatus(code):
			bad += n
		case err != nil && k == "other":
			bad += n // not even a valid status code
		}
	}
	return bad
}

// CountAbove returns how many recorded latencies exceed d, at the
// histogram's precision.
func (h *Histogram) CountAbove(d time.Duration) int64 {
	if h.Count() == 0 {
		return 0
	}
	limit := int64(d / time.Microsecond)
	var n int64
	for _, b := range h.h.Distribution() {
		if b.From > limit {
			n += b.Count
		}
	}
	return n
}

// samplePath is the URL path of the step's request with every template
// variable set to "x", which matches the same route as any real value.
func (st *Step) samplePath() string {
	raw := st.url.static
	if !st.url.isStatic() {
		vars := map[string]string{}
		walkFields(st.url.t.Root, func(name string) { vars[name] = "x" })
		var buf bytes.Buffer
		s, err := st.url.render(&buf, vars)
		if err != nil {
			return ""
		}
		raw = s
	}
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	if u.Path == "" {
		return "/"
	}
	return u.Path
}
