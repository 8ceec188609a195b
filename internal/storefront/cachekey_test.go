package storefront_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// TestJunkQueriesMakeNoCacheEntries: a malformed query string is a 400
// that the page cache never stores, on pages and the API alike, and a
// parameter a route does not read does not reach its cache key, so
// neither can fill the cache with one entry per random value.
func TestJunkQueriesMakeNoCacheEntries(t *testing.T) {
	h, cache := apiTestServer(t, 30)
	product := "/products/" + firstProductSlug(t, h)
	for _, p := range []string{product, "/", "/search?q=linen", "/categories/women", "/api/v1/products", "/api/v1/categories"} {
		serveReq(h, "GET", p, "")
	}
	before := cache.Stats().Entries

	for i := range 5 {
		for _, target := range []string{
			fmt.Sprintf("%s?%%zz=%d", product, i),
			fmt.Sprintf("%s?a=1;b=%d", product, i),
			fmt.Sprintf("/?%%zz=%d", i),
			fmt.Sprintf("/search?q=linen&x=%%zz%d", i),
			fmt.Sprintf("/categories/women?sort=newest;%d", i),
			fmt.Sprintf("/api/v1/products?%%zz=%d", i),
			fmt.Sprintf("/images/products/x/1.svg?%%zz=%d", i),
		} {
			w := serveReq(h, "GET", target, "")
			if w.Code != 400 {
				t.Errorf("GET %s = %d, want 400", target, w.Code)
			}
			if w.Header().Get("Cache-Control") != "no-store" || w.Header().Get("Surrogate-Key") != "" {
				t.Errorf("GET %s: Cache-Control %q Surrogate-Key %q: a 400 must not be cached", target,
					w.Header().Get("Cache-Control"), w.Header().Get("Surrogate-Key"))
			}
			if strings.HasPrefix(target, "/api/") && w.Header().Get("Content-Type") != "application/problem+json" {
				t.Errorf("GET %s: %s, want a problem", target, w.Header().Get("Content-Type"))
			}
		}
		// Parameters the route does not read: the same entry every time.
		for _, target := range []string{
			fmt.Sprintf("/search?q=linen&category=junk-%d", i),
			fmt.Sprintf("/categories/women?q=junk-%d", i),
			fmt.Sprintf("/categories/women?category=junk-%d", i),
			fmt.Sprintf("%s?utm=%d", product, i),
			fmt.Sprintf("/api/v1/categories?q=%d", i),
		} {
			w := serveReq(h, "GET", target, "")
			if w.Code != 200 || w.Header().Get("X-Cache") != "HIT" {
				t.Errorf("GET %s = %d X-Cache %q, want 200 HIT (the parameter is not read)", target, w.Code, w.Header().Get("X-Cache"))
			}
		}
	}
	if after := cache.Stats().Entries; after != before {
		t.Errorf("page cache grew from %d to %d entries on junk queries", before, after)
	}
}

// firstProductSlug returns the slug of the newest product.
func firstProductSlug(t *testing.T, h http.Handler) string {
	t.Helper()
	w := serveReq(h, "GET", "/api/v1/products?limit=1&sort=newest", "")
	i := strings.Index(w.Body.String(), `"slug":"`)
	if i < 0 {
		t.Fatalf("no product: %s", w.Body.String())
	}
	rest := w.Body.String()[i+8:]
	return rest[:strings.IndexByte(rest, '"')]
}
