package storefront_test

import (
	"log/slog"
	"net/http/httptest"
	"testing"

	"github.com/surge-commerce/surge/internal/catalog"
	"github.com/surge-commerce/surge/internal/demoshop"
	"github.com/surge-commerce/surge/internal/shop"
	"github.com/surge-commerce/surge/internal/telemetry"
)

// testShop is a shop served over real HTTP, wired as surge serve wires it:
// a migrated SQLite store holding the demo catalog, the catalog service,
// the page cache and the storefront handler.
type testShop struct {
	URL     string
	Catalog *catalog.Service
}

// mustTestShop starts a shop with the given number of demo products. It is
// shut down when the test ends.
func mustTestShop(tb testing.TB, products int) testShop {
	tb.Helper()
	ctx := tb.Context()
	cfg := shop.Defaults()
	cfg.DataDir = tb.TempDir()
	// A browser's journey must not lose an image to shedding when the
	// test machine is busy; shedding is the admission tests' business.
	cfg.Admission = false
	log := slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	sh, err := shop.Open(ctx, cfg, log, telemetry.NewRegistry())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { sh.Close() })
	cats, prods := demoshop.Generate(demoshop.Options{Products: products})
	if err := sh.Store.ImportCatalog(ctx, cats, prods); err != nil {
		tb.Fatal(err)
	}
	h, cat := sh.Handler, sh.Catalog
	// Registered after the store's cleanup, so it runs first: no request
	// reaches a closed store.
	srv := httptest.NewServer(h)
	tb.Cleanup(srv.Close)
	return testShop{URL: srv.URL, Catalog: cat}
}
