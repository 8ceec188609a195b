package stripe

import (
	"database/sql"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // the pgx database/sql driver
	stripego "github.com/stripe/stripe-go/v82"
	_ "modernc.org/sqlite"

	"github.com/surge-commerce/surge/internal/enginetest"
	"github.com/surge-commerce/surge/internal/money"
	"github.com/surge-commerce/surge/internal/payment"
)

// Test keys: shaped like Stripe's, valid only against stripe-mock.
const (
	testSecret     = "sk_test_surge0123456789"
	testPublic     = "pk_test_surge0123456789"
	testHookSecret = "whsec_surge0123456789abcdef"
)

func usd(cents int64) money.Money { return money.Money{Amount: cents, Currency: "USD"} }

// onEachEngine runs test with a fresh SQLite database and, when the test
// engines are up, a fresh PostgreSQL database.
func onEachEngine(t *testing.T, test func(t *testing.T, db *sql.DB)) {
	t.Run("sqlite", func(t *testing.T) {
		db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "pay.db")+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
		if err != nil {
			t.Fatal(err)
		}
		db.SetMaxOpenConns(1)
		t.Cleanup(func() { db.Close() })
		test(t, db)
	})
	t.Run("postgres", func(t *testing.T) {
		u, _ := enginetest.Postgres(t)
		db, err := sql.Open("pgx", u)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		test(t, db)
	})
}

// stripeMock is the stripe-mock scripts/services started.
func stripeMock(t *testing.T) string {
	t.Helper()
	u := os.Getenv("SURGE_TEST_STRIPE_MOCK")
	if u == "" {
		t.Skip("SURGE_TEST_STRIPE_MOCK not set: start the engines with scripts/services (it builds and runs stripe-mock)")
	}
	return u
}

// tapped is one request that went through the tap to stripe-mock.
type tapped struct {
	Method, Path, IdempotencyKey string
	Form                         url.Values
}

// tap is a reverse proxy in front of stripe-mock that records every
// request, and can drop the connection after forwarding a request (the
// response is lost, the effect at Stripe happened).
type tap struct {
	mu   sync.Mutex
	reqs []tapped
	// loseNext, when set, makes the next POST to this path lose its
	// response.
	loseNext atomic.Pointer[string]
	srv      *httptest.Server
}

func newTap(t *testing.T, target string) *tap {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	tp := &tap{}
	proxy := httputil.NewSingleHostReverseProxy(u)
	tp.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(body))
		tp.mu.Lock()
		tp.reqs = append(tp.reqs, tapped{r.Method, r.URL.Path, r.Header.Get("Idempotency-Key"), form})
		tp.mu.Unlock()
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		if p := tp.loseNext.Load(); p != nil && *p == r.URL.Path && tp.loseNext.CompareAndSwap(p, nil) {
			rec := httptest.NewRecorder()
			proxy.ServeHTTP(rec, r)
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(tp.srv.Close)
	return tp
}

func (tp *tap) requests(method, pathPrefix string) []tapped {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	var out []tapped
	for _, r := range tp.reqs {
		if r.Method == method && strings.HasPrefix(r.Path, pathPrefix) {
			out = append(out, r)
		}
	}
	return out
}

