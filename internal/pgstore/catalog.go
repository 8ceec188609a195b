package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/surge-commerce/surge/internal/catalog"
)

// CreateCategory stores c and returns it with its ID.
func (s *Store) CreateCategory(ctx context.Context, c catalog.Category) (catalog.Category, error) {
	if err := c.Validate(); err != nil {
		return catalog.Category{}, err
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if c.ParentID != 0 {
			if err := categoryExists(ctx, tx, c.ParentID, "parent_id"); err != nil {
				return err
			}
		}
		err := tx.QueryRow(ctx, `
			INSERT INTO categories (parent_id, slug, name, description, position)
			VALUES (nullif($1::bigint, 0), $2, $3, $4, $5)
			RETURNING id`,
			c.ParentID, c.Slug, c.Name, c.Description, c.Position).Scan(&c.ID)
		if isUnique(err) {
			return fmt.Errorf("slug already used: %w", catalog.ErrConflict)
		}
		return err
	})
	if err != nil {
		return catalog.Category{}, fmt.Errorf("create category %q: %w", c.Slug, err)
	}
	return c, nil
}

// categoryExists returns ErrInvalid, naming field, unless category id
// exists. The check reads committed rows; the foreign key catches a parent
// deleted in between (categories are never deleted today).
func categoryExists(ctx context.Context, q querier, id int64, field string) error {
	var ok bool
	if err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM categories WHERE id = $1)`, id).Scan(&ok); err != nil {
		return err
	}
	if !ok {
		return catalog.FieldErrorf(field, "%d: no such category", id)
	}
	return nil
}

const categoryColumns = `id, coalesce(parent_id, 0), slug, name, description, position`

func scanCategory(row pgx.Row) (catalog.Category, error) {
	var c catalog.Category
	err := row.Scan(&c.ID, &c.ParentID, &c.Slug, &c.Name, &c.Description, &c.Position)
	return c, err
}

// Categories lists every category depth first: each parent is followed by
// its subtree, and siblings come by position, then ID. It may read a
// replica.
func (s *Store) Categories(ctx context.Context) ([]catalog.Category, error) {
	var (
		children map[int64][]catalog.Category
		n        int
	)
	err := s.reading(ctx, func(db querier) error {
		rows, err := db.Query(ctx, `SELECT `+categoryColumns+` FROM categories ORDER BY position, id`)
		if err != nil {
			return err
		}
		defer rows.Close()
		children, n = map[int64][]catalog.Category{}, 0
		for rows.Next() {
			c, err := scanCategory(rows)
			if err != nil {
				return err
			}
			children[c.ParentID] = append(children[c.ParentID], c)
			n++
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("categories: %w", err)
	}
	out := make([]catalog.Category, 0, n)
	var walk func(parent int64)
	walk = func(parent int64) {
		for _, c := range children[parent] {
			out = append(out, c)
			walk(c.ID)
		}
	}
	// A parent is always created before its children, so every category
	// is reachable from a root.
	walk(0)
	return out, nil
}

// CategoryBySlug finds one category. It may read a replica.
func (s *Store) CategoryBySlug(ctx context.Context, slug string) (catalog.Category, error) {
	if !storable(slug) {
		return catalog.Category{}, fmt.Errorf("category %q: %w", slug, catalog.ErrNotFound)
	}
	var c catalog.Category
	err := s.reading(ctx, func(db querier) error {
		var err error
		c, err = scanCategory(db.QueryRow(ctx, `SELECT `+categoryColumns+` FROM categories WHERE slug = $1`, slug))
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return catalog.Category{}, fmt.Errorf("category %q: %w", slug, catalog.ErrNotFound)
	}
	if err != nil {
		return catalog.Category{}, fmt.Errorf("category %q: %w", slug, err)
	}
	return c, nil
}

// CreateProduct stores p with its variants and returns it as stored. A zero
// CreatedAt becomes now; a zero UpdatedAt becomes CreatedAt. Variants start
// with nothing reserved or sold.
func (s *Store) CreateProduct(ctx context.Context, p catalog.Product) (catalog.Product, error) {
	if err := p.Validate(); err != nil {
		return catalog.Product{}, err
	}
	if p.CreatedAt.IsZero() {
		p.CreatedAt = s.now()
	}
	if p.UpdatedAt.IsZero() {
		p.UpdatedAt = p.CreatedAt
	}
	if err := checkTimes(p); err != nil {
		return catalog.Product{}, err
	}
	var out catalog.Product
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := categoryExists(ctx, tx, p.CategoryID, "category_id"); err != nil {
			return err
		}
		var id int64
		err := tx.QueryRow(ctx, insertProduct+` RETURNING id`, productArgs(p)...).Scan(&id)
		if isUnique(err) {
			return fmt.Errorf("slug already used: %w", catalog.ErrConflict)
		}
		if err != nil {
			return err
		}
		for _, v := range p.Variants {
			_, err := tx.Exec(ctx, insertVariant, variantArgs(id, v)...)
			if isUnique(err) {
				return fmt.Errorf("sku %q already used: %w", v.SKU, catalog.ErrConflict)
			}
			if err != nil {
				return err
			}
		}
		out, err = productWhere(ctx, tx, "id = $1", id)
		return err
	})
	if err != nil {
		return catalog.Product{}, fmt.Errorf("create product %q: %w", p.Slug, err)
	}
	return out, nil
}

// checkTimes refuses times the SQLite store cannot hold either; zero times
// are filled in by the store.
func checkTimes(p catalog.Product) error {
	for _, t := range []time.Time{p.CreatedAt, p.UpdatedAt} {
		if !t.IsZero() && (t.Before(minTime) || t.After(maxTime)) {
			return catalog.Invalidf("product %s: time %s out of range", p.Slug, t)
		}
	}
	return nil
}

const insertProduct = `
	INSERT INTO products (slug, name, description, status, category_id, images, attributes, created_at, updated_at)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`

func productArgs(p catalog.Product) []any {
	return []any{p.Slug, p.Name, p.Description, string(p.Status), p.CategoryID,
		jsonArray(p.Images), jsonArray(p.Attributes), p.CreatedAt, p.UpdatedAt}
}

// reserved and sold start at their column defaults, zero.
const insertVariant = `
	INSERT INTO variants (product_id, sku, options, price, currency, on_hand, position)
	VALUES ($1, $2, $3, $4, $5, $6, $7)`

func variantArgs(productID int64, v catalog.Variant) []any {
	return []any{productID, v.SKU, jsonArray(v.Options), v.Price.Amount, v.Price.Currency, v.OnHand, v.Position}
}

// jsonArray encodes a slice as a JSON array, "[]" when empty. pgx sends a
// string to a jsonb parameter as JSON text.
func jsonArray[T any](s []T) string {
	if len(s) == 0 {
		return "[]"
	}
	b, err := json.Marshal(s)
	if err != nil {
		panic(err) // slices of string-only structs always encode
	}
	return string(b)
}

// UpdateProduct changes the product's own fields, matched by ID, and returns
// it as stored. CreatedAt is kept; UpdatedAt becomes now. Variants in p are
// validated but not written.
func (s *Store) UpdateProduct(ctx context.Context, p catalog.Product) (catalog.Product, error) {
	if err := p.Validate(); err != nil {
		return catalog.Product{}, err
	}
	var out catalog.Product
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := categoryExists(ctx, tx, p.CategoryID, "category_id"); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `
			UPDATE products SET slug = $1, name = $2, description = $3, status = $4, category_id = $5,
				images = $6, attributes = $7, updated_at = $8
			WHERE id = $9`,
			p.Slug, p.Name, p.Description, string(p.Status), p.CategoryID,
			jsonArray(p.Images), jsonArray(p.Attributes), s.now(), p.ID)
		if isUnique(err) {
			return fmt.Errorf("slug %q already used: %w", p.Slug, catalog.ErrConflict)
		}
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return catalog.ErrNotFound
		}
		out, err = productWhere(ctx, tx, "id = $1", p.ID)
		return err
	})
	if err != nil {
		return catalog.Product{}, fmt.Errorf("update product %d: %w", p.ID, err)
	}
	return out, nil
}

// ProductBySlug returns a product with its variants, whatever its status.
// It may read a replica.
func (s *Store) ProductBySlug(ctx context.Context, slug string) (catalog.Product, error) {
	if !storable(slug) {
		return catalog.Product{}, fmt.Errorf("product %q: %w", slug, catalog.ErrNotFound)
	}
	p, err := s.readProduct(ctx, "slug = $1", slug)
	if err != nil {
		return catalog.Product{}, fmt.Errorf("product %q: %w", slug, err)
	}
	return p, nil
}

// ProductByID returns a product with its variants, whatever its status.
// It may read a replica.
func (s *Store) ProductByID(ctx context.Context, id int64) (catalog.Product, error) {
	p, err := s.readProduct(ctx, "id = $1", id)
	if err != nil {
		return catalog.Product{}, fmt.Errorf("product %d: %w", id, err)
	}
	return p, nil
}

// readProduct is productWhere on a replica, or the primary.
func (s *Store) readProduct(ctx context.Context, cond string, arg any) (catalog.Product, error) {
	var p catalog.Product
	err := s.reading(ctx, func(db querier) error {
		var err error
		p, err = productWhere(ctx, db, cond, arg)
		return err
	})
	return p, err
}

const productColumns = `p.id, p.slug, p.name, p.description, p.status, p.category_id, p.images, p.attributes,
	p.price_from, p.currency, p.in_stock, p.created_at, p.updated_at`

// scanProduct reads productColumns, then extra destinations.
func scanProduct(row pgx.Row, extra ...any) (catalog.Product, error) {
	var (
		p                  catalog.Product
		images, attributes []byte
	)
	dest := append([]any{&p.ID, &p.Slug, &p.Name, &p.Description, &p.Status, &p.CategoryID, &images, &attributes,
		&p.PriceFrom.Amount, &p.PriceFrom.Currency, &p.InStock, &p.CreatedAt, &p.UpdatedAt}, extra...)
	if err := row.Scan(dest...); err != nil {
		return catalog.Product{}, err
	}
	if err := json.Unmarshal(images, &p.Images); err != nil {
		return catalog.Product{}, fmt.Errorf("product %d images: %w", p.ID, err)
	}
	if err := json.Unmarshal(attributes, &p.Attributes); err != nil {
		return catalog.Product{}, fmt.Errorf("product %d attributes: %w", p.ID, err)
	}
	return p, nil
}

// productWhere loads the one product matching cond (a condition on the
// products table aliased p, with one parameter $1) with its variants by
// position, then ID. Both come from one query, so a replica cannot answer
// with a product from one moment and variants from another.
func productWhere(ctx context.Context, q querier, cond string, arg any) (catalog.Product, error) {
	rows, err := q.Query(ctx, `SELECT `+productColumns+`, v.id, v.product_id, v.sku, v.options, v.price, v.currency,
			v.on_hand, v.reserved, v.sold, v.position
		FROM products p LEFT JOIN variants v ON v.product_id = p.id
		WHERE p.`+cond+`
		ORDER BY v.position, v.id`, arg)
	if err != nil {
		return catalog.Product{}, err
	}
	defer rows.Close()
	var (
		p     catalog.Product
		found bool
	)
	for rows.Next() {
		var (
			vID, vProduct, price, onHand, reserved, sold *int64
			sku, currency                                *string
			options                                      []byte
			position                                     *int
		)
		row, err := scanProduct(rows, &vID, &vProduct, &sku, &options, &price, &currency, &onHand, &reserved, &sold, &position)
		if err != nil {
			return catalog.Product{}, err
		}
		if !found {
			p, found = row, true
		}
		if vID == nil { // no variants: the LEFT JOIN's one row of NULLs
			continue
		}
		v := catalog.Variant{ID: *vID, ProductID: *vProduct, SKU: *sku, OnHand: *onHand, Reserved: *reserved, Sold: *sold, Position: *position}
		v.Price.Amount, v.Price.Currency = *price, *currency
		if err := json.Unmarshal(options, &v.Options); err != nil {
			return catalog.Product{}, fmt.Errorf("variant %s options: %w", v.SKU, err)
		}
		p.Variants = append(p.Variants, v)
	}
	if err := rows.Err(); err != nil {
		return catalog.Product{}, err
	}
	if !found {
		return catalog.Product{}, catalog.ErrNotFound
	}
	return p, nil
}

// CountProducts counts products of any status. It may read a replica.
func (s *Store) CountProducts(ctx context.Context) (int, error) {
	var n int
	err := s.reading(ctx, func(db querier) error {
		return db.QueryRow(ctx, `SELECT count(*) FROM products`).Scan(&n)
	})
	if err != nil {
		return 0, fmt.Errorf("count products: %w", err)
	}
	return n, nil
}

const variantColumns = `id, product_id, sku, options, price, currency, on_hand, reserved, sold, position`

func scanVariant(row pgx.Row) (catalog.Variant, error) {
	var (
		v       catalog.Variant
		options []byte
	)
	err := row.Scan(&v.ID, &v.ProductID, &v.SKU, &options, &v.Price.Amount, &v.Price.Currency,
		&v.OnHand, &v.Reserved, &v.Sold, &v.Position)
	if err != nil {
		return catalog.Variant{}, err
	}
	if err := json.Unmarshal(options, &v.Options); err != nil {
		return catalog.Variant{}, fmt.Errorf("variant %s options: %w", v.SKU, err)
	}
	return v, nil
}

// CreateVariant adds a variant to an existing product, with nothing reserved
// or sold. The product's price_from and in_stock follow (by trigger).
func (s *Store) CreateVariant(ctx context.Context, productID int64, v catalog.Variant) (catalog.Variant, error) {
	if err := v.Validate(); err != nil {
		return catalog.Variant{}, err
	}
	var out catalog.Variant
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var ok bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM products WHERE id = $1)`, productID).Scan(&ok); err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("product %d: %w", productID, catalog.ErrNotFound)
		}
		var err error
		out, err = scanVariant(tx.QueryRow(ctx, insertVariant+` RETURNING `+variantColumns, variantArgs(productID, v)...))
		if isUnique(err) {
			return fmt.Errorf("sku already used: %w", catalog.ErrConflict)
		}
		return err
	})
	if err != nil {
		return catalog.Variant{}, fmt.Errorf("create variant %q: %w", v.SKU, err)
	}
	return out, nil
}

