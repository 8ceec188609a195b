// Package outbox relays events from a transactional outbox to the event
// bus. A domain change and the event announcing it are written in one
// database transaction (the outbox row); the Relay then publishes pending
// rows and marks them published. An event is therefore never lost (it
// committed with the change) and never invented (it did not commit without
// it).
//
// The relay is at-least-once: if the process dies after publishing and
// before marking, the event is published again on restart. Publishing with
// the event's ID as the message id lets the bus discard that copy (JetStream
// de-duplicates Nats-Msg-Id within its window), and consumers are
// idempotent for anything later. A Publisher that is also a Syncer (the
// embedded event bus) is synced once per batch before the batch is
// marked: a row marked published has its event on disk, so an OS crash
// or a power loss cannot lose it.
//
// Relays in several processes share one outbox by claiming it a batch at
// a time: a claim is a lease on the rows (who holds them, until when), so
// each event is normally published by one relay only, and a relay that
// dies gives its rows up when the lease runs out.
//
// The package does not know the storage. A SQL store implements Source
// over a table shaped like this (SQLite; times in Unix nanoseconds):
//
//	CREATE TABLE outbox (
//	    seq           INTEGER PRIMARY KEY, -- commit order
//	    id            TEXT NOT NULL UNIQUE, -- unique event id, used as the message id
//	    subject       TEXT NOT NULL,      -- e.g. surge.order.created
//	    data          BLOB NOT NULL,      -- payload, typically JSON
//	    created_at    INTEGER NOT NULL,   -- when the transaction wrote it
//	    published_at  INTEGER,            -- NULL until the relay marks it
//	    claimed_by    TEXT,               -- the relay holding it, if any
//	    claimed_until INTEGER             -- until when
//	);
//	CREATE INDEX outbox_pending ON outbox (published_at, seq);
//
// with Claim as
//
//	UPDATE outbox SET claimed_by = :owner, claimed_until = :now + :lease
//	WHERE seq IN (SELECT seq FROM outbox WHERE published_at IS NULL
//	    AND (claimed_until IS NULL OR claimed_until <= :now OR claimed_by = :owner)
//	    ORDER BY seq LIMIT :limit)
//	RETURNING id, subject, data, created_at
//
// (sorted by seq), MarkPublished as UPDATE outbox SET published_at = ? WHERE
// id IN (...), Release as clearing the claim of the owner's unpublished
// rows, and Oldest as the created_at of the first unpublished row.
// Published rows can be deleted after a while (longer than the bus's
// duplicate window) by a periodic cleanup.
package outbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/surge-commerce/surge/internal/tracing"
)

// Event is one outbox row.
type Event struct {
	// ID is unique per event and stable across relays; it is the message id
	// the bus de-duplicates on.
	ID string
	// Subject is where the event is published, such as "surge.order.created".
	Subject string
	// Data is the payload.
	Data []byte
	// CreatedAt is when the event was committed.
	CreatedAt time.Time
	// TraceParent is the W3C traceparent of the span that wrote the
	// event, or "": its publication continues that trace.
	TraceParent string
}

// Source is the outbox storage the relay reads and marks.
type Source interface {
	// Claim leases up to limit unpublished events to owner for lease, oldest
	// first, and returns them: those nobody holds, those whose lease ran
	// out, and those owner holds already (renewing them).
	Claim(ctx context.Context, owner string, limit int, lease time.Duration) ([]Event, error)
	// MarkPublished records that the events with these ids were published.
	// Ids already marked or unknown are ignored.
	MarkPublished(ctx context.Context, ids []string) error
	// Release gives up owner's claim on the events with these ids that are
	// still unpublished, so that any relay may take them at once.
	Release(ctx context.Context, owner string, ids []string) error
	// Oldest returns when the oldest unpublished event was committed, or
	// the zero time when every event is published.
	Oldest(ctx context.Context) (time.Time, error)
}

// Publisher sends one event and returns once the bus has stored it.
// natsbus.Bus implements it.
type Publisher interface {
	Publish(ctx context.Context, subject, msgID string, data []byte) error
}

