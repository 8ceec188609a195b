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

// openRoom starts the waiting room and opens the line of every drop not
// yet closed.
func (s *Shop) openRoom(ctx context.Context, cfg Config, log *slog.Logger, reg prometheus.Registerer) error {
	keys, err := keyringFor(cfg)
	if err != nil {
		return err
	}
	s.openDropRecorder(cfg, log)
	rc := waitroom.Config{Keys: keys, Stock: s.stockWatch, Logger: log, OnEvent: s.roomEvent, Now: cfg.DropClock, Discover: drop.Discover(s.Store)}
	var local *waitroom.MemLedger
	if s.Redis != nil {
		rc.Ledger = redisstore.NewLedger(s.Redis)
		rc.SharedJoinRate = redisstore.NewRateLimiter(s.Redis, "join", waitroom.DefaultJoinRate(), nil)
	} else {
		l, err := s.openLocalLedger(ctx, cfg, log)
		if err != nil {
			return err
		}
		rc.Ledger = l
		local, _ = l.(*waitroom.MemLedger)
	}
	s.Room, err = waitroom.New(rc)
	if err != nil {
		return err
	}
	if err := s.Room.Register(reg); err != nil {
		return err
	}
	s.DropLines = &drop.Lines{Store: s.Store, Room: s.Room, Log: log}
	return s.DropLines.OpenAll(ctx, local)
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
