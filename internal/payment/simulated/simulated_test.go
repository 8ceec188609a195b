package simulated

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/surge-commerce/surge/internal/enginetest"
	"github.com/surge-commerce/surge/internal/money"
	"github.com/surge-commerce/surge/internal/payment"
	"github.com/surge-commerce/surge/internal/sqlitestore"
)

// openDB opens a SQLite file the way sqlitestore opens its writer pool,
// except with conns connections: 1 is the store's writer, more stresses the
// provider's own locking.
func openDB(tb testing.TB, path string, conns int) *sql.DB {
	tb.Helper()
	v := url.Values{}
	for _, p := range []string{"busy_timeout(5000)", "foreign_keys(1)", "journal_mode(WAL)", "synchronous(NORMAL)"} {
		v.Add("_pragma", p)
	}
	v.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", path+"?"+v.Encode())
	if err != nil {
		tb.Fatal(err)
	}
	db.SetMaxOpenConns(conns)
	tb.Cleanup(func() { db.Close() })
	return db
}

// opener opens a pool on one database; each call opens another pool, as
// another process would.
type opener func(tb testing.TB, conns int) *sql.DB

// onEachEngine runs test on a fresh SQLite database and on a fresh
// PostgreSQL database (skipped unless the test engines are configured).
func onEachEngine(t *testing.T, test func(t *testing.T, open opener)) {
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "pay.db")
		test(t, func(tb testing.TB, conns int) *sql.DB { return openDB(tb, path, conns) })
	})
	t.Run("sqlite-group-commit", func(t *testing.T) {
		// The embedded shop's way: the store's group commit runs the
		// provider's transactions (Options.Transact).
		path := filepath.Join(t.TempDir(), "pay.db")
		test(t, func(tb testing.TB, conns int) *sql.DB {
			st, err := sqlitestore.Open(context.Background(), path)
			if err != nil {
				tb.Fatal(err)
			}
			tb.Cleanup(func() { st.Close() })
			groupCommits.Store(st.Writer(), st.WriteTx)
			return st.Writer()
		})
	})
	t.Run("postgres", func(t *testing.T) {
		url, _ := enginetest.Postgres(t)
		test(t, func(tb testing.TB, conns int) *sql.DB {
			db, err := sql.Open("pgx", url)
			if err != nil {
				tb.Fatal(err)
			}
			db.SetMaxOpenConns(conns)
			tb.Cleanup(func() { db.Close() })
			return db
		})
	})
}

// groupCommits maps the writer pool of a store opened by onEachEngine to
// the store's WriteTx, which newProvider passes as Options.Transact.
var groupCommits sync.Map

func newProvider(tb testing.TB, db *sql.DB, opts Options) *Provider {
	tb.Helper()
	if tx, ok := groupCommits.Load(db); ok && opts.Transact == nil {
		opts.Transact = tx.(func(context.Context, func(*sql.Tx) error) error)
	}
	p, err := New(db, opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { p.Close() })
	return p
}

func usd(cents int64) money.Money { return money.Money{Amount: cents, Currency: "USD"} }

