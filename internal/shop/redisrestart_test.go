package shop_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/surge-commerce/surge/internal/demoshop"
	"github.com/surge-commerce/surge/internal/enginetest"
	"github.com/surge-commerce/surge/internal/shop"
)

// TestRedisRestartKeepsSessionsAndOrders: a restart of the Redis that
// holds the sessions logs nobody out and hides nobody's order. Guests fill
// carts and place orders concurrently; after the restart every guest
// still has their session and cart and sees their order, and the order's
// link token opens it with no session at all, so access to an order does
// not depend on the session store.
func TestRedisRestartKeepsSessionsAndOrders(t *testing.T) {
	const guests = 16
	primary, _ := enginetest.Postgres(t)
	rs := enginetest.RestartableRedis(t)
	cfg := shop.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.DBURL, cfg.RedisURL = primary, rs.URL
	cfg.Admission, cfg.AccessLog = false, false
	cfg.WaitroomKeys = "k1:" + strings.Repeat("QUJD", 11)
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	sh, err := shop.Open(t.Context(), cfg, log, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sh.Close() })
	cats, prods := demoshop.Generate(demoshop.Options{Products: 4, Seed: 1})
	for i := range prods {
		for j := range prods[i].Variants {
			prods[i].Variants[j].OnHand = 1000
		}
	}
	if err := sh.Store.ImportCatalog(t.Context(), cats, prods); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sh.Handler)
	t.Cleanup(srv.Close)
	bought, kept := prods[0].Variants[0].SKU, prods[1].Variants[0].SKU

	type guest struct {
		client       *http.Client
		order, token string
	}
	gs := make([]guest, guests)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		failures = append(failures, fmt.Sprintf(format, args...))
	}
	for i := range gs {
		wg.Go(func() {
			jar, _ := cookiejar.New(nil)
			g := guest{client: &http.Client{Jar: jar}}
			if code, body := send(g.client, "POST", srv.URL+"/api/v1/cart/items", `{"sku":"`+bought+`","quantity":1}`, ""); code != 201 {
				fail("guest %d: add: %d %s", i, code, body)
				return
			}
			code, body := send(g.client, "POST", srv.URL+"/api/v1/checkout", `{"email":"guest@example.com",
				"shipping_address":{"name":"G Uest","line1":"1 Main St","city":"Springfield","postal_code":"1","country":"US"},
				"payment":{"card_number":"4242424242424242"}}`, fmt.Sprintf("restart-%d", i))
			var o struct {
				ID    string
				Token string `json:"access_token"`
			}
			if code != 201 || json.Unmarshal([]byte(body), &o) != nil || o.ID == "" || o.Token == "" {
				fail("guest %d: checkout: %d %s; want 201 with an order and its access_token", i, code, body)
				return
			}
			g.order, g.token = o.ID, o.Token
			// A cart started after the order, still open at the restart.
			if code, body := send(g.client, "POST", srv.URL+"/api/v1/cart/items", `{"sku":"`+kept+`","quantity":2}`, ""); code != 201 {
				fail("guest %d: add after checkout: %d %s", i, code, body)
				return
			}
			gs[i] = g
		})
	}
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("before the restart:\n%s", strings.Join(failures, "\n"))
	}

	rs.Restart(t)

	anonymous := &http.Client{}
	for i, g := range gs {
		wg.Go(func() {
			code, body := send(g.client, "GET", srv.URL+"/api/v1/cart", "", "")
			var c struct {
				Items []struct {
					SKU      string
					Quantity int64
				}
			}
			if code != 200 || json.Unmarshal([]byte(body), &c) != nil || len(c.Items) != 1 || c.Items[0].SKU != kept || c.Items[0].Quantity != 2 {
				fail("guest %d: cart after the restart: %d %s; want their 2 x %s", i, code, body, kept)
			}
			if code, body := send(g.client, "GET", srv.URL+"/api/v1/orders/"+g.order, "", ""); code != 200 || !strings.Contains(body, g.order) {
				fail("guest %d: own order by session after the restart: %d %s", i, code, body)
			}
			if code, body := send(anonymous, "GET", srv.URL+"/orders/"+g.order+"?token="+g.token, "", ""); code != 200 || !strings.Contains(body, "Order #") {
				fail("guest %d: order page by its link, no session: %d", i, code)
			} else if !strings.Contains(body, "?token="+g.token) {
				fail("guest %d: the order page does not show its link", i)
			}
			if code, body := send(anonymous, "GET", srv.URL+"/api/v1/orders/"+g.order+"?token="+g.token, "", ""); code != 200 || !strings.Contains(body, g.order) {
				fail("guest %d: order by its link in the API, no session: %d %s", i, code, body)
			}
			// The token opens its own order only, and nothing opens an
			// order without it.
			other := gs[(i+1)%len(gs)]
			for _, path := range []string{"/api/v1/orders/" + g.order, "/api/v1/orders/" + g.order + "?token=" + other.token,
				"/api/v1/orders/" + g.order + "?token=" + strings.ToLower(g.token), "/orders/" + g.order + "?token="} {
				if code, _ := send(anonymous, "GET", srv.URL+path, "", ""); code != 404 {
					fail("guest %d: GET %s without session or with a wrong token: %d, want 404", i, path, code)
				}
			}
		})
	}
	wg.Wait()
	if len(failures) > 0 {
		t.Errorf("after the restart:\n%s", strings.Join(failures, "\n"))
	}
}

// send makes one JSON request, with an Idempotency-Key when key is set,
// and returns the status and body; a transport error is status 0.
func send(c *http.Client, method, url, body, key string) (int, string) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return 0, err.Error()
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
