package shop

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/surge-commerce/surge/internal/mail"
	"github.com/surge-commerce/surge/internal/natsbus"
	"github.com/surge-commerce/surge/internal/outbox"
	"github.com/surge-commerce/surge/internal/pipeline"
)

// Role says which parts of the shop a process runs.
type Role string

// Roles. API serves HTTP and relays the outbox; Worker runs the order
// consumers and the expiry sweep; All does both (the embedded default).
const (
	RoleAll    Role = "all"
	RoleAPI    Role = "api"
	RoleWorker Role = "worker"
)

// ParseRole validates a role name.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case RoleAll, RoleAPI, RoleWorker:
		return r, nil
	}
	return "", fmt.Errorf("role %q: want all, api or worker", s)
}

// openPipeline connects the event bus and the payment provider, and builds
// the outbox relay and the order workers.
func (s *Shop) openPipeline(ctx context.Context, cfg Config, log *slog.Logger, reg prometheus.Registerer) error {
	bus, err := natsbus.Open(ctx, natsbus.Config{URL: cfg.NATSURL, StoreDir: filepath.Join(cfg.DataDir, "nats"),
		Listen: cfg.NATSListen, Replicas: cfg.NATSReplicas, Logger: log, Tracer: cfg.Tracer})
	if err != nil {
		return fmt.Errorf("event bus: %w", err)
	}
	s.Bus = bus
	s.closers = append(s.closers, bus.Close)
	if err := bus.Register(reg); err != nil {
		return err
	}
	pay, err := s.openPayments(ctx, cfg, log)
	if err != nil {
		return err
	}

	pay = tracePayments(pay, cfg.Tracer)
	s.relay = outbox.NewRelay(s.Store, bus, outbox.RelayOptions{Logger: log, Tracer: cfg.Tracer})
	if err := s.relay.Register(reg); err != nil {
		return err
	}
	var sender mail.Sender = mail.NewLogSender(log)
	if cfg.SMTP.Addr != "" {
		if sender, err = mail.NewSMTPSender(cfg.SMTP); err != nil {
			return err
		}
	}
	s.mail = sender
	s.workers, err = pipeline.New(s.Store, pay, mailer{sender}, log, cfg.ShopName, reg)
	if err != nil {
		return err
	}
	s.workers.ClaimLease = cfg.ClaimLease
	s.workers.ShopURL = cfg.PublicURL
	return nil
}

// mailer adapts a mail.Sender to what the workers need.
type mailer struct{ mail.Sender }

func (m mailer) Send(ctx context.Context, to, subject, body string) error {
	return m.Sender.Send(ctx, mail.Message{To: to, Subject: subject, Text: body})
}

// retireCheck is how often a worker asks the bus whether a retired
// consumer's backlog is done.
const retireCheck = 5 * time.Second

// consumer is the bus consumer running h: a poison message is parked at
// once instead of retried.
func (s *Shop) consumer(h pipeline.Handler) natsbus.Consumer {
	return natsbus.Consumer{Name: h.Name, Subject: h.Subject, AckWait: s.ackWait,
		Handler: func(ctx context.Context, m natsbus.Message) error {
			err := h.Handle(ctx, m.Data)
			if errors.Is(err, pipeline.ErrPoison) {
				return natsbus.Permanent(err)
			}
			return err
		}}
}

// Run runs the background work of role until ctx ends: the outbox relay on
// API processes, the order consumers and the expiry sweep on workers.
func (s *Shop) Run(ctx context.Context, role Role) error {
	if role != RoleWorker && s.Room == nil {
		return fmt.Errorf("run %s: the shop was opened for a worker (Config.Role), without a storefront", role)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	if role == RoleAll || role == RoleAPI {
		wg.Go(func() { s.warmDrops(ctx, s.warmBefore, s.log) })
		if s.Redis != nil {
			// Other replicas create and close drops and change the
			// catalog too.
			wg.Go(func() { s.DropLines.Follow(ctx, time.Second) })
			wg.Go(func() { s.followPurges(ctx) })
		}
		if s.Standby != nil {
			wg.Go(func() { s.Standby.Watch(ctx, time.Second, s.log) })
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.relay.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				errs <- fmt.Errorf("outbox relay: %w", err)
			}
		}()
	}
	if role == RoleAll || role == RoleWorker {
		for _, h := range s.workers.Handlers() {
			stop, err := s.Bus.Consume(ctx, s.consumer(h))
			if err != nil {
				return fmt.Errorf("consumer %s: %w", h.Name, err)
			}
			defer stop()
		}
		for _, h := range s.workers.RetiredHandlers() {
			wg.Go(func() {
				if err := s.Bus.Retire(ctx, s.consumer(h), retireCheck); err != nil && ctx.Err() == nil {
					s.log.Error("retired consumer", "consumer", h.Name, "err", err)
				}
			})
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.workers.SweepExpired(ctx, s.sweepEvery)
		}()
		if s.jobs != nil {
			wg.Go(func() { _ = s.jobs.Run(ctx) })
		}
	}
	<-ctx.Done()
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}
