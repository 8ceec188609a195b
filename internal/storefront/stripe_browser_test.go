package storefront_test

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/surge-commerce/surge/internal/browsertest"
	"github.com/surge-commerce/surge/internal/demoshop"
	"github.com/surge-commerce/surge/internal/payment/stripe"
	"github.com/surge-commerce/surge/internal/shop"
	"github.com/surge-commerce/surge/internal/telemetry"
)

// TestBrowserStripeCheckout: with Stripe as the provider, the checkout
// page has a place for Stripe Elements and no card field, at desktop and
// phone widths, without anything past the right edge. (Stripe.js itself
// cannot load here: the test machine has no way to js.stripe.com.)
func TestBrowserStripeCheckout(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test: skipped with -short")
	}
	browsertest.Chromium(t)
	cfg := shop.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.Admission = false
	cfg.PaymentProvider = shop.ProviderStripe
	cfg.Stripe = stripe.Config{SecretKey: "sk_test_browser0123456789", PublishableKey: "pk_test_browser0123456789",
		WebhookSecret: "whsec_browser0123456789"}
	sh, err := shop.Open(t.Context(), cfg, slog.New(slog.DiscardHandler), telemetry.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer sh.Close()
	cats, prods := demoshop.Generate(demoshop.Options{Products: 30})
	if err := sh.Store.ImportCatalog(t.Context(), cats, prods); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sh.Handler)
	defer srv.Close()
	buy := pickPurchase(t, sh.Catalog)

	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	ctx, cancelAlloc := browsertest.Allocator(t, ctx)
	defer cancelAlloc()
	ctx, cancelTab := chromedp.NewContext(ctx)
	defer cancelTab()
	for _, vp := range []struct {
		w, h int
		name string
	}{{1280, 900, "desktop"}, {390, 844, "phone"}} {
		do(t, ctx, chromedp.EmulateViewport(int64(vp.w), int64(vp.h)))
		expectStatus(t, "product", run(t, ctx, chromedp.NavigateResponse(srv.URL+"/products/"+buy.product.Slug)), 200)
		chooseVariant(t, ctx, buy)
		expectStatus(t, "add", runResponse(t, ctx, chromedp.Click(chromedp.CSS(`form.variants button.add`), chromedp.NodeVisible)), 200)
		expectStatus(t, "checkout", runResponse(t, ctx, chromedp.Click(chromedp.CSS(`a.button[href="/checkout"]`), chromedp.NodeVisible)), 200)
		expectPath(t, ctx, "/checkout")
		if n := run(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll('input[name="card_number"]').length`)); n != 0 {
			t.Errorf("%s: the Stripe checkout has a card number field", vp.name)
		}
		if n := run(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll('form[data-stripe-key] #card-element').length`)); n != 1 {
			t.Errorf("%s: no place for Stripe Elements", vp.name)
		}
		expectNoOverflow(t, ctx, "stripe checkout "+vp.name)
		saveScreenshot(t, ctx, "stripe-checkout-"+vp.name+".png")
	}
}
