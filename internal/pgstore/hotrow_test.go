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

// TestPlaceOrderCommitsWithoutTheShop: once an order's stock row is
// locked, PostgreSQL commits the order without waiting for another word
// from the shop. Every buyer of a hot SKU queues for that row's lock, so a
// lock held across a round trip to the shop (an UPDATE's answer, then the
// shop's COMMIT) makes the whole queue wait for the network and the
// shop's scheduler once per order.
//
// The test holds the row with a transaction of its own, lets PlaceOrder
// queue behind it, then stops everything the shop sends from reaching
// the server (a proxy holds it) and releases the row: the order must
// commit anyway.
func TestPlaceOrderCommitsWithoutTheShop(t *testing.T) {
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
	usd := func(a int64) money.Money { return money.Money{Amount: a, Currency: "USD"} }
	cat, err := s.CreateCategory(ctx, catalog.Category{Slug: "drops", Name: "Drops"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateProduct(ctx, catalog.Product{Slug: "p", Name: "P", Status: catalog.StatusActive, CategoryID: cat.ID,
		Variants: []catalog.Variant{{SKU: "HOT", Price: usd(100), OnHand: 5}}}); err != nil {
		t.Fatal(err)
	}

	direct, err := pgx.Connect(ctx, primaryURL)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close(ctx)
	watch, err := pgx.Connect(ctx, primaryURL)
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Close(ctx)
	holder, err := direct.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback(ctx)
	if _, err := holder.Exec(ctx, `SELECT 1 FROM variants WHERE sku = 'HOT' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}

	now := time.Now()
	placed := make(chan error, 1)
	go func() {
		_, _, err := s.PlaceOrder(ctx, checkout.Placement{Owner: "buyer", Key: "k", RequestHash: "h",
			Order: order.Order{ID: "ord_hot", Email: "b@example.com", Status: order.StatusPendingPayment,
				Lines:    []order.Line{{SKU: "HOT", Quantity: 1, UnitPrice: usd(100), LineTotal: usd(100)}},
				Subtotal: usd(100), Tax: usd(0), Shipping: usd(0), Total: usd(100), PaymentMethod: "pm",
				ReservedUntil: now.Add(time.Hour), CreatedAt: now, UpdatedAt: now}})
		placed <- err
	}()

	// waitFor polls the database for a condition, up to a deadline.
	waitFor := func(what, query string, d time.Duration) bool {
		t.Helper()
		deadline := time.Now().Add(d)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			var ok bool
			if err := watch.QueryRow(ctx, query).Scan(&ok); err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			if ok || time.Now().After(deadline) {
				return ok
			}
			<-tick.C
		}
	}
	if !waitFor("PlaceOrder waiting for the row", `SELECT count(*) > 0 FROM pg_stat_activity
		WHERE datname = current_database() AND wait_event_type = 'Lock' AND backend_type = 'client backend'`, 30*time.Second) {
		t.Fatal("PlaceOrder never waited for the stock row")
	}
	proxy.Hold()
	if err := holder.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if !waitFor("order committed", `SELECT EXISTS (SELECT 1 FROM orders WHERE id = 'ord_hot')`, 5*time.Second) {
		t.Error("the order did not commit while the shop could not reach the server: the stock row's lock waits for a round trip to the shop")
	}
	proxy.Release()
	if err := <-placed; err != nil {
		t.Fatalf("PlaceOrder: %v", err)
	}
	l, err := s.Ledger(ctx, "HOT")
	if err != nil {
		t.Fatal(err)
	}
	if l.Reserved != 1 || l.HeldByReservations != 1 {
		t.Errorf("ledger %+v, want one unit reserved", l)
	}
}
