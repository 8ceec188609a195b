// Package simulated is a payment.Provider that behaves like a real payment
// service provider without moving money, so a shop can rehearse checkout,
// failures and crashes before wiring a real PSP. It keeps its ledger in
// tables of its own (sim_payment_*) in the shop's database, so idempotency
// survives a crash of the process just as it would at a real PSP.
//
// Test cards (spaces and dashes are ignored; any other Luhn-valid number of
// 12 to 19 digits is approved):
//
//	number               behaviour
//	4242 4242 4242 4242  approved (Visa)
//	5555 5555 5555 4444  approved (Mastercard)
//	4000 0000 0000 0002  authorize declined: card_declined
//	4000 0000 0000 9995  authorize declined: insufficient_funds
//	4000 0000 0000 0069  authorize declined: expired_card
//	4000 0000 0000 0119  authorize fails transiently on every attempt (processing error)
//	4000 0000 0000 0341  authorize approved, capture declined: card_declined
//
// Options add latency, transient failures before any effect (FailureRate)
// and lost responses after the effect (LostResponseRate, the case that makes
// idempotency keys necessary), all drawn from a seeded generator so a test
// run can be repeated.
//
// The ledger lives in SQLite (the embedded store's database) or in
// PostgreSQL (the primary of the PostgreSQL store); the provider speaks
// each one's dialect.
package simulated

import (
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/surge-commerce/surge/internal/money"
	"github.com/surge-commerce/surge/internal/payment"
)

var _ payment.Provider = (*Provider)(nil)

// ErrInvalidCard means Tokenize got something that is not a card number:
// not 12 to 19 digits, or failing the Luhn check. It is payment.ErrInvalidCard.
var ErrInvalidCard = payment.ErrInvalidCard

// Card behaviours recorded with a token.
const (
	behaviourApprove        = "approve"
	behaviourTransient      = "transient"
	behaviourCaptureDecline = "capture_decline"
	behaviourDeclinePrefix  = "decline:"
)

var testCards = map[string]string{
	"4000000000000002": behaviourDeclinePrefix + payment.DeclineGeneric,
	"4000000000009995": behaviourDeclinePrefix + payment.DeclineInsufficientFunds,
	"4000000000000069": behaviourDeclinePrefix + payment.DeclineExpiredCard,
	"4000000000000119": behaviourTransient,
	"4000000000000341": behaviourCaptureDecline,
}

// Options tune the simulation. The zero value answers at once and never
// fails.
type Options struct {
	// Latency is the mean time each call takes; Jitter spreads it
	// uniformly over Latency±Jitter.
	Latency, Jitter time.Duration
	// FailureRate is the fraction (0..1) of calls that fail transiently
	// before doing anything, like a 503 or a connection refused.
	FailureRate float64
	// LostResponseRate is the fraction (0..1) of successful calls whose
	// answer is lost: the effect happened, the caller gets a transient
	// error, like a timeout after the PSP committed. Retrying with the same
	// idempotency key returns the original result.
	LostResponseRate float64
	// Seed makes latency and failures reproducible; 0 picks a random seed.
	Seed uint64
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Dialect is the database's SQL dialect, DialectSQLite or
	// DialectPostgres; empty means tell by the driver (modernc.org/sqlite
	// or pgx's database/sql driver).
	Dialect Dialect
	// Webhook, if set, receives an event after each capture, void, refund
	// and decline, in its own goroutine, like a PSP calling the shop back.
	// It is called once per effect, not again for idempotent replays.
	Webhook func(ctx context.Context, e payment.Event)
	// Transact, for SQLite only, runs each call's transaction: the
	// store's group commit (sqlitestore.Store.WriteTx), which runs one
	// write at a time, like the database's own write lock, and shares one
	// sync of the log among a whole batch of writes. Without it every
	// call is a transaction of its own on db, with its own sync, holding
	// the one write connection the shop's writes wait for. The provider
	// prepares its statements on db between calls.
	Transact func(ctx context.Context, fn func(tx *sql.Tx) error) error
}

// Dialect names a database's SQL dialect.
type Dialect string

// The dialects the provider speaks.
const (
	DialectSQLite   Dialect = "sqlite"
	DialectPostgres Dialect = "postgres"
)

