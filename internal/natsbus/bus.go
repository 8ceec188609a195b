// Package natsbus carries Surge's domain events on NATS JetStream: durable
// publishing with de-duplication by message id, pull consumers that retry
// with backoff, and a dead-letter stream for messages that keep failing.
//
// By default the NATS server runs inside the process (nats-server as a
// library, file storage in the data directory), so `surge serve` needs no
// other service; Config.URL points it at an external JetStream cluster
// instead.
package natsbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/surge-commerce/surge/internal/tracing"
)

// Defaults for the zero values of Config.
const (
	DefaultStream           = "SURGE"
	DefaultDeadLetterStream = "SURGE_DLQ"
	// DefaultDuplicateWindow is how long JetStream remembers a Nats-Msg-Id.
	// The outbox relay re-publishes events whose "published" mark was lost
	// in a crash; a restart within this window is de-duplicated by the
	// server, a later one is absorbed by idempotent consumers. The cost is
	// memory: one entry per message published within the window.
	DefaultDuplicateWindow = 5 * time.Minute
	// DefaultMaxAge bounds how long events stay in the main stream. The
	// stream keeps events for every consumer (limits retention), so a
	// consumer created after a publish still sees it.
	DefaultMaxAge = 7 * 24 * time.Hour
)

// Config says where the bus lives and how its streams are shaped.
type Config struct {
	// URL of an external NATS server or cluster ("nats://a:4222,nats://b:4222").
	// Empty starts an embedded server in this process.
	URL string
	// StoreDir is where the embedded server keeps JetStream files, such as
	// <data-dir>/nats. Required when URL is empty.
	StoreDir string
	// Listen, for the embedded server only, is a host:port on which it also
	// accepts connections from other processes ("127.0.0.1:4222", or
	// "127.0.0.1:0" for a random port; see Bus.ClientURL). Empty means the
	// server is reachable only from inside this process.
	Listen string
	// Replicas is the replication factor of both streams (default 1; 3 on a
	// three-node cluster). An embedded server is a single node, so it
	// accepts only 1.
	Replicas int
	// Stream names the event stream (default "SURGE"); it holds the subjects
	// "surge.>".
	Stream string
	// DeadLetterStream names the stream of parked messages (default
	// "SURGE_DLQ"); it holds "dlq.<consumer>" subjects and keeps them until
	// someone deletes them.
	DeadLetterStream string
	// DuplicateWindow is the de-duplication window for Nats-Msg-Id (default
	// DefaultDuplicateWindow).
	DuplicateWindow time.Duration
	// MaxAge is how long the event stream keeps a message (default
	// DefaultMaxAge).
	MaxAge time.Duration
	// Logger receives the bus's and the embedded server's logs (default:
	// discard).
	Logger *slog.Logger
	// RecoverEvery, for the embedded server only, is how often its health
	// is checked, and the least time between two restarts after a storage
	// error (default DefaultRecoverEvery).
	RecoverEvery time.Duration
	// Tracer, when not nil, publishes and consumes inside spans and
	// carries their trace context in message headers.
	Tracer *tracing.Tracer
}

// DefaultRecoverEvery is Config.RecoverEvery when zero.
const DefaultRecoverEvery = time.Second

// Subject prefixes of the two streams.
const (
	subjectPrefix    = "surge."
	deadLetterPrefix = "dlq."
)

