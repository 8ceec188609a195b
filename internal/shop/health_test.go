package shop_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/surge-commerce/surge/internal/catalog"
	"github.com/surge-commerce/surge/internal/enginetest"
	"github.com/surge-commerce/surge/internal/money"
	"github.com/surge-commerce/surge/internal/ops"
	"github.com/surge-commerce/surge/internal/order"
	"github.com/surge-commerce/surge/internal/shop"
	"github.com/surge-commerce/surge/internal/telemetry"
)

type readyzBody struct {
	Status            string
	Reasons, Degraded map[string]string
}

func readyz(t *testing.T, url string) (int, readyzBody) {
	t.Helper()
	resp, err := http.Get(url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b readyzBody
	if err := json.NewDecoder(resp.Body).Decode(&b); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// TestSharedDependencyOutageDegradesNotUnready: PostgreSQL and Redis are
// shared by every replica; when they are unreachable a replica stays in
// the load balancer (200, degraded, naming each) so what it can still
// serve is served, and it is ready again when they return. (The NATS
// cluster is stopped for real in TestNATSOutageDegradesAndCheckoutGoesOn:
// a client cut off through a proxy reconnects to the nodes' own addresses,
// which the cluster advertises.)
func TestSharedDependencyOutageDegradesNotUnready(t *testing.T) {
	primary, _ := enginetest.Postgres(t)
	redisURL, prefix := enginetest.Redis(t)
	natsURLs := enginetest.NATS(t)
	pg, rd := enginetest.NewProxy(t, primary), enginetest.NewProxy(t, redisURL)
	cfg := shop.Defaults()
	cfg.DataDir, cfg.DBURL, cfg.RedisURL, cfg.RedisPrefix = t.TempDir(), pg.URL, rd.URL, prefix
	cfg.NATSURL, cfg.NATSReplicas, cfg.Admission = strings.Join(natsURLs, ","), len(natsURLs), false
	cfg.WaitroomKeys = "k1:" + strings.Repeat("QUJD", 11)
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelError}))
	sh, err := shop.Open(t.Context(), cfg, log, telemetry.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sh.Close() })
	h := ops.NewHealth()
	sh.RegisterHealth(h, shop.RoleAPI)
	h.SetReady(true)
	srv := httptest.NewServer(ops.NewHandler(h, prometheus.NewRegistry()))
	t.Cleanup(srv.Close)
	if code, b := readyz(t, srv.URL); code != 200 || b.Status != "ready" {
		t.Fatalf("with every engine up: %d %+v", code, b)
	}

	pg.Cut()
	rd.Cut()
	code, b := readyz(t, srv.URL)
	if code != 200 || b.Status != "degraded" {
		t.Errorf("with the shared engines down: %d %+v; want 200 degraded", code, b)
	}
	for _, dep := range []string{"database", "redis"} {
		if b.Degraded[dep] == "" {
			t.Errorf("degraded does not name %s: %+v", dep, b)
		}
	}
	t.Logf("degraded: %+v", b.Degraded)

	pg.Heal()
	rd.Heal()
	eventually(t, "ready again once the engines are back", func() bool {
		code, b := readyz(t, srv.URL)
		return code == 200 && b.Status == "ready"
	})
}

// TestNATSOutageDegradesAndCheckoutGoesOn stops every node of the NATS
// cluster: the replica stays ready for the load balancer, degraded with
// the event bus and then the stuck outbox named; checkout still answers
// 201 (orders wait in the outbox); and once the cluster is back every
// order placed meanwhile is paid.
func TestNATSOutageDegradesAndCheckoutGoesOn(t *testing.T) {
	cluster := enginetest.NATSChaos(t)
	primary, _ := enginetest.Postgres(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cfg := shop.Defaults()
	cfg.DataDir, cfg.DBURL, cfg.Admission = t.TempDir(), primary, false
	cfg.NATSURL, cfg.NATSReplicas = strings.Join(cluster.URLs, ","), cluster.Nodes()
	cfg.WaitroomKeys = "k1:" + strings.Repeat("QUJD", 11)
	cfg.OutboxMaxLag = time.Second
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelError}))
	sh, err := shop.Open(ctx, cfg, log, telemetry.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sh.Close() })
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sh.Run(runCtx, shop.RoleAll) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("shop: %v", err)
		}
	})
	h := ops.NewHealth()
	sh.RegisterHealth(h, shop.RoleAll)
	h.SetReady(true)
	admin := httptest.NewServer(ops.NewHandler(h, prometheus.NewRegistry()))
	t.Cleanup(admin.Close)
	srv := httptest.NewServer(sh.Handler)
	t.Cleanup(srv.Close)
	const sku = "NATS-DOWN-1"
	c, err := sh.Store.CreateCategory(ctx, catalog.Category{Slug: "bus", Name: "Bus"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sh.Store.CreateProduct(ctx, catalog.Product{Slug: "bus-down-tee", Name: "Bus Down Tee",
		Status: catalog.StatusActive, CategoryID: c.ID,
		Variants: []catalog.Variant{{SKU: sku, Price: money.Money{Amount: 1500, Currency: "USD"}, OnHand: 100}}}); err != nil {
		t.Fatal(err)
	}

	// The pipeline runs: an order placed now is paid.
	first, err := buyOne(ctx, srv.URL, sku, "bus-up")
	if err != nil {
		t.Fatal(err)
	}
	waitPaid(ctx, t, sh, 30*time.Second, first)

	for i := range cluster.Nodes() {
		cluster.StopNode(t, i)
	}
	var ids []string
	for i := range 5 {
		id, err := buyOne(ctx, srv.URL, sku, fmt.Sprintf("bus-down-%d", i))
		if err != nil {
			t.Fatalf("checkout with the NATS cluster down: %v", err)
		}
		ids = append(ids, id)
	}
	deadline := time.After(30 * time.Second)
	for {
		code, b := readyz(t, admin.URL)
		if code != 200 {
			t.Fatalf("/readyz %d %+v with the NATS cluster down; want 200 degraded", code, b)
		}
		if b.Degraded["event bus"] != "" && b.Degraded["outbox"] != "" {
			t.Logf("degraded: %+v", b.Degraded)
			break
		}
		select {
		case <-deadline:
			t.Fatalf("/readyz never named the event bus and the stuck outbox: %+v", b)
		case <-time.After(200 * time.Millisecond):
		}
	}
	cluster.StartStopped(t)
	waitPaid(ctx, t, sh, 90*time.Second, ids...)
	eventually(t, "ready again", func() bool {
		code, b := readyz(t, admin.URL)
		return code == 200 && b.Status == "ready"
	})
}

// waitPaid waits until every order in ids is paid, failing the test after
// within.
func waitPaid(ctx context.Context, t *testing.T, sh *shop.Shop, within time.Duration, ids ...string) {
	t.Helper()
	deadline := time.After(within)
	for {
		paid := 0
		for _, id := range ids {
			o, err := sh.Store.Order(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if o.Status == order.StatusPaid {
				paid++
			}
		}
		if paid == len(ids) {
			return
		}
		select {
		case <-deadline:
			t.Fatalf("%d of %d orders paid after %v", paid, len(ids), within)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
