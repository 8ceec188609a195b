package storefront_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/surge-commerce/surge/internal/browsertest"

	"github.com/surge-commerce/surge/internal/drop"
	"github.com/surge-commerce/surge/internal/shop"
	"github.com/surge-commerce/surge/internal/telemetry"
)

// TestBrowserWaitingRoom runs a drop of one unit for two shoppers in
// headless Chromium, each in a browser context of their own (their own
// cookies): a desktop shopper and a phone shopper. Both open the drop page
// during the pre-queue, see the countdown and join the line. At the start
// their queue pages update by themselves; the pre-queue draw decides who
// is first. The first is let in, adds the unit to the cart and pays for
// it; the other's page then turns to "Sold out." by itself. The queue page
// also refreshes itself without JavaScript.
func TestBrowserWaitingRoom(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test: skipped with -short")
	}
	browsertest.Chromium(t) // skips without Chromium, before the shop is built
	shopURL := mustDropShop(t)

	ctx, cancel := context.WithTimeout(t.Context(), 120*time.Second)
	defer cancel()
	ctx, cancelAlloc := browsertest.Allocator(t, ctx)
	defer cancelAlloc()

	// Two shoppers in one browser, each in a browser context of their own,
	// so they share no cookies: two visitors to the waiting room. Both are
	// up before the drop is created, so the pre-queue is not spent
	// starting Chromium.
	desk := &shopper{name: "desktop shopper", width: 1280, height: 900, problems: &pageProblems{expected: "about:none"}}
	phone := &shopper{name: "phone shopper", width: 390, height: 844, problems: &pageProblems{expected: "about:none"}}
	var cancelDesk, cancelPhone context.CancelFunc
	desk.ctx, cancelDesk = chromedp.NewContext(ctx, chromedp.WithListener(desk.problems.listen))
	defer cancelDesk()
	do(t, desk.ctx, chromedp.EmulateViewport(desk.width, desk.height))
	phone.ctx, cancelPhone = chromedp.NewContext(desk.ctx, chromedp.WithNewBrowserContext(), chromedp.WithListener(phone.problems.listen))
	defer cancelPhone()
	do(t, phone.ctx, chromedp.EmulateViewport(phone.width, phone.height))
	for _, s := range []*shopper{desk, phone} {
		expectStatus(t, s.name+": home", run(t, s.ctx, chromedp.NavigateResponse(shopURL+"/")), 200)
	}

	const sku = "WR-LAB-42"
	startIn := 6 * time.Second
	d := createDrop(t, shopURL, sku, startIn)
	started := time.Now()
	dropURL := shopURL + "/drops/" + d.Slug
	queuePath := "/drops/" + d.Slug + "/queue"
	t.Logf("drop %s starts at %s", d.ID, d.StartsAt.Format(time.RFC3339Nano))

	// The pre-queue: both see the drop and its countdown, and join.
	for _, s := range []*shopper{desk, phone} {
		expectStatus(t, s.name+": drop page", run(t, s.ctx, chromedp.NavigateResponse(dropURL)), 200)
		expectText(t, s.ctx, chromedp.CSS("article.drop h1"), d.Name)
		waitCountdown(t, s)
		if items := run(t, s.ctx, chromedp.Text(chromedp.CSS("section.drop-product"), chromedp.NodeVisible)); !strings.Contains(items, "Waitroom Lab Runner") || !strings.Contains(items, "$180.00") {
			t.Errorf("%s: drop product %q, want the runner at $180.00", s.name, items)
		}
		join := chromedp.CSS(`article.drop form button[type=submit]`)
		expectText(t, s.ctx, join, "Join the line")
		expectStatus(t, s.name+": join", runResponse(t, s.ctx, chromedp.Click(join, chromedp.NodeVisible)), 200)
		expectPath(t, s.ctx, queuePath)
		if st := queueState(t, s); st.State != "pre_queue" {
			t.Fatalf("%s: joined %s after creating the drop, %s before its start, and the queue page says %q, want pre_queue",
				s.name, time.Since(started).Round(time.Millisecond), time.Until(d.StartsAt).Round(time.Millisecond), st.State)
		}
		expectText(t, s.ctx, chromedp.CSS("#queue-state p.big"), "You're in the line.")
		if wait := run(t, s.ctx, chromedp.Text(chromedp.CSS("#queue-state [data-wait]"), chromedp.NodeVisible)); !regexp.MustCompile(`^(\d+ seconds|any moment now)$`).MatchString(wait) {
			t.Errorf("%s: pre-queue wait %q, want n seconds", s.name, wait)
		}
		expectNoOverflow(t, s.ctx, s.name+": pre-queue page")
		saveScreenshot(t, s.ctx, fmt.Sprintf("queue-prequeue-%d.png", s.width))
	}
	t.Logf("both joined the pre-queue %s before the start", time.Until(d.StartsAt).Round(time.Millisecond))

	// Without JavaScript the queue page refreshes itself.
	expectNoScriptRefresh(t, phone, shopURL+queuePath, d.ID)

	// At the start both pages move on by themselves: the draw puts one
	// first, who is let in; the other waits behind (max_active is 1).
	left := chromedp.CSS(`#queue-state:not([data-state="pre_queue"])`)
	for _, s := range []*shopper{desk, phone} {
		waitFor(t, s, left, time.Until(d.StartsAt)+15*time.Second, "leave the pre-queue")
	}
	first, second := desk, phone
	if st := queueState(t, phone); st.State == "admitted" || st.Position == "1" {
		first, second = phone, desk
	}
	t.Logf("%s drew the first place, %s the second (%s after the start)", first.name, second.name, time.Since(d.StartsAt).Round(time.Millisecond))
	if st := queueState(t, second); st.State == "waiting" {
		if st.Big != "You're number 2 in line." {
			t.Errorf("%s: waiting says %q, want You're number 2 in line.", second.name, st.Big)
		}
		expectNoOverflow(t, second.ctx, second.name+": waiting page")
		saveScreenshot(t, second.ctx, fmt.Sprintf("queue-waiting-%d.png", second.width))
	} else {
		t.Errorf("%s: second in line, queue page says %q (%q), want waiting", second.name, st.State, st.Big)
	}

	// The first is let in and buys the only unit.
	waitFor(t, first, chromedp.CSS(`#queue-state[data-state="admitted"]`), 15*time.Second, "be let in")
	expectText(t, first.ctx, chromedp.CSS("#queue-state p.big"), "It's your turn!")
	expectNoOverflow(t, first.ctx, first.name+": admitted page")
	saveScreenshot(t, first.ctx, fmt.Sprintf("queue-admitted-%d.png", first.width))
	if label := run(t, first.ctx, chromedp.Text(chromedp.CSS(`form.buy-drop span`), chromedp.NodeVisible)); !strings.Contains(label, "Waitroom Lab Runner") || !strings.Contains(label, "$180.00") {
		t.Errorf("%s: buy form says %q", first.name, label)
	}
	qty := run(t, first.ctx, chromedp.Attributes(chromedp.CSS(`form.buy-drop input[name=quantity]`), chromedp.NodeVisible))
	if qty["value"] != "1" || qty["max"] != "1" {
		t.Errorf("%s: quantity field value %q max %q, want 1 and the limit 1", first.name, qty["value"], qty["max"])
	}
	expectStatus(t, first.name+": add to cart", runResponse(t, first.ctx, chromedp.Click(chromedp.CSS(`form.buy-drop button[type=submit]`), chromedp.NodeVisible)), 200)
	expectPath(t, first.ctx, "/cart")
	expectText(t, first.ctx, chromedp.CSS("p.notice"), "Added to your cart.")
	if rows := run(t, first.ctx, chromedp.Evaluate[[][]string](rowsJS)); len(rows) != 1 || len(rows[0]) != 4 || !strings.Contains(rows[0][0], "Waitroom Lab Runner") || rows[0][1] != "$180.00" {
		t.Errorf("%s: cart rows %q, want one runner at $180.00", first.name, rows)
	}
	expectStatus(t, first.name+": checkout", runResponse(t, first.ctx, chromedp.Click(chromedp.CSS(`a.button[href="/checkout"]`), chromedp.NodeVisible)), 200)
	expectPath(t, first.ctx, "/checkout")
	fillCheckout(t, first.ctx, "4242 4242 4242 4242")
	placed := time.Now()
	expectStatus(t, first.name+": place order", runResponse(t, first.ctx, chromedp.Click(chromedp.CSS(`form.stack button[type=submit]`), chromedp.NodeVisible)), 200)
	if loc := run(t, first.ctx, chromedp.Location()); !strings.HasPrefix(loc, shopURL+"/orders/") {
		t.Fatalf("%s: after placing the order at %s, want an order page", first.name, loc)
	}
	expectOrderHeading(t, first.ctx)

	// The order holds the only unit: the other's page says so by itself,
	// within a poll or two.
	waitFor(t, second, chromedp.CSS(`#queue-state[data-state="sold_out"]`), 15*time.Second, "see the drop sold out")
	t.Logf("%s saw sold out %s after the order was placed", second.name, time.Since(placed).Round(time.Millisecond))
	expectText(t, second.ctx, chromedp.CSS("#queue-state p.big"), "Sold out.")
	if n := run(t, second.ctx, chromedp.Evaluate[int](`document.querySelectorAll("#queue-state form, form.buy-drop").length`)); n != 0 {
		t.Errorf("%s: sold-out page has %d forms, want none", second.name, n)
	}
	// Seen at both widths: the page as it is, then at the other shopper's.
	for _, s := range []*shopper{second, first} {
		do(t, second.ctx, chromedp.EmulateViewport(s.width, s.height))
		expectNoOverflow(t, second.ctx, fmt.Sprintf("%s: sold-out page at %dpx", second.name, s.width))
		saveScreenshot(t, second.ctx, fmt.Sprintf("queue-soldout-%d.png", s.width))
	}

	if status := waitOrderSettled(t, first.ctx); !strings.HasPrefix(status, "Payment confirmed.") {
		t.Errorf("%s: order status %q, want Payment confirmed", first.name, status)
	}
	for _, s := range []*shopper{desk, phone} {
		if p := s.problems.list(); len(p) > 0 {
			t.Errorf("%s: the browser reported problems:\n%s", s.name, strings.Join(p, "\n"))
		}
	}
	t.Logf("waiting room journey took %s (%s from the start)", time.Since(started).Round(time.Millisecond), time.Since(d.StartsAt).Round(time.Millisecond))
}

