package storefront_test

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/surge-commerce/surge/internal/admission"
	"github.com/surge-commerce/surge/internal/shop"
)

// BenchmarkRefusal measures what a refused search costs the process
// inside the handler: the whole public handler as the shop assembles it
// (cookies, metrics, request ID, security headers, cross-origin check,
// routing, admission) answering with admission's pre-rendered refusal.
// The client's token bucket is empty, so every request is refused (429)
// the way the CPU guard refuses (503): same stack, same canned write.
// net/http's own reading and writing of the request, and the kernel's,
// are not in it (httptest's request parsing is, as a stand-in).
func BenchmarkRefusal(b *testing.B) {
	cfg := shop.Defaults()
	cfg.DataDir = b.TempDir()
	cfg.AdminToken = apiTestToken
	cfg.Admission = true
	cfg.PageCache = false // as in bench/overload: every search is work
	cfg.AdmissionConfig.PerClient = admission.Rate{PerSecond: 1e-6, Burst: 1}
	sh, err := shop.Open(context.Background(), cfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { sh.Close() })
	serve := func() int {
		r := httptest.NewRequest("GET", "/api/v1/products?q=wool&limit=24", nil)
		r.RemoteAddr = "192.0.2.7:40000"
		w := httptest.NewRecorder()
		sh.Handler.ServeHTTP(w, r)
		return w.Code
	}
	serve() // the bucket's one token
	b.ReportAllocs()
	for b.Loop() {
		if code := serve(); code != 429 {
			b.Fatalf("status %d, want 429", code)
		}
	}
}
