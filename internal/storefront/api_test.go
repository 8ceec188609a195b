package storefront_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/surge-commerce/surge/internal/demoshop"
	"github.com/surge-commerce/surge/internal/pagecache"
	"github.com/surge-commerce/surge/internal/shop"
	"github.com/surge-commerce/surge/internal/storefront"
)

const apiTestToken = "api-test-token-0123456789"

// apiTestServer is a real shop on SQLite with a small demo catalog,
// assembled as surge serve assembles it.
func apiTestServer(t testing.TB, products int) (http.Handler, *pagecache.Cache) {
	t.Helper()
	sh := openShop(t, products, apiTestToken)
	return sh.Handler, sh.Cache
}

func openShop(t testing.TB, products int, token string) *shop.Shop {
	t.Helper()
	ctx := context.Background()
	cfg := shop.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.AdminToken = token
	cfg.PageCacheBytes = 32 << 20
	// These tests check exact outcomes (stock, orders); shedding under a
	// deliberate stampede is the admission tests' business.
	cfg.Admission = false
	sh, err := shop.Open(ctx, cfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sh.Close() })
	if products > 0 {
		cats, prods := demoshop.Generate(demoshop.Options{Products: products})
		if err := sh.Store.ImportCatalog(ctx, cats, prods); err != nil {
			t.Fatal(err)
		}
	}
	return sh
}

func serveReq(h http.Handler, method, target, body string, hdr ...string) *httptest.ResponseRecorder {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r := httptest.NewRequest(method, target, rd)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// TestOpenAPIMatchesRoutes keeps docs/openapi.yaml and routes.go in step:
// every API route is documented and every documented operation is routed.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	b, err := os.ReadFile("../../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		OpenAPI string                               `yaml:"openapi"`
		Paths   map[string]map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1") {
		t.Fatalf("openapi version %q, want 3.1.x", doc.OpenAPI)
	}
	var documented []string
	for path, ops := range doc.Paths {
		for method, op := range ops {
			documented = append(documented, strings.ToUpper(method)+" "+path)
			if _, ok := op["responses"]; !ok {
				t.Errorf("%s %s has no responses", method, path)
			}
		}
	}
	var routed []string
	for _, p := range storefront.RoutePatterns() {
		method, path, ok := strings.Cut(p, " ")
		if ok && strings.HasPrefix(path, "/api/v1/") {
			routed = append(routed, method+" "+path)
		}
	}
	sort.Strings(documented)
	sort.Strings(routed)
	if strings.Join(documented, "\n") != strings.Join(routed, "\n") {
		t.Errorf("openapi.yaml and routes differ\ndocumented:\n%s\n\nrouted:\n%s", strings.Join(documented, "\n"), strings.Join(routed, "\n"))
	}
}

func TestAPIErrors(t *testing.T) {
	h, _ := apiTestServer(t, 50)
	auth := []string{"Authorization", "Bearer " + apiTestToken, "Content-Type", "application/json"}
	tests := []struct {
		method, target, body string
		hdr                  []string
		status               int
		detail               string
	}{
		{"GET", "/api/v1/products?cursor=%%%", "", nil, 400, "query string"},
		{"GET", "/api/v1/products?cursor=bm90LWEtY3Vyc29y", "", nil, 400, "cursor"},
		{"GET", "/api/v1/products?max_price=-5", "", nil, 400, "max_price"},
		{"GET", "/api/v1/products?limit=1000", "", nil, 400, "limit"},
		{"GET", "/api/v1/products?category=nope", "", nil, 400, "category"},
		{"GET", "/api/v1/products/nope", "", nil, 404, "nope"},
		{"GET", "/api/v1/nothing-here", "", nil, 404, "no API route"},
		{"POST", "/api/v1/admin/products", `{}`, nil, 401, "Bearer"},
		{"POST", "/api/v1/admin/products", `{"name":"X","category_id":1`, auth, 400, "ends too early"},
		{"POST", "/api/v1/admin/products", `{"name":"X","category_id":"one"}`, auth, 400, "category_id"},
		{"POST", "/api/v1/admin/products", `{"name":"X","category_id":1,"colour":"red"}`, auth, 400, "unknown field"},
		{"POST", "/api/v1/admin/products", `{"name":"X","category_id":1} {}`, auth, 400, "after the JSON"},
		{"POST", "/api/v1/admin/products", `{"name":"","category_id":1}`, auth, 422, "name"},
		{"POST", "/api/v1/admin/products", `{"name":"X","category_id":99999}`, auth, 422, "category"},
		{"POST", "/api/v1/admin/products", `{"name":"X","category_id":1,"variants":[{"sku":"A","price":{"amount":100,"currency":"EUR"}}]}`, auth, 422, "shop currency"},
		{"POST", "/api/v1/admin/products", `{"name":"X"}`, []string{"Authorization", "Bearer " + apiTestToken, "Content-Type", "text/plain"}, 415, "application/json"},
		{"PUT", "/api/v1/admin/variants/NOPE/stock", `{"on_hand":1}`, auth, 404, "NOPE"},
		{"PATCH", "/api/v1/admin/products/nope", `{"name":"Y"}`, auth, 404, "nope"},
		{"POST", "/api/v1/admin/cache/purge", `{}`, auth, 400, "tags"},
	}
	for _, tt := range tests {
		w := serveReq(h, tt.method, tt.target, tt.body, tt.hdr...)
		if w.Code != tt.status || w.Header().Get("Content-Type") != "application/problem+json" || !strings.Contains(w.Body.String(), tt.detail) {
			t.Errorf("%s %s %s = %d %s %s; want %d problem naming %q", tt.method, tt.target, tt.body, w.Code,
				w.Header().Get("Content-Type"), w.Body.String(), tt.status, tt.detail)
		}
	}
}

