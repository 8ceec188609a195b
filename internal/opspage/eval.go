package opspage

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
)

// series is one sample as PromQL names it: a histogram becomes its
// _count, _sum and _bucket{le} series.
type series struct {
	name   string
	labels map[string]string
	value  float64
}

// flatten turns gathered metric families into series.
func flatten(fams []*dto.MetricFamily) []series {
	var out []series
	for _, f := range fams {
		name := f.GetName()
		for _, m := range f.GetMetric() {
			ls := make(map[string]string, len(m.GetLabel())+1)
			for _, l := range m.GetLabel() {
				ls[l.GetName()] = l.GetValue()
			}
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				out = append(out, series{name, ls, m.GetCounter().GetValue()})
			case dto.MetricType_GAUGE:
				out = append(out, series{name, ls, m.GetGauge().GetValue()})
			case dto.MetricType_UNTYPED:
				out = append(out, series{name, ls, m.GetUntyped().GetValue()})
			case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
				h := m.GetHistogram()
				out = append(out, series{name + "_count", ls, float64(h.GetSampleCount())}, series{name + "_sum", ls, h.GetSampleSum()})
				for _, b := range h.GetBucket() {
					out = append(out, series{name + "_bucket", withLabel(ls, "le", formatLe(b.GetUpperBound())), float64(b.GetCumulativeCount())})
				}
				out = append(out, series{name + "_bucket", withLabel(ls, "le", "+Inf"), float64(h.GetSampleCount())})
			}
		}
	}
	return out
}

func withLabel(ls map[string]string, k, v string) map[string]string {
	c := make(map[string]string, len(ls)+1)
	for a, b := range ls {
		c[a] = b
	}
	c[k] = v
	return c
}

// formatLe spells a bucket bound as Prometheus does ("0.25", "1").
func formatLe(v float64) string {
	if math.IsInf(v, 1) {
		return "+Inf"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// matches reports whether s is selected by vs.
func matches(vs *parser.VectorSelector, s series) bool {
	if vs.Name != "" && vs.Name != s.name {
		return false
	}
	for _, m := range vs.LabelMatchers {
		v := s.labels[m.Name]
		if m.Name == model.MetricNameLabel {
			v = s.name
		}
		if !m.Matches(v) {
			return false
		}
	}
	return true
}

// cumulative evaluates a PromQL expression of the shape the SLO file
// uses (sums of rate() or increase() over counters, added or
// subtracted) with every rate replaced by its counter's current value.
// Rates are linear in the counters, so the rate over a window is the
// difference of two such values over the window's length: the page
// computes burn rates from its own samples, without a Prometheus.
func cumulative(e parser.Expr, all []series) (float64, error) {
	switch e := e.(type) {
	case *parser.ParenExpr:
		return cumulative(e.Expr, all)
	case *parser.NumberLiteral:
		return e.Val, nil
	case *parser.AggregateExpr:
		if e.Op != parser.SUM || len(e.Grouping) > 0 || e.Without {
			return 0, fmt.Errorf("%s: only sum() without grouping is understood", e)
		}
		return cumulative(e.Expr, all)
	case *parser.Call:
		if (e.Func.Name != "rate" && e.Func.Name != "increase") || len(e.Args) != 1 {
			return 0, fmt.Errorf("%s: only rate() and increase() are understood", e)
		}
		ms, ok := e.Args[0].(*parser.MatrixSelector)
		if !ok {
			return 0, fmt.Errorf("%s: want a range selector", e)
		}
		return cumulative(ms.VectorSelector, all)
	case *parser.VectorSelector:
		sum := 0.0
		for _, s := range all {
			if matches(e, s) {
				sum += s.value
			}
		}
		return sum, nil
	case *parser.BinaryExpr:
		l, err := cumulative(e.LHS, all)
		if err != nil {
			return 0, err
		}
		r, err := cumulative(e.RHS, all)
		if err != nil {
			return 0, err
		}
		switch e.Op {
		case parser.ADD:
			return l + r, nil
		case parser.SUB:
			return l - r, nil
		}
		return 0, fmt.Errorf("%s: only + and - are understood", e)
	}
	return 0, fmt.Errorf("%s: not understood", e)
}

// bucket is one cumulative histogram bucket.
type bucket struct {
	le    float64
	count float64
}

// quantile estimates the q-quantile from cumulative buckets (sorted by
// le, +Inf last) as histogram_quantile does: linear within the bucket.
// It returns NaN when there are no observations.
func quantile(q float64, bs []bucket) float64 {
	if len(bs) == 0 || bs[len(bs)-1].count <= 0 {
		return math.NaN()
	}
	total := bs[len(bs)-1].count
	rank := q * total
	lower, prev := 0.0, 0.0
	for _, b := range bs {
		if b.count >= rank {
			if math.IsInf(b.le, 1) {
				return lower // above the last finite bound: that bound, as Prometheus answers
			}
			if b.count == prev {
				return b.le
			}
			return lower + (b.le-lower)*(rank-prev)/(b.count-prev)
		}
		lower, prev = b.le, b.count
	}
	return lower
}

// mergeBuckets adds the _bucket series of several histograms by bound.
func mergeBuckets(into map[float64]float64, s series) {
	le, err := strconv.ParseFloat(s.labels["le"], 64)
	if err != nil {
		return
	}
	into[le] += s.value
}

func sortedBuckets(m map[float64]float64) []bucket {
	out := make([]bucket, 0, len(m))
	for le, c := range m {
		out = append(out, bucket{le, c})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].le < out[j].le })
	return out
}

// deltaBuckets is now minus then, bound by bound.
func deltaBuckets(now, then []bucket) []bucket {
	prev := map[float64]float64{}
	for _, b := range then {
		prev[b.le] = b.count
	}
	out := make([]bucket, len(now))
	for i, b := range now {
		out[i] = bucket{b.le, b.count - prev[b.le]}
	}
	return out
}

var posInf = math.Inf(1)

// parseWindow parses an SLO query with a 5m window filled in.
func parseWindow(query string) (parser.Expr, error) {
	return parser.ParseExpr(strings.ReplaceAll(query, "{{.window}}", "5m"))
}
