package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestConfirmationMailLinksTheOrder: the confirmation mail carries the
// order's link, under --public-url, and the link opens the order page
// with no session, as the checkout answer's access token does.
func TestConfirmationMailLinksTheOrder(t *testing.T) {
	logs := &lineWriter{lines: make(chan string, 4096)}
	_, shopURL := startRunLogged(t, logs, "serve", "--addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
		"--data-dir", t.TempDir(), "--demo", "--demo-products", "50", "--admin-token", testToken,
		"--access-log=false", "--log-level", "info", "--public-url", "https://shop.example.test/")
	s := &runningShop{URL: shopURL}
	sku := firstInStockSKU(t, s, 1)
	c := newClient(t, shopURL)
	if st, body := c.do("POST", "/api/v1/cart/items", `{"sku":"`+sku+`","quantity":1}`); st != 201 {
		t.Fatalf("add: %d %s", st, body)
	}
	st, body := c.do("POST", "/api/v1/checkout", `{"email":"link@example.com","shipping_address":{"name":"L Ink","line1":"1 Loop Rd",
		"city":"Localhost","postal_code":"127","country":"US"},"payment":{"card_number":"4242424242424242"}}`, "Idempotency-Key", "link-1")
	var o struct {
		ID     string
		Number int64
		Token  string `json:"access_token"`
	}
	if st != 201 || json.Unmarshal([]byte(body), &o) != nil || o.Token == "" {
		t.Fatalf("checkout: %d %s; want 201 with an access_token", st, body)
	}

	// The workers pay the order and mail the confirmation (to the log).
	var text string
	for deadline := time.After(30 * time.Second); text == ""; {
		select {
		case line := <-logs.lines:
			var rec struct{ Msg, Subject, Text string }
			if json.Unmarshal([]byte(line), &rec) == nil && strings.HasPrefix(rec.Msg, "mail") && strings.Contains(rec.Subject, "confirmed") {
				text = rec.Text
			}
		case <-deadline:
			t.Fatal("no confirmation mail within 30s")
		}
	}
	link := regexp.MustCompile(`https://shop\.example\.test/orders/\S+`).FindString(text)
	if link == "" {
		t.Fatalf("confirmation mail has no order link under --public-url:\n%s", text)
	}
	u, err := url.Parse(link)
	if err != nil || u.Path != "/orders/"+o.ID || u.Query().Get("token") != o.Token {
		t.Fatalf("mailed link %q: want /orders/%s with the order's token", link, o.ID)
	}
	// Followed on this shop by someone with no session at all.
	resp, err := http.Get(shopURL + u.RequestURI())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("the mailed link opens with %d, want 200", resp.StatusCode)
	}
	resp, err = http.Get(shopURL + "/orders/" + o.ID)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("the order without its token and no session: %d, want 404", resp.StatusCode)
	}
}
