package catalog

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/surge-commerce/surge/internal/money"
)

func TestParseQuery(t *testing.T) {
	cur := Cursor{Sort: SortPriceAsc, Price: 1999, ID: 7}.Encode()
	tests := []struct {
		raw     string
		want    Query
		wantErr string
	}{
		{"", Query{Sort: SortNewest, Limit: DefaultLimit}, ""},
		{"q=linen", Query{Text: "linen", Sort: SortRelevance, Limit: DefaultLimit}, ""},
		{"q=linen&sort=price_desc&limit=5", Query{Text: "linen", Sort: SortPriceDesc, Limit: 5}, ""},
		{"sort=relevance", Query{Sort: SortNewest, Limit: DefaultLimit}, ""},
		{"min_price=100&max_price=5000&in_stock=true", Query{MinPrice: 100, MaxPrice: 5000, InStock: true, Sort: SortNewest, Limit: DefaultLimit}, ""},
		{"in_stock=0", Query{Sort: SortNewest, Limit: DefaultLimit}, ""},
		{"sort=price_asc&cursor=" + cur, Query{Sort: SortPriceAsc, Limit: DefaultLimit, After: &Cursor{Sort: SortPriceAsc, Price: 1999, ID: 7}}, ""},
		{"min_price=-1", Query{}, "min_price"},
		{"min_price=1.5", Query{}, "min_price"},
		{"max_price=abc", Query{}, "max_price"},
		{"min_price=500&max_price=100", Query{}, "min_price"},
		{"in_stock=yes", Query{}, "in_stock"},
		{"sort=cheapest", Query{}, "sort"},
		{"limit=0", Query{}, "limit"},
		{"limit=101", Query{}, "limit"},
		{"limit=ten", Query{}, "limit"},
		{"cursor=garbage!!", Query{}, "cursor"},
		{"cursor=" + cur, Query{}, "cursor"}, // a price cursor on the newest sort
		{"q=%ff%fe", Query{}, "q"},
	}
	for _, tt := range tests {
		v, _ := url.ParseQuery(tt.raw)
		got, err := ParseQuery(v)
		if tt.wantErr != "" {
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseQuery(%q) error = %v, want ErrInvalid naming %q", tt.raw, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseQuery(%q): %v", tt.raw, err)
			continue
		}
		if (got.After == nil) != (tt.want.After == nil) || (got.After != nil && *got.After != *tt.want.After) {
			t.Errorf("ParseQuery(%q).After = %+v, want %+v", tt.raw, got.After, tt.want.After)
		}
		got.After, tt.want.After = nil, nil
		if got != tt.want {
			t.Errorf("ParseQuery(%q) = %+v, want %+v", tt.raw, got, tt.want)
		}
	}
}

func TestValuesRoundTrip(t *testing.T) {
	for _, raw := range []string{"", "q=silk+scarf", "q=silk&sort=price_asc", "min_price=100&in_stock=true&limit=48", "sort=price_desc"} {
		v, _ := url.ParseQuery(raw)
		q, err := ParseQuery(v)
		if err != nil {
			t.Fatal(err)
		}
		q2, err := ParseQuery(q.Values())
		if err != nil || q2 != q {
			t.Errorf("%q: round trip %+v -> %q -> %+v (%v)", raw, q, q.Values().Encode(), q2, err)
		}
	}
}

func TestSlugs(t *testing.T) {
	tests := []struct {
		name, slug string
	}{
		{"Linen Shirt #2", "linen-shirt-2"},
		{"  Crème brûlée -- mug ", "cr-me-br-l-e-mug"},
		{"!!!", ""},
		{"ABC", "abc"},
	}
	for _, tt := range tests {
		if got := Slugify(tt.name); got != tt.slug {
			t.Errorf("Slugify(%q) = %q, want %q", tt.name, got, tt.slug)
		}
		if tt.slug != "" && !ValidSlug(tt.slug) {
			t.Errorf("ValidSlug(%q) = false", tt.slug)
		}
	}
	for _, bad := range []string{"", "-a", "a-", "a--b", "A", "a b", "a_b"} {
		if ValidSlug(bad) {
			t.Errorf("ValidSlug(%q) = true", bad)
		}
	}
}

