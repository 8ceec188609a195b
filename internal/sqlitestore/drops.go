package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/surge-commerce/surge/internal/drop"
)

var _ drop.Store = (*Store)(nil)

// CreateDrop stores d and allocates its stock: every SKU ends up with
// exactly Allocated units available (on hand = reserved + sold +
// allocated), in the same transaction.
func (s *Store) CreateDrop(ctx context.Context, d drop.Drop) (drop.Drop, error) {
	if err := d.Validate(); err != nil {
		return drop.Drop{}, err
	}
	id, err := randomID("drop_")
	if err != nil {
		return drop.Drop{}, err
	}
	d.ID, d.CreatedAt = id, s.now().UTC()
	room, _ := json.Marshal(d.Room)
	err = s.write(ctx, func(tx wtx) error {
		var ends any
		if d.EndsAt != nil {
			ends = d.EndsAt.UnixNano()
		}
		if _, err := tx.Exec(`INSERT INTO drops (id, slug, name, description, starts_at, ends_at, per_customer_limit, room, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, d.ID, d.Slug, d.Name, d.Description, d.StartsAt.UnixNano(), ends,
			d.PerCustomerLimit, string(room), d.CreatedAt.UnixNano()); err != nil {
			if isUnique(err) {
				return fmt.Errorf("%w: slug %q is taken", drop.ErrConflict, d.Slug)
			}
			return err
		}
		for _, it := range d.Items {
			var other string
			err := tx.QueryRow(`SELECT d.slug FROM drop_items i JOIN drops d ON d.id = i.drop_id WHERE i.sku = ? AND d.closed = 0`, it.SKU).Scan(&other)
			if err == nil {
				return fmt.Errorf("%w: %s is already in open drop %q", drop.ErrConflict, it.SKU, other)
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			res, err := tx.Exec(`UPDATE variants SET on_hand = reserved + sold + ? WHERE sku = ?`, it.Allocated, it.SKU)
			if err != nil {
				return fmt.Errorf("allocate %s: %w", it.SKU, err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				return fmt.Errorf("%w: items: no variant with SKU %q", drop.ErrInvalid, it.SKU)
			}
			if _, err := tx.Exec(`INSERT INTO drop_items (drop_id, sku, allocated) VALUES (?, ?, ?)`, d.ID, it.SKU, it.Allocated); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return drop.Drop{}, fmt.Errorf("create drop: %w", err)
	}
	return d, nil
}

const dropColumns = `id, slug, name, description, starts_at, ends_at, per_customer_limit, room, closed, created_at`

func (s *Store) scanDrops(ctx context.Context, where string, args ...any) ([]drop.Drop, error) {
	rows, err := s.reader.QueryContext(ctx, `SELECT `+dropColumns+` FROM drops `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("drops: %w", err)
	}
	var out []drop.Drop
	for rows.Next() {
		var d drop.Drop
		var starts, created int64
		var ends sql.NullInt64
		var room string
		if err := rows.Scan(&d.ID, &d.Slug, &d.Name, &d.Description, &starts, &ends, &d.PerCustomerLimit, &room, &d.Closed, &created); err != nil {
			rows.Close()
			return nil, err
		}
		d.StartsAt, d.CreatedAt = fromNanos(starts), fromNanos(created)
		if ends.Valid {
			t := fromNanos(ends.Int64)
			d.EndsAt = &t
		}
		_ = json.Unmarshal([]byte(room), &d.Room) // written by CreateDrop
		out = append(out, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i := range out {
		items, err := s.reader.QueryContext(ctx, `SELECT sku, allocated FROM drop_items WHERE drop_id = ? ORDER BY sku`, out[i].ID)
		if err != nil {
			return nil, err
		}
		for items.Next() {
			var it drop.Item
			if err := items.Scan(&it.SKU, &it.Allocated); err != nil {
				items.Close()
				return nil, err
			}
			out[i].Items = append(out[i].Items, it)
		}
		items.Close()
	}
	return out, nil
}

// Drops lists every drop, the next to start first.
func (s *Store) Drops(ctx context.Context) ([]drop.Drop, error) {
	return s.scanDrops(ctx, `ORDER BY closed, starts_at DESC`)
}

// DropByID finds a drop.
func (s *Store) DropByID(ctx context.Context, id string) (drop.Drop, error) {
	return s.oneDrop(ctx, `WHERE id = ?`, id)
}

// DropBySlug finds a drop.
func (s *Store) DropBySlug(ctx context.Context, slug string) (drop.Drop, error) {
	return s.oneDrop(ctx, `WHERE slug = ?`, slug)
}

func (s *Store) oneDrop(ctx context.Context, where string, arg string) (drop.Drop, error) {
	ds, err := s.scanDrops(ctx, where, arg)
	if err != nil {
		return drop.Drop{}, err
	}
	if len(ds) == 0 {
		return drop.Drop{}, fmt.Errorf("drop %q: %w", arg, drop.ErrNotFound)
	}
	return ds[0], nil
}

// CloseDrop ends a drop early; its unsold stock stays with the SKUs.
func (s *Store) CloseDrop(ctx context.Context, id string) (drop.Drop, error) {
	err := s.write(ctx, func(tx wtx) error {
		res, err := tx.Exec(`UPDATE drops SET closed = 1 WHERE id = ?`, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("drop %q: %w", id, drop.ErrNotFound)
		}
		return nil
	})
	if err != nil {
		return drop.Drop{}, err
	}
	return s.DropByID(ctx, id)
}

// Available sums the units the drop's SKUs have left.
func (s *Store) Available(ctx context.Context, id string) (int64, error) {
	var n int64
	err := s.readRow(ctx, `SELECT coalesce(sum(v.on_hand - v.reserved - v.sold), 0)
		FROM drop_items i JOIN variants v ON v.sku = i.sku WHERE i.drop_id = ?`, id).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("drop %s stock: %w", id, err)
	}
	return n, nil
}

// OpenDropForSKUs returns the open (not closed) drop selling any of skus,
// if there is one. Checkout uses it to require waiting-room access.
func (s *Store) OpenDropForSKUs(ctx context.Context, skus []string) (drop.Drop, bool, error) {
	if len(skus) == 0 {
		return drop.Drop{}, false, nil
	}
	args := make([]any, len(skus))
	for i, v := range skus {
		args[i] = v
	}
	var id string
	err := s.readRow(ctx, `SELECT d.id FROM drop_items i JOIN drops d ON d.id = i.drop_id
		WHERE d.closed = 0 AND i.sku IN (?`+strings.Repeat(",?", len(skus)-1)+`) LIMIT 1`, args...).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return drop.Drop{}, false, nil
	}
	if err != nil {
		return drop.Drop{}, false, fmt.Errorf("drop for skus: %w", err)
	}
	d, err := s.DropByID(ctx, id)
	return d, err == nil, err
}

// recordDropPurchase checks and records a buyer's drop purchase inside the
// order's transaction.
func recordDropPurchase(tx wtx, orderID, dropID, buyer string, qty, limit int64) error {
	var held int64
	if err := tx.QueryRow(`SELECT coalesce(sum(quantity), 0) FROM drop_purchases WHERE drop_id = ? AND buyer = ?`, dropID, buyer).Scan(&held); err != nil {
		return err
	}
	if held+qty > limit {
		return fmt.Errorf("%w: %d per customer, you hold %d", drop.ErrOverLimit, limit, held)
	}
	_, err := tx.Exec(`INSERT INTO drop_purchases (order_id, drop_id, buyer, quantity) VALUES (?, ?, ?, ?)`, orderID, dropID, buyer, qty)
	return err
}
