package slo

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// RequestMetric is the HTTP server histogram the request objectives read.
const RequestMetric = "http_server_request_duration_seconds"

// RequestSLI is an objective on HTTP requests, read from its queries over
// RequestMetric: which requests count, and what makes one bad.
type RequestSLI struct {
	// Route and Method select the requests that count by their
	// http_route (path template) and http_request_method labels; nil
	// selects any.
	Route, Method *labels.Matcher
	// BadStatus, for an availability objective, matches the status codes
	// of bad requests.
	BadStatus *labels.Matcher
	// Within, for a latency objective, is the bound a good request
	// answers within.
	Within time.Duration
}

// Counts reports whether a request with this method on this route
// template counts.
func (r RequestSLI) Counts(method, route string) bool {
	return (r.Route == nil || r.Route.Matches(route)) && (r.Method == nil || r.Method.Matches(method))
}

// BadCode reports whether a counted request answered with code is bad
// for an availability objective. A request with no answer (code 0: it
// timed out or its connection failed) is bad.
func (r RequestSLI) BadCode(code int) bool {
	if code == 0 {
		return true
	}
	return r.BadStatus != nil && r.BadStatus.Matches(strconv.Itoa(code))
}

// String describes the SLI: which requests, and what is bad.
func (r RequestSLI) String() string {
	var b strings.Builder
	if r.Method != nil {
		b.WriteString(r.Method.Value + " ")
	}
	if r.Route != nil {
		b.WriteString(r.Route.Value)
	} else {
		b.WriteString("any route")
	}
	if r.BadStatus != nil {
		b.WriteString(", bad: status " + r.BadStatus.Value + " or no answer")
	} else {
		b.WriteString(", good: within " + r.Within.String())
	}
	return b.String()
}

// RequestSLI reads the objective as one on HTTP requests. ok is false when
// its queries read other metrics (events only the server sees). Two shapes
// are understood, the two the SLO file uses:
//
//	availability: error  = sum(rate(M_count{sel, http_response_status_code=~"5.."}))
//	              total  = sum(rate(M_count{sel}))
//	latency:      error  = sum(rate(M_count{sel})) - sum(rate(M_bucket{sel, le="0.5"}))
//	              total  = sum(rate(M_count{sel}))
//
// where sel matches only http_route and http_request_method. Any other
// matcher is an error rather than silently judged differently.
func (s SLO) RequestSLI() (sli RequestSLI, ok bool, err error) {
	total, err := selectors(s.TotalQuery)
	if err != nil {
		return sli, false, err
	}
	errSel, err := selectors(s.ErrorQuery)
	if err != nil {
		return sli, false, err
	}
	for _, vs := range append(total, errSel...) {
		if !strings.HasPrefix(vs.Name, RequestMetric+"_") {
			return sli, false, nil
		}
	}
	if len(total) != 1 || total[0].Name != RequestMetric+"_count" {
		return sli, false, fmt.Errorf("slo %s: total_query must read one %s_count selector", s.Name, RequestMetric)
	}
	base := map[string]*labels.Matcher{}
	for _, m := range total[0].LabelMatchers {
		switch m.Name {
		case "__name__":
		case "http_route":
			sli.Route = m
		case "http_request_method":
			sli.Method = m
		default:
			return sli, false, fmt.Errorf("slo %s: total_query matches %s; a load test can judge only http_route and http_request_method", s.Name, m)
		}
		base[m.Name] = m
	}
	for _, vs := range errSel {
		for _, m := range vs.LabelMatchers {
			switch {
			case m.Name == "__name__":
			case base[m.Name] != nil && base[m.Name].String() == m.String():
			case m.Name == "http_response_status_code" && vs.Name == RequestMetric+"_count":
				sli.BadStatus = m
			case m.Name == "le" && m.Type == labels.MatchEqual && vs.Name == RequestMetric+"_bucket":
				le, err := strconv.ParseFloat(m.Value, 64)
				if err != nil || le <= 0 {
					return sli, false, fmt.Errorf("slo %s: bucket bound %s", s.Name, m)
				}
				sli.Within = time.Duration(le * float64(time.Second))
			default:
				return sli, false, fmt.Errorf("slo %s: error_query matches %s, which its total_query does not", s.Name, m)
			}
		}
	}
	if (sli.BadStatus == nil) == (sli.Within == 0) {
		return sli, false, fmt.Errorf("slo %s: error_query must match either bad status codes (availability) or an le bucket (latency)", s.Name)
	}
	return sli, true, nil
}

// selectors returns the vector selectors of a query, its window filled in.
func selectors(query string) ([]*parser.VectorSelector, error) {
	e, err := parser.ParseExpr(Window(query, "5m"))
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
