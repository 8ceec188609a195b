package shop

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/surge-commerce/surge/internal/checkout"
	"github.com/surge-commerce/surge/internal/drop"
	"github.com/surge-commerce/surge/internal/order"
	"github.com/surge-commerce/surge/internal/redisstore"
	"github.com/surge-commerce/surge/internal/waitroom"
)

// keyringFor returns the waiting-room keyring from configuration, or,
// when none is configured, one kept in the data dir so tickets survive a
// restart of a single-process shop. Replicas must share configured keys.
func keyringFor(cfg Config) (*waitroom.Keyring, error) {
	if cfg.WaitroomKeys != "" {
		return waitroom.ParseKeyring(cfg.WaitroomKeys)
	}
	path := filepath.Join(cfg.DataDir, "waitroom.keys")
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
			return nil, fmt.Errorf("waiting-room key: %w", err)
		}
		secret := make([]byte, 32)
		if _, err := rand.Read(secret); err != nil {
			return nil, err
		}
		b = []byte("local1:" + base64.RawURLEncoding.EncodeToString(secret))
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return nil, fmt.Errorf("waiting-room key: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("waiting-room key: %w", err)
	}
	return waitroom.ParseKeyring(strings.TrimSpace(string(b)))
}

// openRoom starts the waiting room and opens every drop not yet closed.
func (s *Shop) openRoom(ctx context.Context, cfg Config, log *slog.Logger, reg prometheus.Registerer) error {
	keys, err := keyringFor(cfg)
	if err != nil {
		return err
	}
	rc := waitroom.Config{Keys: keys, Stock: s.Store.Available, Logger: log,
		Discover: func(ctx context.Context, id string) (waitroom.DropSpec, bool, error) {
			d, err := s.Store.DropByID(ctx, id)
			if errors.Is(err, drop.ErrNotFound) || err == nil && d.Closed {
				return waitroom.DropSpec{}, false, nil
			}
			if err != nil {
				return waitroom.DropSpec{}, false, err
			}
			return SpecFromDrop(d), true, nil
		}}
	if s.Redis != nil {
		rc.Ledger = redisstore.NewLedger(s.Redis)
		rc.SharedJoinRate = redisstore.NewRateLimiter(s.Redis, "join", waitroom.DefaultJoinRate(), nil)
	}
	s.Room, err = waitroom.New(rc)
	if err != nil {
		return err
	}
	if err := s.Room.Register(reg); err != nil {
		return err
	}
	ds, err := s.Store.Drops(ctx)
	if err != nil {
		return err
	}
	for _, d := range ds {
		if err := s.DropChanged(ctx, d); err != nil {
			if s.Redis == nil {
				return err
			}
			// The shared ledger may be down while this replica starts: it
			// serves what it can, and the drop sync opens the drop once
			// Redis answers.
			log.Warn("waiting room: open drop", "drop", d.ID, "err", err)
		}
	}
	return nil
}

// DropChanged tells the waiting room about a created or closed drop.
func (s *Shop) DropChanged(ctx context.Context, d drop.Drop) error {
	if d.Closed {
		err := s.Room.Close(ctx, d.ID)
		if errors.Is(err, waitroom.ErrUnknownDrop) {
			return nil
		}
		return err
	}
	return s.Room.Open(ctx, SpecFromDrop(d))
}

// SpecFromDrop turns a drop's settings into the waiting room's.
func SpecFromDrop(d drop.Drop) waitroom.DropSpec {
	sp := waitroom.DropSpec{
		ID: d.ID, Start: d.StartsAt, PreQueueOpens: time.Duration(d.Room.PreQueueOpens),
		RatePerMinute: d.Room.RatePerMinute, MaxActive: d.Room.MaxActive,
		NoShowWindow: time.Duration(d.Room.NoShowWindow), AccessTTL: time.Duration(d.Room.AccessTTL),
		PoWDifficulty: d.Room.PoWDifficulty,
	}
	if d.EndsAt != nil {
		sp.End = *d.EndsAt
	}
	if d.Room.AdaptiveLatency > 0 || d.Room.AdaptiveErrorRate > 0 {
		sp.Adaptive = &waitroom.AdaptiveTargets{Latency: time.Duration(d.Room.AdaptiveLatency), ErrorRate: d.Room.AdaptiveErrorRate}
	}
	return sp
}

// dropGate lets drop SKUs be bought only with a waiting-room access token
// for the buyer's session, during the drop.
type dropGate struct {
	store Store
	room  *waitroom.Room
	now   func() time.Time
}

var _ checkout.DropGate = dropGate{}

func (g dropGate) Gate(ctx context.Context, session string, access func(dropID string) string, lines []order.Line) (*checkout.DropPurchase, error) {
	skus := make([]string, len(lines))
	for i, l := range lines {
		skus[i] = l.SKU
	}
	d, ok, err := g.store.OpenDropForSKUs(ctx, skus)
	if err != nil || !ok {
		return nil, err
	}
	switch d.StateAt(g.now()) {
	case drop.StateScheduled:
		return nil, fmt.Errorf("%w: %q starts at %s; join the queue at /drops/%s", drop.ErrNoAccess, d.Name, d.StartsAt.Format(time.RFC3339), d.Slug)
	case drop.StateClosed:
		return nil, fmt.Errorf("%w: %q is closed", drop.ErrNoAccess, d.Name)
	}
	token := ""
	if access != nil {
		token = access(d.ID)
	}
	a, err := g.room.VerifyAccess(ctx, token, d.ID, session)
	if errors.Is(err, waitroom.ErrSoldOut) {
		return nil, fmt.Errorf("%q: %w", d.Name, err)
	}
	if errors.Is(err, waitroom.ErrBadAccess) {
		return nil, fmt.Errorf("%w: wait for your turn at /drops/%s/queue (%v)", drop.ErrNoAccess, d.Slug, err)
	}
	if errors.Is(err, waitroom.ErrUnknownDrop) {
		// The store has the drop open but this replica's room has not
		// picked it up yet: a moment's wait, not a missing drop.
		err = notReady{err}
	}
	if err != nil {
		// The room could not check the token (its shared state did not
		// answer): that says nothing about the buyer's access, so it
		// must not be refused as if it did. It stays an error the
		// buyer retries.
		return nil, fmt.Errorf("drop %q: %w", d.Name, err)
	}
	p := &checkout.DropPurchase{DropID: d.ID, Buyer: a.Visitor, Limit: d.PerCustomerLimit}
	for _, l := range lines {
		if d.HasSKU(l.SKU) {
			p.Quantity += l.Quantity
		}
	}
	if p.Quantity > p.Limit {
		return nil, fmt.Errorf("%w: %d per customer", drop.ErrOverLimit, p.Limit)
	}
	return p, nil
}

// notReady marks an error as passing: the HTTP layer answers it 503 with
// Retry-After. It hides what it wraps on purpose, so that the unknown
// drop it stands for is not answered 404.
type notReady struct{ error }

// Unavailable marks the error as worth a retry in a moment.
func (e notReady) Unavailable() bool { return true }

func (g dropGate) Done(ctx context.Context, p *checkout.DropPurchase) {
	_ = g.room.Done(ctx, p.DropID, p.Buyer)
}

func (g dropGate) Observe(dropID string, latency time.Duration, err error) {
	g.room.ObserveCheckout(dropID, latency, err)
}
