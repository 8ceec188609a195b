package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/surge-commerce/surge/internal/drop"
	"github.com/surge-commerce/surge/internal/jobs"
)

// The job ledger (see jobs.Store). Every change goes through the group
// commit, so it is committed before the call returns; every one but the
// delivery records (lazy writes, see RecordDelivery) is synced too.

const jobColumns = `j.id, j.kind, j.drop_id, j.run_at, j.paused, coalesce(j.started_at, 0), coalesce(j.finished_at, 0),
	j.recipients, j.last_id, j.read_position, j.created_at,
	(SELECT count(*) FROM mail_job_deliveries d WHERE d.job_id = j.id AND d.outcome = 'sent'),
	(SELECT count(*) FROM mail_job_deliveries d WHERE d.job_id = j.id AND d.outcome = 'failed')`

func scanJob(row interface{ Scan(...any) error }) (jobs.Job, error) {
	var j jobs.Job
	var runAt, started, finished, created int64
	if err := row.Scan(&j.ID, &j.Kind, &j.DropID, &runAt, &j.Paused, &started, &finished, &j.Recipients, &j.LastID,
		&j.ReadPosition, &created, &j.Sent, &j.Failed); err != nil {
		return jobs.Job{}, err
	}
	j.RunAt, j.CreatedAt = fromNanos(runAt), fromNanos(created)
	if started != 0 {
		t := fromNanos(started)
		j.StartedAt = &t
	}
	if finished != 0 {
		t := fromNanos(finished)
		j.FinishedAt = &t
	}
	j.State = jobState(j)
	return j, nil
}

func jobState(j jobs.Job) jobs.State {
	switch {
	case j.FinishedAt != nil:
		return jobs.StateDone
	case j.Paused:
		return jobs.StatePaused
	case j.StartedAt != nil:
		return jobs.StateRunning
	}
	return jobs.StateScheduled
}

