package waitroom_test

import (
	"context"
	"slices"
	"sync"
	"testing"

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
