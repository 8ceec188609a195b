package pgstore

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/surge-commerce/surge/internal/catalog"
	"github.com/surge-commerce/surge/internal/checkout"
	"github.com/surge-commerce/surge/internal/enginetest"
	"github.com/surge-commerce/surge/internal/money"
	"github.com/surge-commerce/surge/internal/order"
)

// tripCounter counts what a pool sends the server: each query and each
// batch is one round trip once its statements are prepared.
type tripCounter struct{ n atomic.Int64 }

func (c *tripCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.n.Add(1)
	return ctx
}
func (c *tripCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (c *tripCounter) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	c.n.Add(1)
	return ctx
}
func (c *tripCounter) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (c *tripCounter) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}

// TestOrderPathRoundTrips: the cart steps before a checkout and what the
// order workers do per order reach the primary in few round trips (each
// a pair of system calls on both sides and a wait). Before, each statement
// was one, and BEGIN and COMMIT two more: CreateCart 3, AddCartItem 8,
// ClaimPayment 6, MarkPaid 4, Order 3, MarkConfirmationSent 3 (CommitStock
// was 5 and is one statement, commit_stock).
func TestOrderPathRoundTrips(t *testing.T) {
	url, _ := enginetest.Postgres(t)
	ctx := context.Background()
	s, err := Open(ctx, Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	trips := &tripCounter{}
	counted, err := newPool(ctx, url, 4, trips)
	if err != nil {
		t.Fatal(err)
	}
	plain := s.primary
	s.primary = counted
	t.Cleanup(plain.Close)

	c, err := s.CreateCategory(ctx, catalog.Category{Slug: "trips", Name: "Trips"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateProduct(ctx, catalog.Product{Slug: "trips", Name: "Trips", Status: catalog.StatusActive, CategoryID: c.ID,
		Variants: []catalog.Variant{{SKU: "TRIP-1", Price: money.Money{Amount: 1000, Currency: "USD"}, OnHand: 10}}}); err != nil {
		t.Fatal(err)
	}
	usd := func(a int64) money.Money { return money.Money{Amount: a, Currency: "USD"} }
	place := func(key string) string {
		t.Helper()
		id, err := randomID("ord_")
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now().UTC()
		o, _, err := s.PlaceOrder(ctx, checkout.Placement{Owner: "trips", Key: key, RequestHash: "h", Order: order.Order{
			ID: id, Email: "t@example.com", Status: order.StatusPendingPayment,
			Lines:    []order.Line{{SKU: "TRIP-1", ProductName: "Trips", Quantity: 1, UnitPrice: usd(1000), LineTotal: usd(1000)}},
			Subtotal: usd(1000), Tax: usd(0), Shipping: usd(0), Total: usd(1000),
			ShippingAddress: order.Address{Name: "T", Line1: "1 St", City: "C", PostalCode: "1", Country: "US"},
			PaymentMethod:   "pm", CardLast4: "4242", ReservedUntil: now.Add(time.Hour), CreatedAt: now, UpdatedAt: now,
			AccessToken: order.NewAccessToken()}})
		if err != nil {
			t.Fatal(err)
		}
		return o.ID
	}
	// One order's worker steps, as the pipeline runs them; the first
	// order prepares the statements, the second is counted.
	steps := []struct {
		name string
		want int64
		run  func(id string) error
	}{
		{"ClaimPayment", 1, func(id string) error { _, _, err := s.ClaimPayment(ctx, id); return err }},
		{"MarkPaid", 1, func(id string) error { return s.MarkPaid(ctx, id, "captured") }},
		{"CommitStock", 1, func(id string) error { _, err := s.CommitStock(ctx, id); return err }},
		{"ConfirmationSent", 1, func(id string) error { _, err := s.ConfirmationSent(ctx, id); return err }},
		{"Order", 1, func(id string) error { _, err := s.Order(ctx, id); return err }},
		{"MarkConfirmationSent", 1, func(id string) error { _, err := s.MarkConfirmationSent(ctx, id); return err }},
	}
	// The cart steps before a checkout: CreateCart was 3 round trips,
	// AddCartItem 8.
	count := func(name string, want int64, run func() error) {
		t.Helper()
		before := trips.n.Load()
		if err := run(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := trips.n.Load() - before; got != want {
			t.Errorf("%s: %d round trips, want %d", name, got, want)
		}
	}
	for range 2 { // the first prepares the statements
		var cartID string
		count("CreateCart", 1, func() (err error) { cartID, err = s.CreateCart(ctx, 0); return err })
		count("AddCartItem", 2, func() error { _, err := s.AddCartItem(ctx, cartID, "TRIP-1", 1); return err })
	}
	warm := place("warm")
	for _, st := range steps {
		if err := st.run(warm); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
	}
	id := place("counted")
	for _, st := range steps {
		before := trips.n.Load()
		if err := st.run(id); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if got := trips.n.Load() - before; got != st.want {
			t.Errorf("%s: %d round trips, want %d", st.name, got, st.want)
		}
	}
	l, err := s.Ledger(ctx, "TRIP-1")
	if err != nil {
		t.Fatal(err)
	}
	if l.Sold != 2 || l.Reserved != 0 {
		t.Fatalf("ledger %+v: want both orders sold", l)
	}
}
