package loadtest

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Threshold is a pass/fail condition on a result, such as "p99<300ms",
// "errors<0.1%" or, for one step, "checkout:p95<=800ms".
type Threshold struct {
	Expr   string
	Step   string // empty: all steps together
	Metric string // p50, p99.9, max, mean, errors, rps, requests, unanswered
	Op     string // <, <=, >, >=
	Value  float64
	pct    float64 // the percentile for pNN metrics
	unit   string  // "ms", "%", "/s" or "": how Value and the actual value read
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

// ParseThreshold parses one threshold expression.
func ParseThreshold(expr string) (Threshold, error) {
	t := Threshold{Expr: strings.TrimSpace(expr)}
	s := strings.ReplaceAll(t.Expr, " ", "")
	if s == "" {
		return t, fmt.Errorf("threshold: empty")
	}
	opAt := strings.IndexAny(s, "<>")
	if opAt <= 0 {
		return t, fmt.Errorf("threshold %q: want metric<value, like p99<300ms or errors<0.1%%", expr)
	}
	lhs, rest := s[:opAt], s[opAt:]
	t.Op = rest[:1]
	if len(rest) > 1 && rest[1] == '=' {
		t.Op += "="
	}
	val := rest[len(t.Op):]
	if step, metric, ok := strings.Cut(lhs, ":"); ok {
		if step == "" {
			return t, fmt.Errorf("threshold %q: empty step name before ':'", expr)
		}
		t.Step, lhs = step, metric
	}
	t.Metric = strings.ToLower(lhs)
	if val == "" {
		return t, fmt.Errorf("threshold %q: missing value after %s", expr, t.Op)
	}
	switch {
	case t.Metric == "max" || t.Metric == "mean" || t.Metric == "avg" || strings.HasPrefix(t.Metric, "p"):
		if t.Metric == "avg" {
			t.Metric = "mean"
		}
		if strings.HasPrefix(t.Metric, "p") && t.Metric != "max" {
			p, err := strconv.ParseFloat(t.Metric[1:], 64)
			if err != nil || p <= 0 || p > 100 {
				return t, fmt.Errorf("threshold %q: unknown metric %q (want p50, p99, p99.9, max, mean, errors, rps, requests or unanswered)", expr, lhs)
			}
			t.pct = p
		}
		d, err := time.ParseDuration(val)
		if err != nil {
			return t, fmt.Errorf("threshold %q: %q is not a duration like 300ms", expr, val)
		}
		t.Value, t.unit = ms(d), "ms"
	case t.Metric == "errors" || t.Metric == "error_rate":
		t.Metric = "errors"
		num, isPct := strings.CutSuffix(val, "%")
		f, err := strconv.ParseFloat(num, 64)
		if err != nil || f < 0 {
			return t, fmt.Errorf("threshold %q: %q is not a rate like 0.1%% or 0.001", expr, val)
		}
		if !isPct {
			f *= 100
		}
		t.Value, t.unit = f, "%"
	case t.Metric == "rps" || t.Metric == "rate":
		t.Metric = "rps"
		f, err := strconv.ParseFloat(strings.TrimSuffix(val, "/s"), 64)
		if err != nil {
			return t, fmt.Errorf("threshold %q: %q is not a number of requests per second", expr, val)
		}
		t.Value, t.unit = f, "/s"
	case t.Metric == "requests" || t.Metric == "unanswered":
		if t.Metric == "unanswered" && t.Step != "" {
			return t, fmt.Errorf("threshold %q: unanswered counts drop buyers of the whole run; leave out the step", expr)
		}
		f, err := strconv.ParseFloat(val, 64)
		if err != nil {
			return t, fmt.Errorf("threshold %q: %q is not a count", expr, val)
		}
		t.Value = f
	default:
		return t, fmt.Errorf("threshold %q: unknown metric %q (want p50, p99, p99.9, max, mean, errors, rps, requests or unanswered)", expr, lhs)
	}
	return t, nil
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
	if t.Metric == "unanswered" {
		if r.Drop == nil {
			out.Note = "no drop buyers"
			return out
		}
		return t.compare(out, float64(r.Drop.Unanswered()))
	}
	st, ok := r.Step(t.Step)
	if !ok {
		out.Note = fmt.Sprintf("no step named %q", t.Step)
		return out
	}
	if st.Requests == 0 && t.Metric != "requests" && t.Metric != "rps" {
		out.Note = "no requests"
		return out
	}
	var actual float64
	switch t.Metric {
	case "max":
		actual = ms(st.Hist.Quantile(100))
	case "mean":
		actual = ms(st.Hist.Mean())
	case "errors":
		actual = st.ErrorRate() * 100
	case "rps":
		d := max(r.Duration, r.Elapsed)
		if d > 0 {
			actual = float64(st.Requests) / d
		}
	case "requests":
		actual = float64(st.Requests)
	default:
		actual = ms(st.Hist.Quantile(t.pct))
	}
	return t.compare(out, actual)
}

func (t Threshold) compare(out ThresholdResult, actual float64) ThresholdResult {
	out.Actual = round(actual, 4)
	switch t.Op {
	case "<":
		out.Pass = actual < t.Value
	case "<=":
		out.Pass = actual <= t.Value
	case ">":
		out.Pass = actual > t.Value
	case ">=":
		out.Pass = actual >= t.Value
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
