package sqlitestore_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/surge-commerce/surge/internal/sqlitestore"
	"github.com/surge-commerce/surge/internal/waitroom"
	"github.com/surge-commerce/surge/internal/waitroom/ledgertest"
)

func TestJournalConformance(t *testing.T) {
	ledgertest.JournalSuite(t, func(t *testing.T) (waitroom.Journal, func() waitroom.Journal) {
		path := filepath.Join(t.TempDir(), "waitroom.db")
		var last *sqlitestore.Journal
		open := func() waitroom.Journal {
			if last != nil {
				last.Close() // what the end of a crashed process does to its files
			}
			j, err := sqlitestore.OpenJournal(context.Background(), path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { j.Close() })
			last = j
			return j
		}
		return open(), open
	})
}

// TestJournalOneOwner: while one process has the journal open, another
// cannot open it (a worker sharing the data directory keeps its line in
// memory instead), and it can once the owner is gone.
func TestJournalOneOwner(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "waitroom.db")
	first, err := sqlitestore.OpenJournal(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Append(ctx, []waitroom.JournalEntry{{Drop: "d", Record: []byte{1}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := sqlitestore.OpenJournal(ctx, path); !errors.Is(err, sqlitestore.ErrJournalInUse) {
		t.Fatalf("second OpenJournal: %v; want ErrJournalInUse", err)
	}
	first.Close()
	again, err := sqlitestore.OpenJournal(ctx, path)
	if err != nil {
		t.Fatalf("OpenJournal after the owner closed: %v", err)
	}
	defer again.Close()
	n := 0
	if err := again.Replay(ctx, func(waitroom.JournalEntry) error { n++; return nil }); err != nil || n != 1 {
		t.Errorf("replay: %d entries, %v; want 1", n, err)
	}
}
