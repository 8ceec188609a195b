package pgstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/surge-commerce/surge/internal/cart"
	"github.com/surge-commerce/surge/internal/catalog"
	"github.com/surge-commerce/surge/internal/customer"
	"github.com/surge-commerce/surge/internal/drop"
	"github.com/surge-commerce/surge/internal/money"
	"github.com/surge-commerce/surge/internal/session"
)

// CreateCustomer stores a new account; the email must be normalized.
func (s *Store) CreateCustomer(ctx context.Context, c customer.Customer) (customer.Customer, error) {
	c.CreatedAt = s.now().UTC()
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `INSERT INTO customers (email, name, password_hash, created_at) VALUES ($1, $2, $3, $4) RETURNING id`,
			c.Email, c.Name, c.PasswordHash, c.CreatedAt).Scan(&c.ID)
		if isUnique(err) {
			return customer.ErrEmailTaken
		}
		return err
	})
	if err != nil {
		return customer.Customer{}, fmt.Errorf("create customer: %w", err)
	}
	return c, nil
}

// CustomerByEmail finds an account by normalized email, on the primary: it
// is read at sign-in, right after sign-up.
func (s *Store) CustomerByEmail(ctx context.Context, email string) (customer.Customer, error) {
	if !storable(email) {
		return customer.Customer{}, customer.ErrNotFound
	}
	return s.customer(ctx, `email = $1`, email)
}

// CustomerByID finds an account, on the primary.
func (s *Store) CustomerByID(ctx context.Context, id int64) (customer.Customer, error) {
	return s.customer(ctx, `id = $1`, id)
}

func (s *Store) customer(ctx context.Context, where string, arg any) (customer.Customer, error) {
	var c customer.Customer
	err := s.primary.QueryRow(ctx, `SELECT id, email, name, password_hash, created_at FROM customers WHERE `+where, arg).
		Scan(&c.ID, &c.Email, &c.Name, &c.PasswordHash, &c.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return customer.Customer{}, customer.ErrNotFound
	}
	if err != nil {
		return customer.Customer{}, fmt.Errorf("customer: %w", err)
	}
	return c, nil
}

// CreateSession stores a session.
func (s *Store) CreateSession(ctx context.Context, se session.Session) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO sessions (id, customer_id, cart_id, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)`,
			se.ID, nullID(se.CustomerID), se.CartID, se.CSRF, se.CreatedAt, se.ExpiresAt)
		return err
	})
	if err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	return nil
}

// Session loads a live session, on the primary: a session is read on the
// request right after the one that created or changed it.
func (s *Store) Session(ctx context.Context, id string) (session.Session, error) {
	if !storable(id) {
		return session.Session{}, session.ErrNotFound
	}
	var se session.Session
	err := s.primary.QueryRow(ctx, `SELECT id, coalesce(customer_id, 0), cart_id, csrf, created_at, expires_at
		FROM sessions WHERE id = $1 AND expires_at > $2`, id, s.now()).
		Scan(&se.ID, &se.CustomerID, &se.CartID, &se.CSRF, &se.CreatedAt, &se.ExpiresAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return session.Session{}, session.ErrNotFound
	}
	if err != nil {
		return session.Session{}, fmt.Errorf("session: %w", err)
	}
	return se, nil
}

// UpdateSession saves the customer and cart of a session.
func (s *Store) UpdateSession(ctx context.Context, se session.Session) error {
	if !storable(se.ID) {
		return session.ErrNotFound
	}
	return s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE sessions SET customer_id = $1, cart_id = $2 WHERE id = $3`, nullID(se.CustomerID), se.CartID, se.ID)
		if err != nil {
			return fmt.Errorf("update session: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return session.ErrNotFound
		}
		return nil
	})
}

// DeleteSession removes a session (sign-out), and prunes expired ones
// while it is writing anyway.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	if !storable(id) {
		id = ""
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `DELETE FROM sessions WHERE id = $1 OR expires_at <= $2`, id, s.now())
		return err
	})
	if err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// nullID stores a zero ID as NULL.
func nullID(id int64) *int64 {
	if id == 0 {
		return nil
	}
	return &id
}

