package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"
	"time"
)

// client is a shopper with a cookie jar.
type client struct {
	t   *testing.T
	c   *http.Client
	url string
}

func newClient(t *testing.T, url string) *client {
	jar, _ := cookiejar.New(nil)
	return &client{t, &http.Client{Jar: jar, Timeout: 30 * time.Second}, url}
}

func (c *client) do(method, path, body string, hdr ...string) (int, string) {
	c.t.Helper()
	req, _ := http.NewRequest(method, c.url+path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.c.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// firstInStockSKU finds a SKU with at least n units available.
func firstInStockSKU(t *testing.T, s *runningShop, n int64) string {
	t.Helper()
	var page struct {
		Items []struct{ Slug string }
	}
	mustJSON(t, do(t, "GET", s.URL+"/api/v1/products?in_stock=true&limit=50", "", ""), 200, &page)
	for _, it := range page.Items {
		var p struct {
			Variants []struct {
				SKU       string `json:"sku"`
				Available int64  `json:"available"`
			}
		}
		mustJSON(t, do(t, "GET", s.URL+"/api/v1/products/"+it.Slug, "", ""), 200, &p)
		for _, v := range p.Variants {
			if v.Available >= n {
				return v.SKU
			}
		}
	}
	t.Fatal("no SKU in stock")
	return ""
}

// waitStatus polls the order until it leaves pending_payment.
func waitStatus(t *testing.T, c *client, id string) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		st, body := c.do("GET", "/api/v1/orders/"+id, "")
		if st != 200 {
			t.Fatalf("order %s: %d %s", id, st, body)
		}
		var o struct{ Status string }
		_ = json.Unmarshal([]byte(body), &o)
		if o.Status != "pending_payment" {
			return o.Status
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("order %s still pending after 20s", id)
	return ""
}

// TestOrderPipelineEndToEnd: an order placed over HTTP is paid by the
// workers through the embedded event bus; a declined card fails the order
// and returns its stock.
func TestOrderPipelineEndToEnd(t *testing.T) {
	s := startShop(t)
	sku := firstInStockSKU(t, s, 3)
	buy := func(card string) (string, string) {
		c := newClient(t, s.URL)
		if st, body := c.do("POST", "/api/v1/cart/items", `{"sku":"`+sku+`","quantity":1}`); st != 201 {
			t.Fatalf("add: %d %s", st, body)
		}
		body := `{"email":"e2e@example.com","shipping_address":{"name":"E Two","line1":"1 Loop Rd","city":"Localhost","postal_code":"127","country":"US"},"payment":{"card_number":"` + card + `"}}`
		st, resp := c.do("POST", "/api/v1/checkout", body, "Idempotency-Key", "e2e-"+card)
		if st != 201 {
			t.Fatalf("checkout: %d %s", st, resp)
		}
		var o struct{ ID string }
		_ = json.Unmarshal([]byte(resp), &o)
		return o.ID, waitStatus(t, c, o.ID)
	}
	if _, status := buy("4242424242424242"); status != "paid" {
		t.Fatalf("good card: order %s, want paid", status)
	}
	if _, status := buy("4000000000000002"); status != "payment_failed" {
		t.Fatalf("declined card: order %s, want payment_failed", status)
	}
	// The pipeline's freshness histogram counts the paid order, not the
	// declined one. The worker observes it just after marking the order
	// paid, so wait for it with a deadline.
	waitMetric(t, s, "surge_order_checkout_to_paid_seconds_count", "1")
	if v := metricLine(t, s, `surge_order_checkout_to_paid_seconds_bucket{le="30"}`); v != "1" {
		t.Fatalf("orders paid within 30s = %q, want 1", v)
	}
}

// metricLine returns the value of the exposition line whose name and
// labels are exactly series, or "".
func metricLine(t *testing.T, s *runningShop, series string) string {
	t.Helper()
	for _, line := range strings.Split(do(t, "GET", s.AdminURL+"/metrics", "", "").Body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}

// waitMetric waits until series reads want, for at most 10 seconds.
func waitMetric(t *testing.T, s *runningShop, series, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		v := metricLine(t, s, series)
		if v == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %q after 10s, want %s", series, v, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
