package storefront_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/surge-commerce/surge/internal/browsertest"

	"github.com/surge-commerce/surge/internal/catalog"
)

// TestBrowserJourney walks a shopper through the pages in headless
// Chromium: home, a category from the nav, a product and its variant
// picker, the header search, the not-found page, and the home page at
// phone width.
func TestBrowserJourney(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test: skipped with -short")
	}
	browsertest.Chromium(t) // skips without Chromium, before the shop is built
	shop := mustTestShop(t, 200)
	pick := pickJourney(t, shop.Catalog)
	t.Logf("journey: category %q, product %q, variant %s -> %s, search %q",
		pick.category.Name, pick.product.Name, pick.from.SKU, pick.to.SKU, pick.word)

	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	ctx, cancelAlloc := browsertest.Allocator(t, ctx)
	defer cancelAlloc()
	missing := shop.URL + "/products/does-not-exist"
	problems := &pageProblems{expected: missing}
	ctx, cancelTab := chromedp.NewContext(ctx, chromedp.WithListener(problems.listen))
	defer cancelTab()

	start := time.Now()
	do(t, ctx, chromedp.EmulateViewport(1280, 900))

	// Home, then the category from the nav.
	expectStatus(t, "home", run(t, ctx, chromedp.NavigateResponse(shop.URL+"/")), 200)
	navLink := chromedp.CSS(fmt.Sprintf(`nav.cats a[href="/categories/%s"]`, pick.category.Slug))
	do(t, ctx, chromedp.WaitVisible(navLink))
	expectStatus(t, "category", runResponse(t, ctx, chromedp.Click(navLink, chromedp.NodeVisible)), 200)
	expectPath(t, ctx, "/categories/"+pick.category.Slug)
	expectText(t, ctx, chromedp.CSS("main h1"), pick.category.Name)
	do(t, ctx, chromedp.WaitVisible(chromedp.CSS("ul.grid li.card")))
	if n := run(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll("ul.grid li.card").length`)); n == 0 {
		t.Fatal("category page: no product cards")
	}
	if cur := run(t, ctx, chromedp.AttributeValue(navLink, "aria-current")); cur.Value != "page" {
		t.Errorf("category page: nav link aria-current = %q, want %q", cur.Value, "page")
	}

	// The product, from its card.
	card := chromedp.CSS(fmt.Sprintf(`ul.grid li.card a[href="/products/%s"]`, pick.product.Slug))
	expectStatus(t, "product", runResponse(t, ctx, chromedp.Click(card, chromedp.NodeVisible)), 200)
	expectPath(t, ctx, "/products/"+pick.product.Slug)
	expectText(t, ctx, chromedp.CSS("article.product h1"), pick.product.Name)
	price := run(t, ctx, chromedp.Text(chromedp.ID("price"), chromedp.NodeVisible))
	if !strings.Contains(price, "$") || price != pick.from.Price.String() {
		t.Errorf("product page: price %q, want %q", price, pick.from.Price.String())
	}
	radios := `form.variants input[type=radio][name=sku]`
	if n := run(t, ctx, chromedp.Evaluate[int](fmt.Sprintf("document.querySelectorAll(%q).length", radios))); n != len(pick.product.Variants) {
		t.Errorf("product page: %d variant radios, want %d", n, len(pick.product.Variants))
	}
	if checked := run(t, ctx, chromedp.Value(chromedp.CSS(radios+":checked"))); checked != pick.from.SKU {
		t.Errorf("product page: checked variant %q, want %q", checked, pick.from.SKU)
	}
	shot := run(t, ctx, chromedp.CaptureScreenshot())
	shotPath := filepath.Join(t.ArtifactDir(), "product.png")
	must(t, os.WriteFile(shotPath, shot, 0o644))
	t.Logf("product page screenshot: %s", shotPath)

	// Choosing another variant shows its price and stock without a reload.
	other := chromedp.CSS(fmt.Sprintf(`%s[value=%q]`, radios, pick.to.SKU))
	want := run(t, ctx, chromedp.AttributeValue(other, "data-price")).Value
	if want != pick.to.Price.String() {
		t.Errorf("variant %s: data-price %q, want %q", pick.to.SKU, want, pick.to.Price.String())
	}
	do(t, ctx, chromedp.Click(other, chromedp.NodeVisible))
	_, err := chromedp.Run(ctx, chromedp.PollFunction[bool](
		`(want) => document.getElementById("price").textContent === want`,
		chromedp.WithPollingArgs(want), chromedp.WithPollingTimeout(10*time.Second)))
	if err != nil {
		got, _ := chromedp.Run(ctx, chromedp.TextContent(chromedp.ID("price")))
		t.Fatalf("after choosing %s: #price = %q, want %q (%v)", pick.to.SKU, got, want, err)
	}
	expectText(t, ctx, chromedp.ID("stock"), stockText(pick.to.Available()))
	if loc := run(t, ctx, chromedp.Location()); !strings.HasSuffix(loc, "?sku="+url.QueryEscape(pick.to.SKU)) {
		t.Errorf("after choosing %s: location %q, want it to end in ?sku=%s", pick.to.SKU, loc, pick.to.SKU)
	}

	// The header search.
	do(t, ctx, chromedp.SendKeys(chromedp.ID("site-q"), pick.word))
	expectStatus(t, "search", runResponse(t, ctx, chromedp.Click(chromedp.CSS(`form.search button[type=submit]`), chromedp.NodeVisible)), 200)
	expectPath(t, ctx, "/search")
	if h1 := run(t, ctx, chromedp.Text(chromedp.CSS("main h1"))); !strings.Contains(h1, "Results for") || !strings.Contains(h1, pick.word) {
		t.Errorf("search page: h1 %q, want Results for %q", h1, pick.word)
	}
	cards := run(t, ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("ul.grid li.card")].map(c => c.innerText)`))
	if !containsFold(cards, pick.word) {
		t.Errorf("search page: none of %d cards mentions %q: %q", len(cards), pick.word, cards)
	}
	if q := run(t, ctx, chromedp.Value(chromedp.ID("site-q"))); q != pick.word {
		t.Errorf("search page: search box holds %q, want %q", q, pick.word)
	}

	// A missing product.
	expectStatus(t, "missing product", run(t, ctx, chromedp.NavigateResponse(missing)), 404)
	expectText(t, ctx, chromedp.CSS("main h1"), "Not Found")
	if msg := run(t, ctx, chromedp.Text(chromedp.CSS("section.error"))); !strings.Contains(msg, "We could not find that page") {
		t.Errorf("not-found page: text %q", msg)
	}
	do(t, ctx, chromedp.WaitVisible(chromedp.CSS(`section.error a[href="/"]`)))

	// Phone width: nothing sticks out sideways.
	do(t, ctx, chromedp.EmulateViewport(390, 844))
	expectStatus(t, "home at 390px", run(t, ctx, chromedp.NavigateResponse(shop.URL+"/")), 200)
	do(t, ctx, chromedp.WaitVisible(chromedp.CSS("ul.grid li.card")))
	l, err := browsertest.CheckLayout(ctx)
	must(t, err)
	if l.InnerWidth != 390 || !l.OK() {
		t.Errorf("home at 390px: %s", l)
	}

	if p := problems.list(); len(p) > 0 {
		t.Errorf("the browser reported problems:\n%s", strings.Join(p, "\n"))
	}
	t.Logf("browser journey took %s", time.Since(start).Round(time.Millisecond))
}

