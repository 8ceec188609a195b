package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/surge-commerce/surge/internal/capacity"
)

// TestPlanCalibrateThroughSheddingShop calibrates a real shop behind a
// proxy that sheds as an overloaded shop does: the first catalog read of a
// product and the first admin call answer 503 or 429 with Retry-After,
// and the drop can never be created. Calibration waits as asked, measures
// the class it can, and writes a profile that says which classes it could
// not measure and why, instead of stopping at the first refusal.
func TestPlanCalibrateThroughSheddingShop(t *testing.T) {
	if testing.Short() {
		t.Skip("calibrates a running shop")
	}
	s := startShop(t)
	up, _ := url.Parse(s.URL)
	proxy := httputil.NewSingleHostReverseProxy(up)
	var mu sync.Mutex
	seen := map[string]int{}
	shed := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := ""
		switch {
		case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/api/v1/products/"):
			key = "product read"
		case r.Method == http.MethodPost && r.URL.Path == "/api/v1/admin/products":
			key = "admin product"
		case r.Method == http.MethodPost && r.URL.Path == "/api/v1/admin/drops":
			key = "admin drop"
		}
		mu.Lock()
		seen[key]++
		n := seen[key]
		mu.Unlock()
		switch {
		case key == "product read" && n == 1, key == "admin drop":
			w.Header().Set("Retry-After", "1")
			http.Error(w, `{"title":"busy"}`, http.StatusServiceUnavailable)
			return
		case key == "admin product" && n == 1:
			w.Header().Set("Retry-After", "1")
			http.Error(w, `{"title":"slow down"}`, http.StatusTooManyRequests)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	defer shed.Close()

	out := filepath.Join(t.TempDir(), "profile.yaml")
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := run(ctx, []string{"plan", "calibrate", "--target", shed.URL, "--admin", s.AdminURL, "--admin-token", s.Token,
		"--source-ips", "127.0.1.0/30", "--classes", "cached_page,drop_join,drop_status", "--step", "1s", "--max-steps", "1",
		"--max-rate", "60", "--page-p99", "5s", "--queue-p99", "5s", "--retry-wait", "2s", "--out", out}, noEnv, &stdout, &stderr)
	if err != nil {
		t.Fatalf("calibrate: %v\n%s", err, stderr.String())
	}
	p, err := capacity.ReadProfile(out)
	if err != nil {
		t.Fatal(err)
	}
	if got := p.MeasuredClasses(); len(got) != 1 || got[0] != capacity.CachedPage {
		t.Errorf("measured %v, want [cached_page]\n%s", got, stderr.String())
	}
	for _, c := range []string{capacity.DropJoin, capacity.DropStatus} {
		if why := p.Unmeasured[c]; !strings.Contains(why, "creating the calibration drop") || !strings.Contains(why, "503") {
			t.Errorf("%s: not measured because %q, want the drop's refusal", c, why)
		}
	}
	mu.Lock()
	// One refusal and one retry for the product read; the drop is tried
	// once for both classes, three times within the 2 s bound.
	if seen["product read"] < 2 || seen["admin product"] != 2 || seen["admin drop"] != 3 {
		t.Errorf("requests seen by the proxy: %v", seen)
	}
	mu.Unlock()
	if want := "dev (" + runtime.Version() + ")"; p.Target.Version != want {
		t.Errorf("target version %q, want %q from surge_build_info", p.Target.Version, want)
	}
	if !strings.Contains(stdout.String(), "1 classes measured") {
		t.Errorf("stdout: %s", stdout.String())
	}
}
