package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/surge-commerce/surge/internal/enginetest"
)

// TestScaleOutDropThroughHAProxy is the scale-out topology end to end:
// three `surge serve --role api` replicas and one `surge worker` on
// PostgreSQL (primary and streaming replica), Redis and a three-node NATS
// cluster, behind HAProxy. 20,000 buyers race for 1,000 units of a drop
// through the load balancer while one API replica is killed with SIGKILL.
// Exactly 1,000 units must sell, every acknowledged order must be in the
// database and paid, nobody may buy over the limit, and every buyer must
// get a final answer.
func TestScaleOutDropThroughHAProxy(t *testing.T) {
	const units, buyers = 1000, 20000
	bin := surgeBinary(t)
	primary, replica := enginetest.Postgres(t)
	redisURL, prefix := enginetest.Redis(t)
	natsURLs := enginetest.NATS(t)
	haproxy := enginetest.HAProxy(t)

	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	common := []string{"--db-url", primary, "--redis-url", redisURL, "--redis-prefix", prefix,
		"--nats-url", strings.Join(natsURLs, ","), "--nats-replicas", "3",
		"--waitroom-keys", "k1:" + base64.StdEncoding.EncodeToString(secret), "--admin-token", testToken,
		"--log-level", "warn", "--admin-addr", "127.0.0.1:0"}
	if out, err := exec.Command(bin, "migrate", "--db-url", primary).CombinedOutput(); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	worker := startProc(t, append([]string{"worker", "--data-dir", t.TempDir()}, common...)...)
	_ = worker
	var apis []*proc
	for range 3 {
		args := append([]string{"serve", "--role", "api", "--data-dir", t.TempDir(), "--addr", "127.0.0.1:0",
			"--db-replica-url", replica, "--client-ip-header", "X-Forwarded-For", "--trusted-proxies", "127.0.0.1/32",
			"--admission=false", "--access-log=false"}, common...)
		apis = append(apis, startProc(t, args...))
	}
	lb := startHAProxy(t, haproxy, apis)

	// The product is created with the category's ID from the create
	// answer: a listing would read the database replica, which may lag.
	cr := do(t, "POST", lb+"/api/v1/admin/categories", testToken, `{"name":"Scale Drops","slug":"scale-drops"}`)
	var cat struct{ ID int64 }
	if err := json.Unmarshal([]byte(cr.Body), &cat); cr.Status != 201 || err != nil || cat.ID == 0 {
		t.Fatalf("category: %d %s", cr.Status, cr.Body)
	}
	if r := do(t, "POST", lb+"/api/v1/admin/products", testToken, fmt.Sprintf(`{"name":"Scale Sneaker","status":"active","category_id":%d,
		"variants":[{"sku":"SCALE-1","price":{"amount":9900,"currency":"USD"},"on_hand":%d}]}`, cat.ID, units)); r.Status != 201 {
		t.Fatalf("product: %d %s", r.Status, r.Body)
	}
	starts := time.Now().Add(3 * time.Second).UTC().Format(time.RFC3339Nano)
	created := do(t, "POST", lb+"/api/v1/admin/drops", testToken, fmt.Sprintf(`{"name":"Scale Drop","slug":"scale-drop",
		"starts_at":%q,"per_customer_limit":1,"items":[{"sku":"SCALE-1","allocated":%d}],
		"room":{"rate_per_minute":120000,"max_active":3000,"prequeue_opens":"1m"}}`, starts, units))
	var d struct{ ID string }
	if err := json.Unmarshal([]byte(created.Body), &d); created.Status != 201 || err != nil || d.ID == "" {
		t.Fatalf("create drop: %d %s", created.Status, created.Body)
	}

	// The load runs as its own process (not under the race detector) so
	// that 20,000 buyers fit on a small machine.
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 7*time.Minute)
	defer cancel()
	load := exec.CommandContext(ctx, bin, "load", "run", "--target", lb, "--journey", "drop", "--drop", d.ID,
		"--arrivals", fmt.Sprintf("n=%d,within=150s", buyers), "--source-ips", "127.1.0.0/20", "--grace", "180s",
		"--timeout", "60s", "--out", filepath.Join(dir, "r.json"), "--quiet")
	var loadOut strings.Builder
	load.Stdout, load.Stderr = &loadOut, &loadOut
	if err := load.Start(); err != nil {
		t.Fatal(err)
	}
	loadDone := make(chan error, 1)
	go func() { loadDone <- load.Wait() }()

	// Kill one replica once the drop is selling.
	killed := false
	for !killed {
		select {
		case err := <-loadDone:
			t.Fatalf("load ended before the kill: %v\n%s", err, loadOut.String())
		case <-time.After(200 * time.Millisecond):
		}
		var st struct{ Available int64 }
		r := do(t, "GET", apis[0].URL+"/api/v1/admin/drops/"+d.ID, testToken, "")
		if r.Status == 200 && json.Unmarshal([]byte(r.Body), &st) == nil && st.Available < units*8/10 {
			apis[1].kill()
			killed = true
			t.Logf("killed API replica 2 with %d units left", st.Available)
		}
	}
	if err := <-loadDone; err != nil {
		t.Fatalf("load: %v\n%s", err, loadOut.String())
	}
	t.Log(loadOut.String())
	r := readResult(t, filepath.Join(dir, "r.json"))
	if r.Drop == nil {
		t.Fatal("no drop outcomes")
	}
	t.Logf("bought %d, sold out %d, errors %d, unfinished %d", r.Drop.Bought, r.Drop.SoldOut, r.Drop.Errors, r.Drop.Unfinished)
	for _, step := range []string{"join", "status", "add", "checkout"} {
		if st, ok := r.Step(step); ok {
			t.Logf("%s: %v", step, st.Statuses)
		}
	}
	if r.Drop.Buyers != buyers || r.Drop.FinalAnswers != buyers {
		t.Errorf("%d buyers, %d final answers; want %d each (every buyer answered)", r.Drop.Buyers, r.Drop.FinalAnswers, buyers)
	}
	if r.Drop.Units != units || r.Drop.Bought != units {
		t.Errorf("buyers were told %d orders (%d units) succeeded; want %d", r.Drop.Bought, r.Drop.Units, units)
	}

	// The record: exactly the units on hand sold, one order per buyer at
	// most, and every order paid once the worker caught up.
	db, err := pgx.Connect(context.Background(), primary)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())
	deadline := time.Now().Add(90 * time.Second)
	for {
		var orders, qty, unpaid, overLimit int64
		err := db.QueryRow(context.Background(), `SELECT count(DISTINCT o.id), coalesce(sum(l.quantity), 0),
			count(DISTINCT o.id) FILTER (WHERE o.status <> 'paid'),
			(SELECT count(*) FROM (SELECT buyer FROM drop_purchases WHERE drop_id = $1
				GROUP BY buyer HAVING sum(quantity) > 1) x)
			FROM orders o JOIN order_lines l ON l.order_id = o.id WHERE l.sku = 'SCALE-1'`, d.ID).Scan(&orders, &qty, &unpaid, &overLimit)
		if err != nil {
			t.Fatal(err)
		}
		if qty != units || orders != r.Drop.Bought || overLimit != 0 {
			t.Fatalf("database holds %d orders for %d units (%d buyers over the limit); buyers were told %d; want %d units",
				orders, qty, overLimit, r.Drop.Bought, units)
		}
		if unpaid == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d orders still unpaid", unpaid, orders)
		}
		time.Sleep(500 * time.Millisecond)
	}
	var onHand, reserved, sold int64
	if err := db.QueryRow(context.Background(), `SELECT on_hand, reserved, sold FROM variants WHERE sku = 'SCALE-1'`).Scan(&onHand, &reserved, &sold); err != nil {
		t.Fatal(err)
	}
	if sold != units || reserved != 0 || onHand != units {
		t.Errorf("stock: on hand %d, reserved %d, sold %d; want %d sold, none reserved", onHand, reserved, sold, units)
	}
}

