package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/surge-commerce/surge/internal/drop"
	"github.com/surge-commerce/surge/internal/jobs"
)

// The job ledger (see jobs.Store), always on the primary: it is the
// record of what was sent, and a replica's copy may be behind.

const jobColumns = `j.id, j.kind, j.drop_id, j.run_at, j.paused, j.started_at, j.finished_at,
	j.recipients, j.last_id, j.read_position, j.created_at,
	(SELECT count(*) FROM mail_job_deliveries d WHERE d.job_id = j.id AND d.outcome = 'sent'),
	(SELECT count(*) FROM mail_job_deliveries d WHERE d.job_id = j.id AND d.outcome = 'failed')`

func scanJob(row pgx.Row) (jobs.Job, error) {
	var j jobs.Job
	if err := row.Scan(&j.ID, &j.Kind, &j.DropID, &j.RunAt, &j.Paused, &j.StartedAt, &j.FinishedAt, &j.Recipients, &j.LastID,
		&j.ReadPosition, &j.CreatedAt, &j.Sent, &j.Failed); err != nil {
		return jobs.Job{}, err
	}
	j.RunAt, j.CreatedAt = j.RunAt.UTC(), j.CreatedAt.UTC()
	for _, t := range []*time.Time{j.StartedAt, j.FinishedAt} {
		if t != nil {
			*t = t.UTC()
		}
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

func jobIn(ctx context.Context, q querier, id int64) (jobs.Job, error) {
	j, err := scanJob(q.QueryRow(ctx, `SELECT `+jobColumns+` FROM mail_jobs j WHERE j.id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return jobs.Job{}, fmt.Errorf("job %d: %w", id, jobs.ErrNotFound)
	}
	if err != nil {
		return jobs.Job{}, fmt.Errorf("job %d: %w", id, err)
	}
	return j, nil
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
	if !storable(dropID) {
		return jobs.Job{}, fmt.Errorf("drop %q: %w", dropID, drop.ErrNotFound)
	}
	var j jobs.Job
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := requireDrop(ctx, tx, dropID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO mail_jobs (kind, drop_id, run_at, created_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (kind, drop_id) `+onConflict, string(kind), dropID, runAt, s.now().UTC()); err != nil {
			return err
		}
		var err error
		j, err = scanJob(tx.QueryRow(ctx, `SELECT `+jobColumns+` FROM mail_jobs j WHERE j.kind = $1 AND j.drop_id = $2`, string(kind), dropID))
		return err
	})
	return j, err
}

func (s *Store) queryJobs(ctx context.Context, where string, args ...any) ([]jobs.Job, error) {
	rows, err := s.primary.Query(ctx, `SELECT `+jobColumns+` FROM mail_jobs j `+where+` ORDER BY j.run_at, j.id`, args...)
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
	return s.queryJobs(ctx, `WHERE j.finished_at IS NULL AND NOT j.paused AND j.run_at <= $1`, now)
}

// JobByID returns one job.
func (s *Store) JobByID(ctx context.Context, id int64) (jobs.Job, error) {
	return jobIn(ctx, s.primary, id)
}

// SetJobPaused pauses or resumes a job.
func (s *Store) SetJobPaused(ctx context.Context, id int64, paused bool) (jobs.Job, error) {
	var j jobs.Job
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE mail_jobs SET paused = $1 WHERE id = $2`, paused, id); err != nil {
			return err
		}
		var err error
		j, err = jobIn(ctx, tx, id)
		return err
	})
	return j, err
}

// StartJob fixes a job's recipients: those confirmed now. Its read
// position is the primary's WAL position at that moment, so a replica
// serves the recipient list only once it has every one of them.
func (s *Store) StartJob(ctx context.Context, id int64) (jobs.Job, error) {
	var j jobs.Job
	now := s.now().UTC()
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		if j, err = jobIn(ctx, tx, id); err != nil || j.StartedAt != nil {
			return err
		}
		// The cut-off is now, or the latest confirmation if a clock ahead
		// of this one stamped it: everyone confirmed so far is in.
		var cutoff time.Time
		if err := tx.QueryRow(ctx, `SELECT greatest($1, max(confirmed_at)) FROM notify_subscriptions
			WHERE drop_id = $2 AND state = 'confirmed'`, now, j.DropID).Scan(&cutoff); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE mail_jobs SET started_at = $1, read_position = pg_current_wal_insert_lsn()::text,
			recipients = (SELECT count(*) FROM notify_subscriptions WHERE drop_id = mail_jobs.drop_id AND state = 'confirmed' AND confirmed_at <= $1),
			last_id = (SELECT coalesce(max(id), 0) FROM notify_subscriptions WHERE drop_id = mail_jobs.drop_id),
			next_id = (SELECT coalesce(min(id), 0) FROM notify_subscriptions WHERE drop_id = mail_jobs.drop_id)
			WHERE id = $2 AND started_at IS NULL`, cutoff, id); err != nil {
			return err
		}
		j, err = jobIn(ctx, tx, id)
		return err
	})
	return j, err
}

