package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/surge-commerce/surge/internal/catalog"
)

// ImportCatalog stores many categories and products in one write
// transaction, all or nothing. Category ParentID and product CategoryID
// refer to positions+1 in cats; a parent must come before its children.
// Everything is validated before the transaction starts, so bad input costs
// no lock time.
func (s *Store) ImportCatalog(ctx context.Context, cats []catalog.Category, products []catalog.Product) error {
	if err := catalog.ValidateImport(cats, products); err != nil {
		return err
	}
	now := s.now()
	for i := range products {
		p := &products[i]
		if err := checkTimes(*p); err != nil {
			return fmt.Errorf("import product %d: %w", i+1, err)
		}
	}

	err := s.inTx(ctx, func(tx *sql.Tx) error {
		// Per-row triggers would index each product and re-summarize it
		// after each variant; set-based statements at the end do the same
		// work several times faster. Triggers are schema, and schema changes
		// are transactional: nobody ever sees them missing.
		restore, err := suspendTriggers(ctx, tx, "products_search_insert", "variants_summary_insert")
		if err != nil {
			return err
		}
		var firstID int64
		if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(id), 0) + 1 FROM products`).Scan(&firstID); err != nil {
			return err
		}

		insCat, err := tx.PrepareContext(ctx, `
			INSERT INTO categories (parent_id, slug, name, description, position)
			VALUES (nullif(?, 0), ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer insCat.Close()
		catIDs := make([]int64, len(cats)+1) // input position+1 -> stored ID; [0] stays 0 for "no parent"
		for i, c := range cats {
			res, err := insCat.ExecContext(ctx, catIDs[c.ParentID], c.Slug, c.Name, c.Description, c.Position)
			if isUnique(err) {
				return fmt.Errorf("category %q: slug already used: %w", c.Slug, catalog.ErrConflict)
			}
			if err != nil {
				return fmt.Errorf("category %q: %w", c.Slug, err)
			}
			if catIDs[i+1], err = res.LastInsertId(); err != nil {
				return err
			}
		}

		insProduct, err := tx.PrepareContext(ctx, insertProduct)
		if err != nil {
			return err
		}
		defer insProduct.Close()
		insVariant, err := tx.PrepareContext(ctx, insertVariant)
		if err != nil {
			return err
		}
		defer insVariant.Close()
		for _, p := range products {
			if err := ctx.Err(); err != nil {
				return err
			}
			p.CategoryID = catIDs[p.CategoryID]
			if p.CreatedAt.IsZero() {
				p.CreatedAt = now
			}
			if p.UpdatedAt.IsZero() {
				p.UpdatedAt = p.CreatedAt
			}
			res, err := insProduct.ExecContext(ctx, productArgs(p)...)
			if isUnique(err) {
				return fmt.Errorf("product %q: slug already used: %w", p.Slug, catalog.ErrConflict)
			}
			if err != nil {
				return fmt.Errorf("product %q: %w", p.Slug, err)
			}
			id, err := res.LastInsertId()
			if err != nil {
				return err
			}
			for _, v := range p.Variants {
				_, err := insVariant.ExecContext(ctx, variantArgs(id, v)...)
				if isUnique(err) {
					return fmt.Errorf("product %q: sku %q already used: %w", p.Slug, v.SKU, catalog.ErrConflict)
				}
				if err != nil {
					return fmt.Errorf("product %q sku %q: %w", p.Slug, v.SKU, err)
				}
			}
		}

		if _, err := tx.ExecContext(ctx, `
			UPDATE products SET
				price_from = coalesce((SELECT min(price) FROM variants WHERE product_id = products.id), 0),
				currency = coalesce((SELECT currency FROM variants WHERE product_id = products.id
				                     ORDER BY price, position, id LIMIT 1), ''),
				in_stock = EXISTS (SELECT 1 FROM variants WHERE product_id = products.id
				                   AND on_hand > reserved + sold)
			WHERE id >= ?`, firstID); err != nil {
			return fmt.Errorf("summarize products: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO product_search (rowid, name, description, category)
			SELECT p.id, p.name, p.description, c.name
			FROM products p JOIN categories c ON c.id = p.category_id
			WHERE p.id >= ?`, firstID); err != nil {
			return fmt.Errorf("index products: %w", err)
		}
		return restore()
	})
	if err != nil {
		return fmt.Errorf("import catalog: %w", err)
	}
	return nil
}

// suspendTriggers drops the named triggers in tx and returns a function that
// recreates them from their stored definitions, so the definitions stay in
// the migrations alone. Call it before tx commits.
func suspendTriggers(ctx context.Context, tx *sql.Tx, names ...string) (restore func() error, err error) {
	defs := make([]string, len(names))
	for i, name := range names {
		if err := tx.QueryRowContext(ctx, `SELECT sql FROM sqlite_schema WHERE type = 'trigger' AND name = ?`, name).Scan(&defs[i]); err != nil {
			return nil, fmt.Errorf("trigger %s: %w", name, err)
		}
		if _, err := tx.ExecContext(ctx, `DROP TRIGGER `+name); err != nil {
			return nil, err
		}
	}
	return func() error {
		for _, def := range defs {
			if _, err := tx.ExecContext(ctx, def); err != nil {
				return err
			}
		}
		return nil
	}, nil
}
