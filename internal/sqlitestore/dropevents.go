package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/surge-commerce/surge/internal/dropreport"
)

var _ dropreport.Store = (*Store)(nil)

// RecordDropEvents stores a batch of drop events in one transaction (one
// group commit for the whole batch).
func (s *Store) RecordDropEvents(ctx context.Context, events []dropreport.Event) error {
	if len(events) == 0 {
		return nil
	}
	err := s.write(ctx, func(tx wtx) error {
		for _, e := range events {
			if _, err := tx.Exec(`INSERT INTO drop_events (drop_id, kind, visitor, reason, quantity, wait_ms, at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
				e.Drop, string(e.Kind), e.Visitor, e.Reason, e.Quantity, e.Wait.Milliseconds(), e.At.UnixNano()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record drop events: %w", err)
	}
	return nil
}

// SaveDropLine keeps l unless a later copy, or one counting more joins,
// is stored: replicas copy the same shared counters at different moments.
func (s *Store) SaveDropLine(ctx context.Context, dropID string, l dropreport.Line) error {
	err := s.write(ctx, func(tx wtx) error {
		_, err := tx.Exec(`INSERT INTO drop_lines (drop_id, at, pre_queue, joined, admitted, no_shows) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (drop_id) DO UPDATE SET at = excluded.at, pre_queue = excluded.pre_queue, joined = excluded.joined,
				admitted = excluded.admitted, no_shows = excluded.no_shows
			WHERE excluded.at >= drop_lines.at AND excluded.joined >= drop_lines.joined`,
			dropID, l.At.UnixNano(), int64(l.PreQueue), int64(l.Joined), int64(l.Admitted), int64(l.NoShows))
		return err
	})
	if err != nil {
		return fmt.Errorf("save drop %s line: %w", dropID, err)
	}
	return nil
}

// DropActivity reads a drop's events, line counters and purchases.
func (s *Store) DropActivity(ctx context.Context, dropID string) (dropreport.Activity, error) {
	var a dropreport.Activity
	var at, pre, joined, admitted, noShows int64
	err := s.reader.QueryRowContext(ctx, `SELECT at, pre_queue, joined, admitted, no_shows FROM drop_lines WHERE drop_id = ?`, dropID).
		Scan(&at, &pre, &joined, &admitted, &noShows)
	switch {
	case err == nil:
		a.HasLine = true
		a.Line = dropreport.Line{At: time.Unix(0, at).UTC(), PreQueue: uint64(pre), Joined: uint64(joined), Admitted: uint64(admitted), NoShows: uint64(noShows)}
	case !errors.Is(err, sql.ErrNoRows):
		return a, fmt.Errorf("drop line: %w", err)
	}
	rows, err := s.reader.QueryContext(ctx, `SELECT kind, reason, count(*), count(DISTINCT visitor), coalesce(sum(quantity), 0)
		FROM drop_events WHERE drop_id = ? GROUP BY kind, reason ORDER BY kind, reason`, dropID)
	if err != nil {
		return a, fmt.Errorf("drop events: %w", err)
	}
	for rows.Next() {
		var t dropreport.Tally
		if err := rows.Scan(&t.Kind, &t.Reason, &t.Events, &t.Visitors, &t.Quantity); err != nil {
			rows.Close()
			return a, err
		}
		a.Tallies = append(a.Tallies, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return a, err
	}
	// One wait per visitor: the first recorded (replicas each record it).
	rows, err = s.reader.QueryContext(ctx, `SELECT wait_ms FROM drop_events WHERE id IN
		(SELECT min(id) FROM drop_events WHERE drop_id = ? AND kind = 'admitted' GROUP BY visitor)`, dropID)
	if err != nil {
		return a, fmt.Errorf("drop waits: %w", err)
	}
	for rows.Next() {
		var ms int64
		if err := rows.Scan(&ms); err != nil {
			rows.Close()
			return a, err
		}
		a.Waits = append(a.Waits, time.Duration(ms)*time.Millisecond)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return a, err
	}
	rows, err = s.reader.QueryContext(ctx, `SELECT p.order_id, p.buyer, p.quantity, o.created_at FROM drop_purchases p
		JOIN orders o ON o.id = p.order_id WHERE p.drop_id = ? ORDER BY o.created_at, p.order_id`, dropID)
	if err != nil {
		return a, fmt.Errorf("drop purchases: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var p dropreport.Purchase
		var created int64
		if err := rows.Scan(&p.Order, &p.Buyer, &p.Quantity, &created); err != nil {
			return a, err
		}
		p.At = time.Unix(0, created).UTC()
		a.Purchases = append(a.Purchases, p)
	}
	return a, rows.Err()
}
