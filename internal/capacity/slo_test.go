package capacity

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func eventWithDefaults(t *testing.T) *Event {
	t.Helper()
	e, err := ParseEvent([]byte("name: e\nbaseline: 1\nphases: [{name: a, for: 1m}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestShippedSLOFile reads deploy/slo/surge.yaml as the planner applies
// it: cached pages within 250 ms, checkout within 1 s. The personal pages'
// 500 ms objective (cart, the checkout form) judges none of the routes the
// planner sizes, and order-pipeline-freshness is not about HTTP requests:
// neither may tighten checkout, as a reader that sorted objectives by the
// words in their names and queries did.
func TestShippedSLOFile(t *testing.T) {
	e := eventWithDefaults(t)
	note := e.ApplySLOFile("../../deploy/slo/surge.yaml")
	if e.SLO.PageP99.D() != 250*time.Millisecond || e.SLO.CheckoutP99.D() != time.Second {
		t.Errorf("page p99 %s, checkout p99 %s; want 250ms and 1s (%s)", e.SLO.PageP99.D(), e.SLO.CheckoutP99.D(), note)
	}
	// No latency objective on the waiting room: the event's own stands.
	if e.SLO.QueueP99.D() != 500*time.Millisecond {
		t.Errorf("queue p99 %s, want the event's 500ms", e.SLO.QueueP99.D())
	}
	for _, want := range []string{"storefront-latency-cached", "checkout-latency", "queue p99 500ms (the event's"} {
		if !strings.Contains(note, want) {
			t.Errorf("note %q lacks %q", note, want)
		}
	}
}

const sloHead = `version: "prometheus/v1"
service: "surge"
slos:
`

func latencySLO(name, method, routes, le string) string {
	sel := `http_request_method="` + method + `",http_route=~"` + routes + `"`
	return `  - name: "` + name + `"
    objective: 99
    sli:
      events:
        error_query: (sum(rate(http_server_request_duration_seconds_count{` + sel + `}[{{.window}}])) - sum(rate(http_server_request_duration_seconds_bucket{` + sel + `,le="` + le + `"}[{{.window}}])))
        total_query: sum(rate(http_server_request_duration_seconds_count{` + sel + `}[{{.window}}]))
`
}

// TestSLOFileKinds: an objective applies to the kinds whose routes it
// counts, whatever it is called; the strictest of each kind wins.
func TestSLOFileKinds(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "slo.yaml")
	body := sloHead +
		latencySLO("fast-home", "GET", "/\\\\{\\\\$\\\\}", "0.1") +
		latencySLO("all-pages", "GET", "/\\\\{\\\\$\\\\}|/search|/products/\\\\{slug\\\\}", "0.3") +
		latencySLO("line", "GET", "/api/v1/drops/\\\\{id\\\\}/queue", "0.2") +
		latencySLO("buying", "POST", "/api/v1/cart/items|/api/v1/checkout", "0.75")
	if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	slos, err := ReadSLOFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(slos) != 4 {
		t.Errorf("read %+v, want 4 objectives", slos)
	}
	e := eventWithDefaults(t)
	note := e.ApplySLOFile(file)
	if e.SLO.PageP99.D() != 100*time.Millisecond || e.SLO.QueueP99.D() != 200*time.Millisecond || e.SLO.CheckoutP99.D() != 750*time.Millisecond {
		t.Errorf("SLOs %+v (%s)", e.SLO, note)
	}

	// The event's own file wins over the default; a missing one leaves the
	// event's figures and says so; a broken one too, saying why.
	e = eventWithDefaults(t)
	e.SLO.File = filepath.Join(dir, "missing.yaml")
	if note := e.ApplySLOFile(file); !strings.Contains(note, "does not exist") || e.SLO.PageP99.D() != 500*time.Millisecond {
		t.Errorf("missing file: %q, %+v", note, e.SLO)
	}
	if _, err := ReadSLOFile(filepath.Join(dir, "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	for name, bad := range map[string]string{
		"version":      strings.Replace(body, "prometheus/v1", "sloth/v1", 1),
		"promql":       strings.Replace(body, "sum(rate(", "sum(rate((", 1),
		"availability": sloHead + strings.Replace(latencySLO("x", "GET", "/search", "0.1"), `,le="0.1"`, `,http_response_status_code=~"5.."`, 1),
	} {
		path := filepath.Join(dir, name+".yaml")
		if err := os.WriteFile(path, []byte(bad), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadSLOFile(path); err == nil {
			t.Errorf("%s: accepted", name)
		}
		e := eventWithDefaults(t)
		if note := e.ApplySLOFile(path); !strings.Contains(note, "the event's own") || e.SLO.PageP99.D() != 500*time.Millisecond {
			t.Errorf("%s: %q, %+v", name, note, e.SLO)
		}
	}
}
