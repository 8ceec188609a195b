package storefront_test

import (
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/surge-commerce/surge/internal/catalog"
	"github.com/surge-commerce/surge/internal/demoshop"
	"github.com/surge-commerce/surge/internal/pagecache"
	"github.com/surge-commerce/surge/internal/sqlitestore"
	"github.com/surge-commerce/surge/internal/storefront"
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
	st, err := sqlitestore.Open(ctx, filepath.Join(tb.TempDir(), "surge.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		tb.Fatal(err)
	}
	cats, prods := demoshop.Generate(demoshop.Options{Products: products})
	if err := st.ImportCatalog(ctx, cats, prods); err != nil {
		tb.Fatal(err)
	}

	log := slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	cache := pagecache.New(pagecache.Config{Logger: log})
	cat, err := catalog.NewService(st, catalog.ServiceOptions{Purge: func(tags ...string) { cache.PurgeTags(tags...) }})
	if err != nil {
		tb.Fatal(err)
	}
	metrics, err := telemetry.NewHTTPMetrics(telemetry.NewRegistry())
	if err != nil {
		tb.Fatal(err)
	}
	h, err := storefront.NewServer(storefront.Deps{Catalog: cat, Logger: log, Metrics: metrics, PageCache: cache.Middleware})
	if err != nil {
		tb.Fatal(err)
	}
	// Registered after the store's cleanup, so it runs first: no request
	// reaches a closed store.
	srv := httptest.NewServer(h)
	tb.Cleanup(srv.Close)
	return testShop{URL: srv.URL, Catalog: cat}
}