func (c *Config) setDefaults() {
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.Stream == "" {
		c.Stream = DefaultStream
	}
	if c.DeadLetterStream == "" {
		c.DeadLetterStream = DefaultDeadLetterStream
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = DefaultDuplicateWindow
	}
	if c.MaxAge == 0 {
		c.MaxAge = DefaultMaxAge
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.RecoverEvery == 0 {
		c.RecoverEvery = DefaultRecoverEvery
	}
}

func (c *Config) validate() error {
	switch {
	case c.URL == "" && c.StoreDir == "":
		return errors.New("an embedded server needs a StoreDir")
	case c.URL == "" && c.Replicas != 1:
		return fmt.Errorf("replicas %d: an embedded server is a single node, use 1", c.Replicas)
	case c.URL != "" && c.Listen != "":
		return errors.New("listen applies to the embedded server only, not with a URL")
	case c.Replicas < 1 || c.Replicas > 5:
		return fmt.Errorf("replicas %d: want 1 to 5", c.Replicas)
	case c.Stream == c.DeadLetterStream:
		return fmt.Errorf("stream and dead-letter stream are both %q", c.Stream)
	case c.DuplicateWindow < 0 || c.MaxAge < 0:
		return errors.New("duplicate window and max age must not be negative")
	case c.RecoverEvery < 0:
		return errors.New("recover interval must not be negative")
	case c.MaxAge < c.DuplicateWindow:
		return fmt.Errorf("max age %v is shorter than the duplicate window %v", c.MaxAge, c.DuplicateWindow)
	}
	return nil
}

// Bus is a connection to JetStream with Surge's two streams in place. It is
// safe for concurrent use.
type Bus struct {
	cfg Config
	log *slog.Logger
	emb *embedded // nil with an external URL
	nc  *nats.Conn
	js  jetstream.JetStream

	metrics metrics

	mu        sync.Mutex
	consumers map[string]*consumer // running consumers by durable name
	closed    bool
	closeErr  error
	closeOnce sync.Once
}

// Open starts the embedded server if cfg.URL is empty, connects, and creates
// or updates the event and dead-letter streams.
func Open(ctx context.Context, cfg Config) (*Bus, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("open nats bus: %w", err)
	}
	b := &Bus{
		cfg:       cfg,
		log:       cfg.Logger,
		metrics:   newMetrics(),
		consumers: make(map[string]*consumer),
	}
	if err := b.connect(ctx); err != nil {
		b.shutdownServer()
		return nil, fmt.Errorf("open nats bus: %w", err)
	}
	if err := b.ensureStreams(ctx); err != nil {
		b.nc.Close()
		b.shutdownServer()
		return nil, fmt.Errorf("open nats bus: %w", err)
	}
	if b.emb != nil {
		b.emb.watch(b.cfg.RecoverEvery)
	}
	return b, nil
}

func (b *Bus) connect(ctx context.Context) error {
	opts := []nats.Option{
		nats.Name("surge"),
		// Keep trying for ever: a restarting NATS node must not turn into a
		// dead process; Ping reports the outage to readiness meanwhile.
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				b.log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			b.log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted())
		}),
	}
	url := b.cfg.URL
	if url == "" {
		emb, err := startEmbedded(b.cfg, b.log)
		if err != nil {
			return err
		}
		b.emb = emb
		// The connection reaches whichever server runs now: after a
		// restart it reconnects to the new one by itself.
		opts = append(opts, nats.InProcessServer(emb))
	}
	if d, ok := ctx.Deadline(); ok {
		opts = append(opts, nats.Timeout(time.Until(d)))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return fmt.Errorf("connect to nats %q: %w", url, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return fmt.Errorf("jetstream: %w", err)
	}
	b.nc, b.js = nc, js
	return nil
}

func (b *Bus) shutdownServer() {
	if b.emb != nil {
		b.emb.close()
	}
}

