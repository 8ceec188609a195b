package waitroom_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/surge-commerce/surge/internal/waitroom"
	"github.com/surge-commerce/surge/internal/waitroom/ledgertest"
)

// memJournal is a Journal in memory: what a process keeps across a
// restart of the ledger, not of itself.
type memJournal struct {
	mu      sync.Mutex
	entries []waitroom.JournalEntry
}

func (m *memJournal) Replay(ctx context.Context, fn func(waitroom.JournalEntry) error) error {
	m.mu.Lock()
	es := slices.Clone(m.entries)
	m.mu.Unlock()
	for _, e := range es {
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

func (m *memJournal) Append(ctx context.Context, es []waitroom.JournalEntry) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range es {
		if e.Reset {
			m.entries = slices.DeleteFunc(m.entries, func(old waitroom.JournalEntry) bool { return old.Drop == e.Drop })
			continue
		}
		m.entries = append(m.entries, waitroom.JournalEntry{Drop: e.Drop, Record: slices.Clone(e.Record)})
	}
	return nil
}

func TestJournaledLedger(t *testing.T) {
	ledgertest.JournalSuite(t, func(t *testing.T) (waitroom.Journal, func() waitroom.Journal) {
		j := &memJournal{}
		return j, func() waitroom.Journal { return j }
	})
}

// FuzzReplay feeds arbitrary journal entries to a ledger rebuilding
// itself: it must never panic, and refuses what no call wrote with
// ErrCorruptJournal.
func FuzzReplay(f *testing.F) {
	// Seeds: a real journal of a small drop's day.
	j := &memJournal{}
	l, err := waitroom.NewJournaledLedger(context.Background(), j)
	if err != nil {
		f.Fatal(err)
	}
	ctx := context.Background()
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	_, _ = l.Create(ctx, "d", waitroom.QueueConfig{Start: start, Burst: 2, MaxActive: 3, NoShowWindow: time.Minute, AccessTTL: 2 * time.Minute})
	_, _ = l.SetFlow(ctx, "d", waitroom.Flow{RatePerMinute: 60}, start.Add(-time.Hour))
	for i := range 5 {
		_, _, _ = l.Join(ctx, "d", fmt.Sprintf("v:%d", i), start.Add(-time.Minute))
	}
	_, _ = l.Counters(ctx, "d", start.Add(time.Second))
	_, _ = l.Arrive(ctx, "d", 1, start.Add(2*time.Second))
	_, _, _ = l.Release(ctx, "d", "v:2", start.Add(3*time.Second))
	_, _ = l.Close(ctx, "d", start.Add(time.Hour))
	for _, e := range j.entries {
		f.Add(e.Record)
	}
	f.Fuzz(func(t *testing.T, rec []byte) {
		// The seeds' journal, then the fuzzed entry.
		fj := &memJournal{entries: append(slices.Clone(j.entries), waitroom.JournalEntry{Drop: "d", Record: rec})}
		l, err := waitroom.NewJournaledLedger(context.Background(), fj)
		if err != nil && !errors.Is(err, waitroom.ErrCorruptJournal) {
			t.Fatalf("replay: %v; want nil or ErrCorruptJournal", err)
		}
		if err == nil {
			_, _ = l.Counters(context.Background(), "d", start.Add(2*time.Hour))
		}
	})
}
