package storefront_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/surge-commerce/surge/internal/catalog"
	"github.com/surge-commerce/surge/internal/money"
	"github.com/surge-commerce/surge/internal/shop"
	"github.com/surge-commerce/surge/internal/storefront"
)

// buyShop serves a shop over HTTP with one hot SKU of onHand units.
func buyShop(t *testing.T, onHand int64) (*shop.Shop, string) {
	t.Helper()
	sh := openShop(t, 0, apiTestToken)
	ctx := context.Background()
	c, err := sh.Store.CreateCategory(ctx, catalog.Category{Slug: "drops", Name: "Drops"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sh.Store.CreateProduct(ctx, catalog.Product{Slug: "hot-sneaker", Name: "Hot Sneaker", Status: catalog.StatusActive,
		CategoryID: c.ID, Variants: []catalog.Variant{{SKU: "HOT-42", Price: money.Money{Amount: 15000, Currency: "USD"}, OnHand: onHand}}}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sh.Handler)
	t.Cleanup(srv.Close)
	return sh, srv.URL
}

type buyer struct {
	c   *http.Client
	url string
}

func newBuyer(url string) buyer {
	jar, _ := cookiejar.New(nil)
	return buyer{&http.Client{Jar: jar}, url}
}

func (b buyer) do(t *testing.T, method, path, body string, hdr ...string) (int, string) {
	req, _ := http.NewRequest(method, b.url+path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := b.c.Do(req)
	if err != nil {
		t.Errorf("%s %s: %v", method, path, err)
		return 0, ""
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

const checkoutBody = `{"email":"buyer@example.com","shipping_address":{"name":"Ann Lee","line1":"1 Main St","city":"Springfield","postal_code":"12345","country":"US"},"payment":{"card_number":"4242424242424242"}}`

// TestLastUnitsOverHTTP: 500 concurrent buyers, each with its own session,
// for the last 10 units. Exactly 10 orders; everyone else hears 409.
func TestLastUnitsOverHTTP(t *testing.T) {
	sh, url := buyShop(t, 10)
	var created, conflict atomic.Int64
	var wg sync.WaitGroup
	for i := range 500 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := newBuyer(url)
			st, body := b.do(t, "POST", "/api/v1/cart/items", `{"sku":"HOT-42","quantity":1}`)
			if st == 409 {
				conflict.Add(1)
				return
			}
			if st != 201 {
				t.Errorf("buyer %d add: %d %s", i, st, body)
				return
			}
			st, body = b.do(t, "POST", "/api/v1/checkout", checkoutBody, "Idempotency-Key", fmt.Sprint("k-", i))
			switch st {
			case 201:
				created.Add(1)
			case 409:
				if !strings.Contains(body, `"skus":["HOT-42"]`) {
					t.Errorf("409 without the sold-out SKU: %s", body)
				}
				conflict.Add(1)
			default:
				t.Errorf("buyer %d checkout: %d %s", i, st, body)
			}
		}()
	}
	wg.Wait()
	if created.Load() != 10 || conflict.Load() != 490 {
		t.Fatalf("201s %d, 409s %d; want 10 and 490", created.Load(), conflict.Load())
	}
	l, err := sh.Store.Ledger(context.Background(), "HOT-42")
	if err != nil || l.Reserved != 10 || l.HeldByReservations != 10 || l.Sold != 0 {
		t.Fatalf("ledger %+v %v", l, err)
	}
}

// TestCheckoutRetries: one buyer retries one checkout from 30 goroutines at
// once; one order comes out, and a different body under the key is 422.
func TestCheckoutRetries(t *testing.T) {
	sh, url := buyShop(t, 100)
	b := newBuyer(url)
	if st, body := b.do(t, "POST", "/api/v1/cart/items", `{"sku":"HOT-42","quantity":2}`); st != 201 {
		t.Fatalf("add: %d %s", st, body)
	}
	ids := make([]string, 30)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, body := b.do(t, "POST", "/api/v1/checkout", checkoutBody, "Idempotency-Key", "retry-me")
			if st != 201 {
				t.Errorf("attempt %d: %d %s", i, st, body)
				return
			}
			var o struct{ ID string }
			_ = json.Unmarshal([]byte(body), &o)
			ids[i] = o.ID
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if id == "" || id != ids[0] {
			t.Fatalf("retries got different orders: %v", ids)
		}
	}
	if l, _ := sh.Store.Ledger(context.Background(), "HOT-42"); l.Reserved != 2 {
		t.Fatalf("reserved %d, want 2", l.Reserved)
	}
	other := strings.Replace(checkoutBody, "Ann Lee", "Bob Lee", 1)
	if st, body := b.do(t, "POST", "/api/v1/checkout", other, "Idempotency-Key", "retry-me"); st != 422 || !strings.Contains(body, "different request") {
		t.Fatalf("other body, same key: %d %s", st, body)
	}
	if st, body := b.do(t, "GET", "/api/v1/orders/"+ids[0], ""); st != 200 || !strings.Contains(body, `"status":"pending_payment"`) {
		t.Fatalf("own order: %d %s", st, body)
	}
	if st, _ := newBuyer(url).do(t, "GET", "/api/v1/orders/"+ids[0], ""); st != 404 {
		t.Fatalf("someone else's order: %d, want 404", st)
	}
}

func TestCheckoutBadRequests(t *testing.T) {
	_, url := buyShop(t, 5)
	b := newBuyer(url)
	if st, _ := b.do(t, "POST", "/api/v1/checkout", checkoutBody, "Idempotency-Key", "x"); st != 422 {
		t.Errorf("checkout without a cart: %d, want 422", st)
	}
	b.do(t, "POST", "/api/v1/cart/items", `{"sku":"HOT-42"}`)
	tests := []struct {
		body, key string
		status    int
		detail    string
		kind      string
	}{
		{checkoutBody, "", 400, "Idempotency-Key", "invalid-request"},
		{checkoutBody, "has space", 400, "Idempotency-Key", "invalid-request"},
		{`{}`, "k1", 400, "email", "invalid-request"},
		{strings.Replace(checkoutBody, `"country":"US"`, `"country":"usa"`, 1), "k2", 400, "country", "invalid-request"},
		{strings.Replace(checkoutBody, "4242424242424242", "4242424242424241", 1), "k3", 400, "card_number", "invalid-request"},
		{strings.Replace(checkoutBody, `"email":"buyer@example.com"`, `"email":"nope"`, 1), "k4", 400, "email", "invalid-request"},
		{`{"email":1}`, "k5", 400, "email", "malformed-body"},
		{checkoutBody + "x", "k6", 400, "after the JSON", "malformed-body"},
	}
	for _, tt := range tests {
		st, body := b.do(t, "POST", "/api/v1/checkout", tt.body, "Idempotency-Key", tt.key)
		if st != tt.status || !strings.Contains(body, tt.detail) || !strings.Contains(body, `"type":"`+storefront.ProblemType(tt.kind)+`"`) {
			t.Errorf("checkout %q key %q: %d %s; want %d naming %q, type %s", tt.body, tt.key, st, body, tt.status, tt.detail, tt.kind)
		}
	}
	for _, tt := range []struct {
		body   string
		status int
	}{{`{"sku":"NOPE"}`, 422}, {`{"sku":"HOT-42","quantity":0}`, 400}, {`{"sku":"HOT-42","quantity":100}`, 400}, {`{"sku":"HOT-42","quantity":6}`, 409}, {`{"quantity":1}`, 400}} {
		if st, body := b.do(t, "POST", "/api/v1/cart/items", tt.body); st != tt.status {
			t.Errorf("add %s: %d %s, want %d", tt.body, st, body, tt.status)
		}
	}
	// A cross-site form post is refused before it reaches the handler.
	if st, _ := b.do(t, "POST", "/api/v1/cart/items", `{"sku":"HOT-42"}`, "Sec-Fetch-Site", "cross-site"); st != 403 {
		t.Errorf("cross-site post: %d, want 403", st)
	}
}

// TestSignInMergesGuestCart: a guest's cart survives sign-up, and a later
// guest cart is merged at sign-in.
func TestSignInMergesGuestCart(t *testing.T) {
	_, url := buyShop(t, 50)
	b := newBuyer(url)
	b.do(t, "POST", "/api/v1/cart/items", `{"sku":"HOT-42","quantity":2}`)
	if st, body := b.do(t, "POST", "/api/v1/customers", `{"email":"Ann@Example.com","password":"long enough","name":"Ann"}`); st != 201 {
		t.Fatalf("sign up: %d %s", st, body)
	}
	if _, body := b.do(t, "GET", "/api/v1/me", ""); !strings.Contains(body, `"item_count":2`) || !strings.Contains(body, `"email":"ann@example.com"`) {
		t.Fatalf("me after sign-up: %s", body)
	}
	if st, _ := b.do(t, "POST", "/api/v1/customers", `{"email":"ann@example.com","password":"long enough"}`); st != 409 {
		t.Fatalf("duplicate sign up: %d", st)
	}
	b.do(t, "DELETE", "/api/v1/sessions/current", "")
	if _, body := b.do(t, "GET", "/api/v1/me", ""); !strings.Contains(body, `"customer":null`) {
		t.Fatalf("me after sign-out: %s", body)
	}
	b.do(t, "POST", "/api/v1/cart/items", `{"sku":"HOT-42","quantity":3}`)
	if st, _ := b.do(t, "POST", "/api/v1/sessions", `{"email":"ann@example.com","password":"wrong password"}`); st != 401 {
		t.Fatalf("wrong password: %d", st)
	}
	if st, _ := b.do(t, "POST", "/api/v1/sessions", `{"email":"nobody@example.com","password":"whatever1"}`); st != 401 {
		t.Fatalf("unknown email: %d", st)
	}
	if st, body := b.do(t, "POST", "/api/v1/sessions", `{"email":"ann@example.com","password":"long enough"}`); st != 200 {
		t.Fatalf("sign in: %d %s", st, body)
	}
	if _, body := b.do(t, "GET", "/api/v1/cart", ""); !strings.Contains(body, `"item_count":5`) {
		t.Fatalf("merged cart: %s", body)
	}
}

func FuzzCartAndCheckoutBodies(f *testing.F) {
	for _, s := range []string{checkoutBody, `{"sku":"HOT-42","quantity":1}`, `{"quantity":-1}`, `{"payment":{"card_number":null}}`, `[`, "\x00"} {
		f.Add(s)
	}
	sh := openShop(f, 0, apiTestToken)
	ctx := context.Background()
	c, _ := sh.Store.CreateCategory(ctx, catalog.Category{Slug: "drops", Name: "Drops"})
	_, _ = sh.Store.CreateProduct(ctx, catalog.Product{Slug: "hot-sneaker", Name: "Hot Sneaker", Status: catalog.StatusActive,
		CategoryID: c.ID, Variants: []catalog.Variant{{SKU: "HOT-42", Price: money.Money{Amount: 15000, Currency: "USD"}, OnHand: 1 << 40}}})
	f.Fuzz(func(t *testing.T, body string) {
		for _, p := range []struct{ method, path string }{{"POST", "/api/v1/cart/items"}, {"PATCH", "/api/v1/cart/items/HOT-42"},
			{"POST", "/api/v1/checkout"}, {"POST", "/api/v1/customers"}, {"POST", "/api/v1/sessions"}} {
			w := serveReq(sh.Handler, p.method, p.path, body, "Content-Type", "application/json", "Idempotency-Key", "fuzz")
			if w.Code >= 500 {
				t.Fatalf("%s %s %q = %d %s", p.method, p.path, body, w.Code, w.Body.String())
			}
			if w.Code >= 400 && w.Header().Get("Content-Type") != "application/problem+json" {
				t.Fatalf("%s %s %q = %d without a problem body", p.method, p.path, body, w.Code)
			}
		}
	})
}
