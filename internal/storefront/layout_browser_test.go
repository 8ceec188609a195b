package storefront_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/surge-commerce/surge/internal/browsertest"
	"github.com/surge-commerce/surge/internal/demoshop"
	"github.com/surge-commerce/surge/internal/notify"
	"github.com/surge-commerce/surge/internal/shop"
)

// cspWatch records the Content-Security-Policy violations of every page,
// installed before the page's own scripts run.
const cspWatch = `window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => window.__csp.push(e.violatedDirective + " " + e.blockedURI));`

// TestBrowserEveryPageLaysOut opens every storefront page in Chromium at
// 1280 and 390 px, as a shopper reaches them (home, a category, a product,
// search, a missing page, sign-up, the account, the cart, checkout, an
// order, sign-in, a drop and its line), and fails on text, images or
// controls drawn over each other, anything past the right edge, a
// Content-Security-Policy violation or a browser error. A full-page
// screenshot of each is saved (go test -artifacts keeps them).
func TestBrowserEveryPageLaysOut(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test: skipped with -short")
	}
	browsertest.Chromium(t)
	ctx := context.Background()
	cfg := shop.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.AdminToken = apiTestToken
	cfg.Admission = false
	sh, err := shop.Open(ctx, cfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	must(t, err)
	t.Cleanup(func() { sh.Close() })
	cats, prods := demoshop.Generate(demoshop.Options{Products: 60})
	must(t, sh.Store.ImportCatalog(ctx, cats, prods))
	srv := httptest.NewServer(sh.Handler)
	t.Cleanup(srv.Close)
	picked := inStockProducts(t, srv.URL, 3)
	product := picked[0]
	// The drop takes another product: a drop's SKU needs a place in its
	// line to go in a cart.
	dropSlug := layoutDrop(t, srv.URL, picked[1].sku)
	liveSlug := layoutLiveDrop(t, srv.URL, picked[2].sku)
	// Workers pay the order, so its page settles rather than refreshing.
	runCtx, stopRun := context.WithCancel(ctx)
	runDone := make(chan struct{})
	go func() { _ = sh.Run(runCtx, shop.RoleAll); close(runDone) }()
	t.Cleanup(func() { stopRun(); <-runDone })
	dir := t.ArtifactDir()

	for _, width := range []int64{1280, 390} {
		t.Run(fmt.Sprint(width), func(t *testing.T) {
			bctx, cancel := context.WithTimeout(t.Context(), 240*time.Second)
			defer cancel()
			bctx, cancelAlloc := browsertest.Allocator(t, bctx)
			defer cancelAlloc()
			missing := srv.URL + "/no-such-page"
			problems := &pageProblems{expected: missing}
			bctx, cancelTab := chromedp.NewContext(bctx, chromedp.WithListener(problems.listen))
			defer cancelTab()
			do(t, bctx, chromedp.EmulateViewport(width, 900))
			_, err := chromedp.Call(bctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: cspWatch})
			must(t, err)

			look := func(name string) {
				t.Helper()
				do(t, bctx, chromedp.WaitReady(chromedp.CSS("footer.site-footer")))
				shot := filepath.Join(dir, fmt.Sprintf("%s-%d.png", name, width))
				must(t, browsertest.Screenshot(bctx, shot))
				l, err := browsertest.CheckLayout(bctx)
				must(t, err)
				if !l.OK() {
					t.Errorf("%s at %dpx: %s (see %s)", name, width, l, shot)
				}
				if v := run(t, bctx, chromedp.Evaluate[[]string](`window.__csp || []`)); len(v) > 0 {
					t.Errorf("%s at %dpx: Content-Security-Policy violations: %q", name, width, v)
				}
			}
			open := func(name, path string, status int64) {
				t.Helper()
				expectStatus(t, name, run(t, bctx, chromedp.NavigateResponse(srv.URL+path)), status)
				look(name)
			}

			open("home", "/", 200)
			open("category", "/categories/women", 200)
			open("product", "/products/"+product.slug, 200)
			open("search", "/search?q=linen", 200)
			open("not-found", "/no-such-page", 404)
			open("drops", "/drops", 200)
			open("drop", "/drops/"+dropSlug, 200)
			open("drop-live", "/drops/"+liveSlug, 200)
			open("product-drop", "/products/"+picked[1].slug, 200)
			open("queue", "/drops/"+dropSlug+"/queue", 200)
			open("admin-signin", "/admin/drops/"+liveSlug+"/report", 200)
			do(t, bctx, chromedp.SendKeys(chromedp.CSS(`form[action="/admin/signin"] input[name=token]`), apiTestToken))
			expectStatus(t, "drop-report", runResponse(t, bctx, chromedp.Submit(chromedp.CSS(`form[action="/admin/signin"]`))), 200)
			expectPath(t, bctx, "/admin/drops/"+liveSlug+"/report")
			look("drop-report")
			// Notify me: the form, its post, and the pages of the mailed links.
			open("notify", "/drops/"+dropSlug+"/notify", 200)
			do(t, bctx, chromedp.SendKeys(chromedp.CSS(`form.notify-form input[name=email]`), fmt.Sprintf("notify-%d@example.com", width)))
			expectStatus(t, "notify-sent", runResponse(t, bctx, chromedp.Submit(chromedp.CSS(`form.notify-form`))), 200)
			look("notify-sent")
			open("notify-confirm", "/notify/confirm?token="+notify.NewToken(), 200)
			open("notify-unsubscribe", "/notify/unsubscribe?token="+notify.NewToken(), 200)
			open("signin", "/account/signin", 200)
			open("signup", "/account/signup", 200)
			email := fmt.Sprintf("layout-%d@example.com", width)
			do(t, bctx,
				chromedp.SendKeys(chromedp.CSS(`form[action="/account/signup"] input[name=name]`), "Lay Out"),
				chromedp.SendKeys(chromedp.CSS(`form[action="/account/signup"] input[name=email]`), email),
				chromedp.SendKeys(chromedp.CSS(`form[action="/account/signup"] input[name=password]`), "correct horse battery"))
			expectStatus(t, "account", runResponse(t, bctx, chromedp.Submit(chromedp.CSS(`form[action="/account/signup"]`))), 200)
			expectPath(t, bctx, "/account")
			look("account")

			open("product-again", "/products/"+product.slug, 200)
			expectStatus(t, "cart", runResponse(t, bctx, chromedp.Click(chromedp.CSS("form.variants button.add"), chromedp.NodeVisible)), 200)
			expectPath(t, bctx, "/cart")
			look("cart")
			open("checkout", "/checkout", 200)
			for field, v := range map[string]string{"name": "Lay Out", "line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "card_number": "4242 4242 4242 4242"} {
				do(t, bctx, chromedp.SendKeys(chromedp.CSS(`form[action="/checkout"] input[name=`+field+`]`), v))
			}
			expectStatus(t, "order", runResponse(t, bctx, chromedp.Submit(chromedp.CSS(`form[action="/checkout"]`))), 200)
			look("order")

			if p := problems.list(); len(p) > 0 {
				t.Errorf("at %dpx the browser reported problems:\n%s", width, strings.Join(p, "\n"))
			}
		})
	}
	t.Logf("screenshots: %s", dir)
}

