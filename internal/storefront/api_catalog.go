package storefront

import (
	"fmt"
	"net/http"
	"time"

	"github.com/surge-commerce/surge/internal/catalog"
	"github.com/surge-commerce/surge/internal/money"
)

// variantView is a variant as the public API shows it: stock reduced to
// what can be bought.
type variantView struct {
	SKU       string           `json:"sku"`
	Title     string           `json:"title"`
	Options   []catalog.Option `json:"options"`
	Price     money.Money      `json:"price"`
	Available int64            `json:"available"`
}

type productView struct {
	ID          int64               `json:"id"`
	Slug        string              `json:"slug"`
	Name        string              `json:"name"`
	Description string              `json:"description"`
	Category    *categoryRef        `json:"category,omitempty"`
	Images      []catalog.Image     `json:"images"`
	Attributes  []catalog.Attribute `json:"attributes"`
	PriceFrom   money.Money         `json:"price_from"`
	InStock     bool                `json:"in_stock"`
	Variants    []variantView       `json:"variants,omitempty"`
	CreatedAt   time.Time           `json:"created_at"`
	UpdatedAt   time.Time           `json:"updated_at"`
	URL         string              `json:"url"`
}

type categoryRef struct {
	ID   int64  `json:"id"`
	Slug string `json:"slug"`
	Name string `json:"name"`
}

func viewProduct(p catalog.Product, tree *catalog.Tree) productView {
	v := productView{ID: p.ID, Slug: p.Slug, Name: p.Name, Description: p.Description, Images: nonNil(p.Images),
		Attributes: nonNil(p.Attributes), PriceFrom: p.PriceFrom, InStock: p.InStock, CreatedAt: p.CreatedAt,
		UpdatedAt: p.UpdatedAt, URL: "/products/" + p.Slug}
	if c, ok := tree.ByID(p.CategoryID); ok {
		v.Category = &categoryRef{ID: c.ID, Slug: c.Slug, Name: c.Name}
	}
	for _, vr := range p.Variants {
		v.Variants = append(v.Variants, variantView{SKU: vr.SKU, Title: vr.Title(), Options: nonNil(vr.Options),
			Price: vr.Price, Available: vr.Available()})
	}
	return v
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func (s *server) handleListCategories() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tree, err := s.Catalog.Tree(r.Context())
		if err != nil {
			problem(w, r, s.Logger, err)
			return
		}
		tag(w, catalog.TagCategories)
		encode(w, http.StatusOK, struct {
			Items []catalog.Category `json:"items"`
		}{nonNil(tree.All())})
	})
}

// listingQuery parses listing parameters and resolves the category slug.
func (s *server) listingQuery(r *http.Request) (catalog.Query, *catalog.Tree, error) {
	tree, err := s.Catalog.Tree(r.Context())
	if err != nil {
		return catalog.Query{}, nil, err
	}
	q, v, err := catalog.ParseRawQuery(r.URL.RawQuery)
	if err != nil {
		return q, tree, err
	}
	if slug := v.Get("category"); slug != "" {
		c, ok := tree.BySlug(slug)
		if !ok {
			return q, tree, catalog.Invalidf("category: no category with slug %q", slug)
		}
		q.CategoryID = c.ID
	}
	return q, tree, nil
}

func (s *server) handleListProducts() http.Handler {
	type page struct {
		Items      []productView `json:"items"`
		NextCursor string        `json:"next_cursor"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q, tree, err := s.listingQuery(r)
		if err != nil {
			problem(w, r, s.Logger, err)
			return
		}
		res, err := s.Catalog.Search(r.Context(), q)
		if err != nil {
			problem(w, r, s.Logger, err)
			return
		}
		out := page{Items: make([]productView, 0, len(res.Items)), NextCursor: res.NextCursor}
		for _, p := range res.Items {
			out.Items = append(out.Items, viewProduct(p, tree))
		}
		tags := []string{catalog.TagSearch}
		if q.CategoryID != 0 {
			tags = append(tags, catalog.CategoryTag(q.CategoryID))
		}
		tag(w, tags...)
		encode(w, http.StatusOK, out)
	})
}

func (s *server) handleGetProduct() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		slug := r.PathValue("slug")
		tree, err := s.Catalog.Tree(r.Context())
		if err != nil {
			problem(w, r, s.Logger, err)
			return
		}
		p, err := s.Catalog.Product(r.Context(), slug)
		if err != nil {
			if errorStatus(err) == http.StatusNotFound {
				// Cached too, so a flood of requests for a missing product
				// does not reach the store; purged when products change.
				tag(w, catalog.TagMissing)
				writeProblem(w, Problem{Type: ProblemType(kindNotFound), Title: "Not Found", Status: http.StatusNotFound,
					Detail: fmt.Sprintf("no product with slug %q", slug), Instance: r.URL.Path})
				return
			}
			problem(w, r, s.Logger, err)
			return
		}
		tag(w, catalog.ProductTag(p.ID))
		encode(w, http.StatusOK, viewProduct(p, tree))
	})
}

func (s *server) handleAPINotFound() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, Problem{Type: ProblemType(kindNotFound), Title: "Not Found", Status: http.StatusNotFound,
			Detail: fmt.Sprintf("no API route %s %s", r.Method, r.URL.Path), Instance: r.URL.Path})
	})
}
