package sqlitestore

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/surge-commerce/surge/internal/cart"
	"github.com/surge-commerce/surge/internal/catalog"
	"github.com/surge-commerce/surge/internal/customer"
	"github.com/surge-commerce/surge/internal/drop"
	"github.com/surge-commerce/surge/internal/money"
	"github.com/surge-commerce/surge/internal/session"
)

var (
	_ cart.Store    = (*Store)(nil)
	_ session.Store = (*Store)(nil)
)

// CreateCustomer stores a new account; the email must be normalized.
func (s *Store) CreateCustomer(ctx context.Context, c customer.Customer) (customer.Customer, error) {
	c.CreatedAt = s.now().UTC()
	err := s.write(ctx, func(tx wtx) error {
		res, err := tx.Exec(`INSERT INTO customers (email, name, password_hash, created_at) VALUES (?, ?, ?, ?)`,
			c.Email, c.Name, c.PasswordHash, c.CreatedAt.UnixNano())
		if isUnique(err) {
			return customer.ErrEmailTaken
		}
		if err != nil {
			return err
		}
		c.ID, err = res.LastInsertId()
		return err
	})
	if err != nil {
		return customer.Customer{}, fmt.Errorf("create customer: %w", err)
	}
	return c, nil
}

// CustomerByEmail finds an account by normalized email.
func (s *Store) CustomerByEmail(ctx context.Context, email string) (customer.Customer, error) {
	return s.customer(ctx, `email = ?`, email)
}

// CustomerByID finds an account.
func (s *Store) CustomerByID(ctx context.Context, id int64) (customer.Customer, error) {
	return s.customer(ctx, `id = ?`, id)
}

func (s *Store) customer(ctx context.Context, where string, arg any) (customer.Customer, error) {
	var c customer.Customer
	var created int64
	err := s.readRow(ctx, `SELECT id, email, name, password_hash, created_at FROM customers WHERE `+where, arg).
		Scan(&c.ID, &c.Email, &c.Name, &c.PasswordHash, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return c, customer.ErrNotFound
	}
	if err != nil {
		return c, fmt.Errorf("customer: %w", err)
	}
	c.CreatedAt = time.Unix(0, created).UTC()
	return c, nil
}

// CreateSession stores a session.
func (s *Store) CreateSession(ctx context.Context, se session.Session) error {
	return s.write(ctx, func(tx wtx) error {
		_, err := tx.Exec(`INSERT INTO sessions (id, customer_id, cart_id, csrf, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)`,
			se.ID, nullID(se.CustomerID), se.CartID, se.CSRF, se.CreatedAt.UnixNano(), se.ExpiresAt.UnixNano())
		return err
	})
}

// Session loads a live session.
func (s *Store) Session(ctx context.Context, id string) (session.Session, error) {
	var se session.Session
	var cust sql.NullInt64
	var created, expires int64
	err := s.readRow(ctx, `SELECT id, customer_id, cart_id, csrf, created_at, expires_at FROM sessions WHERE id = ? AND expires_at > ?`,
		id, s.now().UnixNano()).Scan(&se.ID, &cust, &se.CartID, &se.CSRF, &created, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return se, session.ErrNotFound
	}
	if err != nil {
		return se, fmt.Errorf("session: %w", err)
	}
	se.CustomerID = cust.Int64
	se.CreatedAt, se.ExpiresAt = time.Unix(0, created).UTC(), time.Unix(0, expires).UTC()
	return se, nil
}

// UpdateSession saves the customer and cart of a session.
func (s *Store) UpdateSession(ctx context.Context, se session.Session) error {
	return s.write(ctx, func(tx wtx) error {
		res, err := tx.Exec(`UPDATE sessions SET customer_id = ?, cart_id = ? WHERE id = ?`, nullID(se.CustomerID), se.CartID, se.ID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return session.ErrNotFound
		}
		return nil
	})
}

// DeleteSession removes a session (sign-out), and prunes expired ones
// while it holds the write lock anyway.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	return s.write(ctx, func(tx wtx) error {
		if _, err := tx.Exec(`DELETE FROM sessions WHERE id = ? OR expires_at <= ?`, id, s.now().UnixNano()); err != nil {
			return fmt.Errorf("delete session: %w", err)
		}
		return nil
	})
}

func nullID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

