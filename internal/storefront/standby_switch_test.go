package storefront_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/surge-commerce/surge/internal/catalog"
	"github.com/surge-commerce/surge/internal/demoshop"
	"github.com/surge-commerce/surge/internal/shop"
	"github.com/surge-commerce/surge/internal/waitroom"
)

// openStandbyShop opens a shop with the standby line configured (off:
// no load turns it on in a test) and n demo products.
func openStandbyShop(t *testing.T, standby bool, n int) (*shop.Shop, []catalog.Product) {
	t.Helper()
	ctx := context.Background()
	cfg := shop.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.AdminToken = apiTestToken
	cfg.Admission = false
	cfg.Standby, cfg.StandbyOnActive, cfg.StandbyRate, cfg.StandbyMaxActive = standby, 10_000, 600, 1000
	sh, err := shop.Open(ctx, cfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sh.Close() })
	cats, prods := demoshop.Generate(demoshop.Options{Products: n})
	if err := sh.Store.ImportCatalog(ctx, cats, prods); err != nil {
		t.Fatal(err)
	}
	return sh, prods
}

// send is jarClient.do that also returns the response's headers.
func (c *jarClient) send(method, path, body string, hdr ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	for k, v := range c.cookies {
		r.AddCookie(&http.Cookie{Name: k, Value: v})
	}
	r.RemoteAddr = c.addr
	w := httptest.NewRecorder()
	c.h.ServeHTTP(w, r)
	for _, ck := range w.Result().Cookies() {
		if ck.MaxAge < 0 {
			delete(c.cookies, ck.Name)
		} else {
			c.cookies[ck.Name] = ck.Value
		}
	}
	return w
}

type standbyState struct {
	Mode     string `json:"mode"`
	On       bool   `json:"on"`
	Since    string `json:"since"`
	Episodes int    `json:"episodes"`
}

// TestStandbyAdminSwitch: an operator holds the standby line on by hand
// (new visitors wait at once, whatever the load), hands it back to the
// load, or holds it off; only with the admin token, only a known mode.
func TestStandbyAdminSwitch(t *testing.T) {
	sh, prods := openStandbyShop(t, true, 5)
	page := "/products/" + prods[0].Slug
	auth := []string{"Authorization", "Bearer " + apiTestToken}
	state := func(r *httptest.ResponseRecorder) standbyState {
		t.Helper()
		var st standbyState
		if r.Code != 200 || json.Unmarshal(r.Body.Bytes(), &st) != nil {
			t.Fatalf("standby state: %d %s", r.Code, r.Body)
		}
		return st
	}
	if st := state(serveReq(sh.Handler, "GET", "/api/v1/admin/standby", "", auth...)); st.Mode != "auto" || st.On || st.Episodes != 0 || st.Since != "" {
		t.Fatalf("at start: %+v", st)
	}
	if r := serveReq(sh.Handler, "GET", page, ""); r.Code != 200 {
		t.Fatalf("page with the line off: %d", r.Code)
	}
	set := func(body string, hdr ...string) *httptest.ResponseRecorder {
		return serveReq(sh.Handler, "PUT", "/api/v1/admin/standby", body, append([]string{"Content-Type", "application/json"}, hdr...)...)
	}
	if st := state(set(`{"mode":"on"}`, auth...)); st.Mode != "on" || !st.On || st.Episodes != 1 || st.Since == "" {
		t.Fatalf("held on: %+v", st)
	}
	if r := serveReq(sh.Handler, "GET", page, ""); r.Code != 303 || !strings.HasPrefix(r.Header().Get("Location"), "/queue?next=") {
		t.Fatalf("page with the line held on: %d %s", r.Code, r.Header().Get("Location"))
	}
	if st := state(set(`{"mode":"auto"}`, auth...)); st.Mode != "auto" || !st.On {
		t.Fatalf("back to auto: %+v: want on until the load has been calm a minute", st)
	}
	if st := state(set(`{"mode":"off"}`, auth...)); st.Mode != "off" || st.On || st.Episodes != 1 {
		t.Fatalf("held off: %+v", st)
	}
	if r := serveReq(sh.Handler, "GET", page, ""); r.Code != 200 {
		t.Fatalf("page with the line held off: %d", r.Code)
	}
	for _, tc := range []struct {
		body   string
		hdr    []string
		status int
	}{
		{`{"mode":"on"}`, nil, 401},
		{`{"mode":"on"}`, []string{"Authorization", "Bearer wrong-token-wrong-token"}, 401},
		{`{"mode":"sometimes"}`, auth, 400},
		{`{"mode":"` + strings.Repeat("x", 5000) + `"}`, auth, 400},
		{`{"mode":"on","rate":5}`, auth, 400},
		{`{}`, auth, 400},
		{`not json`, auth, 400},
	} {
		r := set(tc.body, tc.hdr...)
		if r.Code != tc.status || !strings.HasPrefix(r.Header().Get("Content-Type"), "application/problem+json") {
			t.Errorf("PUT %.60s: %d %s, want %d and a problem", tc.body, r.Code, r.Header().Get("Content-Type"), tc.status)
		}
		if len(r.Body.String()) > 2000 {
			t.Errorf("PUT %.60s: a %d-byte answer echoes the input", tc.body, r.Body.Len())
		}
	}
	if st := state(serveReq(sh.Handler, "GET", "/api/v1/admin/standby", "", auth...)); st.Mode != "off" {
		t.Fatalf("after refused changes: %+v", st)
	}

	// A shop without the line says so.
	plain, _ := openStandbyShop(t, false, 1)
	if r := serveReq(plain.Handler, "PUT", "/api/v1/admin/standby", `{"mode":"on"}`, append([]string{"Content-Type", "application/json"}, auth...)...); r.Code != 404 ||
		!strings.Contains(r.Body.String(), "--standby") {
		t.Fatalf("switch without a line: %d %s", r.Code, r.Body)
	}
}