// startHAProxy runs HAProxy round-robin over the API replicas, checking
// each on its admin /readyz, and returns its URL.
func startHAProxy(t *testing.T, bin string, apis []*proc) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var servers strings.Builder
	for i, p := range apis {
		u, _ := url.Parse(p.URL)
		a, _ := url.Parse(p.AdminURL)
		fmt.Fprintf(&servers, "    server api%d %s check port %s inter 1s fall 3 rise 2 maxconn 256\n", i+1, u.Host, a.Port())
	}
	cfg := fmt.Sprintf(`global
    maxconn 8000
defaults
    mode http
    timeout connect 2s
    timeout client 90s
    timeout server 90s
    timeout check 2s
    timeout queue 30s
    retries 3
    option redispatch
    # Only a refused connection is retried on another replica: a
    # request that reached one may have taken effect there.
    retry-on conn-failure
    option forwardfor
frontend shop
    bind %s
    default_backend api
backend api
    balance roundrobin
    option httpchk GET /readyz
%s`, addr, servers.String())
	dir := t.TempDir()
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-db", "-f", path)
	if testing.Verbose() {
		cmd.Stderr = os.Stderr
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGKILL); _ = cmd.Wait() })
	lb := "http://" + addr
	for i := 0; ; i++ {
		resp, err := http.Get(lb + "/api/v1/categories")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return lb
			}
		}
		if i > 100 {
			t.Fatalf("haproxy at %s never answered: %v", lb, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