// CreateCart makes an empty cart.
func (s *Store) CreateCart(ctx context.Context, customerID int64) (string, error) {
	id, err := randomID("cart_")
	if err != nil {
		return "", err
	}
	now := s.now()
	// One statement: atomic by itself, one round trip without BEGIN and
	// COMMIT around it.
	err = retry(ctx, func() error {
		_, err := s.primary.Exec(ctx, `INSERT INTO carts (id, customer_id, created_at, updated_at) VALUES ($1, $2, $3, $3)`, id, nullID(customerID), now)
		return err
	})
	if err == nil {
		s.noteWrite(ctx)
	}
	if err != nil {
		return "", fmt.Errorf("create cart: %w", err)
	}
	return id, nil
}

// CartLines returns the lines of a cart, oldest first, from the primary:
// the cart page follows the add that changed it.
func (s *Store) CartLines(ctx context.Context, cartID string) ([]cart.Line, error) {
	if !storable(cartID) {
		return nil, nil
	}
	rows, err := s.primary.Query(ctx, `SELECT sku, quantity FROM cart_items WHERE cart_id = $1 ORDER BY added_at, sku`, cartID)
	if err != nil {
		return nil, fmt.Errorf("cart lines: %w", err)
	}
	defer rows.Close()
	var out []cart.Line
	for rows.Next() {
		var l cart.Line
		if err := rows.Scan(&l.SKU, &l.Quantity); err != nil {
			return nil, fmt.Errorf("cart lines: %w", err)
		}
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cart lines: %w", err)
	}
	return out, nil
}

