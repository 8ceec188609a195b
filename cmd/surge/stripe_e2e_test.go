package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v82/webhook"
)

// Keys shaped like Stripe's test keys; stripe-mock accepts any.
const (
	e2eStripeSecret  = "sk_test_e2eSecretNeverLogged0123"
	e2eStripeHook    = "whsec_e2eHookSecretNeverLogged0123"
	e2eStripePublish = "pk_test_e2ePublishable0123"
)

// syncBuffer is an io.Writer safe for the shop's concurrent log lines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startStripeShop runs `surge serve --payment-provider stripe` against the
// stripe-mock of scripts/services: the secret key from the environment,
// the webhook secret from a file, everything it logs kept in logs.
func startStripeShop(t *testing.T, logs io.Writer, extra ...string) *runningShop {
	t.Helper()
	mock := os.Getenv("SURGE_TEST_STRIPE_MOCK")
	if mock == "" {
		t.Skip("SURGE_TEST_STRIPE_MOCK not set: start the engines with scripts/services (it builds and runs stripe-mock)")
	}
	hookFile := filepath.Join(t.TempDir(), "webhook-secret")
	if err := os.WriteFile(hookFile, []byte(e2eStripeHook+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"SURGE_STRIPE_SECRET_KEY": e2eStripeSecret}
	args := append([]string{"serve", "--addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
		"--data-dir", t.TempDir(), "--demo", "--demo-products", "100", "--admin-token", testToken,
		"--log-level", "debug", "--payment-provider", "stripe", "--stripe-api-url", mock,
		"--stripe-publishable-key", e2eStripePublish, "--stripe-webhook-secret-file", hookFile}, extra...)
	return launchServe(t, args, func(k string) string { return env[k] }, logs, testToken)
}

const e2eAddress = `"email":"pay@example.com","shipping_address":{"name":"Pay Er","line1":"1 Loop Rd","city":"Localhost","postal_code":"127","country":"US"}`

// payOrder checks out one unit of sku with the given payment object and
// returns the status and body.
func payOrder(t *testing.T, c *client, sku, paymentJSON, key string) (int, string) {
	t.Helper()
	if st, body := c.do("POST", "/api/v1/cart/items", `{"sku":"`+sku+`","quantity":1}`); st != 201 {
		t.Fatalf("add: %d %s", st, body)
	}
	return c.do("POST", "/api/v1/checkout", `{`+e2eAddress+`,"payment":`+paymentJSON+`}`, "Idempotency-Key", key)
}

// TestStripeCheckoutEndToEnd: with --payment-provider stripe the checkout
// takes a Stripe PaymentMethod and never a card number, the checkout page
// loads Stripe Elements, the order worker asks stripe-mock for the
// payment, and no secret shows in the logs or the process's command line.
func TestStripeCheckoutEndToEnd(t *testing.T) {
	logs := &syncBuffer{}
	s := startStripeShop(t, logs)
	sku := firstInStockSKU(t, s, 2)
	c := newClient(t, s.URL)

	// A card number is refused before anything is stored.
	st, body := payOrder(t, c, sku, `{"card_number":"4242424242424242"}`, "k-card")
	if st != 400 || !strings.Contains(body, "payment.card_number") || strings.Contains(body, "4242424242424242") {
		t.Fatalf("card number with Stripe: %d %s", st, body)
	}

	// The checkout page carries Stripe Elements, not the test-card field.
	st, page := c.do("GET", "/checkout", "")
	if st != 200 || !strings.Contains(page, `src="https://js.stripe.com/v3/"`) || !strings.Contains(page, `data-stripe-key="`+e2eStripePublish+`"`) ||
		strings.Contains(page, `name="card_number"`) || !strings.Contains(page, `name="payment_method"`) {
		t.Fatalf("checkout page with Stripe: %d, Stripe.js=%v", st, strings.Contains(page, "js.stripe.com"))
	}

	// A PaymentMethod from Stripe.js places the order; the worker's
	// authorization reaches stripe-mock, whose fixture intent has status
	// requires_payment_method: a refused card, so the order fails and
	// returns its stock.
	st, body = payOrder(t, c, sku, `{"payment_method":"pm_card_visa"}`, "k-pm")
	if st != 201 {
		t.Fatalf("checkout with a PaymentMethod: %d %s", st, body)
	}
	var o struct{ ID, Status string }
	_ = json.Unmarshal([]byte(body), &o)
	if got := waitStatus(t, c, o.ID); got != "payment_failed" {
		t.Fatalf("order %s ended %s; stripe-mock's intent needs another payment method", o.ID, got)
	}

	// Secrets: not in the logs (at debug level), not on the command line.
	cmdline := do(t, "GET", s.AdminURL+"/debug/pprof/cmdline", "", "")
	for _, secret := range []string{e2eStripeSecret, e2eStripeHook} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("a Stripe secret is in the logs")
		}
		if strings.Contains(cmdline.Body, secret) {
			t.Errorf("a Stripe secret is in /debug/pprof/cmdline")
		}
	}
	// The worker logs the decline after it stores the order's status.
	eventually(t, "the decline from stripe-mock logged", 10*time.Second, func() bool {
		return strings.Contains(logs.String(), "payment declined")
	})
}

