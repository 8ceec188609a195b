package storefront

import (
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"

	"github.com/surge-commerce/surge/internal/catalog"
)

// requireAdmin guards the admin API with the configured bearer token. With
// no token configured the admin API is off, not open.
func (s *server) requireAdmin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if s.AdminToken == "" {
			problem(w, r, s.Logger, fmt.Errorf("%w: the admin API is disabled because no admin token is configured (--admin-token)", errForbidden))
			return
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(s.AdminToken)) != 1 {
			problem(w, r, s.Logger, fmt.Errorf("%w: send the admin token as 'Authorization: Bearer <token>'", errUnauthorized))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *server) handleAdminListProducts() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q, _, err := s.listingQuery(r)
		if err != nil {
			problem(w, r, s.Logger, err)
			return
		}
		page, err := s.Catalog.AdminSearch(r.Context(), q)
		if err != nil {
			problem(w, r, s.Logger, err)
			return
		}
		page.Items = nonNil(page.Items)
		encode(w, http.StatusOK, page)
	})
}

func (s *server) handleAdminGetProduct() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := s.Catalog.AdminProduct(r.Context(), r.PathValue("slug"))
		if err != nil {
			problem(w, r, s.Logger, err)
			return
		}
		encode(w, http.StatusOK, p)
	})
}

// productInput is the body of a product creation. Slug defaults to one
// made from the name; status defaults to draft so nothing goes live by
// accident.
type productInput struct {
	Slug        string              `json:"slug"`
	Name        string              `json:"name"`
	Description string              `json:"description"`
	Status      catalog.Status      `json:"status"`
	CategoryID  int64               `json:"category_id"`
	Images      []catalog.Image     `json:"images"`
	Attributes  []catalog.Attribute `json:"attributes"`
	Variants    []catalog.Variant   `json:"variants"`
}

func (s *server) handleAdminCreateProduct() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in productInput
		if err := decode(w, r, &in); err != nil {
			problem(w, r, s.Logger, err)
			return
		}
		if in.Slug == "" {
			in.Slug = catalog.Slugify(in.Name)
		}
		if in.Status == "" {
			in.Status = catalog.StatusDraft
		}
		p, err := s.Catalog.CreateProduct(r.Context(), catalog.Product{Slug: in.Slug, Name: in.Name,
			Description: in.Description, Status: in.Status, CategoryID: in.CategoryID, Images: in.Images,
			Attributes: in.Attributes, Variants: in.Variants})
		if err != nil {
			problem(w, r, s.Logger, err)
			return
		}
		w.Header().Set("Location", "/api/v1/admin/products/"+p.Slug)
		encode(w, http.StatusCreated, p)
	})
}

func (s *server) handleAdminUpdateProduct() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var patch catalog.ProductPatch
		if err := decode(w, r, &patch); err != nil {
			problem(w, r, s.Logger, err)
			return
		}
		p, err := s.Catalog.UpdateProduct(r.Context(), r.PathValue("slug"), patch)
		if err != nil {
			problem(w, r, s.Logger, err)
			return
		}
		encode(w, http.StatusOK, p)
	})
}

func (s *server) handleAdminCreateVariant() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var v catalog.Variant
		if err := decode(w, r, &v); err != nil {
			problem(w, r, s.Logger, err)
			return
		}
		if v.Reserved != 0 || v.Sold != 0 {
			problem(w, r, s.Logger, catalog.Invalidf("reserved and sold are kept by the shop and cannot be set"))
			return
		}
		v, err := s.Catalog.CreateVariant(r.Context(), r.PathValue("slug"), v)
		if err != nil {
			problem(w, r, s.Logger, err)
			return
		}
		encode(w, http.StatusCreated, v)
	})
}

func (s *server) handleAdminUpdateVariant() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var patch catalog.VariantPatch
		if err := decode(w, r, &patch); err != nil {
			problem(w, r, s.Logger, err)
			return
		}
		v, err := s.Catalog.UpdateVariant(r.Context(), r.PathValue("sku"), patch)
		if err != nil {
			problem(w, r, s.Logger, err)
			return
		}
		encode(w, http.StatusOK, v)
	})
}

func (s *server) handleAdminSetStock() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			OnHand *int64 `json:"on_hand"`
		}
		if err := decode(w, r, &in); err != nil {
			problem(w, r, s.Logger, err)
			return
		}
		if in.OnHand == nil {
			problem(w, r, s.Logger, catalog.Invalidf("on_hand: required"))
			return
		}
		v, err := s.Catalog.SetStock(r.Context(), r.PathValue("sku"), *in.OnHand)
		if err != nil {
			problem(w, r, s.Logger, err)
			return
		}
		encode(w, http.StatusOK, v)
	})
}

func (s *server) handleAdminCreateCategory() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var c catalog.Category
		if err := decode(w, r, &c); err != nil {
			problem(w, r, s.Logger, err)
			return
		}
		if c.Slug == "" {
			c.Slug = catalog.Slugify(c.Name)
		}
		c, err := s.Catalog.CreateCategory(r.Context(), c)
		if err != nil {
			problem(w, r, s.Logger, err)
			return
		}
		encode(w, http.StatusCreated, c)
	})
}

func (s *server) handleAdminPurge() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Tags []string `json:"tags"`
			All  bool     `json:"all"`
		}
		if err := decode(w, r, &in); err != nil {
			problem(w, r, s.Logger, err)
			return
		}
		if !in.All && len(in.Tags) == 0 {
			problem(w, r, s.Logger, catalog.Invalidf("give tags to purge or all: true"))
			return
		}
		n := 0
		if s.PurgeCache != nil {
			n = s.PurgeCache(in.All, in.Tags...)
		}
		encode(w, http.StatusOK, struct {
			Purged int `json:"purged"`
		}{n})
	})
}
