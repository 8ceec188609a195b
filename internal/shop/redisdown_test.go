package shop_test

import (
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/surge-commerce/surge/internal/demoshop"
	"github.com/surge-commerce/surge/internal/shop"
	"github.com/surge-commerce/surge/internal/telemetry"
)

// TestRedisDownServesWhatItCan: with its Redis unreachable a replica
// still serves browse pages and the catalog API, and answers what needs
// Redis (a cart, the waiting room) 503 with Retry-After, never 500.
func TestRedisDownServesWhatItCan(t *testing.T) {
	// A port nobody listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "redis://" + ln.Addr().String() + "/0"
	ln.Close()

	cfg := shop.Defaults()
	cfg.DataDir, cfg.RedisURL, cfg.Admission = t.TempDir(), dead, false
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelError}))
	sh, err := shop.Open(t.Context(), cfg, log, telemetry.NewRegistry())
	if err != nil {
		t.Fatalf("open with Redis down: %v", err)
	}
	t.Cleanup(func() { sh.Close() })
	cats, prods := demoshop.Generate(demoshop.Options{Products: 20, Seed: 1})
	if err := sh.Store.ImportCatalog(t.Context(), cats, prods); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sh.Handler)
	t.Cleanup(srv.Close)

	for _, path := range []string{"/", "/api/v1/products?limit=3", "/products/" + prods[0].Slug, "/api/v1/products/" + prods[0].Slug} {
		code, _ := call(t, http.DefaultClient, "GET", srv.URL+path, "")
		if code != 200 {
			t.Errorf("GET %s: %d, want 200 without Redis", path, code)
		}
	}
	req, _ := http.NewRequest("POST", srv.URL+"/api/v1/cart/items", strings.NewReader(`{"sku":"`+prods[0].Variants[0].SKU+`","quantity":1}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p struct {
		Status int
		Detail string
	}
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil || resp.StatusCode != 503 || p.Status != 503 || resp.Header.Get("Retry-After") == "" {
		t.Errorf("cart add without Redis: %d %+v Retry-After %q; want 503 with Retry-After", resp.StatusCode, p, resp.Header.Get("Retry-After"))
	}
}
