package storefront_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/surge-commerce/surge/internal/demoshop"
	"github.com/surge-commerce/surge/internal/shop"
	"github.com/surge-commerce/surge/internal/telemetry"
)

// TestRequestMetricsLabelRouteTemplates: http_route is the path template
// the request matched, as OpenTelemetry names it ("/products/{slug}"), not
// the mux pattern with its method ("GET /products/{slug}"), and url_scheme
// says how the request came.
func TestRequestMetricsLabelRouteTemplates(t *testing.T) {
	ctx := t.Context()
	cfg := shop.Defaults()
	cfg.DataDir = t.TempDir()
	reg := telemetry.NewRegistry()
	sh, err := shop.Open(ctx, cfg, slog.New(slog.DiscardHandler), reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sh.Close() })
	cats, prods := demoshop.Generate(demoshop.Options{Products: 5})
	if err := sh.Store.ImportCatalog(ctx, cats, prods); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sh.Handler)
	t.Cleanup(srv.Close)
	for _, path := range []string{"/products/" + prods[0].Slug, "/api/v1/products", "/", "/no/such/page"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}

	// The server records a request after its handler returns, which can be
	// after the client has read the whole body: wait (bounded) for the
	// four series rather than reading the registry once.
	wants := []string{"/products/{slug}", "/api/v1/products", "/{$}", "/"}
	var routes map[string]bool
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		routes = routeLabels(t, reg)
		missing := false
		for _, want := range wants {
			missing = missing || !routes[want]
		}
		if !missing || time.Now().After(deadline) {
			break
		}
	}
	for _, want := range wants {
		if !routes[want] {
			t.Errorf("no series with http_route=%q; have %v", want, routes)
		}
	}
}

// routeLabels gathers the http_route values of the request histogram,
// checking the other labels of each series on the way.
func routeLabels(t *testing.T, reg *prometheus.Registry) map[string]bool {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	routes := map[string]bool{}
	for _, f := range families {
		if f.GetName() != "http_server_request_duration_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := labelMap(m)
			routes[labels["http_route"]] = true
			if labels["url_scheme"] != "http" {
				t.Errorf("url_scheme = %q on %v, want http", labels["url_scheme"], labels)
			}
			if strings.Contains(labels["http_route"], " ") {
				t.Errorf("http_route %q carries more than the path template", labels["http_route"])
			}
		}
	}
	return routes
}

func labelMap(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}
