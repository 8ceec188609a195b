package storetest

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/surge-commerce/surge/internal/catalog"
)

// walk follows NextCursor from the first page to the last and returns every
// item. It fails on an empty page, a page over the limit, a page with
// variants, or an item seen twice.
func walk(t *testing.T, s catalog.Store, q catalog.Query) []catalog.Product {
	t.Helper()
	var all []catalog.Product
	seen := map[int64]bool{}
	for pages := 0; ; pages++ {
		if pages > 10000 {
			t.Fatalf("walk %+v: no end in sight", q)
		}
		page := mustSearch(t, s, q)
		if pages > 0 && len(page.Items) == 0 {
			t.Fatalf("walk %+v: page %d after a cursor is empty", q, pages+1)
		}
		if q.Limit > 0 && len(page.Items) > q.Limit {
			t.Fatalf("walk %+v: page of %d items", q, len(page.Items))
		}
		for _, p := range page.Items {
			if seen[p.ID] {
				t.Fatalf("walk %+v: %s seen twice", q, p.Slug)
			}
			if p.Variants != nil {
				t.Errorf("walk %+v: %s listed with variants", q, p.Slug)
			}
			seen[p.ID] = true
		}
		all = append(all, page.Items...)
		if page.NextCursor == "" {
			return all
		}
		// The cursor belongs to the sort the store applied.
		sort := q.Sort
		if sort == "" {
			sort = catalog.SortRelevance
		}
		if sort == catalog.SortRelevance && strings.TrimSpace(q.Text) == "" {
			sort = catalog.SortNewest
		}
		after, err := catalog.DecodeCursor(page.NextCursor, sort)
		if err != nil {
			t.Fatalf("walk %+v: cursor %q: %v", q, page.NextCursor, err)
		}
		q.After = after
	}
}

// searchFixture is a catalog with a three-level category tree, drafts, and
// products whose prices and creation times tie.
type searchFixture struct {
	apparel, shirts, tees, home catalog.Category
	products                    []catalog.Product // as stored, variants included
}

func newSearchFixture(t *testing.T, s catalog.Store) searchFixture {
	var f searchFixture
	f.apparel = mustCategory(t, s, catalog.Category{Slug: "apparel", Name: "Apparel"})
	f.shirts = mustCategory(t, s, catalog.Category{ParentID: f.apparel.ID, Slug: "shirts", Name: "Shirts"})
	f.tees = mustCategory(t, s, catalog.Category{ParentID: f.shirts.ID, Slug: "tees", Name: "Tees"})
	f.home = mustCategory(t, s, catalog.Category{Slug: "home", Name: "Home"})
	cats := []int64{f.apparel.ID, f.shirts.ID, f.tees.ID, f.home.ID}
	// 24 products: prices cycle through 4 values and creation times through
	// 5, so both sorts are full of ties; every 6th is a draft and every 3rd
	// out of stock.
	for i := range 24 {
		price := []int64{1500, 999, 2500, 999}[i%4]
		p := product(fmt.Sprintf("item-%02d", i), cats[i%4], variant(fmt.Sprintf("SKU-%02d", i), price, int64(i%3)))
		p.Name = fmt.Sprintf("Widget %d", i)
		if i%6 == 5 {
			p.Status = catalog.StatusDraft
		}
		p.CreatedAt = base.Add(time.Duration(i%5) * time.Hour)
		f.products = append(f.products, mustProduct(t, s, p))
	}
	return f
}

// expect returns the fixture's products that pass keep, in the order of
// sort, by slug.
func (f searchFixture) expect(sort catalog.Sort, keep func(p catalog.Product) bool) []string {
	var ps []catalog.Product
	for _, p := range f.products {
		if keep(p) {
			ps = append(ps, p)
		}
	}
	slices.SortFunc(ps, func(a, b catalog.Product) int {
		switch sort {
		case catalog.SortPriceAsc:
			return cmpKeys(a.PriceFrom.Amount, b.PriceFrom.Amount, a.ID, b.ID)
		case catalog.SortPriceDesc:
			return cmpKeys(b.PriceFrom.Amount, a.PriceFrom.Amount, b.ID, a.ID)
		default: // newest
			return cmpKeys(b.CreatedAt.UnixNano(), a.CreatedAt.UnixNano(), b.ID, a.ID)
		}
	})
	return slugs(ps)
}