func (s *Store) jobIn(tx wtx, id int64) (jobs.Job, error) {
	j, err := scanJob(tx.QueryRow(`SELECT `+jobColumns+` FROM mail_jobs j WHERE j.id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return jobs.Job{}, fmt.Errorf("job %d: %w", id, jobs.ErrNotFound)
	}
	return j, err
}

// EnsureJob creates the job of (kind, dropID) unless it exists.
func (s *Store) EnsureJob(ctx context.Context, kind jobs.Kind, dropID string, runAt time.Time) (jobs.Job, error) {
	j, err := s.putJob(ctx, kind, dropID, runAt, `DO NOTHING`)
	if err != nil {
		return jobs.Job{}, fmt.Errorf("ensure job: %w", err)
	}
	return j, nil
}

// putJob inserts the job of (kind, dropID) due at runAt, doing onConflict
// when it exists, and returns it as it then stands.
func (s *Store) putJob(ctx context.Context, kind jobs.Kind, dropID string, runAt time.Time, onConflict string) (jobs.Job, error) {
	var j jobs.Job
	err := s.write(ctx, func(tx wtx) error {
		if err := requireDrop(tx, dropID); err != nil {
			return err
		}
		if _, err := tx.Exec(`INSERT INTO mail_jobs (kind, drop_id, run_at, created_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (kind, drop_id) `+onConflict, string(kind), dropID, nanos(runAt), nanos(s.now())); err != nil {
			return err
		}
		var err error
		j, err = scanJob(tx.QueryRow(`SELECT `+jobColumns+` FROM mail_jobs j WHERE j.kind = ? AND j.drop_id = ?`, string(kind), dropID))
		return err
	})
	return j, err
}

func (s *Store) queryJobs(ctx context.Context, where string, args ...any) ([]jobs.Job, error) {
	rows, err := s.reader.QueryContext(ctx, `SELECT `+jobColumns+` FROM mail_jobs j `+where+` ORDER BY j.run_at, j.id`, args...)
	if err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	defer rows.Close()
	var out []jobs.Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, fmt.Errorf("jobs: %w", err)
		}
		out = append(out, j)
	}
	return out, rows.Err()
}

// Jobs lists every job by due time.
func (s *Store) Jobs(ctx context.Context) ([]jobs.Job, error) { return s.queryJobs(ctx, "") }

// DueJobs lists unfinished, unpaused jobs due by now.
func (s *Store) DueJobs(ctx context.Context, now time.Time) ([]jobs.Job, error) {
	return s.queryJobs(ctx, `WHERE j.finished_at IS NULL AND j.paused = 0 AND j.run_at <= ?`, nanos(now))
}

// JobByID returns one job.
func (s *Store) JobByID(ctx context.Context, id int64) (jobs.Job, error) {
	j, err := scanJob(s.reader.QueryRowContext(ctx, `SELECT `+jobColumns+` FROM mail_jobs j WHERE j.id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return jobs.Job{}, fmt.Errorf("job %d: %w", id, jobs.ErrNotFound)
	}
	if err != nil {
		return jobs.Job{}, fmt.Errorf("job %d: %w", id, err)
	}
	return j, nil
}

// SetJobPaused pauses or resumes a job.
func (s *Store) SetJobPaused(ctx context.Context, id int64, paused bool) (jobs.Job, error) {
	var j jobs.Job
	err := s.write(ctx, func(tx wtx) error {
		if _, err := tx.Exec(`UPDATE mail_jobs SET paused = ? WHERE id = ?`, paused, id); err != nil {
			return err
		}
		var err error
		j, err = s.jobIn(tx, id)
		return err
	})
	return j, err
}

// StartJob fixes a job's recipients: those confirmed now.
func (s *Store) StartJob(ctx context.Context, id int64) (jobs.Job, error) {
	var j jobs.Job
	now := nanos(s.now())
	err := s.write(ctx, func(tx wtx) error {
		var err error
		if j, err = s.jobIn(tx, id); err != nil || j.StartedAt != nil {
			return err
		}
		// The cut-off is now, or the latest confirmation if a clock ahead
		// of this one stamped it: everyone confirmed so far is in.
		var cutoff int64
		if err := tx.QueryRow(`SELECT max(?, coalesce(max(confirmed_at), 0)) FROM notify_subscriptions
			WHERE drop_id = ? AND state = 'confirmed'`, now, j.DropID).Scan(&cutoff); err != nil {
			return err
		}
		if _, err := tx.Exec(`UPDATE mail_jobs SET started_at = ?1,
			recipients = (SELECT count(*) FROM notify_subscriptions WHERE drop_id = mail_jobs.drop_id AND state = 'confirmed' AND confirmed_at <= ?1),
			last_id = (SELECT coalesce(max(id), 0) FROM notify_subscriptions WHERE drop_id = mail_jobs.drop_id),
			next_id = (SELECT coalesce(min(id), 0) FROM notify_subscriptions WHERE drop_id = mail_jobs.drop_id)
			WHERE id = ?2`, cutoff, id); err != nil {
			return err
		}
		j, err = s.jobIn(tx, id)
		return err
	})
	return j, err
}

// FinishJob marks a job finished.
func (s *Store) FinishJob(ctx context.Context, id int64) error {
	return s.write(ctx, func(tx wtx) error {
		res, err := tx.Exec(`UPDATE mail_jobs SET finished_at = coalesce(finished_at, ?) WHERE id = ?`, nanos(s.now()), id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("job %d: %w", id, jobs.ErrNotFound)
		}
		return nil
	})
}

// ClaimBatch leases the next batch of a job (see jobs.Store).
func (s *Store) ClaimBatch(ctx context.Context, jobID int64, owner string, size int, lease time.Duration) (jobs.Batch, error) {
	var b jobs.Batch
	now := s.now()
	until := nanos(now.Add(lease))
	// The write's error rolls it back, so finishing the job is reported
	// apart from it.
	ended := false
	err := s.write(ctx, func(tx wtx) error {
		ended = false
		var paused bool
		var started, finished sql.NullInt64
		var lastID, nextID int64
		err := tx.QueryRow(`SELECT paused, started_at, finished_at, last_id, next_id FROM mail_jobs WHERE id = ?`, jobID).
			Scan(&paused, &started, &finished, &lastID, &nextID)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("job %d: %w", jobID, jobs.ErrNotFound)
		case err != nil:
			return err
		case finished.Valid:
			return jobs.ErrFinished
		case paused:
			return jobs.ErrPaused
		case !started.Valid:
			return fmt.Errorf("job %d not started: %w", jobID, jobs.ErrNoBatch)
		}
		// A batch whose worker stopped renewing goes to the next one.
		err = tx.QueryRow(`SELECT from_id, to_id FROM mail_job_batches WHERE job_id = ? AND done = 0 AND lease_until < ?
			ORDER BY from_id LIMIT 1`, jobID, nanos(now)).Scan(&b.FromID, &b.ToID)
		if err == nil {
			_, err = tx.Exec(`UPDATE mail_job_batches SET owner = ?, lease_until = ? WHERE job_id = ? AND from_id = ?`, owner, until, jobID, b.FromID)
			b.JobID, b.Owner, b.LeaseUntil = jobID, owner, fromNanos(until)
			return err
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if nextID == 0 || nextID > lastID {
			var open bool
			if err := tx.QueryRow(`SELECT EXISTS (SELECT 1 FROM mail_job_batches WHERE job_id = ? AND done = 0)`, jobID).Scan(&open); err != nil {
				return err
			}
			if open {
				return jobs.ErrNoBatch
			}
			_, err := tx.Exec(`UPDATE mail_jobs SET finished_at = ? WHERE id = ?`, nanos(now), jobID)
			ended = err == nil
			return err
		}
		// The next batch ends before the size+1st subscription from here.
		var to int64
		err = tx.QueryRow(`SELECT id FROM notify_subscriptions WHERE drop_id = (SELECT drop_id FROM mail_jobs WHERE id = ?)
			AND id >= ? AND id <= ? ORDER BY id LIMIT 1 OFFSET ?`, jobID, nextID, lastID, size).Scan(&to)
		if errors.Is(err, sql.ErrNoRows) {
			to, err = lastID+1, nil
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(`INSERT INTO mail_job_batches (job_id, from_id, to_id, owner, lease_until) VALUES (?, ?, ?, ?, ?)`,
			jobID, nextID, to, owner, until); err != nil {
			return err
		}
		if _, err := tx.Exec(`UPDATE mail_jobs SET next_id = ? WHERE id = ?`, to, jobID); err != nil {
			return err
		}
		b = jobs.Batch{JobID: jobID, FromID: nextID, ToID: to, Owner: owner, LeaseUntil: fromNanos(until)}
		return nil
	})
	if err != nil {
		return jobs.Batch{}, err
	}
	if ended {
		return jobs.Batch{}, jobs.ErrFinished
	}
	return b, nil
}

// RenewBatch extends b's lease while owner still holds it.
func (s *Store) RenewBatch(ctx context.Context, b jobs.Batch, lease time.Duration) (jobs.Batch, error) {
	now := s.now()
	until := nanos(now.Add(lease))
	err := s.write(ctx, func(tx wtx) error {
		var paused bool
		if err := tx.QueryRow(`SELECT paused FROM mail_jobs WHERE id = ?`, b.JobID).Scan(&paused); err != nil {
			return err
		}
		if paused {
			return jobs.ErrPaused
		}
		// A lease that ran out is lost even if nobody took the batch yet:
		// its holder was not renewing, so it may have been stalled.
		res, err := tx.Exec(`UPDATE mail_job_batches SET lease_until = ? WHERE job_id = ? AND from_id = ? AND owner = ? AND done = 0 AND lease_until >= ?`,
			until, b.JobID, b.FromID, b.Owner, nanos(now))
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return jobs.ErrLeaseLost
		}
		return nil
	})
	if err != nil {
		return b, err
	}
	b.LeaseUntil = fromNanos(until)
	return b, nil
}

// ReleaseBatch ends b's lease now, unfinished.
func (s *Store) ReleaseBatch(ctx context.Context, b jobs.Batch) error {
	return s.write(ctx, func(tx wtx) error {
		_, err := tx.Exec(`UPDATE mail_job_batches SET lease_until = 0 WHERE job_id = ? AND from_id = ? AND owner = ? AND done = 0`,
			b.JobID, b.FromID, b.Owner)
		return err
	})
}

// FinishBatch marks b done.
func (s *Store) FinishBatch(ctx context.Context, b jobs.Batch) error {
	return s.write(ctx, func(tx wtx) error {
		res, err := tx.Exec(`UPDATE mail_job_batches SET done = 1 WHERE job_id = ? AND from_id = ? AND owner = ? AND done = 0`,
			b.JobID, b.FromID, b.Owner)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return jobs.ErrLeaseLost
		}
		return nil
	})
}

// Delivered lists b's recipients already recorded.
func (s *Store) Delivered(ctx context.Context, b jobs.Batch) (map[int64]bool, error) {
	rows, err := s.reader.QueryContext(ctx, `SELECT subscription_id FROM mail_job_deliveries WHERE job_id = ? AND subscription_id >= ? AND subscription_id < ?`,
		b.JobID, b.FromID, b.ToID)
	if err != nil {
		return nil, fmt.Errorf("delivered: %w", err)
	}
	defer rows.Close()
	out := map[int64]bool{}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out[id] = true
	}
	return out, rows.Err()
}

