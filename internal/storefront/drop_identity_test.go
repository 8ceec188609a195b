package storefront_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/surge-commerce/surge/internal/catalog"
	"github.com/surge-commerce/surge/internal/drop"
	"github.com/surge-commerce/surge/internal/money"
	"github.com/surge-commerce/surge/internal/shop"
)

// liveDrop is a shop with one drop under way: its line admits at once.
type liveDrop struct {
	sh   *shop.Shop
	drop drop.Drop
	skus []string
}

// openLiveDrop starts a shop selling skus (10 units each) in a drop that
// started a second ago with a per-customer limit of limit.
func openLiveDrop(t *testing.T, limit int, skus ...string) liveDrop {
	t.Helper()
	return openDrop(t, -time.Second, limit, skus...)
}

// openDrop is openLiveDrop for a drop starting startIn from now, its line
// open two hours before.
func openDrop(t *testing.T, startIn time.Duration, limit int, skus ...string) liveDrop {
	t.Helper()
	ctx := t.Context()
	sh := openShop(t, 0, apiTestToken)
	c, err := sh.Store.CreateCategory(ctx, catalog.Category{Slug: "drops", Name: "Drops"})
	if err != nil {
		t.Fatal(err)
	}
	var variants []catalog.Variant
	var items []string
	for _, sku := range skus {
		variants = append(variants, catalog.Variant{SKU: sku, Options: []catalog.Option{{Name: "Size", Value: sku}}, Price: money.Money{Amount: 12000, Currency: "USD"}, OnHand: 10})
		items = append(items, fmt.Sprintf(`{"sku":%q,"allocated":10}`, sku))
	}
	if _, err := sh.Store.CreateProduct(ctx, catalog.Product{Slug: "runner", Name: "Runner", Status: catalog.StatusActive, CategoryID: c.ID,
		Variants: variants}); err != nil {
		t.Fatal(err)
	}
	admin := &jarClient{h: sh.Handler, cookies: map[string]string{}}
	body := fmt.Sprintf(`{"name":"Runner","slug":"runner","starts_at":%q,"per_customer_limit":%d,"items":[%s],
		"room":{"rate_per_minute":6000,"prequeue_opens":"2h"}}`,
		time.Now().Add(startIn).UTC().Format(time.RFC3339Nano), limit, strings.Join(items, ","))
	st, out := admin.do("POST", "/api/v1/admin/drops", body, "Authorization", "Bearer "+apiTestToken)
	if st != 201 {
		t.Fatalf("create drop: %d %s", st, out)
	}
	var d drop.Drop
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatal(err)
	}
	return liveDrop{sh: sh, drop: d, skus: skus}
}

func (ld liveDrop) client(addr string) *jarClient {
	return &jarClient{h: ld.sh.Handler, cookies: map[string]string{}, addr: addr}
}

// queueAnswer is the part of a status the tests read.
type queueAnswer struct {
	State    string `json:"state"`
	Position uint64 `json:"position"`
}

// queue calls a waiting-room route that answers a status.
func (c *jarClient) queue(t *testing.T, method, path string) queueAnswer {
	t.Helper()
	st, body := c.do(method, path, "")
	var q queueAnswer
	if st != 200 || json.Unmarshal([]byte(body), &q) != nil {
		t.Fatalf("%s %s: %d %s", method, path, st, body)
	}
	return q
}

// TestForgedVisitorCookieIsNobody: a guest who puts a customer's visitor
// ID (c:<id>) in the surge_visitor cookie, with no session, acts as a new
// guest of their own on every waiting-room route: they neither take the
// customer's place, nor read it, nor give it up.
func TestForgedVisitorCookieIsNobody(t *testing.T) {
	ld := openLiveDrop(t, 2, "RUN-42")
	q := "/api/v1/drops/" + ld.drop.ID + "/queue"

	customer := ld.client("192.0.2.1:1000")
	st, out := customer.do("POST", "/api/v1/customers", `{"email":"ann@example.com","password":"correct horse","name":"Ann"}`)
	if st != 201 {
		t.Fatalf("sign up: %d %s", st, out)
	}
	var c struct{ ID int64 }
	_ = json.Unmarshal([]byte(out), &c)
	mine := customer.queue(t, "POST", q+"/join")
	if mine.State != "admitted" {
		t.Fatalf("customer's join: %+v, want admitted", mine)
	}

	forged := fmt.Sprintf("c:%d", c.ID)
	attacker := ld.client("198.51.100.7:1000")
	attacker.cookies["surge_visitor"] = forged
	theirs := attacker.queue(t, "POST", q+"/join")
	if theirs.Position == mine.Position {
		t.Errorf("a forged visitor cookie joined at the customer's place %d", mine.Position)
	}
	if attacker.cookies["surge_visitor"] == forged {
		t.Error("the forged visitor cookie was kept; want a new signed guest cookie")
	}

	// With the customer's ticket too, a forged cookie reads nothing.
	for _, path := range []string{q, q + "/stream"} {
		a := ld.client("198.51.100.8:1000")
		a.cookies["surge_visitor"] = forged
		a.cookies["surge_wr_"+ld.drop.ID] = customer.cookies["surge_wr_"+ld.drop.ID]
		if st, body := a.do("GET", path, ""); st != 401 {
			t.Errorf("GET %s with the customer's ticket and a forged visitor: %d %s, want 401", path, st, body)
		}
	}

	// Leaving the line with a forged cookie gives up nobody's place.
	a := ld.client("198.51.100.9:1000")
	a.cookies["surge_visitor"] = forged
	if st, body := a.do("DELETE", q, ""); st != 204 {
		t.Fatalf("leave: %d %s", st, body)
	}
	if now := customer.queue(t, "GET", q); now.State != "admitted" {
		t.Errorf("the customer's place after a forged leave: %+v, want still admitted", now)
	}
}

