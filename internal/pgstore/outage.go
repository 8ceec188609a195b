package pgstore

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/surge-commerce/surge/internal/telemetry"
)

// outageTracer reports the outcome of every call on a pool to an outage
// log: connections that cannot be had or die under a query are failures;
// any answer the server gave, an error included, is a success. Calls the
// caller gave up on say nothing about the server and are not counted.
type outageTracer struct{ outage *telemetry.Outage }

var (
	_ pgx.QueryTracer       = outageTracer{}
	_ pgx.BatchTracer       = outageTracer{}
	_ pgxpool.AcquireTracer = outageTracer{}
)

func (t outageTracer) report(err error) {
	switch {
	case err == nil:
		t.outage.Succeeded()
	case connectionLost(err):
		t.outage.Failed(err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
	default:
		t.outage.Succeeded()
	}
}

func (outageTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	return ctx
}

func (t outageTracer) TraceQueryEnd(_ context.Context, _ *pgx.Conn, d pgx.TraceQueryEndData) {
	t.report(d.Err)
}

func (outageTracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return ctx
}

func (outageTracer) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}

func (t outageTracer) TraceBatchEnd(_ context.Context, _ *pgx.Conn, d pgx.TraceBatchEndData) {
	t.report(d.Err)
}

func (outageTracer) TraceAcquireStart(ctx context.Context, _ *pgxpool.Pool, _ pgxpool.TraceAcquireStartData) context.Context {
	return ctx
}

// TraceAcquireEnd counts only failures: a pooled connection handed out
// says nothing of whether the server still answers.
func (t outageTracer) TraceAcquireEnd(_ context.Context, _ *pgxpool.Pool, d pgxpool.TraceAcquireEndData) {
	if d.Err != nil {
		t.report(d.Err)
	}
}