// detectDialect tells the dialect by the driver behind db.
func detectDialect(db *sql.DB) (Dialect, error) {
	switch d := db.Driver().(type) {
	case *sqlite.Driver:
		return DialectSQLite, nil
	case *stdlib.Driver:
		return DialectPostgres, nil
	default:
		return "", fmt.Errorf("simulated payments: cannot tell the SQL dialect of driver %T; set Options.Dialect", d)
	}
}

// Provider is the simulated PSP. It is safe for concurrent use, and several
// Providers (processes) may share one database.
type Provider struct {
	db   *sql.DB
	opts Options
	pg   bool // PostgreSQL: $n placeholders and advisory locks

	mu  sync.Mutex
	rng *rand.Rand

	hooks      sync.WaitGroup
	hookMu     sync.Mutex
	hookClosed bool
	hookCtx    context.Context
	hookCancel context.CancelFunc

	// Prepared statements by query text, for Transact's transactions.
	stmtMu sync.RWMutex
	stmts  map[string]*sql.Stmt
	wanted map[string]bool // run unprepared; to prepare after the call
}

// schema works in both dialects: BIGINT and BYTEA are PostgreSQL's types
// and have the right affinity in SQLite (integer, and none: bytes stay
// bytes). Times are Unix nanoseconds.
const schema = `
CREATE TABLE IF NOT EXISTS sim_payment_methods (
	token      TEXT PRIMARY KEY,
	last4      TEXT NOT NULL,          -- never the full number
	behaviour  TEXT NOT NULL,
	created_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS sim_payment_authorizations (
	id         TEXT PRIMARY KEY,
	order_id   TEXT NOT NULL,
	token      TEXT NOT NULL REFERENCES sim_payment_methods (token),
	amount     BIGINT NOT NULL,
	currency   TEXT NOT NULL,
	status     TEXT NOT NULL CHECK (status IN ('authorized', 'captured', 'voided')),
	created_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS sim_payment_captures (
	id               TEXT PRIMARY KEY,
	-- UNIQUE: one capture per authorization, whatever the keys say.
	authorization_id TEXT NOT NULL UNIQUE REFERENCES sim_payment_authorizations (id),
	order_id         TEXT NOT NULL,
	amount           BIGINT NOT NULL,
	currency         TEXT NOT NULL,
	created_at       BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS sim_payment_captures_order ON sim_payment_captures (order_id);
CREATE TABLE IF NOT EXISTS sim_payment_refunds (
	id         TEXT PRIMARY KEY,
	capture_id TEXT NOT NULL REFERENCES sim_payment_captures (id),
	order_id   TEXT NOT NULL,
	amount     BIGINT NOT NULL,
	currency   TEXT NOT NULL,
	reason     TEXT NOT NULL,
	created_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS sim_payment_refunds_capture ON sim_payment_refunds (capture_id);
-- The idempotency ledger: one row per key, written in the same transaction
-- as the effect it records.
CREATE TABLE IF NOT EXISTS sim_payment_ops (
	idempotency_key TEXT PRIMARY KEY,
	operation       TEXT NOT NULL,
	request_hash    TEXT NOT NULL,
	result          BYTEA,         -- JSON of the result when the call succeeded
	error_kind      TEXT,          -- or the domain error it ended with
	error_detail    TEXT,
	created_at      BIGINT NOT NULL
);
`

