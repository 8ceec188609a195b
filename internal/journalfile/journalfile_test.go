package journalfile_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/surge-commerce/surge/internal/journalfile"
	"github.com/surge-commerce/surge/internal/waitroom"
	"github.com/surge-commerce/surge/internal/waitroom/ledgertest"
)

// opener returns a journal file's path and a function that opens it
// again as a restarted process would: the one open before is closed
// first, as the end of a process lets go of its files.
func opener(t *testing.T) (string, func() *journalfile.File) {
	path := filepath.Join(t.TempDir(), "waitroom.journal")
	var last *journalfile.File
	return path, func() *journalfile.File {
		if last != nil {
			last.Close()
		}
		j, err := journalfile.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { j.Close() })
		last = j
		return j
	}
}

func TestConformance(t *testing.T) {
	ledgertest.JournalSuite(t, func(t *testing.T) (waitroom.Journal, func() waitroom.Journal) {
		_, open := opener(t)
		return open(), func() waitroom.Journal { return open() }
	})
}

func entries(t *testing.T, j waitroom.Journal) []string {
	t.Helper()
	var out []string
	if err := j.Replay(context.Background(), func(e waitroom.JournalEntry) error {
		out = append(out, fmt.Sprintf("%s:%x", e.Drop, e.Record))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestTornWrite: a write the process did not finish (a short last record,
// or one whose checksum fails) is cut off at the next open; everything
// before it is kept, and appends go on after it.
func TestTornWrite(t *testing.T) {
	ctx := context.Background()
	for _, cut := range []int{1, 5, 9, 12} {
		path, open := opener(t)
		j := open()
		if err := j.Append(ctx, []waitroom.JournalEntry{{Drop: "d", Record: []byte{1, 2}}, {Drop: "d", Record: []byte{3, 4, 5, 6}}}); err != nil {
			t.Fatal(err)
		}
		j.Close()
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(path, fi.Size()-int64(cut)); err != nil {
			t.Fatal(err)
		}
		j = open()
		if got := entries(t, j); len(got) != 1 || got[0] != "d:0102" {
			t.Fatalf("cut %d bytes: replay %v; want the first entry only", cut, got)
		}
		if err := j.Append(ctx, []waitroom.JournalEntry{{Drop: "d", Record: []byte{7}}}); err != nil {
			t.Fatal(err)
		}
		if got := entries(t, open()); len(got) != 2 || got[1] != "d:07" {
			t.Fatalf("cut %d bytes, then appended: %v", cut, got)
		}
	}
	// A flipped byte in the last record: its checksum fails.
	path, open := opener(t)
	j := open()
	if err := j.Append(ctx, []waitroom.JournalEntry{{Drop: "d", Record: []byte{1}}, {Drop: "d", Record: []byte{2}}}); err != nil {
		t.Fatal(err)
	}
	j.Close()
	b, _ := os.ReadFile(path)
	b[len(b)-1] ^= 0xff
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := entries(t, open()); len(got) != 1 {
		t.Fatalf("a corrupt last record: replay %v; want it cut off", got)
	}
}

// TestCompaction: entries a reset made dead are dropped when the file is
// opened, so a journal holds about what the lines hold.
func TestCompaction(t *testing.T) {
	ctx := context.Background()
	path, open := opener(t)
	j := open()
	for i := range 1000 {
		if err := j.Append(ctx, []waitroom.JournalEntry{{Drop: "old", Record: make([]byte, 40)}, {Drop: "live", Record: []byte{byte(i)}}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Append(ctx, []waitroom.JournalEntry{{Drop: "old", Reset: true}}); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(path)
	j = open()
	after, _ := os.Stat(path)
	if after.Size() > before.Size()/3 {
		t.Errorf("%d bytes before, %d after reopening; want the dead entries gone", before.Size(), after.Size())
	}
	if got := entries(t, j); len(got) != 1000 {
		t.Errorf("%d entries after compaction; want the 1000 live ones", len(got))
	}
}

// TestOneOwner: while a process has the journal open, another cannot
// open it; once it is gone, it can.
func TestOneOwner(t *testing.T) {
	path, open := opener(t)
	j := open()
	if _, err := journalfile.Open(path); !errors.Is(err, journalfile.ErrInUse) {
		t.Fatalf("a second Open: %v; want ErrInUse", err)
	}
	j.Close()
	open()
}

// BenchmarkJournaledJoin is a drop's stampede of joins: many at once,
// each written to the journal before it answers.
func BenchmarkJournaledJoin(b *testing.B) {
	ctx := context.Background()
	j, err := journalfile.Open(filepath.Join(b.TempDir(), "waitroom.journal"))
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
			if _, _, err := l.Join(ctx, "d", fmt.Sprintf("v:%d", n.Add(1)), start.Add(-time.Minute)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// FuzzOpen opens a journal file holding arbitrary bytes: it must never
// panic; what it replays, it replays again after an append and a reopen,
// followed by the appended entry.
func FuzzOpen(f *testing.F) {
	path := filepath.Join(f.TempDir(), "seed.journal")
	j, err := journalfile.Open(path)
	if err != nil {
		f.Fatal(err)
	}
	_ = j.Append(context.Background(), []waitroom.JournalEntry{{Drop: "d", Record: []byte{1, 2, 3}}, {Drop: "e", Reset: true}, {Drop: "e", Record: []byte{4}}})
	j.Close()
	seed, _ := os.ReadFile(path)
	f.Add(seed)
	f.Add([]byte{})
	f.Add([]byte{255, 255, 255, 255, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(t.TempDir(), "f.journal")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		j, err := journalfile.Open(path)
		if err != nil {
			if !errors.Is(err, waitroom.ErrCorruptJournal) {
				t.Fatalf("Open: %v", err)
			}
			return
		}
		before := entries(t, j)
		if err := j.Append(context.Background(), []waitroom.JournalEntry{{Drop: "z", Record: []byte{9}}}); err != nil {
			t.Fatal(err)
		}
		j.Close()
		j, err = journalfile.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer j.Close()
		after := entries(t, j)
		if len(after) != len(before)+1 || after[len(after)-1] != "z:09" {
			t.Fatalf("replayed %v, then after an append and a reopen %v", before, after)
		}
	})
}
