package natsbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/surge-commerce/surge/internal/tracing"
)

// Defaults for the zero values of Consumer.
const (
	DefaultMaxDeliver  = 8
	DefaultAckWait     = 30 * time.Second
	DefaultConcurrency = 4
)

// defaultBackoff is the redelivery delay after the first, second, ... failed
// attempt; the last value repeats.
var defaultBackoff = []time.Duration{200 * time.Millisecond, time.Second, 5 * time.Second, 15 * time.Second, 30 * time.Second, time.Minute}

// Consumer describes a durable subscriber to part of the event stream.
type Consumer struct {
	// Name is the durable consumer name; processes using the same name
	// share the work. Letters, digits, '-' and '_' only.
	Name string
	// Subject filters the stream, such as "surge.order.created" or
	// "surge.order.>".
	Subject string
	// Handler processes one message. Returning nil acknowledges it; an
	// error schedules a redelivery after a backoff; Permanent(err) parks it
	// in the dead-letter stream at once. Delivery is at least once, so a
	// handler must be idempotent (Message.ID is a stable key for that).
	Handler func(ctx context.Context, m Message) error
	// MaxDeliver is how many attempts a message gets before it is
	// dead-lettered (default DefaultMaxDeliver).
	MaxDeliver int
	// Backoff lists redelivery delays after each failed attempt; the last
	// repeats (default 200ms, 1s, 5s, 15s, 30s, 1m).
	Backoff []time.Duration
	// AckWait is how long the server waits for an answer before it
	// redelivers, e.g. after the worker died (default DefaultAckWait). A
	// running handler keeps its message by telling the server it is still
	// in progress, so AckWait does not bound the handler's run time.
	AckWait time.Duration
	// Concurrency is how many handlers run in parallel in this process
	// (default DefaultConcurrency).
	Concurrency int
}

func (c *Consumer) setDefaults() {
	if c.MaxDeliver == 0 {
		c.MaxDeliver = DefaultMaxDeliver
	}
	if len(c.Backoff) == 0 {
		c.Backoff = defaultBackoff
	}
	if c.AckWait == 0 {
		c.AckWait = DefaultAckWait
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
}

func (c *Consumer) validate() error {
	switch {
	case c.Name == "" || strings.ContainsFunc(c.Name, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
	}):
		return fmt.Errorf("name %q: want letters, digits, '-' and '_'", c.Name)
	case !strings.HasPrefix(c.Subject, subjectPrefix):
		return fmt.Errorf("subject %q: want one under %s>", c.Subject, subjectPrefix)
	case c.Handler == nil:
		return errors.New("no handler")
	case c.MaxDeliver < 1:
		return fmt.Errorf("max deliver %d: want at least 1", c.MaxDeliver)
	case c.AckWait < time.Second:
		return fmt.Errorf("ack wait %v: want at least 1s", c.AckWait)
	case c.Concurrency < 1:
		return fmt.Errorf("concurrency %d: want at least 1", c.Concurrency)
	}
	for _, d := range c.Backoff {
		if d < 0 {
			return fmt.Errorf("backoff %v: must not be negative", d)
		}
	}
	return nil
}

// Message is one delivery of an event to a handler.
type Message struct {
	// Subject the event was published on.
	Subject string
	// ID is the publisher's message id (Nats-Msg-Id), the same on every
	// redelivery: a natural idempotency key.
	ID string
	// Data is the event payload.
	Data []byte
	// Attempt counts deliveries of this message to this consumer, from 1.
	Attempt int
}

// permanentError marks a handler error that retrying cannot fix.
type permanentError struct{ err error }

