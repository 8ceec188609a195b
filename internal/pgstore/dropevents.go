package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/surge-commerce/surge/internal/dropreport"
)

var _ dropreport.Store = (*Store)(nil)

// RecordDropEvents stores a batch of drop events with one COPY.
func (s *Store) RecordDropEvents(ctx context.Context, events []dropreport.Event) error {
	rows := make([][]any, 0, len(events))
	for _, e := range events {
		if !storable(e.Drop) || !storable(e.Visitor) {
			continue
		}
		rows = append(rows, []any{e.Drop, string(e.Kind), e.Visitor, e.Reason, e.Quantity, e.Wait.Milliseconds(), e.At})
	}
	if len(rows) == 0 {
		return nil
	}
	_, err := s.primary.CopyFrom(ctx, pgx.Identifier{"drop_events"},
		[]string{"drop_id", "kind", "visitor", "reason", "quantity", "wait_ms", "at"}, pgx.CopyFromRows(rows))
	if err != nil {
		return fmt.Errorf("record drop events: %w", err)
	}
	return nil
}

// SaveDropLine keeps l unless a later copy, or one counting more joins,
// is stored: replicas copy the same shared counters at different moments.
func (s *Store) SaveDropLine(ctx context.Context, dropID string, l dropreport.Line) error {
	if !storable(dropID) {
		return nil
	}
	_, err := s.primary.Exec(ctx, `INSERT INTO drop_lines (drop_id, at, pre_queue, joined, admitted, no_shows) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (drop_id) DO UPDATE SET at = excluded.at, pre_queue = excluded.pre_queue, joined = excluded.joined,
			admitted = excluded.admitted, no_shows = excluded.no_shows
		WHERE excluded.at >= drop_lines.at AND excluded.joined >= drop_lines.joined`,
		dropID, l.At, int64(l.PreQueue), int64(l.Joined), int64(l.Admitted), int64(l.NoShows))
	if err != nil {
		return fmt.Errorf("save drop %s line: %w", dropID, err)
	}
	return nil
}

// DropActivity reads a drop's events, line counters and purchases from
// the primary: the report follows a flush of the events just recorded.
func (s *Store) DropActivity(ctx context.Context, dropID string) (dropreport.Activity, error) {
	var a dropreport.Activity
	if !storable(dropID) {
		return a, nil
	}
	var pre, joined, admitted, noShows int64
	err := s.primary.QueryRow(ctx, `SELECT at, pre_queue, joined, admitted, no_shows FROM drop_lines WHERE drop_id = $1`, dropID).
		Scan(&a.Line.At, &pre, &joined, &admitted, &noShows)
	switch {
	case err == nil:
		a.HasLine = true
		a.Line.At = a.Line.At.UTC()
		a.Line.PreQueue, a.Line.Joined, a.Line.Admitted, a.Line.NoShows = uint64(pre), uint64(joined), uint64(admitted), uint64(noShows)
	case !errors.Is(err, pgx.ErrNoRows):
		return a, fmt.Errorf("drop line: %w", err)
	}
	rows, err := s.primary.Query(ctx, `SELECT kind, reason, count(*), count(DISTINCT visitor), coalesce(sum(quantity), 0)::bigint
		FROM drop_events WHERE drop_id = $1 GROUP BY kind, reason ORDER BY kind, reason`, dropID)
	if err != nil {
		return a, fmt.Errorf("drop events: %w", err)
	}
	for rows.Next() {
		var t dropreport.Tally
		var kind string
		if err := rows.Scan(&kind, &t.Reason, &t.Events, &t.Visitors, &t.Quantity); err != nil {
			rows.Close()
			return a, err
		}
		t.Kind = dropreport.Kind(kind)
		a.Tallies = append(a.Tallies, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return a, err
	}
	// One wait per visitor: the first recorded (replicas each record it).
	rows, err = s.primary.Query(ctx, `SELECT wait_ms FROM drop_events WHERE id IN
		(SELECT min(id) FROM drop_events WHERE drop_id = $1 AND kind = 'admitted' GROUP BY visitor)`, dropID)
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
	rows, err = s.primary.Query(ctx, `SELECT p.order_id, p.buyer, p.quantity, o.created_at FROM drop_purchases p
		JOIN orders o ON o.id = p.order_id WHERE p.drop_id = $1 ORDER BY o.created_at, p.order_id`, dropID)
	if err != nil {
		return a, fmt.Errorf("drop purchases: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var p dropreport.Purchase
		if err := rows.Scan(&p.Order, &p.Buyer, &p.Quantity, &p.At); err != nil {
			return a, err
		}
		p.At = p.At.UTC()
		a.Purchases = append(a.Purchases, p)
	}
	return a, rows.Err()
}
