package sqlitestore

import (
	"context"
	"fmt"
	"strings"

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