func (e permanentError) Error() string { return "permanent: " + e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent wraps err so that the consumer dead-letters the message at once
// instead of retrying it: a poison message (undecodable, refers to nothing).
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// IsPermanent reports whether err, or an error it wraps, came from Permanent.
func IsPermanent(err error) bool {
	_, ok := errors.AsType[permanentError](err)
	return ok
}

// consumer is a running Consumer.
type consumer struct {
	bus      *Bus
	cfg      Consumer
	jc       jetstream.Consumer
	retiring bool // see Retire: looked up, never created
	log      *slog.Logger
	ctx      context.Context // cancelled by stop; parent of every handler's ctx
	cancel   context.CancelFunc
	pulled   chan struct{} // closed when the consumer has stopped pulling for good
	done     chan struct{} // closed when pulling and all handlers have returned
}

// Consume starts processing messages for c until the returned stop is
// called, ctx is cancelled or the bus is closed. It creates the durable
// consumer on the server, or updates its settings, before it returns.
//
// stop cancels the ctx of running handlers, hands back messages not yet
// handled so another worker can take them at once, and waits for the
// handlers to return.
func (b *Bus) Consume(ctx context.Context, c Consumer) (stop func(), err error) {
	c.setDefaults()
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("consume: %w", err)
	}
	jc, err := b.upsertConsumer(ctx, c)
	var apiErr *jetstream.APIError
	switch {
	case err == nil:
	case errors.As(err, &apiErr) && apiErr.Code == 400, ctx.Err() != nil:
		return nil, fmt.Errorf("consume %s: %w", c.Name, err)
	default:
		// A cluster that is down, or electing a leader, answers later. The
		// consumer starts anyway and creates itself on the server once it
		// can (run): a worker that starts, or restarts its consumers,
		// during a bus outage serves as soon as the bus is back instead of
		// leaving every order unpaid until someone restarts it.
		b.log.Warn("consumer not set up yet; retrying in the background", "consumer", c.Name, "err", err)
		jc = nil
	}
	return b.start(ctx, c, jc, false)
}

// start runs a consumer whose settings are valid; jc is nil when the
// server does not have it yet. A retiring consumer is never created on
// the server: it stops once the server no longer has it.
func (b *Bus) start(ctx context.Context, c Consumer, jc jetstream.Consumer, retiring bool) (stop func(), err error) {
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	cons := &consumer{
		bus:      b,
		cfg:      c,
		jc:       jc,
		retiring: retiring,
		log:      b.log.With("consumer", c.Name),
		ctx:      runCtx,
		cancel:   cancel,
		pulled:   make(chan struct{}),
		done:     make(chan struct{}),
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		cancel()
		return nil, fmt.Errorf("consume %s: bus closed", c.Name)
	}
	if _, dup := b.consumers[c.Name]; dup {
		b.mu.Unlock()
		cancel()
		return nil, fmt.Errorf("consume %s: already running in this process", c.Name)
	}
	b.consumers[c.Name] = cons
	b.mu.Unlock()

	// The caller's ctx ends the consumer too.
	unwatch := context.AfterFunc(ctx, cons.stopAsync)
	go func() {
		defer close(cons.done)
		cons.run()
		b.mu.Lock()
		delete(b.consumers, c.Name)
		b.mu.Unlock()
	}()
	return func() {
		unwatch()
		cons.stop()
	}, nil
}

// upsertConsumer creates the durable consumer or brings its settings up to
// date. The server never gives up on a message by itself (MaxDeliver -1):
// the client decides when to dead-letter, so a message cannot end up
// neither processed nor parked if the worker dies at its last attempt.
func (b *Bus) upsertConsumer(ctx context.Context, c Consumer) (jetstream.Consumer, error) {
	return b.js.CreateOrUpdateConsumer(ctx, b.cfg.Stream, jetstream.ConsumerConfig{
		Durable:       c.Name,
		Description:   "surge consumer " + c.Name,
		FilterSubject: c.Subject,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.AckWait,
		MaxDeliver:    -1,
		// Bounded so one stuck consumer cannot pin the whole stream's
		// messages in flight; comfortably above Concurrency plus the
		// messages waiting for a delayed redelivery.
		MaxAckPending: max(1000, 4*c.Concurrency),
		Replicas:      b.cfg.Replicas,
	})
}

func (c *consumer) stopAsync() { c.cancel() }

// stop cancels the consumer and waits for it to wind down.
func (c *consumer) stop() {
	c.cancel()
	<-c.done
}

