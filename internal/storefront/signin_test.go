package storefront_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/surge-commerce/surge/internal/customer"
	"github.com/surge-commerce/surge/internal/enginetest"
	"github.com/surge-commerce/surge/internal/shop"
	"github.com/surge-commerce/surge/internal/storefront"
)

// signInShop opens a shop (sharing Redis when redisURL is set) whose
// metrics go to reg.
func signInShop(t *testing.T, redisURL, prefix string, reg *prometheus.Registry) *shop.Shop {
	t.Helper()
	cfg := shop.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.Admission = false
	cfg.RedisURL, cfg.RedisPrefix = redisURL, prefix
	// A clock that stands still: the limits count attempts, not how fast
	// a busy test machine makes them.
	frozen := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	cfg.Now = func() time.Time { return frozen }
	sh, err := shop.Open(context.Background(), cfg, slog.New(slog.DiscardHandler), reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sh.Close() })
	return sh
}

// signInFrom posts a JSON sign-in from the client address addr.
func signInFrom(h http.Handler, addr, email, password string) *httptest.ResponseRecorder {
	r := httptest.NewRequest("POST", "/api/v1/sessions", strings.NewReader(fmt.Sprintf(`{"email":%q,"password":%q}`, email, password)))
	r.Header.Set("Content-Type", "application/json")
	r.RemoteAddr = addr + ":4000"
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// answer is what a client learns from a sign-in answer: everything but
// the request's own ID.
func answer(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	var p storefront.Problem
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
		return fmt.Sprintf("%d %s", w.Code, w.Body.String())
	}
	p.RequestID = ""
	return fmt.Sprintf("%d Retry-After=%q %+v", w.Code, w.Header().Get("Retry-After"), p)
}

func createAccount(t *testing.T, h http.Handler, email string) {
	t.Helper()
	w := serveReq(h, "POST", "/api/v1/customers", fmt.Sprintf(`{"email":%q,"password":"correct horse battery"}`, email), "Content-Type", "application/json")
	if w.Code != 201 {
		t.Fatalf("sign-up %s: %d %s", email, w.Code, w.Body.String())
	}
}

func passwordHashes(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "surge_password_hashes_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatal("no surge_password_hashes_total")
	return 0
}

// TestSignInThrottledPerAccount: wrong passwords for one account, even
// from many addresses, are refused with 429 and Retry-After after the
// burst, and then the right password is refused too; an unknown email
// gets exactly the same answers, and costs a password hash as a known one
// does, so neither answers nor timing tell which emails have accounts.
func TestSignInThrottledPerAccount(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := signInShop(t, "", "", reg).Handler
	createAccount(t, h, "known@example.com")
	burst := customer.SignInPerAccount.Burst

	var known, unknown []string
	for i := range burst + 3 {
		addr := fmt.Sprintf("198.51.100.%d", i+1)
		before := passwordHashes(t, reg)
		wk := signInFrom(h, addr, "known@example.com", "wrong password")
		afterKnown := passwordHashes(t, reg)
		wu := signInFrom(h, addr, "unknown@example.com", "wrong password")
		afterUnknown := passwordHashes(t, reg)
		known, unknown = append(known, answer(t, wk)), append(unknown, answer(t, wu))
		want := 401
		if i >= burst {
			want = 429
		}
		if wk.Code != want {
			t.Fatalf("attempt %d at a known account: %s, want %d", i+1, answer(t, wk), want)
		}
		hashesKnown, hashesUnknown := afterKnown-before, afterUnknown-afterKnown
		if hashesKnown != hashesUnknown || (want == 401 && hashesKnown != 1) || (want == 429 && hashesKnown != 0) {
			t.Errorf("attempt %d: %v hashes for the known email, %v for the unknown; want the same, 1 before the limit and 0 after",
				i+1, hashesKnown, hashesUnknown)
		}
	}
	for i := range known {
		k := strings.ReplaceAll(known[i], "known@", "")
		u := strings.ReplaceAll(unknown[i], "unknown@", "")
		if k != u {
			t.Errorf("attempt %d: a known email is answered\n  %s\nan unknown one\n  %s", i+1, known[i], unknown[i])
		}
	}
	w := signInFrom(h, "203.0.113.9", "known@example.com", "correct horse battery")
	ra, _ := strconv.Atoi(w.Header().Get("Retry-After"))
	if w.Code != 429 || ra < 1 || w.Header().Get("Content-Type") != "application/problem+json" ||
		!strings.Contains(w.Body.String(), storefront.ProblemType("rate-limited")) || !strings.Contains(w.Body.String(), "too many sign-in attempts") {
		t.Errorf("the right password after the limit: %d Retry-After %q %s; want 429 rate-limited with Retry-After",
			w.Code, w.Header().Get("Retry-After"), w.Body.String())
	}
	// Another account is not held back by this one.
	createAccount(t, h, "other@example.com")
	if w := signInFrom(h, "203.0.113.9", "other@example.com", "correct horse battery"); w.Code != 200 {
		t.Errorf("another account: %d %s", w.Code, w.Body.String())
	}
}

