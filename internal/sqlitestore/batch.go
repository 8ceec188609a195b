package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
)

// Group commit. SQLite has one writer, and most of a small write
// transaction's cost is BEGIN and COMMIT, not the statements. So writes go
// to one goroutine that runs whatever work has queued up in a single
// transaction, each piece inside its own SAVEPOINT: a piece that fails is
// rolled back alone, the others commit together, and every caller learns
// its own outcome only after the COMMIT, so an acknowledged write is
// durable. Under a stampede batches grow by themselves; when idle a write
// runs at once.

// maxBatch bounds one transaction, so a flood of writes cannot make any one
// caller wait for thousands of others.
const maxBatch = 256

type writeJob struct {
	ctx  context.Context
	fn   func(tx wtx) error
	done chan error
	// lazy: the write must survive the process dying, not the OS (see
	// writeLazy).
	lazy bool
}

type committer struct {
	jobs chan writeJob
	stop chan struct{}
	wg   sync.WaitGroup
}

var errClosed = errors.New("store is closed")

func (s *Store) startCommitter() {
	s.commit = &committer{jobs: make(chan writeJob, 4*maxBatch), stop: make(chan struct{})}
	s.commit.wg.Add(1)
	go s.commitLoop()
}

func (s *Store) stopCommitter() {
	close(s.commit.stop)
	s.commit.wg.Wait()
}

// write runs fn in the group-commit transaction and returns its error, or
// the commit's. fn must be quick, must not keep tx, and must use only tx.
func (s *Store) write(ctx context.Context, fn func(tx wtx) error) error {
	return s.queue(ctx, writeJob{ctx: ctx, fn: fn, done: make(chan error, 1)})
}

// writeLazy is write for records that must survive the process being
// killed but may be lost, in their last moments, to an OS crash or a
// power cut: what a lost record costs is known and small (a reminder
// mail sent again, under its Message-ID), and syncing each one on its own
// would hold the database's one write lock through a sync, many times a
// second, in front of the orders of every process sharing the file. A
// batch of only lazy writes commits at synchronous=NORMAL: in WAL mode
// the commit is written to the log (the OS has it, a killed process
// loses nothing) and reaches the disk with the next sync, a durable
// commit's or a checkpoint's. A batch with any other write syncs as
// always, lazy ones included.
func (s *Store) writeLazy(ctx context.Context, fn func(tx wtx) error) error {
	return s.queue(ctx, writeJob{ctx: ctx, fn: fn, done: make(chan error, 1), lazy: true})
}

func (s *Store) queue(ctx context.Context, job writeJob) error {
	select {
	case s.commit.jobs <- job:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.commit.stop:
		return errClosed
	}
	// Once queued, wait for the outcome even if ctx ends: the work may
	// already be committed, and the caller must not report failure for a
	// write that happened.
	return <-job.done
}

func (s *Store) commitLoop() {
	defer s.commit.wg.Done()
	batch := make([]writeJob, 0, maxBatch)
	for {
		select {
		case j := <-s.commit.jobs:
			batch = append(batch[:0], j)
		case <-s.commit.stop:
			// Finish what was queued before stopping.
			for {
				select {
				case j := <-s.commit.jobs:
					s.runBatch([]writeJob{j})
				default:
					return
				}
			}
		}
	fill:
		for len(batch) < maxBatch {
			select {
			case j := <-s.commit.jobs:
				batch = append(batch, j)
			default:
				break fill
			}
		}
		s.runBatch(batch)
	}
}

func (s *Store) runBatch(batch []writeJob) {
	results := make([]error, len(batch))
	// The setting is the connection's, read at COMMIT: lowered for a
	// batch of lazy writes only, and put back before anything else runs
	// on the connection. If lowering fails the batch syncs (the safe
	// side).
	lazy := s.sync == SyncFull && allLazy(batch)
	if lazy {
		_, err := s.writer.Exec("PRAGMA synchronous=NORMAL")
		lazy = err == nil
	}
	tx, err := s.writer.BeginTx(context.Background(), nil)
	if err != nil {
		s.syncAgain(lazy)
		for _, j := range batch {
			j.done <- fmt.Errorf("begin: %w", err)
		}
		return
	}
	for i, j := range batch {
		if err := j.ctx.Err(); err != nil {
			results[i] = err
			continue
		}
		results[i] = runSavepoint(wtx{tx, s.wstmts}, j.fn)
	}
	if err := tx.Commit(); err != nil {
		for i := range results {
			if results[i] == nil {
				results[i] = fmt.Errorf("commit: %w", err)
			}
		}
	}
	s.syncAgain(lazy)
	ckpt := s.checkpointDue()
	for i, j := range batch {
		j.done <- results[i]
	}
	// The connection is free now: prepare what the batch ran unprepared,
	// and checkpoint if the log has grown too long.
	s.wstmts.prepareWanted(context.Background())
	if ckpt {
		s.writerCheckpoint()
	}
}

// syncAgain puts the writer back to synchronous=FULL after a lazy batch.
// Should that fail, the connection is closed instead: the pool opens a
// fresh one with the DSN's FULL, rather than leave the next orders
// unsynced.
func (s *Store) syncAgain(lazy bool) {
	if !lazy {
		return
	}
	if _, err := s.writer.Exec("PRAGMA synchronous=FULL"); err != nil {
		s.writer.SetMaxIdleConns(0)
		s.writer.SetMaxIdleConns(1)
	}
}

func allLazy(batch []writeJob) bool {
	for _, j := range batch {
		if !j.lazy {
			return false
		}
	}
	return len(batch) > 0
}

// runSavepoint runs fn so that its effects are undone if it fails or panics.
func runSavepoint(tx wtx, fn func(wtx) error) (err error) {
	if _, err := tx.Exec("SAVEPOINT job"); err != nil {
		return fmt.Errorf("savepoint: %w", err)
	}
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("write panicked: %v", v)
		}
		if err != nil {
			if _, rerr := tx.Exec("ROLLBACK TO job"); rerr != nil {
				err = errors.Join(err, fmt.Errorf("rollback to savepoint: %w", rerr))
			}
		}
		if _, rerr := tx.Exec("RELEASE job"); rerr != nil && err == nil {
			err = fmt.Errorf("release savepoint: %w", rerr)
		}
	}()
	return fn(tx)
}

// WriteTx runs fn inside the group-commit transaction, in a savepoint of
// its own: its statements commit with the rest of the batch (one sync of
// the log for all of them) or, if fn fails, are undone alone. It is for
// code that keeps its own tables in the shop's database, such as the
// simulated payment provider's ledger, so that its writes queue with the
// shop's instead of competing for the one write connection and syncing on
// their own.
//
// fn must be quick, use only tx and not keep it. It must not prepare
// statements on the writer pool (Writer), whose one connection is busy
// with the batch; a statement prepared there beforehand may be used
// through tx.StmtContext.
func (s *Store) WriteTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return s.write(ctx, func(tx wtx) error { return fn(tx.tx) })
}