// run pulls messages and hands each to a handler goroutine, at most
// Concurrency at a time. If the consumer is not on the server yet, or the
// iterator breaks (consumer deleted, stream recreated after data loss,
// connection trouble), it creates the consumer again and carries on.
func (c *consumer) run() {
	var handlers sync.WaitGroup
	defer handlers.Wait()
	defer close(c.pulled)
	sem := make(chan struct{}, c.cfg.Concurrency)
	retry := 0
	for c.ctx.Err() == nil {
		var err error
		if c.jc == nil && c.retiring {
			c.jc, err = c.bus.js.Consumer(c.ctx, c.bus.cfg.Stream, c.cfg.Name)
			if errors.Is(err, jetstream.ErrConsumerNotFound) {
				return // deleted: nothing left to work off
			}
			if err != nil {
				err = fmt.Errorf("look up consumer: %w", err)
			}
		} else if c.jc == nil {
			c.jc, err = c.bus.upsertConsumer(c.ctx, c.cfg)
			if err != nil {
				err = fmt.Errorf("create consumer: %w", err)
			}
		}
		if c.jc != nil {
			began := time.Now()
			err = c.pullLoop(sem, &handlers)
			if time.Since(began) > healthyPull {
				// It served a while: this is a new interruption, not the
				// same one again, and gets the short wait.
				retry = 0
			}
			c.jc = nil
		}
		if c.ctx.Err() != nil {
			return
		}
		retry++
		wait := min(time.Duration(retry)*250*time.Millisecond, 5*time.Second)
		c.log.Warn("consumer interrupted, restarting", "err", err, "in", wait)
		if !sleepCtx(c.ctx, wait) {
			return
		}
	}
}

// healthyPull is how long pulling must have gone on for its interruption
// to count as a new one (see run).
const healthyPull = 30 * time.Second

// fetchWait bounds one pull request. Idle consumers renew their request
// this often; a stopped consumer ends its request at once.
const fetchWait = 5 * time.Second

// pullLoop fetches as many messages as there are free handler slots and
// starts a handler for each, until the consumer stops or the server says
// something a restart should fix (consumer deleted, connection trouble).
//
// Explicit fetches, rather than a long-lived buffered iterator, keep every
// message the client holds in a handler: none sits in a buffer while its
// AckWait runs, and a stop has nothing to hand back but what arrived during
// the last fetch.
func (c *consumer) pullLoop(sem chan struct{}, handlers *sync.WaitGroup) error {
	// backlog: the last fetch came back full, so more messages are
	// likely waiting; the next fetch then gathers free slots a moment
	// (see gather).
	backlog := false
	for {
		select {
		case sem <- struct{}{}:
		case <-c.ctx.Done():
			return c.ctx.Err()
		}
		slots := 1 + acquireFree(sem)
		if backlog {
			slots += c.gather(sem, slots)
		}

		ctx, cancel := context.WithTimeout(c.ctx, fetchWait)
		batch, err := c.jc.Fetch(slots, jetstream.FetchContext(ctx))
		if err != nil {
			cancel()
			release(sem, slots)
			return fmt.Errorf("fetch: %w", err)
		}
		var held []jetstream.Msg
		asked, got := slots, 0
		for msg := range batch.Messages() {
			got++
			if c.ctx.Err() != nil {
				held = append(held, msg)
				continue
			}
			slots--
			handlers.Go(func() {
				defer func() { <-sem }()
				c.handle(msg)
			})
		}
		cancel()
		release(sem, slots)
		backlog = got == asked
		// The fetch has unsubscribed by now, and the server handles one
		// connection's protocol in order, so these naks cannot be
		// redelivered into the closed fetch and lost until AckWait.
		for _, msg := range held {
			_ = msg.Nak()
		}
		if err := batch.Error(); err != nil && c.ctx.Err() == nil &&
			!errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, nats.ErrTimeout) {
			return fmt.Errorf("fetch: %w", err)
		}
	}
}

// gatherWait bounds how long a consumer with a backlog waits for more
// handler slots to come free before it fetches (see gather).
const gatherWait = 5 * time.Millisecond

