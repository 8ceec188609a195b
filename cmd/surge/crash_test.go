package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite" // the test reads the shop's database directly
)

// These tests run the real binary and kill it with SIGKILL: what a 201
// promised must survive, and stock must come out exact.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func surgeBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and kills the real binary; skipped with -short")
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "surge-crash-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "surge")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// proc is one surge process.
type proc struct {
	cmd                 *exec.Cmd
	URL, AdminURL, NATS string
	done                chan struct{}
}

func startProc(t *testing.T, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(surgeBinary(t), args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if os.Getenv("SURGE_TEST_VERBOSE") == "" {
		cmd.Stderr = nil
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
		close(lines)
	}()
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.kill() })
	worker := args[0] == "worker"
	deadline := time.After(60 * time.Second)
	for p.AdminURL == "" || (!worker && p.URL == "") {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("surge %v exited during start", args)
			}
			if v, ok := strings.CutPrefix(l, "shop: "); ok {
				p.URL = v
			}
			if v, ok := strings.CutPrefix(l, "admin: "); ok {
				p.AdminURL = v
			}
			if v, ok := strings.CutPrefix(l, "nats: "); ok {
				p.NATS = v
			}
		case <-deadline:
			t.Fatalf("surge %v did not start", args)
		}
	}
	for i := 0; ; i++ {
		resp, err := http.Get(p.AdminURL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if i > 400 {
			t.Fatalf("surge %v never ready", args)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The NATS line comes after the admin line; give it a moment.
	for p.NATS == "" && strings.Contains(strings.Join(args, " "), "--nats-listen") {
		select {
		case l := <-lines:
			if v, ok := strings.CutPrefix(l, "nats: "); ok {
				p.NATS = v
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no nats URL printed")
		}
	}
	return p
}

func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// hotProduct creates a category and an active product with one SKU.
func hotProduct(t *testing.T, url, sku string, onHand int) {
	t.Helper()
	if r := do(t, "POST", url+"/api/v1/admin/categories", testToken, `{"name":"Crash Drops","slug":"crash-drops"}`); r.Status != 201 {
		t.Fatalf("category: %d %s", r.Status, r.Body)
	}
	var cat struct{ ID int64 }
	cats := do(t, "GET", url+"/api/v1/categories", "", "")
	var list struct {
		Items []struct {
			ID   int64
			Slug string
		}
	}
	_ = json.Unmarshal([]byte(cats.Body), &list)
	for _, c := range list.Items {
		if c.Slug == "crash-drops" {
			cat.ID = c.ID
		}
	}
	body := fmt.Sprintf(`{"name":"Crash Sneaker","status":"active","category_id":%d,"variants":[{"sku":%q,"price":{"amount":9900,"currency":"USD"},"on_hand":%d}]}`, cat.ID, sku, onHand)
	if r := do(t, "POST", url+"/api/v1/admin/products", testToken, body); r.Status != 201 {
		t.Fatalf("product: %d %s", r.Status, r.Body)
	}
}

const crashCheckout = `{"email":"crash@example.com","shipping_address":{"name":"C Rash","line1":"1 Kill St","city":"Nine","postal_code":"9","country":"US"},"payment":{"card_number":"4242424242424242"}}`

// placeOrder adds one unit to a fresh cart and checks out; it returns the
// order ID when the shop answered 201.
func placeOrder(url, sku, key string) (string, bool) {
	c := newClient(&testing.T{}, url)
	c.c.Timeout = 5 * time.Second
	req, _ := http.NewRequest("POST", url+"/api/v1/cart/items", strings.NewReader(`{"sku":"`+sku+`","quantity":1}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.c.Do(req)
	if err != nil {
		return "", false
	}
	resp.Body.Close()
	if resp.StatusCode != 201 {
		return "", false
	}
	req, _ = http.NewRequest("POST", url+"/api/v1/checkout", strings.NewReader(crashCheckout))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err = c.c.Do(req)
	if err != nil {
		return "", false
	}
	defer resp.Body.Close()
	if resp.StatusCode != 201 {
		return "", false
	}
	var o struct{ ID string }
	if json.NewDecoder(resp.Body).Decode(&o) != nil || o.ID == "" {
		return "", false
	}
	return o.ID, true
}

func openDB(t *testing.T, dataDir string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(dataDir, "surge.db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

type stockRow struct{ onHand, reserved, sold, held, committed int64 }

func readStock(t *testing.T, db *sql.DB, sku string) stockRow {
	t.Helper()
	var s stockRow
	err := db.QueryRow(`SELECT on_hand, reserved, sold,
		coalesce((SELECT sum(quantity) FROM reservations WHERE sku = ?1 AND status = 'held'), 0),
		coalesce((SELECT sum(quantity) FROM reservations WHERE sku = ?1 AND status = 'committed'), 0)
		FROM variants WHERE sku = ?1`, sku).Scan(&s.onHand, &s.reserved, &s.sold, &s.held, &s.committed)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// waitSettled polls until no order is pending and no stock is held.
func waitSettled(t *testing.T, db *sql.DB, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		var pending, held int
		_ = db.QueryRow(`SELECT count(*) FROM orders WHERE status = 'pending_payment'`).Scan(&pending)
		_ = db.QueryRow(`SELECT count(*) FROM reservations WHERE status = 'held'`).Scan(&held)
		var unpublished int
		_ = db.QueryRow(`SELECT count(*) FROM orders o WHERE status = 'paid' AND EXISTS (SELECT 1 FROM reservations r WHERE r.order_id = o.id AND r.status = 'held')`).Scan(&unpublished)
		if pending == 0 && held == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not settled after %s: %d orders pending, %d reservations held", within, pending, held)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestKillDuringCheckoutBurst kills the shop in the middle of a checkout
// burst, restarts it with the payment provider failing, and checks that
// every acknowledged order exists, nothing is oversold, and the orphaned
// reservations expire and return their stock.
func TestKillDuringCheckoutBurst(t *testing.T) {
	dir := t.TempDir()
	common := []string{"--data-dir", dir, "--addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--admin-token", testToken,
		"--access-log=false", "--log-level", "error", "--reservation-ttl", "2s", "--payment-claim-lease", "1s", "--expiry-sweep", "200ms"}
	p := startProc(t, append([]string{"serve", "--payment-latency", "300ms"}, common...)...)
	const sku, onHand = "CRASH-1", 150
	hotProduct(t, p.URL, sku, onHand)

	var mu sync.Mutex
	var acked []string
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range 24 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				if id, ok := placeOrder(p.URL, sku, fmt.Sprintf("w%d-%d", w, i)); ok {
					mu.Lock()
					acked = append(acked, id)
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(time.Duration(400+rand.IntN(800)) * time.Millisecond)
	p.kill()
	stop()
	wg.Wait()
	if len(acked) == 0 {
		t.Fatal("no order acknowledged before the kill")
	}

	// Restart with every payment call failing: what was not paid before the
	// kill can only expire.
	p = startProc(t, append([]string{"serve", "--payment-failure-rate", "1"}, common...)...)
	db := openDB(t, dir)
	waitSettled(t, db, 45*time.Second)

	for _, id := range acked {
		var status string
		if err := db.QueryRow(`SELECT status FROM orders WHERE id = ?`, id).Scan(&status); err != nil {
			t.Fatalf("acknowledged order %s lost: %v", id, err)
		}
		if status != "paid" && status != "expired" {
			t.Errorf("order %s is %s, want paid or expired", id, status)
		}
	}
	var paidUnits, expired int64
	_ = db.QueryRow(`SELECT coalesce(sum(l.quantity), 0) FROM orders o JOIN order_lines l ON l.order_id = o.id WHERE o.status = 'paid' AND l.sku = ?`, sku).Scan(&paidUnits)
	_ = db.QueryRow(`SELECT count(*) FROM orders WHERE status = 'expired'`).Scan(&expired)
	s := readStock(t, db, sku)
	if s.reserved != 0 || s.held != 0 || s.sold != paidUnits || s.committed != paidUnits || s.sold+s.reserved > s.onHand {
		t.Fatalf("stock %+v with %d units paid: oversold or leaked", s, paidUnits)
	}
	t.Logf("%d orders acknowledged before the kill; after restart %d units sold, %d orders expired and released", len(acked), s.sold, expired)
}

// TestWorkerKilledMidCapture kills the worker while captures are in
// flight; after a restart every order is paid by exactly one capture.
func TestWorkerKilledMidCapture(t *testing.T) {
	dir := t.TempDir()
	api := startProc(t, "serve", "--role", "api", "--data-dir", dir, "--addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
		"--admin-token", testToken, "--access-log=false", "--log-level", "error", "--nats-listen", "127.0.0.1:0")
	const sku, n = "CAPTURE-1", 30
	hotProduct(t, api.URL, sku, 100)
	var ids []string
	for i := range n {
		id, ok := placeOrder(api.URL, sku, fmt.Sprint("k", i))
		if !ok {
			t.Fatalf("order %d not placed", i)
		}
		ids = append(ids, id)
	}
	workerArgs := []string{"worker", "--data-dir", dir, "--admin-addr", "127.0.0.1:0", "--nats-url", api.NATS,
		"--log-level", "error", "--payment-latency", "400ms", "--consumer-ack-wait", "2s"}
	w := startProc(t, workerArgs...)
	db := openDB(t, dir)
	// Kill as soon as captures are under way.
	deadline := time.Now().Add(30 * time.Second)
	for {
		var claimed, paid int
		_ = db.QueryRow(`SELECT count(*) FROM orders WHERE payment_claimed_at IS NOT NULL`).Scan(&claimed)
		_ = db.QueryRow(`SELECT count(*) FROM orders WHERE status = 'paid'`).Scan(&paid)
		if claimed > 0 {
			t.Logf("killing the worker with %d orders claimed, %d paid", claimed, paid)
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("worker never started capturing")
		}
		time.Sleep(20 * time.Millisecond)
	}
	w.kill()
	startProc(t, workerArgs...)
	deadline = time.Now().Add(60 * time.Second)
	for {
		var paid int
		_ = db.QueryRow(`SELECT count(*) FROM orders WHERE status = 'paid' AND NOT EXISTS (SELECT 1 FROM reservations r WHERE r.order_id = orders.id AND r.status = 'held')`).Scan(&paid)
		if paid == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d orders paid and committed after the restart", paid, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, id := range ids {
		var captures int
		if err := db.QueryRow(`SELECT count(*) FROM sim_payment_captures WHERE order_id = ?`, id).Scan(&captures); err != nil || captures != 1 {
			t.Errorf("order %s: %d captures (%v), want exactly 1", id, captures, err)
		}
	}
	if s := readStock(t, db, sku); s.sold != n || s.reserved != 0 || s.committed != n {
		t.Fatalf("stock %+v, want %d sold and nothing reserved", s, n)
	}
}
