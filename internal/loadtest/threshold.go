package loadtest

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Threshold is a pass/fail condition on a result, such as "p99<300ms",
// "errors<0.1%" or, for one step, "checkout:p95<=800ms". Rehearsals add
// conditions no SLO file can express: "server_errors<=0.01%" (answers
// 5xx or none at all), "checkout:503<1" (checkout never shed), "sold==100%"
// (a drop sold exactly its units), "delta(surge_admission_shed_total
// {class=\"critical\"})<1" (a counter the server exports, scraped with
// --scrape, did not move), and, over a phase of the run,
// "p99@with-job<=1.2*p99@alone", and on the site's waiting line
// (a scenario's line:), "line_sent_back<1" (no admitted shopper was sent
// back to the line) or "line_admitted>=1".
type Threshold struct {
	Expr   string
	Step   string // empty: all steps together
	Metric string // p50, p99.9, max, mean, errors, rps, requests, unanswered, server_errors, 5xx, 503, sold, delta, line_*
	Phase  string // empty: the whole run; else a phase of the scenario
	Op     string // <, <=, >, >=, ==
	Value  float64
	// Of, when set, makes the value relative: Value times Of's actual
	// value on the same result ("1.2*p99@alone").
	Of *Threshold

	pct    float64 // the percentile for pNN metrics
	status string  // status class or code for status metrics: "5xx", "503"
	series selector
	rate   bool   // a count-or-share metric given as a share ("%")
	unit   string // "ms", "%", "/s" or "": how Value and the actual value read
}

// ThresholdResult is one evaluated threshold.
type ThresholdResult struct {
	Expr   string  `json:"expr"`
	Actual float64 `json:"actual"`
	Unit   string  `json:"unit,omitempty"`
	Pass   bool    `json:"pass"`
	Note   string  `json:"note,omitempty"`
}

// String shows the actual value next to the expression.
func (r ThresholdResult) String() string {
	verdict := "pass"
	if !r.Pass {
		verdict = "FAIL"
	}
	s := fmt.Sprintf("%s  %s (actual %s%s)", verdict, r.Expr, strconv.FormatFloat(r.Actual, 'f', -1, 64), r.Unit)
	if r.Note != "" {
		s += " - " + r.Note
	}
	return s
}

const metricList = "p50, p99, p99.9, max, mean, errors, rps, requests, unanswered, server_errors, 5xx, 503, sold, delta(counter) or " +
	"line_sessions, line_waited, line_admitted, line_gave_up, line_unfinished, line_sent_back, line_finished, line_stopped"

// lineMetrics are the waiting line's counts a threshold can judge.
var lineMetrics = map[string]func(l *LineResult) int64{
	"line_sessions":   func(l *LineResult) int64 { return l.Sessions },
	"line_waited":     func(l *LineResult) int64 { return l.Waited },
	"line_admitted":   func(l *LineResult) int64 { return l.Admitted },
	"line_gave_up":    func(l *LineResult) int64 { return l.GaveUp },
	"line_unfinished": func(l *LineResult) int64 { return l.Unfinished },
	"line_sent_back":  func(l *LineResult) int64 { return l.SentBack },
	"line_finished":   func(l *LineResult) int64 { return l.Finished },
	"line_stopped":    func(l *LineResult) int64 { return l.Stopped },
}

var (
	statusMetricRE = regexp.MustCompile(`^[1-5]([0-9][0-9]|xx)$`)
	phaseNameRE    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	// pctRE finds the percentile of a latency expression (checkout:p99@alone).
	pctRE = regexp.MustCompile(`(^|:)p[0-9]+(\.[0-9]+)?`)
)

// opIndex finds the comparison operator outside parentheses and quotes,
// so a counter's labels (class="critical") are not taken for one.
func opIndex(s string) int {
	depth, quoted := 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			quoted = !quoted
		case quoted:
		case c == '(' || c == '{':
			depth++
		case c == ')' || c == '}':
			depth--
		case depth == 0 && (c == '<' || c == '>' || (c == '=' && i+1 < len(s) && s[i+1] == '=')):
			return i
		}
	}
	return -1
}