// shopper is one visitor: a tab in a browser context of its own.
type shopper struct {
	name          string
	ctx           context.Context
	width, height int64
	problems      *pageProblems
}

// mustDropShop is mustRunningShop with the admin API on and no demo
// catalog: the test creates what the drop sells. It returns the shop's URL.
func mustDropShop(tb testing.TB) string {
	tb.Helper()
	ctx := tb.Context()
	cfg := shop.Defaults()
	cfg.DataDir = tb.TempDir()
	cfg.AdminToken = apiTestToken
	cfg.PaymentLatency = 300 * time.Millisecond
	cfg.Admission = false // a busy test machine must not shed the journey's requests
	logger := slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	sh, err := shop.Open(ctx, cfg, logger, telemetry.NewRegistry())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { sh.Close() })
	// As in mustRunningShop: this cleanup waits for the workers before the
	// shop closes.
	done := make(chan error, 1)
	go func() { done <- sh.Run(ctx, shop.RoleAll) }()
	tb.Cleanup(func() {
		if err := <-done; err != nil {
			tb.Errorf("shop workers: %v", err)
		}
	})
	srv := httptest.NewServer(sh.Handler)
	tb.Cleanup(srv.Close)
	return srv.URL
}

// createDrop creates, through the admin API, a category, a product with
// the one SKU, and a drop of one unit of it starting in startIn: the line
// opens a minute before, one visitor a second is let in, one at a time,
// one unit each.
func createDrop(t *testing.T, shopURL, sku string, startIn time.Duration) drop.Drop {
	t.Helper()
	var cat struct {
		ID int64 `json:"id"`
	}
	adminPost(t, shopURL+"/api/v1/admin/categories", `{"name":"Drops","slug":"drops"}`, &cat)
	adminPost(t, shopURL+"/api/v1/admin/products", fmt.Sprintf(`{"slug":"waitroom-lab-runner","name":"Waitroom Lab Runner","status":"active","category_id":%d,
		"images":[{"url":"/images/products/waitroom-lab-runner/1.svg","alt":"The Lab Runner"}],
		"variants":[{"sku":%q,"price":{"amount":18000,"currency":"USD"},"on_hand":5}]}`, cat.ID, sku), nil)
	var d drop.Drop
	adminPost(t, shopURL+"/api/v1/admin/drops", fmt.Sprintf(`{"name":"Lab Runner Drop","slug":"lab-runner","description":"One pair, one buyer.",
		"starts_at":%q,"per_customer_limit":1,"items":[{"sku":%q,"allocated":1}],
		"room":{"prequeue_opens":"1m","rate_per_minute":60,"max_active":1}}`, time.Now().Add(startIn).UTC().Format(time.RFC3339Nano), sku), &d)
	if d.ID == "" || d.Slug != "lab-runner" {
		t.Fatalf("created drop %+v", d)
	}
	return d
}

