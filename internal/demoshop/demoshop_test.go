package demoshop

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/surge-commerce/surge/internal/catalog"
)

func TestGenerateIsDeterministic(t *testing.T) {
	now := time.Now() // carries a monotonic reading; Generate must drop it
	opts := Options{Products: 2000, Seed: 42, Now: now}
	c1, p1 := Generate(opts)
	c2, p2 := Generate(opts)
	if !reflect.DeepEqual(c1, c2) {
		t.Error("categories differ between runs with the same options")
	}
	if !reflect.DeepEqual(p1, p2) {
		t.Error("products differ between runs with the same options")
	}

	_, p3 := Generate(Options{Products: 2000, Seed: 43, Now: now})
	if reflect.DeepEqual(p1, p3) {
		t.Error("seeds 42 and 43 gave the same products")
	}
}

func TestGenerateDefaults(t *testing.T) {
	cats, products := Generate(Options{})
	if len(cats) != 17 {
		t.Errorf("got %d categories, want 17", len(cats))
	}
	if len(products) != DefaultProducts {
		t.Errorf("got %d products, want %d", len(products), DefaultProducts)
	}
	for _, p := range products {
		if p.Variants[0].Price.Currency != "USD" || p.PriceFrom.Currency != "USD" {
			t.Fatalf("product %s: currency %q, want USD", p.Slug, p.Variants[0].Price.Currency)
		}
	}
	_, same := Generate(Options{Products: DefaultProducts, Seed: DefaultSeed, Currency: DefaultCurrency, Now: defaultNow})
	if !reflect.DeepEqual(products, same) {
		t.Error("zero Options differ from the explicit defaults")
	}
}

func TestCategoryTree(t *testing.T) {
	cats, products := Generate(Options{})
	slugs := map[string]bool{}
	hasChild := make([]bool, len(cats)+1)
	roots := 0
	for i, c := range cats {
		if err := c.Validate(); err != nil {
			t.Errorf("category %d: %v", i+1, err)
		}
		if slugs[c.Slug] {
			t.Errorf("category slug %q repeats", c.Slug)
		}
		slugs[c.Slug] = true
		if c.Description == "" || c.Position < 1 {
			t.Errorf("category %q: want a description and a position", c.Slug)
		}
		// Parents come first, so ImportCatalog can insert in order.
		if c.ParentID >= int64(i+1) {
			t.Errorf("category %q: parent %d does not precede it", c.Slug, c.ParentID)
		}
		if c.ParentID == 0 {
			roots++
		}
		hasChild[c.ParentID] = true
	}
	if roots < 4 || roots > 5 {
		t.Errorf("got %d top-level categories, want 4-5", roots)
	}

	perCat := make([]int, len(cats)+1)
	for _, p := range products {
		if p.CategoryID < 1 || p.CategoryID > int64(len(cats)) {
			t.Fatalf("product %s: category_id %d out of range", p.Slug, p.CategoryID)
		}
		if hasChild[p.CategoryID] {
			t.Errorf("product %s: in %q, which is not a leaf", p.Slug, cats[p.CategoryID-1].Slug)
		}
		perCat[p.CategoryID]++
	}
	for id := 1; id <= len(cats); id++ {
		if !hasChild[id] && perCat[id] < len(products)/40 {
			t.Errorf("leaf %q has only %d of %d products", cats[id-1].Slug, perCat[id], len(products))
		}
	}
}