// CreateCart makes an empty cart.
func (s *Store) CreateCart(ctx context.Context, customerID int64) (string, error) {
	id, err := randomID("cart_")
	if err != nil {
		return "", err
	}
	now := s.now().UnixNano()
	err = s.write(ctx, func(tx wtx) error {
		_, err := tx.Exec(`INSERT INTO carts (id, customer_id, created_at, updated_at) VALUES (?, ?, ?, ?)`, id, nullID(customerID), now, now)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("create cart: %w", err)
	}
	return id, nil
}

// CartLines returns the lines of a cart, oldest first.
func (s *Store) CartLines(ctx context.Context, cartID string) ([]cart.Line, error) {
	rows, err := s.readRows(ctx, `SELECT sku, quantity FROM cart_items WHERE cart_id = ? ORDER BY added_at, sku`, cartID)
	if err != nil {
		return nil, fmt.Errorf("cart lines: %w", err)
	}
	defer rows.Close()
	var out []cart.Line
	for rows.Next() {
		var l cart.Line
		if err := rows.Scan(&l.SKU, &l.Quantity); err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

// AddCartItem adds to a line, capped at cart.MaxQuantity per line and
// cart.MaxLines per cart.
func (s *Store) AddCartItem(ctx context.Context, cartID, sku string, qty int64) (int64, error) {
	var total int64
	err := s.write(ctx, func(tx wtx) error {
		var cur int64
		err := tx.QueryRow(`SELECT quantity FROM cart_items WHERE cart_id = ? AND sku = ?`, cartID, sku).Scan(&cur)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			var lines int
			if err := tx.QueryRow(`SELECT count(*) FROM cart_items WHERE cart_id = ?`, cartID).Scan(&lines); err != nil {
				return err
			}
			if lines >= cart.MaxLines {
				return fmt.Errorf("%w: a cart holds at most %d different items", cart.ErrInvalid, cart.MaxLines)
			}
		case err != nil:
			return err
		}
		total = cur + qty
		if total > cart.MaxQuantity {
			return fmt.Errorf("%w: at most %d of one item per order", cart.ErrInvalid, cart.MaxQuantity)
		}
		if err := checkDropLimit(tx, cartID, sku, total); err != nil {
			return err
		}
		now := s.now().UnixNano()
		if _, err := tx.Exec(`INSERT INTO cart_items (cart_id, sku, quantity, added_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (cart_id, sku) DO UPDATE SET quantity = excluded.quantity`, cartID, sku, total, now); err != nil {
			if strings.Contains(err.Error(), "FOREIGN KEY") {
				return fmt.Errorf("%w: no such cart", cart.ErrInvalid)
			}
			return err
		}
		_, err = tx.Exec(`UPDATE carts SET updated_at = ? WHERE id = ?`, now, cartID)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("add %s to cart: %w", sku, err)
	}
	return total, nil
}

// SetCartItem sets or removes a line. Raising a line of an open drop's SKU
// past the drop's per-customer limit (counting the drop's other SKUs in
// the cart) is drop.ErrOverLimit; lowering one always works.
func (s *Store) SetCartItem(ctx context.Context, cartID, sku string, qty int64) error {
	err := s.write(ctx, func(tx wtx) error {
		var cur int64
		err := tx.QueryRow(`SELECT quantity FROM cart_items WHERE cart_id = ? AND sku = ?`, cartID, sku).Scan(&cur)
		if errors.Is(err, sql.ErrNoRows) {
			return cart.ErrNotInCart
		}
		if err != nil {
			return err
		}
		if qty > cur {
			if err := checkDropLimit(tx, cartID, sku, qty); err != nil {
				return err
			}
		}
		var res sql.Result
		if qty == 0 {
			res, err = tx.Exec(`DELETE FROM cart_items WHERE cart_id = ? AND sku = ?`, cartID, sku)
		} else {
			res, err = tx.Exec(`UPDATE cart_items SET quantity = ? WHERE cart_id = ? AND sku = ?`, qty, cartID, sku)
		}
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return cart.ErrNotInCart
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("set %s in cart: %w", sku, err)
	}
	return nil
}

// MergeCarts moves the lines of from into into and deletes from.
func (s *Store) MergeCarts(ctx context.Context, from, into string) error {
	if from == into || from == "" {
		return nil
	}
	err := s.write(ctx, func(tx wtx) error {
		if _, err := tx.Exec(`INSERT INTO cart_items (cart_id, sku, quantity, added_at)
			SELECT ?, sku, min(quantity, ?), added_at FROM cart_items WHERE cart_id = ? AND true
			ON CONFLICT (cart_id, sku) DO UPDATE SET quantity = min(cart_items.quantity + excluded.quantity, ?)`,
			into, cart.MaxQuantity, from, cart.MaxQuantity); err != nil {
			return err
		}
		if _, err := tx.Exec(`DELETE FROM carts WHERE id = ?`, from); err != nil {
			return err
		}
		return clampDropLines(tx, into)
	})
	if err != nil {
		return fmt.Errorf("merge carts: %w", err)
	}
	return nil
}

// checkDropLimit refuses to leave sku's line in cartID at qty when sku is
// sold by an open drop and the cart would then hold more of the drop's
// SKUs than its per-customer limit: the cart never holds more than its
// owner may buy, whichever route changes it.
func checkDropLimit(tx wtx, cartID, sku string, qty int64) error {
	var limit, others int64
	err := tx.QueryRow(`SELECT d.per_customer_limit, coalesce((SELECT sum(c.quantity) FROM cart_items c
			JOIN drop_items o ON o.sku = c.sku WHERE o.drop_id = d.id AND c.cart_id = ? AND c.sku <> ?), 0)
		FROM drop_items i JOIN drops d ON d.id = i.drop_id WHERE i.sku = ? AND d.closed = 0`, cartID, sku, sku).Scan(&limit, &others)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("drop limit of %s: %w", sku, err)
	}
	if others+qty > limit {
		return fmt.Errorf("%w: %d per customer, and your cart would hold %d", drop.ErrOverLimit, limit, others+qty)
	}
	return nil
}

// clampDropLines lowers the lines of cartID that take it past an open
// drop's per-customer limit (after a merge), keeping the oldest lines.
func clampDropLines(tx wtx, cartID string) error {
	rows, err := tx.Query(`SELECT c.sku, c.quantity, d.id, d.per_customer_limit FROM cart_items c
		JOIN drop_items i ON i.sku = c.sku JOIN drops d ON d.id = i.drop_id AND d.closed = 0
		WHERE c.cart_id = ? ORDER BY c.added_at, c.sku`, cartID)
	if err != nil {
		return fmt.Errorf("drop lines: %w", err)
	}
	var cuts []cart.Line // the new quantity of each line that must shrink
	held := map[string]int64{}
	for rows.Next() {
		var sku, dropID string
		var qty, limit int64
		if err := rows.Scan(&sku, &qty, &dropID, &limit); err != nil {
			rows.Close()
			return err
		}
		keep := min(qty, max(0, limit-held[dropID]))
		held[dropID] += keep
		if keep < qty {
			cuts = append(cuts, cart.Line{SKU: sku, Quantity: keep})
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, l := range cuts {
		q, args := `UPDATE cart_items SET quantity = ? WHERE cart_id = ? AND sku = ?`, []any{l.Quantity, cartID, l.SKU}
		if l.Quantity == 0 {
			q, args = `DELETE FROM cart_items WHERE cart_id = ? AND sku = ?`, args[1:]
		}
		if _, err := tx.Exec(q, args...); err != nil {
			return err
		}
	}
	return nil
}

// CustomerCart returns the newest cart of a customer.
func (s *Store) CustomerCart(ctx context.Context, customerID int64) (string, error) {
	var id string
	err := s.readRow(ctx, `SELECT id FROM carts WHERE customer_id = ? ORDER BY updated_at DESC LIMIT 1`, customerID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("customer cart: %w", err)
	}
	return id, nil
}

// AssignCart gives a guest cart to a customer (at sign-up or sign-in).
func (s *Store) AssignCart(ctx context.Context, cartID string, customerID int64) error {
	return s.write(ctx, func(tx wtx) error {
		_, err := tx.Exec(`UPDATE carts SET customer_id = ? WHERE id = ?`, customerID, cartID)
		return err
	})
}

// Offers returns current price, stock and names for skus.
func (s *Store) Offers(ctx context.Context, skus []string) (map[string]cart.Offer, error) {
	out := make(map[string]cart.Offer, len(skus))
	if len(skus) == 0 {
		return out, nil
	}
	q := `SELECT v.sku, p.slug, p.name, v.options, v.price, v.currency, v.on_hand - v.reserved - v.sold, p.status
		FROM variants v JOIN products p ON p.id = v.product_id WHERE v.sku IN (?` + strings.Repeat(",?", len(skus)-1) + `)`
	args := make([]any, len(skus))
	for i, sku := range skus {
		args[i] = sku
	}
	rows, err := s.readRows(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("offers: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var o cart.Offer
		var opts, status string
		var price int64
		var cur string
		if err := rows.Scan(&o.SKU, &o.ProductSlug, &o.ProductName, &opts, &price, &cur, &o.Available, &status); err != nil {
			return nil, err
		}
		var options []catalog.Option
		_ = json.Unmarshal([]byte(opts), &options) // written by this store as JSON
		o.VariantTitle = catalog.Variant{Options: options}.Title()
		o.Price = money.Money{Amount: price, Currency: cur}
		o.Active = status == string(catalog.StatusActive)
		out[o.SKU] = o
	}
	return out, rows.Err()
}

func randomID(prefix string) (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random id: %w", err)
	}
	return prefix + hex.EncodeToString(b), nil
}