// journey is what the browser visits, chosen from the catalog so that every
// step has something to check.
type journey struct {
	category catalog.Category // a root category, as listed in the nav
	product  catalog.Product  // on the category's first page
	from, to catalog.Variant  // the variant shown first and an in-stock one at another price
	word     string           // a search word that finds a product named with it
}

// pickJourney finds the first root category whose first page lists a
// product with two in-stock variants at different prices.
func pickJourney(t *testing.T, cat *catalog.Service) journey {
	t.Helper()
	ctx := t.Context()
	tree, err := cat.Tree(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, root := range tree.Roots() {
		q, err := catalog.ParseQuery(url.Values{}) // what the category page reads with no parameters
		if err != nil {
			t.Fatal(err)
		}
		q.CategoryID = root.ID
		page, err := cat.Search(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, item := range page.Items {
			p, err := cat.Product(ctx, item.Slug)
			if err != nil {
				t.Fatal(err)
			}
			j := journey{category: root, product: p}
			var ok bool
			if j.from, j.to, ok = twoPrices(p.Variants); !ok {
				continue
			}
			if j.word = searchWord(t, cat, p.Name); j.word == "" {
				continue
			}
			return j
		}
	}
	t.Fatal("demo catalog: no listed product with two in-stock variants at different prices")
	return journey{}
}

// twoPrices returns the variant the product page selects first (the first
// in stock) and another in-stock variant with a different price.
func twoPrices(vs []catalog.Variant) (from, to catalog.Variant, ok bool) {
	i := 0
	for i < len(vs) && vs[i].Available() == 0 {
		i++
	}
	if i == len(vs) {
		return from, to, false
	}
	for _, v := range vs[i+1:] {
		if v.Available() > 0 && v.Price.String() != vs[i].Price.String() {
			return vs[i], v, true
		}
	}
	return from, to, false
}

// searchWord returns a word of name for which the shop's search finds at
// least one product whose name has it, or "".
func searchWord(t *testing.T, cat *catalog.Service, name string) string {
	t.Helper()
	for _, w := range strings.Fields(name) {
		if len(w) < 4 || strings.ContainsFunc(w, func(r rune) bool { return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z') }) {
			continue
		}
		page, err := cat.Search(t.Context(), catalog.Query{Text: w, Sort: catalog.SortRelevance, Limit: catalog.DefaultLimit})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range page.Items {
			if strings.Contains(strings.ToLower(p.Name), strings.ToLower(w)) {
				return w
			}
		}
	}
	return ""
}

// stockText is the stock line the product page shows; the template and
// app.js agree on it.
func stockText(n int64) string {
	switch {
	case n <= 0:
		return "Sold out"
	case n < 6:
		return fmt.Sprintf("Only %d left", n)
	default:
		return "In stock"
	}
}

// pageProblems collects what a shopper's browser would complain about:
// uncaught exceptions, console errors and failed responses, except for the
// one URL the test expects to fail.
type pageProblems struct {
	expected string
	mu       sync.Mutex
	seen     []string
}

// listen runs on the tab's event loop, so it only records.
func (p *pageProblems) listen(ev any) {
	var msg string
	switch ev := ev.(type) {
	case *runtime.EventExceptionThrown:
		msg = "uncaught exception: " + ev.ExceptionDetails.Text
		if ev.ExceptionDetails.Exception != nil {
			msg += " " + ev.ExceptionDetails.Exception.Description
		}
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError {
			msg = "console.error called"
		}
	case *log.EventEntryAdded:
		if ev.Entry.Level == log.EntryLevelError && ev.Entry.URL != p.expected {
			msg = "browser log: " + ev.Entry.Text + " " + ev.Entry.URL
		}
	case *network.EventResponseReceived:
		if ev.Response.Status >= 400 && ev.Response.URL != p.expected {
			msg = fmt.Sprintf("HTTP %d for %s", ev.Response.Status, ev.Response.URL)
		}
	}
	if msg != "" {
		p.mu.Lock()
		p.seen = append(p.seen, msg)
		p.mu.Unlock()
	}
}

func (p *pageProblems) list() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.seen...)
}

func expectStatus(t *testing.T, page string, resp *network.Response, want int64) {
	t.Helper()
	if resp == nil {
		t.Fatalf("%s: no response", page)
	}
	if resp.Status != want {
		t.Fatalf("%s: %s answered %d, want %d", page, resp.URL, resp.Status, want)
	}
}

func expectPath(t *testing.T, ctx context.Context, want string) {
	t.Helper()
	loc := run(t, ctx, chromedp.Location())
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	if u.Path != want {
		t.Fatalf("at %s, want path %s", loc, want)
	}
}

func expectText[S chromedp.Selectable](t *testing.T, ctx context.Context, sel S, want string) {
	t.Helper()
	if got := run(t, ctx, chromedp.Text(sel, chromedp.NodeVisible)); strings.TrimSpace(got) != want {
		t.Errorf("%v: text %q, want %q", sel, got, want)
	}
}

func containsFold(texts []string, word string) bool {
	for _, s := range texts {
		if strings.Contains(strings.ToLower(s), strings.ToLower(word)) {
			return true
		}
	}
	return false
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// do runs steps in the tab and fails the test on an error.
func do(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	must(t, chromedp.Do(ctx, steps...))
}

// run runs a in the tab and returns its value, failing the test on an error.
func run[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	must(t, err)
	return v
}

// runResponse runs steps that navigate, waits for the new page to load and
// returns the document's response.
func runResponse(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) *network.Response {
	t.Helper()
	resp, err := chromedp.RunResponse(ctx, steps...)
	must(t, err)
	return resp
}
