package storefront_test

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/surge-commerce/surge/internal/drop"
)

// rawTime matches a machine timestamp (RFC 3339) in text meant for people.
var rawTime = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d`)

// visibleText is an HTML page's text without its tags and attributes.
func visibleText(html string) string {
	html = regexp.MustCompile(`(?s)<(script|style)[^>]*>.*?</(script|style)>`).ReplaceAllString(html, " ")
	html = regexp.MustCompile(`(?s)<[^>]*>`).ReplaceAllString(html, " ")
	return strings.Join(strings.Fields(html), " ")
}

func createRunnerDrop(t *testing.T, admin *jarClient, slug string, starts time.Time) drop.Drop {
	t.Helper()
	body := fmt.Sprintf(`{"name":"Runner One drop","slug":%q,"starts_at":%q,"per_customer_limit":2,
		"items":[{"sku":"RUN-42","allocated":6},{"sku":"RUN-43","allocated":6}],"room":{"rate_per_minute":6000,"max_active":1000,"prequeue_opens":"15m"}}`,
		slug, starts.Format(time.RFC3339))
	st, out := admin.do("POST", "/api/v1/admin/drops", body, "Authorization", "Bearer "+apiTestToken)
	if st != 201 {
		t.Fatalf("create drop: %d %s", st, out)
	}
	var d drop.Drop
	must(t, json.Unmarshal([]byte(out), &d))
	return d
}

// TestUpcomingDropPages: an upcoming drop is on the /drops index (linked
// from the header of every page) under "Coming up"; its page shows the
// product's picture, price and sizes, the limit and the start as a
// person reads it; the product's own page says when it drops and links
// to the line instead of "In stock"; and adding it to a cart outside the
// line is refused in plain words naming the drop and linking to its
// page, on the form path and in the API's problem, with no raw
// timestamp or path in the words.
func TestUpcomingDropPages(t *testing.T) {
	clock := &dropClock{t: time.Now()}
	sh := scriptedShop(t, clock)
	admin := &jarClient{h: sh.Handler, cookies: map[string]string{}}
	start := time.Date(2030, 5, 3, 18, 0, 0, 0, time.UTC) // a Friday
	d := createRunnerDrop(t, admin, "runner-one-drop", start)

	shopper := &jarClient{h: sh.Handler, cookies: map[string]string{}}
	st, home := shopper.do("GET", "/", "")
	if st != 200 || !strings.Contains(home, `href="/drops"`) {
		t.Errorf("home: %d, no link to /drops", st)
	}
	st, index := shopper.do("GET", "/drops", "")
	if st != 200 || !strings.Contains(index, "Coming up") || !strings.Contains(index, `href="/drops/runner-one-drop"`) ||
		!strings.Contains(index, "Friday 3 May, 18:00 UTC") {
		t.Errorf("/drops: %d\n%s", st, index)
	}
	st, page := shopper.do("GET", "/drops/"+d.Slug, "")
	text := visibleText(page)
	for _, want := range []string{"Runner One", "$160.00", "42", "43", "Limit 2 per customer", "Starts", "Friday 3 May, 18:00 UTC", "Join the line"} {
		if !strings.Contains(text, want) {
			t.Errorf("drop page does not show %q", want)
		}
	}
	if st != 200 || !strings.Contains(page, `<img src="/images/products/runner-one/1.svg"`) {
		t.Errorf("drop page: %d, no product picture", st)
	}
	if rawTime.MatchString(text) {
		t.Errorf("drop page shows a raw timestamp: %s", rawTime.FindString(text))
	}

	st, product := shopper.do("GET", "/products/runner-one", "")
	ptext := visibleText(product)
	if st != 200 || !strings.Contains(ptext, "Drops Friday 3 May, 18:00 UTC") || !strings.Contains(product, `href="/drops/runner-one-drop"`) ||
		strings.Contains(ptext, "In stock") || strings.Contains(product, `action="/cart/items"`) {
		t.Errorf("product page of a drop SKU: %d\n%s", st, ptext)
	}

	// The form path: back to the cart with the shop's sentence.
	r := httptest.NewRequest("POST", "/cart/items", strings.NewReader("sku=RUN-42&quantity=1"))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	w := httptest.NewRecorder()
	sh.Handler.ServeHTTP(w, r)
	loc := w.Header().Get("Location")
	if w.Code != 303 || loc != "/cart?problem=no-access&drop=runner-one-drop" {
		t.Fatalf("add outside the line: %d to %q", w.Code, loc)
	}
	st, cartPage := shopper.do("GET", loc, "")
	ctext := visibleText(cartPage)
	if st != 200 || !strings.Contains(ctext, "Runner One drop") || !strings.Contains(ctext, "starts Friday 3 May, 18:00 UTC") ||
		!strings.Contains(cartPage, `<a href="/drops/runner-one-drop">`) || rawTime.MatchString(ctext) || strings.Contains(ctext, "/drops/") {
		t.Errorf("cart page after the refused add: %d\n%s", st, ctext)
	}
	// A made-up drop in the link names nothing.
	if _, p := shopper.do("GET", "/cart?problem=no-access&drop="+url.QueryEscape("free-stuff"), ""); strings.Contains(p, "free-stuff") {
		t.Error("the cart page repeats a drop the shop does not have")
	}

	// The API: 403 no-access, the words in detail, the link beside them.
	st, out := shopper.do("POST", "/api/v1/cart/items", `{"sku":"RUN-43","quantity":1}`)
	var p struct {
		Type, Detail string
		Status       int
		Drop         struct{ Slug, Name, URL string }
	}
	must(t, json.Unmarshal([]byte(out), &p))
	if st != 403 || !strings.HasSuffix(p.Type, "#no-access") || p.Drop.URL != "/drops/runner-one-drop" || p.Drop.Name != "Runner One drop" {
		t.Errorf("API add outside the line: %d %s", st, out)
	}
	if !strings.Contains(p.Detail, "Runner One (43)") || !strings.Contains(p.Detail, "starts Friday 3 May, 18:00 UTC") ||
		rawTime.MatchString(p.Detail) || strings.Contains(p.Detail, "/") {
		t.Errorf("detail is not plain words: %q", p.Detail)
	}
}

// TestLiveDropPageUnitsLeft: a live drop's page shows the units left,
// is served from the page cache, and is purged when the line reads a new
// stock level, so it is never staler than the line's own status.
func TestLiveDropPageUnitsLeft(t *testing.T) {
	clock := &dropClock{t: time.Now()}
	sh := scriptedShop(t, clock)
	admin := &jarClient{h: sh.Handler, cookies: map[string]string{}}
	d := createRunnerDrop(t, admin, "runner-live", time.Now().Add(-time.Minute))
	joiner := func(i int) {
		c := &jarClient{h: sh.Handler, cookies: map[string]string{}, addr: fmt.Sprintf("127.0.9.%d:1", i)}
		if st, out := c.do("POST", "/api/v1/drops/"+d.ID+"/queue/join", ""); st != 200 {
			t.Fatalf("join: %d %s", st, out)
		}
	}
	joiner(1) // the line reads the stock: 12 left

	get := func() (string, string) {
		w := serveReq(sh.Handler, "GET", "/drops/"+d.Slug, "")
		if w.Code != 200 {
			t.Fatalf("drop page: %d", w.Code)
		}
		return w.Header().Get("X-Cache"), visibleText(w.Body.String())
	}
	if _, text := get(); !strings.Contains(text, "12 of 12") || !strings.Contains(text, "live") {
		t.Fatalf("live drop page does not say 12 of 12 left:\n%s", text)
	}
	if hit, _ := get(); hit != "HIT" {
		t.Fatalf("live drop page not cached: X-Cache %q", hit)
	}
	if st, out := admin.do("PUT", "/api/v1/admin/variants/RUN-42/stock", `{"on_hand": 2}`, "Authorization", "Bearer "+apiTestToken); st != 200 {
		t.Fatalf("set stock: %d %s", st, out)
	}
	// The line reads the stock again once its cached answer is older
	// than its TTL: then the page is purged.
	clock.Add(time.Second)
	joiner(2)
	hit, text := get()
	if hit == "HIT" || !strings.Contains(text, "8 of 12") {
		t.Errorf("after the line saw 8 left: X-Cache %q\n%s", hit, text)
	}
}
