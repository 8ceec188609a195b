package tracing

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestFromEnv(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want Config
		err  string
	}{
		{name: "off without an endpoint", env: nil, want: Config{}},
		{name: "base endpoint gets the traces path", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/"},
			want: Config{Endpoint: "http://c:4318/v1/traces", ServiceName: "surge", Sampler: SamplerParentRatio, Ratio: 0.01}},
		{name: "traces endpoint as given, and it wins", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318",
			"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://t:443/custom", "OTEL_SERVICE_NAME": "shop-eu",
			"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"},
			want: Config{Endpoint: "https://t:443/custom", ServiceName: "shop-eu", Sampler: SamplerRatio, Ratio: 0.25}},
		{name: "sdk disabled", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}},
		{name: "exporter none", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}},
		{name: "headers", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_HEADERS": "api-key=a%20b, x=1"},
			want: Config{Endpoint: "http://c:4318/v1/traces", ServiceName: "surge", Sampler: SamplerParentRatio, Ratio: 0.01,
				Headers: map[string]string{"api-key": "a b", "x": "1"}}},
		{name: "bad ratio", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_SAMPLER_ARG": "2"}, err: "OTEL_TRACES_SAMPLER_ARG"},
		{name: "NaN ratio", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_SAMPLER_ARG": "NaN"}, err: "OTEL_TRACES_SAMPLER_ARG"},
		{name: "bad sampler", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_SAMPLER": "jaeger_remote"}, err: "OTEL_TRACES_SAMPLER"},
		{name: "bad endpoint", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "c:4318"}, err: "OTEL_EXPORTER_OTLP_ENDPOINT"},
		{name: "grpc protocol", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, err: "http/protobuf"},
		{name: "bad headers", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_HEADERS": "novalue"}, err: "key=value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := FromEnv(env(tc.env))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want one naming %s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.want.Enabled() {
				if got.Enabled() {
					t.Fatalf("tracing on (%+v), want off", got)
				}
				return
			}
			if got.Endpoint != tc.want.Endpoint || got.ServiceName != tc.want.ServiceName || got.Sampler != tc.want.Sampler ||
				got.Ratio != tc.want.Ratio || len(got.Headers) != len(tc.want.Headers) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			for k, v := range tc.want.Headers {
				if got.Headers[k] != v {
					t.Fatalf("header %s = %q, want %q", k, got.Headers[k], v)
				}
			}
		})
	}
}

func FuzzFromEnv(f *testing.F) {
	f.Add("http://c:4318", "a=b,c=d", "parentbased_traceidratio", "0.5")
	f.Add("", "", "", "")
	f.Add("http://[::1]:4318/x", "=,", "always_on", "-1")
	f.Fuzz(func(t *testing.T, endpoint, headers, sampler, arg string) {
		cfg, err := FromEnv(env(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_EXPORTER_OTLP_HEADERS": headers,
			"OTEL_TRACES_SAMPLER": sampler, "OTEL_TRACES_SAMPLER_ARG": arg}))
		if err != nil || !cfg.Enabled() {
			return
		}
		if cfg.Ratio < 0 || cfg.Ratio > 1 || cfg.validate() != nil {
			t.Fatalf("accepted an invalid config %+v", cfg)
		}
	})
}

// newTestTracer returns a tracer exporting synchronously enough for tests:
// spans are read after ForceFlush.
func newTestTracer(t *testing.T, sampler string, ratio float64) (*Tracer, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tr, err := New(context.Background(), Config{Sampler: sampler, Ratio: ratio}, Options{Exporter: exp, Role: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Shutdown(context.Background()) })
	return tr, exp
}

func exported(t *testing.T, tr *Tracer, exp *tracetest.InMemoryExporter) []string {
	t.Helper()
	if err := tr.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range exp.GetSpans() {
		names = append(names, s.Name)
	}
	return names
}