func TestProductsAreValid(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	cats, products := Generate(Options{Products: 5000, Seed: 7, Currency: "EUR", Now: now})
	var variants, zero, drafts, minV, maxV int
	minV = 99
	prev := time.Time{}
	for _, p := range products {
		if err := p.Validate(); err != nil {
			t.Fatalf("product %s: %v", p.Slug, err)
		}
		if p.CategoryID > int64(len(cats)) {
			t.Fatalf("product %s: category_id %d out of range", p.Slug, p.CategoryID)
		}
		if n := strings.Count(p.Description, "."); n < 2 || n > 4 {
			t.Errorf("product %s: %d sentences, want 2-4: %q", p.Slug, n, p.Description)
		}
		if len(p.Attributes) < 3 {
			t.Errorf("product %s: %d attributes, want material, care and origin", p.Slug, len(p.Attributes))
		}
		if len(p.Images) < 1 || len(p.Images) > 3 {
			t.Errorf("product %s: %d images, want 1-3", p.Slug, len(p.Images))
		}
		for k, im := range p.Images {
			want := "/images/products/" + p.Slug + "/" + string(rune('1'+k)) + ".svg"
			if im.URL != want || im.Alt == "" {
				t.Errorf("product %s image %d: %+v, want URL %s and alt text", p.Slug, k+1, im, want)
			}
		}
		if p.Status == catalog.StatusDraft {
			drafts++
		}
		if p.CreatedAt.Before(prev) || !p.CreatedAt.After(now.AddDate(-1, 0, -1)) || p.CreatedAt.After(now) {
			t.Errorf("product %s: created %v, want after %v, within the year before %v", p.Slug, p.CreatedAt, prev, now)
		}
		if p.UpdatedAt.Before(p.CreatedAt) || p.UpdatedAt.After(now) {
			t.Errorf("product %s: updated %v, created %v", p.Slug, p.UpdatedAt, p.CreatedAt)
		}
		prev = p.CreatedAt

		n := len(p.Variants)
		minV, maxV = min(minV, n), max(maxV, n)
		variants += n
		lowest, inStock := p.Variants[0].Price.Amount, false
		for _, v := range p.Variants {
			if v.Price.Currency != "EUR" || v.Price.Amount <= 0 {
				t.Errorf("variant %s: price %+v", v.SKU, v.Price)
			}
			if v.OnHand < 0 || v.OnHand > 200 {
				t.Errorf("variant %s: on hand %d, want 0-200", v.SKU, v.OnHand)
			}
			if v.OnHand == 0 {
				zero++
			}
			if len(v.Options) == 0 {
				t.Errorf("variant %s: no options", v.SKU)
			}
			lowest = min(lowest, v.Price.Amount)
			inStock = inStock || v.OnHand > 0
		}
		if p.PriceFrom.Amount != lowest || p.InStock != inStock {
			t.Errorf("product %s: price_from %d in_stock %v, want %d %v", p.Slug, p.PriceFrom.Amount, p.InStock, lowest, inStock)
		}
	}
	if minV != 1 || maxV != 6 {
		t.Errorf("variants per product range %d-%d, want 1-6", minV, maxV)
	}
	mean := float64(variants) / float64(len(products))
	if mean < 3.2 || mean > 3.8 {
		t.Errorf("mean variants per product %.2f, want about 3.5", mean)
	}
	if f := float64(zero) / float64(variants); f < 0.05 || f > 0.12 {
		t.Errorf("%.1f%% of variants out of stock, want about 8%%", 100*f)
	}
	if f := float64(drafts) / float64(len(products)); f < 0.003 || f > 0.025 {
		t.Errorf("%.1f%% drafts, want about 1%%", 100*f)
	}
}

// TestSearchWords checks that the words shoppers search for land in
// sensible categories.
func TestSearchWords(t *testing.T) {
	cats, products := Generate(Options{})
	tests := []struct {
		word string
		cats []string // at least one hit in each
	}{
		{"linen", []string{"women-dresses", "men-shirts", "bed-bath"}},
		{"merino", []string{"women-knitwear", "men-knitwear"}},
		{"cashmere", []string{"women-knitwear", "scarves-hats"}},
		{"waterproof", []string{"women-outerwear", "shoes"}},
		{"stoneware", []string{"kitchen-dining"}},
	}
	for _, tt := range tests {
		found := map[string]bool{}
		for _, p := range products {
			text := strings.ToLower(p.Name + " " + p.Description)
			if strings.Contains(text, tt.word) {
				found[cats[p.CategoryID-1].Slug] = true
			}
		}
		for _, c := range tt.cats {
			if !found[c] {
				t.Errorf("no product in %s mentions %q", c, tt.word)
			}
		}
	}
}

func TestPsychological(t *testing.T) {
	tests := []struct {
		amount int64
		ending int
		want   int64
	}{
		{2000, 0, 1999},
		{1870, 4, 1999},
		{4900, 5, 4950},
		{2600, 7, 2500},
		{100, 0, 499},
		{12750, 0, 12900},
		{12750, 7, 13000},
		{9990, 0, 9900},
	}
	for _, tt := range tests {
		if got := psychological(tt.amount, tt.ending); got != tt.want {
			t.Errorf("psychological(%d, %d) = %d, want %d", tt.amount, tt.ending, got, tt.want)
		}
	}
}

func TestUniqueAt100k(t *testing.T) {
	n := 100_000
	if testing.Short() {
		n = 20_000
	}
	_, products := Generate(Options{Products: n})
	assertUnique(t, products)
}

// TestUniqueAtOneMillion is the scale `surge seed` promises. It takes
// about ten seconds, and minutes under -race, so it runs only when
// SURGE_SLOW_TESTS is set.
func TestUniqueAtOneMillion(t *testing.T) {
	if testing.Short() || os.Getenv("SURGE_SLOW_TESTS") == "" {
		t.Skip("slow: set SURGE_SLOW_TESTS=1 to generate a million products")
	}
	_, products := Generate(Options{Products: 1_000_000, Seed: 3})
	assertUnique(t, products)
}

func assertUnique(t *testing.T, products []catalog.Product) {
	t.Helper()
	slugs := make(map[string]bool, len(products))
	skus := make(map[string]bool, 4*len(products))
	for _, p := range products {
		if !catalog.ValidSlug(p.Slug) {
			t.Fatalf("invalid slug %q", p.Slug)
		}
		if slugs[p.Slug] {
			t.Fatalf("slug %q repeats", p.Slug)
		}
		slugs[p.Slug] = true
		for _, v := range p.Variants {
			if !catalog.ValidSKU(v.SKU) {
				t.Fatalf("invalid SKU %q", v.SKU)
			}
			if skus[v.SKU] {
				t.Fatalf("SKU %q repeats", v.SKU)
			}
			skus[v.SKU] = true
		}
	}
}

func BenchmarkGenerate100k(b *testing.B) {
	for b.Loop() {
		Generate(Options{Products: 100_000})
	}
}
