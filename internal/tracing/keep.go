package tracing

import (
	"context"
	"sync"
	"time"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// keepErrors exports the spans of failed work that the sampling ratio
// left out.
//
// A true tail decision (keep every trace with an error anywhere in it)
// needs the whole trace in one place, which no single process has: a
// collector with tail sampling does that. What one process can do is
// decide for its own part of a trace once that part ends. So the ratio
// samplers record every span (sdktrace.AlwaysRecord) and this processor
// holds the unsampled ones per trace until the process-local root span
// (an HTTP server span, a bus consumer span, an outbox relay span: one
// whose parent is remote or absent) ends. If that root failed (a 5xx
// answer, a handler error, a failed publish) the held spans are exported
// as sampled; otherwise they are dropped. The parts of the same trace in
// other processes decide for themselves, so a kept error trace shows the
// failing process's spans, whose parent may be missing at the backend.
type keepErrors struct {
	next sdktrace.SpanProcessor
	now  func() time.Time

	mu      sync.Mutex
	pending map[trace.TraceID]*segment
}

// segment is the ended, unsampled spans of one trace in this process.
type segment struct {
	spans []sdktrace.ReadOnlySpan
	first time.Time
}

// Bounds of what keepErrors holds: traces at once, spans per trace, and
// how long a trace's spans wait for its local root (a root that never
// ends, e.g. a stuck request, must not pin memory).
const (
	maxPendingTraces = 4096
	maxSegmentSpans  = 128
	maxSegmentAge    = time.Minute
)

func newKeepErrors(next sdktrace.SpanProcessor, now func() time.Time) *keepErrors {
	return &keepErrors{next: next, now: now, pending: map[trace.TraceID]*segment{}}
}

func (k *keepErrors) OnStart(ctx context.Context, s sdktrace.ReadWriteSpan) { k.next.OnStart(ctx, s) }

func (k *keepErrors) OnEnd(s sdktrace.ReadOnlySpan) {
	sc := s.SpanContext()
	if sc.IsSampled() {
		k.next.OnEnd(s)
		return
	}
	parent := s.Parent()
	localRoot := !parent.IsValid() || parent.IsRemote()
	failed := s.Status().Code == codes.Error
	tid := sc.TraceID()
	k.mu.Lock()
	seg := k.pending[tid]
	if localRoot {
		delete(k.pending, tid)
		k.mu.Unlock()
		if !failed {
			return
		}
		if seg != nil {
			for _, held := range seg.spans {
				k.next.OnEnd(sampledView{held})
			}
		}
		k.next.OnEnd(sampledView{s})
		return
	}
	if seg == nil {
		if len(k.pending) >= maxPendingTraces && !k.evictLocked() {
			k.mu.Unlock()
			return
		}
		seg = &segment{first: k.now()}
		k.pending[tid] = seg
	}
	if len(seg.spans) < maxSegmentSpans {
		seg.spans = append(seg.spans, s)
	}
	k.mu.Unlock()
}

// evictLocked drops traces older than maxSegmentAge and reports whether
// there is room now.
func (k *keepErrors) evictLocked() bool {
	cutoff := k.now().Add(-maxSegmentAge)
	for id, seg := range k.pending {
		if seg.first.Before(cutoff) {
			delete(k.pending, id)
		}
	}
	return len(k.pending) < maxPendingTraces
}

func (k *keepErrors) Shutdown(ctx context.Context) error   { return k.next.Shutdown(ctx) }
func (k *keepErrors) ForceFlush(ctx context.Context) error { return k.next.ForceFlush(ctx) }

// sampledView presents a kept span as sampled, which is what makes the
// batch processor export it and the backend show it as sampled.
type sampledView struct{ sdktrace.ReadOnlySpan }

func (v sampledView) SpanContext() trace.SpanContext {
	sc := v.ReadOnlySpan.SpanContext()
	return sc.WithTraceFlags(sc.TraceFlags().WithSampled(true))
}
