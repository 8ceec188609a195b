package opspage_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/surge-commerce/surge/deploy"
	"github.com/surge-commerce/surge/internal/browsertest"
	"github.com/surge-commerce/surge/internal/drop"
	"github.com/surge-commerce/surge/internal/opspage"
	"github.com/surge-commerce/surge/internal/shop"
	"github.com/surge-commerce/surge/internal/slo"
	"github.com/surge-commerce/surge/internal/telemetry"
)

const token = "ops-browser-token-0123456789"

const cspWatch = `window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => window.__csp.push(e.violatedDirective + " " + e.blockedURI));`

// TestBrowserOpsPage opens /ops of a real shop (its registry, a live drop,
// some traffic) in Chromium at 1280 and 390 px: the sections render with
// figures, nothing overlaps or sticks out, no Content-Security-Policy
// violation, and the page refreshes itself from /ops/live. Screenshots
// are saved (go test -artifacts keeps them).
func TestBrowserOpsPage(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test: skipped with -short")
	}
	browsertest.Chromium(t)
	ctx := context.Background()
	reg := telemetry.NewRegistry()
	cfg := shop.Defaults()
	cfg.DataDir, cfg.AdminToken = t.TempDir(), token
	sh, err := shop.Open(ctx, cfg, slog.New(slog.DiscardHandler), reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sh.Close() })
	runCtx, stopRun := context.WithCancel(ctx)
	runDone := make(chan struct{})
	go func() { _ = sh.Run(runCtx, shop.RoleAll); close(runDone) }()
	t.Cleanup(func() { stopRun(); <-runDone })
	srv := httptest.NewServer(sh.Handler)
	t.Cleanup(srv.Close)

	call := func(method, path, body string, admin bool) string {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if admin {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 300 {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
		}
		return string(b)
	}
	var cat struct{ ID int64 }
	_ = json.Unmarshal([]byte(call("POST", "/api/v1/admin/categories", `{"name":"Sneakers","slug":"sneakers"}`, true)), &cat)
	call("POST", "/api/v1/admin/products", fmt.Sprintf(`{"name":"Ops Sneaker","slug":"ops-sneaker","status":"active","category_id":%d,
		"variants":[{"sku":"OPS-1","price":{"amount":9900,"currency":"USD"},"on_hand":500}]}`, cat.ID), true)
	call("POST", "/api/v1/admin/drops", fmt.Sprintf(`{"name":"Midnight Runner Drop","slug":"midnight","starts_at":%q,
		"per_customer_limit":2,"items":[{"sku":"OPS-1","allocated":300}],"room":{"rate_per_minute":600,"max_active":100,"prequeue_opens":"1h"}}`,
		time.Now().Add(-time.Minute).UTC().Format(time.RFC3339Nano)), true)

	objectives, err := slo.Parse(deploy.SLOFile)
	if err != nil {
		t.Fatal(err)
	}
	p, err := opspage.New(opspage.Config{Gatherer: reg, SLOs: objectives, Every: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	p.SetDrops(func(ctx context.Context) ([]opspage.Drop, error) {
		ds, err := sh.Store.Drops(ctx)
		var out []opspage.Drop
		for _, d := range ds {
			if d.StateAt(time.Now()) != drop.StateClosed {
				out = append(out, opspage.Drop{ID: d.ID, Name: d.Name, Allocated: d.Items[0].Allocated})
			}
		}
		return out, err
	})
	p.Sample(ctx)
	for range 20 {
		call("GET", "/products/ops-sneaker", "", false)
		call("GET", "/", "", false)
	}
	p.Sample(ctx)
	ops := httptest.NewServer(p.Handler(token))
	t.Cleanup(ops.Close)

	dir := t.ArtifactDir()
	for _, width := range []int64{1280, 390} {
		t.Run(fmt.Sprint(width), func(t *testing.T) {
			bctx, cancel := context.WithTimeout(t.Context(), 120*time.Second)
			defer cancel()
			bctx, cancelAlloc := browsertest.Allocator(t, bctx)
			defer cancelAlloc()
			bctx, cancelTab := chromedp.NewContext(bctx)
			defer cancelTab()
			if err := chromedp.Do(bctx, chromedp.EmulateViewport(width, 900)); err != nil {
				t.Fatal(err)
			}
			if _, err := chromedp.Call(bctx, network.Enable, network.EnableParams{}); err != nil {
				t.Fatal(err)
			}
			if _, err := chromedp.Call(bctx, network.SetExtraHTTPHeaders,
				network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Authorization": "Bearer " + token}}); err != nil {
				t.Fatal(err)
			}
			if _, err := chromedp.Call(bctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: cspWatch}); err != nil {
				t.Fatal(err)
			}
			resp, err := chromedp.Run(bctx, chromedp.NavigateResponse(ops.URL+"/ops"))
			if err != nil || resp.Status != 200 {
				t.Fatalf("open /ops: %v %v", err, resp)
			}
			text, err := chromedp.Run(bctx, chromedp.TextContent(chromedp.ID("live")))
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"checkout", "storefront", "checkout-availability", "Midnight Runner Drop", "scheduler wait p99", "cores"} {
				if !strings.Contains(text, want) {
					t.Errorf("the page does not show %q", want)
				}
			}
			// It refreshes itself: the script replaces the live part
			// with the newest sample and says so.
			p.Sample(ctx)
			if _, err := chromedp.Run(bctx, chromedp.PollFunction[bool](
				`() => document.getElementById("status").textContent.startsWith("live")`, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
				status, _ := chromedp.Run(bctx, chromedp.TextContent(chromedp.ID("status")))
				t.Fatalf("the page did not refresh itself: status %q (%v)", status, err)
			}
			shot := filepath.Join(dir, fmt.Sprintf("ops-%d.png", width))
			if err := browsertest.Screenshot(bctx, shot); err != nil {
				t.Fatal(err)
			}
			if os.Getenv("SURGE_OPS_SHOTS") != "" {
				b, _ := os.ReadFile(shot)
				_ = os.WriteFile(filepath.Join(os.Getenv("SURGE_OPS_SHOTS"), filepath.Base(shot)), b, 0o644)
			}
			l, err := browsertest.CheckLayout(bctx)
			if err != nil {
				t.Fatal(err)
			}
			if !l.OK() {
				t.Errorf("/ops at %dpx: %s (see %s)", width, l, shot)
			}
			if v, _ := chromedp.Run(bctx, chromedp.Evaluate[[]string](`window.__csp || []`)); len(v) > 0 {
				t.Errorf("/ops at %dpx: Content-Security-Policy violations: %q", width, v)
			}
		})
	}
}
