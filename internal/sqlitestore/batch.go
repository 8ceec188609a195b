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
	job := writeJob{ctx: ctx, fn: fn, done: make(chan error, 1)}
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
	tx, err := s.writer.BeginTx(context.Background(), nil)
	if err != nil {
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
