// Package storetest is the conformance suite every store adapter passes
// against a real database: Run for the catalog (catalog.Store) and RunShop
// for the buy path (customers, sessions, carts, orders and their stock,
// the outbox, drops):
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) catalog.Store { return newTestStore(t) })
//	}
//
//	func TestShopConformance(t *testing.T) {
//		storetest.RunShop(t, func(t *testing.T) storetest.Store { return newTestStore(t) })
//	}
//
// The suites compare times to the microsecond at most, so engines that
// keep microseconds pass them too.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/surge-commerce/surge/internal/catalog"
	"github.com/surge-commerce/surge/internal/money"
)

// Run runs every conformance test, each on a fresh store from newStore, which
// should register its own cleanup with t.
func Run(t *testing.T, newStore func(t *testing.T) catalog.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s catalog.Store)
	}{
		{"Categories", testCategories},
		{"CategoryErrors", testCategoryErrors},
		{"CreateProduct", testCreateProduct},
		{"ProductErrors", testProductErrors},
		{"UpdateProduct", testUpdateProduct},
		{"Variants", testVariants},
		{"Visibility", testVisibility},
		{"Filters", testFilters},
		{"SortAndPaginate", testSortAndPaginate},
		{"FullText", testFullText},
		{"HostileText", testHostileText},
		{"Import", testImport},
		{"ImportAtomic", testImportAtomic},
		{"Concurrent", testConcurrent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, newStore(t))
		})
	}
}

// base is the suite's epoch: fixtures set CreatedAt relative to it.
var base = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func usd(amount int64) money.Money { return money.Money{Amount: amount, Currency: "USD"} }

func variant(sku string, price, onHand int64) catalog.Variant {
	return catalog.Variant{SKU: sku, Price: usd(price), OnHand: onHand,
		Options: []catalog.Option{{Name: "size", Value: "M"}}}
}

func product(slug string, categoryID int64, vs ...catalog.Variant) catalog.Product {
	return catalog.Product{
		Slug: slug, Name: "Product " + slug, Description: "About " + slug + ".",
		Status: catalog.StatusActive, CategoryID: categoryID, Variants: vs,
	}
}

func mustCategory(t *testing.T, s catalog.Store, c catalog.Category) catalog.Category {
	t.Helper()
	got, err := s.CreateCategory(context.Background(), c)
	if err != nil {
		t.Fatalf("CreateCategory(%q): %v", c.Slug, err)
	}
	return got
}

func mustProduct(t *testing.T, s catalog.Store, p catalog.Product) catalog.Product {
	t.Helper()
	got, err := s.CreateProduct(context.Background(), p)
	if err != nil {
		t.Fatalf("CreateProduct(%q): %v", p.Slug, err)
	}
	return got
}

func mustSearch(t *testing.T, s catalog.Store, q catalog.Query) catalog.Page {
	t.Helper()
	page, err := s.SearchProducts(context.Background(), q)
	if err != nil {
		t.Fatalf("SearchProducts(%+v): %v", q, err)
	}
	return page
}

// wantErr fails unless err is target (nil meaning no error).
func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if target == nil {
		if err != nil {
			t.Errorf("%s: %v, want no error", what, err)
		}
		return
	}
	if !errors.Is(err, target) {
		t.Errorf("%s: error %v, want %v", what, err, target)
	}
}

func slugs(ps []catalog.Product) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Slug
	}
	return out
}

