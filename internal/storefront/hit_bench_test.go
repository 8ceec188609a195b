package storefront_test

import (
	"net/http/httptest"
	"strings"
	"testing"
)

// BenchmarkCachedProductPage measures a page-cache hit through the whole
// public handler (middleware, admission, cache), with its allocations.
func BenchmarkCachedProductPage(b *testing.B) {
	sh := openShop(b, 50, apiTestToken)
	w := serveReq(sh.Handler, "GET", "/api/v1/products?limit=1", "")
	body := w.Body.String()
	slug := body[strings.Index(body, `"slug":"`)+8:]
	slug = slug[:strings.IndexByte(slug, '"')]
	path := "/products/" + slug
	serveReq(sh.Handler, "GET", path, "")
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r := httptest.NewRequest("GET", path, nil)
		w := httptest.NewRecorder()
		sh.Handler.ServeHTTP(w, r)
		if w.Code != 200 || w.Header().Get("X-Cache") != "HIT" {
			b.Fatalf("status %d cache %q", w.Code, w.Header().Get("X-Cache"))
		}
	}
}
