package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/surge-commerce/surge/internal/catalog"
)

// CreateCategory stores c and returns it with its ID.
func (s *Store) CreateCategory(ctx context.Context, c catalog.Category) (catalog.Category, error) {
	if err := c.Validate(); err != nil {
		return catalog.Category{}, err
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if c.ParentID != 0 {
			if err := categoryExists(ctx, tx, c.ParentID, "parent_id"); err != nil {
				return err
			}
		}
		res, err := tx.ExecContext(ctx, `
			INSERT INTO categories (parent_id, slug, name, description, position)
			VALUES (nullif(?, 0), ?, ?, ?, ?)`,
			c.ParentID, c.Slug, c.Name, c.Description, c.Position)
		if isUnique(err) {
			return fmt.Errorf("slug already used: %w", catalog.ErrConflict)
		}
		if err != nil {
			return err
		}
		c.ID, err = res.LastInsertId()
		return err
	})
	if err != nil {
		return catalog.Category{}, fmt.Errorf("create category %q: %w", c.Slug, err)
	}
	return c, nil
}

// categoryExists returns a *catalog.FieldError for field unless category id
// exists.
func categoryExists(ctx context.Context, q querier, id int64, field string) error {
	var ok bool
	if err := q.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM categories WHERE id = ?)`, id).Scan(&ok); err != nil {
		return err
	}
	if !ok {
		return catalog.FieldErrorf(field, "%d: no such category", id)
	}
	return nil
}

const categoryColumns = `id, coalesce(parent_id, 0), slug, name, description, position`

func scanCategory(row interface{ Scan(...any) error }) (catalog.Category, error) {
	var c catalog.Category
	err := row.Scan(&c.ID, &c.ParentID, &c.Slug, &c.Name, &c.Description, &c.Position)
	return c, err
}

// Categories lists every category depth first: each parent is followed by
// its subtree, and siblings come by position, then ID.
func (s *Store) Categories(ctx context.Context) ([]catalog.Category, error) {
	rows, err := s.reader.QueryContext(ctx, `SELECT `+categoryColumns+` FROM categories ORDER BY position, id`)
	if err != nil {
		return nil, fmt.Errorf("categories: %w", err)
	}
	defer rows.Close()
	children := map[int64][]catalog.Category{}
	n := 0
	for rows.Next() {
		c, err := scanCategory(rows)
		if err != nil {
			return nil, fmt.Errorf("categories: %w", err)
		}
		children[c.ParentID] = append(children[c.ParentID], c)
		n++
	}
	if err := rows.Err(); err != nil {
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

// CategoryBySlug finds one category.
func (s *Store) CategoryBySlug(ctx context.Context, slug string) (catalog.Category, error) {
	c, err := scanCategory(s.readRow(ctx, `SELECT `+categoryColumns+` FROM categories WHERE slug = ?`, slug))
	if errors.Is(err, sql.ErrNoRows) {
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
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if err := categoryExists(ctx, tx, p.CategoryID, "category_id"); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, insertProduct, productArgs(p)...)
		if isUnique(err) {
			return fmt.Errorf("slug already used: %w", catalog.ErrConflict)
		}
		if err != nil {
			return err
		}
		id, err := res.LastInsertId()
		if err != nil {
			return err
		}
		for _, v := range p.Variants {
			_, err := tx.ExecContext(ctx, insertVariant, variantArgs(id, v)...)
			if isUnique(err) {
				return fmt.Errorf("sku %q already used: %w", v.SKU, catalog.ErrConflict)
			}
			if err != nil {
				return err
			}
		}
		out, err = productWhere(ctx, tx, "id = ?", id)
		return err
	})
	if err != nil {
		return catalog.Product{}, fmt.Errorf("create product %q: %w", p.Slug, err)
	}
	return out, nil
}

// checkTimes refuses times that do not fit in int64 nanoseconds; zero times
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
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`

func productArgs(p catalog.Product) []any {
	return []any{p.Slug, p.Name, p.Description, string(p.Status), p.CategoryID,
		jsonArray(p.Images), jsonArray(p.Attributes), nanos(p.CreatedAt), nanos(p.UpdatedAt)}
}

