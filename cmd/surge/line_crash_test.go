package main

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// lineStatus is what the test reads of a waiting-room status.
type lineStatus struct {
	State       string `json:"state"`
	Position    uint64 `json:"position"`
	AccessToken string `json:"access_token"`
}

func (c *client) lineStatus(dropID string) (int, lineStatus) {
	c.t.Helper()
	code, body := c.do("GET", "/api/v1/drops/"+dropID+"/queue", "")
	var st lineStatus
	if code == 200 {
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			c.t.Fatalf("status %s: %v", body, err)
		}
	}
	return code, st
}

// TestKillKeepsTheLine kills the embedded shop (kill -9) in the middle of
// a drop's line, after the pre-queue was drawn and the first buyers were
// admitted, and restarts it on the same data dir: every ticket still holds
// its place (the same drawn position), every admitted buyer is still
// admitted, and every access token still opens the cart.
func TestKillKeepsTheLine(t *testing.T) {
	dir := t.TempDir()
	args := []string{"serve", "--data-dir", dir, "--addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--admin-token", testToken,
		"--access-log=false", "--log-level", "error"}
	p := startProc(t, args...)
	const sku, buyers, maxActive = "LINE-1", 12, 4
	hotProduct(t, p.URL, sku, 50)
	starts := time.Now().Add(2 * time.Second)
	var d struct{ ID string }
	mustJSON(t, do(t, "POST", p.URL+"/api/v1/admin/drops", testToken, fmt.Sprintf(`{"name":"Line","slug":"line",
		"starts_at":%q,"per_customer_limit":1,"items":[{"sku":%q,"allocated":20}],
		"room":{"prequeue_opens":"1m","rate_per_minute":600,"max_active":%d}}`, starts.UTC().Format(time.RFC3339Nano), sku, maxActive)), 201, &d)

	clients := make([]*client, buyers)
	for i := range clients {
		clients[i] = newClient(t, p.URL)
		if code, body := clients[i].do("POST", "/api/v1/drops/"+d.ID+"/queue/join", ""); code != 200 {
			t.Fatalf("join %d: %d %s", i, code, body)
		}
	}
	// Past the start every status holds a drawn position; the first
	// maxActive positions are admitted.
	before := make([]lineStatus, buyers)
	for deadline := time.Now().Add(30 * time.Second); ; {
		drawn, admitted := 0, 0
		for i, c := range clients {
			code, st := c.lineStatus(d.ID)
			if code != 200 {
				t.Fatalf("status %d before the kill: %d", i, code)
			}
			before[i] = st
			if st.Position > 0 {
				drawn++
			}
			if st.State == "admitted" {
				admitted++
			}
		}
		if drawn == buyers && admitted == maxActive {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not drawn and admitted within 30s: %+v", before)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// One admitted buyer has put the drop's SKU in the cart already.
	first := -1
	for i, st := range before {
		if st.State == "admitted" && first < 0 {
			first = i
			if code, body := clients[i].do("POST", "/api/v1/cart/items", fmt.Sprintf(`{"sku":%q,"quantity":1}`, sku)); code != 201 {
				t.Fatalf("cart add before the kill: %d %s", code, body)
			}
		}
	}

	p.kill()
	p = startProc(t, args...)
	for _, c := range clients {
		c.url = p.URL
	}

	for i, c := range clients {
		code, st := c.lineStatus(d.ID)
		if code != 200 {
			t.Errorf("buyer %d: status %d after the restart; want the ticket still good", i, code)
			continue
		}
		if st.Position != before[i].Position || (st.State == "admitted") != (before[i].State == "admitted") {
			t.Errorf("buyer %d: %+v after the restart, was %+v", i, st, before[i])
		}
		if before[i].State != "admitted" || i == first {
			continue
		}
		if code, body := c.do("POST", "/api/v1/cart/items", fmt.Sprintf(`{"sku":%q,"quantity":1}`, sku)); code != 201 {
			t.Errorf("admitted buyer %d: cart add after the restart: %d %s; want the access token still good", i, code, body)
		}
	}
	if code, body := clients[first].do("POST", "/api/v1/checkout", crashCheckout, "Idempotency-Key", "after-restart"); code != 201 {
		t.Errorf("checkout of the buyer who added before the kill: %d %s", code, body)
	}
}