// gather waits until every handler slot is taken for this fetch, or
// gatherWait has passed, taking those that come free meanwhile; it returns
// how many more it took. Each fetch is a pull request, which the consumer
// replicates on a cluster when it arrives and again when it is done: with
// a backlog, a fetch as soon as one handler finishes would pull one
// message per request.
func (c *consumer) gather(sem chan struct{}, have int) int {
	want := c.cfg.Concurrency
	if have >= want {
		return 0
	}
	t := time.NewTimer(gatherWait)
	defer t.Stop()
	n := 0
	for have+n < want {
		select {
		case sem <- struct{}{}:
			n++
		case <-t.C:
			return n
		case <-c.ctx.Done():
			return n
		}
	}
	return n
}

// acquireFree takes every handler slot free right now and returns how many.
func acquireFree(sem chan struct{}) int {
	n := 0
	for {
		select {
		case sem <- struct{}{}:
			n++
		default:
			return n
		}
	}
}

func release(sem chan struct{}, n int) {
	for range n {
		<-sem
	}
}

// Headers on a dead-lettered message, besides the original's own headers.
const (
	HeaderSubject   = "Surge-Original-Subject"
	HeaderMsgID     = "Surge-Original-Msg-Id"
	HeaderSequence  = "Surge-Original-Sequence"
	HeaderConsumer  = "Surge-Consumer"
	HeaderError     = "Surge-Error"
	HeaderAttempts  = "Surge-Attempts"
	HeaderPermanent = "Surge-Permanent"
)

// handle runs the handler for one delivery and settles the message.
func (c *consumer) handle(msg jetstream.Msg) {
	meta, err := msg.Metadata()
	if err != nil {
		// Not a JetStream message: nothing to settle or retry.
		c.log.Error("message without metadata", "subject", msg.Subject(), "err", err)
		return
	}
	m := Message{
		Subject: msg.Subject(),
		ID:      msg.Headers().Get(jetstream.MsgIDHeader),
		Data:    msg.Data(),
		Attempt: int(meta.NumDelivered),
	}
	herr := c.runHandler(msg, m)

	switch {
	case herr == nil:
		// A plain ack, not one the server confirms: the confirmation is
		// one more message per delivery (through the consumer's leader,
		// after its Raft round) and holds the handler's slot meanwhile,
		// and a handler could do nothing with a failed one but log it.
		// An ack lost on the wire means a redelivery after AckWait, which
		// idempotent handlers absorb.
		if err := msg.Ack(); err != nil {
			c.log.Warn("ack", "subject", m.Subject, "id", m.ID, "err", err)
		}
		c.bus.metrics.processed.WithLabelValues(c.cfg.Name, "ok").Inc()

	case c.ctx.Err() != nil:
		// Stopping: the failure is most likely our own cancellation. Hand
		// the message back at once, as it is not the message's fault, but
		// only once this consumer no longer pulls (see pullLoop).
		<-c.pulled
		_ = msg.Nak()

	case IsPermanent(herr) || m.Attempt >= c.cfg.MaxDeliver:
		c.deadLetter(msg, m, meta, herr)

	default:
		delay := c.cfg.Backoff[min(m.Attempt-1, len(c.cfg.Backoff)-1)]
		if err := msg.NakWithDelay(delay); err != nil {
			c.log.Warn("nak", "subject", m.Subject, "id", m.ID, "err", err)
		}
		c.bus.metrics.processed.WithLabelValues(c.cfg.Name, "retry").Inc()
		c.log.Info("handler failed, will retry", "subject", m.Subject, "id", m.ID,
			"attempt", m.Attempt, "in", delay, "err", herr)
	}
}

