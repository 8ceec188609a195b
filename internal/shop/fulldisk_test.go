package shop_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
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

// TestAcknowledgedOrdersSurviveAFullDisk runs the embedded shop (SQLite
// and the embedded NATS server) with its data directory on a small real
// filesystem, fills it while buyers check out, and frees it again. Every
// order a buyer was told 201 must end paid: the event bus recovers in the
// process, an order whose event could not be delivered meanwhile is never
// expired, and readiness says degraded while events are stuck.
func TestAcknowledgedOrdersSurviveAFullDisk(t *testing.T) {
	const (
		// Reservations placed on the full disk run out while it is still
		// full; once their events are out, the workers have this long to
		// take the payments, even on a loaded machine.
		ttl      = 10 * time.Second
		fullFor  = ttl + 2*time.Second
		maxLag   = time.Second
		settleIn = 90 * time.Second
	)
	disk := enginetest.NewSmallDisk(t, 64<<20)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cfg := shop.Defaults()
	cfg.DataDir, cfg.Admission, cfg.AccessLog = filepath.Join(disk.Dir, "data"), false, false
	cfg.ReservationTTL, cfg.SweepEvery, cfg.OutboxMaxLag = ttl, 100*time.Millisecond, maxLag
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelError}))
	sh, err := shop.Open(ctx, cfg, log, telemetry.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sh.Close() })
	h := ops.NewHealth()
	sh.RegisterHealth(h, shop.RoleAll)
	h.SetReady(true)
	admin := httptest.NewServer(ops.NewHandler(h, prometheus.NewRegistry()))
	t.Cleanup(admin.Close)
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sh.Run(runCtx, shop.RoleAll) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("shop: %v", err)
		}
	})
	srv := httptest.NewServer(sh.Handler)
	t.Cleanup(srv.Close)

	const sku = "DISK-1"
	c, err := sh.Store.CreateCategory(ctx, catalog.Category{Slug: "disk", Name: "Disk"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sh.Store.CreateProduct(ctx, catalog.Product{Slug: "full-disk-tee", Name: "Full Disk Tee",
		Status: catalog.StatusActive, CategoryID: c.ID,
		Variants: []catalog.Variant{{SKU: sku, Price: money.Money{Amount: 1500, Currency: "USD"}, OnHand: 1000}}}); err != nil {
		t.Fatal(err)
	}

	var (
		mu    sync.Mutex
		acked = map[string]string{} // order ID -> when it was placed
		tried int
	)
	buy := func(phase string, n int) {
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				id, err := buyOne(ctx, srv.URL, sku, fmt.Sprintf("%s-%d", phase, i))
				mu.Lock()
				defer mu.Unlock()
				tried++
				if err == nil {
					acked[id] = phase
				}
			})
		}
		wg.Wait()
	}
	buy("before", 10)
	// A database that has been running a while has room inside its files:
	// free pages, and a write-ahead log it reuses after each checkpoint.
	// So SQLite still commits on a full disk (for a while) when files that
	// must grow, like JetStream's message blocks, cannot.
	db := sh.Store.Writer()
	for _, q := range []string{`CREATE TABLE ballast (b BLOB)`,
		`INSERT INTO ballast SELECT zeroblob(1 << 20) FROM (SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4
			UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8)`,
		`DROP TABLE ballast`, `PRAGMA wal_checkpoint(RESTART)`} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	t.Logf("filled the disk with %d bytes", disk.Fill(t))
	full := time.Now()
	buy("full", 40)
	mu.Lock()
	duringFull := 0
	for _, phase := range acked {
		if phase == "full" {
			duringFull++
		}
	}
	mu.Unlock()
	t.Logf("%d of 40 checkouts on the full disk answered 201", duringFull)
	if duringFull == 0 {
		t.Fatal("no checkout succeeded on the full disk: the test shows nothing about their events")
	}
	// Stuck events make the replica degraded, not unready.
	deadline := time.After(maxLag + 10*time.Second)
	for {
		code, b := readyz(t, admin.URL)
		if code != 200 {
			t.Fatalf("readyz %d %+v on a full disk; want 200 degraded", code, b)
		}
		if b.Degraded["outbox"] != "" {
			t.Logf("while full: %+v", b.Degraded)
			break
		}
		select {
		case <-deadline:
			t.Fatalf("readiness never reported the stuck outbox: %+v", b)
		case <-time.After(100 * time.Millisecond):
		}
	}
	// Stay full until every reservation placed meanwhile has run out.
	select {
	case <-time.After(time.Until(full.Add(fullFor))):
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	disk.Free(t)
	freed := time.Now()
	buy("after", 10)

	// Every acknowledged order ends paid.
	var last map[order.Status]int
	deadline = time.After(settleIn)
	for {
		last = map[order.Status]int{}
		mu.Lock()
		ids := make([]string, 0, len(acked))
		for id := range acked {
			ids = append(ids, id)
		}
		mu.Unlock()
		for _, id := range ids {
			o, err := sh.Store.Order(ctx, id)
			if err != nil {
				t.Fatalf("acknowledged order %s: %v", id, err)
			}
			last[o.Status]++
		}
		if last[order.StatusExpired] > 0 {
			t.Fatalf("%d acknowledged orders expired unpaid (%v)", last[order.StatusExpired], last)
		}
		if last[order.StatusPaid] == len(ids) {
			break
		}
		select {
		case <-deadline:
			t.Fatalf("%v after the disk was freed: %v of %d acknowledged orders", settleIn, last, len(ids))
		case <-time.After(200 * time.Millisecond):
		}
	}
	t.Logf("%d acknowledged orders (%d checkouts) all paid %v after the disk was freed", len(acked), tried,
		time.Since(freed).Round(time.Millisecond))
	eventually(t, "ready again", func() bool {
		code, b := readyz(t, admin.URL)
		return code == 200 && b.Status == "ready" && !strings.Contains(fmt.Sprint(b.Degraded), "outbox")
	})
}
