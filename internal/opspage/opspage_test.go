package opspage

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/surge-commerce/surge/deploy"
	"github.com/surge-commerce/surge/internal/slo"
	"github.com/surge-commerce/surge/internal/telemetry"
)

// clock is a settable clock for the page.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newTestPage(t *testing.T) (*Page, *prometheus.Registry, *telemetry.HTTPMetrics, *clock) {
	t.Helper()
	reg := prometheus.NewRegistry()
	hm, err := telemetry.NewHTTPMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	objectives, err := slo.Parse(deploy.SLOFile)
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)}
	p, err := New(Config{Gatherer: reg, SLOs: objectives, Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	return p, reg, hm, c
}

func row[T any](t *testing.T, rows []T, name func(T) string, want string) T {
	t.Helper()
	for _, r := range rows {
		if name(r) == want {
			return r
		}
	}
	t.Fatalf("no row %q", want)
	var zero T
	return zero
}

// TestBurnRateFromOwnSamples: 1,200 checkouts in a minute, 24 of them
// 5xx, is a 2% error ratio against checkout-availability's 0.1% budget: a
// 20x burn, paging, with the budget overspent; the journey shows 20
// requests/s, 0.4 errors/s and its latency.
func TestBurnRateFromOwnSamples(t *testing.T) {
	p, _, hm, c := newTestPage(t)
	ctx := context.Background()
	p.Sample(ctx)
	for i := range 1200 {
		status := 201
		if i%50 == 0 {
			status = 500
		}
		hm.Observe("POST", "POST /api/v1/checkout", "http", status, 90*time.Millisecond)
	}
	hm.Observe("GET", "GET /products/{slug}", "http", 200, 3*time.Millisecond)
	c.t = c.t.Add(time.Minute)
	p.Sample(ctx)
	v := p.View()

	j := row(t, v.Journeys, func(r JourneyRow) string { return r.Name }, "checkout")
	if j.PerSec != "20.0" || j.Errors != "0.4" || j.ErrorPct != "2.0%" {
		t.Errorf("checkout journey %+v: want 20.0 req/s, 0.4 errors/s, 2.0%%", j)
	}
	if !strings.HasPrefix(j.P50, "8") || !strings.HasPrefix(j.P99, "99") {
		t.Errorf("checkout p50 %s p99 %s: want them within the 75-100ms bucket, interpolated", j.P50, j.P99)
	}
	s := row(t, v.SLOs, func(r SLORow) string { return r.Name }, "checkout-availability")
	if s.Burn5m != "20.00x" || s.Burn1h != "20.00x" || !s.Paging || s.BudgetLeft != "-1900.0%" {
		t.Errorf("checkout-availability %+v: want a 20x burn, paging, budget -1900%%", s)
	}
	st := row(t, v.SLOs, func(r SLORow) string { return r.Name }, "storefront-availability")
	if st.Burn5m != "0.00x" || st.Paging || st.BudgetLeft != "100.0%" {
		t.Errorf("storefront-availability %+v: want no burn", st)
	}
	// Every objective of the file is computable in process, the
	// non-HTTP ones (payments, pipeline freshness) included.
	for _, r := range v.SLOs {
		if r.BudgetLeft == "not computable in process" {
			t.Errorf("%s: not computable", r.Name)
		}
	}
}

func TestEverySLOQueryIsUnderstood(t *testing.T) {
	p, _, _, _ := newTestPage(t)
	for _, q := range p.slos {
		for _, e := range []string{q.ErrorQuery, q.TotalQuery} {
			x, _ := parseWindow(e)
			if _, err := cumulative(x, nil); err != nil {
				t.Errorf("%s: %v", q.Name, err)
			}
		}
	}
	if len(p.journeys) < 4 {
		t.Errorf("%d journeys from the SLO file, want storefront, cart add, checkout and waiting room", len(p.journeys))
	}
}

func TestQuantile(t *testing.T) {
	bs := []bucket{{0.1, 50}, {0.2, 90}, {1, 100}, {posInf, 100}}
	for _, tc := range []struct{ q, want float64 }{{0.5, 0.1}, {0.25, 0.05}, {0.9, 0.2}, {0.95, 0.6}} {
		if got := quantile(tc.q, bs); got < tc.want-1e-9 || got > tc.want+1e-9 {
			t.Errorf("quantile(%v) = %v, want %v", tc.q, got, tc.want)
		}
	}
}

func TestOnlyTheAdminTokenOpensThePage(t *testing.T) {
	p, _, _, _ := newTestPage(t)
	p.Sample(context.Background())
	const token = "ops-token-0123456789"
	srv := httptest.NewServer(p.Handler(token))
	defer srv.Close()
	noToken := httptest.NewServer(p.Handler(""))
	defer noToken.Close()
	get := func(base, path string, set func(*http.Request)) *http.Response {
		req, _ := http.NewRequest("GET", base+path, nil)
		if set != nil {
			set(req)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for _, path := range []string{"/ops", "/ops/live", "/ops/data", "/ops/ops.js"} {
		if r := get(srv.URL, path, nil); r.StatusCode != 401 || !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Basic ") {
			t.Errorf("%s without a token: %d, want 401 asking for Basic credentials", path, r.StatusCode)
		}
		if r := get(srv.URL, path, func(r *http.Request) { r.Header.Set("Authorization", "Bearer wrong-token-0123456789") }); r.StatusCode != 401 {
			t.Errorf("%s with a wrong token: %d, want 401", path, r.StatusCode)
		}
		if r := get(srv.URL, path, func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) }); r.StatusCode != 200 {
			t.Errorf("%s with the bearer token: %d, want 200", path, r.StatusCode)
		}
		r := get(srv.URL, path, func(r *http.Request) { r.SetBasicAuth("anyone", token) })
		if r.StatusCode != 200 || !strings.Contains(r.Header.Get("Content-Security-Policy"), "script-src 'self'") {
			t.Errorf("%s with the token as the Basic password: %d, CSP %q", path, r.StatusCode, r.Header.Get("Content-Security-Policy"))
		}
		if r := get(noToken.URL, path, func(r *http.Request) { r.SetBasicAuth("anyone", "") }); r.StatusCode != 403 {
			t.Errorf("%s on a shop without an admin token: %d, want 403", path, r.StatusCode)
		}
	}
}

