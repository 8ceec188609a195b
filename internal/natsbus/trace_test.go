package natsbus

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/surge-commerce/surge/internal/tracing"
)

// TestTraceContextCrossesTheBus: a message published inside a span is
// consumed inside a span of the same trace, the consumer's parent being
// the producer span, whose context travelled in the message's headers; a
// handler failure marks the consumer span failed.
func TestTraceContextCrossesTheBus(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tr, err := tracing.New(context.Background(), tracing.Config{Sampler: tracing.SamplerAlwaysOn}, tracing.Options{Exporter: exp})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Shutdown(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := Open(ctx, Config{StoreDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler), Tracer: tr})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	got := make(chan trace.SpanContext, 2)
	mustConsume(t, b, Consumer{Name: "traced", Subject: "surge.order.created", Backoff: []time.Duration{time.Millisecond},
		Handler: func(ctx context.Context, m Message) error {
			got <- trace.SpanContextFromContext(ctx)
			if m.Attempt == 1 {
				return errors.New("first attempt fails")
			}
			return nil
		}})
	pctx, parent := tr.Start(context.Background(), "checkout", trace.SpanKindServer)
	if err := b.Publish(pctx, "surge.order.created", "ord-1", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	parent.End()
	first, second := recv(t, got), recv(t, got)
	if first.TraceID() != parent.SpanContext().TraceID() || second.TraceID() != parent.SpanContext().TraceID() {
		t.Fatalf("consumed in traces %s and %s, want the publisher's %s", first.TraceID(), second.TraceID(), parent.SpanContext().TraceID())
	}
	eventually(t, "the spans exported", func() bool {
		_ = tr.ForceFlush(context.Background())
		return len(exp.GetSpans()) >= 4
	})
	spans := exp.GetSpans()
	var publish tracetest.SpanStub
	for _, s := range spans {
		if s.Name == "publish surge.order.created" {
			publish = s
		}
	}
	if publish.Parent.SpanID() != parent.SpanContext().SpanID() || publish.SpanKind != trace.SpanKindProducer {
		t.Fatalf("publish span %+v: want a producer span under the caller's", publish)
	}
	failed := 0
	for _, s := range spans {
		if s.Name != "process surge.order.created" {
			continue
		}
		if s.Parent.SpanID() != publish.SpanContext.SpanID() || !s.Parent.IsRemote() || s.SpanKind != trace.SpanKindConsumer {
			t.Errorf("consumer span %s: parent %v, want the publish span, remote", s.SpanContext.SpanID(), s.Parent)
		}
		if s.Status.Code == codes.Error {
			failed++
		}
	}
	if failed != 1 {
		t.Errorf("%d failed consumer spans, want the first attempt's", failed)
	}
}