// TestStripeWebhookEndToEnd: signed Stripe events sent to the shop's
// webhook route move orders exactly as the simulated provider's events
// would: a capture pays the order, a failure fails it and frees its stock;
// forged, stale and replayed calls change nothing. The shop runs without
// order workers (--role api), so only the webhook moves the orders.
func TestStripeWebhookEndToEnd(t *testing.T) {
	s := startStripeShop(t, io.Discard, "--role", "api")
	sku := firstInStockSKU(t, s, 2)
	c := newClient(t, s.URL)
	order := func(key string) string {
		st, body := payOrder(t, c, sku, `{"payment_method":"pm_card_visa"}`, key)
		if st != 201 {
			t.Fatalf("checkout: %d %s", st, body)
		}
		var o struct{ ID string }
		_ = json.Unmarshal([]byte(body), &o)
		return o.ID
	}
	paid, failed := order("k-paid"), order("k-failed")
	hook := func(body string, at time.Time, secret string) (int, string) {
		sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: []byte(body), Secret: secret, Timestamp: at})
		return c.do("POST", "/api/v1/payments/stripe/webhook", body, "Stripe-Signature", sp.Header)
	}
	event := func(id, typ, orderID string) string {
		return fmt.Sprintf(`{"id":%q,"object":"event","type":%q,"created":%d,"data":{"object":{"id":"pi_e2e","object":"payment_intent",
"amount":100,"amount_received":100,"currency":"usd","metadata":{"order_id":%q},"last_payment_error":{"type":"card_error","decline_code":"insufficient_funds"}}}}`,
			id, typ, time.Now().Unix(), orderID)
	}
	now := time.Now()
	if st, b := hook(event("evt_forged", "payment_intent.succeeded", failed), now, "whsec_notTheShopsSecret123"); st != 400 {
		t.Fatalf("forged event: %d %s", st, b)
	}
	if st, b := hook(event("evt_stale", "payment_intent.succeeded", failed), now.Add(-time.Hour), e2eStripeHook); st != 400 {
		t.Fatalf("stale event: %d %s", st, b)
	}
	if st, b := hook(event("evt_paid", "payment_intent.succeeded", paid), now, e2eStripeHook); st != 200 {
		t.Fatalf("capture event: %d %s", st, b)
	}
	if st, b := hook(event("evt_failed", "payment_intent.payment_failed", failed), now, e2eStripeHook); st != 200 {
		t.Fatalf("failure event: %d %s", st, b)
	}
	// A replay of a processed event is acknowledged and changes nothing.
	if st, b := hook(event("evt_failed", "payment_intent.payment_failed", failed), now, e2eStripeHook); st != 200 || !strings.Contains(b, "already") {
		t.Fatalf("replayed event: %d %s", st, b)
	}
	for id, want := range map[string]string{paid: "paid", failed: "payment_failed"} {
		st, body := c.do("GET", "/api/v1/orders/"+id, "")
		var o struct{ Status string }
		_ = json.Unmarshal([]byte(body), &o)
		if st != 200 || o.Status != want {
			t.Errorf("order %s: %d %s, want %s", id, st, o.Status, want)
		}
	}
	if v := metricValue(t, s.AdminURL, `surge_payment_events_total{type="payment.captured"}`); v != 1 {
		t.Errorf("captured events = %v, want 1", v)
	}
}

// TestStripeConfigIsCheckedAtStart: serve refuses to start with missing or
// mismatched Stripe keys, and says so without quoting a key.
func TestStripeConfigIsCheckedAtStart(t *testing.T) {
	hookFile := filepath.Join(t.TempDir(), "hook")
	if err := os.WriteFile(hookFile, []byte(e2eStripeHook), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		env  map[string]string
		args []string
		want string
	}{
		"no secret key":  {nil, []string{"--stripe-webhook-secret-file", hookFile, "--stripe-publishable-key", e2eStripePublish}, "SURGE_STRIPE_SECRET_KEY"},
		"live with test": {map[string]string{"SURGE_STRIPE_SECRET_KEY": "sk_live_e2eSecretNeverLogged0123"}, []string{"--stripe-webhook-secret-file", hookFile, "--stripe-publishable-key", e2eStripePublish}, "live key"},
		"both sources": {map[string]string{"SURGE_STRIPE_SECRET_KEY": e2eStripeSecret, "SURGE_STRIPE_WEBHOOK_SECRET": e2eStripeHook},
			[]string{"--stripe-webhook-secret-file", hookFile, "--stripe-publishable-key", e2eStripePublish}, "not both"},
		"unknown provider": {nil, []string{"--payment-provider", "paypal"}, "want simulated or stripe"},
	} {
		args := append([]string{"serve", "--data-dir", t.TempDir(), "--payment-provider", "stripe"}, tc.args...)
		var stderr syncBuffer
		err := run(context.Background(), args, func(k string) string { return tc.env[k] }, io.Discard, &stderr)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error about %q", name, err, tc.want)
			continue
		}
		for _, secret := range []string{"e2eSecretNeverLogged", "e2eHookSecretNeverLogged"} {
			if strings.Contains(err.Error()+stderr.String(), secret) {
				t.Errorf("%s: the error quotes a secret: %v", name, err)
			}
		}
	}
}