// UpdateVariant changes price, options and position of the variant with
// v.SKU; stock is left alone.
func (s *Store) UpdateVariant(ctx context.Context, v catalog.Variant) (catalog.Variant, error) {
	if err := v.Validate(); err != nil {
		return catalog.Variant{}, err
	}
	var out catalog.Variant
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		out, err = scanVariant(tx.QueryRow(ctx, `
			UPDATE variants SET options = $1, price = $2, currency = $3, position = $4
			WHERE sku = $5
			RETURNING `+variantColumns,
			jsonArray(v.Options), v.Price.Amount, v.Price.Currency, v.Position, v.SKU))
		if errors.Is(err, pgx.ErrNoRows) {
			return catalog.ErrNotFound
		}
		return err
	})
	if err != nil {
		return catalog.Variant{}, fmt.Errorf("update variant %q: %w", v.SKU, err)
	}
	return out, nil
}

// VariantBySKU returns one variant. It may read a replica.
func (s *Store) VariantBySKU(ctx context.Context, sku string) (catalog.Variant, error) {
	if !storable(sku) {
		return catalog.Variant{}, fmt.Errorf("variant %q: %w", sku, catalog.ErrNotFound)
	}
	var v catalog.Variant
	err := s.reading(ctx, func(db querier) error {
		var err error
		v, err = scanVariant(db.QueryRow(ctx, `SELECT `+variantColumns+` FROM variants WHERE sku = $1`, sku))
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return catalog.Variant{}, fmt.Errorf("variant %q: %w", sku, catalog.ErrNotFound)
	}
	if err != nil {
		return catalog.Variant{}, fmt.Errorf("variant %q: %w", sku, err)
	}
	return v, nil
}

// SetStock sets on hand for sku. The reserved+sold check is part of the
// UPDATE, which re-checks it on the newest row version if a reservation
// commits meanwhile, so none can slip between a read and the write.
func (s *Store) SetStock(ctx context.Context, sku string, onHand int64) (catalog.Variant, error) {
	if onHand < 0 {
		return catalog.Variant{}, catalog.Invalidf("variant %s on_hand: must not be negative", sku)
	}
	if !storable(sku) {
		return catalog.Variant{}, fmt.Errorf("set stock of %q: %w", sku, catalog.ErrNotFound)
	}
	var out catalog.Variant
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		out, err = scanVariant(tx.QueryRow(ctx, `
			UPDATE variants SET on_hand = $1
			WHERE sku = $2 AND reserved + sold <= $1
			RETURNING `+variantColumns, onHand, sku))
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		// Nothing updated: say why, from the row locked so it cannot
		// change under the answer.
		var reserved, sold int64
		err = tx.QueryRow(ctx, `SELECT reserved, sold FROM variants WHERE sku = $1 FOR UPDATE`, sku).Scan(&reserved, &sold)
		if errors.Is(err, pgx.ErrNoRows) {
			return catalog.ErrNotFound
		}
		if err != nil {
			return err
		}
		return catalog.Invalidf("on_hand %d is below reserved+sold (%d+%d)", onHand, reserved, sold)
	})
	if err != nil {
		return catalog.Variant{}, fmt.Errorf("set stock of %q: %w", sku, err)
	}
	return out, nil
}