func adminPost(t *testing.T, url, body string, out any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(body))
	must(t, err)
	req.Header.Set("Authorization", "Bearer "+apiTestToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	must(t, err)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST %s: %d %s", url, resp.StatusCode, b)
	}
	if out != nil {
		must(t, json.Unmarshal(b, out))
	}
}

// waitCountdown waits for the drop page's script to count down to the
// start: " · in 0m 5s".
func waitCountdown(t *testing.T, s *shopper) {
	t.Helper()
	_, err := chromedp.Run(s.ctx, chromedp.PollFunction[bool](
		`() => /^in (\d+ days? )?(\d+ h )?\d+ min \d+ s$/.test(document.querySelector(".countdown [data-countdown]").textContent)`,
		chromedp.WithPollingTimeout(5*time.Second)))
	if err != nil {
		got, _ := chromedp.Run(s.ctx, chromedp.Text(chromedp.CSS("p.countdown")))
		t.Fatalf("%s: drop page countdown %q, want \"Starts … in 0 min n s\" (%v)", s.name, got, err)
	}
}

// queueView is what the queue page shows: its state, the big line, and
// the place in line while waiting.
type queueView struct {
	State    string `json:"state"`
	Big      string `json:"big"`
	Position string `json:"position"`
}

func queueState(t *testing.T, s *shopper) queueView {
	t.Helper()
	return run(t, s.ctx, chromedp.Evaluate[queueView](`(() => {
		const box = document.getElementById("queue-state");
		const text = sel => { const e = box && box.querySelector(sel); return e ? e.innerText.trim() : ""; };
		return {state: box ? box.dataset.state : "", big: text("p.big"), position: text("[data-position]")};
	})()`))
}

