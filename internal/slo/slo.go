// Package slo reads Surge's service level objectives, kept in Sloth's
// prometheus/v1 format (deploy/slo/surge.yaml), and tells what each one
// measures: the objective, the Prometheus queries of its good and bad
// events and, for the objectives on HTTP requests, which requests count
// and what makes one bad, so a load test can judge requests by the same
// rules the alerts use.
package slo

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"
)

// File is an SLO file: the service and its objectives.
type File struct {
	Service string
	// Labels are added to every rule generated from the file.
	Labels map[string]string
	SLOs   []SLO
}

// SLO is one objective.
type SLO struct {
	Name string
	// Objective is the share of good events, in percent (99.9).
	Objective float64
	// Description is the objective's rationale.
	Description string
	// ErrorQuery and TotalQuery are the PromQL of the bad and of all
	// events, with "{{.window}}" where the rate window goes.
	ErrorQuery, TotalQuery string
	// Alert is the name of its burn-rate alerts.
	Alert string
}

// ErrorBudget is the share of events allowed to be bad, 0..1.
func (s SLO) ErrorBudget() float64 { return (100 - s.Objective) / 100 }

type specFile struct {
	Version string            `yaml:"version"`
	Service string            `yaml:"service"`
	Labels  map[string]string `yaml:"labels"`
	SLOs    []struct {
		Name        string  `yaml:"name"`
		Objective   float64 `yaml:"objective"`
		Description string  `yaml:"description"`
		SLI         struct {
			Events *struct {
				ErrorQuery string `yaml:"error_query"`
				TotalQuery string `yaml:"total_query"`
			} `yaml:"events"`
		} `yaml:"sli"`
		Alerting struct {
			Name string `yaml:"name"`
		} `yaml:"alerting"`
	} `yaml:"slos"`
}

// Parse reads an SLO file. Only event-based SLIs (error_query over
// total_query) are supported; every query must be valid PromQL once its
// window is filled in.
func Parse(data []byte) (*File, error) {
	var spec specFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&spec); err != nil {
		return nil, fmt.Errorf("slo file: %w", err)
	}
	if spec.Version != "prometheus/v1" {
		return nil, fmt.Errorf("slo file: version %q, want prometheus/v1 (Sloth's spec)", spec.Version)
	}
	if spec.Service == "" {
		return nil, errors.New("slo file: service: required")
	}
	f := &File{Service: spec.Service, Labels: spec.Labels}
	seen := map[string]bool{}
	var errs []error
	for i, s := range spec.SLOs {
		where := fmt.Sprintf("slo file: slos[%d] %q", i, s.Name)
		switch {
		case s.Name == "":
			errs = append(errs, fmt.Errorf("slo file: slos[%d]: name: required", i))
			continue
		case seen[s.Name]:
			errs = append(errs, fmt.Errorf("%s: named twice", where))
			continue
		case s.Objective <= 0 || s.Objective >= 100:
			errs = append(errs, fmt.Errorf("%s: objective %v: want a percentage between 0 and 100, like 99.9", where, s.Objective))
			continue
		case s.SLI.Events == nil:
			errs = append(errs, fmt.Errorf("%s: sli: only events (error_query, total_query) are supported", where))
			continue
		}
		seen[s.Name] = true
		o := SLO{Name: s.Name, Objective: s.Objective, Description: strings.TrimSpace(s.Description),
			ErrorQuery: strings.TrimSpace(s.SLI.Events.ErrorQuery), TotalQuery: strings.TrimSpace(s.SLI.Events.TotalQuery),
			Alert: s.Alerting.Name}
		for _, q := range []string{o.ErrorQuery, o.TotalQuery} {
			if _, err := parser.ParseExpr(Window(q, "5m")); err != nil {
				errs = append(errs, fmt.Errorf("%s: query %q: %w", where, q, err))
			}
		}
		f.SLOs = append(f.SLOs, o)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if len(f.SLOs) == 0 {
		return nil, errors.New("slo file: no slos")
	}
	return f, nil
}

// Window fills a query's rate window in: Sloth's "{{.window}}" template.
func Window(query, window string) string {
	return strings.ReplaceAll(query, "{{.window}}", window)
}

// MetricNames lists the metric names a PromQL expression selects, each
// once, in order of appearance. A selector without a metric name is an
// error: it could read any metric, so no check can say the names exist.
func MetricNames(expr string) ([]string, error) {
	e, err := parser.ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	var names []string
	var bad error
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		if name == "" {
			for _, m := range vs.LabelMatchers {
				if m.Name == "__name__" {
					name = m.Value
				}
			}
		}
		if name == "" {
			bad = fmt.Errorf("selector %s names no metric", vs)
			return nil
		}
		for _, n := range names {
			if n == name {
				return nil
			}
		}
		names = append(names, name)
		return nil
	})
	return names, bad
}
