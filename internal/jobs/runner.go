package jobs

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/surge-commerce/surge/internal/drop"
	"github.com/surge-commerce/surge/internal/mail"
	"github.com/surge-commerce/surge/internal/notify"
)

// Source is everything the runner reads and writes: the ledger, the
// subscribers and the drops.
type Source interface {
	Store
	Recipients(ctx context.Context, q notify.RecipientQuery) ([]notify.Recipient, error)
	Drops(ctx context.Context) ([]drop.Drop, error)
	DropByID(ctx context.Context, id string) (drop.Drop, error)
	Available(ctx context.Context, id string) (int64, error)
}

// Conn is one mail connection that sends message after message (see
// mail.Session).
type Conn interface {
	Send(ctx context.Context, m mail.Message) error
	Broken() bool
	Close() error
}

// Dialer opens mail connections.
type Dialer interface {
	Open(ctx context.Context) (Conn, error)
}

// SMTPDialer opens sessions on an SMTP sender.
type SMTPDialer struct{ Sender *mail.SMTPSender }

// Open opens one SMTP session.
func (d SMTPDialer) Open(ctx context.Context) (Conn, error) { return d.Sender.Open(ctx) }

// SenderDialer makes a Dialer of a one-message-at-a-time sender, such as
// the log sender of a shop without SMTP.
type SenderDialer struct{ Sender mail.Sender }

// Open returns a connection that sends each message through the sender.
func (d SenderDialer) Open(context.Context) (Conn, error) { return senderConn(d), nil }

type senderConn SenderDialer

func (c senderConn) Send(ctx context.Context, m mail.Message) error { return c.Sender.Send(ctx, m) }
func (senderConn) Broken() bool                                     { return false }
func (senderConn) Close() error                                     { return nil }

// Pressure says whether the shop is under load, so bulk mail should hold
// off (see MetricsPressure).
type Pressure interface {
	Pressured(ctx context.Context) bool
}

// Config shapes a Runner.
type Config struct {
	// MailsPerSecond caps the messages all this worker's senders send
	// (default 50); Senders is how many SMTP connections it keeps open at
	// once (default 2).
	MailsPerSecond float64
	Senders        int
	// BatchSize is how many subscriptions a lease covers (default 500);
	// Lease is how long a worker holds one without renewing (default
	// 30s): a dead worker's batch waits that long for another worker.
	BatchSize int
	Lease     time.Duration
	// Poll is how often the runner looks for drops and due jobs (default
	// 5s).
	Poll time.Duration
	// ReminderBefore is how long before a drop's start its reminder goes
	// out (default 1h).
	ReminderBefore time.Duration
	// BackoffBase is the first wait when the shop reports pressure,
	// doubled while it lasts up to BackoffMax (defaults 1s and 30s).
	BackoffBase, BackoffMax time.Duration
	// ShopName signs the mail, PublicURL is where its links point and
	// MessageDomain ends its Message-IDs.
	ShopName      string
	PublicURL     string
	MessageDomain string
	// Owner names this worker in the ledger (default host-pid-random).
	Owner    string
	Pressure Pressure // nil: never held off
	Log      *slog.Logger
	Now      func() time.Time
}

// Runner runs the mail jobs: it creates them from the drops, and sends
// their batches.
type Runner struct {
	cfg     Config
	src     Source
	dial    Dialer
	limit   *rate.Limiter
	metrics *Metrics
	log     *slog.Logger

	mu      sync.Mutex
	ensured map[string]bool // kind/drop of jobs known to exist
}

// NewRunner returns a runner of src's jobs sending through dial.
func NewRunner(src Source, dial Dialer, cfg Config) *Runner {
	if cfg.MailsPerSecond <= 0 {
		cfg.MailsPerSecond = 50
	}
	if cfg.Senders <= 0 {
		cfg.Senders = 2
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 500
	}
	if cfg.Lease <= 0 {
		cfg.Lease = 30 * time.Second
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 5 * time.Second
	}
	if cfg.ReminderBefore <= 0 {
		cfg.ReminderBefore = time.Hour
	}
	if cfg.BackoffBase <= 0 {
		cfg.BackoffBase = time.Second
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = 30 * time.Second
	}
	if cfg.Owner == "" {
		host, _ := os.Hostname()
		cfg.Owner = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), rand.Text()[:6])
	}
	if cfg.MessageDomain == "" {
		cfg.MessageDomain = "surge.localhost"
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	// The burst is one message per sender: a limit of 1/s means one a
	// second, not a second's worth at once after a pause.
	return &Runner{cfg: cfg, src: src, dial: dial, log: cfg.Log, metrics: NewMetrics(),
		limit: rate.NewLimiter(rate.Limit(cfg.MailsPerSecond), cfg.Senders), ensured: map[string]bool{}}
}

// Metrics returns the runner's metrics, for registering.
func (r *Runner) Metrics() *Metrics { return r.metrics }

// Run creates and sends jobs until ctx ends.
func (r *Runner) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { r.scheduleLoop(ctx) })
	for range r.cfg.Senders {
		wg.Go(func() { r.sendLoop(ctx) })
	}
	wg.Wait()
	return nil
}