// ParseThreshold parses one threshold expression.
func ParseThreshold(expr string) (Threshold, error) {
	t := Threshold{Expr: strings.TrimSpace(expr)}
	s := strings.ReplaceAll(t.Expr, " ", "")
	if s == "" {
		return t, fmt.Errorf("threshold: empty")
	}
	opAt := opIndex(s)
	if opAt <= 0 {
		return t, fmt.Errorf("threshold %q: want metric<value, like p99<300ms or errors<0.1%%", expr)
	}
	lhs, rest := s[:opAt], s[opAt:]
	switch {
	case strings.HasPrefix(rest, "=="):
		t.Op = "=="
	case len(rest) > 1 && rest[1] == '=':
		t.Op = rest[:2]
	default:
		t.Op = rest[:1]
	}
	val := rest[len(t.Op):]
	if err := t.parseOperand(expr, lhs); err != nil {
		return t, err
	}
	if val == "" {
		return t, fmt.Errorf("threshold %q: missing value after %s", expr, t.Op)
	}
	if factor, other, ok := strings.Cut(val, "*"); ok {
		// Relative: the value is a factor times another metric of the run.
		f, err := strconv.ParseFloat(factor, 64)
		if err != nil || f < 0 {
			return t, fmt.Errorf("threshold %q: %q: want a factor like 1.2*p99@alone", expr, val)
		}
		of := Threshold{Expr: other}
		if err := of.parseOperand(expr, other); err != nil {
			return t, err
		}
		if of.Metric != t.Metric || of.rate != t.rate {
			return t, fmt.Errorf("threshold %q: compare %s with %s, not with %s", expr, t.Metric, t.Metric, of.Metric)
		}
		t.Value, t.Of = f, &of
		return t, nil
	}
	return t, t.parseValue(expr, val)
}

// parseOperand reads "[STEP:]METRIC[@PHASE]" into t.
func (t *Threshold) parseOperand(expr, lhs string) error {
	if body, ok := strings.CutPrefix(lhs, "delta("); ok {
		sel, rest, ok := strings.Cut(body, ")")
		if !ok || rest != "" {
			return fmt.Errorf("threshold %q: want delta(counter{label=\"value\"})", expr)
		}
		s, err := parseSelector(sel)
		if err != nil {
			return fmt.Errorf("threshold %q: %w", expr, err)
		}
		t.Metric, t.series = "delta", s
		return nil
	}
	if m, phase, ok := strings.Cut(lhs, "@"); ok {
		if !phaseNameRE.MatchString(phase) {
			return fmt.Errorf("threshold %q: phase %q: use letters, digits, '.', '_' and '-'", expr, phase)
		}
		t.Phase, lhs = phase, m
	}
	if step, metric, ok := strings.Cut(lhs, ":"); ok {
		if step == "" {
			return fmt.Errorf("threshold %q: empty step name before ':'", expr)
		}
		t.Step, lhs = step, metric
	}
	t.Metric = strings.ToLower(lhs)
	switch {
	case t.Metric == "avg":
		t.Metric = "mean"
	case t.Metric == "error_rate":
		t.Metric = "errors"
	case t.Metric == "rate":
		t.Metric = "rps"
	}
	if strings.HasPrefix(t.Metric, "p") && t.Metric != "max" {
		p, err := strconv.ParseFloat(t.Metric[1:], 64)
		if err != nil || p <= 0 || p > 100 {
			return fmt.Errorf("threshold %q: unknown metric %q (want %s)", expr, lhs, metricList)
		}
		t.pct = p
	}
	switch {
	case t.pct > 0, t.Metric == "max", t.Metric == "mean", t.Metric == "errors", t.Metric == "rps", t.Metric == "requests", t.Metric == "server_errors":
	case statusMetricRE.MatchString(t.Metric):
		t.status = t.Metric
	case t.Metric == "unanswered", t.Metric == "sold":
		if t.Step != "" || t.Phase != "" {
			return fmt.Errorf("threshold %q: %s counts drop buyers of the whole run; leave out the step and phase", expr, t.Metric)
		}
	case lineMetrics[t.Metric] != nil:
		if t.Step != "" || t.Phase != "" {
			return fmt.Errorf("threshold %q: %s counts sessions of the whole run; leave out the step and phase", expr, t.Metric)
		}
	default:
		return fmt.Errorf("threshold %q: unknown metric %q (want %s)", expr, lhs, metricList)
	}
	if t.Phase != "" && t.Step != "" {
		return fmt.Errorf("threshold %q: a phase is judged on every request in it; leave out the step", expr)
	}
	switch {
	case t.pct > 0 || t.Metric == "max" || t.Metric == "mean":
		t.unit = "ms"
	case t.Metric == "errors":
		t.unit, t.rate = "%", true
	case t.Metric == "rps":
		t.unit = "/s"
	}
	return nil
}

