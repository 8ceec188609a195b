package storefront_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/surge-commerce/surge/internal/demoshop"
	"github.com/surge-commerce/surge/internal/shop"
)

// TestStandbyLine: while the standby line is on, pages send visitors to
// /queue and the API answers 503; a visitor the line admits goes on to the
// page they wanted; the line, drops, assets and the admin API never wait.
func TestStandbyLine(t *testing.T) {
	ctx := context.Background()
	cfg := shop.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.AdminToken = apiTestToken
	cfg.Admission = false
	cfg.Standby, cfg.StandbyOnActive, cfg.StandbyRate, cfg.StandbyMaxActive = true, 50, 600, 100
	sh, err := shop.Open(ctx, cfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sh.Close() })
	cats, prods := demoshop.Generate(demoshop.Options{Products: 20})
	if err := sh.Store.ImportCatalog(ctx, cats, prods); err != nil {
		t.Fatal(err)
	}
	page := "/products/" + prods[0].Slug
	b := &jarClient{h: sh.Handler, cookies: map[string]string{}, addr: "127.0.0.9:5000"}
	if st, _ := b.do("GET", page, ""); st != 200 {
		t.Fatalf("standby off: %d", st)
	}

	sh.Standby.Observe(500, 0) // a spike: 500 requests in flight
	if !sh.Standby.Active() {
		t.Fatal("standby did not turn on")
	}
	r := serveReq(sh.Handler, "GET", page, "")
	if r.Code != 303 || !strings.HasPrefix(r.Header().Get("Location"), "/queue?next=") {
		t.Fatalf("page during standby: %d %s", r.Code, r.Header().Get("Location"))
	}
	if r := serveReq(sh.Handler, "GET", "/api/v1/products", ""); r.Code != 503 || r.Header().Get("Retry-After") == "" {
		t.Fatalf("API during standby: %d", r.Code)
	}
	for _, p := range []string{"/static/app.css", "/robots.txt"} {
		if r := serveReq(sh.Handler, "GET", p, ""); r.Code != 200 {
			t.Errorf("%s held back: %d", p, r.Code)
		}
	}
	if r := serveReq(sh.Handler, "GET", "/api/v1/admin/products", "", "Authorization", "Bearer "+apiTestToken); r.Code != 200 {
		t.Errorf("admin API held back: %d", r.Code)
	}

	// The visitor follows the redirect; the line is short, so they are let
	// in at once and sent on to the page they asked for.
	st, _ := b.do("GET", "/queue?next="+page, "")
	if st != 303 {
		t.Fatalf("queue: %d", st)
	}
	if st, body := b.do("GET", page, ""); st != 200 || !strings.Contains(body, prods[0].Name) {
		t.Fatalf("admitted visitor: %d", st)
	}
	// Someone else arriving now still waits.
	other := &jarClient{h: sh.Handler, cookies: map[string]string{}, addr: "127.0.0.10:5000"}
	if st, _ := other.do("GET", page, ""); st != 303 {
		t.Fatalf("new visitor during standby: %d", st)
	}
	if st, _ := other.do("GET", "/queue?next=/evil//x", ""); st != 303 && st != 200 {
		t.Fatalf("queue for second visitor: %d", st)
	}
}
