package shop_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/surge-commerce/surge/internal/demoshop"
	"github.com/surge-commerce/surge/internal/enginetest"
	"github.com/surge-commerce/surge/internal/shop"
	"github.com/surge-commerce/surge/internal/telemetry"
)

const replicaToken = "replica-test-token-0123456789"

// replica is one API replica of a shop on shared engines.
type replica struct {
	sh  *shop.Shop
	URL string
}

// twoReplicas starts two replicas of one shop on the test PostgreSQL
// (primary and replica) and Redis, as two `surge serve --role api`
// processes would run behind a load balancer.
func twoReplicas(t *testing.T) (a, b replica) {
	t.Helper()
	primary, standby := enginetest.Postgres(t)
	redisURL, prefix := enginetest.Redis(t)
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	start := func(i int) replica {
		cfg := shop.Defaults()
		cfg.DataDir = t.TempDir()
		cfg.DBURL, cfg.RedisURL, cfg.RedisPrefix = primary, redisURL, prefix
		if standby != "" {
			cfg.DBReplicaURLs = []string{standby}
		}
		cfg.AdminToken = replicaToken
		cfg.Admission = false
		cfg.WaitroomKeys = "k1:" + strings.Repeat("QUJD", 11)
		sh, err := shop.Open(t.Context(), cfg, log, telemetry.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- sh.Run(ctx, shop.RoleAPI) }()
		srv := httptest.NewServer(sh.Handler)
		t.Cleanup(func() {
			srv.Close()
			cancel()
			<-done
			sh.Close()
		})
		return replica{sh: sh, URL: srv.URL}
	}
	a = start(0)
	cats, prods := demoshop.Generate(demoshop.Options{Products: 30, Seed: 1})
	if err := a.sh.Store.ImportCatalog(t.Context(), cats, prods); err != nil {
		t.Fatal(err)
	}
	b = start(1)
	return a, b
}

