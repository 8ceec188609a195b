package storefront

import (
	"net/http"
	"strings"
	"testing"
)

// TestAllowStripe: the checkout page's policy gains exactly Stripe's
// origins in the directives Elements needs; a page without a policy is
// left alone, and nothing else in the policy changes.
func TestAllowStripe(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"default-src 'self'; frame-ancestors 'none'",
			"default-src 'self'; frame-ancestors 'none'; script-src 'self' https://js.stripe.com; frame-src 'self' https://js.stripe.com https://hooks.stripe.com; connect-src 'self' https://api.stripe.com"},
		{"default-src 'self'; script-src 'self'; frame-src 'none'; img-src 'self' data:",
			"default-src 'self'; script-src 'self' https://js.stripe.com; frame-src https://js.stripe.com https://hooks.stripe.com; img-src 'self' data:; connect-src 'self' https://api.stripe.com"},
		{"script-src 'self'", "script-src 'self' https://js.stripe.com; frame-src 'self' https://js.stripe.com https://hooks.stripe.com; connect-src 'self' https://api.stripe.com"},
	} {
		h := http.Header{}
		if tc.in != "" {
			h.Set("Content-Security-Policy", tc.in)
		}
		allowStripe(h)
		if got := h.Get("Content-Security-Policy"); got != tc.want {
			t.Errorf("allowStripe(%q)\n got %q\nwant %q", tc.in, got, tc.want)
		}
	}
}

// TestCheckoutPageLoadsStripeOnlyWithStripe: the simulated provider's
// checkout page keeps the test-card field and loads nothing from Stripe,
// and its policy is left as it was; with a Stripe key the page loads
// Stripe.js and Elements and its policy allows them.
func TestCheckoutPageLoadsStripeOnlyWithStripe(t *testing.T) {
	pages, err := parsePages()
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"", "pk_test_abc123"} {
		var b strings.Builder
		if err := pages["checkout"].ExecuteTemplate(&b, "layout", pageData{Shop: "S", StaticVersion: "v1", Data: checkoutForm{StripeKey: key}}); err != nil {
			t.Fatal(err)
		}
		html := b.String()
		stripe := strings.Contains(html, "https://js.stripe.com/v3/") && strings.Contains(html, "/static/stripe-checkout.js?v=v1")
		card := strings.Contains(html, `name="card_number"`)
		if key == "" && (stripe || !card || strings.Contains(html, "stripe")) {
			t.Errorf("simulated checkout: loads Stripe %v, has the card field %v", stripe, card)
		}
		if key != "" && (!stripe || card || !strings.Contains(html, `data-stripe-key="pk_test_abc123"`)) {
			t.Errorf("Stripe checkout: loads Stripe %v, has the card field %v", stripe, card)
		}
	}
	if _, err := staticFS.ReadFile("static/stripe-checkout.js"); err != nil {
		t.Errorf("stripe-checkout.js is not embedded: %v", err)
	}
}
