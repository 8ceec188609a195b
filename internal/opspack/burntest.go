package opspack

import (
	"fmt"
	"regexp/syntax"
	"sort"
	"strconv"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"

	"github.com/surge-commerce/surge/internal/slo"
)

// ruleFile is the part of a Prometheus rule file the generators read.
type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Record      string            `yaml:"record"`
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// promtool's unit test file (promtool test rules).
type unitTestFile struct {
	RuleFiles          []string   `yaml:"rule_files"`
	EvaluationInterval string     `yaml:"evaluation_interval"`
	Tests              []unitTest `yaml:"tests"`
}

type unitTest struct {
	Name        string        `yaml:"name"`
	Interval    string        `yaml:"interval"`
	InputSeries []inputSeries `yaml:"input_series"`
	AlertTests  []alertTest   `yaml:"alert_rule_test,omitempty"`
	ExprTests   []exprTest    `yaml:"promql_expr_test,omitempty"`
}

type inputSeries struct {
	Series string `yaml:"series"`
	Values string `yaml:"values"`
}

type alertTest struct {
	EvalTime  string        `yaml:"eval_time"`
	AlertName string        `yaml:"alertname"`
	ExpAlerts []expectAlert `yaml:"exp_alerts"`
}

type expectAlert struct {
	Labels      map[string]string `yaml:"exp_labels"`
	Annotations map[string]string `yaml:"exp_annotations"`
}

type exprTest struct {
	Expr       string         `yaml:"expr"`
	EvalTime   string         `yaml:"eval_time"`
	ExpSamples []expectSample `yaml:"exp_samples"`
}

type expectSample struct {
	Labels string  `yaml:"labels"`
	Value  float64 `yaml:"value"`
}

// burnRates are the speeds the unit tests burn each SLO's budget at: the
// page threshold of the quick window, and the speed that spends exactly
// the budget over the period, which must never page.
var burnRates = []struct {
	factor float64
	pages  bool
}{{14.4, true}, {1, false}}

// eventsPerMinute is how many events the synthetic series count a minute.
const eventsPerMinute = 1000

// BurnTests generates promtool unit tests for the SLO rules in rules (the
// file at rulesPath, relative to the test file): for every SLO, input
// series burning its error budget at 14.4x must fire its page alert
// within the hour, and at 1x must leave it silent. The input series are
// read from each SLO's own queries, so the tests follow the SLO file.
func BurnTests(spec *slo.File, rules []byte, rulesPath string) ([]byte, error) {
	var rf ruleFile
	if err := yaml.Unmarshal(rules, &rf); err != nil {
		return nil, fmt.Errorf("burn tests: rules: %w", err)
	}
	type alertRule struct{ labels, annotations map[string]string }
	alerts := map[string][]alertRule{} // by alert name: page, ticket
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				alerts[r.Alert] = append(alerts[r.Alert], alertRule{r.Labels, r.Annotations})
			}
		}
	}
	// Rules are evaluated every 5 minutes, the shortest window, which keeps
	// the test fast; the input series still have a sample a minute.
	out := unitTestFile{RuleFiles: []string{rulesPath}, EvaluationInterval: "5m"}
	for _, s := range spec.SLOs {
		if len(alerts[s.Alert]) == 0 {
			return nil, fmt.Errorf("burn tests: slo %s: no alert %q in the rules", s.Name, s.Alert)
		}
		// The labels every alert of this SLO carries besides its own.
		sloLabels := map[string]string{"alertname": s.Alert, "sloth_id": spec.Service + "-" + s.Name,
			"sloth_service": spec.Service, "sloth_slo": s.Name}
		for k, v := range spec.Labels {
			sloLabels[k] = v
		}
		for _, b := range burnRates {
			series, err := burnSeries(s, b.factor*s.ErrorBudget())
			if err != nil {
				return nil, fmt.Errorf("burn tests: slo %s: %w", s.Name, err)
			}
			t := unitTest{Name: fmt.Sprintf("%s burning its budget at %gx", s.Name, b.factor), Interval: "1m", InputSeries: series}
			if b.pages {
				// Every alert of the SLO fires: the page, and the ticket,
				// whose lower threshold a 14.4x burn passes as well.
				at := alertTest{EvalTime: "1h", AlertName: s.Alert}
				for _, a := range alerts[s.Alert] {
					e := expectAlert{Labels: map[string]string{}, Annotations: map[string]string{}}
					for k, v := range sloLabels {
						e.Labels[k] = v
					}
					for k, v := range a.labels {
						e.Labels[k] = v
					}
					for k, v := range a.annotations {
						e.Annotations[k] = expandLabels(v, e.Labels)
					}
					delete(e.Labels, "alertname")
					at.ExpAlerts = append(at.ExpAlerts, e)
				}
				t.AlertTests = append(t.AlertTests, at)
			} else {
				// At 1x the ticket threshold is met exactly, so only the
				// page is asserted: it stays silent over two hours.
				for _, at := range []string{"1h", "2h"} {
					t.ExprTests = append(t.ExprTests, exprTest{
						Expr:     fmt.Sprintf(`ALERTS{alertname=%q, sloth_severity="page"}`, s.Alert),
						EvalTime: at, ExpSamples: []expectSample{}})
				}
			}
			out.Tests = append(out.Tests, t)
		}
	}
	b, err := yaml.Marshal(out)
	if err != nil {
		return nil, err
	}
	return append([]byte("# Code generated by go generate ./deploy from deploy/slo/surge.yaml; DO NOT EDIT.\n# promtool test rules: each SLO's page alert fires on a 14.4x burn of its error\n# budget and stays silent at 1x.\n"), b...), nil
}

