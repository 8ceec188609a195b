package shop

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/surge-commerce/surge/internal/catalog"
	"github.com/surge-commerce/surge/internal/money"
)

// rawGet sends one GET on a new connection to addr and reads the response.
func rawGet(t *testing.T, addr, target string, header ...string) (*http.Response, string) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(nc, "GET "+target+" HTTP/1.1\r\nHost: shop.test\r\n"+strings.Join(header, "")+"\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

var hexID = regexp.MustCompile(`^[0-9a-f]{16}$`)

// canonical is a response with the values that change per response
// blanked: Date, Age and a generated request ID.
func canonical(resp *http.Response, body string) string {
	h := resp.Header.Clone()
	for _, k := range []string{"Date", "Age"} {
		h.Set(k, "*")
	}
	if hexID.MatchString(h.Get("X-Request-Id")) {
		h.Set("X-Request-Id", "*")
	}
	var b strings.Builder
	b.WriteString(resp.Status + "\n")
	h.Write(&b)
	return b.String() + "\n" + body
}

// TestFastHits: on the shop's public listener a cached product page is
// answered by the fast path with the same status, headers and body as the
// full handler chain gives, and no personal page (cart, account, orders,
// admin, anything with a session cookie or credentials) ever is.
func TestFastHits(t *testing.T) {
	ctx := context.Background()
	cfg := Defaults()
	cfg.DataDir = t.TempDir()
	cfg.AccessLog = false
	cfg.AdminToken = strings.Repeat("a", 32)
	sh, err := Open(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer sh.Close()
	c, err := sh.Store.CreateCategory(ctx, catalog.Category{Slug: "shoes", Name: "Shoes"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sh.Store.CreateProduct(ctx, catalog.Product{Slug: "fast-sneaker", Name: "Fast Sneaker", Status: catalog.StatusActive, CategoryID: c.ID,
		Variants: []catalog.Variant{{SKU: "FAST-1", Price: money.Money{Amount: 100, Currency: "USD"}, OnHand: 5}}}); err != nil {
		t.Fatal(err)
	}
	serve := func(ln net.Listener) string {
		srv := &http.Server{Handler: sh.Handler, ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		return ln.Addr().String()
	}
	ln1, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	full := serve(ln1)
	fast := serve(sh.Listener(ln2))
	if fast == full || sh.Listener(ln1) == ln1 {
		t.Fatal("the fast path is off by default")
	}

	const page = "/products/fast-sneaker"
	rawGet(t, full, page)
	resp, want := rawGet(t, full, page)
	if resp.Header.Get("X-Cache") != "HIT" {
		t.Fatalf("second GET: X-Cache %q", resp.Header.Get("X-Cache"))
	}
	want = canonical(resp, want)
	before := sh.Cache.Stats().Fast
	resp, body := rawGet(t, fast, page)
	if got := canonical(resp, body); got != want {
		t.Errorf("fast response differs from the handler chain's:\n%s\nwant:\n%s", got, want)
	}
	if n := sh.Cache.Stats().Fast - before; n != 1 {
		t.Fatalf("fast path answered %d requests of an anonymous product page, want 1", n)
	}

	before = sh.Cache.Stats().Fast
	for _, target := range []string{"/cart", "/checkout", "/account", "/api/v1/me", "/api/v1/cart", "/orders/1",
		"/api/v1/orders/1", "/admin/drops", "/api/v1/admin/products", "/api/v1/admin/jobs"} {
		for range 3 {
			for _, addr := range []string{full, fast} {
				if resp, _ := rawGet(t, addr, target); resp.Header.Get("X-Cache") == "HIT" {
					t.Errorf("%s: X-Cache HIT", target)
				}
			}
		}
		rawGet(t, fast, target, "Cookie: surge_session=x\r\n")
		rawGet(t, fast, target, "Authorization: Bearer "+cfg.AdminToken+"\r\n")
	}
	rawGet(t, fast, page, "Cookie: surge_session=x\r\n")
	rawGet(t, fast, page, "Authorization: Bearer "+cfg.AdminToken+"\r\n")
	if n := sh.Cache.Stats().Fast - before; n != 0 {
		t.Errorf("fast path answered %d personal requests", n)
	}
}