// TestStandbyHeldFormPost: a form post the line holds (add to cart) sends
// the visitor, once admitted, back to the page of the form, where they
// send it again; not to a GET of the post's own address, which only takes
// posts.
func TestStandbyHeldFormPost(t *testing.T) {
	sh, prods := openStandbyShop(t, true, 5)
	page := "/products/" + prods[0].Slug
	sku := prods[0].Variants[0].SKU
	if err := sh.Standby.SetMode("on"); err != nil {
		t.Fatal(err)
	}
	b := &jarClient{h: sh.Handler, cookies: map[string]string{}, addr: "127.0.0.11:5000"}
	form := []string{"Content-Type", "application/x-www-form-urlencoded", "Referer", "http://example.com" + page}
	r := b.send("POST", "/cart/items", "sku="+url.QueryEscape(sku)+"&quantity=1", form...)
	if want := "/queue?next=" + url.QueryEscape(page); r.Code != 303 || r.Header().Get("Location") != want {
		t.Fatalf("held post: %d %q, want 303 to %q", r.Code, r.Header().Get("Location"), want)
	}
	// The line is short: the visitor is let in and sent to the product page.
	r = b.send("GET", r.Header().Get("Location"), "")
	if r.Code != 303 || r.Header().Get("Location") != page {
		t.Fatalf("line: %d %q", r.Code, r.Header().Get("Location"))
	}
	if r := b.send("GET", page, ""); r.Code != 200 {
		t.Fatalf("admitted visitor on the form's page: %d", r.Code)
	}
	if r := b.send("POST", "/cart/items", "sku="+url.QueryEscape(sku)+"&quantity=1", form...); r.Code != 303 || !strings.HasPrefix(r.Header().Get("Location"), "/cart") {
		t.Fatalf("the post sent again: %d %q", r.Code, r.Header().Get("Location"))
	}
	// A post from another site's page, or with no Referer, goes home.
	for _, ref := range []string{"https://elsewhere.example" + page, "", "http://example.com//evil.example/x"} {
		other := &jarClient{h: sh.Handler, cookies: map[string]string{}, addr: "127.0.0.12:5000"}
		r := other.send("POST", "/cart/items", "sku=x", "Content-Type", "application/x-www-form-urlencoded", "Referer", ref)
		if r.Code != 303 || r.Header().Get("Location") != "/queue?next=%2F" {
			t.Errorf("held post from %q: %d %q, want the line then home", ref, r.Code, r.Header().Get("Location"))
		}
	}
}

