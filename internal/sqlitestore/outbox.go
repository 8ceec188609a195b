package sqlitestore

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/surge-commerce/surge/internal/outbox"
)

var _ outbox.Source = (*Store)(nil)

// Pending returns unpublished outbox events, oldest first.
func (s *Store) Pending(ctx context.Context, limit int) ([]outbox.Event, error) {
	rows, err := s.readRows(ctx, `SELECT id, subject, data, created_at FROM outbox WHERE published_at IS NULL ORDER BY seq LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("outbox pending: %w", err)
	}
	defer rows.Close()
	var out []outbox.Event
	for rows.Next() {
		var e outbox.Event
		var at int64
		if err := rows.Scan(&e.ID, &e.Subject, &e.Data, &at); err != nil {
			return nil, err
		}
		e.CreatedAt = fromNanos(at)
		out = append(out, e)
	}
	return out, rows.Err()
}

// MarkPublished records events as relayed. Published rows stay as an audit
// trail of what was announced.
func (s *Store) MarkPublished(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	args := make([]any, 0, len(ids)+1)
	args = append(args, s.now().UnixNano())
	for _, id := range ids {
		args = append(args, id)
	}
	return s.write(ctx, func(tx wtx) error {
		_, err := tx.Exec(`UPDATE outbox SET published_at = ? WHERE published_at IS NULL AND id IN (?`+strings.Repeat(",?", len(ids)-1)+`)`, args...)
		return err
	})
}

// Claim leases up to limit unpublished events to owner for lease, oldest
// first: those nobody holds, those whose lease ran out and those owner
// holds already. The single writer makes the claim atomic.
func (s *Store) Claim(ctx context.Context, owner string, limit int, lease time.Duration) ([]outbox.Event, error) {
	if limit <= 0 {
		return nil, nil
	}
	now := s.now()
	type claimed struct {
		seq int64
		ev  outbox.Event
	}
	var got []claimed
	err := s.write(ctx, func(tx wtx) error {
		got = got[:0]
		rows, err := tx.Query(`UPDATE outbox SET claimed_by = ?1, claimed_until = ?2
			WHERE seq IN (SELECT seq FROM outbox WHERE published_at IS NULL
				AND (claimed_until IS NULL OR claimed_until <= ?3 OR claimed_by = ?1) ORDER BY seq LIMIT ?4)
			RETURNING seq, id, subject, data, created_at, coalesce(traceparent, '')`, owner, now.Add(lease).UnixNano(), now.UnixNano(), limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var c claimed
			var at int64
			if err := rows.Scan(&c.seq, &c.ev.ID, &c.ev.Subject, &c.ev.Data, &at, &c.ev.TraceParent); err != nil {
				return err
			}
			c.ev.CreatedAt = fromNanos(at)
			got = append(got, c)
		}
		return rows.Err()
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
	if len(ids) == 0 {
		return nil
	}
	args := make([]any, 0, len(ids)+1)
	args = append(args, owner)
	for _, id := range ids {
		args = append(args, id)
	}
	err := s.write(ctx, func(tx wtx) error {
		_, err := tx.Exec(`UPDATE outbox SET claimed_by = NULL, claimed_until = NULL
			WHERE published_at IS NULL AND claimed_by = ? AND id IN (?`+strings.Repeat(",?", len(ids)-1)+`)`, args...)
		return err
	})
	if err != nil {
		return fmt.Errorf("outbox release: %w", err)
	}
	return nil
}

// Oldest returns when the oldest unpublished event was committed, or the
// zero time when there is none.
func (s *Store) Oldest(ctx context.Context) (time.Time, error) {
	var at int64
	err := s.readRow(ctx, `SELECT created_at FROM outbox WHERE published_at IS NULL ORDER BY seq LIMIT 1`).Scan(&at)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return time.Time{}, nil
	case err != nil:
		return time.Time{}, fmt.Errorf("outbox oldest: %w", err)
	}
	return fromNanos(at), nil
}
