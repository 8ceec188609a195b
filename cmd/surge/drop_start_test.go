package main

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// stopAndWait ends a shop started by startShop and waits until it has.
func (s *runningShop) stopAndWait(t *testing.T) {
	t.Helper()
	s.stop()
	select {
	case err := <-s.done:
		s.done <- err // for startShop's cleanup, which waits for it too
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop within 20s")
	}
}

// twoSKUProduct creates a product with the SKUs TWO-A and TWO-B.
func twoSKUProduct(t *testing.T, url string) {
	t.Helper()
	var cat struct{ ID int64 }
	mustJSON(t, do(t, "POST", url+"/api/v1/admin/categories", testToken, `{"name":"Start Drops","slug":"start-drops"}`), 201, &cat)
	body := fmt.Sprintf(`{"name":"Two Sizes","status":"active","category_id":%d,"variants":[
		{"sku":"TWO-A","price":{"amount":9900,"currency":"USD"},"on_hand":5,"options":[{"name":"size","value":"a"}]},
		{"sku":"TWO-B","price":{"amount":9900,"currency":"USD"},"on_hand":5,"options":[{"name":"size","value":"b"}]}]}`, cat.ID)
	if r := do(t, "POST", url+"/api/v1/admin/products", testToken, body); r.Status != 201 {
		t.Fatalf("product: %d %s", r.Status, r.Body)
	}
}

// TestServeStartsWithAnInvalidStoredDrop: a drop row the waiting room
// cannot open (stored before the admin API bounded its settings) does not
// stop `surge serve` from starting: the drop is skipped, /readyz reports
// it as degraded, the other drops sell, and closing it clears the report.
func TestServeStartsWithAnInvalidStoredDrop(t *testing.T) {
	dir := t.TempDir()
	s := startShop(t, "--data-dir", dir)
	twoSKUProduct(t, s.URL)
	starts := time.Now().Add(-time.Second).UTC().Format(time.RFC3339Nano)
	var bad, good struct{ ID string }
	for i, out := range []*struct{ ID string }{&bad, &good} {
		sku, slug := "TWO-A", "bad-drop"
		if i == 1 {
			sku, slug = "TWO-B", "good-drop"
		}
		mustJSON(t, do(t, "POST", s.URL+"/api/v1/admin/drops", testToken, fmt.Sprintf(`{"name":"Drop","slug":%q,"starts_at":%q,
			"per_customer_limit":1,"items":[{"sku":%q,"allocated":5}],"room":{"rate_per_minute":600}}`, slug, starts, sku)), 201, out)
	}
	s.stopAndWait(t)

	// What an earlier version stored: a no-show window longer than the
	// access it waits for, which the waiting room refuses.
	db, err := sql.Open("sqlite", filepath.Join(dir, "surge.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE drops SET room = ? WHERE id = ?`,
		`{"prequeue_opens":"15m0s","rate_per_minute":600,"max_active":2000,"no_show_window":"2m0s","access_ttl":"30s"}`, bad.ID); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s = startShop(t, "--data-dir", dir)
	var ready struct {
		Status   string
		Degraded map[string]string
	}
	mustJSON(t, do(t, "GET", s.AdminURL+"/readyz", "", ""), 200, &ready)
	if ready.Status != "degraded" || !strings.Contains(ready.Degraded["drops"], bad.ID) || strings.Contains(ready.Degraded["drops"], good.ID) {
		t.Errorf("readyz = %+v; want degraded naming %s only", ready, bad.ID)
	}
	if r := do(t, "POST", s.URL+"/api/v1/drops/"+good.ID+"/queue/join", "", ""); r.Status != 200 {
		t.Errorf("join the good drop: %d %s", r.Status, r.Body)
	}
	if r := do(t, "POST", s.URL+"/api/v1/drops/"+bad.ID+"/queue/join", "", ""); r.Status != 404 {
		t.Errorf("join the skipped drop: %d %s; want 404", r.Status, r.Body)
	}
	if r := do(t, "POST", s.URL+"/api/v1/cart/items", "", `{"sku":"TWO-A","quantity":1}`); r.Status != 403 {
		t.Errorf("add a skipped drop's SKU: %d %s; want 403", r.Status, r.Body)
	}
	if r := do(t, "POST", s.URL+"/api/v1/admin/drops/"+bad.ID+"/close", testToken, ""); r.Status != 200 {
		t.Fatalf("close the skipped drop: %d %s", r.Status, r.Body)
	}
	mustJSON(t, do(t, "GET", s.AdminURL+"/readyz", "", ""), 200, &ready)
	if ready.Status != "ready" {
		t.Errorf("readyz after closing the skipped drop = %+v; want ready", ready)
	}
}