// TestSignInThrottledPerClient: one address trying many accounts is held
// back after its burst, sign-ups included; another address is not.
func TestSignInThrottledPerClient(t *testing.T) {
	h := signInShop(t, "", "", prometheus.NewRegistry()).Handler
	burst := customer.SignInPerClient.Burst
	for i := range burst {
		if w := signInFrom(h, "198.51.100.7", fmt.Sprintf("guess%d@example.com", i), "wrong password"); w.Code != 401 {
			t.Fatalf("attempt %d: %d %s", i+1, w.Code, w.Body.String())
		}
	}
	if w := signInFrom(h, "198.51.100.7", "fresh@example.com", "wrong password"); w.Code != 429 || w.Header().Get("Retry-After") == "" {
		t.Errorf("past the address's burst: %d %s", w.Code, w.Body.String())
	}
	r := httptest.NewRequest("POST", "/api/v1/customers", strings.NewReader(`{"email":"new@example.com","password":"correct horse battery"}`))
	r.Header.Set("Content-Type", "application/json")
	r.RemoteAddr = "198.51.100.7:4000"
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 429 {
		t.Errorf("sign-up past the address's burst: %d %s", w.Code, w.Body.String())
	}
	if w := signInFrom(h, "198.51.100.8", "fresh@example.com", "wrong password"); w.Code != 401 {
		t.Errorf("another address: %d %s", w.Code, w.Body.String())
	}
}

// TestSignInPageThrottled: the sign-in page says so in words, with 429 and
// Retry-After.
func TestSignInPageThrottled(t *testing.T) {
	h := signInShop(t, "", "", prometheus.NewRegistry()).Handler
	createAccount(t, h, "page@example.com")
	c := &jarClient{h: h, cookies: map[string]string{}, addr: "198.51.100.20:4000"}
	var w *httptest.ResponseRecorder
	for range customer.SignInPerAccount.Burst + 1 {
		w = send(c, "POST", "/account/signin", url.Values{"csrf": {formCSRF(t, c, "/account/signin")},
			"email": {"page@example.com"}, "password": {"wrong password"}}.Encode(), "Content-Type", "application/x-www-form-urlencoded")
	}
	if w.Code != 429 || w.Header().Get("Retry-After") == "" || !strings.Contains(w.Body.String(), "Too many sign-in attempts") ||
		!strings.Contains(w.Header().Get("Content-Type"), "text/html") {
		t.Errorf("sign-in page past the limit: %d Retry-After %q %s", w.Code, w.Header().Get("Retry-After"), w.Header().Get("Content-Type"))
	}
}

// TestSignInLimitsSharedThroughRedis: with Redis, two replicas count one
// account's attempts together.
func TestSignInLimitsSharedThroughRedis(t *testing.T) {
	redisURL, prefix := enginetest.Redis(t)
	a := signInShop(t, redisURL, prefix, prometheus.NewRegistry()).Handler
	b := signInShop(t, redisURL, prefix, prometheus.NewRegistry()).Handler
	burst := customer.SignInPerAccount.Burst
	for i := range burst {
		h := a
		if i%2 == 1 {
			h = b
		}
		if w := signInFrom(h, fmt.Sprintf("198.51.100.%d", 30+i), "shared@example.com", "wrong password"); w.Code != 401 {
			t.Fatalf("attempt %d: %d %s", i+1, w.Code, w.Body.String())
		}
	}
	for name, h := range map[string]http.Handler{"a": a, "b": b} {
		if w := signInFrom(h, "198.51.100.99", "shared@example.com", "wrong password"); w.Code != 429 {
			t.Errorf("replica %s past the account's burst spent on both: %d %s", name, w.Code, w.Body.String())
		}
	}
}
