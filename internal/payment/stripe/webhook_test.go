package stripe

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/surge-commerce/surge/internal/payment"
)

// hookProvider is a provider with a SQLite ledger, enough for webhooks.
func hookProvider(t testing.TB) *Provider {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "hooks.db"))
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	p, err := New(context.Background(), Config{SecretKey: testSecret, PublishableKey: testPublic, WebhookSecret: testHookSecret, DB: db})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// recorder collects the events a webhook handler applies.
type recorder struct {
	mu     sync.Mutex
	events []payment.Event
	fail   error
}

func (r *recorder) apply(_ context.Context, e payment.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	r.events = append(r.events, e)
	return nil
}

func (r *recorder) got() []payment.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]payment.Event(nil), r.events...)
}

// signed is a Stripe webhook request: the body and its Stripe-Signature,
// made with stripe-go's own signing code.
func signed(body, secret string, at time.Time) (string, string) {
	sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: []byte(body), Secret: secret, Timestamp: at})
	return body, sp.Header
}

func post(h http.Handler, body, sig string) *httptest.ResponseRecorder {
	req := httptest.NewRequest("POST", "/api/v1/payments/stripe/webhook", strings.NewReader(body))
	if sig != "" {
		req.Header.Set("Stripe-Signature", sig)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func intentEvent(id, typ, order string) string {
	return fmt.Sprintf(`{"id":%q,"object":"event","type":%q,"created":1760000000,"api_version":"2025-08-27.basil",
"data":{"object":{"id":"pi_3Pq","object":"payment_intent","amount":4999,"amount_received":4999,"currency":"usd",
"status":"succeeded","metadata":{"order_id":%q},"last_payment_error":{"type":"card_error","decline_code":"insufficient_funds"}}}}`, id, typ, order)
}

func TestWebhookSignatures(t *testing.T) {
	p := hookProvider(t)
	rec := &recorder{}
	h := p.WebhookHandler(rec.apply, nil)
	now := time.Now()

	body, sig := signed(intentEvent("evt_1", "payment_intent.succeeded", "ord_1"), testHookSecret, now)
	if w := post(h, body, sig); w.Code != 200 {
		t.Fatalf("valid event: %d %s", w.Code, w.Body)
	}
	evs := rec.got()
	if len(evs) != 1 {
		t.Fatalf("applied %d events, want 1", len(evs))
	}
	want := payment.Event{ID: "evt_1", Type: payment.EventCaptured, AuthorizationID: "pi_3Pq", CaptureID: "pi_3Pq", OrderID: "ord_1",
		Amount: usd(4999), At: time.Unix(1760000000, 0).UTC()}
	if evs[0] != want {
		t.Errorf("event %+v, want %+v", evs[0], want)
	}

	for name, tc := range map[string]struct{ body, sig string }{
		"tampered body": {strings.Replace(body, "4999", "1", 1), sig},
		"other secret": func() struct{ body, sig string } {
			b, s := signed(body, "whsec_someoneelse123", now)
			return struct{ body, sig string }{b, s}
		}(),
		"stale": func() struct{ body, sig string } {
			b, s := signed(body, testHookSecret, now.Add(-10*time.Minute))
			return struct{ body, sig string }{b, s}
		}(),
		"unsigned":       {body, ""},
		"garbled header": {body, "t=abc,v1=zz"},
		"not an event": func() struct{ body, sig string } {
			b, s := signed(`[1,2]`, testHookSecret, now)
			return struct{ body, sig string }{b, s}
		}(),
	} {
		w := post(h, tc.body, tc.sig)
		if w.Code != 400 || !strings.Contains(w.Header().Get("Content-Type"), "problem+json") {
			t.Errorf("%s: %d %s, want a 400 problem", name, w.Code, w.Body)
		}
	}
	if n := len(rec.got()); n != 1 {
		t.Errorf("%d events applied after the refused requests, want still 1", n)
	}

	// A replay of the valid request (within the tolerance) is acknowledged
	// and not applied again; so is Stripe's own redelivery, signed anew.
	if w := post(h, body, sig); w.Code != 200 || !strings.Contains(w.Body.String(), "already") {
		t.Errorf("replay: %d %s", w.Code, w.Body)
	}
	b2, sig2 := signed(body, testHookSecret, now.Add(time.Second))
	if w := post(h, b2, sig2); w.Code != 200 {
		t.Errorf("redelivery: %d", w.Code)
	}
	if n := len(rec.got()); n != 1 {
		t.Errorf("the replayed event was applied %d times, want once", n)
	}
}

// TestWebhookRetryAfterFailure: an event that could not be applied is
// answered 500 and not remembered, so Stripe's next delivery applies it.
func TestWebhookRetryAfterFailure(t *testing.T) {
	p := hookProvider(t)
	rec := &recorder{fail: errors.New("database down")}
	h := p.WebhookHandler(rec.apply, nil)
	body, sig := signed(intentEvent("evt_2", "payment_intent.payment_failed", "ord_2"), testHookSecret, time.Now())
	if w := post(h, body, sig); w.Code != 500 {
		t.Fatalf("apply failed: %d, want 500 so Stripe delivers again", w.Code)
	}
	rec.mu.Lock()
	rec.fail = nil
	rec.mu.Unlock()
	if w := post(h, body, sig); w.Code != 200 {
		t.Fatalf("redelivery: %d", w.Code)
	}
	evs := rec.got()
	if len(evs) != 1 || evs[0].Type != payment.EventFailed || evs[0].DeclineCode != "insufficient_funds" || evs[0].OrderID != "ord_2" {
		t.Fatalf("events %+v, want one payment.failed for ord_2 (insufficient_funds)", evs)
	}
}

func TestWebhookEventTypes(t *testing.T) {
	p := hookProvider(t)
	rec := &recorder{}
	h := p.WebhookHandler(rec.apply, nil)
	send := func(body string) {
		t.Helper()
		b, s := signed(body, testHookSecret, time.Now())
		if w := post(h, b, s); w.Code != 200 {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
	}
	send(intentEvent("evt_c", "payment_intent.canceled", "ord_3"))
	send(`{"id":"evt_r","object":"event","type":"refund.created","created":1760000001,"data":{"object":{"id":"re_1","object":"refund",
"amount":1000,"currency":"usd","payment_intent":"pi_3Pq","metadata":{"order_id":"ord_3"}}}}`)
	send(`{"id":"evt_x","object":"event","type":"customer.created","created":1,"data":{"object":{"id":"cus_1","object":"customer"}}}`)
	send(intentEvent("evt_o", "payment_intent.succeeded", "")) // not one of Surge's intents
	evs := rec.got()
	if len(evs) != 2 {
		t.Fatalf("events %+v, want the void and the refund", evs)
	}
	if evs[0].Type != payment.EventVoided || evs[0].OrderID != "ord_3" {
		t.Errorf("cancel: %+v", evs[0])
	}
	if r := evs[1]; r.Type != payment.EventRefunded || r.RefundID != "re_1" || r.CaptureID != "pi_3Pq" || r.Amount != usd(1000) {
		t.Errorf("refund: %+v", r)
	}
}

// FuzzWebhook: whatever arrives, the handler answers without panicking,
// and nothing that is not signed with the secret is ever applied.
func FuzzWebhook(f *testing.F) {
	body, sig := signed(intentEvent("evt_f", "payment_intent.succeeded", "ord_f"), testHookSecret, time.Now())
	f.Add([]byte(body), sig)
	f.Add([]byte(`{"id":"evt","type":"payment_intent.succeeded","data":{"object":[]}}`), "t=1,v1=00")
	f.Add([]byte{0xff, 0x00}, "")
	p := hookProvider(f)
	f.Fuzz(func(t *testing.T, body []byte, header string) {
		rec := &recorder{}
		h := p.WebhookHandler(rec.apply, nil)
		req := httptest.NewRequest("POST", "/", bytes.NewReader(body))
		req.Header.Set("Stripe-Signature", header)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 && w.Code != 400 {
			t.Fatalf("status %d", w.Code)
		}
		if len(rec.got()) > 0 {
			if _, err := webhook.ConstructEventWithOptions(body, header, testHookSecret,
				webhook.ConstructEventOptions{IgnoreAPIVersionMismatch: true}); err != nil {
				t.Fatalf("applied an event whose signature does not verify")
			}
		}
	})
}
