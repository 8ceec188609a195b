package natsbus

import (
	"context"
	"net/http"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/surge-commerce/surge/internal/tracing"
)

// publishTraced is Publish inside a producer span whose W3C trace context
// travels in the message's headers (traceparent), for the consumer to
// continue.
func (b *Bus) publishTraced(ctx context.Context, subject, msgID string, data []byte) (err error) {
	tr := b.cfg.Tracer
	if !trace.SpanContextFromContext(ctx).IsValid() {
		// Outside any trace (an expiry found by the sweep, an event
		// written before tracing was on) the publish starts none: the
		// consumer's span is where that work's trace begins.
		return b.publishPlain(ctx, subject, msgID, data)
	}
	ctx, span := tr.Start(ctx, "publish "+subject, trace.SpanKindProducer)
	defer func() { tracing.End(span, err) }()
	if span.IsRecording() {
		span.SetAttributes(attribute.String("messaging.system", "nats"), attribute.String("messaging.operation.type", "send"),
			attribute.String("messaging.destination.name", subject), attribute.String("messaging.message.id", msgID))
	}
	msg := nats.NewMsg(subject)
	msg.Data = data
	tr.Inject(ctx, http.Header(msg.Header))
	ack, err := b.js.PublishMsg(ctx, msg, jetstream.WithMsgID(msgID), jetstream.WithExpectStream(b.cfg.Stream))
	if err != nil {
		return err
	}
	b.countPublished(subject, ack)
	return nil
}

// traceAsync starts the producer span of an asynchronous publish inside
// the trace of ctx, if there is one, and carries it in msg's headers; the
// returned func ends it.
func (b *Bus) traceAsync(ctx context.Context, msg *nats.Msg, msgID string) func(error) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return func(error) {}
	}
	tr := b.cfg.Tracer
	ctx, span := tr.Start(ctx, "publish "+msg.Subject, trace.SpanKindProducer)
	if span.IsRecording() {
		span.SetAttributes(attribute.String("messaging.system", "nats"), attribute.String("messaging.operation.type", "send"),
			attribute.String("messaging.destination.name", msg.Subject), attribute.String("messaging.message.id", msgID))
	}
	tr.Inject(ctx, http.Header(msg.Header))
	return func(err error) { tracing.End(span, err) }
}

// consumeSpan starts the consumer span of one delivery, continuing the
// trace its headers carry. Without a tracer it returns ctx and a span
// that does nothing.
func (c *consumer) consumeSpan(ctx context.Context, msg jetstream.Msg, m Message) (context.Context, trace.Span) {
	tr := c.bus.cfg.Tracer
	if tr == nil {
		return tr.Start(ctx, "", trace.SpanKindConsumer)
	}
	ctx = tr.Extract(ctx, http.Header(msg.Headers()))
	ctx, span := tr.Start(ctx, "process "+m.Subject, trace.SpanKindConsumer)
	if span.IsRecording() {
		span.SetAttributes(attribute.String("messaging.system", "nats"), attribute.String("messaging.operation.type", "process"),
			attribute.String("messaging.destination.name", m.Subject), attribute.String("messaging.message.id", m.ID),
			attribute.String("messaging.consumer.group.name", c.cfg.Name), attribute.Int("surge.attempt", m.Attempt))
	}
	return ctx, span
}