// runHandler calls the handler with a ctx that stop cancels, turns a panic
// into an error, and tells the server the message is still being worked on
// every AckWait/3 so a slow handler does not get its message redelivered to
// another worker.
func (c *consumer) runHandler(msg jetstream.Msg, m Message) (err error) {
	ctx, cancel := context.WithCancel(c.ctx)
	defer cancel()
	ctx, span := c.consumeSpan(ctx, msg, m)
	// Deferred before the recover below, so it runs after it and sees
	// a panic's error too.
	defer func() { tracing.End(span, err) }()
	tick := time.NewTicker(c.cfg.AckWait / 3)
	defer tick.Stop()
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				_ = msg.InProgress()
			}
		}
	}()
	defer func() {
		if p := recover(); p != nil {
			c.log.ErrorContext(ctx, "handler panicked", "subject", m.Subject, "id", m.ID, "panic", p, "stack", string(debug.Stack()))
			err = fmt.Errorf("handler panicked: %v", p)
		}
	}()
	return c.cfg.Handler(ctx, m)
}

// deadLetter copies the message to dlq.<consumer> with headers saying why,
// then terminates the original. The copy's Nats-Msg-Id is derived from the
// original's stream sequence, so if the worker dies between the two steps
// and the message comes back, the second copy is de-duplicated. If the copy
// cannot be stored, the original is kept and redelivered: a message is never
// dropped without being parked.
func (c *consumer) deadLetter(msg jetstream.Msg, m Message, meta *jetstream.MsgMetadata, herr error) {
	out := nats.NewMsg(deadLetterPrefix + c.cfg.Name)
	out.Data = m.Data
	for k, vs := range msg.Headers() {
		if strings.HasPrefix(k, "Nats-") {
			continue // server-interpreted headers (Nats-Msg-Id, Nats-Expected-*) must not apply to the copy
		}
		out.Header[k] = vs
	}
	out.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("%s.%s.%d", meta.Stream, c.cfg.Name, meta.Sequence.Stream))
	out.Header.Set(HeaderSubject, m.Subject)
	out.Header.Set(HeaderMsgID, m.ID)
	out.Header.Set(HeaderSequence, strconv.FormatUint(meta.Sequence.Stream, 10))
	out.Header.Set(HeaderConsumer, c.cfg.Name)
	out.Header.Set(HeaderError, headerValue(herr.Error()))
	out.Header.Set(HeaderAttempts, strconv.Itoa(m.Attempt))
	out.Header.Set(HeaderPermanent, strconv.FormatBool(IsPermanent(herr)))

	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), 10*time.Second)
	defer cancel()
	if _, err := c.bus.js.PublishMsg(ctx, out, jetstream.WithExpectStream(c.bus.cfg.DeadLetterStream)); err != nil {
		delay := c.cfg.Backoff[len(c.cfg.Backoff)-1]
		c.log.Error("dead-letter publish failed, keeping the message", "subject", m.Subject, "id", m.ID, "err", err)
		_ = msg.NakWithDelay(delay)
		c.bus.metrics.processed.WithLabelValues(c.cfg.Name, "retry").Inc()
		return
	}
	if err := c.bus.syncStream(ctx, c.bus.cfg.DeadLetterStream); err != nil {
		// Not on disk yet: keep the original, which comes back and is
		// parked again (the copy is de-duplicated by its id).
		c.log.Error("dead-letter sync failed, keeping the message", "subject", m.Subject, "id", m.ID, "err", err)
		_ = msg.NakWithDelay(c.cfg.Backoff[len(c.cfg.Backoff)-1])
		c.bus.metrics.processed.WithLabelValues(c.cfg.Name, "retry").Inc()
		return
	}
	if err := msg.TermWithReason("dead-lettered"); err != nil {
		// The message comes back after AckWait and is parked again; the
		// copy is de-duplicated by its id.
		c.log.Warn("term", "subject", m.Subject, "id", m.ID, "err", err)
	}
	c.bus.metrics.processed.WithLabelValues(c.cfg.Name, "dead").Inc()
	c.bus.metrics.deadLettered.WithLabelValues(c.cfg.Name).Inc()
	c.log.Error("message dead-lettered", "subject", m.Subject, "id", m.ID,
		"attempt", m.Attempt, "err", herr)
}

// headerValue makes s safe as a header value: one line, bounded length.
func headerValue(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, s)
	const limit = 1024
	if len(s) > limit {
		s = strings.ToValidUTF8(s[:limit], "")
	}
	return s
}

// sleepCtx waits d or until ctx ends; it reports whether d elapsed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
