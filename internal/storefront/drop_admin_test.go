package storefront_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/surge-commerce/surge/internal/catalog"
	"github.com/surge-commerce/surge/internal/money"
)

// TestAdminDropBounds: the admin API refuses every drop setting out of
// bounds, or one the waiting room would refuse to open, with a 422 that
// names the field, and stores nothing; what it accepts opens at once.
func TestAdminDropBounds(t *testing.T) {
	sh := openShop(t, 0, apiTestToken)
	ctx := t.Context()
	c, err := sh.Store.CreateCategory(ctx, catalog.Category{Slug: "drops", Name: "Drops"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sh.Store.CreateProduct(ctx, catalog.Product{Slug: "runner", Name: "Runner", Status: catalog.StatusActive, CategoryID: c.ID,
		Variants: []catalog.Variant{{SKU: "RUN-1", Price: money.Money{Amount: 12000, Currency: "USD"}, OnHand: 10}}}); err != nil {
		t.Fatal(err)
	}
	admin := &jarClient{h: sh.Handler, cookies: map[string]string{}}
	starts := time.Now().Add(-time.Second).UTC().Format(time.RFC3339Nano)
	// body is a valid drop with the given fields replacing its own.
	body := func(fields map[string]any) string {
		d := map[string]any{"name": "Runner", "slug": "runner", "starts_at": starts, "per_customer_limit": 2,
			"items": []any{map[string]any{"sku": "RUN-1", "allocated": 10}}, "room": map[string]any{"rate_per_minute": 600}}
		for k, v := range fields {
			if room, ok := v.(map[string]any); ok && k == "room" {
				for rk, rv := range room {
					d["room"].(map[string]any)[rk] = rv
				}
				continue
			}
			d[k] = v
		}
		b, _ := json.Marshal(d)
		return string(b)
	}
	room := func(k string, v any) map[string]any { return map[string]any{"room": map[string]any{k: v}} }
	for _, tc := range []struct {
		name   string
		fields map[string]any
		field  string
	}{
		{"no-show window past the access", room("no_show_window", "11m"), "room.no_show_window"},
		{"no-show window past a short access", map[string]any{"room": map[string]any{"access_ttl": "30s", "no_show_window": "2m"}}, "room.no_show_window"},
		{"allocation of int64 max", map[string]any{"items": []any{map[string]any{"sku": "RUN-1", "allocated": int64(9223372036854775807)}}}, "items[0].allocated"},
		{"allocation of a billion", map[string]any{"items": []any{map[string]any{"sku": "RUN-1", "allocated": 1_000_000_000}}}, "items[0].allocated"},
		{"start in 2999", map[string]any{"starts_at": "2999-01-01T00:00:00Z"}, "starts_at"},
		{"start before 2000", map[string]any{"starts_at": "1999-12-31T23:00:00Z"}, "starts_at"},
		{"end in 2999", map[string]any{"ends_at": "2999-01-01T00:00:00Z"}, "ends_at"},
		{"limit of 100", map[string]any{"per_customer_limit": 100}, "per_customer_limit"},
		{"rate of two billion", room("rate_per_minute", 2_000_000_000), "room.rate_per_minute"},
		{"cap of two billion", room("max_active", 2_000_000_000), "room.max_active"},
		{"pre-queue a month ahead", room("prequeue_opens", "720h"), "room.prequeue_opens"},
		{"access for a day", room("access_ttl", "24h"), "room.access_ttl"},
		{"access for a millisecond", map[string]any{"room": map[string]any{"access_ttl": "1ms", "no_show_window": "1ms"}}, "room.access_ttl"},
		{"proof of work of 29 bits", room("pow_difficulty", 29), "room.pow_difficulty"},
		{"every checkout may fail", room("adaptive_error_rate", 1), "room.adaptive_error_rate"},
		{"adaptive latency of a nanosecond", room("adaptive_latency", "1ns"), "room.adaptive_latency"},
		{"a long description", map[string]any{"description": strings.Repeat("x", 20001)}, "description"},
	} {
		st, out := admin.do("POST", "/api/v1/admin/drops", body(tc.fields), "Authorization", "Bearer "+apiTestToken)
		var p struct{ Detail string }
		_ = json.Unmarshal([]byte(out), &p)
		if st != 422 || !strings.Contains(p.Detail, tc.field+":") {
			t.Errorf("%s: %d %s; want 422 naming %s", tc.name, st, out, tc.field)
		}
	}
	if ds, err := sh.Store.Drops(ctx); err != nil || len(ds) != 0 {
		t.Fatalf("refused drops stored: %d, %v", len(ds), err)
	}

	// A short access alone takes a no-show window that fits it, and the
	// drop opens: its line takes joins.
	st, out := admin.do("POST", "/api/v1/admin/drops", body(room("access_ttl", "30s")), "Authorization", "Bearer "+apiTestToken)
	var d struct {
		ID   string
		Room struct {
			NoShowWindow string `json:"no_show_window"`
		}
	}
	if st != 201 || json.Unmarshal([]byte(out), &d) != nil || d.Room.NoShowWindow != "30s" {
		t.Fatalf("a 30s access: %d %s; want 201 with a 30s no-show window", st, out)
	}
	buyer := &jarClient{h: sh.Handler, cookies: map[string]string{}, addr: "192.0.2.1:1000"}
	if q := buyer.queue(t, "POST", fmt.Sprintf("/api/v1/drops/%s/queue/join", d.ID)); q.State != "admitted" {
		t.Errorf("join: %+v, want admitted", q)
	}
}
