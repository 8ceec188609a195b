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
// idempotent for anything later.
//
// The package does not know the storage. A SQL store implements Source
// over a table shaped like this (SQLite; times in Unix nanoseconds):
//
//	CREATE TABLE outbox (
//	    id           TEXT PRIMARY KEY,   -- unique event id, used as the message id
//	    subject      TEXT NOT NULL,      -- e.g. surge.order.created
//	    data         BLOB NOT NULL,      -- payload, typically JSON
//	    created_at   INTEGER NOT NULL,   -- when the transaction wrote it
//	    published_at INTEGER             -- NULL until the relay marks it
//	);
//	CREATE INDEX outbox_pending ON outbox (created_at, id) WHERE published_at IS NULL;
//
// with Pending as
//
//	SELECT id, subject, data, created_at FROM outbox
//	WHERE published_at IS NULL ORDER BY created_at, id LIMIT ?
//
// and MarkPublished as UPDATE outbox SET published_at = ? WHERE id IN (...).
// Published rows can be deleted after a while (longer than the bus's
// duplicate window) by a periodic cleanup.
package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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
}

// Source is the outbox storage the relay reads and marks.
type Source interface {
	// Pending returns up to limit events not yet marked published, oldest
	// first.
	Pending(ctx context.Context, limit int) ([]Event, error)
	// MarkPublished records that the events with these ids were published.
	// Ids already marked or unknown are ignored.
	MarkPublished(ctx context.Context, ids []string) error
}

// Publisher sends one event and returns once the bus has stored it.
// natsbus.Bus implements it.
type Publisher interface {
	Publish(ctx context.Context, subject, msgID string, data []byte) error
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
	// Now is the clock for the lag metric (default time.Now).
	Now func() time.Time
}

// Relay moves outbox events to the bus. Run it in one goroutine per
// process; several processes relaying the same outbox is safe (the bus
// de-duplicates) but wasteful.
type Relay struct {
	src  Source
	pub  Publisher
	opts RelayOptions
	wake chan struct{}

	relayed prometheus.Counter
	errs    prometheus.Counter
	lag     prometheus.GaugeFunc

	mu     sync.Mutex
	oldest time.Time // CreatedAt of the oldest pending event seen last; zero when none
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
		Help: "Age of the oldest outbox event not yet published, as last seen by the relay; 0 when none.",
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

// drain publishes pending events batch by batch until none are left.
func (r *Relay) drain(ctx context.Context) error {
	for {
		events, err := r.src.Pending(ctx, r.opts.Batch)
		if err != nil {
			return fmt.Errorf("read pending outbox events: %w", err)
		}
		r.mu.Lock()
		if len(events) == 0 {
			r.oldest = time.Time{}
		} else {
			r.oldest = events[0].CreatedAt
		}
		r.mu.Unlock()
		if len(events) == 0 {
			return nil
		}

		ids := make([]string, 0, len(events))
		var pubErr error
		for _, ev := range events {
			if err := r.pub.Publish(ctx, ev.Subject, ev.ID, ev.Data); err != nil {
				pubErr = fmt.Errorf("publish outbox event %s (%s): %w", ev.ID, ev.Subject, err)
				break
			}
			ids = append(ids, ev.ID)
		}
		if len(ids) > 0 {
			// Mark what went out even when a later event failed, so that a
			// long outage does not republish the head of the batch each
			// round. A failure here only means a republish, which the bus
			// de-duplicates.
			mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			err := r.src.MarkPublished(mctx, ids)
			cancel()
			if err != nil {
				return errors.Join(pubErr, fmt.Errorf("mark %d outbox events published: %w", len(ids), err))
			}
			r.relayed.Add(float64(len(ids)))
		}
		if pubErr != nil {
			return pubErr
		}
		if len(events) < r.opts.Batch {
			// All caught up as of this read.
			r.mu.Lock()
			r.oldest = time.Time{}
			r.mu.Unlock()
			return nil
		}
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