// reserved and sold start at their column defaults, zero.
const insertVariant = `
	INSERT INTO variants (product_id, sku, options, price, currency, on_hand, position)
	VALUES (?, ?, ?, ?, ?, ?, ?)`

func variantArgs(productID int64, v catalog.Variant) []any {
	return []any{productID, v.SKU, jsonArray(v.Options), v.Price.Amount, v.Price.Currency, v.OnHand, v.Position}
}

// jsonArray encodes a slice as a JSON array, "[]" when empty.
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
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if err := categoryExists(ctx, tx, p.CategoryID, "category_id"); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `
			UPDATE products SET slug = ?, name = ?, description = ?, status = ?, category_id = ?,
				images = ?, attributes = ?, updated_at = ?
			WHERE id = ?`,
			p.Slug, p.Name, p.Description, string(p.Status), p.CategoryID,
			jsonArray(p.Images), jsonArray(p.Attributes), nanos(s.now()), p.ID)
		if isUnique(err) {
			return fmt.Errorf("slug %q already used: %w", p.Slug, catalog.ErrConflict)
		}
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return catalog.ErrNotFound
		}
		out, err = productWhere(ctx, tx, "id = ?", p.ID)
		return err
	})
	if err != nil {
		return catalog.Product{}, fmt.Errorf("update product %d: %w", p.ID, err)
	}
	return out, nil
}

// ProductBySlug returns a product with its variants, whatever its status.
func (s *Store) ProductBySlug(ctx context.Context, slug string) (catalog.Product, error) {
	p, err := productWhere(ctx, s.reader, "slug = ?", slug)
	if err != nil {
		return catalog.Product{}, fmt.Errorf("product %q: %w", slug, err)
	}
	return p, nil
}

// ProductByID returns a product with its variants, whatever its status.
func (s *Store) ProductByID(ctx context.Context, id int64) (catalog.Product, error) {
	p, err := productWhere(ctx, s.reader, "id = ?", id)
	if err != nil {
		return catalog.Product{}, fmt.Errorf("product %d: %w", id, err)
	}
	return p, nil
}

const productColumns = `p.id, p.slug, p.name, p.description, p.status, p.category_id, p.images, p.attributes,
	p.price_from, p.currency, p.in_stock, p.created_at, p.updated_at`

// scanProduct reads productColumns, then extra destinations.
func scanProduct(row interface{ Scan(...any) error }, extra ...any) (catalog.Product, error) {
	var (
		p                  catalog.Product
		images, attributes string
		created, updated   int64
	)
	dest := append([]any{&p.ID, &p.Slug, &p.Name, &p.Description, &p.Status, &p.CategoryID, &images, &attributes,
		&p.PriceFrom.Amount, &p.PriceFrom.Currency, &p.InStock, &created, &updated}, extra...)
	if err := row.Scan(dest...); err != nil {
		return catalog.Product{}, err
	}
	if err := json.Unmarshal([]byte(images), &p.Images); err != nil {
		return catalog.Product{}, fmt.Errorf("product %d images: %w", p.ID, err)
	}
	if err := json.Unmarshal([]byte(attributes), &p.Attributes); err != nil {
		return catalog.Product{}, fmt.Errorf("product %d attributes: %w", p.ID, err)
	}
	p.CreatedAt, p.UpdatedAt = fromNanos(created), fromNanos(updated)
	return p, nil
}

// productWhere loads the one product matching cond (a condition on the
// products table aliased p) with its variants by position, then ID.
func productWhere(ctx context.Context, q querier, cond string, arg any) (catalog.Product, error) {
	p, err := scanProduct(q.QueryRowContext(ctx, `SELECT `+productColumns+` FROM products p WHERE p.`+cond, arg))
	if errors.Is(err, sql.ErrNoRows) {
		return catalog.Product{}, catalog.ErrNotFound
	}
	if err != nil {
		return catalog.Product{}, err
	}
	rows, err := q.QueryContext(ctx, `SELECT `+variantColumns+` FROM variants WHERE product_id = ? ORDER BY position, id`, p.ID)
	if err != nil {
		return catalog.Product{}, err
	}
	defer rows.Close()
	for rows.Next() {
		v, err := scanVariant(rows)
		if err != nil {
			return catalog.Product{}, err
		}
		p.Variants = append(p.Variants, v)
	}
	return p, rows.Err()
}