// sessionsStored counts the sessions in the shop's database.
func sessionsStored(t *testing.T, sh *shop.Shop) int {
	t.Helper()
	var n int
	if err := sh.Store.Writer().QueryRowContext(t.Context(), `SELECT count(*) FROM sessions`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// firstEvent is a response writer that ends the request once the handler
// flushes its first event.
type firstEvent struct {
	*httptest.ResponseRecorder
	cancel context.CancelFunc
}

func (f firstEvent) Flush() {
	f.ResponseRecorder.Flush()
	f.cancel()
}

// TestRefusedStreamStoresNothing: opening the status stream costs no
// session write, whether it is refused (unknown drop, no ticket, a forged
// one) or streams a place in line; only an answer that admits keeps one.
func TestRefusedStreamStoresNothing(t *testing.T) {
	ld := openDrop(t, time.Hour, 2, "RUN-42")
	stream := "/api/v1/drops/" + ld.drop.ID + "/queue/stream"
	for name, tc := range map[string]struct {
		path    string
		cookies map[string]string
		want    int
	}{
		"unknown drop":               {"/api/v1/drops/drop_nope/queue/stream", nil, 401},
		"unknown drop with a ticket": {"/api/v1/drops/drop_nope/queue/stream", map[string]string{"surge_wr_drop_nope": "k.x.y"}, 404},
		"no ticket":                  {stream, nil, 401},
		"forged ticket":              {stream, map[string]string{"surge_wr_" + ld.drop.ID: "local1.AQE.AAAA"}, 401},
	} {
		c := ld.client("192.0.2.1:1000")
		for k, v := range tc.cookies {
			c.cookies[k] = v
		}
		if st, body := c.do("GET", tc.path, ""); st != tc.want {
			t.Errorf("%s: %d %s, want %d", name, st, body, tc.want)
		}
		if c.cookies["surge_session"] != "" {
			t.Errorf("%s: a session cookie was set", name)
		}
	}
	if n := sessionsStored(t, ld.sh); n != 0 {
		t.Fatalf("%d sessions stored by refused streams", n)
	}

	// A guest in the pre-queue streams their place without a session.
	guest := ld.client("192.0.2.2:1000")
	if q := guest.queue(t, "POST", "/api/v1/drops/"+ld.drop.ID+"/queue/join"); q.State != "pre_queue" {
		t.Fatalf("join: %+v, want pre_queue", q)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	r := httptest.NewRequestWithContext(ctx, "GET", stream, nil)
	for k, v := range guest.cookies {
		r.AddCookie(&http.Cookie{Name: k, Value: v})
	}
	w := firstEvent{httptest.NewRecorder(), cancel}
	ld.sh.Handler.ServeHTTP(w, r)
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"state":"pre_queue"`) {
		t.Fatalf("stream: %d %s", w.Code, w.Body)
	}
	if n := sessionsStored(t, ld.sh); n != 0 {
		t.Errorf("%d sessions stored by a stream of a visitor in line", n)
	}
}

// cartUnits is how many units of sku the client's cart holds.
func cartUnits(t *testing.T, c *jarClient, sku string) int64 {
	t.Helper()
	st, body := c.do("GET", "/api/v1/cart", "")
	var cart struct {
		Items []struct {
			SKU      string `json:"sku"`
			Quantity int64  `json:"quantity"`
		} `json:"items"`
	}
	if st != 200 || json.Unmarshal([]byte(body), &cart) != nil {
		t.Fatalf("cart: %d %s", st, body)
	}
	n := int64(0)
	for _, it := range cart.Items {
		if it.SKU == sku {
			n += it.Quantity
		}
	}
	return n
}

// TestCartHoldsNoMoreThanTheDropAllows: whatever route changes a drop
// SKU's quantity (add, change, the cart page's form, the merge at
// sign-in), the cart never holds more than the per-customer limit, and
// raising a line after leaving the line needs access again.
func TestCartHoldsNoMoreThanTheDropAllows(t *testing.T) {
	ld := openLiveDrop(t, 2, "RUN-42", "RUN-43")
	q := "/api/v1/drops/" + ld.drop.ID + "/queue"
	item := "/api/v1/cart/items/RUN-42"

	b := ld.client("192.0.2.10:1000")
	if st := b.queue(t, "POST", q+"/join"); st.State != "admitted" {
		t.Fatalf("join: %+v", st)
	}
	if st, body := b.do("POST", "/api/v1/cart/items", `{"sku":"RUN-42","quantity":1}`); st != 201 {
		t.Fatalf("add: %d %s", st, body)
	}
	for _, tc := range []struct {
		body string
		want int
	}{{`{"quantity":9}`, 422}, {`{"quantity":3}`, 422}} {
		if st, body := b.do("PATCH", item, tc.body); st != tc.want {
			t.Errorf("PATCH %s with access: %d %s, want %d", tc.body, st, body, tc.want)
		}
	}
	if st, body := b.do("POST", "/api/v1/cart/items", `{"sku":"RUN-43","quantity":1}`); st != 201 {
		t.Fatalf("add the drop's other SKU: %d %s", st, body)
	}
	if st, body := b.do("PATCH", item, `{"quantity":2}`); st != 422 {
		t.Errorf("PATCH to 2 beside one of the drop's other SKU: %d %s, want 422", st, body)
	}

	if st, body := b.do("DELETE", q, ""); st != 204 {
		t.Fatalf("leave: %d %s", st, body)
	}
	if st, body := b.do("DELETE", "/api/v1/cart/items/RUN-43", ""); st != 200 {
		t.Fatalf("remove after leaving: %d %s", st, body)
	}
	for _, body := range []string{`{"quantity":9}`, `{"quantity":2}`} {
		if st, out := b.do("PATCH", item, body); st < 400 || st >= 500 {
			t.Errorf("PATCH %s after leaving the line: %d %s, want a refusal", body, st, out)
		}
	}
	if st, out := b.do("POST", "/cart/items/RUN-42", "quantity=5", "Content-Type", "application/x-www-form-urlencoded",
		"Sec-Fetch-Site", "same-origin"); st != 303 {
		t.Errorf("cart page form: %d %s", st, out)
	}
	if n := cartUnits(t, b, "RUN-42"); n != 1 {
		t.Errorf("the cart holds %d of RUN-42 after raises without access, want 1", n)
	}
	if st, out := b.do("PATCH", item, `{"quantity":0}`); st != 200 {
		t.Errorf("removing a drop line without access: %d %s", st, out)
	}

	// Two carts of two each, merged at sign-in, hold two.
	ann := ld.client("192.0.2.11:1000")
	if st, out := ann.do("POST", "/api/v1/customers", `{"email":"ann@example.com","password":"correct horse","name":"Ann"}`); st != 201 {
		t.Fatalf("sign up: %d %s", st, out)
	}
	ann.queue(t, "POST", q+"/join")
	if st, out := ann.do("POST", "/api/v1/cart/items", `{"sku":"RUN-42","quantity":2}`); st != 201 {
		t.Fatalf("customer's add: %d %s", st, out)
	}
	if st, out := ann.do("DELETE", "/api/v1/sessions/current", ""); st != 204 {
		t.Fatalf("sign out: %d %s", st, out)
	}
	if st := ann.queue(t, "POST", q+"/join"); st.State != "admitted" {
		t.Fatalf("guest join: %+v", st)
	}
	if st, out := ann.do("POST", "/api/v1/cart/items", `{"sku":"RUN-42","quantity":2}`); st != 201 {
		t.Fatalf("guest add: %d %s", st, out)
	}
	if st, out := ann.do("POST", "/api/v1/sessions", `{"email":"ann@example.com","password":"correct horse"}`); st != 200 {
		t.Fatalf("sign in: %d %s", st, out)
	}
	if n := cartUnits(t, ann, "RUN-42"); n != 2 {
		t.Errorf("the merged cart holds %d of RUN-42, want the limit of 2", n)
	}
}
