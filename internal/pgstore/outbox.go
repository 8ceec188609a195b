package pgstore

import (
	"context"
	"fmt"

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