// AsyncPublisher is a Publisher that can have many events in flight at
// once. PublishAsync sends one event and returns without waiting for the
// bus; wait returns once the bus has stored it, or with why it did not.
// The relay sends a claimed batch this way and then waits for each event
// in order: one trip to the bus for the batch instead of one per event,
// and a replicated bus can agree on several events at once (a JetStream
// cluster carries a batch of them in one Raft append). natsbus.Bus
// implements it.
type AsyncPublisher interface {
	PublishAsync(ctx context.Context, subject, msgID string, data []byte) (wait func(context.Context) error, err error)
}

// Syncer is a Publisher whose stored events may sit in the OS's cache
// for a while after Publish returns. Sync makes every event published so
// far durable on disk. The relay calls it once per batch, after
// publishing and before marking the batch published: once an outbox row
// says published, an OS crash or a power loss cannot take its event back.
// natsbus.Bus implements it.
type Syncer interface {
	Sync(ctx context.Context) error
}

// RelayOptions tunes a Relay. Zero values take the defaults.
type RelayOptions struct {
	// Batch is how many events are read and marked at a time (default 100).
	Batch int
	// Interval is how often the relay looks for events when nobody calls
	// Notify: the fallback for commits made by other processes (default 1s).
	Interval time.Duration
	// MaxBackoff caps the wait between attempts while publishing or the
	// source fails (default 10s); the wait starts at 50ms and doubles.
	MaxBackoff time.Duration
	// Logger receives errors (default: discard).
	Logger *slog.Logger
	// Now is the clock for the lag metric and the leases (default time.Now).
	Now func() time.Time
	// Owner names this relay in the claims it takes (default: a random
	// name); two relays must never share one.
	Owner string
	// Lease is how long a claimed batch stays this relay's (default 10s). A
	// relay that dies holding a batch delays those events by up to this
	// long; a relay still publishing when half of it has passed claims the
	// rest again, renewing it.
	Lease time.Duration
	// Tracer, when not nil, relays each event that carries a trace
	// context inside a span of that trace.
	Tracer *tracing.Tracer
}

// Relay moves outbox events to the bus. Run it in one goroutine per
// process. Several processes may relay the same outbox: each claims a
// batch at a time, so they split the work rather than repeat it.
type Relay struct {
	src  Source
	pub  Publisher
	opts RelayOptions
	wake chan struct{}

	relayed prometheus.Counter
	errs    prometheus.Counter
	lag     prometheus.GaugeFunc

	mu     sync.Mutex
	oldest time.Time // CreatedAt of the oldest unpublished event when last read; zero when none
}

// NewRelay returns a relay from src to pub.
func NewRelay(src Source, pub Publisher, opts RelayOptions) *Relay {
	if opts.Batch <= 0 {
		opts.Batch = 100
	}
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Owner == "" {
		b := make([]byte, 8)
		_, _ = rand.Read(b)
		opts.Owner = "relay-" + hex.EncodeToString(b)
	}
	if opts.Lease <= 0 {
		opts.Lease = 10 * time.Second
	}
	r := &Relay{
		src:  src,
		pub:  pub,
		opts: opts,
		wake: make(chan struct{}, 1),
		relayed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "surge_outbox_relayed_total",
			Help: "Outbox events published to the bus and marked published.",
		}),
		errs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "surge_outbox_errors_total",
			Help: "Failed relay rounds (reading, publishing or marking); the relay retries them.",
		}),
	}
	r.lag = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "surge_outbox_lag_seconds",
		Help: "Age of the oldest outbox event not yet delivered to the bus by any relay; 0 when none.",
	}, r.lagSeconds)
	return r
}

// Notify wakes the relay at once, typically right after a transaction that
// wrote outbox rows committed. It never blocks.
func (r *Relay) Notify() {
	select {
	case r.wake <- struct{}{}:
	default: // a wake-up is already pending; it will see this commit too
	}
}

// Run relays until ctx is cancelled, then returns nil. It drains the outbox
// whenever Notify is called and every Interval. When reading, publishing or
// marking fails it waits (50ms doubling to MaxBackoff) and tries again: an
// event is never skipped, and events stay in order because a batch stops at
// its first failure.
func (r *Relay) Run(ctx context.Context) error {
	backoff := time.Duration(0)
	timer := time.NewTimer(0) // first round at once: rows left by a previous run
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-r.wake:
		case <-timer.C:
		}
		if err := r.drain(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			r.errs.Inc()
			backoff = min(max(2*backoff, 50*time.Millisecond), r.opts.MaxBackoff)
			r.opts.Logger.Warn("outbox relay failed, retrying", "err", err, "in", backoff)
			resetTimer(timer, backoff)
			// A Notify must not cut the backoff short: drop a pending one.
			select {
			case <-r.wake:
			default:
			}
			select {
			case <-ctx.Done():
				return nil
			case <-timer.C:
			}
			r.Notify() // go straight to the next round
			continue
		}
		backoff = 0
		resetTimer(timer, r.opts.Interval)
	}
}

