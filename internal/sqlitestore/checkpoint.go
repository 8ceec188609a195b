package sqlitestore

import (
	"context"
	"database/sql"
	"sync"
	"sync/atomic"
	"time"
)

// Checkpoints out of the writer's way. SQLite's automatic checkpoint runs
// inside the COMMIT that takes the log past 1,000 pages, on the one
// writer connection: every write of the shop then waits while pages are
// copied into the database file and both files are synced. So the writer
// has wal_autocheckpoint off and a connection of its own copies the log
// into the database file in the background (PASSIVE checkpoints, which
// run beside the writer, and cost next to nothing when the log has not
// grown), every checkpoint interval. A page written many
// times in that interval (a hot SKU's row, the head of an index) is
// copied once.
//
// A passive checkpoint running while the writer appends can never catch
// up with the end of the log, and the log only starts over from its
// beginning when a write begins with every frame copied; so the log would
// grow for as long as writes keep coming. When the checkpointer finds the
// log longer than walRestartFrames, the writer runs one checkpoint itself
// between two batches, where no write is in flight: it has little left to
// copy, and the next write starts the log over.

// Defaults of the checkpointer; WithCheckpoints changes them.
const (
	defaultCheckpointInterval = 250 * time.Millisecond
	// 4,096 pages of 4 KiB: 16 MiB of log.
	defaultWALRestartFrames = 4096
)

type checkpointer struct {
	db       *sql.DB
	interval time.Duration
	limit    int64
	// walFrames is the log's length in frames at the last background
	// checkpoint; the writer checkpoints itself when it passes limit.
	walFrames atomic.Int64
	// background and byWriter count checkpoints, for tests and metrics.
	background, byWriter atomic.Int64
	stop                 chan struct{}
	wg                   sync.WaitGroup
}

// WithCheckpoints sets how often the background checkpointer copies the
// write-ahead log into the database file (default 250ms) and how many
// frames of log make the writer run a checkpoint itself between batches
// (default 4096).
func WithCheckpoints(interval time.Duration, restartFrames int64) Option {
	return func(o *options) {
		if interval > 0 {
			o.checkpointInterval = interval
		}
		if restartFrames > 0 {
			o.walRestartFrames = restartFrames
		}
	}
}

func (s *Store) startCheckpointer(db *sql.DB, interval time.Duration, limit int64) {
	c := &checkpointer{db: db, interval: interval, limit: limit, stop: make(chan struct{})}
	s.ckpt = c
	c.wg.Go(c.loop)
}

func (c *checkpointer) loop() {
	t := time.NewTicker(c.interval)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		var busy, frames, copied int64
		// An error (SQLITE_BUSY from another process's checkpoint, say)
		// leaves the work to the next tick.
		if err := c.db.QueryRowContext(context.Background(), "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &frames, &copied); err == nil {
			c.background.Add(1)
			c.walFrames.Store(frames)
		}
	}
}

// checkpointDue is asked by the writer before it answers a batch's
// callers: whether the log has grown past the limit. If so the writer
// calls writerCheckpoint once the batch is answered, so the next write
// starts the log over.
func (s *Store) checkpointDue() bool {
	return s.ckpt.walFrames.Load() > s.ckpt.limit
}

func (s *Store) writerCheckpoint() {
	s.ckpt.walFrames.Store(0)
	if _, err := s.writer.ExecContext(context.Background(), "PRAGMA wal_checkpoint(PASSIVE)"); err == nil {
		s.ckpt.byWriter.Add(1)
	}
}

func (c *checkpointer) close() error {
	close(c.stop)
	c.wg.Wait()
	return c.db.Close()
}
