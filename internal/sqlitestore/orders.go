package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/surge-commerce/surge/internal/catalog"
	"github.com/surge-commerce/surge/internal/checkout"
	"github.com/surge-commerce/surge/internal/money"
	"github.com/surge-commerce/surge/internal/order"
	"github.com/surge-commerce/surge/internal/tracing"
)

var _ checkout.Store = (*Store)(nil)

// IdempotentOrder finds the order an idempotency key produced.
func (s *Store) IdempotentOrder(ctx context.Context, owner, key string) (string, string, error) {
	var id, hash string
	err := s.readRow(ctx, `SELECT order_id, request_hash FROM idempotency_keys WHERE owner = ? AND key = ?`, owner, key).Scan(&id, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", order.ErrNotFound
	}
	if err != nil {
		return "", "", fmt.Errorf("idempotency key: %w", err)
	}
	return id, hash, nil
}

// PlaceOrder reserves stock and records the order, its outbox event and its
// idempotency key in one transaction (see checkout.Store).
//
// Two buyers never both get the last unit: each reservation is one UPDATE
// whose WHERE clause demands the units be available, run by the single
// writer; the table's CHECK constraint backs it up.
func (s *Store) PlaceOrder(ctx context.Context, p checkout.Placement) (order.Order, bool, error) {
	o := p.Order
	replayed := false
	err := s.write(ctx, func(tx wtx) error {
		// A concurrent duplicate may have committed since the caller looked.
		var prevID, prevHash string
		err := tx.QueryRow(`SELECT order_id, request_hash FROM idempotency_keys WHERE owner = ? AND key = ?`, p.Owner, p.Key).Scan(&prevID, &prevHash)
		switch {
		case err == nil:
			if prevHash != p.RequestHash {
				return checkout.ErrIdempotencyMismatch
			}
			prev, err := loadOrder(tx, prevID)
			if err != nil {
				return err
			}
			o, replayed = prev, true
			return nil
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}

		var short []string
		for _, l := range o.Lines {
			res, err := tx.Exec(`UPDATE variants SET reserved = reserved + ?1 WHERE sku = ?2 AND on_hand - reserved - sold >= ?1`, l.Quantity, l.SKU)
			if err != nil {
				return fmt.Errorf("reserve %s: %w", l.SKU, err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				short = append(short, l.SKU)
			}
		}
		if len(short) > 0 {
			// The savepoint rollback undoes the lines that did reserve.
			return &checkout.SoldOutError{SKUs: short}
		}
		if err := tx.QueryRow(`SELECT coalesce(max(number), 1000) + 1 FROM orders`).Scan(&o.Number); err != nil {
			return err
		}
		addr, _ := json.Marshal(o.ShippingAddress)
		now := o.CreatedAt.UnixNano()
		if _, err := tx.Exec(`INSERT INTO orders (id, number, customer_id, email, status, currency, subtotal, tax, shipping, total,
			shipping_address, payment_method, card_last4, reserved_until, created_at, updated_at, access_token)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			o.ID, o.Number, nullID(o.CustomerID), o.Email, o.Status, o.Total.Currency, o.Subtotal.Amount, o.Tax.Amount,
			o.Shipping.Amount, o.Total.Amount, string(addr), o.PaymentMethod, o.CardLast4, o.ReservedUntil.UnixNano(), now, now, o.AccessToken); err != nil {
			return fmt.Errorf("insert order: %w", err)
		}
		for i, l := range o.Lines {
			if _, err := tx.Exec(`INSERT INTO order_lines (order_id, position, sku, product_name, variant_title, quantity, unit_price, line_total)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, o.ID, i, l.SKU, l.ProductName, l.VariantTitle, l.Quantity, l.UnitPrice.Amount, l.LineTotal.Amount); err != nil {
				return fmt.Errorf("insert order line: %w", err)
			}
			if _, err := tx.Exec(`INSERT INTO reservations (order_id, sku, quantity, status, expires_at) VALUES (?, ?, ?, 'held', ?)`,
				o.ID, l.SKU, l.Quantity, o.ReservedUntil.UnixNano()); err != nil {
				return fmt.Errorf("insert reservation: %w", err)
			}
		}
		if d := p.Drop; d != nil {
			if err := recordDropPurchase(tx, o.ID, d.DropID, d.Buyer, d.Quantity, d.Limit); err != nil {
				return err
			}
		}
		if err := recordTransition(tx, o.ID, "", o.Status, "checkout", o.CreatedAt, tracing.TraceParent(ctx)); err != nil {
			return err
		}
		if _, err := tx.Exec(`INSERT INTO idempotency_keys (owner, key, request_hash, order_id, created_at) VALUES (?, ?, ?, ?, ?)`,
			p.Owner, p.Key, p.RequestHash, o.ID, now); err != nil {
			return fmt.Errorf("record idempotency key: %w", err)
		}
		if p.CartID != "" {
			if _, err := tx.Exec(`DELETE FROM cart_items WHERE cart_id = ?`, p.CartID); err != nil {
				return fmt.Errorf("empty cart: %w", err)
			}
		}
		o.History = []order.Transition{{To: o.Status, Reason: "checkout", At: o.CreatedAt}}
		return nil
	})
	if err != nil {
		return order.Order{}, false, err
	}
	return o, replayed, nil
}