// New returns a simulated provider keeping its ledger in db, a SQLite or
// PostgreSQL database (the store's Writer is a good fit: each call is one
// short write transaction). It creates its tables if they do not exist.
func New(db *sql.DB, opts Options) (*Provider, error) {
	if opts.FailureRate < 0 || opts.FailureRate > 1 || opts.LostResponseRate < 0 || opts.LostResponseRate > 1 {
		return nil, fmt.Errorf("simulated payments: failure rates must be within 0..1")
	}
	if opts.Latency < 0 || opts.Jitter < 0 || opts.Jitter > opts.Latency {
		return nil, fmt.Errorf("simulated payments: want 0 <= jitter <= latency")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Dialect == "" {
		d, err := detectDialect(db)
		if err != nil {
			return nil, err
		}
		opts.Dialect = d
	}
	if opts.Dialect != DialectSQLite && opts.Dialect != DialectPostgres {
		return nil, fmt.Errorf("simulated payments: unknown dialect %q", opts.Dialect)
	}
	if opts.Transact != nil && opts.Dialect != DialectSQLite {
		// PostgreSQL calls run alongside and lock what they touch; a
		// runner of transactions would have to do the same.
		return nil, fmt.Errorf("simulated payments: Transact is for SQLite only")
	}
	seed := opts.Seed
	if seed == 0 {
		var b [8]byte
		crand.Read(b[:])
		seed = binary.LittleEndian.Uint64(b[:])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := &Provider{db: db, opts: opts, pg: opts.Dialect == DialectPostgres, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		stmts: map[string]*sql.Stmt{}, wanted: map[string]bool{}}
	// Under the lock, so providers starting at once in several processes
	// do not race to create the same tables.
	if err := p.inTx(ctx, []string{"schema"}, func(q querier) error {
		_, err := q.ExecContext(ctx, schema)
		return err
	}); err != nil {
		return nil, fmt.Errorf("simulated payments: create tables: %w", err)
	}
	p.hookCtx, p.hookCancel = context.WithCancel(context.Background())
	return p, nil
}

// Close waits for webhook calls in flight; no new ones start. It does not
// close the database.
func (p *Provider) Close() error {
	p.hookMu.Lock()
	p.hookClosed = true
	p.hookMu.Unlock()
	p.hooks.Wait()
	p.hookCancel()
	p.stmtMu.Lock()
	defer p.stmtMu.Unlock()
	for _, st := range p.stmts {
		st.Close()
	}
	clear(p.stmts)
	return nil
}

// Tokenize turns a card number into an opaque payment-method token, as a
// PSP's client-side library would, recording the test-card behaviour with
// it. Only the last four digits are stored.
func (p *Provider) Tokenize(card string) (token string, last4 string, err error) {
	digits, err := normalizeCard(card)
	if err != nil {
		return "", "", err
	}
	behaviour, ok := testCards[digits]
	if !ok {
		behaviour = behaviourApprove
	}
	last4 = digits[len(digits)-4:]
	// The token carries what the simulated issuer will do and the last four
	// digits, so tokenizing writes nothing: it sits on every checkout's
	// path, where a database write per call would queue behind the shop's
	// own writes. Authorize records the payment method.
	return tokenPrefix + base64.RawURLEncoding.EncodeToString([]byte(behaviour+"|"+last4)) + "_" + strings.ToLower(crand.Text()), last4, nil
}

const tokenPrefix = "pm_sim_"

// parseToken reads what Tokenize put in a token.
func parseToken(token string) (behaviour, last4 string, ok bool) {
	rest, ok := strings.CutPrefix(token, tokenPrefix)
	if !ok {
		return "", "", false
	}
	enc, _, ok := strings.Cut(rest, "_")
	if !ok {
		return "", "", false
	}
	raw, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil {
		return "", "", false
	}
	behaviour, last4, ok = strings.Cut(string(raw), "|")
	if !ok || len(last4) != 4 {
		return "", "", false
	}
	switch {
	case behaviour == behaviourApprove, behaviour == behaviourTransient, behaviour == behaviourCaptureDecline,
		strings.HasPrefix(behaviour, behaviourDeclinePrefix):
		return behaviour, last4, true
	}
	return "", "", false
}

func normalizeCard(card string) (string, error) {
	var b strings.Builder
	for _, r := range card {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == ' ' || r == '-':
		default:
			return "", fmt.Errorf("%w: unexpected character %q", ErrInvalidCard, r)
		}
	}
	digits := b.String()
	if len(digits) < 12 || len(digits) > 19 {
		return "", fmt.Errorf("%w: %d digits, want 12 to 19", ErrInvalidCard, len(digits))
	}
	if !luhnValid(digits) {
		return "", fmt.Errorf("%w: check digit does not match", ErrInvalidCard)
	}
	return digits, nil
}

// luhnValid reports whether the decimal digit string passes the Luhn check.
func luhnValid(digits string) bool {
	sum := 0
	double := false
	for i := len(digits) - 1; i >= 0; i-- {
		d := int(digits[i] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

// Authorize reserves the amount on a tokenized card.
func (p *Provider) Authorize(ctx context.Context, req payment.AuthorizeRequest) (payment.Authorization, error) {
	if err := validate(req.IdempotencyKey, req.OrderID, req.Amount); err != nil {
		return payment.Authorization{}, fmt.Errorf("authorize: %w", err)
	}
	hash := requestHash("authorize", req.OrderID, req.PaymentMethod, amountKey(req.Amount))
	auth, err := run(p, ctx, "authorize", req.IdempotencyKey, req.OrderID, hash, func(conn querier) (payment.Authorization, []payment.Event, error) {
		behaviour, last4, ok := parseToken(req.PaymentMethod)
		if !ok {
			return payment.Authorization{}, nil, fmt.Errorf("payment method %q: %w", req.PaymentMethod, payment.ErrNotFound)
		}
		now := p.opts.Now().UTC()
		if _, err := p.exec(ctx, conn, `INSERT INTO sim_payment_methods (token, last4, behaviour, created_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (token) DO NOTHING`,
			req.PaymentMethod, last4, behaviour, now.UnixNano()); err != nil {
			return payment.Authorization{}, nil, err
		}
		if behaviour == behaviourTransient {
			return payment.Authorization{}, nil, payment.Transient(errors.New("processing error at the issuer"))
		}
		if code, ok := strings.CutPrefix(behaviour, behaviourDeclinePrefix); ok {
			return payment.Authorization{}, []payment.Event{{
				Type: payment.EventFailed, OrderID: req.OrderID, Amount: req.Amount, DeclineCode: code, At: now,
			}}, &payment.DeclineError{Code: code}
		}
		a := payment.Authorization{ID: newID("auth"), OrderID: req.OrderID, Amount: req.Amount, Last4: last4, CreatedAt: now}
		_, err := p.exec(ctx, conn, `INSERT INTO sim_payment_authorizations (id, order_id, token, amount, currency, status, created_at)
			VALUES (?, ?, ?, ?, ?, 'authorized', ?)`, a.ID, a.OrderID, req.PaymentMethod, a.Amount.Amount, a.Amount.Currency, now.UnixNano())
		return a, nil, err
	})
	if err != nil {
		return payment.Authorization{}, fmt.Errorf("authorize order %s: %w", req.OrderID, err)
	}
	return auth, nil
}

// authorization is a row of sim_payment_authorizations.
type authorization struct {
	orderID, status, behaviour string
	amount                     money.Money
}

func (p *Provider) loadAuthorization(ctx context.Context, conn querier, id, orderID string) (authorization, error) {
	var a authorization
	err := p.queryRow(ctx, conn, `SELECT a.order_id, a.status, a.amount, a.currency, m.behaviour
		FROM sim_payment_authorizations a JOIN sim_payment_methods m ON m.token = a.token WHERE a.id = ?`, id).
		Scan(&a.orderID, &a.status, &a.amount.Amount, &a.amount.Currency, &a.behaviour)
	if errors.Is(err, sql.ErrNoRows) || err == nil && a.orderID != orderID {
		return a, fmt.Errorf("authorization %s of order %s: %w", id, orderID, payment.ErrNotFound)
	}
	return a, err
}

// Capture takes authorized money, once per authorization.
func (p *Provider) Capture(ctx context.Context, req payment.CaptureRequest) (payment.Capture, error) {
	if err := validate(req.IdempotencyKey, req.OrderID, req.Amount); err != nil {
		return payment.Capture{}, fmt.Errorf("capture: %w", err)
	}
	hash := requestHash("capture", req.OrderID, req.AuthorizationID, amountKey(req.Amount))
	c, err := run(p, ctx, "capture", req.IdempotencyKey, req.OrderID, hash, func(conn querier) (payment.Capture, []payment.Event, error) {
		a, err := p.loadAuthorization(ctx, conn, req.AuthorizationID, req.OrderID)
		if err != nil {
			return payment.Capture{}, nil, err
		}
		switch a.status {
		case "captured":
			return payment.Capture{}, nil, fmt.Errorf("authorization %s already captured: %w", req.AuthorizationID, payment.ErrInvalidState)
		case "voided":
			return payment.Capture{}, nil, fmt.Errorf("authorization %s was voided: %w", req.AuthorizationID, payment.ErrInvalidState)
		}
		if req.Amount.Currency != a.amount.Currency || req.Amount.Amount > a.amount.Amount {
			return payment.Capture{}, nil, fmt.Errorf("capture %s %s of an authorization for %s %s: %w",
				req.Amount.Decimal(), req.Amount.Currency, a.amount.Decimal(), a.amount.Currency, payment.ErrAmount)
		}
		now := p.opts.Now().UTC()
		if a.behaviour == behaviourCaptureDecline {
			return payment.Capture{}, []payment.Event{{
				Type: payment.EventFailed, AuthorizationID: req.AuthorizationID, OrderID: req.OrderID,
				Amount: req.Amount, DeclineCode: payment.DeclineGeneric, At: now,
			}}, &payment.DeclineError{Code: payment.DeclineGeneric}
		}
		c := payment.Capture{ID: newID("cap"), AuthorizationID: req.AuthorizationID, OrderID: req.OrderID, Amount: req.Amount, CreatedAt: now}
		if _, err := p.exec(ctx, conn, `INSERT INTO sim_payment_captures (id, authorization_id, order_id, amount, currency, created_at)
			VALUES (?, ?, ?, ?, ?, ?)`, c.ID, c.AuthorizationID, c.OrderID, c.Amount.Amount, c.Amount.Currency, now.UnixNano()); err != nil {
			return payment.Capture{}, nil, err
		}
		if _, err := p.exec(ctx, conn, `UPDATE sim_payment_authorizations SET status = 'captured' WHERE id = ?`, req.AuthorizationID); err != nil {
			return payment.Capture{}, nil, err
		}
		return c, []payment.Event{{
			Type: payment.EventCaptured, AuthorizationID: c.AuthorizationID, CaptureID: c.ID,
			OrderID: c.OrderID, Amount: c.Amount, At: now,
		}}, nil
	})
	if err != nil {
		return payment.Capture{}, fmt.Errorf("capture order %s: %w", req.OrderID, err)
	}
	return c, nil
}

// Void releases an authorization that was not captured.
func (p *Provider) Void(ctx context.Context, req payment.VoidRequest) error {
	if req.IdempotencyKey == "" || req.OrderID == "" {
		return fmt.Errorf("void: idempotency key and order id are required")
	}
	hash := requestHash("void", req.OrderID, req.AuthorizationID)
	_, err := run(p, ctx, "void", req.IdempotencyKey, req.OrderID, hash, func(conn querier) (struct{}, []payment.Event, error) {
		a, err := p.loadAuthorization(ctx, conn, req.AuthorizationID, req.OrderID)
		if err != nil {
			return struct{}{}, nil, err
		}
		if a.status != "authorized" {
			return struct{}{}, nil, fmt.Errorf("authorization %s is %s: %w", req.AuthorizationID, a.status, payment.ErrInvalidState)
		}
		if _, err := p.exec(ctx, conn, `UPDATE sim_payment_authorizations SET status = 'voided' WHERE id = ?`, req.AuthorizationID); err != nil {
			return struct{}{}, nil, err
		}
		return struct{}{}, []payment.Event{{
			Type: payment.EventVoided, AuthorizationID: req.AuthorizationID, OrderID: req.OrderID,
			Amount: a.amount, At: p.opts.Now().UTC(),
		}}, nil
	})
	if err != nil {
		return fmt.Errorf("void order %s: %w", req.OrderID, err)
	}
	return nil
}

// Refund returns captured money; several partial refunds may add up to the
// captured amount.
func (p *Provider) Refund(ctx context.Context, req payment.RefundRequest) (payment.Refund, error) {
	if err := validate(req.IdempotencyKey, req.OrderID, req.Amount); err != nil {
		return payment.Refund{}, fmt.Errorf("refund: %w", err)
	}
	hash := requestHash("refund", req.OrderID, req.CaptureID, amountKey(req.Amount), req.Reason)
	r, err := run(p, ctx, "refund", req.IdempotencyKey, req.OrderID, hash, func(conn querier) (payment.Refund, []payment.Event, error) {
		var orderID, authID string
		var captured money.Money
		var refunded int64
		err := p.queryRow(ctx, conn, `SELECT c.order_id, c.authorization_id, c.amount, c.currency,
				(SELECT coalesce(sum(r.amount), 0) FROM sim_payment_refunds r WHERE r.capture_id = c.id)
			FROM sim_payment_captures c WHERE c.id = ?`, req.CaptureID).
			Scan(&orderID, &authID, &captured.Amount, &captured.Currency, &refunded)
		if errors.Is(err, sql.ErrNoRows) || err == nil && orderID != req.OrderID {
			return payment.Refund{}, nil, fmt.Errorf("capture %s of order %s: %w", req.CaptureID, req.OrderID, payment.ErrNotFound)
		}
		if err != nil {
			return payment.Refund{}, nil, err
		}
		if req.Amount.Currency != captured.Currency || req.Amount.Amount > captured.Amount-refunded {
			left := money.Money{Amount: captured.Amount - refunded, Currency: captured.Currency}
			return payment.Refund{}, nil, fmt.Errorf("refund %s %s with %s %s left on the capture: %w",
				req.Amount.Decimal(), req.Amount.Currency, left.Decimal(), left.Currency, payment.ErrAmount)
		}
		now := p.opts.Now().UTC()
		r := payment.Refund{ID: newID("re"), CaptureID: req.CaptureID, OrderID: req.OrderID, Amount: req.Amount, CreatedAt: now}
		if _, err := p.exec(ctx, conn, `INSERT INTO sim_payment_refunds (id, capture_id, order_id, amount, currency, reason, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, r.ID, r.CaptureID, r.OrderID, r.Amount.Amount, r.Amount.Currency, req.Reason, now.UnixNano()); err != nil {
			return payment.Refund{}, nil, err
		}
		return r, []payment.Event{{
			Type: payment.EventRefunded, AuthorizationID: authID, CaptureID: r.CaptureID, RefundID: r.ID,
			OrderID: r.OrderID, Amount: r.Amount, At: now,
		}}, nil
	})
	if err != nil {
		return payment.Refund{}, fmt.Errorf("refund order %s: %w", req.OrderID, err)
	}
	return r, nil
}

// Captures counts the captures actually made for an order: the number the
// exactly-once guarantee keeps at one.
func (p *Provider) Captures(ctx context.Context, orderID string) (int, error) {
	var n int
	if err := p.queryRow(ctx, p.db, `SELECT count(*) FROM sim_payment_captures WHERE order_id = ?`, orderID).Scan(&n); err != nil {
		return 0, fmt.Errorf("count captures of order %s: %w", orderID, err)
	}
	return n, nil
}

func validate(key, orderID string, amount money.Money) error {
	if key == "" || orderID == "" {
		return errors.New("idempotency key and order id are required")
	}
	return payment.ValidateAmount(amount)
}

func amountKey(m money.Money) string { return fmt.Sprintf("%d %s", m.Amount, m.Currency) }

// requestHash fingerprints a request for the idempotency check. Fields are
// length-prefixed so that no two different requests collide by
// concatenation.
func requestHash(fields ...string) string {
	h := sha256.New()
	for _, f := range fields {
		fmt.Fprintf(h, "%d:%s;", len(f), f)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func newID(prefix string) string { return prefix + "_sim_" + strings.ToLower(crand.Text()) }

// run executes one provider call: network simulation, then in one write
// transaction the idempotency check, the effect and the ledger row, then
// the webhooks. A replayed key returns the stored result or domain error
// without calling fn. Domain errors (declines, not found, wrong state, bad
// amount) are stored like results; transient errors and storage failures
// roll back and leave the key unused, so a retry runs for real.
func run[T any](p *Provider, ctx context.Context, op, key, orderID, hash string,
	fn func(conn querier) (T, []payment.Event, error)) (T, error) {
	var zero T
	if err := p.beforeCall(ctx); err != nil {
		return zero, err
	}
	var (
		result    T
		domainErr error
		events    []payment.Event
	)
	err := p.inTx(ctx, []string{"key:" + key, "order:" + orderID}, func(conn querier) error {
		var storedOp, storedHash string
		var stored []byte
		var kind, detail sql.NullString
		err := p.queryRow(ctx, conn, `SELECT operation, request_hash, result, error_kind, error_detail
			FROM sim_payment_ops WHERE idempotency_key = ?`, key).Scan(&storedOp, &storedHash, &stored, &kind, &detail)
		switch {
		case err == nil:
			if storedOp != op || storedHash != hash {
				return fmt.Errorf("key %q was used for another %s request: %w", key, storedOp, payment.ErrIdempotencyMismatch)
			}
			if kind.Valid {
				domainErr = decodeError(kind.String, detail.String)
				return nil
			}
			if err := json.Unmarshal(stored, &result); err != nil {
				return fmt.Errorf("decode stored %s result: %w", op, err)
			}
			return nil
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}

		res, evs, err := fn(conn)
		now := p.opts.Now().UnixNano()
		if kind, detail, ok := encodeError(err); ok {
			domainErr, events = err, evs
			_, err := p.exec(ctx, conn, `INSERT INTO sim_payment_ops (idempotency_key, operation, request_hash, error_kind, error_detail, created_at)
				VALUES (?, ?, ?, ?, ?, ?)`, key, op, hash, kind, detail, now)
			return err
		}
		if err != nil {
			return err
		}
		data, err := json.Marshal(res)
		if err != nil {
			return fmt.Errorf("encode %s result: %w", op, err)
		}
		if _, err := p.exec(ctx, conn, `INSERT INTO sim_payment_ops (idempotency_key, operation, request_hash, result, created_at)
			VALUES (?, ?, ?, ?, ?)`, key, op, hash, data, now); err != nil {
			return err
		}
		result, events = res, evs
		return nil
	})
	if err != nil {
		return zero, err
	}
	for _, e := range events {
		p.notify(e)
	}
	if domainErr != nil {
		return zero, domainErr
	}
	if p.draw(p.opts.LostResponseRate) {
		return zero, payment.Transient(errors.New("simulated timeout: response lost after the provider committed"))
	}
	return result, nil
}

// encodeError says how to store a domain error, and whether err is one.
func encodeError(err error) (kind, detail string, ok bool) {
	if de, isDecline := errors.AsType[*payment.DeclineError](err); isDecline {
		return "declined", de.Code, true
	}
	for _, k := range []struct {
		kind string
		err  error
	}{{"not_found", payment.ErrNotFound}, {"invalid_state", payment.ErrInvalidState}, {"amount", payment.ErrAmount}} {
		if errors.Is(err, k.err) {
			return k.kind, err.Error(), true
		}
	}
	return "", "", false
}

// replayedError is a domain error read back from the ledger.
type replayedError struct {
	msg      string
	sentinel error
}

func (e *replayedError) Error() string { return e.msg }
func (e *replayedError) Unwrap() error { return e.sentinel }

func decodeError(kind, detail string) error {
	switch kind {
	case "declined":
		return &payment.DeclineError{Code: detail}
	case "not_found":
		return &replayedError{detail, payment.ErrNotFound}
	case "invalid_state":
		return &replayedError{detail, payment.ErrInvalidState}
	default:
		return &replayedError{detail, payment.ErrAmount}
	}
}

// beforeCall simulates the network on the way in: latency, then perhaps a
// transient failure before anything happens.
func (p *Provider) beforeCall(ctx context.Context) error {
	if d := p.latency(); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if p.draw(p.opts.FailureRate) {
		return payment.Transient(errors.New("simulated provider error (503)"))
	}
	return nil
}

func (p *Provider) latency() time.Duration {
	if p.opts.Jitter == 0 {
		return p.opts.Latency
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.opts.Latency - p.opts.Jitter + time.Duration(p.rng.Int64N(int64(2*p.opts.Jitter)+1))
}

// draw reports true with probability rate.
func (p *Provider) draw(rate float64) bool {
	if rate <= 0 {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rng.Float64() < rate
}

func (p *Provider) notify(e payment.Event) {
	if p.opts.Webhook == nil {
		return
	}
	e.ID = newID("evt")
	p.hookMu.Lock()
	defer p.hookMu.Unlock()
	if p.hookClosed {
		return
	}
	p.hooks.Go(func() { p.opts.Webhook(p.hookCtx, e) })
}

// inTx runs fn in a transaction on one connection that holds the locks
// for what the call touches, so the idempotency check and the write it
// guards cannot interleave with another call's, in this process or
// another. With Transact that is the store's group commit, which runs one
// write at a time under the database's write lock. Otherwise, in SQLite,
// it is that lock taken up front by BEGIN IMMEDIATE (locks is ignored); if
// it stays busy past the connection's busy_timeout the call fails
// transiently and can be retried.
// In PostgreSQL it is a transaction-scoped advisory lock for each of locks
// (the idempotency key, then the order, always in that order, so two calls
// never wait for each other in a circle): calls for other orders run
// alongside.
func (p *Provider) inTx(ctx context.Context, locks []string, fn func(q querier) error) (err error) {
	if p.opts.Transact != nil {
		err := p.opts.Transact(ctx, func(tx *sql.Tx) error { return fn(stmtTx{tx, p}) })
		// Outside the transaction the write connection is free again.
		p.prepareWanted(context.WithoutCancel(ctx))
		return classify(err)
	}
	conn, err := p.db.Conn(ctx)
	if err != nil {
		return classify(err)
	}
	defer conn.Close()
	begin := "BEGIN IMMEDIATE"
	if p.pg {
		begin = "BEGIN"
	}
	if _, err := conn.ExecContext(ctx, begin); err != nil {
		return classify(err)
	}
	if p.pg {
		for _, l := range locks {
			if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, "surge.simulated_payments."+l); err != nil {
				rollback(conn)
				return classify(err)
			}
		}
	}
	if err := fn(conn); err != nil {
		rollback(conn)
		return classify(err)
	}
	// Commit even if ctx ended meanwhile: the work is done and consistent.
	if _, err := conn.ExecContext(context.WithoutCancel(ctx), "COMMIT"); err != nil {
		rollback(conn)
		return classify(err)
	}
	return nil
}

// querier is a connection, the pool, or a transaction Transact lent.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// stmtTx runs statements in a transaction Transact lent, prepared when
// the provider has prepared them: parsing SQL costs more than running
// these small statements.
type stmtTx struct {
	tx *sql.Tx
	p  *Provider
}

func (t stmtTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := t.p.prepared(query); st != nil {
		ts := t.tx.StmtContext(ctx, st)
		defer ts.Close()
		return ts.ExecContext(ctx, args...)
	}
	return t.tx.ExecContext(ctx, query, args...)
}

func (t stmtTx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := t.p.prepared(query); st != nil {
		// database/sql closes the statement once the row is read.
		ts := t.tx.StmtContext(ctx, st)
		defer ts.Close()
		return ts.QueryRowContext(ctx, args...)
	}
	return t.tx.QueryRowContext(ctx, query, args...)
}

// prepared returns the statement prepared for query, or notes query for
// prepareWanted. It never prepares: inside Transact's transaction the
// pool's connection is busy.
func (p *Provider) prepared(query string) *sql.Stmt {
	p.stmtMu.RLock()
	st, seen := p.stmts[query], p.wanted[query]
	p.stmtMu.RUnlock()
	if st == nil && !seen {
		p.stmtMu.Lock()
		p.wanted[query] = true
		p.stmtMu.Unlock()
	}
	return st
}

// prepareWanted prepares on db the statements prepared noted. It holds
// no lock while it waits for the connection: a call inside a transaction,
// which holds the connection, may be looking a statement up meanwhile.
func (p *Provider) prepareWanted(ctx context.Context) {
	p.stmtMu.Lock()
	var qs []string
	for q := range p.wanted {
		qs = append(qs, q)
	}
	clear(p.wanted)
	p.stmtMu.Unlock()
	for _, q := range qs {
		st, err := p.db.PrepareContext(ctx, q)
		if err != nil {
			continue // it runs unprepared, and is noted again
		}
		p.stmtMu.Lock()
		if _, dup := p.stmts[q]; dup || p.stmts == nil {
			st.Close()
		} else {
			p.stmts[q] = st
		}
		p.stmtMu.Unlock()
	}
}

// exec runs a statement written with ? placeholders in the provider's
// dialect.
func (p *Provider) exec(ctx context.Context, q querier, query string, args ...any) (sql.Result, error) {
	return q.ExecContext(ctx, p.rebind(query), args...)
}

// queryRow runs a query written with ? placeholders in the provider's
// dialect.
func (p *Provider) queryRow(ctx context.Context, q querier, query string, args ...any) *sql.Row {
	return q.QueryRowContext(ctx, p.rebind(query), args...)
}

// rebind numbers the ? placeholders for PostgreSQL ($1, $2, ...). The
// provider's statements have no ? anywhere else, not even in literals.
func (p *Provider) rebind(query string) string {
	if !p.pg {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// rollback ends a failed transaction; if even that fails, the connection is
// discarded rather than returned to the pool inside a transaction.
func rollback(conn *sql.Conn) {
	if _, err := conn.ExecContext(context.Background(), "ROLLBACK"); err != nil {
		_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	}
}

// classify marks lock contention as transient: SQLite's busy database,
// PostgreSQL's deadlock victims, serialization failures and lock
// timeouts.
func classify(err error) error {
	if se, ok := errors.AsType[*sqlite.Error](err); ok {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return payment.Transient(err)
		}
	}
	if pe, ok := errors.AsType[*pgconn.PgError](err); ok {
		switch pe.Code {
		case "40001", "40P01", "55P03":
			return payment.Transient(err)
		}
	}
	return err
}