// AddCartItem adds to a line, capped at cart.MaxQuantity per line and
// cart.MaxLines per cart. It locks the cart row first, so concurrent adds
// to one cart count each other's lines and quantities.
func (s *Store) AddCartItem(ctx context.Context, cartID, sku string, qty int64) (int64, error) {
	if !storable(cartID) || !storable(sku) {
		return 0, fmt.Errorf("add %s to cart: %w: no such cart or sku", sku, cart.ErrInvalid)
	}
	// Two round trips: the cart row's lock and every read in the first
	// (each read runs after the lock, in order, and sees what the adds
	// before committed), the writes and the COMMIT in the second.
	var (
		total, cur, limit, others int64
		exists, present, inDrop   bool
		lines                     int
	)
	err := s.inTwoTrips(ctx, func(b *pgx.Batch) {
		exists, present, inDrop, cur, lines, limit, others = false, false, false, 0, 0, 0, 0
		b.Queue(`SELECT EXISTS (SELECT 1 FROM carts WHERE id = $1 FOR UPDATE)`, cartID).QueryRow(func(row pgx.Row) error {
			return row.Scan(&exists)
		})
		b.Queue(`SELECT quantity FROM cart_items WHERE cart_id = $1 AND sku = $2`, cartID, sku).QueryRow(func(row pgx.Row) error {
			err := row.Scan(&cur)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			present = err == nil
			return err
		})
		b.Queue(`SELECT count(*) FROM cart_items WHERE cart_id = $1 AND sku <> $2`, cartID, sku).QueryRow(func(row pgx.Row) error {
			return row.Scan(&lines)
		})
		queueDropLimit(b, cartID, sku, &inDrop, &limit, &others)
	}, func(b *pgx.Batch) error {
		if !present && lines >= cart.MaxLines {
			return fmt.Errorf("%w: a cart holds at most %d different items", cart.ErrInvalid, cart.MaxLines)
		}
		total = cur + qty
		if total > cart.MaxQuantity {
			return fmt.Errorf("%w: at most %d of one item per order", cart.ErrInvalid, cart.MaxQuantity)
		}
		if !exists {
			return fmt.Errorf("%w: no such cart", cart.ErrInvalid)
		}
		if inDrop && others+total > limit {
			return fmt.Errorf("%w: %d per customer, and your cart would hold %d", drop.ErrOverLimit, limit, others+total)
		}
		now := s.now()
		b.Queue(`INSERT INTO cart_items (cart_id, sku, quantity, added_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (cart_id, sku) DO UPDATE SET quantity = excluded.quantity`, cartID, sku, total, now)
		b.Queue(`UPDATE carts SET updated_at = $1 WHERE id = $2`, now, cartID)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("add %s to cart: %w", sku, err)
	}
	return total, nil
}

// SetCartItem sets or removes a line. Raising a line of an open drop's SKU
// past the drop's per-customer limit (counting the drop's other SKUs in
// the cart) is drop.ErrOverLimit; lowering one always works. It locks the
// cart row first, as AddCartItem does.
func (s *Store) SetCartItem(ctx context.Context, cartID, sku string, qty int64) error {
	if !storable(cartID) || !storable(sku) {
		return fmt.Errorf("set %s in cart: %w", sku, cart.ErrNotInCart)
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var cur int64
		err := tx.QueryRow(ctx, `SELECT i.quantity FROM carts c JOIN cart_items i ON i.cart_id = c.id
			WHERE c.id = $1 AND i.sku = $2 FOR UPDATE OF c`, cartID, sku).Scan(&cur)
		if errors.Is(err, pgx.ErrNoRows) {
			return cart.ErrNotInCart
		}
		if err != nil {
			return err
		}
		if qty > cur {
			if err := checkDropLimit(ctx, tx, cartID, sku, qty); err != nil {
				return err
			}
		}
		var q string
		args := []any{cartID, sku}
		if qty == 0 {
			q = `DELETE FROM cart_items WHERE cart_id = $1 AND sku = $2`
		} else {
			q = `UPDATE cart_items SET quantity = $3 WHERE cart_id = $1 AND sku = $2`
			args = append(args, qty)
		}
		tag, err := tx.Exec(ctx, q, args...)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
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
	if from == into || from == "" || !storable(from) {
		return nil
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT 1 FROM carts WHERE id = $1 FOR UPDATE`, into); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO cart_items (cart_id, sku, quantity, added_at)
			SELECT $1, sku, least(quantity, $2), added_at FROM cart_items WHERE cart_id = $3
			ON CONFLICT (cart_id, sku) DO UPDATE SET quantity = least(cart_items.quantity + excluded.quantity, $2)`,
			into, int64(cart.MaxQuantity), from); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM carts WHERE id = $1`, from); err != nil {
			return err
		}
		return clampDropLines(ctx, tx, into)
	})
	if err != nil {
		return fmt.Errorf("merge carts: %w", err)
	}
	return nil
}

// checkDropLimit refuses to leave sku's line in cartID at qty when sku is
// sold by an open drop and the cart would then hold more of the drop's
// SKUs than its per-customer limit: the cart never holds more than its
// owner may buy, whichever route changes it. The caller holds the cart
// row's lock.
// dropLimitSQL reads the per-customer limit of the open drop selling $2
// and how many of that drop's other SKUs cart $1 holds (no row when no
// open drop sells it).
const dropLimitSQL = `SELECT d.per_customer_limit, coalesce((SELECT sum(c.quantity) FROM cart_items c
			JOIN drop_items o ON o.sku = c.sku WHERE o.drop_id = d.id AND c.cart_id = $1 AND c.sku <> $2), 0)
		FROM drop_items i JOIN drops d ON d.id = i.drop_id WHERE i.sku = $2 AND NOT d.closed`

// queueDropLimit queues checkDropLimit's read: *inDrop says whether an
// open drop sells sku, *limit and *others what checkDropLimit compares.
func queueDropLimit(b *pgx.Batch, cartID, sku string, inDrop *bool, limit, others *int64) {
	b.Queue(dropLimitSQL, cartID, sku).QueryRow(func(row pgx.Row) error {
		err := row.Scan(limit, others)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("drop limit of %s: %w", sku, err)
		}
		*inDrop = true
		return nil
	})
}

func checkDropLimit(ctx context.Context, tx pgx.Tx, cartID, sku string, qty int64) error {
	var limit, others int64
	err := tx.QueryRow(ctx, dropLimitSQL, cartID, sku).Scan(&limit, &others)
	if errors.Is(err, pgx.ErrNoRows) {
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
func clampDropLines(ctx context.Context, tx pgx.Tx, cartID string) error {
	rows, err := tx.Query(ctx, `SELECT c.sku, c.quantity, d.id, d.per_customer_limit FROM cart_items c
		JOIN drop_items i ON i.sku = c.sku JOIN drops d ON d.id = i.drop_id AND NOT d.closed
		WHERE c.cart_id = $1 ORDER BY c.added_at, c.sku`, cartID)
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
		q, args := `UPDATE cart_items SET quantity = $3 WHERE cart_id = $1 AND sku = $2`, []any{cartID, l.SKU, l.Quantity}
		if l.Quantity == 0 {
			q, args = `DELETE FROM cart_items WHERE cart_id = $1 AND sku = $2`, args[:2]
		}
		if _, err := tx.Exec(ctx, q, args...); err != nil {
			return err
		}
	}
	return nil
}

// CustomerCart returns the newest cart of a customer, from the primary.
func (s *Store) CustomerCart(ctx context.Context, customerID int64) (string, error) {
	var id string
	err := s.primary.QueryRow(ctx, `SELECT id FROM carts WHERE customer_id = $1 ORDER BY updated_at DESC LIMIT 1`, customerID).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("customer cart: %w", err)
	}
	return id, nil
}

// AssignCart gives a guest cart to a customer (at sign-up or sign-in).
func (s *Store) AssignCart(ctx context.Context, cartID string, customerID int64) error {
	if !storable(cartID) {
		return nil
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE carts SET customer_id = $1 WHERE id = $2`, customerID, cartID)
		return err
	})
	if err != nil {
		return fmt.Errorf("assign cart: %w", err)
	}
	return nil
}