// recordTransition writes the transition row and the outbox event that
// announces the order's new status; traceparent is the trace the event
// continues ("" for none).
func recordTransition(tx wtx, id string, from, to order.Status, reason string, at time.Time, traceparent string) error {
	if _, err := tx.Exec(`INSERT INTO order_transitions (order_id, from_status, to_status, reason, at) VALUES (?, ?, ?, ?, ?)`,
		id, from, to, reason, at.UnixNano()); err != nil {
		return fmt.Errorf("record transition: %w", err)
	}
	subject := map[order.Status]string{order.StatusPendingPayment: order.SubjectCreated, order.StatusPaid: order.SubjectPaid,
		order.StatusPaymentFailed: order.SubjectFailed, order.StatusExpired: order.SubjectExpired, order.StatusCancelled: order.SubjectCancelled}[to]
	if subject == "" {
		return nil
	}
	data, _ := json.Marshal(order.Event{OrderID: id, Status: to, At: at.UnixNano()})
	evID, err := randomID("evt_")
	if err != nil {
		return err
	}
	if _, err := tx.Exec(`INSERT INTO outbox (id, subject, data, created_at, order_id, traceparent) VALUES (?, ?, ?, ?, ?, NULLIF(?, ''))`,
		evID, subject, data, at.UnixNano(), id, traceparent); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	return nil
}

// queryer is what loadOrder needs from a *sql.DB or *sql.Tx.
type queryer interface {
	QueryRow(query string, args ...any) *sql.Row
	Query(query string, args ...any) (*sql.Rows, error)
}

