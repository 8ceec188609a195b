package storefront_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/surge-commerce/surge/internal/admission"
	"github.com/surge-commerce/surge/internal/catalog"
	"github.com/surge-commerce/surge/internal/drop"
	"github.com/surge-commerce/surge/internal/money"
	"github.com/surge-commerce/surge/internal/shop"
)

// TestLineIsNeverShed: with the concurrency limit full (its one slot held
// by a cart add waiting on the database, its one queue place taken), the
// limiter sheds a cart read with 503, and still a drop's line takes joins
// and answers statuses: the line is the drop's overload protection.
func TestLineIsNeverShed(t *testing.T) {
	ctx := context.Background()
	cfg := shop.Defaults()
	cfg.DataDir, cfg.AdminToken = t.TempDir(), apiTestToken
	cfg.AdmissionConfig.Limit = admission.LimitConfig{Floor: 1, Ceiling: 1, Initial: 1, MaxQueue: 1}
	sh, err := shop.Open(ctx, cfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sh.Close() })
	c, err := sh.Store.CreateCategory(ctx, catalog.Category{Slug: "drops", Name: "Drops"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sh.Store.CreateProduct(ctx, catalog.Product{Slug: "runner", Name: "Runner", Status: catalog.StatusActive, CategoryID: c.ID,
		Variants: []catalog.Variant{{SKU: "RUN-1", Price: money.Money{Amount: 9000, Currency: "USD"}, OnHand: 10}}}); err != nil {
		t.Fatal(err)
	}
	admin := &jarClient{h: sh.Handler, cookies: map[string]string{}}
	st, out := admin.do("POST", "/api/v1/admin/drops", fmt.Sprintf(`{"name":"Runner","slug":"runner","starts_at":%q,
		"per_customer_limit":1,"items":[{"sku":"RUN-1","allocated":10}],"room":{"rate_per_minute":60,"prequeue_opens":"2h"}}`,
		time.Now().Add(time.Hour).UTC().Format(time.RFC3339)), "Authorization", "Bearer "+apiTestToken)
	if st != 201 {
		t.Fatalf("create drop: %d %s", st, out)
	}
	var d drop.Drop
	_ = json.Unmarshal([]byte(out), &d)

	// Hold the database's one writer connection: a cart add, which needs
	// it, then holds the limiter's one slot, and a second waits in its
	// one queue place.
	tx, err := sh.Store.Writer().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := &jarClient{h: sh.Handler, cookies: map[string]string{}, addr: fmt.Sprintf("127.0.9.%d:4000", i+1)}
			b.do("POST", "/api/v1/cart/items", `{"sku":"RUN-1","quantity":1}`)
		}()
	}
	defer func() { _ = tx.Rollback(); wg.Wait() }()

	reader := &jarClient{h: sh.Handler, cookies: map[string]string{}, addr: "127.0.9.10:4000"}
	for deadline := time.Now().Add(10 * time.Second); ; {
		if st, _ := reader.do("GET", "/api/v1/cart", ""); st == http.StatusServiceUnavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the limiter never filled up")
		}
		time.Sleep(20 * time.Millisecond)
	}

	for i := range 5 {
		b := &jarClient{h: sh.Handler, cookies: map[string]string{}, addr: fmt.Sprintf("127.0.8.%d:4000", i+1)}
		if st, out := b.do("POST", "/api/v1/drops/"+d.ID+"/queue/join", ""); st != 200 || !strings.Contains(out, `"pre_queue"`) {
			t.Fatalf("join %d with the limiter full: %d %s; want 200 in the pre-queue", i, st, out)
		}
		if st, out := b.do("GET", "/api/v1/drops/"+d.ID+"/queue", ""); st != 200 {
			t.Fatalf("status %d with the limiter full: %d %s; want 200", i, st, out)
		}
	}
}