func newProvider(t *testing.T, db *sql.DB, apiURL string) *Provider {
	t.Helper()
	p, err := New(t.Context(), Config{SecretKey: testSecret, PublishableKey: testPublic, WebhookSecret: testHookSecret,
		APIURL: apiURL, DB: db})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func authReq(order string) payment.AuthorizeRequest {
	return payment.AuthorizeRequest{IdempotencyKey: "authorize:" + order, OrderID: order, Amount: usd(4999), PaymentMethod: "pm_card_visa"}
}

// TestAuthorizeSendsAManualCaptureIntent: the intent stripe-mock accepts
// (it validates every parameter against Stripe's OpenAPI spec) carries
// manual capture, confirmation, the amount, the payment method and the
// order, with an idempotency key derived from the order.
func TestAuthorizeSendsAManualCaptureIntent(t *testing.T) {
	mock := stripeMock(t)
	onEachEngine(t, func(t *testing.T, db *sql.DB) {
		tp := newTap(t, mock)
		p := newProvider(t, db, tp.srv.URL)
		_, err := p.Authorize(t.Context(), authReq("ord_shape"))
		// stripe-mock answers every intent with its fixture's status,
		// requires_payment_method: to this provider, a refused card.
		if !errors.Is(err, payment.ErrDeclined) {
			t.Fatalf("authorize against stripe-mock: %v, want the fixture's status read as a decline", err)
		}
		creates := tp.requests("POST", "/v1/payment_intents")
		if len(creates) != 1 {
			t.Fatalf("%d intents created, want 1", len(creates))
		}
		f := creates[0].Form
		for k, want := range map[string]string{"amount": "4999", "currency": "usd", "capture_method": "manual", "confirm": "true",
			"payment_method": "pm_card_visa", "metadata[order_id]": "ord_shape", "payment_method_types[0]": "card"} {
			if got := f.Get(k); got != want {
				t.Errorf("%s = %q, want %q", k, got, want)
			}
		}
		if k := creates[0].IdempotencyKey; k != "surge:authorize:ord_shape" {
			t.Errorf("Idempotency-Key %q, want one derived from the order", k)
		}
	})
}

// TestSameKeyOneIntent: Authorize twice, and eight times at once, with one
// key: Stripe is asked to create one intent, and every call answers with
// it. stripe-mock keeps nothing between requests, so the one intent here
// is the provider's own ledger at work, not Stripe's idempotency.
func TestSameKeyOneIntent(t *testing.T) {
	mock := stripeMock(t)
	onEachEngine(t, func(t *testing.T, db *sql.DB) {
		tp := newTap(t, mock)
		p := newProvider(t, db, tp.srv.URL)
		ctx := t.Context()
		_, err1 := p.Authorize(ctx, authReq("ord_once"))
		_, err2 := p.Authorize(ctx, authReq("ord_once"))
		if err1 == nil || err2 == nil || err1.Error() != err2.Error() {
			t.Fatalf("two calls, two answers: %v / %v", err1, err2)
		}
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() { _, _ = p.Authorize(ctx, authReq("ord_burst")) })
		}
		wg.Wait()
		for _, order := range []string{"ord_once", "ord_burst"} {
			n, err := p.Intents(ctx, order)
			if err != nil || n != 1 {
				t.Errorf("%s: %d intents recorded (%v), want 1", order, n, err)
			}
		}
		if n := len(tp.requests("POST", "/v1/payment_intents")); n != 2 {
			t.Errorf("%d intents created at Stripe for two orders, want 2", n)
		}
		if n := len(tp.requests("GET", "/v1/payment_intents/")); n != 8 {
			t.Errorf("%d intents read back, want 8 (each later call reads the recorded intent)", n)
		}
		// The key belongs to its order.
		if _, err := p.Authorize(ctx, payment.AuthorizeRequest{IdempotencyKey: "authorize:ord_once", OrderID: "ord_other",
			Amount: usd(4999), PaymentMethod: "pm_card_visa"}); !errors.Is(err, payment.ErrIdempotencyMismatch) {
			t.Errorf("key reused for another order: %v, want ErrIdempotencyMismatch", err)
		}
	})
}

// TestLostResponseIsRetriedWithTheSameKey: when the answer to a create is
// lost after Stripe acted, stripe-go asks again with the same
// Idempotency-Key, which is what makes Stripe answer with the first intent
// instead of a second charge.
func TestLostResponseIsRetriedWithTheSameKey(t *testing.T) {
	mock := stripeMock(t)
	onEachEngine(t, func(t *testing.T, db *sql.DB) {
		tp := newTap(t, mock)
		path := "/v1/payment_intents"
		tp.loseNext.Store(&path)
		p := newProvider(t, db, tp.srv.URL)
		_, _ = p.Authorize(t.Context(), authReq("ord_lost"))
		creates := tp.requests("POST", "/v1/payment_intents")
		if len(creates) != 2 {
			t.Fatalf("%d create requests, want the lost one and its retry", len(creates))
		}
		if creates[0].IdempotencyKey != creates[1].IdempotencyKey || creates[0].IdempotencyKey == "" {
			t.Errorf("retry sent Idempotency-Key %q after %q", creates[1].IdempotencyKey, creates[0].IdempotencyKey)
		}
	})
}