func (r *Runner) wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (r *Runner) scheduleLoop(ctx context.Context) {
	for {
		if err := r.Schedule(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("mail jobs: schedule", "err", err)
		}
		if !r.wait(ctx, r.cfg.Poll) {
			return
		}
	}
}

// soldOutWithin is how recently a drop must have started for its end to
// be announced: a shop that starts running jobs does not mail about drops
// long gone.
const soldOutWithin = 7 * 24 * time.Hour

// Schedule creates the jobs the drops call for and starts the due ones:
// a reminder at ReminderBefore the start of every drop not yet over, and
// a sold-out mail when a drop closes or sells out. A job whose moment
// passed (a reminder for a drop already over) is finished unsent.
func (r *Runner) Schedule(ctx context.Context) error {
	now := r.cfg.Now()
	ds, err := r.src.Drops(ctx)
	if err != nil {
		return err
	}
	for _, d := range ds {
		over, err := r.over(ctx, d, now)
		if err != nil {
			return err
		}
		switch {
		case !over:
			err = r.ensure(ctx, KindReminder, d, d.StartsAt.Add(-r.cfg.ReminderBefore))
		case now.Sub(d.StartsAt) < soldOutWithin:
			err = r.ensure(ctx, KindSoldOut, d, now)
		}
		if err != nil {
			return err
		}
	}
	due, err := r.src.DueJobs(ctx, now)
	if err != nil {
		return err
	}
	var remaining [2]int64
	for _, j := range due {
		if j.StartedAt == nil {
			d, err := r.src.DropByID(ctx, j.DropID)
			if err != nil {
				return err
			}
			if over, err := r.over(ctx, d, now); err != nil {
				return err
			} else if over && j.Kind == KindReminder {
				r.log.Info("mail job skipped: the drop is over", "job", j.ID, "kind", j.Kind, "drop", d.Slug)
				if err := r.src.FinishJob(ctx, j.ID); err != nil {
					return err
				}
				continue
			}
			if j, err = r.src.StartJob(ctx, j.ID); err != nil {
				return err
			}
			r.log.Info("mail job started", "job", j.ID, "kind", j.Kind, "drop", d.Slug, "recipients", j.Recipients)
		}
		remaining[kindIndex(j.Kind)] += j.Remaining()
	}
	for i, k := range Kinds {
		r.metrics.remaining.WithLabelValues(string(k)).Set(float64(remaining[i]))
	}
	return nil
}

func kindIndex(k Kind) int {
	if k == KindSoldOut {
		return 1
	}
	return 0
}

// over reports whether d has closed, or sold out after its start.
func (r *Runner) over(ctx context.Context, d drop.Drop, now time.Time) (bool, error) {
	switch d.StateAt(now) {
	case drop.StateClosed:
		return true, nil
	case drop.StateLive:
		n, err := r.src.Available(ctx, d.ID)
		return n <= 0, err
	}
	return false, nil
}

func (r *Runner) ensure(ctx context.Context, k Kind, d drop.Drop, runAt time.Time) error {
	key := string(k) + "/" + d.ID
	r.mu.Lock()
	done := r.ensured[key]
	r.mu.Unlock()
	if done {
		return nil
	}
	if _, err := r.src.EnsureJob(ctx, k, d.ID, runAt); err != nil {
		return err
	}
	r.mu.Lock()
	r.ensured[key] = true
	r.mu.Unlock()
	return nil
}

// sendLoop claims batches of due jobs and sends them, on one connection
// kept open while there is work.
func (r *Runner) sendLoop(ctx context.Context) {
	s := &sender{r: r}
	defer s.close()
	failures := 0
	for ctx.Err() == nil {
		worked, err := r.sendOne(ctx, s)
		switch {
		case err != nil && ctx.Err() == nil:
			failures++
			d := min(r.cfg.BackoffMax, r.cfg.BackoffBase<<min(failures, 10))
			r.log.Warn("mail jobs: sending failed; retrying", "err", err, "in", d.String())
			if !r.wait(ctx, d) {
				return
			}
		case worked:
			failures = 0
		default:
			// Nothing to send: let the connection go until there is.
			s.close()
			if !r.wait(ctx, r.cfg.Poll) {
				return
			}
		}
	}
}

// sendOne sends one batch of a due job, if one is free.
func (r *Runner) sendOne(ctx context.Context, s *sender) (bool, error) {
	due, err := r.src.DueJobs(ctx, r.cfg.Now())
	if err != nil {
		return false, err
	}
	for _, j := range due {
		if j.StartedAt == nil {
			continue
		}
		b, err := r.src.ClaimBatch(ctx, j.ID, r.cfg.Owner, r.cfg.BatchSize, r.cfg.Lease)
		switch {
		case errors.Is(err, ErrNoBatch) || errors.Is(err, ErrPaused):
			continue
		case errors.Is(err, ErrFinished):
			r.log.Info("mail job finished", "job", j.ID, "kind", j.Kind)
			continue
		case err != nil:
			return false, err
		}
		return true, r.sendBatch(ctx, s, j, b)
	}
	return false, nil
}

