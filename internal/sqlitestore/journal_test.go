package sqlitestore_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

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

// BenchmarkJournalAppend measures what a join costs the journal: one
// entry of a typical size, appended in batches as concurrent joins make
// them (group commit).
func BenchmarkJournalAppend(b *testing.B) {
	for _, batch := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			ctx := context.Background()
			j, err := sqlitestore.OpenJournal(ctx, filepath.Join(b.TempDir(), "waitroom.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer j.Close()
			es := make([]waitroom.JournalEntry, batch)
			for i := range es {
				es[i] = waitroom.JournalEntry{Drop: "drop_0123456789abcdef01234567", Record: make([]byte, 60)}
			}
			b.ResetTimer()
			for i := 0; i < b.N; i += batch {
				if err := j.Append(ctx, es); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkJournaledJoin is a drop's stampede of joins on the embedded
// default: many at once, each written to the journal before it answers.
func BenchmarkJournaledJoin(b *testing.B) {
	ctx := context.Background()
	j, err := sqlitestore.OpenJournal(ctx, filepath.Join(b.TempDir(), "waitroom.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	l, err := waitroom.NewJournaledLedger(ctx, j)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now().Add(time.Hour)
	if _, err := l.Create(ctx, "d", waitroom.QueueConfig{Start: start, AccessTTL: time.Minute, MaxJoins: 1 << 30}); err != nil {
		b.Fatal(err)
	}
	var n atomic.Int64
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			v := fmt.Sprintf("v:%d", n.Add(1))
			if _, _, err := l.Join(ctx, "d", v, start.Add(-time.Minute)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