// TestKeepsFailedUnsampledWork: at ratio 0 nothing is sampled, yet a
// local root (a request, a consumed message) that failed is exported,
// with the sampled flag, and one that succeeded is not; the children of
// unsampled roots are not even recorded.
func TestKeepsFailedUnsampledWork(t *testing.T) {
	tr, exp := newTestTracer(t, SamplerParentRatio, 0)
	ctx, root := tr.Start(context.Background(), "ok request", trace.SpanKindServer)
	_, child := tr.StartChild(ctx, "store.ok", trace.SpanKindClient)
	if child.IsRecording() {
		t.Error("the child of an unsampled root is recorded")
	}
	End(child, nil)
	End(root, nil)
	if got := exported(t, tr, exp); len(got) != 0 {
		t.Fatalf("exported %v of an unsampled request that succeeded", got)
	}
	ctx, root = tr.Start(context.Background(), "failed request", trace.SpanKindServer)
	_, child = tr.StartChild(ctx, "store.failing", trace.SpanKindClient)
	End(child, errors.New("disk full"))
	End(root, errors.New("disk full"))
	// A consumer span continuing an unsampled remote trace is a local
	// root too.
	remote := WithTraceParent(context.Background(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
	_, consumer := tr.Start(remote, "process surge.order.created", trace.SpanKindConsumer)
	End(consumer, errors.New("payment provider down"))
	got := exported(t, tr, exp)
	if strings.Join(got, ",") != "failed request,process surge.order.created" {
		t.Fatalf("exported %v, want the failed request's and the failed consumer's root spans", got)
	}
	for _, s := range exp.GetSpans() {
		if !s.SpanContext.IsSampled() {
			t.Errorf("%s exported without the sampled flag", s.Name)
		}
	}
	if c := exp.GetSpans()[1]; c.SpanContext.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || c.Parent.SpanID().String() != "00f067aa0ba902b7" {
		t.Errorf("kept consumer span in trace %s under %s, want the remote trace and parent", c.SpanContext.TraceID(), c.Parent.SpanID())
	}
}

func TestServerSpanContinuesTraceparent(t *testing.T) {
	tr, exp := newTestTracer(t, SamplerParentRatio, 0)
	r := httptest.NewRequest("GET", "/products/shoe", nil)
	r.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	w := httptest.NewRecorder()
	ctx, span := tr.StartServer(r.Context(), w, r)
	if got := TraceParent(ctx); !strings.HasPrefix(got, "00-4bf92f3577b34da6a3ce929d0e0e4736-") || !strings.HasSuffix(got, "-01") {
		t.Fatalf("TraceParent %q: want the incoming trace, sampled", got)
	}
	if out := w.Header().Get("traceparent"); out != TraceParent(ctx) {
		t.Errorf("response traceparent %q, want the server span's %q", out, TraceParent(ctx))
	}
	EndServer(span, r, "/products/{slug}", 200)
	got := exported(t, tr, exp)
	if len(got) != 1 || got[0] != "GET /products/{slug}" {
		t.Fatalf("exported %v, want one span named after the route template", got)
	}
	if p := exp.GetSpans()[0].Parent; p.SpanID().String() != "00f067aa0ba902b7" || !p.IsRemote() {
		t.Errorf("parent %v, want the remote client span", p)
	}
}

func TestTraceParentRoundTrip(t *testing.T) {
	tr, _ := newTestTracer(t, SamplerAlwaysOn, 1)
	ctx, span := tr.Start(context.Background(), "write", trace.SpanKindInternal)
	defer span.End()
	tp := TraceParent(ctx)
	back := trace.SpanContextFromContext(WithTraceParent(context.Background(), tp))
	if back.TraceID() != span.SpanContext().TraceID() || back.SpanID() != span.SpanContext().SpanID() || !back.IsSampled() || !back.IsRemote() {
		t.Fatalf("%q came back as %v", tp, back)
	}
	for _, bad := range []string{"", "garbage", "00-00000000000000000000000000000000-0000000000000000-01"} {
		if sc := trace.SpanContextFromContext(WithTraceParent(context.Background(), bad)); sc.IsValid() {
			t.Errorf("WithTraceParent(%q) gave a valid parent %v", bad, sc)
		}
	}
}

// TestOffAllocatesNothing: with tracing off (the nil tracer) the calls on
// every traced path allocate nothing.
func TestOffAllocatesNothing(t *testing.T) {
	var tr *Tracer
	ctx := context.Background()
	r := httptest.NewRequest("GET", "/", nil)
	w := httptest.NewRecorder()
	h := http.Header{}
	allocs := testing.AllocsPerRun(1000, func() {
		c, span := tr.Start(ctx, "x", trace.SpanKindInternal)
		c2, child := tr.StartChild(c, "y", trace.SpanKindClient)
		End(child, nil)
		End(span, errors.ErrUnsupported)
		c3, s := tr.StartServer(c2, w, r)
		EndServer(s, r, "/", 200)
		tr.Inject(c3, h)
		_ = tr.Extract(c3, h)
		if TraceParent(c3) != "" {
			t.Fatal("a trace without a tracer")
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per traced path with tracing off, want 0", allocs)
	}
}
