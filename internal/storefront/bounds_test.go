package storefront_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	_ "modernc.org/sqlite" // the embedded store's driver, to write a row around the API

	"github.com/surge-commerce/surge/internal/catalog"
	"github.com/surge-commerce/surge/internal/money"
	"github.com/surge-commerce/surge/internal/shop"
	"github.com/surge-commerce/surge/internal/storefront"
)

// boundsShop is a shop with one product, "Bound Tee" (SKU BT-1, $20,
// 10 in stock), served over HTTP, and its SQLite file.
func boundsShop(t *testing.T) (*shop.Shop, string, string) {
	t.Helper()
	ctx := context.Background()
	cfg := shop.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.AdminToken = apiTestToken
	cfg.Admission = false
	sh, err := shop.Open(ctx, cfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sh.Close() })
	c, err := sh.Store.CreateCategory(ctx, catalog.Category{Slug: "tees", Name: "Tees"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sh.Store.CreateProduct(ctx, catalog.Product{Slug: "bound-tee", Name: "Bound Tee", Status: catalog.StatusActive,
		CategoryID: c.ID, Variants: []catalog.Variant{{SKU: "BT-1", Price: money.Money{Amount: 2000, Currency: "USD"}, OnHand: 10}}}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sh.Handler)
	t.Cleanup(srv.Close)
	return sh, srv.URL, filepath.Join(cfg.DataDir, "surge.db")
}

// TestAdminNumbersAreBounded: every number the catalog admin API takes is
// bounded before it is stored; one out of bounds is a 422 problem whose
// field names it, and nothing is stored.
func TestAdminNumbersAreBounded(t *testing.T) {
	sh, url, _ := boundsShop(t)
	admin := newBuyer(url)
	auth := []string{"Authorization", "Bearer " + apiTestToken}
	const maxInt64 = "9223372036854775807"
	variant := func(fields string) string {
		return `{"name":"Big","category_id":1,"variants":[{"sku":"BIG-1","price":{"amount":100,"currency":"USD"}` + fields + `}]}`
	}
	for _, tc := range []struct {
		method, path, body, field string
	}{
		{"PATCH", "/api/v1/admin/variants/BT-1", `{"price":{"amount":` + maxInt64 + `,"currency":"USD"}}`, "price.amount"},
		{"PATCH", "/api/v1/admin/variants/BT-1", fmt.Sprintf(`{"price":{"amount":%d,"currency":"USD"}}`, catalog.MaxPrice+1), "price.amount"},
		{"PATCH", "/api/v1/admin/variants/BT-1", `{"price":{"amount":-1,"currency":"USD"}}`, "price.amount"},
		{"PATCH", "/api/v1/admin/variants/BT-1", `{"position":2147483647}`, "position"},
		{"PATCH", "/api/v1/admin/variants/BT-1", `{"options":[{"name":"size","value":"` + strings.Repeat("x", 201) + `"}]}`, "options[0].value"},
		{"PUT", "/api/v1/admin/variants/BT-1/stock", `{"on_hand":` + maxInt64 + `}`, "on_hand"},
		{"PUT", "/api/v1/admin/variants/BT-1/stock", fmt.Sprintf(`{"on_hand":%d}`, catalog.MaxOnHand+1), "on_hand"},
		{"PUT", "/api/v1/admin/variants/BT-1/stock", `{"on_hand":-1}`, "on_hand"},
		{"POST", "/api/v1/admin/products/bound-tee/variants", `{"sku":"BT-2","price":{"amount":100,"currency":"USD"},"on_hand":` + maxInt64 + `}`, "on_hand"},
		{"POST", "/api/v1/admin/products/bound-tee/variants", `{"sku":"BT-2","price":{"amount":` + maxInt64 + `,"currency":"USD"}}`, "price.amount"},
		{"POST", "/api/v1/admin/products", variant(`,"on_hand":` + maxInt64), "variants[0].on_hand"},
		{"POST", "/api/v1/admin/products", variant(`,"position":-5`), "variants[0].position"},
		{"POST", "/api/v1/admin/products", `{"name":"Big","category_id":1,"variants":[{"sku":"BIG-1","price":{"amount":1,"currency":"EUR"}}]}`, "variants[0].price.currency"},
		{"POST", "/api/v1/admin/categories", `{"name":"Far","position":2147483647}`, "position"},
		{"POST", "/api/v1/admin/categories", `{"name":"Orphan","parent_id":9999}`, "parent_id"},
	} {
		st, body := admin.do(t, tc.method, tc.path, tc.body, auth...)
		var p storefront.Problem
		_ = json.Unmarshal([]byte(body), &p)
		if st != 422 || p.Field != tc.field || p.Type != storefront.ProblemType("invalid-field") || !strings.Contains(p.Detail, tc.field) {
			t.Errorf("%s %s %s = %d %s; want 422 invalid-field naming %s", tc.method, tc.path, tc.body, st, body, tc.field)
		}
	}
	v, err := sh.Catalog.AdminProduct(context.Background(), "bound-tee")
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Variants) != 1 || v.Variants[0].Price.Amount != 2000 || v.Variants[0].OnHand != 10 || v.Variants[0].Position != 0 {
		t.Errorf("after refused changes the variant is %+v, want it as it was", v.Variants)
	}
	// The bounds themselves are accepted.
	if st, body := admin.do(t, "PATCH", "/api/v1/admin/variants/BT-1", fmt.Sprintf(`{"price":{"amount":%d,"currency":"USD"}}`, catalog.MaxPrice), auth...); st != 200 {
		t.Errorf("price at the bound: %d %s", st, body)
	}
	if st, body := admin.do(t, "PUT", "/api/v1/admin/variants/BT-1/stock", fmt.Sprintf(`{"on_hand":%d}`, catalog.MaxOnHand), auth...); st != 200 {
		t.Errorf("stock at the bound: %d %s", st, body)
	}
	// And a cart full of the dearest item still adds up.
	b := newBuyer(url)
	if st, body := b.do(t, "POST", "/api/v1/cart/items", `{"sku":"BT-1","quantity":99}`); st != 201 {
		t.Fatalf("99 at the highest price: %d %s", st, body)
	}
	if st, body := b.do(t, "GET", "/api/v1/cart", ""); st != 200 || !strings.Contains(body, fmt.Sprintf(`"amount":%d`, 99*catalog.MaxPrice)) {
		t.Errorf("cart of 99 at the highest price: %d %s", st, body)
	}
}

