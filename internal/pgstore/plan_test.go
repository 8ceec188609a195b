package pgstore

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/surge-commerce/surge/internal/catalog"
	"github.com/surge-commerce/surge/internal/enginetest"
	"github.com/surge-commerce/surge/internal/money"
)

// TestListingPlans guards the storefront listings against sorting the
// whole catalog: each sort must walk an index and stop after a page. (Text
// search is left to the planner: on a catalog this small a scan beats the
// GIN index, and it rightly takes the scan.)
func TestListingPlans(t *testing.T) {
	ctx := context.Background()
	url, _ := enginetest.Postgres(t)
	s, err := Open(ctx, Config{URL: url, MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	cats := []catalog.Category{{Slug: "all", Name: "All"}}
	products := make([]catalog.Product, 5000)
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range products {
		products[i] = catalog.Product{Slug: fmt.Sprintf("p-%d", i), Name: fmt.Sprint("Product ", i), Status: catalog.StatusActive, CategoryID: 1,
			CreatedAt: base.Add(time.Duration(i) * time.Minute),
			Variants:  []catalog.Variant{{SKU: fmt.Sprintf("P-%d", i), Price: money.Money{Amount: int64(100 + i%50), Currency: "USD"}, OnHand: int64(i % 2)}}}
	}
	if err := s.ImportCatalog(ctx, cats, products); err != nil {
		t.Fatal(err)
	}
	if _, err := s.primary.Exec(ctx, `ANALYZE`); err != nil {
		t.Fatal(err)
	}
	after := base.Add(time.Hour).UnixNano()
	for _, tt := range []struct {
		q    catalog.Query
		want string
	}{
		{catalog.Query{Sort: catalog.SortNewest}, "products_status_created"},
		{catalog.Query{Sort: catalog.SortNewest, After: &catalog.Cursor{Sort: catalog.SortNewest, Time: after, ID: 3}, InStock: true}, "products_status_created"},
		{catalog.Query{Sort: catalog.SortPriceAsc, After: &catalog.Cursor{Sort: catalog.SortPriceAsc, Price: 120, ID: 3}, MinPrice: 100}, "products_status_price"},
		{catalog.Query{Sort: catalog.SortPriceDesc, After: &catalog.Cursor{Sort: catalog.SortPriceDesc, Price: 120, ID: 3}}, "products_status_price"},
	} {
		query, args := searchSQL(tt.q, nil, tt.q.Sort, 24)
		rows, err := s.primary.Query(ctx, "EXPLAIN "+query, args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, strings.TrimSpace(line))
		}
		rows.Close()
		p := strings.Join(plan, "\n")
		if strings.Contains(p, "Sort Key:") || !strings.Contains(p, "using "+tt.want) {
			t.Errorf("sort %s: want a walk of %s without sorting:\n%s", tt.q.Sort, tt.want, p)
		}
	}
}
