package shop

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/surge-commerce/surge/internal/catalog"
	"github.com/surge-commerce/surge/internal/drop"
	"github.com/surge-commerce/surge/internal/money"
)

// TestDropWarmUp: a drop that starts soon has its page in the page cache
// before the start, so the first visitors hit a warm cache.
func TestDropWarmUp(t *testing.T) {
	ctx := context.Background()
	cfg := Defaults()
	cfg.DataDir = t.TempDir()
	cfg.WarmBefore = 2 * time.Second
	sh, err := Open(ctx, cfg, slog.New(slog.NewTextHandler(t.Output(), nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer sh.Close()
	c, _ := sh.Store.CreateCategory(ctx, catalog.Category{Slug: "drops", Name: "Drops"})
	if _, err := sh.Store.CreateProduct(ctx, catalog.Product{Slug: "warm-sneaker", Name: "Warm Sneaker", Status: catalog.StatusActive, CategoryID: c.ID,
		Variants: []catalog.Variant{{SKU: "WARM-1", Price: money.Money{Amount: 100, Currency: "USD"}, OnHand: 1}}}); err != nil {
		t.Fatal(err)
	}
	d := drop.Drop{Slug: "warm-drop", Name: "Warm Drop", StartsAt: time.Now().Add(3 * time.Second), Items: []drop.Item{{SKU: "WARM-1", Allocated: 10}}}
	d.Defaults()
	if d, err = sh.Store.CreateDrop(ctx, d); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = sh.Run(runCtx, RoleAPI); close(done) }()
	defer func() { stop(); <-done }()

	deadline := time.Now().Add(10 * time.Second)
	for !slices.Contains(sh.Warmed(), d.ID) {
		if time.Now().After(deadline) {
			t.Fatal("drop not warmed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if time.Now().After(d.StartsAt) {
		t.Fatalf("warmed only after the start")
	}
	for _, p := range []string{"/drops/warm-drop", "/products/warm-sneaker"} {
		if !sh.Cache.Has(httptest.NewRequest("GET", p, nil)) {
			t.Errorf("%s not in the page cache after warm-up", p)
		}
	}
}