type pickedProduct struct{ slug, sku string }

// inStockProducts returns the first n listed products whose first variant
// is in stock (the product page selects it).
func inStockProducts(t *testing.T, base string, n int) []pickedProduct {
	t.Helper()
	var page struct {
		Items []struct {
			Slug     string `json:"slug"`
			Variants []struct {
				SKU       string `json:"sku"`
				Available int64  `json:"available"`
			} `json:"variants"`
		} `json:"items"`
	}
	getJSON(t, base+"/api/v1/products?limit=50&in_stock=true", &page)
	var out []pickedProduct
	for _, p := range page.Items {
		if p.Slug == "" {
			continue
		}
		var full struct {
			Variants []struct {
				SKU       string `json:"sku"`
				Available int64  `json:"available"`
			} `json:"variants"`
		}
		getJSON(t, base+"/api/v1/products/"+p.Slug, &full)
		if len(full.Variants) > 0 && full.Variants[0].Available > 1 {
			out = append(out, pickedProduct{p.Slug, full.Variants[0].SKU})
			if len(out) == n {
				return out
			}
		}
	}
	t.Fatalf("fewer than %d products with their first variant in stock", n)
	return nil
}

func getJSON(t *testing.T, url string, out any) {
	t.Helper()
	resp, err := http.Get(url)
	must(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	must(t, err)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	must(t, json.Unmarshal(b, out))
}

// layoutDrop creates a drop of sku starting in an hour, its line open, and
// returns its slug.
func layoutDrop(t *testing.T, base, sku string) string {
	t.Helper()
	body := fmt.Sprintf(`{"name":"Layout Drop","slug":"layout-drop","description":"A drop to look at.",
		"starts_at":%q,"per_customer_limit":1,"items":[{"sku":%q,"allocated":1}],
		"room":{"prequeue_opens":"2h","rate_per_minute":60,"max_active":10}}`, time.Now().Add(time.Hour).UTC().Format(time.RFC3339Nano), sku)
	req, err := http.NewRequest("POST", base+"/api/v1/admin/drops", strings.NewReader(body))
	must(t, err)
	req.Header.Set("Authorization", "Bearer "+apiTestToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 201 {
		t.Fatalf("create drop: %d %s", resp.StatusCode, b)
	}
	return "layout-drop"
}

// layoutLiveDrop puts sku on sale in a drop that started a minute ago.
func layoutLiveDrop(t *testing.T, base, sku string) string {
	t.Helper()
	body := fmt.Sprintf(`{"name":"Live Layout Drop","slug":"live-layout-drop","description":"A drop on sale now.",
		"starts_at":%q,"per_customer_limit":2,"items":[{"sku":%q,"allocated":40}],
		"room":{"prequeue_opens":"2h","rate_per_minute":60,"max_active":10}}`, time.Now().Add(-time.Minute).UTC().Format(time.RFC3339Nano), sku)
	req, err := http.NewRequest("POST", base+"/api/v1/admin/drops", strings.NewReader(body))
	must(t, err)
	req.Header.Set("Authorization", "Bearer "+apiTestToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 201 {
		t.Fatalf("create drop: %d %s", resp.StatusCode, b)
	}
	return "live-layout-drop"
}