// RecordDelivery records a recipient's outcome once. The record is a lazy
// write (see writeLazy): it survives the worker being killed, and an OS
// crash may lose the last few, whose recipients then get the reminder
// again under the same Message-ID.
func (s *Store) RecordDelivery(ctx context.Context, jobID, subscriptionID int64, o jobs.Outcome) error {
	return s.writeLazy(ctx, func(tx wtx) error {
		_, err := tx.Exec(`INSERT INTO mail_job_deliveries (job_id, subscription_id, outcome, at) VALUES (?, ?, ?, ?)
			ON CONFLICT DO NOTHING`, jobID, subscriptionID, string(o), nanos(s.now()))
		return err
	})
}

// ScheduleJob creates the job of (kind, dropID) due at runAt, or moves it
// there if it has not started (see jobs.Store).
func (s *Store) ScheduleJob(ctx context.Context, kind jobs.Kind, dropID string, runAt time.Time) (jobs.Job, error) {
	j, err := s.putJob(ctx, kind, dropID, runAt, `DO UPDATE SET run_at = excluded.run_at
		WHERE mail_jobs.started_at IS NULL AND mail_jobs.finished_at IS NULL`)
	if err != nil {
		return jobs.Job{}, fmt.Errorf("schedule job: %w", err)
	}
	if j.StartedAt != nil || j.FinishedAt != nil {
		return j, fmt.Errorf("job %d: %w", j.ID, jobs.ErrStarted)
	}
	return j, nil
}

// requireDrop fails with drop.ErrNotFound unless the drop exists; in tx,
// so what follows sees the same drop.
func requireDrop(tx wtx, dropID string) error {
	var exists bool
	if err := tx.QueryRow(`SELECT EXISTS (SELECT 1 FROM drops WHERE id = ?)`, dropID).Scan(&exists); err != nil {
		return err
	}
	if !exists {
		return fmt.Errorf("drop %q: %w", dropID, drop.ErrNotFound)
	}
	return nil
}