// parseValue reads the value a metric is compared with.
func (t *Threshold) parseValue(expr, val string) error {
	switch {
	case t.pct > 0 || t.Metric == "max" || t.Metric == "mean":
		d, err := time.ParseDuration(val)
		if err != nil {
			return fmt.Errorf("threshold %q: %q is not a duration like 300ms", expr, val)
		}
		t.Value = ms(d)
	case t.Metric == "errors":
		num, isPct := strings.CutSuffix(val, "%")
		f, err := strconv.ParseFloat(num, 64)
		if err != nil || f < 0 {
			return fmt.Errorf("threshold %q: %q is not a rate like 0.1%% or 0.001", expr, val)
		}
		if !isPct {
			f *= 100
		}
		t.Value = f
	case t.Metric == "rps":
		f, err := strconv.ParseFloat(strings.TrimSuffix(val, "/s"), 64)
		if err != nil {
			return fmt.Errorf("threshold %q: %q is not a number of requests per second", expr, val)
		}
		t.Value = f
	case t.Metric == "server_errors" || t.status != "" || t.Metric == "sold":
		// A count ("5xx<1"), or a share of the requests (of the drop's
		// units for sold) with "%".
		num, isPct := strings.CutSuffix(val, "%")
		f, err := strconv.ParseFloat(num, 64)
		if err != nil || f < 0 {
			return fmt.Errorf("threshold %q: %q is not a count or a share like 0.01%%", expr, val)
		}
		t.Value = f
		if isPct {
			t.unit, t.rate = "%", true
		}
	default: // requests, unanswered, delta
		f, err := strconv.ParseFloat(val, 64)
		if err != nil {
			return fmt.Errorf("threshold %q: %q is not a count", expr, val)
		}
		t.Value = f
	}
	return nil
}

