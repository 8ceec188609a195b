package pgstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/surge-commerce/surge/internal/catalog"
	"github.com/surge-commerce/surge/internal/checkout"
	"github.com/surge-commerce/surge/internal/enginetest"
	"github.com/surge-commerce/surge/internal/money"
	"github.com/surge-commerce/surge/internal/order"
	"github.com/surge-commerce/surge/internal/pgstore"
)

// Every buyer of a hot SKU queues for its variant row's lock, taken by
// PlaceOrder and again by CommitStock. A lock held across a round trip to
// the shop (an UPDATE's answer, then the shop's COMMIT) makes the whole
// queue wait for the network and the shop's scheduler once per order. The
// tests below hold the row with a transaction of their own, let the store
// queue behind it, then stop everything the shop sends from reaching the
// server (a proxy holds it) and release the row: the store's write must
// commit anyway.

// hotRow is a store reached through a proxy, with one SKU, HOT, and a
// direct connection that locks HOT's row.
type hotRow struct {
	t      *testing.T
	s      *pgstore.Store
	proxy  *enginetest.Proxy
	holder pgx.Tx
	watch  *pgx.Conn
}

func newHotRow(t *testing.T) *hotRow {
	ctx := context.Background()
	primaryURL, _ := enginetest.Postgres(t)
	proxy := enginetest.NewProxy(t, primaryURL)
	s, err := pgstore.Open(ctx, pgstore.Config{URL: proxy.URL, MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		proxy.Release()
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	cat, err := s.CreateCategory(ctx, catalog.Category{Slug: "drops", Name: "Drops"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateProduct(ctx, catalog.Product{Slug: "p", Name: "P", Status: catalog.StatusActive, CategoryID: cat.ID,
		Variants: []catalog.Variant{{SKU: "HOT", Price: usd(100), OnHand: 5}}}); err != nil {
		t.Fatal(err)
	}
	h := &hotRow{t: t, s: s, proxy: proxy}
	for _, c := range []**pgx.Conn{&h.watch, new(*pgx.Conn)} {
		if *c, err = pgx.Connect(ctx, primaryURL); err != nil {
			t.Fatal(err)
		}
		conn := *c
		t.Cleanup(func() { conn.Close(context.Background()) })
		if c != &h.watch {
			h.holder, err = conn.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	return h
}

func usd(a int64) money.Money { return money.Money{Amount: a, Currency: "USD"} }

// lock takes HOT's row.
func (h *hotRow) lock() {
	if _, err := h.holder.Exec(context.Background(), `SELECT 1 FROM variants WHERE sku = 'HOT' FOR UPDATE`); err != nil {
		h.t.Fatal(err)
	}
}

// waitFor polls the database for a condition, up to a deadline.
func (h *hotRow) waitFor(what, query string, d time.Duration) bool {
	h.t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		var ok bool
		if err := h.watch.QueryRow(context.Background(), query).Scan(&ok); err != nil {
			h.t.Fatalf("%s: %v", what, err)
		}
		if ok || time.Now().After(deadline) {
			return ok
		}
		<-tick.C
	}
}

// commitsWhileHeld runs write while HOT's row is locked, waits until it
// queues for the row, holds what the shop sends, releases the row, and
// reports whether committed (a query) becomes true without the shop.
// Then it lets the shop's bytes through and returns write's error.
func (h *hotRow) commitsWhileHeld(write func() error, committed string) (bool, error) {
	h.t.Helper()
	h.lock()
	done := make(chan error, 1)
	go func() { done <- write() }()
	if !h.waitFor("waiting for the row", `SELECT count(*) > 0 FROM pg_stat_activity
		WHERE datname = current_database() AND wait_event_type = 'Lock' AND backend_type = 'client backend'`, 30*time.Second) {
		h.t.Fatal("the write never waited for HOT's row")
	}
	h.proxy.Hold()
	if err := h.holder.Rollback(context.Background()); err != nil {
		h.t.Fatal(err)
	}
	ok := h.waitFor("committed", committed, 5*time.Second)
	h.proxy.Release()
	return ok, <-done
}

func hotOrder(id string) checkout.Placement {
	now := time.Now()
	return checkout.Placement{Owner: "buyer-" + id, Key: "k", RequestHash: "h",
		Order: order.Order{ID: id, Email: "b@example.com", Status: order.StatusPendingPayment,
			Lines:    []order.Line{{SKU: "HOT", Quantity: 1, UnitPrice: usd(100), LineTotal: usd(100)}},
			Subtotal: usd(100), Tax: usd(0), Shipping: usd(0), Total: usd(100), PaymentMethod: "pm",
			ReservedUntil: now.Add(time.Hour), CreatedAt: now, UpdatedAt: now}}
}

// TestPlaceOrderCommitsWithoutTheShop: once PlaceOrder has HOT's row,
// PostgreSQL commits the order without another word from the shop.
func TestPlaceOrderCommitsWithoutTheShop(t *testing.T) {
	h := newHotRow(t)
	ok, err := h.commitsWhileHeld(func() error {
		_, _, err := h.s.PlaceOrder(context.Background(), hotOrder("ord_hot"))
		return err
	}, `SELECT EXISTS (SELECT 1 FROM orders WHERE id = 'ord_hot')`)
	if !ok {
		t.Error("the order did not commit while the shop could not reach the server: the stock row's lock waits for a round trip to the shop")
	}
	if err != nil {
		t.Fatalf("PlaceOrder: %v", err)
	}
	l, err := h.s.Ledger(context.Background(), "HOT")
	if err != nil {
		t.Fatal(err)
	}
	if l.Reserved != 1 || l.HeldByReservations != 1 {
		t.Errorf("ledger %+v, want one unit reserved", l)
	}
}

// TestCommitStockCommitsWithoutTheShop: once CommitStock has HOT's row,
// PostgreSQL commits the sale without another word from the shop.
func TestCommitStockCommitsWithoutTheShop(t *testing.T) {
	h := newHotRow(t)
	ctx := context.Background()
	if _, _, err := h.s.PlaceOrder(ctx, hotOrder("ord_hot")); err != nil {
		t.Fatal(err)
	}
	if err := h.s.MarkPaid(ctx, "ord_hot", "captured"); err != nil {
		t.Fatal(err)
	}
	var n int
	ok, err := h.commitsWhileHeld(func() error {
		var err error
		n, err = h.s.CommitStock(ctx, "ord_hot")
		return err
	}, `SELECT EXISTS (SELECT 1 FROM reservations WHERE order_id = 'ord_hot' AND status = 'committed')`)
	if !ok {
		t.Error("the sale did not commit while the shop could not reach the server: the stock row's lock waits for a round trip to the shop")
	}
	if err != nil || n != 1 {
		t.Fatalf("CommitStock = %d, %v; want 1 reservation", n, err)
	}
	l, err := h.s.Ledger(ctx, "HOT")
	if err != nil {
		t.Fatal(err)
	}
	if l.Reserved != 0 || l.Sold != 1 || l.SoldByReservations != 1 {
		t.Errorf("ledger %+v, want one unit sold", l)
	}
}