func resetTimer(t *time.Timer, d time.Duration) {
	t.Stop()
	select {
	case <-t.C:
	default:
	}
	t.Reset(d)
}

// drain publishes pending events batch by batch until none are left,
// then reads how old the oldest undelivered event is (another relay may
// hold it).
func (r *Relay) drain(ctx context.Context) error {
	defer r.refresh(ctx)
	for {
		claimed := r.opts.Now()
		events, err := r.src.Claim(ctx, r.opts.Owner, r.opts.Batch, r.opts.Lease)
		if err != nil {
			return fmt.Errorf("claim outbox events: %w", err)
		}
		if len(events) == 0 {
			return nil
		}

		ids, rest, pubErr := r.publishBatch(ctx, events, claimed)
		if syncer, ok := r.pub.(Syncer); ok && len(ids) > 0 {
			// Only what is on disk is marked: a batch whose sync failed
			// goes back whole, and its republished copies are
			// de-duplicated by the bus.
			if err := syncer.Sync(ctx); err != nil {
				pubErr = errors.Join(pubErr, fmt.Errorf("sync %d published outbox events to disk: %w", len(ids), err))
				rest, ids = events, nil
			}
		}
		// Bookkeeping outlives a cancelled ctx: what went out is marked,
		// what did not is handed back.
		bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		var errs []error
		if len(ids) > 0 {
			// Mark what went out even when a later event failed, so that a
			// long outage does not republish the head of the batch each
			// round. A failure here only means a republish, which the bus
			// de-duplicates.
			if err := r.src.MarkPublished(bctx, ids); err != nil {
				errs = append(errs, fmt.Errorf("mark %d outbox events published: %w", len(ids), err))
			} else {
				r.relayed.Add(float64(len(ids)))
			}
		}
		if pubErr != nil {
			// Another relay, whose bus may work, need not wait for the
			// lease: the events go back at once.
			if err := r.src.Release(bctx, r.opts.Owner, eventIDs(rest)); err != nil {
				errs = append(errs, fmt.Errorf("release %d outbox events: %w", len(rest), err))
			}
		}
		cancel()
		if err := errors.Join(append([]error{pubErr}, errs...)...); err != nil {
			return err
		}
		if len(events) < r.opts.Batch && len(rest) == 0 {
			return nil // all caught up as of this claim
		}
	}
}

// publishBatch publishes claimed events in order and returns the ids of
// those the bus stored, a prefix of events, and the rest. It stops at the
// first event the bus refused; with an AsyncPublisher, events sent after
// that one may have been stored too, and go out again later (the bus
// de-duplicates them by id).
func (r *Relay) publishBatch(ctx context.Context, events []Event, claimed time.Time) (ids []string, rest []Event, err error) {
	ids = make([]string, 0, len(events))
	async, _ := r.pub.(AsyncPublisher)
	type inFlight struct {
		ev   Event
		wait func(context.Context) error
	}
	var sent []inFlight
	for i, ev := range events {
		if i > 0 && r.opts.Now().Sub(claimed) > r.opts.Lease/2 {
			// Claim the rest again before the lease can run out
			// under us and another relay repeats them. (One event
			// per claim always goes, so a short lease slows the
			// relay down but never stops it.)
			rest = events[i:]
			break
		}
		if async == nil {
			if err := r.publish(ctx, ev); err != nil {
				return ids, events[i:], fmt.Errorf("publish outbox event %s (%s): %w", ev.ID, ev.Subject, err)
			}
			ids = append(ids, ev.ID)
			continue
		}
		wait, err := r.publishAsync(ctx, async, ev)
		if err != nil {
			// Nothing after a refused send is sent; what went
			// before is waited for below.
			rest = events[i:]
			sent = append(sent, inFlight{ev: ev, wait: func(context.Context) error { return err }})
			break
		}
		sent = append(sent, inFlight{ev: ev, wait: wait})
	}
	for i, f := range sent {
		if err := f.wait(ctx); err != nil {
			// The later ones are given up on without waiting (which
			// ends their spans).
			done, cancel := context.WithCancel(ctx)
			cancel()
			for _, g := range sent[i+1:] {
				_ = g.wait(done)
			}
			return ids, events[i:], fmt.Errorf("publish outbox event %s (%s): %w", f.ev.ID, f.ev.Subject, err)
		}
		ids = append(ids, f.ev.ID)
	}
	return ids, rest, nil
}