// sendBatch sends b's recipients not yet recorded, recording each right
// after the server's answer, renewing the lease as it goes.
func (r *Runner) sendBatch(ctx context.Context, s *sender, j Job, b Batch) (err error) {
	kind := string(j.Kind)
	defer func() {
		if err != nil && !errors.Is(err, ErrLeaseLost) {
			// Unfinished: another sender may take it at once.
			if rerr := r.src.ReleaseBatch(context.WithoutCancel(ctx), b); rerr != nil {
				r.log.Warn("mail jobs: release batch", "job", j.ID, "err", rerr)
			}
			r.metrics.batches.WithLabelValues("released").Inc()
		}
	}()
	c, err := r.content(ctx, j)
	if err != nil {
		return err
	}
	done, err := r.src.Delivered(ctx, b)
	if err != nil {
		return err
	}
	rs, err := r.src.Recipients(ctx, notify.RecipientQuery{DropID: j.DropID, FromID: b.FromID, ToID: b.ToID,
		ConfirmedBy: *j.StartedAt, ReadPosition: j.ReadPosition})
	if err != nil {
		return err
	}
	for _, rc := range rs {
		if done[rc.SubscriptionID] {
			continue
		}
		// Renew well before the lease runs out: past it, another worker
		// may take the batch and mail the same people.
		if b.LeaseUntil.Sub(r.cfg.Now()) < r.cfg.Lease/2 {
			if b, err = r.src.RenewBatch(ctx, b, r.cfg.Lease); err != nil {
				if errors.Is(err, ErrLeaseLost) {
					r.metrics.batches.WithLabelValues("lost").Inc()
					r.log.Warn("mail jobs: batch lease lost", "job", j.ID, "from", b.FromID)
					return nil
				}
				if errors.Is(err, ErrPaused) {
					r.log.Info("mail job paused", "job", j.ID)
					if err := r.src.ReleaseBatch(context.WithoutCancel(ctx), b); err != nil {
						return err
					}
					r.metrics.batches.WithLabelValues("released").Inc()
					return nil
				}
				return err
			}
		}
		if err := r.holdOff(ctx); err != nil {
			return err
		}
		if err := r.limit.Wait(ctx); err != nil {
			return err
		}
		m := c.message(r, j, rc)
		outcome, err := s.send(ctx, m)
		if err != nil {
			r.metrics.mails.WithLabelValues(kind, "retry").Inc()
			return err
		}
		// The server has the message (or refused it for good): record it
		// before anything else. A crash between the two is the one way a
		// recipient gets a message twice, with the same Message-ID.
		if err := r.src.RecordDelivery(context.WithoutCancel(ctx), j.ID, rc.SubscriptionID, outcome); err != nil {
			return err
		}
		r.metrics.mails.WithLabelValues(kind, string(outcome)).Inc()
	}
	if err := r.src.FinishBatch(ctx, b); err != nil {
		if errors.Is(err, ErrLeaseLost) {
			r.metrics.batches.WithLabelValues("lost").Inc()
			return nil
		}
		return err
	}
	r.metrics.batches.WithLabelValues("done").Inc()
	return nil
}

// holdOff waits while the shop reports pressure, longer each time.
func (r *Runner) holdOff(ctx context.Context) error {
	if r.cfg.Pressure == nil {
		return nil
	}
	d := r.cfg.BackoffBase
	for r.cfg.Pressure.Pressured(ctx) {
		r.metrics.pressure.Set(1)
		r.metrics.backoffs.Inc()
		r.metrics.backoffSeconds.Add(d.Seconds())
		if !r.wait(ctx, d) {
			return ctx.Err()
		}
		d = min(2*d, r.cfg.BackoffMax)
	}
	r.metrics.pressure.Set(0)
	return nil
}

// sender is one sending goroutine's connection.
type sender struct {
	r    *Runner
	conn Conn
}

// sendAttempts bounds tries of one message on fresh connections before
// the batch is given up for later.
const sendAttempts = 3

// send delivers m: Sent once the server took it, Failed when it refused
// it for good, an error when it could not be delivered now.
func (s *sender) send(ctx context.Context, m mail.Message) (Outcome, error) {
	var last error
	for range sendAttempts {
		if s.conn == nil {
			c, err := s.r.dial.Open(ctx)
			if err != nil {
				last = err
				continue
			}
			s.conn = c
			s.r.metrics.connections.Inc()
		}
		start := time.Now()
		err := s.conn.Send(ctx, m)
		s.r.metrics.sendSeconds.Observe(time.Since(start).Seconds())
		switch {
		case err == nil:
			return Sent, nil
		case mail.Permanent(err) || errors.Is(err, mail.ErrInvalidMessage):
			// Refused for good, or unsendable as it is (an address the
			// mail package will not take): the same again would fail the
			// same way.
			s.r.log.Info("mail not deliverable", "to", m.To, "err", err)
			return Failed, nil
		}
		last = err
		if s.conn.Broken() {
			s.close()
		}
		if ctx.Err() != nil {
			break
		}
	}
	return "", last
}

func (s *sender) close() {
	if s.conn != nil {
		s.conn.Close()
		s.conn = nil
	}
}
