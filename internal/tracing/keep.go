package tracing

import (
	"context"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Errors are always kept, at the level one process can decide it.
//
// A true tail decision (keep every trace with an error anywhere in it)
// needs the whole trace in one place, which no single process has: a
// collector with tail sampling does that. What one process can do is
// decide for its own unit of work once it ends. So with the ratio
// samplers, a span the ratio leaves out is still recorded (not exported)
// when it is a process-local root: an HTTP server span, a bus consumer
// span, an outbox relay span, whose parent is remote or absent
// (keepRoots). Its children are not recorded, which keeps the 99% cheap:
// one recorded span per unit of work rather than one per store call.
// When such a root ends failed (a 5xx answer, a handler error, a failed
// publish), keepErrors exports it as sampled; otherwise it is dropped.
// The kept span carries the trace ID that the process's log lines for
// that work carry (trace_id), which is where the detail is.

// keepRoots records the local roots its base sampler drops.
type keepRoots struct{ base sdktrace.Sampler }

func (k keepRoots) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	res := k.base.ShouldSample(p)
	if res.Decision == sdktrace.Drop {
		if psc := trace.SpanContextFromContext(p.ParentContext); !psc.IsValid() || psc.IsRemote() {
			res.Decision = sdktrace.RecordOnly
		}
	}
	return res
}

func (k keepRoots) Description() string { return "KeepFailedRoots{" + k.base.Description() + "}" }

// keepErrors passes sampled spans on and exports the recorded-only local
// roots that failed.
type keepErrors struct{ next sdktrace.SpanProcessor }

func (k keepErrors) OnStart(ctx context.Context, s sdktrace.ReadWriteSpan) { k.next.OnStart(ctx, s) }

func (k keepErrors) OnEnd(s sdktrace.ReadOnlySpan) {
	if s.SpanContext().IsSampled() {
		k.next.OnEnd(s)
		return
	}
	if parent := s.Parent(); s.Status().Code == codes.Error && (!parent.IsValid() || parent.IsRemote()) {
		k.next.OnEnd(sampledView{s})
	}
}

func (k keepErrors) Shutdown(ctx context.Context) error   { return k.next.Shutdown(ctx) }
func (k keepErrors) ForceFlush(ctx context.Context) error { return k.next.ForceFlush(ctx) }

// sampledView presents a kept span as sampled, which is what makes the
// batch processor export it and the backend show it as sampled.
type sampledView struct{ sdktrace.ReadOnlySpan }

func (v sampledView) SpanContext() trace.SpanContext {
	sc := v.ReadOnlySpan.SpanContext()
	return sc.WithTraceFlags(sc.TraceFlags().WithSampled(true))
}