// TestStandbyKeepsShoppersMidCheckout: shoppers with a cart when the line
// turns on are already shopping: their checkout goes through, by the API
// or by the checkout form, concurrently, each exactly once; visitors
// arriving after still wait.
func TestStandbyKeepsShoppersMidCheckout(t *testing.T) {
	sh, prods := openStandbyShop(t, true, 10)
	const shoppers = 8
	clients := make([]*jarClient, shoppers)
	for i := range clients {
		c := &jarClient{h: sh.Handler, cookies: map[string]string{}, addr: "127.0.1." + string(rune('1'+i)) + ":5000"}
		p := prods[i%len(prods)]
		if st, body := c.do("POST", "/api/v1/cart/items", `{"sku":"`+p.Variants[0].SKU+`","quantity":1}`); st/100 != 2 {
			t.Fatalf("add before the line: %d %s", st, body)
		}
		clients[i] = c
	}
	if err := sh.Standby.SetMode("on"); err != nil {
		t.Fatal(err)
	}
	// A visitor arriving now waits, by the API and by pages.
	late := &jarClient{h: sh.Handler, cookies: map[string]string{}, addr: "127.0.2.1:5000"}
	if st, _ := late.do("GET", "/api/v1/products", ""); st != 503 {
		t.Fatalf("new API visitor with the line on: %d", st)
	}
	if st, _ := late.do("GET", "/cart", ""); st != 303 {
		t.Fatalf("new visitor's page with the line on: %d", st)
	}
	var wg sync.WaitGroup
	codes := make([]int, shoppers)
	orders := make([]string, shoppers)
	for i, c := range clients {
		wg.Go(func() {
			if i%2 == 0 {
				var body string
				codes[i], body = c.do("POST", "/api/v1/checkout", `{"email":"a@example.com","shipping_address":{"name":"A","line1":"1 St","city":"C","postal_code":"1","country":"US"},"payment":{"card_number":"4242424242424242"}}`,
					"Idempotency-Key", "k-"+string(rune('a'+i)))
				orders[i] = between(body, `"id":"`, `"`)
				return
			}
			// The checkout form, as a browser sends it.
			st, body := c.do("GET", "/checkout", "")
			if st != 200 {
				codes[i] = -st // held before the form
				return
			}
			csrf := between(body, `name="csrf" value="`, `"`)
			key := between(body, `name="idempotency_key" value="`, `"`)
			form := url.Values{"csrf": {csrf}, "idempotency_key": {key}, "email": {"b@example.com"}, "name": {"B"}, "line1": {"1 St"},
				"city": {"C"}, "postal_code": {"1"}, "country": {"US"}, "card_number": {"4242424242424242"}}
			r := c.send("POST", "/checkout", form.Encode(), "Content-Type", "application/x-www-form-urlencoded")
			codes[i] = r.Code
			loc := r.Header().Get("Location")
			if r.Code == 303 && !strings.HasPrefix(loc, "/orders/") {
				codes[i] = 0
			}
			orders[i], _, _ = strings.Cut(strings.TrimPrefix(loc, "/orders/"), "?")
		})
	}
	wg.Wait()
	for i, c := range codes {
		if (i%2 == 0 && c != 201 && c != 200) || (i%2 == 1 && c != 303) {
			t.Errorf("shopper %d mid-checkout when the line came on: %d", i, c)
		}
	}
	distinct := map[string]bool{}
	for _, id := range orders {
		if id != "" {
			if _, err := sh.Store.Order(context.Background(), id); err != nil {
				t.Errorf("order %s: %v", id, err)
			}
			distinct[id] = true
		}
	}
	if len(distinct) != shoppers {
		t.Errorf("orders %v: want %d placed", orders, shoppers)
	}
}

func between(s, from, to string) string {
	_, rest, _ := strings.Cut(s, from)
	v, _, _ := strings.Cut(rest, to)
	return v
}

// TestStandbyAdmittedThroughNextEpisode: a visitor the line let in keeps
// shopping when the line goes off and comes on again (a second wave, a
// fresh queue), rather than being sent back to it; a new visitor waits.
func TestStandbyAdmittedThroughNextEpisode(t *testing.T) {
	sh, prods := openStandbyShop(t, true, 5)
	page := "/products/" + prods[0].Slug
	if err := sh.Standby.SetMode("on"); err != nil {
		t.Fatal(err)
	}
	b := &jarClient{h: sh.Handler, cookies: map[string]string{}, addr: "127.0.0.13:5000"}
	r := b.send("GET", page, "")
	if r.Code != 303 {
		t.Fatalf("page with the line on: %d", r.Code)
	}
	if r := b.send("GET", r.Header().Get("Location"), ""); r.Code != 303 || r.Header().Get("Location") != page {
		t.Fatalf("line: %d %q: want let in", r.Code, r.Header().Get("Location"))
	}
	if r := b.send("GET", page, ""); r.Code != 200 {
		t.Fatalf("admitted: %d", r.Code)
	}
	for _, m := range []waitroomMode{"off", "on"} {
		if err := sh.Standby.SetMode(m); err != nil {
			t.Fatal(err)
		}
	}
	if sh.Standby.Episode() != 2 {
		t.Fatalf("episode %d: want a second", sh.Standby.Episode())
	}
	if r := b.send("GET", page, ""); r.Code != 200 {
		t.Fatalf("admitted shopper in the second episode: %d %q: want still shopping", r.Code, r.Header().Get("Location"))
	}
	other := &jarClient{h: sh.Handler, cookies: map[string]string{}, addr: "127.0.0.14:5000"}
	if r := other.send("GET", page, ""); r.Code != 303 {
		t.Fatalf("new visitor in the second episode: %d", r.Code)
	}
}

type waitroomMode = waitroom.StandbyMode