// waitFor waits up to limit for sel to show on the shopper's page, which
// reloads itself meanwhile; why says what the shopper waits for.
func waitFor(t *testing.T, s *shopper, sel chromedp.CSS, limit time.Duration, why string) {
	t.Helper()
	wctx, cancel := context.WithTimeout(s.ctx, limit)
	defer cancel()
	if err := chromedp.Do(wctx, chromedp.WaitVisible(sel)); err != nil {
		st := queueState(t, s)
		t.Fatalf("%s: did not %s within %s: the queue page is %q, %q (%v)", s.name, why, limit.Round(time.Second), st.State, st.Big, err)
	}
}

// expectNoScriptRefresh fetches the queue page over plain HTTP with the
// shopper's cookies, as a browser without JavaScript would, and checks
// that it refreshes itself.
func expectNoScriptRefresh(t *testing.T, s *shopper, queueURL, dropID string) {
	t.Helper()
	cookies := run(t, s.ctx, func(ctx context.Context, tg *chromedp.Target) ([]*network.Cookie, error) {
		res, err := cdp.Call(ctx, tg, network.GetCookies, network.GetCookiesParams{URLs: []string{queueURL}})
		return res.Cookies, err
	})
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, queueURL, nil)
	must(t, err)
	ticket := false
	for _, c := range cookies {
		req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
		ticket = ticket || c.Name == "surge_wr_"+dropID
	}
	if !ticket {
		t.Fatalf("%s: no ticket cookie among %d cookies", s.name, len(cookies))
	}
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	must(t, err)
	body := string(b)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `data-state="pre_queue"`) {
		t.Fatalf("queue page without JavaScript: %d, not the pre-queue:\n%s", resp.StatusCode, body)
	}
	if !regexp.MustCompile(`<noscript><meta http-equiv="refresh" content="\d+"></noscript>`).MatchString(body) {
		t.Errorf("queue page without JavaScript: no <noscript><meta http-equiv=\"refresh\"> in the page")
	}
}
