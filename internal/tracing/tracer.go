package tracing

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Tracer starts the shop's spans and carries their context across
// processes. The nil *Tracer is tracing turned off: it starts no span,
// injects nothing and allocates nothing.
type Tracer struct {
	tp   *sdktrace.TracerProvider
	tr   trace.Tracer
	prop propagation.TraceContext
}

// Options are what New needs besides the Config.
type Options struct {
	// Version is the service.version resource attribute.
	Version string
	// Role is the process's role (api, worker, all), a resource attribute.
	Role string
	// Exporter replaces the OTLP/HTTP exporter (tests); nil exports to
	// Config.Endpoint.
	Exporter sdktrace.SpanExporter
	// BatchTimeout is how long spans wait before being exported (default
	// 5s, the specification's).
	BatchTimeout time.Duration
}

// New returns a tracer exporting as cfg says, or nil (tracing off) when
// cfg has no endpoint and opts no exporter. Call Shutdown to flush.
func New(ctx context.Context, cfg Config, opts Options) (*Tracer, error) {
	if !cfg.Enabled() && opts.Exporter == nil {
		return nil, nil
	}
	if cfg.Sampler == "" {
		cfg.Sampler, cfg.Ratio = defaultSampler, DefaultRatio
	}
	if cfg.ServiceName == "" {
		cfg.ServiceName = defaultServiceName
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	exp := opts.Exporter
	if exp == nil {
		eo := []otlptracehttp.Option{otlptracehttp.WithEndpointURL(cfg.Endpoint), otlptracehttp.WithTimeout(10 * time.Second)}
		if len(cfg.Headers) > 0 {
			eo = append(eo, otlptracehttp.WithHeaders(cfg.Headers))
		}
		var err error
		if exp, err = otlptracehttp.New(ctx, eo...); err != nil {
			return nil, fmt.Errorf("otlp trace exporter: %w", err)
		}
	}
	attrs := []attribute.KeyValue{attribute.String("service.name", cfg.ServiceName)}
	if opts.Version != "" {
		attrs = append(attrs, attribute.String("service.version", opts.Version))
	}
	if opts.Role != "" {
		attrs = append(attrs, attribute.String("surge.role", opts.Role))
	}
	// No schema URL: the attributes are plain semantic-convention names.
	res := resource.NewSchemaless(attrs...)
	bto := []sdktrace.BatchSpanProcessorOption{sdktrace.WithMaxQueueSize(4096)}
	if opts.BatchTimeout > 0 {
		bto = append(bto, sdktrace.WithBatchTimeout(opts.BatchTimeout))
	}
	batch := sdktrace.NewBatchSpanProcessor(exp, bto...)
	sampler, keep := newSampler(cfg)
	t := &Tracer{prop: propagation.TraceContext{}}
	var proc sdktrace.SpanProcessor = batch
	if keep {
		proc = keepErrors{batch}
	}
	t.tp = sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithSampler(sampler), sdktrace.WithSpanProcessor(proc))
	t.tr = t.tp.Tracer("github.com/surge-commerce/surge")
	return t, nil
}

// newSampler builds the configured sampler. keep is true for the ratio
// samplers: the local roots the ratio leaves out are still recorded (not
// exported) so that failed ones can be kept (see keepErrors).
// always_off and parentbased_always_off mean no traces of the shop's
// own, errors included.
func newSampler(cfg Config) (s sdktrace.Sampler, keep bool) {
	switch cfg.Sampler {
	case SamplerAlwaysOn:
		return sdktrace.AlwaysSample(), false
	case SamplerAlwaysOff:
		return sdktrace.NeverSample(), false
	case SamplerRatio:
		return keepRoots{sdktrace.TraceIDRatioBased(cfg.Ratio)}, true
	case SamplerParentAlwaysOn:
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), false
	case SamplerParentAlwaysOff:
		return sdktrace.ParentBased(sdktrace.NeverSample()), false
	}
	return keepRoots{sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.Ratio))}, true
}

// Shutdown exports the spans still queued and stops the exporter.
func (t *Tracer) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return t.tp.Shutdown(ctx)
}

// ForceFlush exports the spans queued so far.
func (t *Tracer) ForceFlush(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return t.tp.ForceFlush(ctx)
}

// noopSpan is what a nil tracer hands out: a zero-size value, so
// returning it in an interface allocates nothing.
var noopSpan trace.Span = noop.Span{}