// TestCartSurvivesAStoredPriceBeyondBounds: a price beyond the bounds
// that is already stored (written before them, or around the API) does
// not break the carts that hold it: such an offer is not for sale, and
// the cart, the cart page and checkout answer without a 5xx.
func TestCartSurvivesAStoredPriceBeyondBounds(t *testing.T) {
	sh, url, dbFile := boundsShop(t)
	b := newBuyer(url)
	if st, body := b.do(t, "POST", "/api/v1/cart/items", `{"sku":"BT-1","quantity":2}`); st != 201 {
		t.Fatalf("add: %d %s", st, body)
	}
	db, err := sql.Open("sqlite", dbFile)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE variants SET price = 9223372036854775807 WHERE sku = 'BT-1'`); err != nil {
		t.Fatal(err)
	}
	sh.Catalog.ForgetCached()
	for _, tc := range []struct{ method, path, body string }{
		{"GET", "/api/v1/cart", ""},
		{"GET", "/cart", ""},
		{"GET", "/api/v1/me", ""},
		{"POST", "/api/v1/cart/items", `{"sku":"BT-1","quantity":1}`},
		{"POST", "/api/v1/checkout", checkoutBody},
	} {
		hdr := []string{"Idempotency-Key", "bounds-1"}
		st, body := b.do(t, tc.method, tc.path, tc.body, hdr...)
		if st >= 500 {
			t.Errorf("%s %s = %d %s", tc.method, tc.path, st, body)
		}
	}
	if st, body := b.do(t, "GET", "/api/v1/cart", ""); st != 200 || strings.Contains(body, `"sku":"BT-1"`) {
		t.Errorf("cart holding an offer priced beyond the bounds: %d %s; want 200 without it", st, body)
	}
}
