package sqlitestore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/surge-commerce/surge/internal/catalog"
	"github.com/surge-commerce/surge/internal/checkout"
	"github.com/surge-commerce/surge/internal/money"
	"github.com/surge-commerce/surge/internal/order"
)

// buyStore opens a migrated store with one product whose SKU "HOT" has
// onHand units, and a clock the test moves.
func buyStore(t *testing.T, onHand int64) (*Store, *atomic.Int64) {
	t.Helper()
	ctx := context.Background()
	var clock atomic.Int64
	clock.Store(time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC).UnixNano())
	s, err := Open(ctx, t.TempDir()+"/buy.db", WithClock(func() time.Time { return time.Unix(0, clock.Load()) }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := s.CreateCategory(ctx, catalog.Category{Slug: "drops", Name: "Drops"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.CreateProduct(ctx, catalog.Product{Slug: "hot-sneaker", Name: "Hot Sneaker", Status: catalog.StatusActive, CategoryID: c.ID,
		Variants: []catalog.Variant{{SKU: "HOT", Price: money.Money{Amount: 15000, Currency: "USD"}, OnHand: onHand},
			{SKU: "COLD", Price: money.Money{Amount: 100, Currency: "USD"}, OnHand: 1000}}})
	if err != nil {
		t.Fatal(err)
	}
	return s, &clock
}

func placement(s *Store, owner, key string, lines ...order.Line) checkout.Placement {
	now := s.now().UTC()
	id, _ := randomID("ord_")
	usd := money.Money{Amount: 15000, Currency: "USD"}
	return checkout.Placement{Owner: owner, Key: key, RequestHash: "h-" + key, Order: order.Order{
		ID: id, Email: "buyer@example.com", Status: order.StatusPendingPayment, Lines: lines,
		Subtotal: usd, Tax: money.Money{Currency: "USD"}, Shipping: money.Money{Currency: "USD"}, Total: usd,
		ShippingAddress: order.Address{Name: "A", Line1: "1", City: "C", PostalCode: "1", Country: "US"},
		PaymentMethod:   "pm_test", ReservedUntil: now.Add(10 * time.Minute), CreatedAt: now, UpdatedAt: now}}
}

func hot(q int64) order.Line {
	return order.Line{SKU: "HOT", ProductName: "Hot Sneaker", Quantity: q, UnitPrice: money.Money{Amount: 15000, Currency: "USD"},
		LineTotal: money.Money{Amount: 15000 * q, Currency: "USD"}}
}

func checkLedger(t *testing.T, s *Store, sku string, reserved, sold int64) {
	t.Helper()
	l, err := s.Ledger(context.Background(), sku)
	if err != nil {
		t.Fatal(err)
	}
	if l.Reserved != reserved || l.Sold != sold || l.HeldByReservations != reserved || l.SoldByReservations != sold || l.Reserved+l.Sold > l.OnHand {
		t.Fatalf("%s ledger %+v, want reserved %d sold %d matching reservations", sku, l, reserved, sold)
	}
}

// TestLastUnitsStampede: 500 concurrent buyers for the last 10 units.
func TestLastUnitsStampede(t *testing.T) {
	s, _ := buyStore(t, 10)
	var ok, soldOut atomic.Int64
	var wg sync.WaitGroup
	for i := range 500 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, err := s.PlaceOrder(context.Background(), placement(s, fmt.Sprint("buyer-", i), "k", hot(1)))
			var so *checkout.SoldOutError
			switch {
			case err == nil:
				ok.Add(1)
			case errors.As(err, &so) && len(so.SKUs) == 1 && so.SKUs[0] == "HOT":
				soldOut.Add(1)
			default:
				t.Errorf("buyer %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 10 || soldOut.Load() != 490 {
		t.Fatalf("orders %d, sold out %d; want 10 and 490", ok.Load(), soldOut.Load())
	}
	checkLedger(t, s, "HOT", 10, 0)
	var orders int
	if err := s.reader.QueryRow(`SELECT count(*) FROM orders`).Scan(&orders); err != nil || orders != 10 {
		t.Fatalf("orders in table = %d (%v)", orders, err)
	}
}

// TestMultiLineAllOrNothing: an order short on one line reserves nothing.
func TestMultiLineAllOrNothing(t *testing.T) {
	s, _ := buyStore(t, 2)
	cold := order.Line{SKU: "COLD", Quantity: 5, UnitPrice: money.Money{Amount: 100, Currency: "USD"}, LineTotal: money.Money{Amount: 500, Currency: "USD"}}
	_, _, err := s.PlaceOrder(context.Background(), placement(s, "a", "k1", cold, hot(3)))
	var so *checkout.SoldOutError
	if !errors.As(err, &so) || len(so.SKUs) != 1 || so.SKUs[0] != "HOT" {
		t.Fatalf("err = %v, want sold out naming HOT", err)
	}
	checkLedger(t, s, "COLD", 0, 0)
	checkLedger(t, s, "HOT", 0, 0)
}

// TestIdempotentConcurrentDuplicates: one key, many simultaneous retries,
// one order.
func TestIdempotentConcurrentDuplicates(t *testing.T) {
	s, _ := buyStore(t, 100)
	p := placement(s, "sess-1", "key-1", hot(2))
	var wg sync.WaitGroup
	ids := make([]string, 50)
	replays := atomic.Int64{}
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			q := p
			q.Order.ID, _ = randomID("ord_") // each retry would mint its own ID
			o, replayed, err := s.PlaceOrder(context.Background(), q)
			if err != nil {
				t.Error(err)
				return
			}
			if replayed {
				replays.Add(1)
			}
			ids[i] = o.ID
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("duplicates got different orders: %s vs %s", id, ids[0])
		}
	}
	if replays.Load() != 49 {
		t.Fatalf("replays = %d, want 49", replays.Load())
	}
	checkLedger(t, s, "HOT", 2, 0)
	q := p
	q.RequestHash = "other body"
	if _, _, err := s.PlaceOrder(context.Background(), q); !errors.Is(err, checkout.ErrIdempotencyMismatch) {
		t.Fatalf("other body: %v", err)
	}
	// Same key, another owner: a different order.
	r := p
	r.Owner = "sess-2"
	r.Order.ID, _ = randomID("ord_")
	o, replayed, err := s.PlaceOrder(context.Background(), r)
	if err != nil || replayed || o.ID == ids[0] {
		t.Fatalf("other owner: %v replayed=%v", err, replayed)
	}
}

// TestOrderLifecycle walks payment, stock commit and expiry, checking the
// stock ledger at each step and that repeats change nothing.
func TestOrderLifecycle(t *testing.T) {
	ctx := context.Background()
	s, clock := buyStore(t, 10)
	paid, _, err := s.PlaceOrder(ctx, placement(s, "a", "1", hot(2)))
	if err != nil {
		t.Fatal(err)
	}
	failed, _, _ := s.PlaceOrder(ctx, placement(s, "b", "1", hot(3)))
	stale, _, _ := s.PlaceOrder(ctx, placement(s, "c", "1", hot(4)))
	claimed, _, _ := s.PlaceOrder(ctx, placement(s, "d", "1", hot(1)))
	checkLedger(t, s, "HOT", 10, 0)

	if _, ok, err := s.ClaimPayment(ctx, paid.ID); !ok || err != nil {
		t.Fatalf("claim: %v %v", ok, err)
	}
	for range 2 { // the second time is a redelivery
		if err := s.MarkPaid(ctx, paid.ID, "captured"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CommitStock(ctx, paid.ID); err != nil {
			t.Fatal(err)
		}
	}
	checkLedger(t, s, "HOT", 8, 2)
	for range 2 {
		if err := s.MarkPaymentFailed(ctx, failed.ID, "card declined"); err != nil {
			t.Fatal(err)
		}
	}
	checkLedger(t, s, "HOT", 5, 2)
	if err := s.MarkPaid(ctx, failed.ID, "late capture"); !errors.Is(err, order.ErrTransition) {
		t.Fatalf("paying a failed order: %v", err)
	}
	if _, ok, _ := s.ClaimPayment(ctx, claimed.ID); !ok {
		t.Fatal("claim refused")
	}

	clock.Add(int64(10*time.Minute + 30*time.Second))
	ids, err := s.ExpireDue(ctx, 100, time.Hour)
	if err != nil || len(ids) != 1 || ids[0] != stale.ID {
		t.Fatalf("expired %v (%v), want only %s: a claimed order must not expire under its capture", ids, err, stale.ID)
	}
	checkLedger(t, s, "HOT", 1, 2)
	if ids, _ := s.ExpireDue(ctx, 100, time.Hour); len(ids) != 0 {
		t.Fatalf("second sweep expired %v", ids)
	}
	// Once the claim's lease lapses (the provider kept failing), the
	// claimed order may expire too.
	if ids, _ := s.ExpireDue(ctx, 100, 5*time.Minute); len(ids) != 1 || ids[0] != claimed.ID {
		t.Fatalf("lapsed claim: expired %v, want %s", ids, claimed.ID)
	}
	checkLedger(t, s, "HOT", 0, 2)
	if _, ok, _ := s.ClaimPayment(ctx, stale.ID); ok {
		t.Fatal("claimed an expired order")
	}
	o, err := s.Order(ctx, paid.ID)
	if err != nil || o.Status != order.StatusPaid || len(o.History) != 2 || o.History[1].From != order.StatusPendingPayment {
		t.Fatalf("paid order: %+v %v", o.History, err)
	}
	var events int
	if err := s.reader.QueryRow(`SELECT count(*) FROM outbox`).Scan(&events); err != nil || events != 4+1+1+2 {
		t.Fatalf("outbox events = %d (%v), want 8 (4 created, paid, failed, 2 expired)", events, err)
	}
	if first, _ := s.MarkConfirmationSent(ctx, paid.ID); !first {
		t.Fatal("first confirmation not first")
	}
	if first, _ := s.MarkConfirmationSent(ctx, paid.ID); first {
		t.Fatal("second confirmation counted as first")
	}
}

// TestGroupCommitIsolation: a failing write in a batch does not undo the
// others, and every caller learns its own outcome.
func TestGroupCommitIsolation(t *testing.T) {
	s, _ := buyStore(t, 1)
	if _, err := s.writer.Exec(`CREATE TABLE counters_test (n INTEGER)`); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var okCount atomic.Int64
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.write(context.Background(), func(tx wtx) error {
				if _, err := tx.Exec(`INSERT INTO counters_test (n) VALUES (?)`, i); err != nil {
					return err
				}
				if i%3 == 0 {
					return errors.New("refused")
				}
				return nil
			})
			if err == nil {
				okCount.Add(1)
			}
		}()
	}
	wg.Wait()
	var n int64
	if err := s.reader.QueryRow(`SELECT count(*) FROM counters_test`).Scan(&n); err != nil || n != okCount.Load() || n != 133 {
		t.Fatalf("rows %d, ok %d (%v); want 133", n, okCount.Load(), err)
	}
}