func TestAdminDisabledWithoutToken(t *testing.T) {
	noToken := openShop(t, 0, "").Handler
	for _, tok := range []string{"", "Bearer ", "Bearer anything"} {
		w := serveReq(noToken, "GET", "/api/v1/admin/products", "", "Authorization", tok)
		if w.Code != 403 || !strings.Contains(w.Body.String(), "--admin-token") {
			t.Errorf("no token configured, Authorization %q: %d %s", tok, w.Code, w.Body.String())
		}
	}
}

// TestAdminChangePurgesPages checks that a product update reaches every
// page showing the product: its own page, its category listing, home and
// search, while unrelated pages stay cached.
func TestAdminChangePurgesPages(t *testing.T) {
	h, _ := apiTestServer(t, 60)
	w := serveReq(h, "GET", "/api/v1/products?limit=1&sort=newest", "")
	var slug string
	if i := strings.Index(w.Body.String(), `"slug":"`); i >= 0 {
		rest := w.Body.String()[i+8:]
		slug = rest[:strings.IndexByte(rest, '"')]
	}
	if slug == "" {
		t.Fatalf("no product: %s", w.Body.String())
	}
	pages := []string{"/", "/products/" + slug, "/search?q=" + strings.Split(slug, "-")[0], "/api/v1/products/" + slug}
	for _, p := range pages {
		serveReq(h, "GET", p, "")
		if w := serveReq(h, "GET", p, ""); w.Header().Get("X-Cache") != "HIT" {
			t.Fatalf("%s not cached: X-Cache=%q status %d", p, w.Header().Get("X-Cache"), w.Code)
		}
	}
	w = serveReq(h, "PATCH", "/api/v1/admin/products/"+slug, `{"name":"Renamed Test Product"}`,
		"Authorization", "Bearer "+apiTestToken, "Content-Type", "application/json")
	if w.Code != 200 {
		t.Fatalf("update: %d %s", w.Code, w.Body.String())
	}
	for _, p := range pages {
		w := serveReq(h, "GET", p, "")
		if w.Header().Get("X-Cache") == "HIT" {
			t.Errorf("%s still served from cache after the update", p)
		}
	}
	if w := serveReq(h, "GET", "/products/"+slug, ""); !strings.Contains(w.Body.String(), "Renamed Test Product") {
		t.Errorf("product page does not show the new name")
	}
}

func FuzzAdminBodies(f *testing.F) {
	for _, s := range []string{`{"on_hand":5}`, `{"name":"A","category_id":1}`, `{"price":{"amount":1,"currency":"USD"}}`,
		`[]`, `null`, `{"on_hand":1e99}`, `{"tags":["a"]}`, "\xff"} {
		f.Add(s)
	}
	h, _ := apiTestServer(f, 5)
	auth := []string{"Authorization", "Bearer " + apiTestToken, "Content-Type", "application/json"}
	targets := []struct{ method, path string }{
		{"POST", "/api/v1/admin/products"}, {"PATCH", "/api/v1/admin/products/x"},
		{"PUT", "/api/v1/admin/variants/SRG-000001-XS/stock"}, {"PATCH", "/api/v1/admin/variants/SRG-000001-XS"},
		{"POST", "/api/v1/admin/categories"}, {"POST", "/api/v1/admin/cache/purge"},
	}
	f.Fuzz(func(t *testing.T, body string) {
		for _, tg := range targets {
			w := serveReq(h, tg.method, tg.path, body, auth...)
			if w.Code >= 500 {
				t.Fatalf("%s %s %q = %d %s", tg.method, tg.path, body, w.Code, w.Body.String())
			}
			if w.Code >= 400 && w.Header().Get("Content-Type") != "application/problem+json" {
				t.Fatalf("%s %s %q = %d without a problem body", tg.method, tg.path, body, w.Code)
			}
		}
	})
}

func FuzzListingQuery(f *testing.F) {
	for _, s := range []string{"q=linen", "q=%22&sort=relevance", "q=NEAR(a+b)", "min_price=1&max_price=2&in_stock=true", "cursor=e30"} {
		f.Add(s)
	}
	h, _ := apiTestServer(f, 30)
	f.Fuzz(func(t *testing.T, raw string) {
		for _, p := range []string{"/api/v1/products", "/search", "/categories/women"} {
			// Set the raw query directly: any bytes a client might send.
			r := httptest.NewRequest("GET", p, nil)
			r.URL.RawQuery = raw
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code >= 500 {
				t.Fatalf("GET %s%s = %d %s", p, raw, w.Code, w.Body.String())
			}
		}
	})
}

// TestPagePriceFilter checks that the storefront's filter form takes prices
// as a shopper types them (currency units), not minor units.
func TestPagePriceFilter(t *testing.T) {
	h, _ := apiTestServer(t, 120)
	w := serveReq(h, "GET", "/search?min=50&max=60&sort=price_asc", "")
	if w.Code != 200 {
		t.Fatalf("status %d", w.Code)
	}
	body := w.Body.String()
	if !strings.Contains(body, `value="50.00"`) || !strings.Contains(body, `value="60.00"`) {
		t.Errorf("filter form does not keep the typed bounds")
	}
	for _, part := range strings.Split(body, "from $")[1:] {
		price := part[:strings.IndexByte(part, '<')]
		if price < "50.00" || price > "60.00" || len(price) != 5 {
			t.Errorf("listed price $%s outside $50-$60", price)
		}
	}
	for _, bad := range []string{"/search?min=abc", "/search?min=70&max=60", "/categories/women?max=1.234"} {
		if w := serveReq(h, "GET", bad, ""); w.Code != 400 {
			t.Errorf("GET %s = %d, want 400", bad, w.Code)
		}
	}
}