// ParseThresholds parses several expressions.
func ParseThresholds(exprs []string) ([]Threshold, error) {
	var out []Threshold
	for _, e := range exprs {
		t, err := ParseThreshold(e)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// Eval checks the threshold against a result. A threshold on a step that
// made no requests fails: a check that saw nothing proves nothing.
func (t Threshold) Eval(r *Result) ThresholdResult {
	out := ThresholdResult{Expr: t.Expr, Unit: t.unit}
	// A percentile compared with the same percentile elsewhere in the run
	// is compared where both sides have tailSamples requests above it.
	resolved := ""
	if pct, fewest := t.resolvable(r); pct != t.pct {
		if pct == 0 {
			out.Pass = true
			out.Note = fmt.Sprintf("not judged: %d requests on the smaller side, too few to compare any percentile above the median with %d above it", fewest, tailSamples)
			return out
		}
		resolved = fmt.Sprintf("compared as p%s: %d requests on the smaller side resolve no higher percentile with %d above it; ",
			strconv.FormatFloat(pct, 'f', -1, 64), fewest, tailSamples)
		of := *t.Of
		t.pct, of.pct = pct, pct
		t.Of = &of
	}
	actual, note := t.actual(r)
	if note != "" {
		out.Note = note
		return out
	}
	want := t.Value
	if t.Of != nil {
		of, note := t.Of.actual(r)
		if note != "" {
			out.Note = t.Of.Expr + ": " + note
			return out
		}
		want = t.Value * of
		ofName := t.Of.Expr
		if resolved != "" {
			p := "p" + strconv.FormatFloat(t.pct, 'f', -1, 64)
			ofName = pctRE.ReplaceAllString(ofName, "${1}"+p)
			resolved += fmt.Sprintf("%s is %s%s; ", pctRE.ReplaceAllString(t.Expr[:opIndex(t.Expr)], "${1}"+p),
				strconv.FormatFloat(round(actual, 4), 'f', -1, 64), t.unit)
		}
		out.Note = resolved + fmt.Sprintf("%s is %s%s", ofName, strconv.FormatFloat(round(of, 4), 'f', -1, 64), t.unit)
	}
	out = t.compare(out, actual, want)
	if !out.Pass {
		if note, ok := t.tooFew(r, actual); ok {
			out.Pass, out.Note = true, note
		} else if note, ok := t.withinLag(r, actual, want); ok {
			out.Pass, out.Note = true, out.Note+"; "+note
		}
	}
	return out
}

// tailSamples is how many requests a percentile must have above it on
// each side of a comparison for the comparison to say anything: the p99
// of 340 requests is their 4th slowest, and which request lands there is
// chance. Ten needs 1,000 requests for a p99.
const tailSamples = 10

// resolvable is, for a percentile compared with the same percentile
// elsewhere in the run (p99@with-job<=1.2*p99@alone), the highest
// percentile, at most t's, that both sides have tailSamples requests
// above, and the smaller side's requests; 0 when that is below the
// median. For anything else, t's own percentile.
func (t Threshold) resolvable(r *Result) (float64, int64) {
	if t.Of == nil || t.pct <= 0 || t.pct >= 100 || t.Of.pct != t.pct || t.Of.Metric != t.Metric {
		return t.pct, 0
	}
	fewest := int64(math.MaxInt64)
	for _, side := range []Threshold{t, *t.Of} {
		st, _, note := side.stats(r)
		if note != "" {
			return t.pct, 0 // the comparison fails on its own note
		}
		fewest = min(fewest, st.Requests)
	}
	if float64(fewest)*(100-t.pct)/100 >= tailSamples {
		return t.pct, fewest
	}
	pct := math.Floor(1000*(100-100*tailSamples/float64(fewest))) / 1000
	if pct < 50 {
		return 0, fewest
	}
	return pct, fewest
}

// withinLag reports, for a latency bound relative to another part of the
// run (p99@with-job<=1.2*p99@alone), whether it was missed by less than
// the generator's own send lag p99. Latency is measured from each
// request's intended send time, so the generator's lateness is in both
// sides: a difference smaller than it cannot be put down to the server
// (at small scale, 5.9 ms against 1.2 x 4.4 ms, with the generator
// sending 1.6 ms late at p99). It says so in the note; a miss larger
// than that fails.
func (t Threshold) withinLag(r *Result, actual, want float64) (string, bool) {
	if t.Of == nil || t.unit != "ms" || (t.Op != "<" && t.Op != "<=") {
		return "", false
	}
	over, lag := actual-want, r.SendLag.P99
	if over <= 0 || over > lag {
		return "", false
	}
	return fmt.Sprintf("not judged: over by %sms, within the generator's own send lag p99 (%sms)",
		strconv.FormatFloat(round(over, 3), 'f', -1, 64), strconv.FormatFloat(lag, 'f', -1, 64)), true
}

// actual is the metric's value on r, or a note saying why there is none.
func (t Threshold) actual(r *Result) (float64, string) {
	switch t.Metric {
	case "unanswered":
		if r.Drop == nil {
			return 0, "no drop buyers"
		}
		return float64(r.Drop.Unanswered()), ""
	case "sold":
		if r.Drop == nil {
			return 0, "no drop buyers"
		}
		if !t.rate {
			return float64(r.Drop.Units), ""
		}
		if r.Drop.Allocated <= 0 {
			return 0, "the drop's units are unknown (the rehearsal did not create the drop)"
		}
		return 100 * float64(r.Drop.Units) / float64(r.Drop.Allocated), ""
	case "line_sessions", "line_waited", "line_admitted", "line_gave_up", "line_unfinished", "line_sent_back", "line_finished", "line_stopped":
		if r.Line == nil {
			return 0, "no waiting line: the scenario has no line: to follow"
		}
		return float64(lineMetrics[t.Metric](r.Line)), ""
	case "delta":
		if r.Server == nil || len(r.Server.Targets) == 0 {
			return 0, "no server metrics: pass --scrape ADMIN_URL/metrics"
		}
		v, ok := r.Server.Delta(t.series)
		if !ok {
			return 0, "no series " + t.series.String() + " in the scraped metrics"
		}
		return v, ""
	}
	st, span, note := t.stats(r)
	if note != "" {
		return 0, note
	}
	if st.Requests == 0 && t.Metric != "requests" && t.Metric != "rps" {
		return 0, "no requests"
	}
	count := func(n int64) float64 {
		if t.rate {
			return 100 * float64(n) / float64(st.Requests)
		}
		return float64(n)
	}
	switch t.Metric {
	case "max":
		return ms(st.Hist.Quantile(100)), ""
	case "mean":
		return ms(st.Hist.Mean()), ""
	case "errors":
		return st.ErrorRate() * 100, ""
	case "rps":
		if span > 0 {
			return float64(st.Requests) / span, ""
		}
		return 0, ""
	case "requests":
		return float64(st.Requests), ""
	case "server_errors":
		return count(st.ServerErrors()), ""
	}
	if t.status != "" {
		return count(st.StatusCount(t.status)), ""
	}
	return ms(st.Hist.Quantile(t.pct)), ""
}

// stats are the requests t judges (a step's, a phase's or all) and the
// seconds they span, or a note saying why there are none.
func (t Threshold) stats(r *Result) (*Stats, float64, string) {
	if t.Phase != "" {
		p, ok := r.phase(t.Phase)
		if !ok {
			return nil, 0, fmt.Sprintf("no phase named %q", t.Phase)
		}
		return r.phaseStats(p), p.To - p.From, ""
	}
	st, ok := r.Step(t.Step)
	if !ok {
		return nil, 0, fmt.Sprintf("no step named %q", t.Step)
	}
	return st, max(r.Duration, r.Elapsed), ""
}

// tooFew reports, for a bound on a share of requests (server_errors<=0.01%)
// that one request broke, whether the run was too small for the bound to
// allow even one: 0.01% of 3,934 requests is 0.39 of a request, so one
// shed request in such a run says more about the run's size than the
// shop. It says so in the note; two or more still fail.
func (t Threshold) tooFew(r *Result, actual float64) (string, bool) {
	if !t.rate || t.Of != nil || (t.Op != "<" && t.Op != "<=") || t.Value <= 0 {
		return "", false
	}
	if t.Metric != "server_errors" && t.status == "" {
		return "", false
	}
	st, _, note := t.stats(r)
	if note != "" || st.Requests == 0 {
		return "", false
	}
	n := float64(st.Requests)
	if bad := math.Round(actual * n / 100); bad != 1 || t.Value*n/100 >= 1 {
		return "", false
	}
	need := int64(math.Ceil(round(100/t.Value, 4)))
	return fmt.Sprintf("not judged: 1 of %d requests, and %s%% allows one only from %d on", st.Requests,
		strconv.FormatFloat(t.Value, 'f', -1, 64), need), true
}

func (t Threshold) compare(out ThresholdResult, actual, want float64) ThresholdResult {
	out.Actual = round(actual, 4)
	switch t.Op {
	case "<":
		out.Pass = actual < want
	case "<=":
		out.Pass = actual <= want
	case ">":
		out.Pass = actual > want
	case ">=":
		out.Pass = actual >= want
	case "==":
		out.Pass = round(actual, 6) == round(want, 6)
	}
	return out
}

func round(f float64, digits int) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(f, 'g', digits+3, 64), 64)
	return v
}

// Evaluate sets r.Thresholds and reports whether all hold.
func Evaluate(r *Result, ts []Threshold) bool {
	r.Thresholds = r.Thresholds[:0]
	for _, t := range ts {
		r.Thresholds = append(r.Thresholds, t.Eval(r))
	}
	return r.Passed()
}

// ThresholdError is returned when a run finished but thresholds failed;
// commands turn it into a non-zero exit status.
type ThresholdError struct{ Failed, Total int }

func (e *ThresholdError) Error() string {
	return fmt.Sprintf("%d of %d thresholds failed", e.Failed, e.Total)
}