func cmpKeys(a, b, idA, idB int64) int {
	if a != b {
		return cmpInt(a, b)
	}
	return cmpInt(idA, idB)
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func active(p catalog.Product) bool { return p.Status == catalog.StatusActive }

func testVisibility(t *testing.T, s catalog.Store) {
	f := newSearchFixture(t, s)
	drafts := 0
	for _, p := range f.products {
		if !active(p) {
			drafts++
		}
	}
	if got := walk(t, s, catalog.Query{Limit: catalog.MaxLimit}); len(got) != len(f.products)-drafts {
		t.Errorf("storefront listing has %d products, want the %d active ones", len(got), len(f.products)-drafts)
	} else {
		for _, p := range got {
			if !active(p) {
				t.Errorf("storefront listing shows draft %s", p.Slug)
			}
		}
	}
	if got := walk(t, s, catalog.Query{Limit: catalog.MaxLimit, IncludeDrafts: true}); len(got) != len(f.products) {
		t.Errorf("admin listing has %d products, want all %d", len(got), len(f.products))
	}
	if got := walk(t, s, catalog.Query{Text: "widget", Limit: catalog.MaxLimit}); len(got) != len(f.products)-drafts {
		t.Errorf("storefront search has %d products, want the %d active ones", len(got), len(f.products)-drafts)
	}
	// Drafts are still readable one by one (the admin edits them).
	draft := f.products[5]
	if got, err := s.ProductBySlug(context.Background(), draft.Slug); err != nil || got.Status != catalog.StatusDraft {
		t.Errorf("ProductBySlug(draft) = %+v, %v", got, err)
	}
}

func testFilters(t *testing.T, s catalog.Store) {
	f := newSearchFixture(t, s)
	in := func(ids ...int64) func(p catalog.Product) bool {
		return func(p catalog.Product) bool { return active(p) && slices.Contains(ids, p.CategoryID) }
	}
	tests := []struct {
		name string
		q    catalog.Query
		keep func(p catalog.Product) bool
	}{
		{"root category includes descendants", catalog.Query{CategoryID: f.apparel.ID}, in(f.apparel.ID, f.shirts.ID, f.tees.ID)},
		{"middle category", catalog.Query{CategoryID: f.shirts.ID}, in(f.shirts.ID, f.tees.ID)},
		{"leaf category", catalog.Query{CategoryID: f.tees.ID}, in(f.tees.ID)},
		{"other tree", catalog.Query{CategoryID: f.home.ID}, in(f.home.ID)},
		{"unknown category", catalog.Query{CategoryID: f.home.ID + 1000}, func(catalog.Product) bool { return false }},
		{"min price inclusive", catalog.Query{MinPrice: 1500}, func(p catalog.Product) bool { return active(p) && p.PriceFrom.Amount >= 1500 }},
		{"max price inclusive", catalog.Query{MaxPrice: 1500}, func(p catalog.Product) bool { return active(p) && p.PriceFrom.Amount <= 1500 }},
		{"price range", catalog.Query{MinPrice: 1000, MaxPrice: 2000}, func(p catalog.Product) bool { return active(p) && p.PriceFrom.Amount == 1500 }},
		{"in stock", catalog.Query{InStock: true}, func(p catalog.Product) bool { return active(p) && p.InStock }},
		{"everything at once", catalog.Query{CategoryID: f.shirts.ID, MaxPrice: 1000, InStock: true, IncludeDrafts: true},
			func(p catalog.Product) bool {
				return (p.CategoryID == f.shirts.ID || p.CategoryID == f.tees.ID) && p.PriceFrom.Amount <= 1000 && p.InStock
			}},
	}
	for _, tt := range tests {
		for _, sort := range []catalog.Sort{catalog.SortNewest, catalog.SortPriceAsc} {
			q := tt.q
			q.Sort, q.Limit = sort, 4
			want := f.expect(sort, tt.keep)
			if got := slugs(walk(t, s, q)); !slices.Equal(got, want) && (len(got) > 0 || len(want) > 0) {
				t.Errorf("%s, %s:\n got %v\nwant %v", tt.name, sort, got, want)
			}
		}
	}
	// The fixture must exercise each filter, or the table proves nothing.
	for _, p := range f.products {
		if !p.InStock {
			return
		}
	}
	t.Fatal("fixture has no out-of-stock product")
}

func testSortAndPaginate(t *testing.T, s catalog.Store) {
	f := newSearchFixture(t, s)
	for _, sort := range []catalog.Sort{catalog.SortNewest, catalog.SortPriceAsc, catalog.SortPriceDesc} {
		for _, drafts := range []bool{false, true} {
			want := f.expect(sort, func(p catalog.Product) bool { return drafts || active(p) })
			for _, limit := range []int{1, 2, 3, 5, 19, catalog.MaxLimit} {
				q := catalog.Query{Sort: sort, Limit: limit, IncludeDrafts: drafts}
				if got := slugs(walk(t, s, q)); !slices.Equal(got, want) {
					t.Errorf("sort %s, limit %d, drafts %v:\n got %v\nwant %v", sort, limit, drafts, got, want)
				}
			}
		}
	}

	// The zero query lists the newest first, DefaultLimit at a time.
	page := mustSearch(t, s, catalog.Query{IncludeDrafts: true})
	want := f.expect(catalog.SortNewest, func(catalog.Product) bool { return true })
	if got := slugs(page.Items); !slices.Equal(got, want[:min(len(want), catalog.DefaultLimit)]) {
		t.Errorf("zero query:\n got %v\nwant %v", got, want)
	}

	// Relevance: every widget ranks the same (identical text shapes), so
	// the order rests on the ID tie-breaker; small pages must agree with
	// one big page.
	one := mustSearch(t, s, catalog.Query{Text: "widget", Sort: catalog.SortRelevance, Limit: catalog.MaxLimit})
	if one.NextCursor != "" {
		t.Errorf("a page holding everything has a next cursor")
	}
	for _, limit := range []int{1, 2, 7} {
		got := walk(t, s, catalog.Query{Text: "widget", Sort: catalog.SortRelevance, Limit: limit})
		if !slices.Equal(slugs(got), slugs(one.Items)) {
			t.Errorf("relevance, limit %d:\n got %v\nwant %v", limit, slugs(got), slugs(one.Items))
		}
	}
	// Text with another sort keeps that sort.
	got := walk(t, s, catalog.Query{Text: "widget", Sort: catalog.SortPriceAsc, Limit: 5})
	if want := f.expect(catalog.SortPriceAsc, active); !slices.Equal(slugs(got), want) {
		t.Errorf("text sorted by price:\n got %v\nwant %v", slugs(got), want)
	}
}

func testFullText(t *testing.T, s catalog.Store) {
	outer := mustCategory(t, s, catalog.Category{Slug: "outerwear", Name: "Outerwear"})
	knit := mustCategory(t, s, catalog.Category{Slug: "knitwear", Name: "Knitwear"})
	add := func(slug, name, desc string, cat int64) {
		p := product(slug, cat, variant(strings.ToUpper(slug), 5000, 1))
		p.Name, p.Description = name, desc
		mustProduct(t, s, p)
	}
	add("alpine-parka", "Alpine Parka", "A warm down jacket for cold mornings.", outer.ID)
	add("rain-shell", "Rain Shell", "Lightweight and packable; layer it over a fleece or under a parka when the sleet turns to snow.", outer.ID)
	add("wool-scarf", "Wool Scarf", "Soft, long, and scratch-free.", knit.ID)
	add("cafe-mug", "Café Mug", "Stoneware.", knit.ID)

	tests := []struct {
		text string
		want []string // in relevance order; nil for none
	}{
		{"parka", []string{"alpine-parka", "rain-shell"}}, // name match first
		{"PARKA", []string{"alpine-parka", "rain-shell"}},
		{"jacket", []string{"alpine-parka"}},             // description
		{"knitwear", []string{"wool-scarf", "cafe-mug"}}, // category name
		{"park", []string{"alpine-parka", "rain-shell"}}, // the last word is a prefix
		{"alpine parka", []string{"alpine-parka"}},       // all words must match
		{"alpine scarf", nil},
		{"\"parka\"", []string{"alpine-parka", "rain-shell"}},
		{"parka!", []string{"alpine-parka", "rain-shell"}},
		{"🧥 parka", []string{"alpine-parka", "rain-shell"}},
		{"wool-scarf", []string{"wool-scarf"}},
		{"café", []string{"cafe-mug"}},
	}
	for _, tt := range tests {
		page := mustSearch(t, s, catalog.Query{Text: tt.text, Sort: catalog.SortRelevance})
		got := slugs(page.Items)
		if len(got) == 0 {
			got = nil
		}
		if tt.text == "knitwear" {
			slices.Sort(got) // both match only by category: no order promised
			slices.Sort(tt.want)
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("search %q = %v, want %v", tt.text, got, tt.want)
		}
	}
}

// hostileTexts are search strings that break naive FTS query building.
var hostileTexts = []string{
	`"`, `""`, `"""`, `*`, `**`, `parka*`, `*parka`, `p*a*r*k*a`, `(`, `)`, `()`, `(parka`, `parka)`,
	`AND`, `OR`, `NOT`, `AND OR`, `parka AND`, `OR parka`, `NOT parka`, `NEAR`, `NEAR(`, `NEAR(parka shell, 2)`,
	`name:parka`, `{name description}: parka`, `^parka`, `-parka`, `+parka`, `parka -shell`, `'`, `';DROP TABLE products;--`,
	`\`, `%`, `_`, `?`, `:`, `.`, `,`, `🧥`, `🧥🧥 🙂`, "\u200d", "e\u0301", "\u0301", "\x00", "parka\x00shell", "\xff\xfe",
	strings.Repeat("parka ", 40), strings.Repeat("a", 200), strings.Repeat(`"*(`, 60), "日本語のコート", "ПАРКА",
}

func testHostileText(t *testing.T, s catalog.Store) {
	cat := mustCategory(t, s, catalog.Category{Slug: "outerwear", Name: "Outerwear"})
	p := product("alpine-parka", cat.ID, variant("AP-1", 5000, 1))
	p.Name = "Alpine Parka"
	mustProduct(t, s, p)
	for _, text := range hostileTexts {
		for _, sort := range []catalog.Sort{catalog.SortRelevance, catalog.SortNewest} {
			if _, err := s.SearchProducts(context.Background(), catalog.Query{Text: text, Sort: sort}); err != nil {
				t.Errorf("search %q sorted %s: %v", text, sort, err)
			}
		}
	}
}
