package capacity

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// slothSpec is the part of Sloth's prometheus/v1 SLO spec the planner
// reads: each SLO's name, objective and event queries.
type slothSpec struct {
	Version string `yaml:"version"`
	Service string `yaml:"service"`
	SLOs    []struct {
		Name      string  `yaml:"name"`
		Objective float64 `yaml:"objective"`
		SLI       struct {
			Events *struct {
				ErrorQuery string `yaml:"error_query"`
				TotalQuery string `yaml:"total_query"`
			} `yaml:"events"`
			Raw *struct {
				ErrorRatioQuery string `yaml:"error_ratio_query"`
			} `yaml:"raw"`
		} `yaml:"sli"`
	} `yaml:"slos"`
}

// LatencySLO is one latency objective found in an SLO file.
type LatencySLO struct {
	Name      string
	Objective float64       // percent of requests, e.g. 99
	Threshold time.Duration // the histogram bucket they must fall in
	Kind      string        // page, checkout or queue
}

// leRE finds a histogram bucket bound in a PromQL query: le="0.5".
var leRE = regexp.MustCompile(`le\s*=~?\s*"([0-9.eE+]+)"`)

// ReadSLOFile reads the latency objectives of a Sloth prometheus/v1 file.
// A missing file is not an error: it returns os.ErrNotExist wrapped, and
// the event's own figures stand.
func ReadSLOFile(path string) ([]LatencySLO, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s slothSpec
	if err := yaml.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if s.Version != "prometheus/v1" {
		return nil, fmt.Errorf("%s: version %q: want Sloth's prometheus/v1", path, s.Version)
	}
	var out []LatencySLO
	for _, o := range s.SLOs {
		q := ""
		if o.SLI.Events != nil {
			q = o.SLI.Events.ErrorQuery + " " + o.SLI.Events.TotalQuery
		}
		if o.SLI.Raw != nil {
			q += " " + o.SLI.Raw.ErrorRatioQuery
		}
		m := leRE.FindStringSubmatch(q)
		if m == nil {
			continue // an availability objective
		}
		secs, err := strconv.ParseFloat(m[1], 64)
		if err != nil || secs <= 0 || secs > 600 {
			continue
		}
		kind := sloKind(o.Name + " " + q)
		if kind == "" {
			continue
		}
		if o.Objective <= 0 || o.Objective >= 100 {
			return nil, fmt.Errorf("%s: slo %s: objective %g: want a percentage below 100", path, o.Name, o.Objective)
		}
		out = append(out, LatencySLO{Name: o.Name, Objective: o.Objective,
			Threshold: time.Duration(secs * float64(time.Second)), Kind: kind})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no latency objective (an SLO whose query names a histogram bucket, le=\"...\")", path)
	}
	return out, nil
}

func sloKind(s string) string {
	s = strings.ToLower(s)
	switch {
	case strings.Contains(s, "checkout"):
		return "checkout"
	case strings.Contains(s, "queue") || strings.Contains(s, "waitroom") || strings.Contains(s, "waiting"):
		return "queue"
	case strings.Contains(s, "page") || strings.Contains(s, "storefront") || strings.Contains(s, "products") || strings.Contains(s, "categor"):
		return "page"
	}
	return ""
}

// ApplySLOFile takes the latency objectives of the event's SLO file (or
// of def, when the event names none and def exists) over the event's own
// figures; the strictest objective of each kind wins. It says which file
// it used, or why none.
func (e *Event) ApplySLOFile(def string) string {
	path := e.SLO.File
	if path == "" {
		path = def
	}
	if path == "" {
		return "SLOs: the event's own (no SLO file)"
	}
	slos, err := ReadSLOFile(path)
	if errors.Is(err, os.ErrNotExist) {
		if e.SLO.File != "" {
			return fmt.Sprintf("SLOs: the event's own; %s does not exist", path)
		}
		return fmt.Sprintf("SLOs: the event's own (%s not present)", path)
	}
	if err != nil {
		return fmt.Sprintf("SLOs: the event's own; %v", err)
	}
	seen := map[string]bool{}
	for _, s := range slos {
		var dst *Duration
		switch s.Kind {
		case "page":
			dst = &e.SLO.PageP99
		case "checkout":
			dst = &e.SLO.CheckoutP99
		case "queue":
			dst = &e.SLO.QueueP99
		}
		if !seen[s.Kind] || s.Threshold < dst.D() {
			*dst = Duration(s.Threshold)
		}
		seen[s.Kind] = true
	}
	return fmt.Sprintf("SLOs: latency objectives from %s (%d)", path, len(slos))
}