// TestDropSellOut: an open drop's row reads the waiting room's gauges;
// 120 units sold in the last minute with 240 left is two minutes to
// sell-out; bought is the allocation less the units left.
func TestDropSellOut(t *testing.T) {
	p, reg, _, c := newTestPage(t)
	gauges := map[string]*prometheus.GaugeVec{}
	for _, n := range []string{"surge_waitroom_waiting", "surge_waitroom_admit_rate", "surge_waitroom_units_available"} {
		gauges[n] = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: n, Help: n}, []string{"drop"})
		reg.MustRegister(gauges[n])
	}
	admitted := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "surge_waitroom_admitted_total", Help: "admitted"}, []string{"drop"})
	reg.MustRegister(admitted)
	p.SetDrops(func(context.Context) ([]Drop, error) {
		return []Drop{{ID: "drp_1", Name: "Sneaker Drop", Allocated: 500}, {ID: "drp_2", Name: "Not started here"}}, nil
	})
	ctx := context.Background()
	gauges["surge_waitroom_units_available"].WithLabelValues("drp_1").Set(360)
	p.Sample(ctx)
	c.t = c.t.Add(time.Minute)
	gauges["surge_waitroom_units_available"].WithLabelValues("drp_1").Set(240)
	gauges["surge_waitroom_waiting"].WithLabelValues("drp_1").Set(4200)
	gauges["surge_waitroom_admit_rate"].WithLabelValues("drp_1").Set(600)
	admitted.WithLabelValues("drp_1").Add(1500)
	p.Sample(ctx)
	v := p.View()
	d := row(t, v.Drops, func(r DropRow) string { return r.ID }, "drp_1")
	if d.Waiting != "4200" || d.Rate != "600" || d.Admitted != "1500" || d.Bought != "260" || d.UnitsLeft != "240" || d.SellOut != "2m0s" {
		t.Errorf("drop row %+v: want 4200 in line, 600/min, 1500 admitted, 260 bought, 240 left, 2m0s to sell out", d)
	}
	if d2 := row(t, v.Drops, func(r DropRow) string { return r.ID }, "drp_2"); d2.UnitsLeft != "–" {
		t.Errorf("a drop without metrics here: %+v, want dashes", d2)
	}
	gauges["surge_waitroom_units_available"].WithLabelValues("drp_1").Set(0)
	c.t = c.t.Add(time.Minute)
	p.Sample(ctx)
	if d := row(t, p.View().Drops, func(r DropRow) string { return r.ID }, "drp_1"); d.SellOut != "sold out" {
		t.Errorf("at 0 units: %q, want sold out", d.SellOut)
	}
}
