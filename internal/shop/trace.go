package shop

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/surge-commerce/surge/internal/payment"
	"github.com/surge-commerce/surge/internal/tracing"
)

//go:generate go run ./storetracegen -o store_traced.go

// traceStore returns st with a span around each call, or st itself when
// tracing is off, so the untraced shop pays nothing for it.
func traceStore(st Store, tr *tracing.Tracer) Store {
	if tr == nil {
		return st
	}
	return tracedStore{st: st, tr: tr}
}

// tracePayments returns p with a span around each provider call, or p
// itself when tracing is off.
func tracePayments(p payment.Provider, tr *tracing.Tracer) payment.Provider {
	if tr == nil {
		return p
	}
	return tracedPayments{p: p, tr: tr}
}

// tracedPayments is a payment.Provider calling another inside client spans.
type tracedPayments struct {
	p  payment.Provider
	tr *tracing.Tracer
}

func (t tracedPayments) start(ctx context.Context, op, orderID string) (context.Context, trace.Span) {
	ctx, span := t.tr.Start(ctx, "payment "+op, trace.SpanKindClient)
	if span.IsRecording() {
		span.SetAttributes(attribute.String("surge.order.id", orderID))
	}
	return ctx, span
}

func (t tracedPayments) Authorize(ctx context.Context, req payment.AuthorizeRequest) (a payment.Authorization, err error) {
	ctx, span := t.start(ctx, "authorize", req.OrderID)
	a, err = t.p.Authorize(ctx, req)
	tracing.End(span, err)
	return a, err
}

func (t tracedPayments) Capture(ctx context.Context, req payment.CaptureRequest) (c payment.Capture, err error) {
	ctx, span := t.start(ctx, "capture", req.OrderID)
	c, err = t.p.Capture(ctx, req)
	tracing.End(span, err)
	return c, err
}

func (t tracedPayments) Void(ctx context.Context, req payment.VoidRequest) error {
	ctx, span := t.start(ctx, "void", req.OrderID)
	err := t.p.Void(ctx, req)
	tracing.End(span, err)
	return err
}

func (t tracedPayments) Refund(ctx context.Context, req payment.RefundRequest) (r payment.Refund, err error) {
	ctx, span := t.start(ctx, "refund", req.OrderID)
	r, err = t.p.Refund(ctx, req)
	tracing.End(span, err)
	return r, err
}