func (b *Bus) ensureStreams(ctx context.Context) error {
	main := jetstream.StreamConfig{
		Name:        b.cfg.Stream,
		Description: "Surge domain events",
		Subjects:    []string{subjectPrefix + ">"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    b.cfg.Replicas,
		MaxAge:      b.cfg.MaxAge,
		Duplicates:  b.cfg.DuplicateWindow,
		Discard:     jetstream.DiscardOld,
	}
	dlq := jetstream.StreamConfig{
		Name:        b.cfg.DeadLetterStream,
		Description: "Surge events that consumers gave up on",
		Subjects:    []string{deadLetterPrefix + ">"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    b.cfg.Replicas,
		Duplicates:  b.cfg.DuplicateWindow,
	}
	for _, sc := range []jetstream.StreamConfig{main, dlq} {
		if err := b.ensureStream(ctx, sc); err != nil {
			return err
		}
	}
	return nil
}

// streamSetupBudget is how long a process keeps asking a JetStream cluster
// to create its streams. A cluster that has just started (or is busy, or
// is electing a leader after losing a node) times requests out for a
// while; processes and the cluster commonly start together, so that is
// worth waiting out rather than failing the start.
const streamSetupBudget = 60 * time.Second

// ensureStream creates or updates one stream, retrying answers that a
// cluster gives while it is not ready yet. A refusal of the configuration
// itself is not retried.
func (b *Bus) ensureStream(ctx context.Context, sc jetstream.StreamConfig) error {
	ctx, cancel := context.WithTimeout(ctx, streamSetupBudget)
	defer cancel()
	wait := 200 * time.Millisecond
	for attempt := 1; ; attempt++ {
		// Each attempt gets its own time limit: a request the cluster
		// never answered would otherwise use up the whole budget.
		actx, acancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := b.js.CreateOrUpdateStream(actx, sc)
		acancel()
		var apiErr *jetstream.APIError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &apiErr) && apiErr.Code == 400, ctx.Err() != nil:
			return fmt.Errorf("create or update stream %s (attempt %d): %w", sc.Name, attempt, err)
		}
		b.log.Warn("event stream not set up yet; retrying", "stream", sc.Name, "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("create or update stream %s (attempt %d): %w", sc.Name, attempt, err)
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// ClientURL returns the URL other processes can use to reach the embedded
// server when Config.Listen is set, and otherwise "".
func (b *Bus) ClientURL() string {
	if b.emb == nil || b.cfg.Listen == "" {
		return ""
	}
	return b.emb.clientURL()
}

// Publish stores data on subject in the event stream and returns once
// JetStream has acknowledged it. msgID becomes the Nats-Msg-Id header: a
// second publish with the same id within the duplicate window is accepted
// but not stored again.
func (b *Bus) Publish(ctx context.Context, subject, msgID string, data []byte) error {
	if msgID == "" {
		return fmt.Errorf("publish %s: empty message id", subject)
	}
	var err error
	if b.cfg.Tracer != nil {
		err = b.publishTraced(ctx, subject, msgID, data)
	} else {
		err = b.publishPlain(ctx, subject, msgID, data)
	}
	if err != nil {
		return fmt.Errorf("publish %s id %s: %w", subject, msgID, err)
	}
	return nil
}

func (b *Bus) publishPlain(ctx context.Context, subject, msgID string, data []byte) error {
	ack, err := b.js.Publish(ctx, subject, data, jetstream.WithMsgID(msgID), jetstream.WithExpectStream(b.cfg.Stream))
	if err != nil {
		return err
	}
	b.countPublished(subject, ack)
	return nil
}

func (b *Bus) countPublished(subject string, ack *jetstream.PubAck) {
	if ack.Duplicate {
		b.metrics.duplicates.WithLabelValues(subject).Inc()
	} else {
		b.metrics.published.WithLabelValues(subject).Inc()
	}
}

// Ping reports whether this process can reach its event stream, for
// readiness checks. The embedded server answers from its own health (its
// JetStream and the streams' storage); with an external cluster, the
// event stream's leader must answer. That is not the cluster's meta
// leader, which only serves administrative requests and whose election
// does not stop publishing.
func (b *Bus) Ping(ctx context.Context) error {
	if b.emb != nil {
		if err := b.emb.health(); err != nil {
			return fmt.Errorf("embedded nats server: %w", err)
		}
		return nil
	}
	if _, err := b.js.Stream(ctx, b.cfg.Stream); err != nil {
		return fmt.Errorf("event stream %s: %w", b.cfg.Stream, err)
	}
	return nil
}

// Embedded reports whether the NATS server runs inside this process.
func (b *Bus) Embedded() bool { return b.emb != nil }

// Close stops every consumer (cancelling running handlers and waiting for
// them), flushes outstanding acknowledgements, closes the connection and
// shuts down the embedded server. It is safe to call more than once.
func (b *Bus) Close() error {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closed = true
		running := make([]*consumer, 0, len(b.consumers))
		for _, c := range b.consumers {
			running = append(running, c)
		}
		b.mu.Unlock()
		for _, c := range running {
			c.stop()
		}
		var errs []error
		// Drain flushes the acks and naks the stopped consumers sent.
		if err := drainConn(b.nc, 10*time.Second); err != nil {
			errs = append(errs, err)
		}
		b.shutdownServer()
		b.closeErr = errors.Join(errs...)
	})
	return b.closeErr
}

// drainConn drains nc and waits until it is closed or timeout passes.
func drainConn(nc *nats.Conn, timeout time.Duration) error {
	if nc.IsClosed() {
		return nil
	}
	if !nc.IsConnected() {
		// Nothing can be flushed while disconnected; do not wait for it.
		nc.Close()
		return nil
	}
	done := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(done) })
	if err := nc.Drain(); err != nil {
		nc.Close()
		return fmt.Errorf("drain nats connection: %w", err)
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-t.C:
		nc.Close()
		return fmt.Errorf("drain nats connection: not done after %v", timeout)
	}
}