func call(t *testing.T, c *http.Client, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if strings.Contains(url, "/admin/") {
		req.Header.Set("Authorization", "Bearer "+replicaToken)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// eventually retries cond for up to five seconds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestReplicasShareState: what one replica writes, the other sees:
// a catalog change purges the other's cached page, a session (and its
// cart) started on one is known to the other, and a drop created on one
// queues visitors of both in one line.
func TestReplicasShareState(t *testing.T) {
	a, b := twoReplicas(t)
	plain := &http.Client{}

	// A product page cached on b is purged by an update made through a.
	var prod struct {
		ID   int64
		Slug string
		Name string
	}
	// The listing reads the streaming replica, which may not have
	// replayed the import yet.
	eventually(t, "the replica has the catalog", func() bool {
		// The import went to the store, not through the catalog
		// service, so nothing purges a listing cached empty while the
		// replica was still replaying it.
		a.sh.Cache.PurgeAll()
		code, body := call(t, plain, "GET", a.URL+"/api/v1/products?limit=1", "")
		var list struct{ Items []json.RawMessage }
		return code == 200 && json.Unmarshal([]byte(body), &list) == nil && len(list.Items) == 1 && json.Unmarshal(list.Items[0], &prod) == nil
	})
	page := b.URL + "/products/" + prod.Slug
	if code, body := call(t, plain, "GET", page, ""); code != 200 || !strings.Contains(body, prod.Name) {
		t.Fatalf("product page on b: %d", code)
	}
	if code, body := call(t, plain, "PATCH", a.URL+"/api/v1/admin/products/"+prod.Slug, `{"name":"Renamed On Replica A"}`); code != 200 {
		t.Fatalf("update on a: %d %s", code, body)
	}
	eventually(t, "b shows the new name", func() bool {
		_, body := call(t, plain, "GET", page, "")
		return strings.Contains(body, "Renamed On Replica A")
	})

	// A cart filled through a is the same cart through b.
	jar, _ := cookiejar.New(nil)
	shopper := &http.Client{Jar: jar}
	var sku string
	for _, p := range []string{prod.Slug} {
		_, body := call(t, plain, "GET", a.URL+"/api/v1/products/"+p, "")
		var full struct {
			Variants []struct {
				SKU     string
				OnHand  int64 `json:"on_hand"`
				InStock bool  `json:"in_stock"`
			}
		}
		_ = json.Unmarshal([]byte(body), &full)
		if len(full.Variants) > 0 {
			sku = full.Variants[0].SKU
		}
	}
	if sku == "" {
		t.Fatal("no SKU")
	}
	if code, body := call(t, plain, "PUT", a.URL+"/api/v1/admin/variants/"+sku+"/stock", `{"on_hand":50}`); code != 200 {
		t.Fatalf("stock: %d %s", code, body)
	}
	if code, body := call(t, shopper, "POST", a.URL+"/api/v1/cart/items", `{"sku":"`+sku+`","quantity":2}`); code != 201 && code != 200 {
		t.Fatalf("add on a: %d %s", code, body)
	}
	// The cookie was set for a's host; behind a load balancer both
	// replicas are one host, so hand b the same cookies.
	for _, c := range jar.Cookies(mustURL(t, a.URL)) {
		jar.SetCookies(mustURL(t, b.URL), []*http.Cookie{{Name: c.Name, Value: c.Value, Path: "/"}})
	}
	code, body := call(t, shopper, "GET", b.URL+"/api/v1/cart", "")
	if code != 200 || !strings.Contains(body, sku) {
		t.Fatalf("cart on b: %d %s", code, body)
	}

	// A drop created through a queues b's visitors in the same line.
	if code, body := call(t, plain, "PUT", a.URL+"/api/v1/admin/variants/"+sku+"/stock", `{"on_hand":50}`); code != 200 {
		t.Fatalf("stock: %d %s", code, body)
	}
	starts := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	code, body = call(t, plain, "POST", a.URL+"/api/v1/admin/drops", fmt.Sprintf(`{"name":"Two Replicas","slug":"two-replicas",
		"starts_at":%q,"per_customer_limit":1,"items":[{"sku":%q,"allocated":10}],"room":{"rate_per_minute":60,"prequeue_opens":"2h"}}`, starts, sku))
	var d struct{ ID string }
	if code != 201 || json.Unmarshal([]byte(body), &d) != nil {
		t.Fatalf("create drop: %d %s", code, body)
	}
	joined := 0
	eventually(t, "b knows the drop", func() bool {
		c, _ := cookiejar.New(nil)
		code, _ := call(t, &http.Client{Jar: c}, "POST", b.URL+"/api/v1/drops/"+d.ID+"/queue/join", `{}`)
		if code == 200 {
			joined++
		}
		return code == 200
	})
	for i := range 4 {
		c, _ := cookiejar.New(nil)
		r := []replica{a, b}[i%2]
		if code, body := call(t, &http.Client{Jar: c}, "POST", r.URL+"/api/v1/drops/"+d.ID+"/queue/join", `{}`); code != 200 {
			t.Fatalf("join on replica %d: %d %s", i%2, code, body)
		}
		joined++
	}
	for i, r := range []replica{a, b} {
		// Counters may come from a snapshot a quarter second old.
		eventually(t, fmt.Sprintf("replica %d counts every join of both", i), func() bool {
			cs, err := r.sh.Room.Counters(t.Context(), d.ID)
			return err == nil && cs.Joined == uint64(joined)
		})
	}
}

// TestAdminReadsOwnWrites: an admin who just changed a product reads the
// change back at once through any API replica, although catalog reads go
// to a database replica that may not have replayed it yet: the write's
// WAL position travels in a cookie.
func TestAdminReadsOwnWrites(t *testing.T) {
	a, b := twoReplicas(t)
	jar, _ := cookiejar.New(nil)
	admin := &http.Client{Jar: jar}
	var slug string
	eventually(t, "the replica has the catalog", func() bool {
		code, body := call(t, admin, "GET", a.URL+"/api/v1/admin/products?limit=1", "")
		var list struct{ Items []struct{ Slug string } }
		if code != 200 || json.Unmarshal([]byte(body), &list) != nil || len(list.Items) == 0 {
			return false
		}
		slug = list.Items[0].Slug
		return true
	})
	for i := range 20 {
		name := fmt.Sprintf("Edition %d", i)
		if code, body := call(t, admin, "PATCH", a.URL+"/api/v1/admin/products/"+slug, `{"name":"`+name+`"}`); code != 200 {
			t.Fatalf("update: %d %s", code, body)
		}
		var lsn string
		for _, c := range jar.Cookies(mustURL(t, a.URL)) {
			if c.Name == "surge_lsn" {
				lsn = c.Value
				jar.SetCookies(mustURL(t, b.URL), []*http.Cookie{{Name: c.Name, Value: c.Value, Path: "/"}})
			}
		}
		if lsn == "" {
			t.Fatal("no surge_lsn cookie after a write")
		}
		code, body := call(t, admin, "GET", b.URL+"/api/v1/admin/products/"+slug, "")
		var got struct{ Name string }
		if code != 200 || json.Unmarshal([]byte(body), &got) != nil || got.Name != name {
			t.Fatalf("round %d: read back %q (%d) through the other replica, want %q", i, got.Name, code, name)
		}
	}
}
