package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestDropCommand drives `surge drop create|list|show|close` against a
// running shop's admin API.
func TestDropCommand(t *testing.T) {
	s := startShop(t)
	sku := firstInStockSKU(t, s, 1)
	env := func(k string) string {
		return map[string]string{"SURGE_ADMIN_TOKEN": testToken, "SURGE_URL": s.URL}[k]
	}
	runDrop := func(args ...string) (string, error) {
		var out strings.Builder
		err := run(context.Background(), append([]string{"drop"}, args...), env, &out, &out)
		return out.String(), err
	}
	starts := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	out, err := runDrop("create", "--json", "--name", "Court Classic", "--slug", "court-classic", "--starts-at", starts,
		"--item", sku+"=25", "--limit", "2", "--rate", "600")
	if err != nil {
		t.Fatalf("create: %v\n%s", err, out)
	}
	var d struct {
		ID        string
		State     string
		Available int64
		Room      struct {
			RatePerMinute int `json:"rate_per_minute"`
		}
	}
	if err := json.Unmarshal([]byte(out), &d); err != nil || d.State != "scheduled" || d.Available != 25 || d.Room.RatePerMinute != 600 {
		t.Fatalf("created %+v (%v) from %s", d, err, out)
	}
	if out, err := runDrop("list"); err != nil || !strings.Contains(out, "court-classic") || !strings.Contains(out, sku+"=25") {
		t.Fatalf("list: %v\n%s", err, out)
	}
	if out, err := runDrop("create", "--name", "Again", "--slug", "again", "--starts-at", starts, "--item", sku+"=5"); err == nil || !strings.Contains(err.Error(), "already in open drop") {
		t.Fatalf("second drop of the same SKU: %v %s", err, out)
	}
	if _, err := runDrop("create", "--name", "Bad", "--slug", "bad", "--starts-at", "tomorrow", "--item", sku+"=5"); err == nil {
		t.Fatal("bad start time accepted")
	}
	if out, err := runDrop("close", d.ID); err != nil || !strings.Contains(out, "closed") {
		t.Fatalf("close: %v\n%s", err, out)
	}
	if _, err := runDrop("show", "drop_nope"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("show unknown: %v", err)
	}
	if err := run(context.Background(), []string{"drop", "list"}, func(string) string { return "" }, &strings.Builder{}, &strings.Builder{}); err == nil {
		t.Fatal("drop list without a token succeeded")
	}
}
