package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/surge-commerce/surge/internal/catalog"
	"github.com/surge-commerce/surge/internal/checkout"
	"github.com/surge-commerce/surge/internal/drop"
	"github.com/surge-commerce/surge/internal/money"
	"github.com/surge-commerce/surge/internal/order"
	"github.com/surge-commerce/surge/internal/tracing"
)

// Classes of transaction-scoped advisory locks (the first key of
// pg_advisory_xact_lock(int, int)); the second key is a hash of what is
// locked. Two unrelated things whose hashes collide only wait for each
// other a moment.
const (
	lockIdempotencyKey = 1 // one checkout per (owner, key) at a time
	lockDropBuyer      = 2 // one order per (drop, buyer) at a time
)

// IdempotentOrder finds the order an idempotency key produced, on the
// primary.
func (s *Store) IdempotentOrder(ctx context.Context, owner, key string) (string, string, error) {
	if !storable(owner) || !storable(key) {
		return "", "", order.ErrNotFound
	}
	var id, hash string
	err := s.primary.QueryRow(ctx, `SELECT order_id, request_hash FROM idempotency_keys WHERE owner = $1 AND key = $2`, owner, key).Scan(&id, &hash)
	if errors.Is(err, pgx.ErrNoRows) {
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
// Two buyers never both get the last unit, whichever process they reach:
// each reservation is one UPDATE whose WHERE clause demands the units be
// available; PostgreSQL re-checks that condition on the newest version of
// the row after waiting for a concurrent reservation to commit, and the
// variants_stock CHECK constraint backs it up. SKUs are reserved in sorted
// order so that two orders never hold each other's rows (a deadlock); one
// that happens anyway, through triggers, is run again.
//
// The whole order is one pipelined batch in one implicit transaction
// (placeBatch): the inserts, then the reservations (reserve_lines), and
// the server commits at the batch's end. A hot SKU's row is locked from its
// UPDATE to that COMMIT with no round trip to the shop in between, so a
// drop's buyers queue for the server's work alone. A refusal (sold out,
// over a drop's limit) is an error raised in the batch, which rolls all of
// it back. A key already used (a retry, a concurrent duplicate) fails the
// batch on the key's primary key and is answered by placeOrderTx, which
// reads the earlier order.
func (s *Store) PlaceOrder(ctx context.Context, p checkout.Placement) (order.Order, bool, error) {
	for attempt := 1; ; attempt++ {
		o, err := s.placeBatch(ctx, p)
		switch {
		case err == nil:
			s.noteWrite(ctx)
			return o, false, nil
		case isUniqueOn(err, "idempotency_keys_pkey"):
			return s.placeOrderTx(ctx, p)
		case !retryable(err) || attempt == maxAttempts:
			return order.Order{}, false, err
		}
		if cerr := backoff(ctx, attempt); cerr != nil {
			return order.Order{}, false, errors.Join(err, cerr)
		}
	}
}

// SQLSTATEs raised by the functions of migration 0009.
const (
	codeSoldOut   = "SU001" // reserve_lines: DETAIL is a JSON array of the short SKUs
	codeOverLimit = "SU002" // record_drop_purchase: DETAIL is the units the buyer holds
	codeNoOrder   = "SU003" // commit_stock: no such order
	codeNotPaid   = "SU004" // commit_stock: DETAIL is the order's status
)

// queueOrderRows queues the inserts of an order, its lines and its held
// reservations on b; the order's number is read into o when b runs.
func queueOrderRows(b *pgx.Batch, o *order.Order) {
	addr, _ := json.Marshal(o.ShippingAddress)
	b.Queue(`INSERT INTO orders (id, number, customer_id, email, status, currency, subtotal, tax, shipping, total,
		shipping_address, payment_method, card_last4, reserved_until, created_at, updated_at, access_token)
		VALUES ($1, nextval('order_numbers'), $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14, $15)
		RETURNING number`,
		o.ID, nullID(o.CustomerID), o.Email, string(o.Status), o.Total.Currency, o.Subtotal.Amount, o.Tax.Amount,
		o.Shipping.Amount, o.Total.Amount, string(addr), o.PaymentMethod, o.CardLast4, o.ReservedUntil, o.CreatedAt, o.AccessToken).
		QueryRow(func(row pgx.Row) error { return row.Scan(&o.Number) })
	for i, l := range o.Lines {
		b.Queue(`INSERT INTO order_lines (order_id, position, sku, product_name, variant_title, quantity, unit_price, line_total)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, o.ID, i, l.SKU, l.ProductName, l.VariantTitle, l.Quantity, l.UnitPrice.Amount, l.LineTotal.Amount)
		b.Queue(`INSERT INTO reservations (order_id, sku, quantity, status, expires_at) VALUES ($1, $2, $3, 'held', $4)`,
			o.ID, l.SKU, l.Quantity, o.ReservedUntil)
	}
}

// placeBatch sends an order as one batch that the server runs as one
// implicit transaction and commits at its end, and maps the refusals the
// batch raises to the checkout's errors.
func (s *Store) placeBatch(ctx context.Context, p checkout.Placement) (order.Order, error) {
	if err := ctx.Err(); err != nil {
		return order.Order{}, err
	}
	o := p.Order
	b := &pgx.Batch{}
	queueOrderRows(b, &o)
	if d := p.Drop; d != nil {
		// The buyer's other orders for this drop wait here, so the limit
		// counts them.
		b.Queue(`SELECT pg_advisory_xact_lock($1, hashtext($2 || E'\n' || $3))`, int32(lockDropBuyer), d.DropID, d.Buyer)
		b.Queue(`SELECT record_drop_purchase($1, $2, $3, $4, $5)`, o.ID, d.DropID, d.Buyer, d.Quantity, d.Limit)
	}
	if err := queueTransition(b, o.ID, "", o.Status, "checkout", o.CreatedAt, tracing.TraceParent(ctx)); err != nil {
		return order.Order{}, err
	}
	// A concurrent duplicate waits here for the first to commit, then
	// fails on the primary key, before it reserves anything.
	b.Queue(`INSERT INTO idempotency_keys (owner, key, request_hash, order_id, created_at) VALUES ($1, $2, $3, $4, $5)`,
		p.Owner, p.Key, p.RequestHash, o.ID, o.CreatedAt)
	if p.CartID != "" {
		b.Queue(`DELETE FROM cart_items WHERE cart_id = $1`, p.CartID)
	}
	// The hot rows last, in SKU order.
	byKey := make([]int, len(o.Lines))
	for i := range byKey {
		byKey[i] = i
	}
	slices.SortStableFunc(byKey, func(a, b int) int { return cmpString(o.Lines[a].SKU, o.Lines[b].SKU) })
	skus, qtys := make([]string, len(byKey)), make([]int64, len(byKey))
	for j, i := range byKey {
		skus[j], qtys[j] = o.Lines[i].SKU, o.Lines[i].Quantity
	}
	b.Queue(`SELECT reserve_lines($1, $2)`, skus, qtys)

	// Once sent, the batch may commit whatever happens to the caller: wait
	// for its outcome rather than report failure for an order placed.
	done, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
	defer cancel()
	err := s.primary.SendBatch(done, b).Close()
	if pe, ok := errors.AsType[*pgconn.PgError](err); ok {
		switch pe.Code {
		case codeSoldOut:
			var short []string
			if jerr := json.Unmarshal([]byte(pe.Detail), &short); jerr != nil {
				return order.Order{}, fmt.Errorf("reserve: %w (detail: %v)", err, jerr)
			}
			// Named in the order's line order, as the caller sent them.
			var named []string
			for _, l := range o.Lines {
				if slices.Contains(short, l.SKU) {
					named = append(named, l.SKU)
				}
			}
			return order.Order{}, &checkout.SoldOutError{SKUs: named}
		case codeOverLimit:
			d := p.Drop
			return order.Order{}, fmt.Errorf("%w: %d per customer, you hold %s", drop.ErrOverLimit, d.Limit, pe.Detail)
		}
	}
	if err != nil {
		return order.Order{}, fmt.Errorf("place order %s: %w", o.ID, err)
	}
	o.History = []order.Transition{{To: o.Status, Reason: "checkout", At: o.CreatedAt}}
	return o, nil
}

// placeOrderTx is PlaceOrder one statement at a time, in an explicit
// transaction: the path of a key used before, which reads the earlier
// order under the key's advisory lock and replays it (or refuses another
// body), and places the order if the earlier attempt left nothing.
func (s *Store) placeOrderTx(ctx context.Context, p checkout.Placement) (order.Order, bool, error) {
	var (
		o        order.Order
		replayed bool
	)
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		o, replayed = p.Order, false
		// Simultaneous retries of one checkout queue here, so the second
		// finds the first's key below instead of reserving stock again.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2 || E'\n' || $3))`,
			int32(lockIdempotencyKey), p.Owner, p.Key); err != nil {
			return fmt.Errorf("lock idempotency key: %w", err)
		}
		var prevID, prevHash string
		err := tx.QueryRow(ctx, `SELECT order_id, request_hash FROM idempotency_keys WHERE owner = $1 AND key = $2`,
			p.Owner, p.Key).Scan(&prevID, &prevHash)
		switch {
		case err == nil:
			if prevHash != p.RequestHash {
				return checkout.ErrIdempotencyMismatch
			}
			prev, err := loadOrder(ctx, tx, prevID)
			if err != nil {
				return err
			}
			o, replayed = prev, true
			return nil
		case !errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("idempotency key: %w", err)
		}
		if d := p.Drop; d != nil {
			// The buyer's other orders for this drop wait, so the limit
			// below counts them.
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2 || E'\n' || $3))`,
				int32(lockDropBuyer), d.DropID, d.Buyer); err != nil {
				return fmt.Errorf("lock drop buyer: %w", err)
			}
		}

		if d := p.Drop; d != nil {
			var held int64
			if err := tx.QueryRow(ctx, `SELECT coalesce(sum(quantity), 0) FROM drop_purchases WHERE drop_id = $1 AND buyer = $2`,
				d.DropID, d.Buyer).Scan(&held); err != nil {
				return fmt.Errorf("drop purchases: %w", err)
			}
			if held+d.Quantity > d.Limit {
				return fmt.Errorf("%w: %d per customer, you hold %d", drop.ErrOverLimit, d.Limit, held)
			}
		}

		// The inserts first, in one round trip: they wait on nobody.
		b := &pgx.Batch{}
		queueOrderRows(b, &o)
		if d := p.Drop; d != nil {
			b.Queue(`INSERT INTO drop_purchases (order_id, drop_id, buyer, quantity) VALUES ($1, $2, $3, $4)`, o.ID, d.DropID, d.Buyer, d.Quantity)
		}
		if err := queueTransition(b, o.ID, "", o.Status, "checkout", o.CreatedAt, tracing.TraceParent(ctx)); err != nil {
			return err
		}
		b.Queue(`INSERT INTO idempotency_keys (owner, key, request_hash, order_id, created_at) VALUES ($1, $2, $3, $4, $5)`,
			p.Owner, p.Key, p.RequestHash, o.ID, o.CreatedAt)
		if p.CartID != "" {
			b.Queue(`DELETE FROM cart_items WHERE cart_id = $1`, p.CartID)
		}
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("record order %s: %w", o.ID, err)
		}
		// The hot rows last: a drop's buyers all update one variant row,
		// and its lock is held from the UPDATE to the COMMIT, so nothing
		// else may come between them. A short line rolls everything back.
		byKey := make([]int, len(o.Lines))
		for i := range byKey {
			byKey[i] = i
		}
		slices.SortStableFunc(byKey, func(a, b int) int { return cmpString(o.Lines[a].SKU, o.Lines[b].SKU) })
		short := make([]bool, len(o.Lines))
		anyShort := false
		for _, i := range byKey {
			l := o.Lines[i]
			tag, err := tx.Exec(ctx, `UPDATE variants SET reserved = reserved + $1 WHERE sku = $2 AND on_hand - reserved - sold >= $1`,
				l.Quantity, l.SKU)
			if err != nil {
				return fmt.Errorf("reserve %s: %w", l.SKU, err)
			}
			if tag.RowsAffected() == 0 {
				short[i], anyShort = true, true
			}
		}
		if anyShort {
			var skus []string
			for i, l := range o.Lines {
				if short[i] {
					skus = append(skus, l.SKU)
				}
			}
			// Returning an error rolls back the lines that did reserve.
			return &checkout.SoldOutError{SKUs: skus}
		}
		o.History = []order.Transition{{To: o.Status, Reason: "checkout", At: o.CreatedAt}}
		return nil
	})
	if err != nil {
		return order.Order{}, false, err
	}
	return o, replayed, nil
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// queueTransition queues the transition row and the outbox event that
// announces the order's new status; traceparent is the trace the event
// continues ("" for none).
func queueTransition(b *pgx.Batch, id string, from, to order.Status, reason string, at time.Time, traceparent string) error {
	b.Queue(`INSERT INTO order_transitions (order_id, from_status, to_status, reason, at) VALUES ($1, $2, $3, $4, $5)`,
		id, string(from), string(to), reason, at)
	subject := eventSubject(to)
	if subject == "" {
		return nil
	}
	data, _ := json.Marshal(order.Event{OrderID: id, Status: to, At: at.UnixNano()})
	evID, err := randomID("evt_")
	if err != nil {
		return err
	}
	b.Queue(`INSERT INTO outbox (id, subject, data, created_at, order_id, traceparent) VALUES ($1, $2, $3, $4, $5, NULLIF($6, ''))`,
		evID, subject, data, at, id, traceparent)
	return nil
}

// loadOrder reads an order with its lines and history, in one round trip.
func loadOrder(ctx context.Context, q querier, id string) (order.Order, error) {
	if !storable(id) {
		return order.Order{}, fmt.Errorf("order %s: %w", id, order.ErrNotFound)
	}
	var o order.Order
	b := &pgx.Batch{}
	found := queueLoadOrder(b, id, &o)
	if err := q.SendBatch(ctx, b).Close(); err != nil {
		return order.Order{}, err
	}
	if !*found {
		return order.Order{}, fmt.Errorf("order %s: %w", id, order.ErrNotFound)
	}
	return o, nil
}

// queueLoadOrder queues the three reads of an order (the row, its lines,
// its history) into o; once the batch ran, *found says whether there was
// such an order. (A missing order does not fail the batch: a failed batch
// makes pgx forget its prepared statements.) The reads see one moment
// when the batch runs in one transaction, as a batch does by itself.
func queueLoadOrder(b *pgx.Batch, id string, o *order.Order) (found *bool) {
	found = new(bool)
	var (
		cur                   string
		addr                  []byte
		sub, tax, ship, total int64
		status                string
	)
	m := func(a int64) money.Money { return money.Money{Amount: a, Currency: cur} }
	b.Queue(`SELECT id, number, coalesce(customer_id, 0), email, status, currency, subtotal, tax, shipping, total,
		shipping_address, payment_method, card_last4, reserved_until, created_at, updated_at, access_token FROM orders WHERE id = $1`, id).
		QueryRow(func(row pgx.Row) error {
			err := row.Scan(&o.ID, &o.Number, &o.CustomerID, &o.Email, &status, &cur, &sub, &tax, &ship, &total, &addr,
				&o.PaymentMethod, &o.CardLast4, &o.ReservedUntil, &o.CreatedAt, &o.UpdatedAt, &o.AccessToken)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("load order %s: %w", id, err)
			}
			*found = true
			o.Status = order.Status(status)
			o.Subtotal, o.Tax, o.Shipping, o.Total = m(sub), m(tax), m(ship), m(total)
			_ = json.Unmarshal(addr, &o.ShippingAddress) // written by PlaceOrder
			return nil
		})
	b.Queue(`SELECT sku, product_name, variant_title, quantity, unit_price, line_total
		FROM order_lines WHERE order_id = $1 ORDER BY position`, id).
		Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var (
					l        order.Line
					unit, lt int64
				)
				if err := rows.Scan(&l.SKU, &l.ProductName, &l.VariantTitle, &l.Quantity, &unit, &lt); err != nil {
					return fmt.Errorf("order %s lines: %w", id, err)
				}
				l.UnitPrice, l.LineTotal = m(unit), m(lt)
				o.Lines = append(o.Lines, l)
			}
			if err := rows.Err(); err != nil {
				return fmt.Errorf("order %s lines: %w", id, err)
			}
			return nil
		})
	b.Queue(`SELECT from_status, to_status, reason, at FROM order_transitions WHERE order_id = $1 ORDER BY id`, id).
		Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var (
					t        order.Transition
					from, to string
				)
				if err := rows.Scan(&from, &to, &t.Reason, &t.At); err != nil {
					return fmt.Errorf("order %s history: %w", id, err)
				}
				t.From, t.To = order.Status(from), order.Status(to)
				o.History = append(o.History, t)
			}
			if err := rows.Err(); err != nil {
				return fmt.Errorf("order %s history: %w", id, err)
			}
			return nil
		})
	return found
}

// Order loads an order with its lines and history, from the primary: the
// order page follows the checkout that placed it.
func (s *Store) Order(ctx context.Context, id string) (order.Order, error) {
	return loadOrder(ctx, s.primary, id)
}

// OrdersByCustomer lists a customer's orders, newest first, from the
// primary.
func (s *Store) OrdersByCustomer(ctx context.Context, customerID int64, limit int) ([]order.Order, error) {
	rows, err := s.primary.Query(ctx, `SELECT id FROM orders WHERE customer_id = $1 ORDER BY created_at DESC LIMIT $2`, customerID, limit)
	if err != nil {
		return nil, fmt.Errorf("customer orders: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("customer orders: %w", err)
	}
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
// from; it reports whether it moved. The UPDATE locks the order row, so of
// two workers moving one order only one moves it. Releasing or committing
// stock is the caller's business, in the same transaction.
//
// The move, its history row and the outbox event announcing it are one
// statement: one round trip, and atomic without a transaction of its own.
func (s *Store) transition(ctx context.Context, q querier, id string, from, to order.Status, reason string) (bool, error) {
	if !order.CanTransition(from, to) {
		return false, fmt.Errorf("%s -> %s: %w", from, to, order.ErrTransition)
	}
	now := s.now().UTC()
	sql := `WITH moved AS (UPDATE orders SET status = $1, updated_at = $2 WHERE id = $3 AND status = $4 RETURNING id),
		history AS (INSERT INTO order_transitions (order_id, from_status, to_status, reason, at)
			SELECT id, $4, $1, $5, $2 FROM moved)
		SELECT count(*) FROM moved`
	args := []any{string(to), now, id, string(from), reason}
	if subject := eventSubject(to); subject != "" {
		evID, err := randomID("evt_")
		if err != nil {
			return false, err
		}
		data, _ := json.Marshal(order.Event{OrderID: id, Status: to, At: now.UnixNano()})
		sql = `WITH moved AS (UPDATE orders SET status = $1, updated_at = $2 WHERE id = $3 AND status = $4 RETURNING id),
			history AS (INSERT INTO order_transitions (order_id, from_status, to_status, reason, at)
				SELECT id, $4, $1, $5, $2 FROM moved),
			event AS (INSERT INTO outbox (id, subject, data, created_at, order_id, traceparent)
				SELECT $6::text, $7::text, $8::bytea, $2, id, NULLIF($9::text, '') FROM moved)
			SELECT count(*) FROM moved`
		args = append(args, evID, subject, data, tracing.TraceParent(ctx))
	}
	var n int64
	if err := q.QueryRow(ctx, sql, args...).Scan(&n); err != nil {
		return false, fmt.Errorf("order %s -> %s: %w", id, to, err)
	}
	return n == 1, nil
}

// eventSubject is the subject of the event announcing that an order
// reached status, or "" when none does.
func eventSubject(status order.Status) string {
	return map[order.Status]string{order.StatusPendingPayment: order.SubjectCreated, order.StatusPaid: order.SubjectPaid,
		order.StatusPaymentFailed: order.SubjectFailed, order.StatusExpired: order.SubjectExpired, order.StatusCancelled: order.SubjectCancelled}[status]
}

// releaseHeld returns the stock the orders hold to available, and gives
// the buyers back their share of a drop's per-customer limit.
func releaseHeld(ctx context.Context, tx pgx.Tx, ids []string) error {
	if _, err := tx.Exec(ctx, `DELETE FROM drop_purchases WHERE order_id = ANY($1)`, ids); err != nil {
		return fmt.Errorf("release drop purchases: %w", err)
	}
	_, err := settleHeld(ctx, tx, ids, "released")
	return err
}

// settleHeld marks the orders' held reservations released or committed and
// moves their units out of variants.reserved (into sold when committed),
// in SKU order, as PlaceOrder reserves them (settle_held, migration 0009).
// It returns how many reservations it settled.
func settleHeld(ctx context.Context, tx pgx.Tx, ids []string, status string) (int, error) {
	var n int
	if err := tx.QueryRow(ctx, `SELECT settle_held($1, $2)`, ids, status).Scan(&n); err != nil {
		return 0, fmt.Errorf("settle reservations: %w", err)
	}
	return n, nil
}

// ClaimPayment marks that payment is being taken for a pending order and
// returns the order. The claim is a lease, renewed at every attempt: while
// it is fresh the expiry sweep leaves the order alone, so stock is not
// released under a capture in flight; once it lapses (the provider has
// been failing for longer than the lease) the order may expire. ok is
// false when the order is no longer pending (paid, failed or expired),
// which makes redelivered capture messages harmless.
func (s *Store) ClaimPayment(ctx context.Context, id string) (o order.Order, ok bool, err error) {
	if !storable(id) {
		return order.Order{}, false, fmt.Errorf("order %s: %w", id, order.ErrNotFound)
	}
	// The claim and the reads are one batch: one round trip, one
	// transaction, and the reads see the claim.
	var found *bool
	err = s.inBatch(ctx, func() *pgx.Batch {
		o, ok = order.Order{}, false
		b := &pgx.Batch{}
		b.Queue(`UPDATE orders SET payment_claimed_at = $1 WHERE id = $2 AND status = 'pending_payment'`, s.now(), id).
			Exec(func(tag pgconn.CommandTag) error {
				ok = tag.RowsAffected() == 1
				return nil
			})
		found = queueLoadOrder(b, id, &o)
		return b
	})
	if err != nil {
		return order.Order{}, false, fmt.Errorf("claim payment of order %s: %w", id, err)
	}
	if !*found {
		return order.Order{}, false, fmt.Errorf("order %s: %w", id, order.ErrNotFound)
	}
	return o, ok, nil
}

// MarkPaid moves a pending order to paid. Already paid is not an error.
// The move is one statement (see transition), so it needs no
// transaction around it: one round trip.
func (s *Store) MarkPaid(ctx context.Context, id, reason string) error {
	var moved bool
	err := retry(ctx, func() (err error) {
		moved, err = s.transition(ctx, s.primary, id, order.StatusPendingPayment, order.StatusPaid, reason)
		return err
	})
	if err != nil {
		return err
	}
	if moved {
		s.noteWrite(ctx)
		return nil
	}
	return expectStatus(ctx, s.primary, id, order.StatusPaid, order.StatusFulfilled)
}

// MarkPaymentFailed moves a pending order to payment_failed and releases
// its stock. Already failed is not an error.
func (s *Store) MarkPaymentFailed(ctx context.Context, id, reason string) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		moved, err := s.transition(ctx, tx, id, order.StatusPendingPayment, order.StatusPaymentFailed, reason)
		if err != nil {
			return err
		}
		if !moved {
			return expectStatus(ctx, tx, id, order.StatusPaymentFailed)
		}
		return releaseHeld(ctx, tx, []string{id})
	})
}

func expectStatus(ctx context.Context, q querier, id string, want ...order.Status) error {
	var st string
	if !storable(id) {
		return fmt.Errorf("order %s: %w", id, order.ErrNotFound)
	}
	if err := q.QueryRow(ctx, `SELECT status FROM orders WHERE id = $1`, id).Scan(&st); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("order %s: %w", id, order.ErrNotFound)
		}
		return fmt.Errorf("order %s status: %w", id, err)
	}
	if slices.Contains(want, order.Status(st)) {
		return nil
	}
	return fmt.Errorf("order %s is %s: %w", id, st, order.ErrTransition)
}

// CommitStock turns a paid order's held reservations into sold units. It is
// idempotent: a redelivered event finds nothing held. It is one statement
// (commit_stock, migration 0009) committed by the server as it ends, so a
// hot SKU's row, which every checkout of it waits for, is not held across
// a round trip to the shop.
func (s *Store) CommitStock(ctx context.Context, id string) (int, error) {
	if !storable(id) {
		return 0, fmt.Errorf("order %s: %w", id, order.ErrNotFound)
	}
	for attempt := 1; ; attempt++ {
		var n int
		err := s.primary.QueryRow(ctx, `SELECT commit_stock($1)`, id).Scan(&n)
		if pe, ok := errors.AsType[*pgconn.PgError](err); ok {
			switch pe.Code {
			case codeNoOrder:
				return 0, fmt.Errorf("order %s: %w", id, order.ErrNotFound)
			case codeNotPaid:
				return 0, fmt.Errorf("order %s is %s: %w", id, pe.Detail, order.ErrTransition)
			}
		}
		switch {
		case err == nil:
			s.noteWrite(ctx)
			return n, nil
		case !retryable(err) || attempt == maxAttempts:
			return 0, fmt.Errorf("commit stock of order %s: %w", id, err)
		}
		if cerr := backoff(ctx, attempt); cerr != nil {
			return 0, errors.Join(fmt.Errorf("commit stock of order %s: %w", id, err), cerr)
		}
	}
}

// ExpireDue expires up to limit unpaid orders whose reservation has run out
// and whose payment is not being taken (no claim, or a claim older than
// claimLease), releasing their stock. It returns the expired order IDs.
// Sweepers in several processes split the work: each skips the orders
// another has locked.
//
// The reservation runs from when the payment workers could know of the
// order: an order whose creation event is still in the outbox never
// expires (nobody was ever asked to take its payment), and one whose event
// reached the bus late has its reservation moved on by that delay.
func (s *Store) ExpireDue(ctx context.Context, limit int, claimLease time.Duration) ([]string, error) {
	var expired []string
	now := s.now()
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		expired = nil
		rows, err := tx.Query(ctx, `SELECT o.id FROM orders o WHERE o.status = 'pending_payment' AND o.reserved_until <= $1
			AND (o.payment_claimed_at IS NULL OR o.payment_claimed_at <= $2)
			AND NOT EXISTS (SELECT 1 FROM outbox e WHERE e.order_id = o.id AND e.subject = 'surge.order.created'
				AND (e.published_at IS NULL OR o.reserved_until + (e.published_at - e.created_at) > $1))
			ORDER BY o.reserved_until LIMIT $3
			FOR UPDATE OF o SKIP LOCKED`, now, now.Add(-claimLease), limit)
		if err != nil {
			return fmt.Errorf("due orders: %w", err)
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("due orders: %w", err)
		}
		var moved []string
		for _, id := range ids {
			ok, err := s.transition(ctx, tx, id, order.StatusPendingPayment, order.StatusExpired, "reservation expired")
			if err != nil {
				return err
			}
			if ok {
				moved = append(moved, id)
			}
		}
		if len(moved) == 0 {
			return nil
		}
		if err := releaseHeld(ctx, tx, moved); err != nil {
			return err
		}
		expired = moved
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("expire due orders: %w", err)
	}
	return expired, nil
}

// MarkConfirmationSent records that the confirmation mail went out; first
// is false when it had been recorded before (a redelivery).
func (s *Store) MarkConfirmationSent(ctx context.Context, id string) (first bool, err error) {
	if !storable(id) {
		return false, nil
	}
	// One statement, atomic by itself: no transaction around it.
	err = retry(ctx, func() error {
		tag, err := s.primary.Exec(ctx, `UPDATE orders SET confirmation_sent_at = $1 WHERE id = $2 AND confirmation_sent_at IS NULL`, s.now(), id)
		if err != nil {
			return fmt.Errorf("mark confirmation of order %s: %w", id, err)
		}
		first = tag.RowsAffected() == 1
		return nil
	})
	if err == nil {
		s.noteWrite(ctx)
	}
	return first, err
}

// Ledger reads the stock counters of sku next to what reservations say they
// should be, on the primary and in one statement, so the two are from the
// same moment; tests assert they agree.
func (s *Store) Ledger(ctx context.Context, sku string) (catalog.StockLedger, error) {
	var l catalog.StockLedger
	err := s.primary.QueryRow(ctx, `SELECT v.on_hand, v.reserved, v.sold,
		coalesce((SELECT sum(quantity) FROM reservations WHERE sku = v.sku AND status = 'held'), 0)::bigint,
		coalesce((SELECT sum(quantity) FROM reservations WHERE sku = v.sku AND status = 'committed'), 0)::bigint
		FROM variants v WHERE v.sku = $1`, sku).Scan(&l.OnHand, &l.Reserved, &l.Sold, &l.HeldByReservations, &l.SoldByReservations)
	if err != nil {
		return l, fmt.Errorf("ledger %s: %w", sku, err)
	}
	return l, nil
}

// OrderPlacedInSession reports whether the order was placed by the session
// (its idempotency key belongs to it), which lets guests see their orders.
func (s *Store) OrderPlacedInSession(ctx context.Context, orderID, sessionID string) (bool, error) {
	if !storable(orderID) || !storable(sessionID) {
		return false, nil
	}
	var ok bool
	err := s.primary.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM idempotency_keys WHERE owner = $1 AND order_id = $2)`,
		sessionID, orderID).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("order placed in session: %w", err)
	}
	return ok, nil
}

// ConfirmationSent reports whether the order's confirmation went out.
func (s *Store) ConfirmationSent(ctx context.Context, id string) (bool, error) {
	if !storable(id) {
		return false, fmt.Errorf("order %s: %w", id, order.ErrNotFound)
	}
	var sent bool
	err := s.primary.QueryRow(ctx, `SELECT confirmation_sent_at IS NOT NULL FROM orders WHERE id = $1`, id).Scan(&sent)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, fmt.Errorf("order %s: %w", id, order.ErrNotFound)
	}
	if err != nil {
		return false, fmt.Errorf("order %s: %w", id, err)
	}
	return sent, nil
}