// FinishJob marks a job finished.
func (s *Store) FinishJob(ctx context.Context, id int64) error {
	tag, err := s.primary.Exec(ctx, `UPDATE mail_jobs SET finished_at = coalesce(finished_at, $1) WHERE id = $2`, s.now().UTC(), id)
	if err != nil {
		return fmt.Errorf("finish job %d: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("job %d: %w", id, jobs.ErrNotFound)
	}
	return nil
}

// ClaimBatch leases the next batch of a job (see jobs.Store). The job's
// row is locked first, so claimers take turns and never hand out one
// range twice.
func (s *Store) ClaimBatch(ctx context.Context, jobID int64, owner string, size int, lease time.Duration) (jobs.Batch, error) {
	var b jobs.Batch
	now := s.now().UTC()
	until := now.Add(lease)
	// The transaction's error rolls it back, so finishing the job is
	// reported apart from it.
	ended := false
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		ended = false
		var paused bool
		var started, finished *time.Time
		var lastID, nextID int64
		var dropID string
		err := tx.QueryRow(ctx, `SELECT paused, started_at, finished_at, last_id, next_id, drop_id FROM mail_jobs WHERE id = $1 FOR UPDATE`, jobID).
			Scan(&paused, &started, &finished, &lastID, &nextID, &dropID)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("job %d: %w", jobID, jobs.ErrNotFound)
		case err != nil:
			return err
		case finished != nil:
			return jobs.ErrFinished
		case paused:
			return jobs.ErrPaused
		case started == nil:
			return fmt.Errorf("job %d not started: %w", jobID, jobs.ErrNoBatch)
		}
		// A batch whose worker stopped renewing goes to the next one.
		err = tx.QueryRow(ctx, `SELECT from_id, to_id FROM mail_job_batches WHERE job_id = $1 AND NOT done AND lease_until < $2
			ORDER BY from_id LIMIT 1`, jobID, now).Scan(&b.FromID, &b.ToID)
		if err == nil {
			_, err = tx.Exec(ctx, `UPDATE mail_job_batches SET owner = $1, lease_until = $2 WHERE job_id = $3 AND from_id = $4`, owner, until, jobID, b.FromID)
			b.JobID, b.Owner, b.LeaseUntil = jobID, owner, until
			return err
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if nextID == 0 || nextID > lastID {
			var open bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM mail_job_batches WHERE job_id = $1 AND NOT done)`, jobID).Scan(&open); err != nil {
				return err
			}
			if open {
				return jobs.ErrNoBatch
			}
			_, err := tx.Exec(ctx, `UPDATE mail_jobs SET finished_at = $1 WHERE id = $2`, now, jobID)
			ended = err == nil
			return err
		}
		// The next batch ends before the size+1st subscription from here.
		var to int64
		err = tx.QueryRow(ctx, `SELECT id FROM notify_subscriptions WHERE drop_id = $1 AND id >= $2 AND id <= $3
			ORDER BY id LIMIT 1 OFFSET $4`, dropID, nextID, lastID, size).Scan(&to)
		if errors.Is(err, pgx.ErrNoRows) {
			to, err = lastID+1, nil
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO mail_job_batches (job_id, from_id, to_id, owner, lease_until) VALUES ($1, $2, $3, $4, $5)`,
			jobID, nextID, to, owner, until); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE mail_jobs SET next_id = $1 WHERE id = $2`, to, jobID); err != nil {
			return err
		}
		b = jobs.Batch{JobID: jobID, FromID: nextID, ToID: to, Owner: owner, LeaseUntil: until}
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
	now := s.now().UTC()
	until := now.Add(lease)
	var paused, held bool
	// A lease that ran out is lost even if nobody took the batch yet: its
	// holder was not renewing, so it may have been stalled.
	err := s.primary.QueryRow(ctx, `WITH renewed AS (
			UPDATE mail_job_batches SET lease_until = $1
			WHERE job_id = $2 AND from_id = $3 AND owner = $4 AND NOT done AND lease_until >= $5
				AND NOT (SELECT paused FROM mail_jobs WHERE id = $2)
			RETURNING 1)
		SELECT (SELECT paused FROM mail_jobs WHERE id = $2), EXISTS (SELECT 1 FROM renewed)`,
		until, b.JobID, b.FromID, b.Owner, now).Scan(&paused, &held)
	switch {
	case err != nil:
		return b, fmt.Errorf("renew batch: %w", err)
	case paused:
		return b, jobs.ErrPaused
	case !held:
		return b, jobs.ErrLeaseLost
	}
	b.LeaseUntil = until
	return b, nil
}

// ReleaseBatch ends b's lease now, unfinished.
func (s *Store) ReleaseBatch(ctx context.Context, b jobs.Batch) error {
	_, err := s.primary.Exec(ctx, `UPDATE mail_job_batches SET lease_until = 'epoch' WHERE job_id = $1 AND from_id = $2 AND owner = $3 AND NOT done`,
		b.JobID, b.FromID, b.Owner)
	if err != nil {
		return fmt.Errorf("release batch: %w", err)
	}
	return nil
}

// FinishBatch marks b done.
func (s *Store) FinishBatch(ctx context.Context, b jobs.Batch) error {
	tag, err := s.primary.Exec(ctx, `UPDATE mail_job_batches SET done = true WHERE job_id = $1 AND from_id = $2 AND owner = $3 AND NOT done`,
		b.JobID, b.FromID, b.Owner)
	if err != nil {
		return fmt.Errorf("finish batch: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return jobs.ErrLeaseLost
	}
	return nil
}

// Delivered lists b's recipients already recorded.
func (s *Store) Delivered(ctx context.Context, b jobs.Batch) (map[int64]bool, error) {
	rows, err := s.primary.Query(ctx, `SELECT subscription_id FROM mail_job_deliveries WHERE job_id = $1 AND subscription_id >= $2 AND subscription_id < $3`,
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

// RecordDelivery records a recipient's outcome once.
func (s *Store) RecordDelivery(ctx context.Context, jobID, subscriptionID int64, o jobs.Outcome) error {
	_, err := s.primary.Exec(ctx, `INSERT INTO mail_job_deliveries (job_id, subscription_id, outcome, at) VALUES ($1, $2, $3, $4)
		ON CONFLICT DO NOTHING`, jobID, subscriptionID, string(o), s.now().UTC())
	if err != nil {
		return fmt.Errorf("record delivery: %w", err)
	}
	return nil
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
func requireDrop(ctx context.Context, tx pgx.Tx, dropID string) error {
	var exists bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM drops WHERE id = $1)`, dropID).Scan(&exists); err != nil {
		return err
	}
	if !exists {
		return fmt.Errorf("drop %q: %w", dropID, drop.ErrNotFound)
	}
	return nil
}