// Start starts a span named name as a child of the span in ctx. With a
// nil tracer it returns ctx and a span that does nothing.
func (t *Tracer) Start(ctx context.Context, name string, kind trace.SpanKind) (context.Context, trace.Span) {
	if t == nil {
		return ctx, noopSpan
	}
	return t.tr.Start(ctx, name, trace.WithSpanKind(kind))
}

// StartChild starts a span as Start does, but only inside a trace: with
// no span in ctx it starts none. Store calls use it, so that background
// loops polling the database make no traces of their own.
func (t *Tracer) StartChild(ctx context.Context, name string, kind trace.SpanKind) (context.Context, trace.Span) {
	if t == nil || !trace.SpanContextFromContext(ctx).IsValid() {
		return ctx, noopSpan
	}
	return t.tr.Start(ctx, name, trace.WithSpanKind(kind))
}

// End ends span, marking it failed with err when err is not nil.
func End(span trace.Span, err error) {
	if err != nil && span.IsRecording() {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// Inject writes the trace context of ctx into h (traceparent,
// tracestate).
func (t *Tracer) Inject(ctx context.Context, h http.Header) {
	if t == nil {
		return
	}
	t.prop.Inject(ctx, propagation.HeaderCarrier(h))
}

// Extract returns ctx with the remote trace context h carries, if any.
func (t *Tracer) Extract(ctx context.Context, h http.Header) context.Context {
	if t == nil {
		return ctx
	}
	return t.prop.Extract(ctx, propagation.HeaderCarrier(h))
}

// TraceParent returns the W3C traceparent of the span in ctx, or "" when
// ctx has none. Stores keep it with an outbox event, so the event's
// publication continues the trace that wrote it.
func TraceParent(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return ""
	}
	var b [55]byte
	b[0], b[1], b[2] = '0', '0', '-'
	tid, sid := sc.TraceID(), sc.SpanID()
	hexInto(b[3:35], tid[:])
	b[35] = '-'
	hexInto(b[36:52], sid[:])
	b[52] = '-'
	hexInto(b[53:55], []byte{byte(sc.TraceFlags())})
	return string(b[:])
}

func hexInto(dst, src []byte) {
	const digits = "0123456789abcdef"
	for i, c := range src {
		dst[2*i], dst[2*i+1] = digits[c>>4], digits[c&0xf]
	}
}

// WithTraceParent returns ctx with the remote span context traceparent
// names as its parent; an empty or malformed one leaves ctx alone.
func WithTraceParent(ctx context.Context, traceparent string) context.Context {
	if traceparent == "" {
		return ctx
	}
	return propagation.TraceContext{}.Extract(ctx, traceParentCarrier(traceparent))
}

// traceParentCarrier is a propagation.TextMapCarrier holding only a
// traceparent.
type traceParentCarrier string

func (c traceParentCarrier) Get(key string) string {
	if key == "traceparent" {
		return string(c)
	}
	return ""
}
func (traceParentCarrier) Set(string, string) {}
func (traceParentCarrier) Keys() []string     { return []string{"traceparent"} }

// StartServer starts the server span of an HTTP request, continuing the
// trace of its traceparent header, and writes the span's own traceparent
// on the response so a client can find its trace. The span is named
// "METHOD" until EndServer renames it after the matched route.
func (t *Tracer) StartServer(ctx context.Context, w http.ResponseWriter, r *http.Request) (context.Context, trace.Span) {
	if t == nil {
		return ctx, noopSpan
	}
	ctx = t.prop.Extract(ctx, propagation.HeaderCarrier(r.Header))
	ctx, span := t.tr.Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer))
	t.prop.Inject(ctx, propagation.HeaderCarrier(w.Header()))
	return ctx, span
}

// EndServer names the server span of r after its route template (the
// semantic conventions' "{method} {http.route}", e.g. "GET
// /products/{slug}"), records the status, marks 5xx answers as errors
// and ends it. The attributes are set only on spans that will be
// exported (sampled, or failed and so kept): the 99% of requests that
// are recorded only in case they fail do not pay for them.
func EndServer(span trace.Span, r *http.Request, route string, status int) {
	if !span.IsRecording() {
		span.End()
		return
	}
	failed := status >= 500
	if !failed && !span.SpanContext().IsSampled() {
		span.End()
		return
	}
	span.SetName(r.Method + " " + route)
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	span.SetAttributes(attribute.String("http.request.method", r.Method), attribute.String("url.path", r.URL.Path),
		attribute.String("url.scheme", scheme), attribute.String("http.route", route), attribute.Int("http.response.status_code", status))
	if failed {
		span.SetStatus(codes.Error, "HTTP "+strconv.Itoa(status))
	}
	span.End()
}
