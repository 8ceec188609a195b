package slo_test

import (
	"os"
	"regexp"
	"regexp/syntax"
	"strings"
	"testing"
	"time"

	"github.com/surge-commerce/surge/internal/slo"
	"github.com/surge-commerce/surge/internal/storefront"
	"github.com/surge-commerce/surge/internal/telemetry"
)

func mustShipped(t *testing.T) *slo.File {
	t.Helper()
	data, err := os.ReadFile("../../deploy/slo/surge.yaml")
	if err != nil {
		t.Fatal(err)
	}
	f, err := slo.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func find(t *testing.T, f *slo.File, name string) slo.SLO {
	t.Helper()
	for _, s := range f.SLOs {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no SLO %q", name)
	return slo.SLO{}
}

// TestShippedSLOs: every journey the issue names has an objective with a
// rationale and an alert name.
func TestShippedSLOs(t *testing.T) {
	f := mustShipped(t)
	for _, name := range []string{"storefront-availability", "storefront-latency-cached", "storefront-latency-uncached",
		"cart-add-availability", "checkout-availability", "checkout-latency", "checkout-payments",
		"waitroom-availability", "order-pipeline-freshness"} {
		s := find(t, f, name)
		if s.Description == "" || s.Alert == "" || s.Objective < 90 {
			t.Errorf("%s: objective %v, alert %q, rationale %q", name, s.Objective, s.Alert, s.Description)
		}
	}
}

// TestRequestSLIs reads the HTTP objectives as a load test judges them.
// A browse request shed with 503 counts against the storefront, never
// against checkout.
func TestRequestSLIs(t *testing.T) {
	f := mustShipped(t)
	sli := func(name string) slo.RequestSLI {
		s := find(t, f, name)
		r, ok, err := s.RequestSLI()
		if err != nil || !ok {
			t.Fatalf("%s: ok %v, err %v", name, ok, err)
		}
		return r
	}
	checkout := sli("checkout-availability")
	browse := sli("storefront-availability")
	if !checkout.Counts("POST", "/api/v1/checkout") || !checkout.Counts("POST", "/checkout") {
		t.Error("checkout does not count checkouts")
	}
	if checkout.Counts("GET", "/products/{slug}") || checkout.Counts("GET", "/checkout") {
		t.Error("checkout counts browse requests")
	}
	if !browse.Counts("GET", "/products/{slug}") || !browse.Counts("GET", "/{$}") || !browse.Counts("GET", "/cart") {
		t.Error("storefront does not count its pages")
	}
	if browse.Counts("POST", "/api/v1/checkout") {
		t.Error("storefront counts checkouts")
	}
	for code, bad := range map[int]bool{201: false, 409: false, 400: false, 500: true, 503: true, 0: true} {
		if checkout.BadCode(code) != bad || browse.BadCode(code) != bad {
			t.Errorf("status %d bad = %v/%v, want %v", code, checkout.BadCode(code), browse.BadCode(code), bad)
		}
	}
	if d := sli("checkout-latency").Within; d != time.Second {
		t.Errorf("checkout latency bound %v", d)
	}
	if d := sli("storefront-latency-cached").Within; d != 250*time.Millisecond {
		t.Errorf("cached pages bound %v", d)
	}
	for _, name := range []string{"checkout-payments", "order-pipeline-freshness"} {
		if _, ok, err := find(t, f, name).RequestSLI(); ok || err != nil {
			t.Errorf("%s: ok %v, err %v: it reads server-side events", name, ok, err)
		}
	}
}

// TestSLORoutesExist: every route an objective names is one the shop
// serves, so renaming a route cannot silently empty an SLO.
func TestSLORoutesExist(t *testing.T) {
	var templates []string
	for _, p := range storefront.RoutePatterns() {
		templates = append(templates, telemetry.RouteTemplate(p))
	}
	for _, s := range mustShipped(t).SLOs {
		r, ok, err := s.RequestSLI()
		if err != nil {
			t.Fatal(err)
		}
		if !ok || r.Route == nil {
			continue
		}
		re, err := syntax.Parse(r.Route.Value, syntax.Perl)
		if err != nil {
			t.Fatal(err)
		}
		alts := []*syntax.Regexp{re}
		if re.Op == syntax.OpAlternate {
			alts = re.Sub
		}
		for _, alt := range alts {
			one := regexp.MustCompile("^(?:" + alt.String() + ")$")
			found := false
			for _, tpl := range templates {
				found = found || one.MatchString(tpl)
			}
			if !found {
				t.Errorf("%s: route %s matches no route the shop serves", s.Name, alt)
			}
		}
	}
}

func TestParseRefusesBadFiles(t *testing.T) {
	good := `version: prometheus/v1
service: surge
slos:
  - name: a
    objective: 99
    sli: {events: {error_query: 'sum(rate(x{code="5"}[{{.window}}]))', total_query: 'sum(rate(x[{{.window}}]))'}}
`
	if _, err := slo.Parse([]byte(good)); err != nil {
		t.Fatalf("good file: %v", err)
	}
	for name, src := range map[string]string{
		"version":    strings.Replace(good, "prometheus/v1", "sloth/v2", 1),
		"objective":  strings.Replace(good, "objective: 99", "objective: 100", 1),
		"query":      strings.Replace(good, "sum(rate(x[", "sum(rate(x[[", 1),
		"no events":  strings.Replace(good, "sli: {events:", "sli: {raw:", 1),
		"no slos":    "version: prometheus/v1\nservice: s\n",
		"twice":      good + strings.SplitN(good, "slos:\n", 2)[1],
		"not yaml":   "{",
		"no service": strings.Replace(good, "service: surge", "", 1),
	} {
		if _, err := slo.Parse([]byte(src)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestMetricNames(t *testing.T) {
	got, err := slo.MetricNames(`sum(rate(a_total{x="1"}[5m])) / sum(rate(b_total[5m])) + on() group_left a_total`)
	if err != nil || strings.Join(got, ",") != "a_total,b_total" {
		t.Fatalf("got %v, %v", got, err)
	}
	if _, err := slo.MetricNames(`{job="x"}`); err == nil {
		t.Fatal("a selector without a metric name passed")
	}
	if _, err := slo.MetricNames(`rate(`); err == nil {
		t.Fatal("bad PromQL passed")
	}
}

// FuzzParse: no SLO file makes Parse or the request reading panic.
func FuzzParse(f *testing.F) {
	data, err := os.ReadFile("../../deploy/slo/surge.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add([]byte("version: prometheus/v1\nservice: s\nslos: [{name: a, objective: 50, sli: {events: {error_query: 'a', total_query: 'b'}}}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := slo.Parse(data)
		if err != nil {
			return
		}
		for _, s := range file.SLOs {
			if r, ok, err := s.RequestSLI(); ok && err == nil {
				_ = r.String()
				r.Counts("GET", "/")
				r.BadCode(500)
			}
		}
	})
}
