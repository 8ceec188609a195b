package shop_test

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/surge-commerce/surge/internal/enginetest"
	"github.com/surge-commerce/surge/internal/ops"
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

// TestSharedDependencyOutageDegradesNotUnready: PostgreSQL, Redis and the
// NATS cluster are shared by every replica; when they are all unreachable
// a replica stays in the load balancer (200, degraded, naming each) so
// what it can still serve is served, and it is ready again when they
// return.
func TestSharedDependencyOutageDegradesNotUnready(t *testing.T) {
	primary, _ := enginetest.Postgres(t)
	redisURL, prefix := enginetest.Redis(t)
	natsURLs := enginetest.NATS(t)
	pg, rd := enginetest.NewProxy(t, primary), enginetest.NewProxy(t, redisURL)
	var nodes []*enginetest.Proxy
	var proxied []string
	for _, u := range natsURLs {
		p := enginetest.NewProxy(t, u)
		nodes = append(nodes, p)
		proxied = append(proxied, p.URL)
	}
	cfg := shop.Defaults()
	cfg.DataDir, cfg.DBURL, cfg.RedisURL, cfg.RedisPrefix = t.TempDir(), pg.URL, rd.URL, prefix
	cfg.NATSURL, cfg.NATSReplicas, cfg.Admission = strings.Join(proxied, ","), len(natsURLs), false
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
	for _, n := range nodes {
		n.Cut()
	}
	code, b := readyz(t, srv.URL)
	if code != 200 || b.Status != "degraded" {
		t.Errorf("with the shared engines down: %d %+v; want 200 degraded", code, b)
	}
	for _, dep := range []string{"database", "redis", "event bus"} {
		if b.Degraded[dep] == "" {
			t.Errorf("degraded does not name %s: %+v", dep, b)
		}
	}
	t.Logf("degraded: %+v", b.Degraded)

	pg.Heal()
	rd.Heal()
	for _, n := range nodes {
		n.Heal()
	}
	eventually(t, "ready again once the engines are back", func() bool {
		code, b := readyz(t, srv.URL)
		return code == 200 && b.Status == "ready"
	})
}