// expandLabels fills in the {{$labels.name}} references of an annotation
// as Prometheus does for these simple forms.
func expandLabels(s string, ls map[string]string) string {
	for k, v := range ls {
		s = strings.ReplaceAll(s, "{{$labels."+k+"}}", v)
	}
	return s
}

// burnSeries makes input series for which the SLO's error ratio is ratio:
// eventsPerMinute events a minute, ratio of them bad, for two hours.
// Availability SLIs (bad = a subset of the total by one more matcher) get
// a bad and a good series; latency SLIs (bad = count - bucket) get the
// count and the bucket.
func burnSeries(s slo.SLO, ratio float64) ([]inputSeries, error) {
	errSel, err := selectorsOf(s.ErrorQuery)
	if err != nil {
		return nil, err
	}
	totalSel, err := selectorsOf(s.TotalQuery)
	if err != nil {
		return nil, err
	}
	if len(totalSel) != 1 {
		return nil, fmt.Errorf("total_query: want one selector, have %d", len(totalSel))
	}
	total := totalSel[0]
	grow := func(perMinute float64) string {
		// Nine digits drop the noise of float arithmetic (1x of 99.9% is
		// 1 event a minute, not 0.9999999999999432).
		return "0+" + strconv.FormatFloat(perMinute, 'g', 9, 64) + "x120"
	}
	switch len(errSel) {
	case 1: // availability
		bad := errSel[0]
		if bad.Name != total.Name {
			return nil, fmt.Errorf("error_query reads %s, total_query %s", bad.Name, total.Name)
		}
		badLabels, err := concrete(bad.LabelMatchers)
		if err != nil {
			return nil, err
		}
		goodLabels, err := concrete(total.LabelMatchers)
		if err != nil {
			return nil, err
		}
		// The good series differs from the bad by the matchers only the
		// error query has.
		for _, m := range bad.LabelMatchers {
			if _, inTotal := goodLabels[m.Name]; inTotal || m.Name == "__name__" {
				continue
			}
			v, err := notMatching(m)
			if err != nil {
				return nil, err
			}
			goodLabels[m.Name] = v
		}
		return []inputSeries{
			{seriesString(bad.Name, badLabels), grow(ratio * eventsPerMinute)},
			{seriesString(total.Name, goodLabels), grow((1 - ratio) * eventsPerMinute)},
		}, nil
	case 2: // latency: count - bucket
		var bucket *parser.VectorSelector
		for _, vs := range errSel {
			if strings.HasSuffix(vs.Name, "_bucket") {
				bucket = vs
			}
		}
		if bucket == nil {
			return nil, fmt.Errorf("error_query: want count - bucket")
		}
		countLabels, err := concrete(total.LabelMatchers)
		if err != nil {
			return nil, err
		}
		bucketLabels, err := concrete(bucket.LabelMatchers)
		if err != nil {
			return nil, err
		}
		return []inputSeries{
			{seriesString(total.Name, countLabels), grow(eventsPerMinute)},
			{seriesString(bucket.Name, bucketLabels), grow((1 - ratio) * eventsPerMinute)},
		}, nil
	}
	return nil, fmt.Errorf("error_query: %d selectors; want one (availability) or two (latency)", len(errSel))
}

func selectorsOf(query string) ([]*parser.VectorSelector, error) {
	e, err := parser.ParseExpr(slo.Window(query, "5m"))
	if err != nil {
		return nil, err
	}
	var out []*parser.VectorSelector
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			out = append(out, vs)
		}
		return nil
	})
	return out, nil
}

// concrete picks label values that satisfy the matchers.
func concrete(ms []*labels.Matcher) (map[string]string, error) {
	out := map[string]string{}
	for _, m := range ms {
		if m.Name == "__name__" {
			continue
		}
		switch m.Type {
		case labels.MatchEqual:
			out[m.Name] = m.Value
		case labels.MatchRegexp:
			v, err := sampleOf(m.Value)
			if err != nil || !m.Matches(v) {
				return nil, fmt.Errorf("no sample value for %s (%v)", m, err)
			}
			out[m.Name] = v
		default: // a missing label satisfies != and !~ of a non-empty value
			if m.Matches("") {
				continue
			}
			return nil, fmt.Errorf("matcher %s needs a value", m)
		}
	}
	return out, nil
}

// sampleOf returns a string the regular expression matches: the first
// alternative, any character as '0'.
func sampleOf(re string) (string, error) {
	r, err := syntax.Parse(re, syntax.Perl)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	var walk func(r *syntax.Regexp)
	walk = func(r *syntax.Regexp) {
		switch r.Op {
		case syntax.OpLiteral:
			b.WriteString(string(r.Rune))
		case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
			b.WriteByte('0')
		case syntax.OpCharClass:
			b.WriteRune(r.Rune[0])
		case syntax.OpAlternate:
			walk(r.Sub[0])
		case syntax.OpConcat, syntax.OpCapture:
			for _, s := range r.Sub {
				walk(s)
			}
		case syntax.OpPlus, syntax.OpRepeat:
			for range max(r.Min, 1) {
				walk(r.Sub[0])
			}
		}
	}
	walk(r.Simplify())
	return b.String(), nil
}

// notMatching returns a plausible label value m does not match.
func notMatching(m *labels.Matcher) (string, error) {
	for _, v := range []string{"200", "ok", "GET", "x"} {
		if !m.Matches(v) {
			return v, nil
		}
	}
	return "", fmt.Errorf("no value escapes %s", m)
}

func seriesString(name string, ls map[string]string) string {
	keys := make([]string, 0, len(ls))
	for k := range ls {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + strconv.Quote(ls[k])
	}
	return name + "{" + strings.Join(parts, ", ") + "}"
}