// CountProducts counts products of any status.
func (s *Store) CountProducts(ctx context.Context) (int, error) {
	var n int
	if err := s.readRow(ctx, `SELECT count(*) FROM products`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count products: %w", err)
	}
	return n, nil
}

const variantColumns = `id, product_id, sku, options, price, currency, on_hand, reserved, sold, position`

func scanVariant(row interface{ Scan(...any) error }) (catalog.Variant, error) {
	var (
		v       catalog.Variant
		options string
	)
	err := row.Scan(&v.ID, &v.ProductID, &v.SKU, &options, &v.Price.Amount, &v.Price.Currency,
		&v.OnHand, &v.Reserved, &v.Sold, &v.Position)
	if err != nil {
		return catalog.Variant{}, err
	}
	if err := json.Unmarshal([]byte(options), &v.Options); err != nil {
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
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var ok bool
		if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM products WHERE id = ?)`, productID).Scan(&ok); err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("product %d: %w", productID, catalog.ErrNotFound)
		}
		err := scanInto(&out, tx.QueryRowContext(ctx, insertVariant+` RETURNING `+variantColumns, variantArgs(productID, v)...))
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

func scanInto(v *catalog.Variant, row *sql.Row) error {
	var err error
	*v, err = scanVariant(row)
	return err
}

// UpdateVariant changes price, options and position of the variant with
// v.SKU; stock is left alone.
func (s *Store) UpdateVariant(ctx context.Context, v catalog.Variant) (catalog.Variant, error) {
	if err := v.Validate(); err != nil {
		return catalog.Variant{}, err
	}
	var out catalog.Variant
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		err := scanInto(&out, tx.QueryRowContext(ctx, `
			UPDATE variants SET options = ?, price = ?, currency = ?, position = ?
			WHERE sku = ?
			RETURNING `+variantColumns,
			jsonArray(v.Options), v.Price.Amount, v.Price.Currency, v.Position, v.SKU))
		if errors.Is(err, sql.ErrNoRows) {
			return catalog.ErrNotFound
		}
		return err
	})
	if err != nil {
		return catalog.Variant{}, fmt.Errorf("update variant %q: %w", v.SKU, err)
	}
	return out, nil
}

// VariantBySKU returns one variant.
func (s *Store) VariantBySKU(ctx context.Context, sku string) (catalog.Variant, error) {
	v, err := scanVariant(s.readRow(ctx, `SELECT `+variantColumns+` FROM variants WHERE sku = ?`, sku))
	if errors.Is(err, sql.ErrNoRows) {
		return catalog.Variant{}, fmt.Errorf("variant %q: %w", sku, catalog.ErrNotFound)
	}
	if err != nil {
		return catalog.Variant{}, fmt.Errorf("variant %q: %w", sku, err)
	}
	return v, nil
}

// SetStock sets on hand for sku. The reserved+sold check is part of the
// UPDATE, so a reservation committed a moment earlier cannot slip between a
// read and the write.
func (s *Store) SetStock(ctx context.Context, sku string, onHand int64) (catalog.Variant, error) {
	if onHand < 0 {
		return catalog.Variant{}, catalog.Invalidf("variant %s on_hand: must not be negative", sku)
	}
	var out catalog.Variant
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		err := scanInto(&out, tx.QueryRowContext(ctx, `
			UPDATE variants SET on_hand = ?
			WHERE sku = ? AND reserved + sold <= ?
			RETURNING `+variantColumns, onHand, sku, onHand))
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		// Nothing updated: say why. The write lock is held, so this read
		// sees what the UPDATE saw.
		var reserved, sold int64
		err = tx.QueryRowContext(ctx, `SELECT reserved, sold FROM variants WHERE sku = ?`, sku).Scan(&reserved, &sold)
		if errors.Is(err, sql.ErrNoRows) {
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