// publish sends one event, inside a span continuing the trace that wrote
// it when tracing is on and the event carries one.
func (r *Relay) publish(ctx context.Context, ev Event) error {
	ctx, span := r.span(ctx, ev)
	err := r.pub.Publish(ctx, ev.Subject, ev.ID, ev.Data)
	tracing.End(span, err)
	return err
}

// publishAsync is publish without waiting for the bus; the span ends when
// wait returns.
func (r *Relay) publishAsync(ctx context.Context, pub AsyncPublisher, ev Event) (func(context.Context) error, error) {
	ctx, span := r.span(ctx, ev)
	wait, err := pub.PublishAsync(ctx, ev.Subject, ev.ID, ev.Data)
	if err != nil {
		tracing.End(span, err)
		return nil, err
	}
	return func(ctx context.Context) error {
		err := wait(ctx)
		tracing.End(span, err)
		return err
	}, nil
}

// span starts the relay's span of one event, continuing the trace that
// wrote it, when tracing is on and the event carries one; otherwise it
// returns ctx and a span that does nothing.
func (r *Relay) span(ctx context.Context, ev Event) (context.Context, trace.Span) {
	if r.opts.Tracer == nil || ev.TraceParent == "" {
		return ctx, trace.SpanFromContext(context.Background())
	}
	ctx, span := r.opts.Tracer.Start(tracing.WithTraceParent(ctx, ev.TraceParent), "outbox relay "+ev.Subject, trace.SpanKindInternal)
	if span.IsRecording() {
		span.SetAttributes(attribute.String("messaging.message.id", ev.ID),
			attribute.Float64("surge.outbox.wait_seconds", r.opts.Now().Sub(ev.CreatedAt).Seconds()))
	}
	return ctx, span
}

func eventIDs(evs []Event) []string {
	ids := make([]string, len(evs))
	for i, e := range evs {
		ids[i] = e.ID
	}
	return ids
}

// refresh reads when the oldest undelivered event was committed, for the
// lag metric.
func (r *Relay) refresh(ctx context.Context) {
	if _, err := r.Oldest(context.WithoutCancel(ctx)); err != nil {
		r.opts.Logger.Debug("outbox relay: read the oldest undelivered event", "err", err)
	}
}

// Oldest returns when the oldest event not yet delivered to the bus (by
// any relay) was committed, or the zero time when there is none.
func (r *Relay) Oldest(ctx context.Context) (time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	oldest, err := r.src.Oldest(ctx)
	if err != nil {
		return time.Time{}, fmt.Errorf("read the oldest undelivered outbox event: %w", err)
	}
	r.mu.Lock()
	r.oldest = oldest
	r.mu.Unlock()
	return oldest, nil
}

// Check returns a readiness check that fails while an event has waited in
// the outbox longer than maxAge: the bus is not taking events, and orders
// wait for their payment meanwhile.
func (r *Relay) Check(maxAge time.Duration) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		oldest, err := r.Oldest(ctx)
		if err != nil {
			return err
		}
		if age := r.opts.Now().Sub(oldest); !oldest.IsZero() && age > maxAge {
			return fmt.Errorf("order events undelivered for %v (more than %v)", age.Round(time.Second), maxAge)
		}
		return nil
	}
}

func (r *Relay) lagSeconds() float64 {
	r.mu.Lock()
	oldest := r.oldest
	r.mu.Unlock()
	if oldest.IsZero() {
		return 0
	}
	return max(r.opts.Now().Sub(oldest).Seconds(), 0)
}

// Register adds the relay's metrics to reg.
func (r *Relay) Register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{r.relayed, r.errs, r.lag} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register outbox metrics: %w", err)
		}
	}
	return nil
}
