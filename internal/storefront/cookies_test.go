package storefront_test

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/surge-commerce/surge/internal/catalog"
	"github.com/surge-commerce/surge/internal/money"
	"github.com/surge-commerce/surge/internal/shop"
	"github.com/surge-commerce/surge/internal/storefront"
)

// cookieShop is a shop with one product (SKU CK-1), the standby line on
// (so a page visit sets the waiting room's cookies too), HAProxy at
// 10.0.0.5 as its trusted proxy, and mode for Secure cookies.
func cookieShop(t *testing.T, mode storefront.CookieSecure) *shop.Shop {
	t.Helper()
	ctx := context.Background()
	cfg := shop.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.Admission = false
	cfg.CookieSecure = mode
	cfg.AdmissionConfig.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.5/32")}
	cfg.AdmissionConfig.ClientIPHeader = "X-Forwarded-For"
	cfg.Standby, cfg.StandbyOnActive, cfg.StandbyRate, cfg.StandbyMaxActive = true, 50, 600, 100
	sh, err := shop.Open(ctx, cfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sh.Close() })
	c, err := sh.Store.CreateCategory(ctx, catalog.Category{Slug: "caps", Name: "Caps"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sh.Store.CreateProduct(ctx, catalog.Product{Slug: "cookie-cap", Name: "Cookie Cap", Status: catalog.StatusActive,
		CategoryID: c.ID, Variants: []catalog.Variant{{SKU: "CK-1", Price: money.Money{Amount: 1000, Currency: "USD"}, OnHand: 50}}}); err != nil {
		t.Fatal(err)
	}
	return sh
}

// cookiesOf makes the requests that set Surge's cookies: a cart add (the
// session) and, with the standby line on, the line's page (visitor,
// ticket, access token); it returns every Set-Cookie answered.
func cookiesOf(t *testing.T, sh *shop.Shop, prep func(*http.Request)) []string {
	t.Helper()
	var out []string
	r := httptest.NewRequest("POST", "/api/v1/cart/items", strings.NewReader(`{"sku":"CK-1"}`))
	r.Header.Set("Content-Type", "application/json")
	prep(r)
	w := httptest.NewRecorder()
	sh.Handler.ServeHTTP(w, r)
	if w.Code != 201 {
		t.Fatalf("cart add: %d %s", w.Code, w.Body.String())
	}
	out = append(out, w.Header().Values("Set-Cookie")...)

	sh.Standby.Observe(500, 0)
	r = httptest.NewRequest("GET", "/queue?next=/", nil)
	prep(r)
	w = httptest.NewRecorder()
	sh.Handler.ServeHTTP(w, r)
	if w.Code >= 400 {
		t.Fatalf("standby line: %d", w.Code)
	}
	out = append(out, w.Header().Values("Set-Cookie")...)
	if len(out) < 3 {
		t.Fatalf("only %d cookies set: %q", len(out), out)
	}
	return out
}

func secureFlags(cookies []string) (secure, plain []string) {
	for _, c := range cookies {
		name, _, _ := strings.Cut(c, "=")
		if strings.Contains(strings.ToLower(c), "; secure") {
			secure = append(secure, name)
		} else {
			plain = append(plain, name)
		}
	}
	return secure, plain
}

// TestCookieSecure: with --cookie-secure auto every cookie Surge sets is
// Secure on a request that came over HTTPS (TLS to Surge, or
// X-Forwarded-Proto: https from the trusted proxy) and not otherwise
// (plain HTTP, or the header from anyone else); always and never do what
// they say.
func TestCookieSecure(t *testing.T) {
	viaProxy := func(proto string) func(*http.Request) {
		return func(r *http.Request) {
			r.RemoteAddr = "10.0.0.5:40000"
			r.Header.Set("X-Forwarded-For", "203.0.113.7")
			r.Header.Set("X-Forwarded-Proto", proto)
		}
	}
	direct := func(proto string) func(*http.Request) {
		return func(r *http.Request) {
			r.RemoteAddr = "203.0.113.8:40000"
			if proto != "" {
				r.Header.Set("X-Forwarded-Proto", proto)
			}
		}
	}
	overTLS := func(r *http.Request) { r.TLS = &tls.ConnectionState{} }
	for _, tc := range []struct {
		name   string
		mode   storefront.CookieSecure
		prep   func(*http.Request)
		secure bool
	}{
		{"auto, HTTPS at the trusted proxy", storefront.CookieSecureAuto, viaProxy("https"), true},
		{"auto, HTTPS at the last of two proxies", storefront.CookieSecureAuto, viaProxy("http, https"), true},
		{"auto, HTTP at the trusted proxy", storefront.CookieSecureAuto, viaProxy("http"), false},
		{"auto, TLS to Surge", storefront.CookieSecureAuto, overTLS, true},
		{"auto, plain HTTP", storefront.CookieSecureAuto, direct(""), false},
		{"auto, X-Forwarded-Proto from an untrusted client", storefront.CookieSecureAuto, direct("https"), false},
		{"always, plain HTTP", storefront.CookieSecureAlways, direct(""), true},
		{"never, TLS to Surge", storefront.CookieSecureNever, overTLS, false},
		{"never, HTTPS at the trusted proxy", storefront.CookieSecureNever, viaProxy("https"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sh := cookieShop(t, tc.mode)
			secure, plain := secureFlags(cookiesOf(t, sh, tc.prep))
			if tc.secure && len(plain) > 0 {
				t.Errorf("cookies without Secure: %v", plain)
			}
			if !tc.secure && len(secure) > 0 {
				t.Errorf("cookies with Secure: %v", secure)
			}
		})
	}
}

// TestCookieSecureOverRealTLS: over a real TLS connection (no proxy) the
// session cookie comes back Secure, and the browser-side jar sends it.
func TestCookieSecureOverRealTLS(t *testing.T) {
	sh := cookieShop(t, storefront.CookieSecureAuto)
	srv := httptest.NewTLSServer(sh.Handler)
	t.Cleanup(srv.Close)
	req, _ := http.NewRequest("POST", srv.URL+"/api/v1/cart/items", strings.NewReader(`{"sku":"CK-1"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cs := resp.Cookies()
	if resp.StatusCode != 201 || len(cs) == 0 || !cs[0].Secure {
		t.Errorf("over TLS: %d, cookies %v; want a Secure session cookie", resp.StatusCode, resp.Header.Values("Set-Cookie"))
	}
}

func TestParseCookieSecure(t *testing.T) {
	for in, want := range map[string]storefront.CookieSecure{"": "auto", "auto": "auto", "Always": "always", " never ": "never"} {
		if got, err := storefront.ParseCookieSecure(in); err != nil || got != want {
			t.Errorf("ParseCookieSecure(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"yes", "true", "on", "sometimes"} {
		if _, err := storefront.ParseCookieSecure(bad); err == nil {
			t.Errorf("ParseCookieSecure(%q): want an error", bad)
		}
	}
}
