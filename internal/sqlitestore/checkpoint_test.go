package sqlitestore

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// fill writes pages pages of 4 KiB blobs in one group-commit write.
func fill(t *testing.T, s *Store, pages int) {
	t.Helper()
	err := s.WriteTx(context.Background(), func(tx *sql.Tx) error {
		if _, err := tx.Exec(`CREATE TABLE IF NOT EXISTS filler (b BLOB)`); err != nil {
			return err
		}
		for range pages {
			if _, err := tx.Exec(`INSERT INTO filler (b) VALUES (zeroblob(4000))`); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestCommitLeavesCheckpointsToTheCheckpointer: a commit that takes the
// log past SQLite's automatic checkpoint (1,000 pages) does not copy the
// log into the database file on the writer's connection: every write of
// the shop would wait for that. The checkpointer does it in the
// background.
func TestCommitLeavesCheckpointsToTheCheckpointer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "surge.db")
	// synchronous=normal: what is measured is where the pages are, not
	// how they are synced.
	s, err := Open(context.Background(), path, WithCheckpoints(time.Hour, 1<<40), WithSynchronous(SyncNormal))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	before := fileSize(t, path)
	fill(t, s, 1200) // about 5 MB of log
	if grown := fileSize(t, path) - before; grown > 1<<20 {
		t.Fatalf("the database file grew by %d bytes at the commit: the writer checkpointed", grown)
	}
	if wal := fileSize(t, path+"-wal"); wal < 1200*4000 {
		t.Fatalf("log %d bytes, want the 1,200 pages in it", wal)
	}

	// The checkpointer copies it, beside the writer.
	var busy, frames, copied int64
	if err := s.ckpt.db.QueryRow("PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &frames, &copied); err != nil {
		t.Fatal(err)
	}
	if busy != 0 || copied != frames || frames < 1200 {
		t.Fatalf("checkpoint: busy %d, %d of %d frames copied", busy, copied, frames)
	}
	if size := fileSize(t, path); size < 1200*4000 {
		t.Fatalf("database file %d bytes after the checkpoint, want the 1,200 pages in it", size)
	}
	rows := 0
	if err := s.reader.QueryRow(`SELECT count(*) FROM filler`).Scan(&rows); err != nil || rows != 1200 {
		t.Fatalf("filler rows %d, %v; want 1200", rows, err)
	}
}

// TestLongLogStartsOver: background checkpoints run beside the writer and
// cannot catch up with a log that keeps growing; once the log is longer
// than the limit, the writer checkpoints between two batches and the
// next write starts the log over, so it stays bounded.
func TestLongLogStartsOver(t *testing.T) {
	path := filepath.Join(t.TempDir(), "surge.db")
	s, err := Open(context.Background(), path, WithCheckpoints(time.Hour, 500), WithSynchronous(SyncNormal))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fill(t, s, 300)
	if n := s.ckpt.byWriter.Load(); n != 0 {
		t.Fatalf("writer checkpointed %d times under the limit", n)
	}
	// What the background checkpointer would have found.
	s.ckpt.walFrames.Store(501)
	fill(t, s, 300) // the writer checkpoints after this batch
	fill(t, s, 10)  // runs after that checkpoint, and starts the log over
	if n := s.ckpt.byWriter.Load(); n != 1 {
		t.Fatalf("writer checkpointed %d times over the limit, want 1", n)
	}
	var busy, frames, copied int64
	if err := s.ckpt.db.QueryRow("PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &frames, &copied); err != nil {
		t.Fatal(err)
	}
	if frames > 100 {
		t.Fatalf("log holds %d frames after the writer's checkpoint, want it started over (a few dozen)", frames)
	}
}