func TestValidate(t *testing.T) {
	good := Product{Slug: "tee", Name: "Tee", Status: StatusActive, CategoryID: 1,
		Variants: []Variant{{SKU: "TEE-S", Price: usd(1999), OnHand: 3}}}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		mod  func(p *Product)
	}{
		{"bad slug", func(p *Product) { p.Slug = "Tee Shirt" }},
		{"no name", func(p *Product) { p.Name = " " }},
		{"bad status", func(p *Product) { p.Status = "archived" }},
		{"no category", func(p *Product) { p.CategoryID = 0 }},
		{"bad sku", func(p *Product) { p.Variants[0].SKU = "has space" }},
		{"negative price", func(p *Product) { p.Variants[0].Price.Amount = -1 }},
		{"bad currency", func(p *Product) { p.Variants[0].Price.Currency = "dollars" }},
		{"negative stock", func(p *Product) { p.Variants[0].OnHand = -1 }},
		{"duplicate sku", func(p *Product) { p.Variants = append(p.Variants, p.Variants[0]) }},
		{"empty option", func(p *Product) { p.Variants[0].Options = []Option{{Name: "size"}} }},
	}
	for _, tt := range tests {
		p := good
		p.Variants = append([]Variant(nil), good.Variants...)
		tt.mod(&p)
		if err := p.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Validate() = %v, want ErrInvalid", tt.name, err)
		}
	}
}

func TestTree(t *testing.T) {
	tree := NewTree([]Category{{ID: 1, Slug: "women", Name: "Women"}, {ID: 2, ParentID: 1, Slug: "dresses", Name: "Dresses"},
		{ID: 3, ParentID: 2, Slug: "maxi", Name: "Maxi"}, {ID: 4, Slug: "men", Name: "Men"}})
	if r := tree.Roots(); len(r) != 2 || r[0].Slug != "women" || r[1].Slug != "men" {
		t.Fatalf("roots = %+v", r)
	}
	p := tree.Path(3)
	if len(p) != 3 || p[0].ID != 1 || p[2].ID != 3 {
		t.Fatalf("path = %+v", p)
	}
	if len(tree.Path(99)) != 0 {
		t.Fatal("unknown id has a path")
	}
	cyc := NewTree([]Category{{ID: 1, ParentID: 2, Slug: "a"}, {ID: 2, ParentID: 1, Slug: "b"}})
	if len(cyc.Path(1)) != 2 {
		t.Fatal("cycle not cut")
	}
}

func FuzzParseQuery(f *testing.F) {
	f.Add("q=linen&sort=price_asc&limit=5&min_price=1&max_price=9&in_stock=true")
	f.Add("cursor=" + Cursor{Sort: SortNewest, Time: 1, ID: 2}.Encode())
	f.Add("cursor=eyJzIjoibmV3ZXN0IiwiaSI6LTF9")
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		q, err := ParseQuery(v)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("ParseQuery(%q) error %v does not wrap ErrInvalid", raw, err)
			}
			return
		}
		if q.Limit < 1 || q.Limit > MaxLimit || q.MinPrice < 0 || q.MaxPrice < 0 {
			t.Fatalf("ParseQuery(%q) accepted %+v", raw, q)
		}
		if q.After != nil && (q.After.ID <= 0 || q.After.Sort != q.Sort) {
			t.Fatalf("ParseQuery(%q) accepted cursor %+v", raw, q.After)
		}
	})
}

func FuzzDecodeCursor(f *testing.F) {
	f.Add(Cursor{Sort: SortRelevance, Rank: -1.5, ID: 3}.Encode())
	f.Add("e30")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := DecodeCursor(s, SortRelevance)
		if err != nil {
			return
		}
		again, err := DecodeCursor(c.Encode(), SortRelevance)
		if err != nil || *again != *c {
			t.Fatalf("cursor %q does not round trip: %+v %v", s, again, err)
		}
	})
}

func usd(a int64) money.Money { return money.Money{Amount: a, Currency: "USD"} }