// Offers returns current price, stock and names for skus. It may read a
// replica: a price or stock figure a moment old is fine for showing a
// cart, and checkout's reservation decides on the primary. A SKU the
// replica does not know yet (created a moment ago) is looked up on the
// primary, so a new product can be added to a cart at once.
func (s *Store) Offers(ctx context.Context, skus []string) (map[string]cart.Offer, error) {
	out := make(map[string]cart.Offer, len(skus))
	keys := make([]string, 0, len(skus))
	for _, sku := range skus {
		if storable(sku) {
			keys = append(keys, sku)
		}
	}
	if len(keys) == 0 {
		return out, nil
	}
	onReplica := false
	err := s.reading(ctx, func(db querier) error {
		clear(out)
		onReplica = db != querier(s.primary)
		return offers(ctx, db, keys, out)
	})
	if err != nil {
		return nil, err
	}
	if len(out) < len(keys) && onReplica {
		var missing []string
		for _, k := range keys {
			if _, ok := out[k]; !ok {
				missing = append(missing, k)
			}
		}
		if err := offers(ctx, s.primary, missing, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// offers reads the offers of keys from q into out.
func offers(ctx context.Context, q querier, keys []string, out map[string]cart.Offer) error {
	rows, err := q.Query(ctx, `SELECT v.sku, p.slug, p.name, v.options, v.price, v.currency, v.on_hand - v.reserved - v.sold, p.status
		FROM variants v JOIN products p ON p.id = v.product_id WHERE v.sku = ANY($1)`, keys)
	if err != nil {
		return fmt.Errorf("offers: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			o      cart.Offer
			opts   []byte
			price  int64
			cur    string
			status string
		)
		if err := rows.Scan(&o.SKU, &o.ProductSlug, &o.ProductName, &opts, &price, &cur, &o.Available, &status); err != nil {
			return fmt.Errorf("offers: %w", err)
		}
		var options []catalog.Option
		_ = json.Unmarshal(opts, &options) // written by this store as JSON
		o.VariantTitle = catalog.Variant{Options: options}.Title()
		o.Price = money.Money{Amount: price, Currency: cur}
		o.Active = status == string(catalog.StatusActive)
		out[o.SKU] = o
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("offers: %w", err)
	}
	return nil
}

func randomID(prefix string) (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random id: %w", err)
	}
	return prefix + hex.EncodeToString(b), nil
}