func tokenize(tb testing.TB, p *Provider, card string) string {
	tb.Helper()
	tok, _, err := p.Tokenize(card)
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

func authorize(tb testing.TB, p *Provider, order string, cents int64) payment.Authorization {
	tb.Helper()
	a, err := p.Authorize(context.Background(), payment.AuthorizeRequest{
		IdempotencyKey: "auth:" + order, OrderID: order, Amount: usd(cents), PaymentMethod: tokenize(tb, p, "4242 4242 4242 4242"),
	})
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

func captures(tb testing.TB, p *Provider, order string) int {
	tb.Helper()
	n, err := p.Captures(context.Background(), order)
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

func TestTestCards(t *testing.T) {
	onEachEngine(t, func(t *testing.T, open opener) {
		p := newProvider(t, open(t, 1), Options{})
		ctx := context.Background()
		for _, tc := range []struct {
			card           string
			authErr        error
			declineCode    string
			transient      bool
			captureDecline bool
		}{
			{card: "4242424242424242"},
			{card: "5555-5555-5555-4444"},
			{card: "4000000000000002", authErr: payment.ErrDeclined, declineCode: payment.DeclineGeneric},
			{card: "4000 0000 0000 9995", authErr: payment.ErrDeclined, declineCode: payment.DeclineInsufficientFunds},
			{card: "4000000000000069", authErr: payment.ErrDeclined, declineCode: payment.DeclineExpiredCard},
			{card: "4000000000000119", transient: true},
			{card: "4000000000000341", captureDecline: true},
			{card: "378282246310005"}, // any other Luhn-valid number: approved
		} {
			t.Run(tc.card, func(t *testing.T) {
				tok, last4, err := p.Tokenize(tc.card)
				if err != nil {
					t.Fatal(err)
				}
				digits := strings.NewReplacer(" ", "", "-", "").Replace(tc.card)
				if last4 != digits[len(digits)-4:] || !strings.HasPrefix(tok, "pm_sim_") || strings.Contains(tok, digits) {
					t.Fatalf("token %q last4 %q", tok, last4)
				}
				order := "o-" + digits
				req := payment.AuthorizeRequest{IdempotencyKey: "auth:" + order, OrderID: order, Amount: usd(1000), PaymentMethod: tok}
				for attempt := range 2 { // the second attempt replays the key
					a, err := p.Authorize(ctx, req)
					switch {
					case tc.transient:
						if !payment.IsTransient(err) {
							t.Fatalf("attempt %d: got %v, want a transient error", attempt, err)
						}
						continue
					case tc.authErr != nil:
						de, ok := errors.AsType[*payment.DeclineError](err)
						if !errors.Is(err, tc.authErr) || !ok || de.Code != tc.declineCode {
							t.Fatalf("attempt %d: got %v, want decline %s", attempt, err, tc.declineCode)
						}
						continue
					case err != nil:
						t.Fatalf("authorize: %v", err)
					}
					if a.Last4 != last4 || a.Amount != usd(1000) || a.OrderID != order {
						t.Fatalf("authorization %+v", a)
					}
					_, err = p.Capture(ctx, payment.CaptureRequest{IdempotencyKey: fmt.Sprint("cap:", order, attempt),
						AuthorizationID: a.ID, OrderID: order, Amount: usd(1000)})
					switch {
					case tc.captureDecline && !errors.Is(err, payment.ErrDeclined):
						t.Fatalf("capture: got %v, want declined", err)
					case !tc.captureDecline && attempt == 0 && err != nil:
						t.Fatalf("capture: %v", err)
					case !tc.captureDecline && attempt == 1 && !errors.Is(err, payment.ErrInvalidState):
						t.Fatalf("second capture with a new key: got %v, want ErrInvalidState", err)
					}
				}
			})
		}
		// The full card number is stored nowhere.
		rows, err := p.db.Query(`SELECT token || last4 || behaviour FROM sim_payment_methods`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(s, "42424242") || strings.Contains(s, "000000") {
				t.Errorf("stored %q looks like a card number", s)
			}
		}
	})
}

func TestCaptureExactlyOnceUnderConcurrency(t *testing.T) {
	onEachEngine(t, func(t *testing.T, open opener) {
		// Two providers on separate pools stand in for two worker processes;
		// the 50 goroutines are redeliveries of one order's capture message.
		p1 := newProvider(t, open(t, 4), Options{Latency: time.Millisecond, Jitter: time.Millisecond})
		p2 := newProvider(t, open(t, 4), Options{})
		a := authorize(t, p1, "o1", 5000)
		req := payment.CaptureRequest{IdempotencyKey: "capture:o1", AuthorizationID: a.ID, OrderID: "o1", Amount: usd(5000)}

		var wg sync.WaitGroup
		ids := make([]string, 50)
		errs := make([]error, 50)
		for i := range 50 {
			p := p1
			if i%2 == 1 {
				p = p2
			}
			wg.Go(func() {
				c, err := p.Capture(context.Background(), req)
				ids[i], errs[i] = c.ID, err
			})
		}
		wg.Wait()
		for i := range 50 {
			if errs[i] != nil {
				t.Fatalf("capture %d: %v", i, errs[i])
			}
			if ids[i] != ids[0] {
				t.Fatalf("capture %d got id %s, capture 0 got %s", i, ids[i], ids[0])
			}
		}
		if n := captures(t, p1, "o1"); n != 1 {
			t.Fatalf("%d captures, want exactly 1", n)
		}
	})
}

func TestIdempotencyMismatch(t *testing.T) {
	onEachEngine(t, func(t *testing.T, open opener) {
		p := newProvider(t, open(t, 1), Options{})
		ctx := context.Background()
		a := authorize(t, p, "o1", 5000)
		req := payment.CaptureRequest{IdempotencyKey: "k", AuthorizationID: a.ID, OrderID: "o1", Amount: usd(4000)}
		first, err := p.Capture(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		again, err := p.Capture(ctx, req)
		if err != nil || again != first {
			t.Fatalf("replay: %+v %v, want %+v", again, err, first)
		}
		other := req
		other.Amount = usd(5000)
		if _, err := p.Capture(ctx, other); !errors.Is(err, payment.ErrIdempotencyMismatch) {
			t.Fatalf("same key, other amount: %v", err)
		}
		if err := p.Void(ctx, payment.VoidRequest{IdempotencyKey: "k", AuthorizationID: a.ID, OrderID: "o1"}); !errors.Is(err, payment.ErrIdempotencyMismatch) {
			t.Fatalf("same key, other operation: %v", err)
		}
	})
}

func TestAmountAndStateRules(t *testing.T) {
	onEachEngine(t, func(t *testing.T, open opener) {
		p := newProvider(t, open(t, 1), Options{})
		ctx := context.Background()

		a := authorize(t, p, "o1", 5000)
		for name, amt := range map[string]money.Money{"more than authorized": usd(5001), "other currency": {Amount: 100, Currency: "EUR"}} {
			if _, err := p.Capture(ctx, payment.CaptureRequest{IdempotencyKey: "c-" + name, AuthorizationID: a.ID, OrderID: "o1", Amount: amt}); !errors.Is(err, payment.ErrAmount) {
				t.Errorf("capture %s: %v, want ErrAmount", name, err)
			}
		}
		for name, amt := range map[string]money.Money{"zero": usd(0), "negative": usd(-1), "bad currency": {Amount: 1, Currency: "usd"}} {
			if _, err := p.Capture(ctx, payment.CaptureRequest{IdempotencyKey: "z-" + name, AuthorizationID: a.ID, OrderID: "o1", Amount: amt}); !errors.Is(err, payment.ErrAmount) {
				t.Errorf("capture %s: %v, want ErrAmount", name, err)
			}
		}
		if _, err := p.Capture(ctx, payment.CaptureRequest{IdempotencyKey: "wrong-order", AuthorizationID: a.ID, OrderID: "o2", Amount: usd(1)}); !errors.Is(err, payment.ErrNotFound) {
			t.Errorf("capture for another order: %v, want ErrNotFound", err)
		}
		c, err := p.Capture(ctx, payment.CaptureRequest{IdempotencyKey: "cap", AuthorizationID: a.ID, OrderID: "o1", Amount: usd(4500)})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Void(ctx, payment.VoidRequest{IdempotencyKey: "void", AuthorizationID: a.ID, OrderID: "o1"}); !errors.Is(err, payment.ErrInvalidState) {
			t.Errorf("void after capture: %v, want ErrInvalidState", err)
		}
		// A stored domain error replays as the same error.
		if err := p.Void(ctx, payment.VoidRequest{IdempotencyKey: "void", AuthorizationID: a.ID, OrderID: "o1"}); !errors.Is(err, payment.ErrInvalidState) {
			t.Errorf("void replay: %v, want ErrInvalidState", err)
		}

		// Refunds add up to the capture, no more.
		refund := func(key string, cents int64) (payment.Refund, error) {
			return p.Refund(ctx, payment.RefundRequest{IdempotencyKey: key, CaptureID: c.ID, OrderID: "o1", Amount: usd(cents), Reason: "returned"})
		}
		r1, err := refund("r1", 3000)
		if err != nil {
			t.Fatal(err)
		}
		if r, err := refund("r1", 3000); err != nil || r.ID != r1.ID {
			t.Fatalf("refund replay: %+v %v", r, err)
		}
		if _, err := refund("r2", 1501); !errors.Is(err, payment.ErrAmount) {
			t.Fatalf("refund beyond the capture: %v, want ErrAmount", err)
		}
		if _, err := refund("r3", 1500); err != nil {
			t.Fatalf("refund of the rest: %v", err)
		}
		if _, err := refund("r4", 1); !errors.Is(err, payment.ErrAmount) {
			t.Fatalf("refund after full refund: %v, want ErrAmount", err)
		}

		// Void, then capture.
		b := authorize(t, p, "o3", 100)
		if err := p.Void(ctx, payment.VoidRequest{IdempotencyKey: "v3", AuthorizationID: b.ID, OrderID: "o3"}); err != nil {
			t.Fatal(err)
		}
		if _, err := p.Capture(ctx, payment.CaptureRequest{IdempotencyKey: "c3", AuthorizationID: b.ID, OrderID: "o3", Amount: usd(100)}); !errors.Is(err, payment.ErrInvalidState) {
			t.Errorf("capture after void: %v, want ErrInvalidState", err)
		}
		if _, err := p.Authorize(ctx, payment.AuthorizeRequest{IdempotencyKey: "x", OrderID: "o4", Amount: usd(1), PaymentMethod: "pm_sim_nope"}); !errors.Is(err, payment.ErrNotFound) {
			t.Errorf("unknown token: %v, want ErrNotFound", err)
		}
	})
}

func TestLedgerSurvivesReopen(t *testing.T) {
	onEachEngine(t, func(t *testing.T, open opener) {
		ctx := context.Background()
		db1 := open(t, 1)
		p1, err := New(db1, Options{})
		if err != nil {
			t.Fatal(err)
		}
		a := authorize(t, p1, "o1", 700)
		req := payment.CaptureRequest{IdempotencyKey: "capture:o1", AuthorizationID: a.ID, OrderID: "o1", Amount: usd(700)}
		first, err := p1.Capture(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		p1.Close()
		db1.Close() // the worker process dies

		p2 := newProvider(t, open(t, 1), Options{})
		again, err := p2.Capture(ctx, req) // the redelivered message
		if err != nil || again != first {
			t.Fatalf("after reopen: %+v %v, want %+v", again, err, first)
		}
		if n := captures(t, p2, "o1"); n != 1 {
			t.Fatalf("%d captures, want 1", n)
		}
	})
}

func TestLostResponseIsSafeToRetry(t *testing.T) {
	onEachEngine(t, func(t *testing.T, open opener) {
		ctx := context.Background()
		lossy := newProvider(t, open(t, 1), Options{LostResponseRate: 1})
		reliable := newProvider(t, open(t, 1), Options{})
		a := authorize(t, reliable, "o1", 900)
		req := payment.CaptureRequest{IdempotencyKey: "capture:o1", AuthorizationID: a.ID, OrderID: "o1", Amount: usd(900)}
		if _, err := lossy.Capture(ctx, req); !payment.IsTransient(err) {
			t.Fatalf("lossy capture: %v, want transient", err)
		}
		c, err := reliable.Capture(ctx, req) // the retry, with the same key
		if err != nil || c.Amount != usd(900) {
			t.Fatalf("retry: %+v %v", c, err)
		}
		if n := captures(t, reliable, "o1"); n != 1 {
			t.Fatalf("%d captures, want 1", n)
		}
	})
}

// outcomes runs n authorizations with distinct keys and returns which
// failed transiently.
func outcomes(t *testing.T, seed uint64, n int) string {
	t.Helper()
	p := newProvider(t, openDB(t, filepath.Join(t.TempDir(), "pay.db"), 1), Options{FailureRate: 0.4, Seed: seed})
	tok := tokenize(t, p, "4242424242424242")
	var b strings.Builder
	for i := range n {
		_, err := p.Authorize(context.Background(), payment.AuthorizeRequest{
			IdempotencyKey: fmt.Sprint("k", i), OrderID: fmt.Sprint("o", i), Amount: usd(100), PaymentMethod: tok})
		switch {
		case err == nil:
			b.WriteByte('.')
		case payment.IsTransient(err):
			b.WriteByte('x')
		default:
			t.Fatal(err)
		}
	}
	return b.String()
}

func TestFailureInjectionIsReproducible(t *testing.T) {
	a, b := outcomes(t, 42, 40), outcomes(t, 42, 40)
	if a != b {
		t.Fatalf("same seed, different outcomes:\n%s\n%s", a, b)
	}
	if !strings.Contains(a, "x") || !strings.Contains(a, ".") {
		t.Fatalf("rate 0.4 gave %s", a)
	}
	if c := outcomes(t, 43, 40); c == a {
		t.Fatalf("different seeds, same outcomes %s", a)
	}
}

func TestTransientFailureHasNoEffect(t *testing.T) {
	onEachEngine(t, func(t *testing.T, open opener) {
		failing := newProvider(t, open(t, 1), Options{FailureRate: 1})
		p := newProvider(t, open(t, 1), Options{})
		a := authorize(t, p, "o1", 100)
		req := payment.CaptureRequest{IdempotencyKey: "capture:o1", AuthorizationID: a.ID, OrderID: "o1", Amount: usd(100)}
		if _, err := failing.Capture(context.Background(), req); !payment.IsTransient(err) {
			t.Fatalf("got %v, want transient", err)
		}
		if n := captures(t, p, "o1"); n != 0 {
			t.Fatalf("a failed call captured %d times", n)
		}
		if _, err := p.Capture(context.Background(), req); err != nil {
			t.Fatalf("retry with the same key: %v", err)
		}
	})
}

func TestWebhooks(t *testing.T) {
	onEachEngine(t, func(t *testing.T, open opener) {
		events := make(chan payment.Event, 10)
		p := newProvider(t, open(t, 1), Options{
			Webhook: func(ctx context.Context, e payment.Event) { events <- e },
		})
		ctx := context.Background()
		next := func() payment.Event {
			t.Helper()
			select {
			case e := <-events:
				return e
			case <-time.After(10 * time.Second):
				t.Fatal("no webhook")
				return payment.Event{}
			}
		}
		a := authorize(t, p, "o1", 800)
		req := payment.CaptureRequest{IdempotencyKey: "capture:o1", AuthorizationID: a.ID, OrderID: "o1", Amount: usd(800)}
		c, err := p.Capture(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if e := next(); e.Type != payment.EventCaptured || e.CaptureID != c.ID || e.OrderID != "o1" || e.Amount != usd(800) || e.ID == "" {
			t.Fatalf("captured event %+v", e)
		}
		if _, err := p.Capture(ctx, req); err != nil { // replay: no second event
			t.Fatal(err)
		}
		r, err := p.Refund(ctx, payment.RefundRequest{IdempotencyKey: "r", CaptureID: c.ID, OrderID: "o1", Amount: usd(300)})
		if err != nil {
			t.Fatal(err)
		}
		if e := next(); e.Type != payment.EventRefunded || e.RefundID != r.ID || e.Amount != usd(300) {
			t.Fatalf("event after refund %+v (a replayed capture must not send one)", e)
		}
		tok := tokenize(t, p, "4000000000009995")
		if _, err := p.Authorize(ctx, payment.AuthorizeRequest{IdempotencyKey: "d", OrderID: "o2", Amount: usd(5), PaymentMethod: tok}); !errors.Is(err, payment.ErrDeclined) {
			t.Fatal(err)
		}
		if e := next(); e.Type != payment.EventFailed || e.DeclineCode != payment.DeclineInsufficientFunds || e.OrderID != "o2" {
			t.Fatalf("failed event %+v", e)
		}
		b := authorize(t, p, "o3", 10)
		if err := p.Void(ctx, payment.VoidRequest{IdempotencyKey: "v", AuthorizationID: b.ID, OrderID: "o3"}); err != nil {
			t.Fatal(err)
		}
		if e := next(); e.Type != payment.EventVoided || e.AuthorizationID != b.ID {
			t.Fatalf("voided event %+v", e)
		}
	})
}

func TestLatencyHonoursContext(t *testing.T) {
	p := newProvider(t, openDB(t, filepath.Join(t.TempDir(), "pay.db"), 1), Options{Latency: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := p.Authorize(ctx, payment.AuthorizeRequest{IdempotencyKey: "k", OrderID: "o", Amount: usd(1), PaymentMethod: "pm"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
}

func TestOptionsValidation(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "pay.db"), 1)
	for _, o := range []Options{{FailureRate: 1.5}, {LostResponseRate: -0.1}, {Latency: time.Millisecond, Jitter: time.Second}, {Dialect: "oracle"}} {
		if _, err := New(db, o); err == nil {
			t.Errorf("New accepted %+v", o)
		}
	}
}

func FuzzTokenize(f *testing.F) {
	for _, s := range []string{"4242424242424242", "4242 4242 4242 4241", "4000-0000-0000-0002", "", "abc", "0000000000000", "12345678901234567890", "4242\n4242424242424242"} {
		f.Add(s)
	}
	p := newProvider(f, openDB(f, filepath.Join(f.TempDir(), "pay.db"), 1), Options{})
	f.Fuzz(func(t *testing.T, card string) {
		tok, last4, err := p.Tokenize(card)
		var digits strings.Builder
		onlyDigits := true
		for _, r := range card {
			switch {
			case r >= '0' && r <= '9':
				digits.WriteRune(r)
			case r != ' ' && r != '-':
				onlyDigits = false
			}
		}
		d := digits.String()
		valid := onlyDigits && len(d) >= 12 && len(d) <= 19 && luhnReference(d)
		if valid != (err == nil) {
			t.Fatalf("Tokenize(%q) err=%v, valid=%v", card, err, valid)
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidCard) {
				t.Fatalf("Tokenize(%q): %v is not ErrInvalidCard", card, err)
			}
			return
		}
		if last4 != d[len(d)-4:] || !strings.HasPrefix(tok, "pm_sim_") || strings.Contains(tok, d) {
			t.Fatalf("Tokenize(%q) = %q, %q", card, tok, last4)
		}
	})
}

// luhnReference is an independent Luhn implementation: the sum of the
// digits of the doubled-every-second-from-the-right number.
func luhnReference(d string) bool {
	var sum int
	for i := range len(d) {
		n := int(d[len(d)-1-i] - '0')
		if i%2 == 1 {
			n = n * 2
			n = n/10 + n%10
		}
		sum += n
	}
	return sum%10 == 0
}

// TestCallsJoinTheStoresGroupCommit: with Options.Transact every call's
// ledger writes run in the transaction it lends (the embedded store's
// group commit), never in a transaction of the provider's own on the
// write connection, which would sync the log once per call.
func TestCallsJoinTheStoresGroupCommit(t *testing.T) {
	st, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "pay.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var lent atomic.Int64
	p := newProvider(t, st.Writer(), Options{Transact: func(ctx context.Context, fn func(*sql.Tx) error) error {
		lent.Add(1)
		return st.WriteTx(ctx, fn)
	}})
	a := authorize(t, p, "o1", 5000)
	ctx := context.Background()
	for range 2 { // the second is an idempotent replay: a read, in the same kind of transaction
		if _, err := p.Capture(ctx, payment.CaptureRequest{IdempotencyKey: "capture:o1", AuthorizationID: a.ID, OrderID: "o1", Amount: usd(5000)}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := p.Captures(ctx, "o1"); err != nil || n != 1 {
		t.Fatalf("captures %d (%v), want 1", n, err)
	}
	// The tables, the authorization and the two captures.
	if got := lent.Load(); got != 4 {
		t.Errorf("%d transactions lent by the store, want 4", got)
	}
	if s := st.Writer().Stats(); s.OpenConnections != 1 {
		t.Errorf("writer pool has %d connections open, want its one", s.OpenConnections)
	}
}
