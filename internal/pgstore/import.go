package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/surge-commerce/surge/internal/catalog"
)

// ImportCatalog stores many categories and products in one transaction,
// all or nothing. Category ParentID and product CategoryID refer to
// positions+1 in cats; a parent must come before its children. Everything
// is validated before the transaction starts, so bad input holds no locks.
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

	err := s.inTx(ctx, func(tx pgx.Tx) error {
		// Per-row triggers would index each product and re-summarize it
		// after each variant; set-based statements at the end do the same
		// work many times faster. The setting lasts until the transaction
		// ends and is seen by this transaction's triggers alone.
		if _, err := tx.Exec(ctx, `SELECT set_config('surge.bulk_import', 'on', true)`); err != nil {
			return err
		}

		catIDs := make([]int64, len(cats)+1) // input position+1 -> stored ID; [0] stays 0 for "no parent"
		for i, c := range cats {
			err := tx.QueryRow(ctx, `
				INSERT INTO categories (parent_id, slug, name, description, position)
				VALUES (nullif($1::bigint, 0), $2, $3, $4, $5)
				RETURNING id`, catIDs[c.ParentID], c.Slug, c.Name, c.Description, c.Position).Scan(&catIDs[i+1])
			if isUnique(err) {
				return fmt.Errorf("category %q: slug already used: %w", c.Slug, catalog.ErrConflict)
			}
			if err != nil {
				return fmt.Errorf("category %q: %w", c.Slug, err)
			}
		}

		// Product IDs are drawn from the identity's sequence up front, so
		// products and variants can both be sent with COPY.
		ids := make([]int64, 0, len(products))
		rows, err := tx.Query(ctx, `SELECT nextval(pg_get_serial_sequence('products', 'id')) FROM generate_series(1, $1::int)`, len(products))
		if err != nil {
			return err
		}
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}

		productRows := make([][]any, len(products))
		var variantRows [][]any
		for i, p := range products {
			p.CategoryID = catIDs[p.CategoryID]
			if p.CreatedAt.IsZero() {
				p.CreatedAt = now
			}
			if p.UpdatedAt.IsZero() {
				p.UpdatedAt = p.CreatedAt
			}
			productRows[i] = append([]any{ids[i]}, productArgs(p)...)
			for _, v := range p.Variants {
				variantRows = append(variantRows, variantArgs(ids[i], v))
			}
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"products"},
			[]string{"id", "slug", "name", "description", "status", "category_id", "images", "attributes", "created_at", "updated_at"},
			pgx.CopyFromRows(productRows)); err != nil {
			return conflict("products", err)
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"variants"},
			[]string{"product_id", "sku", "options", "price", "currency", "on_hand", "position"},
			pgx.CopyFromRows(variantRows)); err != nil {
			return conflict("variants", err)
		}
		if len(ids) == 0 {
			return nil
		}

		if _, err := tx.Exec(ctx, `
			UPDATE products p SET
				price_from = coalesce((SELECT min(price) FROM variants WHERE product_id = p.id), 0),
				currency = coalesce((SELECT currency FROM variants WHERE product_id = p.id
				                     ORDER BY price, position, id LIMIT 1), ''),
				in_stock = EXISTS (SELECT 1 FROM variants WHERE product_id = p.id
				                   AND on_hand > reserved + sold),
				search = product_search_vector(p.name,
					(SELECT name FROM categories WHERE id = p.category_id), p.description)
			WHERE p.id = ANY($1)`, ids); err != nil {
			return fmt.Errorf("summarize and index products: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("import catalog: %w", err)
	}
	return nil
}

// conflict turns a unique violation from COPY into ErrConflict naming the
// duplicate, which PostgreSQL reports as "Key (slug)=(x) already exists."
func conflict(table string, err error) error {
	if pe, ok := errors.AsType[*pgconn.PgError](err); ok && pe.Code == codeUniqueViolation {
		return fmt.Errorf("%s: %s: %w", table, pe.Detail, catalog.ErrConflict)
	}
	return fmt.Errorf("%s: %w", table, err)
}
