package storefront_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/surge-commerce/surge/internal/storefront"
)

// TestSecurityHeaders: every kind of answer (pages, cached or not, the
// personal pages, the API, problems, assets, redirects) carries the strict
// headers: a CSP without inline script that no site may frame, and no
// MIME sniffing or referrer leaks.
func TestSecurityHeaders(t *testing.T) {
	h, _ := apiTestServer(t, 10)
	slug := firstProductSlug(t, h)
	want := map[string]string{
		"Content-Security-Policy": storefront.ContentSecurityPolicy,
		"X-Frame-Options":         "DENY",
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "same-origin",
	}
	for _, p := range []string{"/", "/", "/products/" + slug, "/search?q=linen", "/checkout", "/account/signin", "/account",
		"/cart", "/api/v1/products", "/api/v1/products/nope", "/api/v1/cart", "/static/app.js", "/no-such-page", "/products/x?%zz"} {
		w := serveReq(h, "GET", p, "")
		for k, v := range want {
			if got := w.Header().Get(k); got != v {
				t.Errorf("GET %s (%d, X-Cache %s): %s = %q, want %q", p, w.Code, w.Header().Get("X-Cache"), k, got, v)
			}
		}
	}
	for _, directive := range []string{"frame-ancestors 'none'", "script-src 'self'", "default-src 'none'"} {
		if !strings.Contains(storefront.ContentSecurityPolicy, directive) {
			t.Errorf("the CSP lacks %s", directive)
		}
	}
	if strings.Contains(storefront.ContentSecurityPolicy, "unsafe-inline") || strings.Contains(storefront.ContentSecurityPolicy, "unsafe-eval") {
		t.Errorf("the CSP allows inline or eval'd script: %s", storefront.ContentSecurityPolicy)
	}
}

// TestCartProblemIsTheShopsWords: /cart?problem= shows only sentences the
// shop chose for a code; text put in the URL never reaches the page, and
// the shop's own redirects carry codes.
func TestCartProblemIsTheShopsWords(t *testing.T) {
	h, _ := apiTestServer(t, 10)
	for _, p := range []string{"Your account is locked: call +1 555 0100", "<b>bold</b>", "sold-out!", "SOLD-OUT"} {
		w := serveReq(h, "GET", "/cart?problem="+url.QueryEscape(p), "")
		if w.Code != 200 || strings.Contains(w.Body.String(), `class="problem"`) || strings.Contains(w.Body.String(), "555 0100") {
			t.Errorf("/cart?problem=%q: %d; the page shows a problem it did not choose", p, w.Code)
		}
	}
	w := serveReq(h, "GET", "/cart?problem=sold-out", "")
	if !strings.Contains(w.Body.String(), "Sorry, that has sold out.") {
		t.Errorf("/cart?problem=sold-out does not say so")
	}

	c := &jarClient{h: h, cookies: map[string]string{}}
	for form, code := range map[string]string{
		url.Values{"sku": {"NO-SUCH-SKU"}}.Encode():                          "unknown-sku",
		url.Values{"sku": {"SRG-000001-XS-STN"}, "quantity": {"0"}}.Encode(): "quantity",
	} {
		r := send(c, "POST", "/cart/items", form, "Content-Type", "application/x-www-form-urlencoded")
		if loc := r.Header().Get("Location"); r.Code != 303 || loc != "/cart?problem="+code {
			t.Errorf("add %s: %d Location %q, want /cart?problem=%s", form, r.Code, loc, code)
		}
	}
}
