package main

import (
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/surge-commerce/surge/internal/tracing/otlptest"
)

// TestCheckoutIsOneTraceAcrossProcesses runs an API process and a worker
// process exporting to a real OTLP/HTTP receiver, checks out with a
// sampled W3C traceparent (the ratio is 0, so only the parent's decision
// samples), and asserts that the checkout on the API and the order's
// processing on the worker are one trace: the same trace ID, every span's
// parent present, the bus hop from the API's publish span to the worker's
// consumer span, and the trace ID handed back. It also checks that the
// API process serves /ops on its operations listener behind the admin
// token.
func TestCheckoutIsOneTraceAcrossProcesses(t *testing.T) {
	recv := otlptest.Start(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", recv.URL)
	t.Setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
	t.Setenv("OTEL_TRACES_SAMPLER_ARG", "0")
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "100") // export within 100ms, not the default 5s
	dir := t.TempDir()
	api := startProc(t, "serve", "--role", "api", "--data-dir", dir, "--addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
		"--admin-token", testToken, "--access-log=false", "--log-level", "error", "--nats-listen", "127.0.0.1:0")
	startProc(t, "worker", "--data-dir", dir, "--admin-addr", "127.0.0.1:0", "--nats-url", api.NATS, "--log-level", "error")
	const sku = "TRACE-1"
	hotProduct(t, api.URL, sku, 10)

	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	post := func(path, body string, hdr ...string) *http.Response {
		req, _ := http.NewRequest("POST", api.URL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if r := post("/api/v1/cart/items", `{"sku":"`+sku+`","quantity":1}`); r.StatusCode != 201 {
		t.Fatalf("add to cart: %d", r.StatusCode)
	}
	const traceID, clientSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	resp := post("/api/v1/checkout", crashCheckout, "Idempotency-Key", "trace-1", "traceparent", "00-"+traceID+"-"+clientSpan+"-01")
	if resp.StatusCode != 201 {
		t.Fatalf("checkout: %d", resp.StatusCode)
	}
	if tp := resp.Header.Get("traceparent"); !strings.HasPrefix(tp, "00-"+traceID+"-") || strings.Contains(tp, clientSpan) {
		t.Errorf("response traceparent %q: want the server span of trace %s", tp, traceID)
	}

	inTrace := func(spans []otlptest.Span) []otlptest.Span {
		var out []otlptest.Span
		for _, s := range spans {
			if s.TraceID == traceID {
				out = append(out, s)
			}
		}
		return out
	}
	// Complete: the worker has paid the order, and every span's parent
	// (but the client's) has arrived.
	complete := func(spans []otlptest.Span) bool {
		tr := inTrace(spans)
		ids := map[string]bool{clientSpan: true}
		paid := false
		for _, s := range tr {
			ids[s.SpanID] = true
			paid = paid || s.Name == "store.MarkPaid" && s.Resource["surge.role"] == "worker"
		}
		for _, s := range tr {
			if !ids[s.ParentID] {
				return false
			}
		}
		return paid
	}
	spans, ok := recv.Wait(60*time.Second, complete)
	tr := inTrace(spans)
	if !ok {
		for _, s := range tr {
			t.Logf("%s %s parent %s %s (%s)", s.Resource["surge.role"], s.SpanID, s.ParentID, s.Name, s.Kind)
		}
		t.Fatalf("the trace never completed: %d spans of it arrived, %d spans in all", len(tr), len(spans))
	}
	byID := map[string]otlptest.Span{}
	for _, s := range tr {
		byID[s.SpanID] = s
	}
	// find returns the first span named name exported by role.
	find := func(role, name string) otlptest.Span {
		t.Helper()
		for _, s := range tr {
			if s.Name == name && s.Resource["surge.role"] == role {
				return s
			}
		}
		t.Fatalf("no %q span from the %s process", name, role)
		return otlptest.Span{}
	}
	server := find("api", "POST /api/v1/checkout")
	if server.ParentID != clientSpan || server.Kind != tracepb.Span_SPAN_KIND_SERVER || server.Attrs["http.route"] != "/api/v1/checkout" {
		t.Errorf("server span %+v: want a server span, child of the client's span, route /api/v1/checkout", server)
	}
	place := find("api", "store.PlaceOrder")
	if place.ParentID != server.SpanID {
		t.Errorf("store.PlaceOrder's parent is %s, want the request's span %s", place.ParentID, server.SpanID)
	}
	relay := find("api", "outbox relay surge.order.created")
	if relay.ParentID != place.SpanID {
		t.Errorf("the outbox relay's parent is %s, want the store call that wrote the event %s", relay.ParentID, place.SpanID)
	}
	publish := find("api", "publish surge.order.created")
	if publish.ParentID != relay.SpanID || publish.Kind != tracepb.Span_SPAN_KIND_PRODUCER {
		t.Errorf("publish span %+v: want a producer span, child of the relay span", publish)
	}
	var consumed otlptest.Span
	for _, s := range tr {
		if s.Name == "process surge.order.created" && s.Resource["surge.role"] == "worker" && s.ParentID == publish.SpanID {
			consumed = s
		}
	}
	if consumed.SpanID == "" || consumed.Kind != tracepb.Span_SPAN_KIND_CONSUMER {
		t.Fatalf("no worker consumer span child of the publish span %s", publish.SpanID)
	}
	// The payment calls run in the worker, under the consumer span.
	pay := find("worker", "payment capture")
	for p := pay; p.SpanID != consumed.SpanID; p = byID[p.ParentID] {
		if p.SpanID == "" || p.Resource["surge.role"] != "worker" {
			t.Fatalf("payment capture does not descend from the consumer span within the worker")
		}
	}
	// The API and the worker are different processes with their own
	// resources, and no request outside this trace was sampled (ratio 0).
	for _, s := range spans {
		if s.TraceID != traceID && !s.Error {
			t.Errorf("span %q of trace %s exported: the ratio is 0 and it did not fail", s.Name, s.TraceID)
		}
	}
	t.Logf("one trace, %d spans: %s", len(tr), fmt.Sprint(names(tr)))

	// The operations listener serves /ops behind the admin token.
	for _, tc := range []struct {
		token string
		want  int
	}{{"", 401}, {"wrong-token-0123456789", 401}, {testToken, 200}} {
		r := do(t, "GET", api.AdminURL+"/ops/data", tc.token, "")
		if r.Status != tc.want {
			t.Errorf("/ops/data with token %q: %d, want %d", tc.token, r.Status, tc.want)
		}
		if tc.want == 200 && !strings.Contains(r.Body, `"name":"checkout-availability"`) {
			t.Errorf("/ops/data: %s", r.Body)
		}
	}
}

func names(spans []otlptest.Span) []string {
	out := make([]string, len(spans))
	for i, s := range spans {
		out[i] = s.Resource["surge.role"] + ":" + s.Name
	}
	return out
}
