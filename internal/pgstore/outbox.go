package pgstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/surge-commerce/surge/internal/outbox"
)

// Pending returns unpublished outbox events, oldest first, from the
// primary: the relay runs right after the commits it announces.
func (s *Store) Pending(ctx context.Context, limit int) ([]outbox.Event, error) {
	rows, err := s.primary.Query(ctx, `SELECT id, subject, data, created_at FROM outbox WHERE published_at IS NULL ORDER BY seq LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("outbox pending: %w", err)
	}
	defer rows.Close()
	var out []outbox.Event
	for rows.Next() {
		var e outbox.Event
		if err := rows.Scan(&e.ID, &e.Subject, &e.Data, &e.CreatedAt); err != nil {
			return nil, fmt.Errorf("outbox pending: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("outbox pending: %w", err)
	}
	return out, nil
}

// MarkPublished records events as relayed. Published rows stay as an audit
// trail of what was announced.
func (s *Store) MarkPublished(ctx context.Context, ids []string) error {
	keys := make([]string, 0, len(ids))
	for _, id := range ids {
		if storable(id) {
			keys = append(keys, id)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE outbox SET published_at = $1 WHERE published_at IS NULL AND id = ANY($2)`, s.now(), keys)
		return err
	})
	if err != nil {
		return fmt.Errorf("outbox mark published: %w", err)
	}
	return nil
}

// Claim leases up to limit unpublished events to owner for lease, oldest
// first: those nobody holds, those whose lease ran out and those owner
// holds already. Relays claiming at once skip each other's locked rows,
// so no two get the same event.
func (s *Store) Claim(ctx context.Context, owner string, limit int, lease time.Duration) ([]outbox.Event, error) {
	if limit <= 0 {
		return nil, nil
	}
	now := s.now()
	rows, err := s.primary.Query(ctx, `WITH free AS (
			SELECT seq FROM outbox WHERE published_at IS NULL
			AND (claimed_until IS NULL OR claimed_until <= $3 OR claimed_by = $1)
			ORDER BY seq LIMIT $4 FOR UPDATE SKIP LOCKED)
		UPDATE outbox o SET claimed_by = $1, claimed_until = $2 FROM free WHERE o.seq = free.seq
		RETURNING o.seq, o.id, o.subject, o.data, o.created_at, coalesce(o.traceparent, '')`, owner, now.Add(lease), now, limit)
	if err != nil {
		return nil, fmt.Errorf("outbox claim: %w", err)
	}
	type claimed struct {
		seq int64
		ev  outbox.Event
	}
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (claimed, error) {
		var c claimed
		err := r.Scan(&c.seq, &c.ev.ID, &c.ev.Subject, &c.ev.Data, &c.ev.CreatedAt, &c.ev.TraceParent)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("outbox claim: %w", err)
	}
	// RETURNING follows no order: put the events back in commit order.
	slices.SortFunc(got, func(a, b claimed) int { return cmp.Compare(a.seq, b.seq) })
	out := make([]outbox.Event, len(got))
	for i, c := range got {
		out[i] = c.ev
	}
	return out, nil
}

// Release gives up owner's claim on the events with these ids that are
// still unpublished.
func (s *Store) Release(ctx context.Context, owner string, ids []string) error {
	keys := make([]string, 0, len(ids))
	for _, id := range ids {
		if storable(id) {
			keys = append(keys, id)
		}
	}
	if len(keys) == 0 || !storable(owner) {
		return nil
	}
	if _, err := s.primary.Exec(ctx, `UPDATE outbox SET claimed_by = NULL, claimed_until = NULL
		WHERE published_at IS NULL AND claimed_by = $1 AND id = ANY($2)`, owner, keys); err != nil {
		return fmt.Errorf("outbox release: %w", err)
	}
	return nil
}

// Oldest returns when the oldest unpublished event was committed, or the
// zero time when there is none.
func (s *Store) Oldest(ctx context.Context) (time.Time, error) {
	var at time.Time
	err := s.primary.QueryRow(ctx, `SELECT created_at FROM outbox WHERE published_at IS NULL ORDER BY seq LIMIT 1`).Scan(&at)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return time.Time{}, nil
	case err != nil:
		return time.Time{}, fmt.Errorf("outbox oldest: %w", err)
	}
	return at, nil
}
