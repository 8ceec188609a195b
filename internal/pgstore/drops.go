package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/surge-commerce/surge/internal/drop"
)

// CreateDrop stores d and allocates its stock: every SKU ends up with
// exactly Allocated units available (on hand = reserved + sold +
// allocated), in the same transaction. The variants are locked first, in
// SKU order, so two drops created at once for one SKU cannot both see it
// free of open drops.
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
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO drops (id, slug, name, description, starts_at, ends_at, per_customer_limit, room, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, d.ID, d.Slug, d.Name, d.Description, d.StartsAt, d.EndsAt,
			d.PerCustomerLimit, string(room), d.CreatedAt); err != nil {
			if isUnique(err) {
				return fmt.Errorf("%w: slug %q is taken", drop.ErrConflict, d.Slug)
			}
			return err
		}
		skus := make([]string, 0, len(d.Items))
		for _, it := range d.Items {
			if storable(it.SKU) {
				skus = append(skus, it.SKU)
			}
		}
		slices.Sort(skus)
		if _, err := tx.Exec(ctx, `SELECT 1 FROM variants WHERE sku = ANY($1) ORDER BY sku FOR UPDATE`, skus); err != nil {
			return fmt.Errorf("lock drop skus: %w", err)
		}
		for _, it := range d.Items {
			if !storable(it.SKU) {
				return fmt.Errorf("%w: items: no variant with SKU %q", drop.ErrInvalid, it.SKU)
			}
			var other string
			err := tx.QueryRow(ctx, `SELECT d.slug FROM drop_items i JOIN drops d ON d.id = i.drop_id
				WHERE i.sku = $1 AND NOT d.closed`, it.SKU).Scan(&other)
			if err == nil {
				return fmt.Errorf("%w: %s is already in open drop %q", drop.ErrConflict, it.SKU, other)
			}
			if !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
			tag, err := tx.Exec(ctx, `UPDATE variants SET on_hand = reserved + sold + $1 WHERE sku = $2`, it.Allocated, it.SKU)
			if err != nil {
				return fmt.Errorf("allocate %s: %w", it.SKU, err)
			}
			if tag.RowsAffected() == 0 {
				return fmt.Errorf("%w: items: no variant with SKU %q", drop.ErrInvalid, it.SKU)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO drop_items (drop_id, sku, allocated) VALUES ($1, $2, $3)`, d.ID, it.SKU, it.Allocated); err != nil {
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

// scanDrops reads drops with their items from the primary: the waiting
// room and checkout act on what a drop is now.
func (s *Store) scanDrops(ctx context.Context, where string, args ...any) ([]drop.Drop, error) {
	rows, err := s.primary.Query(ctx, `SELECT `+dropColumns+` FROM drops `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("drops: %w", err)
	}
	var out []drop.Drop
	for rows.Next() {
		var (
			d    drop.Drop
			room []byte
		)
		if err := rows.Scan(&d.ID, &d.Slug, &d.Name, &d.Description, &d.StartsAt, &d.EndsAt, &d.PerCustomerLimit, &room, &d.Closed, &d.CreatedAt); err != nil {
			rows.Close()
			return nil, fmt.Errorf("drops: %w", err)
		}
		_ = json.Unmarshal(room, &d.Room) // written by CreateDrop
		out = append(out, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("drops: %w", err)
	}
	for i := range out {
		items, err := s.primary.Query(ctx, `SELECT sku, allocated FROM drop_items WHERE drop_id = $1 ORDER BY sku`, out[i].ID)
		if err != nil {
			return nil, fmt.Errorf("drop %s items: %w", out[i].ID, err)
		}
		out[i].Items, err = pgx.CollectRows(items, func(row pgx.CollectableRow) (drop.Item, error) {
			var it drop.Item
			err := row.Scan(&it.SKU, &it.Allocated)
			return it, err
		})
		if err != nil {
			return nil, fmt.Errorf("drop %s items: %w", out[i].ID, err)
		}
	}
	return out, nil
}

// Drops lists every drop, the next to start first.
func (s *Store) Drops(ctx context.Context) ([]drop.Drop, error) {
	return s.scanDrops(ctx, `ORDER BY closed, starts_at DESC`)
}

// DropByID finds a drop.
func (s *Store) DropByID(ctx context.Context, id string) (drop.Drop, error) {
	return s.oneDrop(ctx, `WHERE id = $1`, id)
}

// DropBySlug finds a drop.
func (s *Store) DropBySlug(ctx context.Context, slug string) (drop.Drop, error) {
	return s.oneDrop(ctx, `WHERE slug = $1`, slug)
}

func (s *Store) oneDrop(ctx context.Context, where string, arg string) (drop.Drop, error) {
	if !storable(arg) {
		return drop.Drop{}, fmt.Errorf("drop %q: %w", arg, drop.ErrNotFound)
	}
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
	if !storable(id) {
		return drop.Drop{}, fmt.Errorf("drop %q: %w", id, drop.ErrNotFound)
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE drops SET closed = true WHERE id = $1`, id)
		if err != nil {
			return fmt.Errorf("close drop %q: %w", id, err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("drop %q: %w", id, drop.ErrNotFound)
		}
		return nil
	})
	if err != nil {
		return drop.Drop{}, err
	}
	return s.DropByID(ctx, id)
}

// Available sums the units the drop's SKUs have left, on the primary: it
// decides when everyone waiting is told the drop sold out.
func (s *Store) Available(ctx context.Context, id string) (int64, error) {
	if !storable(id) {
		return 0, nil
	}
	var n int64
	err := s.primary.QueryRow(ctx, `SELECT coalesce(sum(v.on_hand - v.reserved - v.sold), 0)::bigint
		FROM drop_items i JOIN variants v ON v.sku = i.sku WHERE i.drop_id = $1`, id).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("drop %s stock: %w", id, err)
	}
	return n, nil
}

// OpenDropForSKUs returns the open (not closed) drop selling any of skus,
// if there is one. Checkout uses it to require waiting-room access, so it
// reads the primary: a drop created a moment ago must already gate.
func (s *Store) OpenDropForSKUs(ctx context.Context, skus []string) (drop.Drop, bool, error) {
	keys := make([]string, 0, len(skus))
	for _, sku := range skus {
		if storable(sku) {
			keys = append(keys, sku)
		}
	}
	if len(keys) == 0 {
		return drop.Drop{}, false, nil
	}
	var id string
	err := s.primary.QueryRow(ctx, `SELECT d.id FROM drop_items i JOIN drops d ON d.id = i.drop_id
		WHERE NOT d.closed AND i.sku = ANY($1) LIMIT 1`, keys).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return drop.Drop{}, false, nil
	}
	if err != nil {
		return drop.Drop{}, false, fmt.Errorf("drop for skus: %w", err)
	}
	d, err := s.DropByID(ctx, id)
	return d, err == nil, err
}
