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
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/surge-commerce/surge/internal/drop"
	"github.com/surge-commerce/surge/internal/journalfile"
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
			if err := d.Validate(); err != nil {
				// Reported by CheckDrops; asking again will not help.
				return waitroom.DropSpec{}, false, nil
			}
			return d.RoomSpec(), true, nil
		}}
	if s.Redis != nil {
		rc.Ledger = redisstore.NewLedger(s.Redis)
		rc.SharedJoinRate = redisstore.NewRateLimiter(s.Redis, "join", waitroom.DefaultJoinRate(), nil)
	} else {
		l, err := s.openLocalLedger(ctx, cfg, log)
		if err != nil {
			return err
		}
		rc.Ledger = l
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
	if l, ok := rc.Ledger.(*waitroom.MemLedger); ok {
		s.forgetEndedLines(ctx, l, ds, log)
	}
	// No stored drop may stop the shop from starting: a drop the room
	// cannot open (settings stored before the admin API bounded them, a
	// shared ledger that is down) is logged and reported on /readyz
	// (CheckDrops), and the rest of the shop serves. The drop sync, or
	// the room's discovery when a buyer asks for it, opens it later if it
	// can be.
	for _, d := range ds {
		_ = s.DropChanged(ctx, d)
	}
	return nil
}

// openLocalLedger returns the waiting room's ledger of a shop that keeps
// it in process: journaled in the data dir, so that the lines (places, the
// pre-queue draw, admitted slots) survive a crash and restart, as tickets
// and access tokens do. Another process holding the journal (a worker
// sharing the data dir), or no data dir, gets a ledger in memory only: it
// serves no line. A journal that cannot be replayed is logged and
// cleared: the shop starts with empty lines rather than not at all.
func (s *Shop) openLocalLedger(ctx context.Context, cfg Config, log *slog.Logger) (waitroom.Ledger, error) {
	if cfg.DataDir == "" {
		return waitroom.NewMemLedger(), nil
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	path := filepath.Join(cfg.DataDir, "waitroom.journal")
	j, err := journalfile.Open(path)
	if errors.Is(err, journalfile.ErrInUse) {
		log.Info("waiting room: the journal belongs to another process; this one keeps its lines in memory", "path", path)
		return waitroom.NewMemLedger(), nil
	}
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, j.Close)
	l, err := waitroom.NewJournaledLedger(ctx, j)
	if errors.Is(err, waitroom.ErrCorruptJournal) {
		log.Error("waiting room: the journal cannot be replayed; every line starts empty", "path", path, "err", err)
		if err := j.Clear(ctx); err != nil {
			return nil, err
		}
		l, err = waitroom.NewJournaledLedger(ctx, j)
	}
	return l, err
}

// forgetEndedLines deletes the journaled lines of drops that are closed,
// ended or gone: nobody can buy through them any more, and they would be
// replayed at every start.
func (s *Shop) forgetEndedLines(ctx context.Context, l *waitroom.MemLedger, ds []drop.Drop, log *slog.Logger) {
	open := map[string]bool{waitroom.StandbyDrop: true}
	now := time.Now()
	for _, d := range ds {
		if d.StateAt(now) != drop.StateClosed {
			open[d.ID] = true
		}
	}
	for _, id := range l.Drops() {
		if open[id] {
			continue
		}
		if err := l.Delete(ctx, id); err != nil && !errors.Is(err, waitroom.ErrUnknownDrop) {
			log.Warn("waiting room: forget an ended line", "drop", id, "err", err)
		}
	}
}

// DropChanged tells the waiting room about a created or closed drop. A
// drop it cannot open is remembered for CheckDrops until it opens or is
// closed.
func (s *Shop) DropChanged(ctx context.Context, d drop.Drop) error {
	if d.Closed {
		s.noteDrop(d, nil)
		err := s.Room.Close(ctx, d.ID)
		if errors.Is(err, waitroom.ErrUnknownDrop) {
			return nil
		}
		return err
	}
	err := d.Validate()
	if err == nil {
		err = s.Room.Open(ctx, d.RoomSpec())
	}
	s.noteDrop(d, err)
	return err
}

// noteDrop records whether drop d is open in this replica's waiting room
// (err nil) or why not, logging each new reason once.
func (s *Shop) noteDrop(d drop.Drop, err error) {
	s.dropMu.Lock()
	defer s.dropMu.Unlock()
	if err == nil {
		delete(s.dropProblems, d.ID)
		return
	}
	why := fmt.Sprintf("%s (%s): %v", d.ID, d.Slug, err)
	if errors.Is(err, drop.ErrInvalid) {
		why += "; close it with POST /api/v1/admin/drops/" + d.ID + "/close and create it anew"
	}
	if s.dropProblems[d.ID] == why {
		return
	}
	if s.dropProblems == nil {
		s.dropProblems = map[string]string{}
	}
	s.dropProblems[d.ID] = why
	s.log.Error("waiting room: drop not open, skipped", "drop", d.ID, "slug", d.Slug, "err", err)
}

// CheckDrops fails, naming each one and why, while any drop that is not
// closed could not be opened in this replica's waiting room: the shop
// serves everything else, and readiness reports it as degraded.
func (s *Shop) CheckDrops(context.Context) error {
	s.dropMu.Lock()
	defer s.dropMu.Unlock()
	why := make([]string, 0, len(s.dropProblems))
	for id, w := range s.dropProblems {
		if _, err := s.Room.Spec(id); err == nil {
			// Opened since, when a buyer asked for it (Discover).
			delete(s.dropProblems, id)
			continue
		}
		why = append(why, w)
	}
	if len(why) == 0 {
		return nil
	}
	slices.Sort(why)
	return errors.New(strings.Join(why, "; "))
}