func testCategories(t *testing.T, s catalog.Store) {
	ctx := context.Background()
	clothing := mustCategory(t, s, catalog.Category{Slug: "clothing", Name: "Clothing", Position: 1, Description: "All of it"})
	home := mustCategory(t, s, catalog.Category{Slug: "home", Name: "Home", Position: 0})
	shirts := mustCategory(t, s, catalog.Category{ParentID: clothing.ID, Slug: "shirts", Name: "Shirts", Position: 2})
	dresses := mustCategory(t, s, catalog.Category{ParentID: clothing.ID, Slug: "dresses", Name: "Dresses", Position: 1})
	tees := mustCategory(t, s, catalog.Category{ParentID: shirts.ID, Slug: "tees", Name: "T-shirts"})
	all := []catalog.Category{clothing, home, shirts, dresses, tees}

	ids := map[int64]bool{}
	for _, c := range all {
		if c.ID <= 0 || ids[c.ID] {
			t.Fatalf("category %q got ID %d; want a new positive ID", c.Slug, c.ID)
		}
		ids[c.ID] = true
		got, err := s.CategoryBySlug(ctx, c.Slug)
		if err != nil {
			t.Fatalf("CategoryBySlug(%q): %v", c.Slug, err)
		}
		if got != c {
			t.Errorf("CategoryBySlug(%q) = %+v, want %+v", c.Slug, got, c)
		}
	}

	list, err := s.Categories(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != len(all) {
		t.Fatalf("Categories() has %d categories, want %d", len(list), len(all))
	}
	index := map[int64]int{}
	for i, c := range list {
		index[c.ID] = i
	}
	for _, c := range all {
		i, ok := index[c.ID]
		if !ok {
			t.Fatalf("Categories() lacks %q", c.Slug)
		}
		if list[i] != c {
			t.Errorf("Categories() has %+v, want %+v", list[i], c)
		}
		if c.ParentID != 0 && index[c.ParentID] > i {
			t.Errorf("Categories() lists %q before its parent", c.Slug)
		}
	}
	// Siblings come by position.
	if index[home.ID] > index[clothing.ID] {
		t.Errorf("Categories(): root home (position 0) after clothing (position 1)")
	}
	if index[dresses.ID] > index[shirts.ID] {
		t.Errorf("Categories(): dresses (position 1) after shirts (position 2)")
	}
}

func testCategoryErrors(t *testing.T, s catalog.Store) {
	ctx := context.Background()
	root := mustCategory(t, s, catalog.Category{Slug: "root", Name: "Root"})
	tests := []struct {
		name string
		c    catalog.Category
		want error
	}{
		{"duplicate slug", catalog.Category{Slug: "root", Name: "Again"}, catalog.ErrConflict},
		{"bad slug", catalog.Category{Slug: "Not A Slug", Name: "X"}, catalog.ErrInvalid},
		{"empty name", catalog.Category{Slug: "empty", Name: " "}, catalog.ErrInvalid},
		{"missing parent", catalog.Category{ParentID: root.ID + 1000, Slug: "orphan", Name: "Orphan"}, catalog.ErrInvalid},
		{"negative parent", catalog.Category{ParentID: -1, Slug: "negative", Name: "Negative"}, catalog.ErrInvalid},
		{"child", catalog.Category{ParentID: root.ID, Slug: "child", Name: "Child"}, nil},
	}
	for _, tt := range tests {
		_, err := s.CreateCategory(ctx, tt.c)
		wantErr(t, tt.name, err, tt.want)
	}
	_, err := s.CategoryBySlug(ctx, "nope")
	wantErr(t, "CategoryBySlug(missing)", err, catalog.ErrNotFound)
	if _, err := s.CategoryBySlug(ctx, "orphan"); !errors.Is(err, catalog.ErrNotFound) {
		t.Errorf("a refused category was stored: %v", err)
	}
}

func testCreateProduct(t *testing.T, s catalog.Store) {
	ctx := context.Background()
	cat := mustCategory(t, s, catalog.Category{Slug: "shirts", Name: "Shirts"})
	in := product("linen-shirt", cat.ID,
		catalog.Variant{SKU: "LS-L", Price: usd(4500), OnHand: 0, Position: 2, Options: []catalog.Option{{Name: "size", Value: "L"}}},
		catalog.Variant{SKU: "LS-S", Price: usd(3900), OnHand: 3, Position: 0, Options: []catalog.Option{{Name: "size", Value: "S"}}},
		catalog.Variant{SKU: "LS-M", Price: usd(4200), OnHand: 1, Position: 1, Options: []catalog.Option{{Name: "size", Value: "M"}, {Name: "colour", Value: "sand"}}},
	)
	in.Name = "Linen Shirt"
	in.Images = []catalog.Image{{URL: "/img/ls.jpg", Alt: "A linen shirt"}}
	in.Attributes = []catalog.Attribute{{Name: "material", Value: "linen"}}
	in.CreatedAt = base
	p := mustProduct(t, s, in)

	if p.ID <= 0 {
		t.Fatalf("ID = %d", p.ID)
	}
	if got := []string{p.Variants[0].SKU, p.Variants[1].SKU, p.Variants[2].SKU}; !reflect.DeepEqual(got, []string{"LS-S", "LS-M", "LS-L"}) {
		t.Errorf("variants in order %v, want by position", got)
	}
	for _, v := range p.Variants {
		if v.ID <= 0 || v.ProductID != p.ID || v.Reserved != 0 || v.Sold != 0 {
			t.Errorf("variant %+v: want an ID, product %d, nothing reserved or sold", v, p.ID)
		}
	}
	if p.PriceFrom != usd(3900) || !p.InStock {
		t.Errorf("PriceFrom, InStock = %v, %v; want $39.00, true", p.PriceFrom, p.InStock)
	}
	if !p.CreatedAt.Equal(base) || !p.UpdatedAt.Equal(base) {
		t.Errorf("CreatedAt, UpdatedAt = %v, %v; want %v for both", p.CreatedAt, p.UpdatedAt, base)
	}
	if !reflect.DeepEqual(p.Images, in.Images) || !reflect.DeepEqual(p.Attributes, in.Attributes) ||
		!reflect.DeepEqual(p.Variants[1].Options, in.Variants[2].Options) {
		t.Errorf("images, attributes or options changed: %+v", p)
	}
	if p.Name != in.Name || p.Description != in.Description || p.Status != in.Status || p.CategoryID != cat.ID || p.Slug != in.Slug {
		t.Errorf("stored %+v, want fields of %+v", p, in)
	}

	for name, get := range map[string]func() (catalog.Product, error){
		"ProductByID":   func() (catalog.Product, error) { return s.ProductByID(ctx, p.ID) },
		"ProductBySlug": func() (catalog.Product, error) { return s.ProductBySlug(ctx, p.Slug) },
	} {
		got, err := get()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !sameProduct(got, p) {
			t.Errorf("%s = %+v\nwant %+v", name, got, p)
		}
	}
	v, err := s.VariantBySKU(ctx, "LS-M")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(v, p.Variants[1]) {
		t.Errorf("VariantBySKU = %+v, want %+v", v, p.Variants[1])
	}

	// The store stamps a product created without times.
	before := time.Now().Add(-time.Minute)
	bare := mustProduct(t, s, product("bare", cat.ID))
	if bare.CreatedAt.Before(before) || !bare.UpdatedAt.Equal(bare.CreatedAt) {
		t.Errorf("CreatedAt, UpdatedAt = %v, %v; want now for both", bare.CreatedAt, bare.UpdatedAt)
	}
	if bare.PriceFrom.Amount != 0 || bare.InStock || len(bare.Variants) != 0 {
		t.Errorf("product without variants: PriceFrom %v, InStock %v, %d variants; want 0, false, 0", bare.PriceFrom, bare.InStock, len(bare.Variants))
	}

	sold := mustProduct(t, s, product("sold-out", cat.ID, variant("SO-1", 100, 0), variant("SO-2", 90, 0)))
	if sold.InStock || sold.PriceFrom != usd(90) {
		t.Errorf("sold out product: InStock %v, PriceFrom %v; want false, $0.90", sold.InStock, sold.PriceFrom)
	}
}

// sameProduct compares products, times by instant.
func sameProduct(a, b catalog.Product) bool {
	if !a.CreatedAt.Equal(b.CreatedAt) || !a.UpdatedAt.Equal(b.UpdatedAt) {
		return false
	}
	a.CreatedAt, a.UpdatedAt, b.CreatedAt, b.UpdatedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	return reflect.DeepEqual(a, b)
}

func testProductErrors(t *testing.T, s catalog.Store) {
	ctx := context.Background()
	cat := mustCategory(t, s, catalog.Category{Slug: "c", Name: "C"})
	taken := mustProduct(t, s, product("taken", cat.ID, variant("TAKEN-1", 100, 1)))

	bad := func(change func(p *catalog.Product)) catalog.Product {
		p := product("fresh", cat.ID, variant("FRESH-1", 100, 1))
		change(&p)
		return p
	}
	tests := []struct {
		name string
		p    catalog.Product
		want error
	}{
		{"duplicate slug", bad(func(p *catalog.Product) { p.Slug = "taken" }), catalog.ErrConflict},
		{"sku of another product", bad(func(p *catalog.Product) { p.Variants = append(p.Variants, variant("TAKEN-1", 100, 1)) }), catalog.ErrConflict},
		{"sku twice", bad(func(p *catalog.Product) { p.Variants = append(p.Variants, variant("FRESH-1", 100, 1)) }), catalog.ErrInvalid},
		{"bad slug", bad(func(p *catalog.Product) { p.Slug = "Bad Slug" }), catalog.ErrInvalid},
		{"no name", bad(func(p *catalog.Product) { p.Name = "" }), catalog.ErrInvalid},
		{"bad status", bad(func(p *catalog.Product) { p.Status = "hidden" }), catalog.ErrInvalid},
		{"no category", bad(func(p *catalog.Product) { p.CategoryID = 0 }), catalog.ErrInvalid},
		{"missing category", bad(func(p *catalog.Product) { p.CategoryID = cat.ID + 1000 }), catalog.ErrInvalid},
		{"bad sku", bad(func(p *catalog.Product) { p.Variants[0].SKU = "-x y" }), catalog.ErrInvalid},
		{"negative price", bad(func(p *catalog.Product) { p.Variants[0].Price.Amount = -1 }), catalog.ErrInvalid},
		{"bad currency", bad(func(p *catalog.Product) { p.Variants[0].Price.Currency = "usd" }), catalog.ErrInvalid},
		{"negative stock", bad(func(p *catalog.Product) { p.Variants[0].OnHand = -1 }), catalog.ErrInvalid},
	}
	for _, tt := range tests {
		_, err := s.CreateProduct(ctx, tt.p)
		wantErr(t, tt.name, err, tt.want)
	}
	// A refused product leaves nothing behind, not even the variants that
	// were fine.
	if _, err := s.ProductBySlug(ctx, "fresh"); !errors.Is(err, catalog.ErrNotFound) {
		t.Errorf("ProductBySlug(refused product): %v, want ErrNotFound", err)
	}
	if _, err := s.VariantBySKU(ctx, "FRESH-1"); !errors.Is(err, catalog.ErrNotFound) {
		t.Errorf("VariantBySKU(sku of refused product): %v, want ErrNotFound", err)
	}
	if n, err := s.CountProducts(ctx); err != nil || n != 1 {
		t.Errorf("CountProducts() = %d, %v; want 1", n, err)
	}

	missing := taken
	missing.ID = taken.ID + 1000
	missing.Slug = "missing"
	notFound := []struct {
		name string
		err  error
	}{
		{"ProductByID", second(s.ProductByID(ctx, taken.ID+1000))},
		{"ProductBySlug", second(s.ProductBySlug(ctx, "missing"))},
		{"UpdateProduct", second(s.UpdateProduct(ctx, missing))},
		{"VariantBySKU", second(s.VariantBySKU(ctx, "NOPE"))},
		{"UpdateVariant", second(s.UpdateVariant(ctx, variant("NOPE", 100, 1)))},
		{"SetStock", second(s.SetStock(ctx, "NOPE", 3))},
		{"CreateVariant", second(s.CreateVariant(ctx, taken.ID+1000, variant("NEW-1", 100, 1)))},
	}
	for _, tt := range notFound {
		wantErr(t, tt.name, tt.err, catalog.ErrNotFound)
	}
}

func second[T any](_ T, err error) error { return err }

func testUpdateProduct(t *testing.T, s catalog.Store) {
	ctx := context.Background()
	tops := mustCategory(t, s, catalog.Category{Slug: "tops", Name: "Tops"})
	knitwear := mustCategory(t, s, catalog.Category{Slug: "knitwear", Name: "Knitwear"})
	misc := mustCategory(t, s, catalog.Category{Slug: "misc", Name: "Misc"})
	other := mustProduct(t, s, product("other", misc.ID, variant("O-1", 100, 1)))
	in := product("old-slug", tops.ID, variant("U-1", 2500, 2), variant("U-2", 2000, 0))
	in.Name, in.Description, in.CreatedAt = "Harbour Sweater", "Chunky and warm.", base
	p := mustProduct(t, s, in)

	p.Slug, p.Name, p.Description = "new-slug", "Lighthouse Cardigan", "Fine merino."
	p.CategoryID, p.Status = knitwear.ID, catalog.StatusDraft
	p.Images = []catalog.Image{{URL: "/c.jpg", Alt: "cardigan"}}
	p.Attributes = []catalog.Attribute{{Name: "material", Value: "merino"}}
	got, err := s.UpdateProduct(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if got.Slug != p.Slug || got.Name != p.Name || got.Description != p.Description || got.CategoryID != knitwear.ID ||
		got.Status != catalog.StatusDraft || !reflect.DeepEqual(got.Images, p.Images) || !reflect.DeepEqual(got.Attributes, p.Attributes) {
		t.Errorf("UpdateProduct = %+v, want the new fields of %+v", got, p)
	}
	if !got.CreatedAt.Equal(base) || got.UpdatedAt.Before(base) {
		t.Errorf("CreatedAt, UpdatedAt = %v, %v; want %v kept and a later update time", got.CreatedAt, got.UpdatedAt, base)
	}
	if len(got.Variants) != 2 || got.PriceFrom != usd(2000) || !got.InStock {
		t.Errorf("update lost variants or summary: %+v", got)
	}
	if stored, err := s.ProductBySlug(ctx, "new-slug"); err != nil || !sameProduct(stored, got) {
		t.Errorf("ProductBySlug(new) = %+v, %v; want %+v", stored, err, got)
	}
	_, err = s.ProductBySlug(ctx, "old-slug")
	wantErr(t, "ProductBySlug(old slug)", err, catalog.ErrNotFound)

	// The search index follows name, description and category.
	for text, want := range map[string]int{"lighthouse": 1, "merino": 1, "knitwear": 1, "harbour": 0, "chunky": 0, "tops": 0} {
		page := mustSearch(t, s, catalog.Query{Text: text, IncludeDrafts: true})
		if len(page.Items) != want {
			t.Errorf("search %q after update: %v, want %d item(s)", text, slugs(page.Items), want)
		}
	}
	if page := mustSearch(t, s, catalog.Query{Text: "lighthouse"}); len(page.Items) != 0 {
		t.Errorf("draft found by storefront search: %v", slugs(page.Items))
	}

	p.Slug = other.Slug
	_, err = s.UpdateProduct(ctx, p)
	wantErr(t, "UpdateProduct(taken slug)", err, catalog.ErrConflict)
	p.Slug, p.Name = "new-slug", ""
	_, err = s.UpdateProduct(ctx, p)
	wantErr(t, "UpdateProduct(no name)", err, catalog.ErrInvalid)
	p.Name, p.CategoryID = "Fine", knitwear.ID+1000
	_, err = s.UpdateProduct(ctx, p)
	wantErr(t, "UpdateProduct(missing category)", err, catalog.ErrInvalid)
}

func testVariants(t *testing.T, s catalog.Store) {
	ctx := context.Background()
	cat := mustCategory(t, s, catalog.Category{Slug: "c", Name: "C"})
	p := mustProduct(t, s, product("p", cat.ID, variant("V-1", 2000, 0)))
	check := func(step string, price int64, inStock bool) {
		t.Helper()
		got, err := s.ProductByID(ctx, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.PriceFrom != usd(price) || got.InStock != inStock {
			t.Errorf("after %s: PriceFrom %v, InStock %v; want %v, %v", step, got.PriceFrom, got.InStock, usd(price), inStock)
		}
		page := mustSearch(t, s, catalog.Query{InStock: true})
		if (len(page.Items) == 1) != inStock {
			t.Errorf("after %s: in-stock listing has %v", step, slugs(page.Items))
		}
		page = mustSearch(t, s, catalog.Query{MinPrice: price, MaxPrice: price})
		if len(page.Items) != 1 {
			t.Errorf("after %s: listing priced exactly %d has %v", step, price, slugs(page.Items))
		}
	}
	check("create", 2000, false)

	v2, err := s.CreateVariant(ctx, p.ID, catalog.Variant{SKU: "V-2", Price: usd(1500), OnHand: 3, Position: 1,
		Options: []catalog.Option{{Name: "size", Value: "L"}}})
	if err != nil {
		t.Fatal(err)
	}
	if v2.ID <= 0 || v2.ProductID != p.ID || v2.OnHand != 3 || v2.Price != usd(1500) {
		t.Errorf("CreateVariant = %+v", v2)
	}
	check("CreateVariant", 1500, true)

	v1 := p.Variants[0]
	v1.Price, v1.Position, v1.Options = usd(1000), 5, []catalog.Option{{Name: "size", Value: "XL"}}
	v1.OnHand = 99 // not UpdateVariant's business
	got, err := s.UpdateVariant(ctx, v1)
	if err != nil {
		t.Fatal(err)
	}
	if got.Price != usd(1000) || got.Position != 5 || got.Options[0].Value != "XL" || got.OnHand != 0 || got.ID != v1.ID {
		t.Errorf("UpdateVariant = %+v; want new price, position and options, stock untouched", got)
	}
	check("UpdateVariant", 1000, true)

	if got, err := s.SetStock(ctx, "V-2", 0); err != nil || got.OnHand != 0 {
		t.Fatalf("SetStock(V-2, 0) = %+v, %v", got, err)
	}
	check("SetStock to 0", 1000, false)
	if got, err := s.SetStock(ctx, "V-1", 7); err != nil || got.OnHand != 7 || got.Price != usd(1000) {
		t.Fatalf("SetStock(V-1, 7) = %+v, %v", got, err)
	}
	check("SetStock to 7", 1000, true)

	_, err = s.SetStock(ctx, "V-1", -1)
	wantErr(t, "SetStock(-1)", err, catalog.ErrInvalid)
	_, err = s.CreateVariant(ctx, p.ID, variant("V-2", 100, 1))
	wantErr(t, "CreateVariant(taken sku)", err, catalog.ErrConflict)
	_, err = s.CreateVariant(ctx, p.ID, variant("bad sku", 100, 1))
	wantErr(t, "CreateVariant(bad sku)", err, catalog.ErrInvalid)
	_, err = s.UpdateVariant(ctx, catalog.Variant{SKU: "V-1", Price: money.Money{Amount: 5, Currency: "dollars"}})
	wantErr(t, "UpdateVariant(bad currency)", err, catalog.ErrInvalid)

	stored, err := s.ProductByID(ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if skus := []string{stored.Variants[0].SKU, stored.Variants[1].SKU}; !reflect.DeepEqual(skus, []string{"V-2", "V-1"}) {
		t.Errorf("variants in order %v, want by position", skus)
	}
}

func testImport(t *testing.T, s catalog.Store) {
	ctx := context.Background()
	// Something already there, so input positions and stored IDs differ.
	pre := mustCategory(t, s, catalog.Category{Slug: "pre", Name: "Pre-existing"})
	preProduct := mustProduct(t, s, product("pre-product", pre.ID, variant("PRE-1", 700, 1)))

	cats := []catalog.Category{
		{Slug: "garden", Name: "Garden"},
		{ParentID: 1, Slug: "tools", Name: "Tools", Position: 1},
		{ParentID: 2, Slug: "spades", Name: "Spades"},
	}
	const n = 300
	products := make([]catalog.Product, n)
	for i := range products {
		p := product(fmt.Sprintf("item-%d", i), int64(1+i%3),
			variant(fmt.Sprintf("ITEM-%d-A", i), int64(1000+i), int64(i%2)),
			variant(fmt.Sprintf("ITEM-%d-B", i), int64(900+i), 0))
		if i%7 == 0 {
			p.Name = fmt.Sprintf("Copper trowel %d", i)
		}
		if i%10 == 0 {
			p.Status = catalog.StatusDraft
		}
		p.CreatedAt = base.Add(time.Duration(i) * time.Second)
		products[i] = p
	}
	if err := s.ImportCatalog(ctx, cats, products); err != nil {
		t.Fatal(err)
	}

	if got, err := s.CountProducts(ctx); err != nil || got != n+1 {
		t.Fatalf("CountProducts() = %d, %v; want %d", got, err, n+1)
	}
	stored := map[string]catalog.Category{}
	list, err := s.Categories(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range list {
		stored[c.Slug] = c
	}
	garden, tools, spades := stored["garden"], stored["tools"], stored["spades"]
	if garden.ID == 0 || garden.ParentID != 0 || tools.ParentID != garden.ID || spades.ParentID != tools.ID || tools.Position != 1 {
		t.Fatalf("imported categories not linked by stored IDs: %+v", list)
	}
	p, err := s.ProductBySlug(ctx, "item-5")
	if err != nil {
		t.Fatal(err)
	}
	if p.CategoryID != spades.ID || p.PriceFrom != usd(905) || !p.InStock || len(p.Variants) != 2 || !p.CreatedAt.Equal(base.Add(5*time.Second)) {
		t.Errorf("imported item-5 = %+v", p)
	}
	if p, err := s.ProductBySlug(ctx, "item-4"); err != nil || p.InStock {
		t.Errorf("imported item-4 (no stock) = %+v, %v; want out of stock", p, err)
	}
	if got, err := s.ProductByID(ctx, preProduct.ID); err != nil || !sameProduct(got, preProduct) {
		t.Errorf("import changed an existing product: %+v, %v", got, err)
	}

	active := 0
	trowels := 0
	for i := range n {
		if i%10 != 0 {
			active++
			if i%7 == 0 {
				trowels++
			}
		}
	}
	if got := len(walk(t, s, catalog.Query{CategoryID: garden.ID, Limit: catalog.MaxLimit})); got != active {
		t.Errorf("garden and below: %d active products, want %d", got, active)
	}
	if got := len(walk(t, s, catalog.Query{Text: "copper trowel", Limit: 10})); got != trowels {
		t.Errorf("search for copper trowel: %d, want %d", got, trowels)
	}
	inSpades := 0
	for i := range n {
		if i%3 == 2 && i%10 != 0 {
			inSpades++
		}
	}
	if got := len(walk(t, s, catalog.Query{Text: "spades", Limit: catalog.MaxLimit})); got != inSpades {
		t.Errorf("search for the category name spades: %d, want %d", got, inSpades)
	}
}

func testImportAtomic(t *testing.T, s catalog.Store) {
	ctx := context.Background()
	cats := []catalog.Category{{Slug: "a", Name: "A"}}
	ok := product("ok", 1, variant("OK-1", 100, 1))
	tests := []struct {
		name     string
		cats     []catalog.Category
		products []catalog.Product
		want     error
	}{
		{"unknown category", cats, []catalog.Product{ok, product("lost", 2)}, catalog.ErrInvalid},
		{"parent after child", []catalog.Category{{ParentID: 2, Slug: "child", Name: "Child"}, {Slug: "parent", Name: "Parent"}}, nil, catalog.ErrInvalid},
		{"invalid product", cats, []catalog.Product{ok, product("Bad Slug", 1)}, catalog.ErrInvalid},
		{"duplicate slug", cats, []catalog.Product{ok, product("ok", 1)}, catalog.ErrConflict},
		{"duplicate sku", cats, []catalog.Product{ok, product("other", 1, variant("OK-1", 100, 1))}, catalog.ErrConflict},
	}
	for _, tt := range tests {
		err := s.ImportCatalog(ctx, tt.cats, tt.products)
		wantErr(t, tt.name, err, tt.want)
		if n, err := s.CountProducts(ctx); err != nil || n != 0 {
			t.Errorf("%s: CountProducts() = %d, %v after a refused import; want 0", tt.name, n, err)
		}
		if list, err := s.Categories(ctx); err != nil || len(list) != 0 {
			t.Errorf("%s: Categories() = %v, %v after a refused import; want none", tt.name, list, err)
		}
	}
}

// testConcurrent runs writers and readers together; under -race it also
// checks the adapter for data races.
func testConcurrent(t *testing.T, s catalog.Store) {
	ctx := context.Background()
	cat := mustCategory(t, s, catalog.Category{Slug: "c", Name: "C"})
	const nProducts = 4
	var ps []catalog.Product
	for i := range nProducts {
		ps = append(ps, mustProduct(t, s, product(fmt.Sprintf("p-%d", i), cat.ID,
			variant(fmt.Sprintf("P%d-A", i), 1000, 1), variant(fmt.Sprintf("P%d-B", i), 2000, 1))))
	}

	const workers, rounds = 12, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds)
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				p := ps[(w+r)%nProducts]
				var err error
				switch w % 3 {
				case 0:
					_, err = s.SetStock(ctx, p.Variants[r%2].SKU, int64((w+r)%3))
				case 1:
					p.Name = fmt.Sprintf("Renamed by %d in round %d", w, r)
					_, err = s.UpdateProduct(ctx, p)
				case 2:
					if _, err = s.ProductByID(ctx, p.ID); err == nil {
						_, err = s.SearchProducts(ctx, catalog.Query{Text: "renamed", Limit: 5})
					}
				}
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	for _, p := range ps {
		got, err := s.ProductByID(ctx, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		inStock := false
		for _, v := range got.Variants {
			inStock = inStock || v.Available() > 0
		}
		if got.InStock != inStock || got.PriceFrom != usd(1000) {
			t.Errorf("after concurrent writes %s: InStock %v, PriceFrom %v; variants say %v, $10.00", got.Slug, got.InStock, got.PriceFrom, inStock)
		}
	}
}