// TestCaptureVoidRefund sends each call to stripe-mock and checks what it
// asked for.
func TestCaptureVoidRefund(t *testing.T) {
	mock := stripeMock(t)
	onEachEngine(t, func(t *testing.T, db *sql.DB) {
		tp := newTap(t, mock)
		p := newProvider(t, db, tp.srv.URL)
		ctx := t.Context()
		c, err := p.Capture(ctx, payment.CaptureRequest{IdempotencyKey: "capture:ord_c", AuthorizationID: "pi_123", OrderID: "ord_c", Amount: usd(4999)})
		if err != nil {
			t.Fatalf("capture: %v", err)
		}
		caps := tp.requests("POST", "/v1/payment_intents/pi_123/capture")
		if len(caps) != 1 || caps[0].Form.Get("amount_to_capture") != "4999" || caps[0].IdempotencyKey != "surge:capture:ord_c" {
			t.Fatalf("capture request %+v", caps)
		}
		if c.ID == "" || c.OrderID != "ord_c" || c.Amount != usd(4999) {
			t.Errorf("capture %+v", c)
		}
		r, err := p.Refund(ctx, payment.RefundRequest{IdempotencyKey: "refund:ord_c", CaptureID: c.ID, OrderID: "ord_c", Amount: usd(1000), Reason: "order expired"})
		if err != nil {
			t.Fatalf("refund: %v", err)
		}
		refs := tp.requests("POST", "/v1/refunds")
		if len(refs) != 1 || refs[0].Form.Get("payment_intent") != c.ID || refs[0].Form.Get("amount") != "1000" ||
			refs[0].Form.Get("metadata[order_id]") != "ord_c" || refs[0].IdempotencyKey != "surge:refund:ord_c" {
			t.Fatalf("refund request %+v", refs)
		}
		if !strings.HasPrefix(r.ID, "re_") {
			t.Errorf("refund id %q", r.ID)
		}
		if err := p.Void(ctx, payment.VoidRequest{IdempotencyKey: "void:ord_c", AuthorizationID: "pi_123", OrderID: "ord_c"}); err != nil {
			t.Fatalf("void: %v", err)
		}
		if v := tp.requests("POST", "/v1/payment_intents/pi_123/cancel"); len(v) != 1 || v[0].IdempotencyKey != "surge:void:ord_c" {
			t.Fatalf("void request %+v", v)
		}
		// Bad input never reaches Stripe.
		if _, err := p.Capture(ctx, payment.CaptureRequest{IdempotencyKey: "k", AuthorizationID: "pi_1", OrderID: "o", Amount: usd(0)}); !errors.Is(err, payment.ErrAmount) {
			t.Errorf("zero capture: %v", err)
		}
	})
}

// TestStripeMockRefusesABadKey: a key Stripe does not accept is a failure
// worth retrying (an operator can fix the key; the orders wait), and the
// error names no key.
func TestStripeMockRefusesABadKey(t *testing.T) {
	mock := stripeMock(t)
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "pay.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	p := newProvider(t, db, mock)
	// stripe-mock accepts any sk_test_ key; a malformed Authorization
	// header is what it refuses.
	p.client = stripego.NewClient("not a key", stripego.WithBackends(stripego.NewBackendsWithConfig(&stripego.BackendConfig{
		URL: stripego.String(mock), MaxNetworkRetries: stripego.Int64(0), LeveledLogger: &stripego.LeveledLogger{Level: stripego.LevelNull}})))
	_, err = p.Capture(t.Context(), payment.CaptureRequest{IdempotencyKey: "capture:o", AuthorizationID: "pi_1", OrderID: "o", Amount: usd(100)})
	if !payment.IsTransient(err) {
		t.Fatalf("bad key: %v, want a transient error", err)
	}
	if strings.Contains(err.Error(), "not a key") {
		t.Errorf("the error shows the key: %v", err)
	}
}