// Register adds the bus's metrics to reg.
func (b *Bus) Register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{
		b.metrics.published, b.metrics.duplicates, b.metrics.processed,
		b.metrics.deadLettered, &pendingCollector{bus: b},
	} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register nats bus metrics: %w", err)
		}
	}
	return nil
}

// serverLogger sends the embedded server's log lines to slog.
type serverLogger struct{ log *slog.Logger }

func (l serverLogger) Noticef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l serverLogger) Warnf(format string, v ...any)   { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l serverLogger) Errorf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l serverLogger) Debugf(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l serverLogger) Tracef(format string, v ...any)  {}

// Fatalf logs only: the library must never exit the surge process. The
// server stops itself after a fatal condition, and Ping reports it.
func (l serverLogger) Fatalf(format string, v ...any) { l.log.Error(fmt.Sprintf(format, v...)) }

// publishTimeout bounds the wait for an asynchronous publish's
// acknowledgement when the caller's ctx has no deadline, as the
// synchronous Publish's request is bounded.
const publishTimeout = 5 * time.Second

// PublishAsync is Publish without waiting: it sends the message and
// returns wait, which returns once JetStream has acknowledged it (or with
// why not). Messages sent this way on one connection reach the stream in
// the order they were sent; a caller with a batch sends all of it, then
// waits for each, and a cluster replicates the batch in fewer rounds
// than one message at a time.
func (b *Bus) PublishAsync(ctx context.Context, subject, msgID string, data []byte) (wait func(context.Context) error, err error) {
	if msgID == "" {
		return nil, fmt.Errorf("publish %s: empty message id", subject)
	}
	msg := nats.NewMsg(subject)
	msg.Data = data
	end := func(error) {}
	if b.cfg.Tracer != nil {
		end = b.traceAsync(ctx, msg, msgID)
	}
	f, err := b.js.PublishMsgAsync(msg, jetstream.WithMsgID(msgID), jetstream.WithExpectStream(b.cfg.Stream))
	if err != nil {
		end(err)
		return nil, fmt.Errorf("publish %s id %s: %w", subject, msgID, err)
	}
	return func(ctx context.Context) error {
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, publishTimeout)
			defer cancel()
		}
		var err error
		select {
		case ack := <-f.Ok():
			b.countPublished(subject, ack)
		case err = <-f.Err():
		case <-ctx.Done():
			err = ctx.Err()
		}
		end(err)
		if err != nil {
			return fmt.Errorf("publish %s id %s: %w", subject, msgID, err)
		}
		return nil
	}, nil
}