func loadOrder(q queryer, id string) (order.Order, error) {
	var o order.Order
	var cust sql.NullInt64
	var cur, addr string
	var sub, tax, ship, total, until, created, updated int64
	err := q.QueryRow(`SELECT id, number, customer_id, email, status, currency, subtotal, tax, shipping, total, shipping_address,
		payment_method, card_last4, reserved_until, created_at, updated_at, access_token FROM orders WHERE id = ?`, id).
		Scan(&o.ID, &o.Number, &cust, &o.Email, &o.Status, &cur, &sub, &tax, &ship, &total, &addr, &o.PaymentMethod, &o.CardLast4, &until, &created, &updated, &o.AccessToken)
	if errors.Is(err, sql.ErrNoRows) {
		return o, fmt.Errorf("order %s: %w", id, order.ErrNotFound)
	}
	if err != nil {
		return o, fmt.Errorf("load order %s: %w", id, err)
	}
	o.CustomerID = cust.Int64
	m := func(a int64) money.Money { return money.Money{Amount: a, Currency: cur} }
	o.Subtotal, o.Tax, o.Shipping, o.Total = m(sub), m(tax), m(ship), m(total)
	_ = json.Unmarshal([]byte(addr), &o.ShippingAddress) // written by PlaceOrder
	o.ReservedUntil, o.CreatedAt, o.UpdatedAt = fromNanos(until), fromNanos(created), fromNanos(updated)

	rows, err := q.Query(`SELECT sku, product_name, variant_title, quantity, unit_price, line_total FROM order_lines WHERE order_id = ? ORDER BY position`, id)
	if err != nil {
		return o, fmt.Errorf("order lines: %w", err)
	}
	for rows.Next() {
		var l order.Line
		var unit, lt int64
		if err := rows.Scan(&l.SKU, &l.ProductName, &l.VariantTitle, &l.Quantity, &unit, &lt); err != nil {
			rows.Close()
			return o, err
		}
		l.UnitPrice, l.LineTotal = m(unit), m(lt)
		o.Lines = append(o.Lines, l)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return o, err
	}
	rows, err = q.Query(`SELECT from_status, to_status, reason, at FROM order_transitions WHERE order_id = ? ORDER BY id`, id)
	if err != nil {
		return o, fmt.Errorf("order history: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var t order.Transition
		var at int64
		if err := rows.Scan(&t.From, &t.To, &t.Reason, &at); err != nil {
			return o, err
		}
		t.At = fromNanos(at)
		o.History = append(o.History, t)
	}
	return o, rows.Err()
}

// dbQueryer adapts the reader pool with a context to queryer.
type dbQueryer struct {
	ctx context.Context
	s   *Store
}

func (d dbQueryer) QueryRow(q string, args ...any) *sql.Row {
	return d.s.readRow(d.ctx, q, args...)
}
func (d dbQueryer) Query(q string, args ...any) (*sql.Rows, error) {
	return d.s.readRows(d.ctx, q, args...)
}

// Order loads an order with its lines and history.
func (s *Store) Order(ctx context.Context, id string) (order.Order, error) {
	return loadOrder(dbQueryer{ctx, s}, id)
}

// OrdersByCustomer lists a customer's orders, newest first.
func (s *Store) OrdersByCustomer(ctx context.Context, customerID int64, limit int) ([]order.Order, error) {
	rows, err := s.reader.QueryContext(ctx, `SELECT id FROM orders WHERE customer_id = ? ORDER BY created_at DESC LIMIT ?`, customerID, limit)
	if err != nil {
		return nil, fmt.Errorf("customer orders: %w", err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	out := make([]order.Order, 0, len(ids))
	for _, id := range ids {
		o, err := s.Order(ctx, id)
		if err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, nil
}

// transition moves an order from one status to another if it is still in
// from; it reports whether it moved. Releasing or committing stock is the
// caller's business, in the same transaction. traceparent is the trace
// the transition's event continues.
func (s *Store) transition(tx wtx, id string, from, to order.Status, reason, traceparent string) (bool, error) {
	if !order.CanTransition(from, to) {
		return false, fmt.Errorf("%s -> %s: %w", from, to, order.ErrTransition)
	}
	now := s.now().UTC()
	res, err := tx.Exec(`UPDATE orders SET status = ?, updated_at = ? WHERE id = ? AND status = ?`, to, now.UnixNano(), id, from)
	if err != nil {
		return false, fmt.Errorf("order %s -> %s: %w", id, to, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return false, nil
	}
	return true, recordTransition(tx, id, from, to, reason, now, traceparent)
}

// releaseHeld returns the stock an order holds to available, and gives
// the buyer back their share of a drop's per-customer limit.
func releaseHeld(tx wtx, id string) error {
	if _, err := tx.Exec(`DELETE FROM drop_purchases WHERE order_id = ?`, id); err != nil {
		return err
	}
	_, err := settleHeld(tx, id, `UPDATE variants SET reserved = reserved - ? WHERE sku = ?`, "released")
	return err
}

// Statements that find an order's held reservations. The unary + keeps
// SQLite from using reservations_held (status, expires_at) for them: with
// thousands of orders waiting for payment, that index walks every held
// row, while the primary key (order_id, sku) finds the order's few.
const (
	sqlSettleHeld = `UPDATE reservations SET status = ? WHERE order_id = ? AND +status = 'held' RETURNING sku, quantity`
)

// settleHeld moves an order's held reservations to status and applies
// stockSQL (arguments: quantity, sku) to each; it returns how many there
// were.
func settleHeld(tx wtx, id, stockSQL, status string) (int, error) {
	rows, err := tx.Query(sqlSettleHeld, status, id)
	if err != nil {
		return 0, err
	}
	type held struct {
		sku string
		qty int64
	}
	var hs []held
	for rows.Next() {
		var h held
		if err := rows.Scan(&h.sku, &h.qty); err != nil {
			rows.Close()
			return 0, err
		}
		hs = append(hs, h)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	for _, h := range hs {
		if _, err := tx.Exec(stockSQL, h.qty, h.sku); err != nil {
			return 0, fmt.Errorf("settle %s: %w", h.sku, err)
		}
	}
	return len(hs), nil
}

// ClaimPayment marks that payment is being taken for a pending order and
// returns the order. The claim is a lease, renewed at every attempt: while
// it is fresh the expiry sweep leaves the order alone, so stock is not
// released under a capture in flight; once it lapses (the provider has
// been failing for longer than the lease) the order may expire. ok is
// false when the order is no longer pending (paid, failed or expired),
// which makes redelivered capture messages harmless.
func (s *Store) ClaimPayment(ctx context.Context, id string) (o order.Order, ok bool, err error) {
	err = s.write(ctx, func(tx wtx) error {
		res, err := tx.Exec(`UPDATE orders SET payment_claimed_at = ? WHERE id = ? AND status = 'pending_payment'`,
			s.now().UnixNano(), id)
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		ok = n == 1
		o, err = loadOrder(tx, id)
		return err
	})
	return o, ok, err
}

// MarkPaid moves a pending order to paid. Already paid is not an error.
func (s *Store) MarkPaid(ctx context.Context, id, reason string) error {
	return s.write(ctx, func(tx wtx) error {
		moved, err := s.transition(tx, id, order.StatusPendingPayment, order.StatusPaid, reason, tracing.TraceParent(ctx))
		if err != nil || moved {
			return err
		}
		return expectStatus(tx, id, order.StatusPaid, order.StatusFulfilled)
	})
}

// MarkPaymentFailed moves a pending order to payment_failed and releases
// its stock. Already failed is not an error.
func (s *Store) MarkPaymentFailed(ctx context.Context, id, reason string) error {
	return s.write(ctx, func(tx wtx) error {
		moved, err := s.transition(tx, id, order.StatusPendingPayment, order.StatusPaymentFailed, reason, tracing.TraceParent(ctx))
		if err != nil {
			return err
		}
		if !moved {
			return expectStatus(tx, id, order.StatusPaymentFailed)
		}
		return releaseHeld(tx, id)
	})
}

func expectStatus(tx wtx, id string, want ...order.Status) error {
	var st order.Status
	if err := tx.QueryRow(`SELECT status FROM orders WHERE id = ?`, id).Scan(&st); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("order %s: %w", id, order.ErrNotFound)
		}
		return err
	}
	for _, w := range want {
		if st == w {
			return nil
		}
	}
	return fmt.Errorf("order %s is %s: %w", id, st, order.ErrTransition)
}

// CommitStock turns a paid order's held reservations into sold units. It is
// idempotent: a redelivered event finds nothing held.
func (s *Store) CommitStock(ctx context.Context, id string) (int, error) {
	var n int
	err := s.write(ctx, func(tx wtx) error {
		if err := expectStatus(tx, id, order.StatusPaid, order.StatusFulfilled); err != nil {
			return err
		}
		var err error
		n, err = settleHeld(tx, id, `UPDATE variants SET reserved = reserved - ?1, sold = sold + ?1 WHERE sku = ?2`, "committed")
		return err
	})
	return n, err
}

// ExpireDue expires up to limit unpaid orders whose reservation has run out
// and whose payment is not being taken (no claim, or a claim older than
// claimLease), releasing their stock. It returns the expired order IDs.
//
// The reservation runs from when the payment workers could know of the
// order: an order whose creation event is still in the outbox never
// expires (nobody was ever asked to take its payment), and one whose event
// reached the bus late has its reservation moved on by that delay.
func (s *Store) ExpireDue(ctx context.Context, limit int, claimLease time.Duration) ([]string, error) {
	var expired []string
	now := s.now()
	err := s.write(ctx, func(tx wtx) error {
		rows, err := tx.Query(`SELECT o.id FROM orders o WHERE o.status = 'pending_payment' AND o.reserved_until <= ?1
			AND (o.payment_claimed_at IS NULL OR o.payment_claimed_at <= ?2)
			AND NOT EXISTS (SELECT 1 FROM outbox e WHERE e.order_id = o.id AND e.subject = 'surge.order.created'
				AND (e.published_at IS NULL OR o.reserved_until + (e.published_at - e.created_at) > ?1))
			ORDER BY o.reserved_until LIMIT ?3`,
			now.UnixNano(), now.Add(-claimLease).UnixNano(), limit)
		if err != nil {
			return err
		}
		var ids []string
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, id)
		}
		rows.Close()
		for _, id := range ids {
			moved, err := s.transition(tx, id, order.StatusPendingPayment, order.StatusExpired, "reservation expired", tracing.TraceParent(ctx))
			if err != nil {
				return err
			}
			if moved {
				if err := releaseHeld(tx, id); err != nil {
					return err
				}
				expired = append(expired, id)
			}
		}
		return nil
	})
	return expired, err
}

// MarkConfirmationSent records that the confirmation mail went out; first
// is false when it had been recorded before (a redelivery).
func (s *Store) MarkConfirmationSent(ctx context.Context, id string) (first bool, err error) {
	err = s.write(ctx, func(tx wtx) error {
		res, err := tx.Exec(`UPDATE orders SET confirmation_sent_at = ? WHERE id = ? AND confirmation_sent_at IS NULL`, s.now().UnixNano(), id)
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		first = n == 1
		return nil
	})
	return first, err
}

// StockLedger is catalog.StockLedger, kept under this name for callers
// that read one SKU's counters from this store.
type StockLedger = catalog.StockLedger

// Ledger reads the stock counters of sku next to what reservations say they
// should be; tests assert the two agree.
func (s *Store) Ledger(ctx context.Context, sku string) (StockLedger, error) {
	var l StockLedger
	err := s.readRow(ctx, `SELECT v.on_hand, v.reserved, v.sold,
		coalesce((SELECT sum(quantity) FROM reservations WHERE sku = v.sku AND status = 'held'), 0),
		coalesce((SELECT sum(quantity) FROM reservations WHERE sku = v.sku AND status = 'committed'), 0)
		FROM variants v WHERE v.sku = ?`, sku).Scan(&l.OnHand, &l.Reserved, &l.Sold, &l.HeldByReservations, &l.SoldByReservations)
	if err != nil {
		return l, fmt.Errorf("ledger %s: %w", sku, err)
	}
	return l, nil
}

// OrderPlacedInSession reports whether the order was placed by the session
// (its idempotency key belongs to it), which lets guests see their orders.
func (s *Store) OrderPlacedInSession(ctx context.Context, orderID, sessionID string) (bool, error) {
	var one int
	err := s.readRow(ctx, `SELECT 1 FROM idempotency_keys WHERE owner = ? AND order_id = ?`, sessionID, orderID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// ConfirmationSent reports whether the order's confirmation went out.
func (s *Store) ConfirmationSent(ctx context.Context, id string) (bool, error) {
	var at sql.NullInt64
	err := s.readRow(ctx, `SELECT confirmation_sent_at FROM orders WHERE id = ?`, id).Scan(&at)
	if errors.Is(err, sql.ErrNoRows) {
		return false, fmt.Errorf("order %s: %w", id, order.ErrNotFound)
	}
	return at.Valid, err
}
