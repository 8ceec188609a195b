package capacity

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/surge-commerce/surge/internal/slo"
)

// LatencySLO is one latency objective found in an SLO file.
type LatencySLO struct {
	Name      string
	Objective float64       // percent of requests, e.g. 99
	Threshold time.Duration // the histogram bucket they must fall in
	Kind      string        // page, checkout or queue
}

// classRoutes are the routes (method and path template, as the server's
// http_route and http_request_method labels say) each request class's
// requests count under.
var classRoutes = map[string][]string{
	CachedPage:   {"GET /{$}", "GET /categories/{slug}", "GET /products/{slug}"},
	UncachedPage: {"GET /categories/{slug}"},
	Search:       {"GET /search"},
	AddToCart:    {"POST /api/v1/cart/items"},
	Checkout:     {"POST /api/v1/checkout"},
	DropJoin:     {"POST /api/v1/drops/{id}/queue/join"},
	DropStatus:   {"GET /api/v1/drops/{id}/queue"},
}

// sloKinds are the three objectives an event plans by, and the classes
// each one judges.
var sloKinds = []struct {
	kind    string
	classes []string
}{
	{"page", []string{CachedPage, UncachedPage, Search}},
	{"checkout", []string{AddToCart, Checkout}},
	{"queue", []string{DropJoin, DropStatus}},
}

// ReadSLOFile reads the latency objectives of a Sloth prometheus/v1 file
// with internal/slo, the reader `surge load --slo` and the operations
// pack use. An objective on HTTP requests whose error query names a
// histogram bucket is a latency objective; it applies to each kind whose
// classes' routes it counts (one objective may judge pages and checkout
// alike). A missing file is not an error: it returns os.ErrNotExist
// wrapped, and the event's own figures stand.
func ReadSLOFile(path string) ([]LatencySLO, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	f, err := slo.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var out []LatencySLO
	for _, o := range f.SLOs {
		sli, ok, err := o.RequestSLI()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if !ok || sli.Within <= 0 {
			continue // an availability objective, or one on events only the server sees
		}
		for _, k := range sloKinds {
			if countsAny(sli, k.classes) {
				out = append(out, LatencySLO{Name: o.Name, Objective: o.Objective, Threshold: sli.Within, Kind: k.kind})
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no latency objective on the routes the planner sizes (an SLO on %s whose error query names an le bucket)",
			path, slo.RequestMetric)
	}
	return out, nil
}

func countsAny(sli slo.RequestSLI, classes []string) bool {
	for _, c := range classes {
		for _, r := range classRoutes[c] {
			method, route, _ := strings.Cut(r, " ")
			if sli.Counts(method, route) {
				return true
			}
		}
	}
	return false
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
	from := map[string]string{}
	for _, s := range slos {
		var dst *Duration
		switch s.Kind {
		case "page":
			dst = &e.SLO.PageP99
		case "checkout":
			dst = &e.SLO.CheckoutP99
		case "queue":
			dst = &e.SLO.QueueP99
		default:
			continue
		}
		if from[s.Kind] == "" || s.Threshold < dst.D() {
			*dst = Duration(s.Threshold)
			from[s.Kind] = s.Name
		}
	}
	var parts []string
	for _, k := range sloKinds {
		if name := from[k.kind]; name != "" {
			parts = append(parts, fmt.Sprintf("%s p99 %s (%s)", k.kind, e.sloFor(k.kind), name))
		} else {
			parts = append(parts, fmt.Sprintf("%s p99 %s (the event's; no latency objective there)", k.kind, e.sloFor(k.kind)))
		}
	}
	return fmt.Sprintf("SLOs from %s: %s", path, strings.Join(parts, ", "))
}

func (e *Event) sloFor(kind string) time.Duration {
	switch kind {
	case "checkout":
		return e.SLO.CheckoutP99.D()
	case "queue":
		return e.SLO.QueueP99.D()
	}
	return e.SLO.PageP99.D()
}