// TestAuthorizationOf: what each PaymentIntent status means, on intents
// decoded from Stripe's JSON.
func TestAuthorizationOf(t *testing.T) {
	req := authReq("ord_s")
	for _, tc := range []struct {
		json string
		want error
		code string
	}{
		{`{"id":"pi_1","status":"requires_capture","latest_charge":{"id":"ch_1","payment_method_details":{"card":{"last4":"4242"}}}}`, nil, ""},
		{`{"id":"pi_1","status":"succeeded"}`, nil, ""},
		{`{"id":"pi_1","status":"requires_payment_method","last_payment_error":{"type":"card_error","decline_code":"insufficient_funds"}}`, payment.ErrDeclined, "insufficient_funds"},
		{`{"id":"pi_1","status":"requires_payment_method"}`, payment.ErrDeclined, "card_declined"},
		{`{"id":"pi_1","status":"canceled"}`, payment.ErrDeclined, "canceled"},
		{`{"id":"pi_1","status":"requires_action"}`, errNeedsAction, ""},
	} {
		var pi stripego.PaymentIntent
		if err := json.Unmarshal([]byte(tc.json), &pi); err != nil {
			t.Fatal(err)
		}
		a, err := authorizationOf(&pi, req)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: err %v, want %v", pi.Status, err, tc.want)
			continue
		}
		if de, ok := errors.AsType[*payment.DeclineError](err); ok && de.Code != tc.code {
			t.Errorf("%s: decline code %q, want %q", pi.Status, de.Code, tc.code)
		}
		if err == nil && (a.ID != "pi_1" || a.OrderID != "ord_s" || a.Amount != req.Amount) {
			t.Errorf("%s: %+v", pi.Status, a)
		}
		if pi.Status == "requires_capture" && a.Last4 != "4242" {
			t.Errorf("last4 %q", a.Last4)
		}
	}
	var processing stripego.PaymentIntent
	_ = json.Unmarshal([]byte(`{"id":"pi_1","status":"processing"}`), &processing)
	if _, err := authorizationOf(&processing, req); !payment.IsTransient(err) {
		t.Errorf("processing: %v, want transient", err)
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err       *stripego.Error
		want      error
		transient bool
	}{
		{&stripego.Error{Type: stripego.ErrorTypeCard, DeclineCode: "expired_card", HTTPStatusCode: 402}, payment.ErrDeclined, false},
		{&stripego.Error{Type: stripego.ErrorTypeIdempotency, HTTPStatusCode: 400}, payment.ErrIdempotencyMismatch, false},
		{&stripego.Error{Type: stripego.ErrorTypeInvalidRequest, Code: stripego.ErrorCodeResourceMissing, HTTPStatusCode: 404}, payment.ErrNotFound, false},
		{&stripego.Error{Type: stripego.ErrorTypeInvalidRequest, Code: stripego.ErrorCodeAmountTooLarge, HTTPStatusCode: 400}, payment.ErrAmount, false},
		{&stripego.Error{Type: stripego.ErrorTypeInvalidRequest, Code: stripego.ErrorCodePaymentIntentUnexpectedState, HTTPStatusCode: 400}, payment.ErrInvalidState, false},
		{&stripego.Error{Type: stripego.ErrorTypeAPI, HTTPStatusCode: 500}, nil, true},
		{&stripego.Error{Type: stripego.ErrorTypeInvalidRequest, Code: stripego.ErrorCodeIdempotencyKeyInUse, HTTPStatusCode: 409}, nil, true},
		{&stripego.Error{Type: stripego.ErrorTypeInvalidRequest, Code: stripego.ErrorCodeRateLimit, HTTPStatusCode: 429}, nil, true},
	} {
		got := classify(tc.err)
		if tc.want != nil && !errors.Is(got, tc.want) {
			t.Errorf("%s %s: %v, want %v", tc.err.Type, tc.err.Code, got, tc.want)
		}
		if payment.IsTransient(got) != tc.transient {
			t.Errorf("%s %s: transient = %v", tc.err.Type, tc.err.Code, !tc.transient)
		}
	}
	if !payment.IsTransient(classify(&net.OpError{Op: "dial", Err: errors.New("refused")})) {
		t.Error("a network error is not transient")
	}
}

func TestTokenizeTakesOnlyPaymentMethods(t *testing.T) {
	p := &Provider{}
	for _, in := range []string{"4242424242424242", "4242 4242 4242 4242", "pm_", "pm_abc def", "tok_visa", "", "pm_" + strings.Repeat("a", 300)} {
		if _, _, err := p.Tokenize(in); !errors.Is(err, payment.ErrInvalidCard) {
			t.Errorf("Tokenize(%q) = %v, want ErrInvalidCard", in, err)
		} else if strings.Contains(err.Error(), "4242") {
			t.Errorf("the error repeats the card number: %v", err)
		}
	}
	if tok, last4, err := p.Tokenize("pm_1PgafyB7WZ01zgkW"); err != nil || tok != "pm_1PgafyB7WZ01zgkW" || last4 != "" {
		t.Errorf("Tokenize(pm_...) = %q %q %v", tok, last4, err)
	}
}

func TestValidateKeys(t *testing.T) {
	ok := Config{SecretKey: testSecret, PublishableKey: testPublic, WebhookSecret: testHookSecret}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid test keys refused: %v", err)
	}
	for name, c := range map[string]Config{
		"publishable key as secret": {SecretKey: testPublic, PublishableKey: testPublic, WebhookSecret: testHookSecret},
		"live secret, test public":  {SecretKey: "sk_live_surge0123456789", PublishableKey: testPublic, WebhookSecret: testHookSecret},
		"no webhook secret":         {SecretKey: testSecret, PublishableKey: testPublic},
		"trailing newline":          {SecretKey: testSecret + "\n", PublishableKey: testPublic, WebhookSecret: testHookSecret},
		"no publishable key":        {SecretKey: testSecret, WebhookSecret: testHookSecret},
	} {
		err := c.Validate()
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		for _, secret := range []string{"surge0123456789", "whsec_surge"} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("%s: the error shows a key: %v", name, err)
			}
		}
	}
}
