package storetest

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/surge-commerce/surge/internal/cart"
	"github.com/surge-commerce/surge/internal/catalog"
	"github.com/surge-commerce/surge/internal/checkout"
	"github.com/surge-commerce/surge/internal/customer"
	"github.com/surge-commerce/surge/internal/drop"
	"github.com/surge-commerce/surge/internal/dropreport"
	"github.com/surge-commerce/surge/internal/order"
	"github.com/surge-commerce/surge/internal/outbox"
	"github.com/surge-commerce/surge/internal/pipeline"
	"github.com/surge-commerce/surge/internal/session"
	"github.com/surge-commerce/surge/internal/tracing"
)

// Store is what the buy-path suite needs: the whole store of a shop, as
// shop.Store asks of every adapter, less migrations and lifecycle.
type Store interface {
	catalog.Store
	checkout.Store
	cart.Store
	session.Store
	pipeline.Store
	outbox.Source
	drop.Store
	dropreport.Store

	CreateCustomer(ctx context.Context, c customer.Customer) (customer.Customer, error)
	CustomerByEmail(ctx context.Context, email string) (customer.Customer, error)
	CustomerByID(ctx context.Context, id int64) (customer.Customer, error)
	AssignCart(ctx context.Context, cartID string, customerID int64) error
	OrdersByCustomer(ctx context.Context, customerID int64, limit int) ([]order.Order, error)
	OrderPlacedInSession(ctx context.Context, orderID, sessionID string) (bool, error)
	Ledger(ctx context.Context, sku string) (catalog.StockLedger, error)
	// Pending lists unpublished outbox events, oldest first, without
	// claiming them.
	Pending(ctx context.Context, limit int) ([]outbox.Event, error)
}

// RunShop runs the buy-path conformance tests (customers, sessions, carts,
// offers, orders and their stock, the outbox, drops), each on a fresh store
// from newStore, which should register its own cleanup with t. The store
// must take its clock from the wall: the suite sets times relative to
// time.Now, such as reservations that ran out a minute ago.
func RunShop(t *testing.T, newStore func(t *testing.T) Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s Store)
	}{
		{"Customers", testCustomers},
		{"Sessions", testSessions},
		{"Carts", testCarts},
		{"MergeAndAssignCarts", testMergeAndAssignCarts},
		{"Offers", testOffers},
		{"PlaceOrder", testPlaceOrder},
		{"LastUnitsStampede", testLastUnitsStampede},
		{"MultiLineAllOrNothing", testMultiLineAllOrNothing},
		{"IdempotentConcurrentDuplicates", testIdempotentConcurrentDuplicates},
		{"OrderLifecycle", testOrderLifecycle},
		{"PipelineErrors", testPipelineErrors},
		{"ConcurrentSettlement", testConcurrentSettlement},
		{"SetStockBelowReserved", testSetStockBelowReserved},
		{"Outbox", testOutbox},
		{"OutboxClaims", testOutboxClaims},
		{"OutboxTraceParent", testOutboxTraceParent},
		{"ExpiryWaitsForDelivery", testExpiryWaitsForDelivery},
		{"Drops", testDrops},
		{"DropLimit", testDropLimit},
		{"CartDropLimit", testCartDropLimit},
		{"DropEvents", testDropEvents},
		{"Hammer", testHammer},
		{"UnstorableKeys", testUnstorableKeys},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, newStore(t))
		})
	}
}

// Clock is a clock tests move by hand, for the stores' notion of now.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock standing at t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock on by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// RunShopClocked runs the buy-path tests in which time must pass (leases
// running out, reservations moving on), each on a fresh store from
// newStore that takes its time from now.
func RunShopClocked(t *testing.T, newStore func(t *testing.T, now func() time.Time) Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s Store, c *Clock)
	}{
		{"OutboxClaimLease", testOutboxClaimLease},
		{"LateDeliveryMovesReservation", testLateDeliveryMovesReservation},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// Microseconds: every engine keeps that precision.
			c := NewClock(time.Now().UTC().Truncate(time.Microsecond))
			tt.fn(t, newStore(t, c.Now), c)
		})
	}
}

// sameInstant reports whether a and b are the same time to the
// microsecond, the precision every engine keeps.
func sameInstant(a, b time.Time) bool {
	d := a.Sub(b)
	return d < time.Microsecond && d > -time.Microsecond
}

func newID(prefix string) string {
	b := make([]byte, 12)
	crand.Read(b)
	return prefix + hex.EncodeToString(b)
}

func testCustomers(t *testing.T, s Store) {
	ctx := context.Background()
	before := time.Now()
	c, err := s.CreateCustomer(ctx, customer.Customer{Email: "ada@example.com", Name: "Ada", PasswordHash: "hash-1"})
	if err != nil {
		t.Fatal(err)
	}
	if c.ID <= 0 || c.CreatedAt.Before(before.Add(-time.Second)) || c.CreatedAt.After(time.Now().Add(time.Second)) {
		t.Errorf("CreateCustomer = %+v; want an ID and the time of creation", c)
	}
	_, err = s.CreateCustomer(ctx, customer.Customer{Email: "ada@example.com", Name: "Other", PasswordHash: "hash-2"})
	wantErr(t, "CreateCustomer(taken email)", err, customer.ErrEmailTaken)
	other, err := s.CreateCustomer(ctx, customer.Customer{Email: "bob@example.com", PasswordHash: "hash-3"})
	if err != nil || other.ID == c.ID {
		t.Fatalf("second customer: %+v, %v", other, err)
	}

	for name, get := range map[string]func() (customer.Customer, error){
		"CustomerByEmail": func() (customer.Customer, error) { return s.CustomerByEmail(ctx, "ada@example.com") },
		"CustomerByID":    func() (customer.Customer, error) { return s.CustomerByID(ctx, c.ID) },
	} {
		got, err := get()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got.ID != c.ID || got.Email != c.Email || got.Name != c.Name || got.PasswordHash != c.PasswordHash || !sameInstant(got.CreatedAt, c.CreatedAt) {
			t.Errorf("%s = %+v, want %+v", name, got, c)
		}
	}
	_, err = s.CustomerByEmail(ctx, "nobody@example.com")
	wantErr(t, "CustomerByEmail(missing)", err, customer.ErrNotFound)
	_, err = s.CustomerByID(ctx, other.ID+1000)
	wantErr(t, "CustomerByID(missing)", err, customer.ErrNotFound)
}

func testSessions(t *testing.T, s Store) {
	ctx := context.Background()
	now := time.Now().UTC()
	se := session.Session{ID: "sess-live", CSRF: "csrf-1", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := s.CreateSession(ctx, se); err != nil {
		t.Fatal(err)
	}
	got, err := s.Session(ctx, se.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != se.ID || got.CSRF != se.CSRF || got.CustomerID != 0 || got.CartID != "" ||
		!sameInstant(got.CreatedAt, se.CreatedAt) || !sameInstant(got.ExpiresAt, se.ExpiresAt) {
		t.Errorf("Session = %+v, want %+v", got, se)
	}

	c, err := s.CreateCustomer(ctx, customer.Customer{Email: "sam@example.com", PasswordHash: "h"})
	if err != nil {
		t.Fatal(err)
	}
	cartID, err := s.CreateCart(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	se.CustomerID, se.CartID = c.ID, cartID
	if err := s.UpdateSession(ctx, se); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Session(ctx, se.ID); err != nil || got.CustomerID != c.ID || got.CartID != cartID {
		t.Errorf("after UpdateSession: %+v, %v; want customer %d, cart %s", got, err, c.ID, cartID)
	}
	// Signing out keeps the cart with the session but not the customer.
	se.CustomerID = 0
	if err := s.UpdateSession(ctx, se); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Session(ctx, se.ID); err != nil || got.CustomerID != 0 || got.CartID != cartID {
		t.Errorf("after signing out: %+v, %v", got, err)
	}
	err = s.UpdateSession(ctx, session.Session{ID: "sess-missing", CSRF: "x"})
	wantErr(t, "UpdateSession(missing)", err, session.ErrNotFound)

	expired := session.Session{ID: "sess-expired", CSRF: "csrf-2", CreatedAt: now.Add(-2 * time.Hour), ExpiresAt: now.Add(-time.Second)}
	if err := s.CreateSession(ctx, expired); err != nil {
		t.Fatal(err)
	}
	_, err = s.Session(ctx, expired.ID)
	wantErr(t, "Session(expired)", err, session.ErrNotFound)
	_, err = s.Session(ctx, "sess-missing")
	wantErr(t, "Session(missing)", err, session.ErrNotFound)

	if err := s.DeleteSession(ctx, se.ID); err != nil {
		t.Fatal(err)
	}
	_, err = s.Session(ctx, se.ID)
	wantErr(t, "Session(deleted)", err, session.ErrNotFound)
	if err := s.DeleteSession(ctx, se.ID); err != nil {
		t.Errorf("deleting a deleted session: %v", err)
	}
	// The expired session was pruned: its ID can start a new session.
	expired.ExpiresAt = now.Add(time.Hour)
	if err := s.CreateSession(ctx, expired); err != nil {
		t.Errorf("reusing the ID of a pruned session: %v", err)
	}
}

func testCarts(t *testing.T, s Store) {
	ctx := context.Background()
	id, err := s.CreateCart(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if lines, err := s.CartLines(ctx, id); err != nil || len(lines) != 0 {
		t.Fatalf("new cart: %v, %v", lines, err)
	}
	add := func(sku string, qty, want int64) {
		t.Helper()
		got, err := s.AddCartItem(ctx, id, sku, qty)
		if err != nil || got != want {
			t.Fatalf("AddCartItem(%s, %d) = %d, %v; want %d", sku, qty, got, err, want)
		}
	}
	add("A-1", 2, 2)
	add("B-1", 1, 1)
	add("A-1", 3, 5)
	wantLines := func(step string, want ...cart.Line) {
		t.Helper()
		got, err := s.CartLines(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("after %s: lines %v, want %v", step, got, want)
		}
	}
	wantLines("adds", cart.Line{SKU: "A-1", Quantity: 5}, cart.Line{SKU: "B-1", Quantity: 1})

	_, err = s.AddCartItem(ctx, id, "A-1", cart.MaxQuantity)
	wantErr(t, "AddCartItem(over the per-line limit)", err, cart.ErrInvalid)
	_, err = s.AddCartItem(ctx, "cart_missing", "A-1", 1)
	wantErr(t, "AddCartItem(missing cart)", err, cart.ErrInvalid)
	wantLines("refused adds", cart.Line{SKU: "A-1", Quantity: 5}, cart.Line{SKU: "B-1", Quantity: 1})

	if err := s.SetCartItem(ctx, id, "A-1", 7); err != nil {
		t.Fatal(err)
	}
	if err := s.SetCartItem(ctx, id, "B-1", 0); err != nil {
		t.Fatal(err)
	}
	wantLines("set and remove", cart.Line{SKU: "A-1", Quantity: 7})
	wantErr(t, "SetCartItem(not in cart)", s.SetCartItem(ctx, id, "C-1", 1), cart.ErrNotInCart)
	wantErr(t, "SetCartItem(removed)", s.SetCartItem(ctx, id, "B-1", 0), cart.ErrNotInCart)

	full, err := s.CreateCart(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range cart.MaxLines {
		if _, err := s.AddCartItem(ctx, full, fmt.Sprintf("L-%02d", i), 1); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
	}
	_, err = s.AddCartItem(ctx, full, "L-MORE", 1)
	wantErr(t, "AddCartItem(one line too many)", err, cart.ErrInvalid)
	if got, err := s.AddCartItem(ctx, full, "L-00", 1); err != nil || got != 2 {
		t.Errorf("adding to a line of a full cart = %d, %v; want 2", got, err)
	}
}

func testMergeAndAssignCarts(t *testing.T, s Store) {
	ctx := context.Background()
	c, err := s.CreateCustomer(ctx, customer.Customer{Email: "mia@example.com", PasswordHash: "h"})
	if err != nil {
		t.Fatal(err)
	}
	if id, err := s.CustomerCart(ctx, c.ID); err != nil || id != "" {
		t.Fatalf("CustomerCart of a customer without carts = %q, %v", id, err)
	}
	mine, err := s.CreateCart(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if id, err := s.CustomerCart(ctx, c.ID); err != nil || id != mine {
		t.Fatalf("CustomerCart = %q, %v; want %s", id, err, mine)
	}
	guest, err := s.CreateCart(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, add := range []struct {
		cart, sku string
		qty       int64
	}{{mine, "A-1", cart.MaxQuantity - 1}, {mine, "B-1", 1}, {guest, "A-1", 3}, {guest, "C-1", 2}} {
		if _, err := s.AddCartItem(ctx, add.cart, add.sku, add.qty); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.MergeCarts(ctx, guest, mine); err != nil {
		t.Fatal(err)
	}
	got, err := s.CartLines(ctx, mine)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(got, func(a, b cart.Line) int { return cmpString(a.SKU, b.SKU) })
	want := []cart.Line{{SKU: "A-1", Quantity: cart.MaxQuantity}, {SKU: "B-1", Quantity: 1}, {SKU: "C-1", Quantity: 2}}
	if !slices.Equal(got, want) {
		t.Errorf("merged lines %v, want %v (capped per line)", got, want)
	}
	if lines, err := s.CartLines(ctx, guest); err != nil || len(lines) != 0 {
		t.Errorf("merged-away cart still has %v (%v)", lines, err)
	}
	_, err = s.AddCartItem(ctx, guest, "A-1", 1)
	wantErr(t, "AddCartItem(merged-away cart)", err, cart.ErrInvalid)
	for _, pair := range [][2]string{{mine, mine}, {"", mine}} {
		if err := s.MergeCarts(ctx, pair[0], pair[1]); err != nil {
			t.Errorf("MergeCarts(%q, %q): %v", pair[0], pair[1], err)
		}
	}
	if lines, _ := s.CartLines(ctx, mine); len(lines) != 3 {
		t.Errorf("a no-op merge changed the cart: %v", lines)
	}

	// A guest cart given to the customer and changed since is their
	// newest.
	other, err := s.CreateCart(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AssignCart(ctx, other, c.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddCartItem(ctx, other, "D-1", 1); err != nil {
		t.Fatal(err)
	}
	if id, err := s.CustomerCart(ctx, c.ID); err != nil || id != other {
		t.Errorf("CustomerCart after assigning and changing %s = %q, %v", other, id, err)
	}
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// shopFixture is a store with one product whose SKUs are HOT (15000 USD
// each, the stock under test) and COLD (100 USD, plenty), and a draft.
type shopFixture struct {
	s       Store
	product catalog.Product
}

const (
	hotPrice  = 15000
	coldPrice = 100
)

func newShop(t *testing.T, s Store, hot int64) shopFixture {
	t.Helper()
	ctx := context.Background()
	c := mustCategory(t, s, catalog.Category{Slug: "drops", Name: "Drops"})
	p := mustProduct(t, s, catalog.Product{Slug: "hot-sneaker", Name: "Hot Sneaker", Status: catalog.StatusActive, CategoryID: c.ID,
		Variants: []catalog.Variant{
			{SKU: "HOT", Price: usd(hotPrice), OnHand: hot, Options: []catalog.Option{{Name: "size", Value: "42"}}},
			{SKU: "COLD", Price: usd(coldPrice), OnHand: 1000, Position: 1},
		}})
	draft := product("draft-boot", c.ID, variant("DRAFT-1", 500, 5))
	draft.Status = catalog.StatusDraft
	mustProduct(t, s, draft)
	if _, err := s.CreateCustomer(ctx, customer.Customer{Email: "buyer@example.com", PasswordHash: "h"}); err != nil {
		t.Fatal(err)
	}
	return shopFixture{s: s, product: p}
}

func line(sku string, qty int64) order.Line {
	price := int64(hotPrice)
	if sku != "HOT" {
		price = coldPrice
	}
	return order.Line{SKU: sku, ProductName: "Hot Sneaker", VariantTitle: "42", Quantity: qty,
		UnitPrice: usd(price), LineTotal: usd(price * qty)}
}

// placement is a checkout of lines by owner with key, holding stock until
// until.
func placement(owner, key string, until time.Time, lines ...order.Line) checkout.Placement {
	now := time.Now().UTC()
	var sub int64
	for _, l := range lines {
		sub += l.LineTotal.Amount
	}
	return checkout.Placement{Owner: owner, Key: key, RequestHash: "h-" + key, Order: order.Order{
		ID: newID("ord_"), Email: "buyer@example.com", Status: order.StatusPendingPayment, Lines: lines,
		Subtotal: usd(sub), Tax: usd(0), Shipping: usd(500), Total: usd(sub + 500),
		ShippingAddress: order.Address{Name: "A. Buyer", Line1: "1 Main St", City: "Springfield", PostalCode: "12345", Country: "US"},
		PaymentMethod:   "pm_test", CardLast4: "4242", ReservedUntil: until, CreatedAt: now, UpdatedAt: now,
		AccessToken: order.NewAccessToken()}}
}

func later() time.Time { return time.Now().Add(10 * time.Minute) }

func mustPlace(t *testing.T, s Store, p checkout.Placement) order.Order {
	t.Helper()
	o, replayed, err := s.PlaceOrder(context.Background(), p)
	if err != nil || replayed {
		t.Fatalf("PlaceOrder(%s/%s): %v, replayed %v", p.Owner, p.Key, err, replayed)
	}
	return o
}

// checkLedger fails unless sku has exactly reserved and sold units,
// matching its reservations and within its stock.
func checkLedger(t *testing.T, s Store, sku string, reserved, sold int64) {
	t.Helper()
	l, err := s.Ledger(context.Background(), sku)
	if err != nil {
		t.Fatal(err)
	}
	if l.Reserved != reserved || l.Sold != sold || l.HeldByReservations != reserved || l.SoldByReservations != sold || l.Reserved+l.Sold > l.OnHand {
		t.Fatalf("%s ledger %+v, want reserved %d sold %d matching reservations", sku, l, reserved, sold)
	}
}

func testOffers(t *testing.T, s Store) {
	ctx := context.Background()
	newShop(t, s, 10)
	offers, err := s.Offers(ctx, []string{"HOT", "DRAFT-1", "NOPE"})
	if err != nil {
		t.Fatal(err)
	}
	want := cart.Offer{SKU: "HOT", ProductSlug: "hot-sneaker", ProductName: "Hot Sneaker", VariantTitle: "42",
		Price: usd(hotPrice), Available: 10, Active: true}
	if len(offers) != 2 || offers["HOT"] != want {
		t.Errorf("Offers = %+v\nwant HOT %+v and DRAFT-1", offers, want)
	}
	if d := offers["DRAFT-1"]; d.Active || d.Available != 5 || d.ProductSlug != "draft-boot" {
		t.Errorf("draft offer = %+v; want inactive, 5 available", d)
	}
	if offers, err := s.Offers(ctx, nil); err != nil || offers == nil || len(offers) != 0 {
		t.Errorf("Offers(nil) = %v, %v; want an empty map", offers, err)
	}
	mustPlace(t, s, placement("a", "k", later(), line("HOT", 3)))
	if offers, err := s.Offers(ctx, []string{"HOT"}); err != nil || offers["HOT"].Available != 7 {
		t.Errorf("after reserving 3: %+v, %v; want 7 available", offers["HOT"], err)
	}
}

func testPlaceOrder(t *testing.T, s Store) {
	ctx := context.Background()
	newShop(t, s, 10)
	c, err := s.CustomerByEmail(ctx, "buyer@example.com")
	if err != nil {
		t.Fatal(err)
	}
	cartID, err := s.CreateCart(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddCartItem(ctx, cartID, "HOT", 2); err != nil {
		t.Fatal(err)
	}
	p := placement("sess-1", "key-1", later(), line("HOT", 2), line("COLD", 1))
	p.CartID, p.Order.CustomerID = cartID, c.ID
	placed := mustPlace(t, s, p)
	if placed.ID != p.Order.ID || placed.Number <= 0 || len(placed.History) != 1 || placed.History[0].To != order.StatusPendingPayment {
		t.Errorf("PlaceOrder = %+v", placed)
	}
	if lines, err := s.CartLines(ctx, cartID); err != nil || len(lines) != 0 {
		t.Errorf("cart after the order: %v, %v; want it emptied", lines, err)
	}
	checkLedger(t, s, "HOT", 2, 0)
	checkLedger(t, s, "COLD", 1, 0)

	got, err := s.Order(ctx, placed.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := p.Order
	if got.ID != want.ID || got.Number != placed.Number || got.CustomerID != c.ID || got.Email != want.Email ||
		got.Status != order.StatusPendingPayment || !slices.Equal(got.Lines, want.Lines) ||
		got.Subtotal != want.Subtotal || got.Tax != want.Tax || got.Shipping != want.Shipping || got.Total != want.Total ||
		got.ShippingAddress != want.ShippingAddress || got.PaymentMethod != want.PaymentMethod || got.CardLast4 != want.CardLast4 ||
		!sameInstant(got.ReservedUntil, want.ReservedUntil) || !sameInstant(got.CreatedAt, want.CreatedAt) ||
		got.AccessToken != want.AccessToken || !got.OpensWith(want.AccessToken) {
		t.Errorf("Order =\n%+v\nwant\n%+v", got, want)
	}
	if len(got.History) != 1 || got.History[0].From != "" || got.History[0].To != order.StatusPendingPayment ||
		got.History[0].Reason != "checkout" || !sameInstant(got.History[0].At, want.CreatedAt) {
		t.Errorf("history %+v", got.History)
	}
	if id, hash, err := s.IdempotentOrder(ctx, "sess-1", "key-1"); err != nil || id != placed.ID || hash != p.RequestHash {
		t.Errorf("IdempotentOrder = %s, %s, %v", id, hash, err)
	}
	_, _, err = s.IdempotentOrder(ctx, "sess-1", "key-2")
	wantErr(t, "IdempotentOrder(unused key)", err, order.ErrNotFound)
	_, err = s.Order(ctx, "ord_missing")
	wantErr(t, "Order(missing)", err, order.ErrNotFound)

	for _, tt := range []struct {
		order, session string
		want           bool
	}{{placed.ID, "sess-1", true}, {placed.ID, "sess-2", false}, {"ord_missing", "sess-1", false}} {
		if got, err := s.OrderPlacedInSession(ctx, tt.order, tt.session); err != nil || got != tt.want {
			t.Errorf("OrderPlacedInSession(%s, %s) = %v, %v; want %v", tt.order, tt.session, got, err, tt.want)
		}
	}

	second := placement("sess-1", "key-2", later(), line("COLD", 1))
	second.Order.CustomerID = c.ID
	o2 := mustPlace(t, s, second)
	if o2.Number <= placed.Number {
		t.Errorf("second order number %d, first %d; want increasing", o2.Number, placed.Number)
	}
	mustPlace(t, s, placement("sess-3", "key-1", later(), line("COLD", 1))) // a guest's
	list, err := s.OrdersByCustomer(ctx, c.ID, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != o2.ID || list[1].ID != placed.ID || len(list[1].Lines) != 2 {
		t.Errorf("OrdersByCustomer = %d orders (%v); want the newest first", len(list), list)
	}
	if list, err := s.OrdersByCustomer(ctx, c.ID, 1); err != nil || len(list) != 1 || list[0].ID != o2.ID {
		t.Errorf("OrdersByCustomer(limit 1) = %v, %v", list, err)
	}
}

// testLastUnitsStampede: many concurrent buyers for the last 10 units.
func testLastUnitsStampede(t *testing.T, s Store) {
	newShop(t, s, 10)
	const buyers = 300
	results := make(chan error, buyers)
	for i := range buyers {
		go func() {
			_, _, err := s.PlaceOrder(context.Background(), placement(fmt.Sprint("buyer-", i), "k", later(), line("HOT", 1)))
			results <- err
		}()
	}
	var ok, soldOut int
	for range buyers {
		err := <-results
		so, isSoldOut := errors.AsType[*checkout.SoldOutError](err)
		switch {
		case err == nil:
			ok++
		case isSoldOut && slices.Equal(so.SKUs, []string{"HOT"}):
			soldOut++
		default:
			t.Error(err)
		}
	}
	if ok != 10 || soldOut != buyers-10 {
		t.Fatalf("orders %d, sold out %d; want 10 and %d", ok, soldOut, buyers-10)
	}
	checkLedger(t, s, "HOT", 10, 0)
	events, err := s.Pending(context.Background(), 1000)
	if err != nil || len(events) != 10 {
		t.Fatalf("outbox has %d events (%v), want one per order", len(events), err)
	}
}

// testMultiLineAllOrNothing: an order short on any line reserves nothing
// and names every short SKU, in the order's line order.
func testMultiLineAllOrNothing(t *testing.T, s Store) {
	ctx := context.Background()
	newShop(t, s, 2)
	_, _, err := s.PlaceOrder(ctx, placement("a", "k1", later(), line("COLD", 5), line("HOT", 3)))
	if so, ok := errors.AsType[*checkout.SoldOutError](err); !ok || !slices.Equal(so.SKUs, []string{"HOT"}) {
		t.Fatalf("err = %v, want sold out naming HOT", err)
	}
	_, _, err = s.PlaceOrder(ctx, placement("a", "k2", later(), line("HOT", 3), line("COLD", 2000), line("NOPE", 1)))
	if so, ok := errors.AsType[*checkout.SoldOutError](err); !ok || !slices.Equal(so.SKUs, []string{"HOT", "COLD", "NOPE"}) {
		t.Fatalf("err = %v, want sold out naming HOT, COLD, NOPE", err)
	}
	checkLedger(t, s, "COLD", 0, 0)
	checkLedger(t, s, "HOT", 0, 0)
	if _, _, err := s.IdempotentOrder(ctx, "a", "k1"); !errors.Is(err, order.ErrNotFound) {
		t.Errorf("a refused order recorded its key: %v", err)
	}
	if events, err := s.Pending(ctx, 10); err != nil || len(events) != 0 {
		t.Errorf("a refused order left outbox events: %v, %v", events, err)
	}
	// The same key may be used again once the stock is there.
	mustPlace(t, s, placement("a", "k1", later(), line("COLD", 5), line("HOT", 2)))
	checkLedger(t, s, "HOT", 2, 0)
}

// testIdempotentConcurrentDuplicates: one key, many simultaneous retries,
// one order.
func testIdempotentConcurrentDuplicates(t *testing.T, s Store) {
	newShop(t, s, 100)
	p := placement("sess-1", "key-1", later(), line("HOT", 2))
	type result struct {
		id       string
		replayed bool
		err      error
	}
	results := make(chan result, 50)
	for range 50 {
		go func() {
			q := p
			q.Order.ID = newID("ord_") // each retry would mint its own ID
			o, replayed, err := s.PlaceOrder(context.Background(), q)
			results <- result{o.ID, replayed, err}
		}()
	}
	var first string
	replays := 0
	for range 50 {
		r := <-results
		if r.err != nil {
			t.Fatal(r.err)
		}
		if first == "" {
			first = r.id
		}
		if r.id != first {
			t.Fatalf("duplicates got different orders: %s vs %s", r.id, first)
		}
		if r.replayed {
			replays++
		}
	}
	if replays != 49 {
		t.Fatalf("replays = %d, want 49", replays)
	}
	checkLedger(t, s, "HOT", 2, 0)
	q := p
	q.RequestHash = "other body"
	_, _, err := s.PlaceOrder(context.Background(), q)
	wantErr(t, "PlaceOrder(same key, other body)", err, checkout.ErrIdempotencyMismatch)
	// Same key, another owner: a different order.
	r := p
	r.Owner = "sess-2"
	r.Order.ID = newID("ord_")
	o, replayed, err := s.PlaceOrder(context.Background(), r)
	if err != nil || replayed || o.ID == first {
		t.Fatalf("other owner: %v replayed=%v", err, replayed)
	}
	checkLedger(t, s, "HOT", 4, 0)
}

// testOrderLifecycle walks payment, stock commit and expiry, checking the
// stock ledger at each step and that repeats change nothing.
func testOrderLifecycle(t *testing.T, s Store) {
	ctx := context.Background()
	newShop(t, s, 10)
	past := time.Now().Add(-time.Minute)
	paid := mustPlace(t, s, placement("a", "1", later(), line("HOT", 2)))
	failed := mustPlace(t, s, placement("b", "1", later(), line("HOT", 3)))
	stale := mustPlace(t, s, placement("c", "1", past, line("HOT", 4)))
	claimed := mustPlace(t, s, placement("d", "1", past, line("HOT", 1)))
	checkLedger(t, s, "HOT", 10, 0)

	if o, ok, err := s.ClaimPayment(ctx, paid.ID); !ok || err != nil || o.ID != paid.ID || o.Total != paid.Total {
		t.Fatalf("claim: %+v, %v, %v", o, ok, err)
	}
	for range 2 { // the second time is a redelivery
		if err := s.MarkPaid(ctx, paid.ID, "captured"); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.CommitStock(ctx, paid.ID); err != nil || n != 1 {
		t.Fatalf("CommitStock = %d, %v; want 1 reservation", n, err)
	}
	if n, err := s.CommitStock(ctx, paid.ID); err != nil || n != 0 {
		t.Fatalf("CommitStock again = %d, %v; want nothing left", n, err)
	}
	checkLedger(t, s, "HOT", 8, 2)
	for range 2 {
		if err := s.MarkPaymentFailed(ctx, failed.ID, "card declined"); err != nil {
			t.Fatal(err)
		}
	}
	checkLedger(t, s, "HOT", 5, 2)
	wantErr(t, "MarkPaid(failed order)", s.MarkPaid(ctx, failed.ID, "late capture"), order.ErrTransition)
	wantErr(t, "MarkPaymentFailed(paid order)", s.MarkPaymentFailed(ctx, paid.ID, "late decline"), order.ErrTransition)
	if _, ok, _ := s.ClaimPayment(ctx, claimed.ID); !ok {
		t.Fatal("claim refused")
	}
	deliver(t, s, stale.ID, claimed.ID)

	ids, err := s.ExpireDue(ctx, 100, time.Hour)
	if err != nil || !slices.Equal(ids, []string{stale.ID}) {
		t.Fatalf("expired %v (%v), want only %s: a claimed order must not expire under its capture", ids, err, stale.ID)
	}
	checkLedger(t, s, "HOT", 1, 2)
	if ids, err := s.ExpireDue(ctx, 100, time.Hour); err != nil || len(ids) != 0 {
		t.Fatalf("second sweep expired %v (%v)", ids, err)
	}
	// Once the claim's lease lapses (the provider kept failing), the
	// claimed order may expire too.
	if ids, err := s.ExpireDue(ctx, 100, 0); err != nil || !slices.Equal(ids, []string{claimed.ID}) {
		t.Fatalf("lapsed claim: expired %v (%v), want %s", ids, err, claimed.ID)
	}
	checkLedger(t, s, "HOT", 0, 2)
	if _, ok, err := s.ClaimPayment(ctx, stale.ID); ok || err != nil {
		t.Fatalf("claimed an expired order: %v, %v", ok, err)
	}
	o, err := s.Order(ctx, paid.ID)
	if err != nil || o.Status != order.StatusPaid || len(o.History) != 2 || o.History[1].From != order.StatusPendingPayment ||
		o.History[1].To != order.StatusPaid || o.History[1].Reason != "captured" {
		t.Fatalf("paid order: %+v %v", o.History, err)
	}
	if o, err := s.Order(ctx, stale.ID); err != nil || o.Status != order.StatusExpired {
		t.Fatalf("stale order: %s, %v", o.Status, err)
	}
	events, err := s.Pending(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	var subjects []string
	for _, e := range events {
		subjects = append(subjects, e.Subject)
	}
	wantSubjects := []string{order.SubjectCreated, order.SubjectCreated,
		order.SubjectPaid, order.SubjectFailed, order.SubjectExpired, order.SubjectExpired}
	if !slices.Equal(subjects, wantSubjects) {
		t.Fatalf("outbox subjects %v, want %v", subjects, wantSubjects)
	}

	if sent, err := s.ConfirmationSent(ctx, paid.ID); err != nil || sent {
		t.Fatalf("ConfirmationSent before sending = %v, %v", sent, err)
	}
	if first, err := s.MarkConfirmationSent(ctx, paid.ID); err != nil || !first {
		t.Fatalf("first confirmation: %v, %v", first, err)
	}
	if first, err := s.MarkConfirmationSent(ctx, paid.ID); err != nil || first {
		t.Fatalf("second confirmation counted as first: %v", err)
	}
	if sent, err := s.ConfirmationSent(ctx, paid.ID); err != nil || !sent {
		t.Fatalf("ConfirmationSent after sending = %v, %v", sent, err)
	}
}

// testPipelineErrors checks the answers for orders that do not exist or
// are in the wrong state.
func testPipelineErrors(t *testing.T, s Store) {
	ctx := context.Background()
	newShop(t, s, 10)
	pending := mustPlace(t, s, placement("a", "1", later(), line("HOT", 1)))
	_, _, err := s.ClaimPayment(ctx, "ord_missing")
	wantErr(t, "ClaimPayment(missing)", err, order.ErrNotFound)
	wantErr(t, "MarkPaid(missing)", s.MarkPaid(ctx, "ord_missing", "x"), order.ErrNotFound)
	wantErr(t, "MarkPaymentFailed(missing)", s.MarkPaymentFailed(ctx, "ord_missing", "x"), order.ErrNotFound)
	_, err = s.CommitStock(ctx, "ord_missing")
	wantErr(t, "CommitStock(missing)", err, order.ErrNotFound)
	_, err = s.CommitStock(ctx, pending.ID)
	wantErr(t, "CommitStock(unpaid)", err, order.ErrTransition)
	_, err = s.ConfirmationSent(ctx, "ord_missing")
	wantErr(t, "ConfirmationSent(missing)", err, order.ErrNotFound)
	if first, err := s.MarkConfirmationSent(ctx, "ord_missing"); err != nil || first {
		t.Errorf("MarkConfirmationSent(missing) = %v, %v; want false", first, err)
	}
	if ids, err := s.ExpireDue(ctx, 10, time.Hour); err != nil || len(ids) != 0 {
		t.Errorf("ExpireDue with nothing due = %v, %v", ids, err)
	}
	checkLedger(t, s, "HOT", 1, 0)
}

// testConcurrentSettlement delivers every settling event several times at
// once, as a bus redelivering to several workers would: stock moves once.
func testConcurrentSettlement(t *testing.T, s Store) {
	ctx := context.Background()
	newShop(t, s, 40)
	var paid, failed, due []string
	for i := range 10 {
		o := mustPlace(t, s, placement(fmt.Sprint("p", i), "k", later(), line("HOT", 1), line("COLD", 2)))
		paid = append(paid, o.ID)
		o = mustPlace(t, s, placement(fmt.Sprint("f", i), "k", later(), line("COLD", 1), line("HOT", 1)))
		failed = append(failed, o.ID)
		o = mustPlace(t, s, placement(fmt.Sprint("e", i), "k", time.Now().Add(-time.Second), line("HOT", 2)))
		due = append(due, o.ID)
	}
	deliver(t, s, due...)
	checkLedger(t, s, "HOT", 40, 0)
	const copies = 4
	errs := make(chan error, 3*10*copies+copies)
	done := make(chan []string, copies)
	for range copies {
		for i := range 10 {
			go func() {
				err := s.MarkPaid(ctx, paid[i], "captured")
				if err == nil {
					_, err = s.CommitStock(ctx, paid[i])
				}
				errs <- err
			}()
			go func() { errs <- s.MarkPaymentFailed(ctx, failed[i], "declined") }()
		}
		go func() {
			ids, err := s.ExpireDue(ctx, 100, time.Hour)
			errs <- err
			done <- ids
		}()
	}
	for range 2*10*copies + copies {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	var expired []string
	for range copies {
		expired = append(expired, <-done...)
	}
	// A sweep that found the others' orders locked may leave some behind.
	rest, err := s.ExpireDue(ctx, 100, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	expired = append(expired, rest...)
	slices.Sort(expired)
	slices.Sort(due)
	if !slices.Equal(expired, due) {
		t.Errorf("expired %d orders %v, want each of the %d due ones once", len(expired), expired, len(due))
	}
	checkLedger(t, s, "HOT", 0, 10)
	checkLedger(t, s, "COLD", 0, 20)
}

// testSetStockBelowReserved: stock reserved and sold through orders bounds
// what SetStock accepts.
func testSetStockBelowReserved(t *testing.T, s Store) {
	ctx := context.Background()
	f := newShop(t, s, 10)
	mustPlace(t, s, placement("a", "1", later(), line("HOT", 2)))
	sold := mustPlace(t, s, placement("b", "1", later(), line("HOT", 3)))
	if err := s.MarkPaid(ctx, sold.ID, "captured"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CommitStock(ctx, sold.ID); err != nil {
		t.Fatal(err)
	}
	_, err := s.SetStock(ctx, "HOT", 4)
	wantErr(t, "SetStock(below reserved+sold)", err, catalog.ErrInvalid)
	v, err := s.SetStock(ctx, "HOT", 5)
	if err != nil || v.OnHand != 5 || v.Reserved != 2 || v.Sold != 3 || v.Available() != 0 {
		t.Fatalf("SetStock(5) = %+v, %v", v, err)
	}
	// COLD keeps the product in stock; it has nothing of HOT left.
	_, _, err = s.PlaceOrder(ctx, placement("c", "1", later(), line("HOT", 1)))
	if _, ok := errors.AsType[*checkout.SoldOutError](err); !ok {
		t.Errorf("ordering with nothing available: %v, want sold out", err)
	}
	if _, err := s.SetStock(ctx, "COLD", 0); err != nil {
		t.Fatal(err)
	}
	if p, err := s.ProductByID(ctx, f.product.ID); err != nil || p.InStock {
		t.Errorf("nothing available but InStock = %v (%v)", p.InStock, err)
	}
	checkLedger(t, s, "HOT", 2, 3)
}

func testOutbox(t *testing.T, s Store) {
	ctx := context.Background()
	newShop(t, s, 10)
	var ids []string
	for i := range 5 {
		o := mustPlace(t, s, placement(fmt.Sprint("buyer-", i), "k", later(), line("HOT", 1)))
		ids = append(ids, o.ID)
	}
	events, err := s.Pending(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 3 {
		t.Fatalf("Pending(3) = %d events", len(events))
	}
	for i, e := range events {
		var ev order.Event
		if err := json.Unmarshal(e.Data, &ev); err != nil || ev.OrderID != ids[i] || ev.Status != order.StatusPendingPayment ||
			e.Subject != order.SubjectCreated || e.ID == "" || e.CreatedAt.IsZero() {
			t.Errorf("event %d = %+v (%s, %v); want order %s created, oldest first", i, e, e.Data, err, ids[i])
		}
	}
	if err := s.MarkPublished(ctx, []string{events[0].ID, events[2].ID, "evt_unknown"}); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkPublished(ctx, []string{events[0].ID}); err != nil {
		t.Errorf("marking again: %v", err)
	}
	if err := s.MarkPublished(ctx, nil); err != nil {
		t.Errorf("marking nothing: %v", err)
	}
	rest, err := s.Pending(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range rest {
		got = append(got, e.ID)
	}
	if len(got) != 3 || got[0] != events[1].ID {
		t.Errorf("pending after marking = %v; want 3 left, the unmarked %s first", got, events[1].ID)
	}
}

// testOutboxTraceParent: an event keeps the W3C traceparent of the span
// that wrote it (checkout, and a later transition), so its publication
// continues that trace; written outside any span it carries none.
func testOutboxTraceParent(t *testing.T, s Store) {
	newShop(t, s, 10)
	const (
		tid     = "4bf92f3577b34da6a3ce929d0e0e4736"
		placeSp = "00f067aa0ba902b7"
		paidSp  = "b7ad6b7169203331"
	)
	traced := func(span string) context.Context {
		return tracing.WithTraceParent(context.Background(), "00-"+tid+"-"+span+"-01")
	}
	p := placement("tracer", "k", later(), line("HOT", 1))
	o, _, err := s.PlaceOrder(traced(placeSp), p)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.MarkPaid(traced(paidSp), o.ID, "captured"); err != nil {
		t.Fatal(err)
	}
	mustPlace(t, s, placement("untraced", "k", later(), line("HOT", 1)))
	evs, err := s.Claim(context.Background(), "relay", 10, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"00-" + tid + "-" + placeSp + "-01", "00-" + tid + "-" + paidSp + "-01", ""}
	if len(evs) != len(want) {
		t.Fatalf("claimed %d events, want %d", len(evs), len(want))
	}
	for i, e := range evs {
		if e.TraceParent != want[i] {
			t.Errorf("event %d (%s) traceparent %q, want %q", i, e.Subject, e.TraceParent, want[i])
		}
	}
}

func testUnstorableKeys(t *testing.T, s Store) {
	ctx := context.Background()
	newShop(t, s, 1)
	for _, key := range []string{"nul\x00byte", "bad\xffutf8"} {
		_, err := s.Session(ctx, key)
		wantErr(t, fmt.Sprintf("Session(%q)", key), err, session.ErrNotFound)
		_, err = s.CustomerByEmail(ctx, key)
		wantErr(t, fmt.Sprintf("CustomerByEmail(%q)", key), err, customer.ErrNotFound)
		_, err = s.ProductBySlug(ctx, key)
		wantErr(t, fmt.Sprintf("ProductBySlug(%q)", key), err, catalog.ErrNotFound)
		_, err = s.CategoryBySlug(ctx, key)
		wantErr(t, fmt.Sprintf("CategoryBySlug(%q)", key), err, catalog.ErrNotFound)
		_, err = s.VariantBySKU(ctx, key)
		wantErr(t, fmt.Sprintf("VariantBySKU(%q)", key), err, catalog.ErrNotFound)
		_, err = s.Order(ctx, key)
		wantErr(t, fmt.Sprintf("Order(%q)", key), err, order.ErrNotFound)
		_, err = s.DropBySlug(ctx, key)
		wantErr(t, fmt.Sprintf("DropBySlug(%q)", key), err, drop.ErrNotFound)
		_, _, err = s.IdempotentOrder(ctx, key, key)
		wantErr(t, fmt.Sprintf("IdempotentOrder(%q)", key), err, order.ErrNotFound)
		if offers, err := s.Offers(ctx, []string{key, "HOT"}); err != nil || len(offers) != 1 {
			t.Errorf("Offers(%q, HOT) = %v, %v; want HOT alone", key, offers, err)
		}
		if lines, err := s.CartLines(ctx, key); err != nil || len(lines) != 0 {
			t.Errorf("CartLines(%q) = %v, %v", key, lines, err)
		}
		if _, found, err := s.OpenDropForSKUs(ctx, []string{key}); err != nil || found {
			t.Errorf("OpenDropForSKUs(%q) = %v, %v", key, found, err)
		}
	}
}

func testDrops(t *testing.T, s Store) {
	ctx := context.Background()
	newShop(t, s, 3)
	starts := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	room := drop.Room{RatePerMinute: 60, MaxActive: 10, NoShowWindow: drop.Duration(time.Minute), AccessTTL: drop.Duration(5 * time.Minute),
		PreQueueOpens: drop.Duration(15 * time.Minute)}
	in := drop.Drop{Slug: "spring", Name: "Spring drop", Description: "Ten pairs.", StartsAt: starts, PerCustomerLimit: 2,
		Items: []drop.Item{{SKU: "HOT", Allocated: 7}}, Room: room}
	d, err := s.CreateDrop(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if d.ID == "" || d.CreatedAt.IsZero() {
		t.Fatalf("CreateDrop = %+v", d)
	}
	if n, err := s.Available(ctx, d.ID); err != nil || n != 7 {
		t.Fatalf("Available = %d, %v; want the 7 allocated", n, err)
	}
	if l, err := s.Ledger(ctx, "HOT"); err != nil || l.OnHand != 7 {
		t.Fatalf("HOT on hand %+v, %v; want 7", l, err)
	}
	for name, get := range map[string]func() (drop.Drop, error){
		"DropByID":   func() (drop.Drop, error) { return s.DropByID(ctx, d.ID) },
		"DropBySlug": func() (drop.Drop, error) { return s.DropBySlug(ctx, "spring") },
	} {
		got, err := get()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got.ID != d.ID || got.Slug != in.Slug || got.Name != in.Name || got.Description != in.Description ||
			!got.StartsAt.Equal(starts) || got.EndsAt != nil || got.PerCustomerLimit != 2 || got.Closed ||
			!slices.Equal(got.Items, in.Items) || got.Room != room || !sameInstant(got.CreatedAt, d.CreatedAt) {
			t.Errorf("%s = %+v\nwant %+v", name, got, d)
		}
	}
	_, err = s.DropBySlug(ctx, "autumn")
	wantErr(t, "DropBySlug(missing)", err, drop.ErrNotFound)
	_, err = s.DropByID(ctx, "drop_missing")
	wantErr(t, "DropByID(missing)", err, drop.ErrNotFound)

	if got, ok, err := s.OpenDropForSKUs(ctx, []string{"COLD", "HOT"}); err != nil || !ok || got.ID != d.ID {
		t.Errorf("OpenDropForSKUs(COLD, HOT) = %v, %v, %v", got.ID, ok, err)
	}
	if _, ok, err := s.OpenDropForSKUs(ctx, []string{"COLD"}); err != nil || ok {
		t.Errorf("OpenDropForSKUs(COLD) = %v, %v; want none", ok, err)
	}
	if _, ok, err := s.OpenDropForSKUs(ctx, nil); err != nil || ok {
		t.Errorf("OpenDropForSKUs(nil) = %v, %v; want none", ok, err)
	}

	refused := []struct {
		name string
		d    drop.Drop
		want error
	}{
		{"slug taken", drop.Drop{Slug: "spring", Name: "Again", StartsAt: starts, PerCustomerLimit: 1, Items: []drop.Item{{SKU: "COLD", Allocated: 1}}, Room: room}, drop.ErrConflict},
		{"sku in an open drop", drop.Drop{Slug: "summer", Name: "Summer", StartsAt: starts, PerCustomerLimit: 1, Items: []drop.Item{{SKU: "COLD", Allocated: 1}, {SKU: "HOT", Allocated: 1}}, Room: room}, drop.ErrConflict},
		{"unknown sku", drop.Drop{Slug: "winter", Name: "Winter", StartsAt: starts, PerCustomerLimit: 1, Items: []drop.Item{{SKU: "COLD", Allocated: 1}, {SKU: "NOPE", Allocated: 1}}, Room: room}, drop.ErrInvalid},
		{"invalid", drop.Drop{Slug: "Bad Slug", Name: "Bad", StartsAt: starts, PerCustomerLimit: 1, Items: []drop.Item{{SKU: "COLD", Allocated: 1}}, Room: room}, drop.ErrInvalid},
	}
	for _, tt := range refused {
		_, err := s.CreateDrop(ctx, tt.d)
		wantErr(t, "CreateDrop("+tt.name+")", err, tt.want)
	}
	// The refused drops allocated nothing and left nothing behind.
	if l, err := s.Ledger(ctx, "COLD"); err != nil || l.OnHand != 1000 {
		t.Errorf("COLD after refused drops: %+v, %v; want 1000 on hand", l, err)
	}
	if all, err := s.Drops(ctx); err != nil || len(all) != 1 {
		t.Fatalf("Drops after refused ones = %d, %v; want 1", len(all), err)
	}

	// Allocation counts what is already reserved: 2 held by an order, 5
	// more allocated.
	mustPlace(t, s, placement("a", "1", later(), line("HOT", 2)))
	if n, _ := s.Available(ctx, d.ID); n != 5 {
		t.Errorf("Available after an order of 2 = %d, want 5", n)
	}
	closed, err := s.CloseDrop(ctx, d.ID)
	if err != nil || !closed.Closed {
		t.Fatalf("CloseDrop = %+v, %v", closed, err)
	}
	_, err = s.CloseDrop(ctx, "drop_missing")
	wantErr(t, "CloseDrop(missing)", err, drop.ErrNotFound)
	if _, ok, _ := s.OpenDropForSKUs(ctx, []string{"HOT"}); ok {
		t.Error("a closed drop still gates its SKUs")
	}
	next, err := s.CreateDrop(ctx, drop.Drop{Slug: "summer", Name: "Summer", StartsAt: starts.Add(24 * time.Hour), PerCustomerLimit: 1,
		Items: []drop.Item{{SKU: "HOT", Allocated: 4}, {SKU: "COLD", Allocated: 10}}, Room: room})
	if err != nil {
		t.Fatalf("a closed drop's SKU in a new drop: %v", err)
	}
	if n, _ := s.Available(ctx, next.ID); n != 14 {
		t.Errorf("Available = %d, want 14", n)
	}
	checkLedger(t, s, "HOT", 2, 0)
	if l, _ := s.Ledger(ctx, "HOT"); l.OnHand != 6 {
		t.Errorf("HOT on hand %d, want 2 held + 4 allocated", l.OnHand)
	}
	all, err := s.Drops(ctx)
	if err != nil || len(all) != 2 || all[0].ID != next.ID || all[1].ID != d.ID || len(all[0].Items) != 2 || all[0].Items[0].SKU != "COLD" {
		t.Errorf("Drops = %+v, %v; want the open one first, items by SKU", all, err)
	}
	if n, err := s.Available(ctx, "drop_missing"); err != nil || n != 0 {
		t.Errorf("Available(missing) = %d, %v", n, err)
	}
}

// testDropLimit checks the per-customer limit: counted across a buyer's
// orders, even placed at once, and given back when an order fails.
func testDropLimit(t *testing.T, s Store) {
	ctx := context.Background()
	newShop(t, s, 100)
	d, err := s.CreateDrop(ctx, drop.Drop{Slug: "limited", Name: "Limited", StartsAt: time.Now(), PerCustomerLimit: 3,
		Items: []drop.Item{{SKU: "HOT", Allocated: 50}},
		Room:  drop.Room{RatePerMinute: 60, MaxActive: 10, NoShowWindow: drop.Duration(time.Minute), AccessTTL: drop.Duration(time.Minute)}})
	if err != nil {
		t.Fatal(err)
	}
	buy := func(buyer, key string, qty int64) (order.Order, error) {
		p := placement(buyer, key, later(), line("HOT", qty))
		p.Drop = &checkout.DropPurchase{DropID: d.ID, Buyer: buyer, Quantity: qty, Limit: d.PerCustomerLimit}
		o, _, err := s.PlaceOrder(ctx, p)
		return o, err
	}
	first, err := buy("ann", "1", 2)
	if err != nil {
		t.Fatal(err)
	}
	_, err = buy("ann", "2", 2)
	wantErr(t, "over the limit", err, drop.ErrOverLimit)
	if _, err := buy("bea", "1", 3); err != nil {
		t.Errorf("another buyer: %v", err)
	}
	checkLedger(t, s, "HOT", 5, 0)
	if err := s.MarkPaymentFailed(ctx, first.ID, "declined"); err != nil {
		t.Fatal(err)
	}
	if _, err := buy("ann", "3", 3); err != nil {
		t.Errorf("after a failed order the buyer may try again: %v", err)
	}

	// Many orders by one buyer at once: the limit holds.
	results := make(chan error, 10)
	for i := range 10 {
		go func() {
			_, err := buy("cat", fmt.Sprint("c", i), 1)
			results <- err
		}()
	}
	ok := 0
	for range 10 {
		err := <-results
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, drop.ErrOverLimit):
			t.Error(err)
		}
	}
	if ok != 3 {
		t.Errorf("%d concurrent orders of one buyer went through, want the limit of 3", ok)
	}
	checkLedger(t, s, "HOT", 9, 0)
}

// testCartDropLimit: a cart never holds more of an open drop's SKUs
// (together) than the drop's per-customer limit, whether a line is added
// to, set, raced by concurrent adds or merged at sign-in; lowering a line
// always works, and a closed drop limits nothing.
func testCartDropLimit(t *testing.T, s Store) {
	ctx := context.Background()
	newShop(t, s, 100)
	room := drop.Room{RatePerMinute: 60, MaxActive: 10, NoShowWindow: drop.Duration(time.Minute), AccessTTL: drop.Duration(time.Minute)}
	d, err := s.CreateDrop(ctx, drop.Drop{Slug: "pair", Name: "Pair", StartsAt: time.Now(), PerCustomerLimit: 2,
		Items: []drop.Item{{SKU: "HOT", Allocated: 50}, {SKU: "COLD", Allocated: 50}}, Room: room})
	if err != nil {
		t.Fatal(err)
	}
	newCart := func() string {
		t.Helper()
		id, err := s.CreateCart(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	wantLines := func(step, id string, want ...cart.Line) {
		t.Helper()
		got, err := s.CartLines(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("after %s: lines %v, want %v", step, got, want)
		}
	}

	c := newCart()
	for _, sku := range []string{"HOT", "COLD"} {
		if _, err := s.AddCartItem(ctx, c, sku, 1); err != nil {
			t.Fatalf("AddCartItem(%s, 1): %v", sku, err)
		}
	}
	_, err = s.AddCartItem(ctx, c, "HOT", 1)
	wantErr(t, "AddCartItem(a third of the drop's units)", err, drop.ErrOverLimit)
	wantErr(t, "SetCartItem(HOT to 2 beside COLD)", s.SetCartItem(ctx, c, "HOT", 2), drop.ErrOverLimit)
	wantErr(t, "SetCartItem(HOT to 9)", s.SetCartItem(ctx, c, "HOT", 9), drop.ErrOverLimit)
	wantLines("refused raises", c, cart.Line{SKU: "HOT", Quantity: 1}, cart.Line{SKU: "COLD", Quantity: 1})
	wantErr(t, "SetCartItem(COLD to 0)", s.SetCartItem(ctx, c, "COLD", 0), nil)
	wantErr(t, "SetCartItem(HOT to the limit)", s.SetCartItem(ctx, c, "HOT", 2), nil)
	wantErr(t, "SetCartItem(HOT lowered)", s.SetCartItem(ctx, c, "HOT", 1), nil)
	wantLines("set within the limit", c, cart.Line{SKU: "HOT", Quantity: 1})

	// Concurrent adds to one cart: exactly the limit gets in.
	raced := newCart()
	errs := make(chan error, 10)
	for range 10 {
		go func() {
			_, err := s.AddCartItem(ctx, raced, "HOT", 1)
			errs <- err
		}()
	}
	ok := 0
	for range 10 {
		switch err := <-errs; {
		case err == nil:
			ok++
		case !errors.Is(err, drop.ErrOverLimit):
			t.Errorf("concurrent add: %v", err)
		}
	}
	if ok != 2 {
		t.Errorf("%d of 10 concurrent adds of one unit went in, want the limit of 2", ok)
	}
	wantLines("concurrent adds", raced, cart.Line{SKU: "HOT", Quantity: 2})

	// Sign-in merges a guest cart into the customer's: the customer's
	// older line is kept, the guest's is cut to what the limit leaves.
	mine := newCart()
	if _, err := s.AddCartItem(ctx, mine, "COLD", 1); err != nil {
		t.Fatal(err)
	}
	guest := newCart()
	if _, err := s.AddCartItem(ctx, guest, "HOT", 2); err != nil {
		t.Fatal(err)
	}
	if err := s.MergeCarts(ctx, guest, mine); err != nil {
		t.Fatal(err)
	}
	wantLines("merge", mine, cart.Line{SKU: "COLD", Quantity: 1}, cart.Line{SKU: "HOT", Quantity: 1})
	other := newCart()
	if _, err := s.AddCartItem(ctx, other, "HOT", 2); err != nil {
		t.Fatal(err)
	}
	if err := s.MergeCarts(ctx, other, mine); err != nil {
		t.Fatal(err)
	}
	wantLines("a merge with nothing left under the limit", mine, cart.Line{SKU: "COLD", Quantity: 1}, cart.Line{SKU: "HOT", Quantity: 1})

	if _, err := s.CloseDrop(ctx, d.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddCartItem(ctx, raced, "HOT", 5); err != nil {
		t.Errorf("AddCartItem after the drop closed: %v", err)
	}
}

// testHammer: many buyers on two SKUs of limited stock, ordering one or
// both in either line order, their orders paid (with the stock commit
// delivered twice at once), failed, or left to a sweeper that expires them
// meanwhile. Every snapshot of the counters matches the reservations and
// stays within stock, and at the end each SKU holds exactly what its
// pending orders reserve and its paid orders bought.
func testHammer(t *testing.T, s Store) {
	ctx := context.Background()
	newShop(t, s, 60)
	if _, err := s.SetStock(ctx, "COLD", 40); err != nil {
		t.Fatal(err)
	}
	type placed struct {
		id        string
		hot, cold int64
	}
	const buyers, rounds = 24, 10
	var (
		mu     sync.Mutex
		orders []placed
		wg     sync.WaitGroup
		bg     sync.WaitGroup
	)
	stop := make(chan struct{})
	bg.Go(func() { // the expiry sweeper
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := s.ExpireDue(ctx, 20, time.Hour); err != nil {
				t.Errorf("sweep: %v", err)
				return
			}
		}
	})
	// Two relays deliver events as they are committed, each claiming
	// batches; an order's reservation counts only once its event is out.
	delivered := map[string]string{} // event ID -> subject
	relay := func(owner string) bool {
		evs, err := s.Claim(ctx, owner, 7, time.Hour)
		if err != nil {
			t.Errorf("%s: claim: %v", owner, err)
			return false
		}
		mu.Lock()
		for _, e := range evs {
			if _, dup := delivered[e.ID]; dup {
				t.Errorf("%s: claimed event %s that another relay had published", owner, e.ID)
			}
			delivered[e.ID] = e.Subject
		}
		mu.Unlock()
		if err := s.MarkPublished(ctx, eventIDs(evs)); err != nil {
			t.Errorf("%s: mark published: %v", owner, err)
			return false
		}
		return len(evs) > 0
	}
	for _, owner := range []string{"relay-1", "relay-2"} {
		bg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				relay(owner)
			}
		})
	}
	bg.Go(func() { // an auditor reading the ledger as it changes
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, sku := range []string{"HOT", "COLD"} {
				l, err := s.Ledger(ctx, sku)
				if err != nil || l.Reserved != l.HeldByReservations || l.Sold != l.SoldByReservations || l.Reserved+l.Sold > l.OnHand {
					t.Errorf("%s ledger mid-run: %+v, %v", sku, l, err)
					return
				}
			}
		}
	})
	for b := range buyers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(b), 0x5eed))
			for r := range rounds {
				hot, cold := rng.Int64N(3), rng.Int64N(3)
				if hot+cold == 0 {
					hot = 1
				}
				var lines []order.Line
				if hot > 0 {
					lines = append(lines, line("HOT", hot))
				}
				if cold > 0 {
					lines = append(lines, line("COLD", cold))
				}
				if rng.IntN(2) == 0 {
					slices.Reverse(lines)
				}
				until := later()
				if rng.IntN(4) == 0 {
					until = time.Now().Add(-time.Second)
				}
				o, _, err := s.PlaceOrder(ctx, placement(fmt.Sprint("buyer-", b), fmt.Sprint(r), until, lines...))
				if so, ok := errors.AsType[*checkout.SoldOutError](err); ok {
					for _, sku := range so.SKUs {
						if !slices.ContainsFunc(lines, func(l order.Line) bool { return l.SKU == sku }) {
							t.Errorf("sold out names %s, not in the order", sku)
						}
					}
					continue
				}
				if err != nil {
					t.Errorf("buyer %d round %d: %v", b, r, err)
					return
				}
				mu.Lock()
				orders = append(orders, placed{o.ID, hot, cold})
				mu.Unlock()
				switch rng.IntN(4) {
				case 0:
					if err := s.MarkPaid(ctx, o.ID, "captured"); errors.Is(err, order.ErrTransition) {
						continue // the sweeper expired it first
					} else if err != nil {
						t.Error(err)
						return
					}
					var redelivered sync.WaitGroup
					for range 2 {
						redelivered.Go(func() {
							if _, err := s.CommitStock(ctx, o.ID); err != nil {
								t.Error(err)
							}
						})
					}
					redelivered.Wait()
				case 1:
					if err := s.MarkPaymentFailed(ctx, o.ID, "declined"); err != nil && !errors.Is(err, order.ErrTransition) {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	bg.Wait()
	for relay("relay-1") {
	}
	for {
		ids, err := s.ExpireDue(ctx, 100, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) == 0 {
			break
		}
	}
	if t.Failed() {
		return
	}

	var reservedHot, soldHot, reservedCold, soldCold int64
	for _, p := range orders {
		o, err := s.Order(ctx, p.id)
		if err != nil {
			t.Fatal(err)
		}
		switch o.Status {
		case order.StatusPendingPayment:
			reservedHot += p.hot
			reservedCold += p.cold
		case order.StatusPaid:
			soldHot += p.hot
			soldCold += p.cold
		}
	}
	if soldHot == 0 || len(orders) < buyers {
		t.Fatalf("only %d orders, %d HOT sold: the run proves little", len(orders), soldHot)
	}
	checkLedger(t, s, "HOT", reservedHot, soldHot)
	checkLedger(t, s, "COLD", reservedCold, soldCold)
	events, err := s.Pending(ctx, 100000)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		delivered[e.ID] = e.Subject
	}
	created := 0
	for _, subject := range delivered {
		if subject == order.SubjectCreated {
			created++
		}
	}
	if created != len(orders) {
		t.Errorf("%d order-created events for %d orders", created, len(orders))
	}
}

// eventIDs lists the IDs of evs.
func eventIDs(evs []outbox.Event) []string {
	ids := make([]string, len(evs))
	for i, e := range evs {
		ids[i] = e.ID
	}
	return ids
}

// deliver marks the creation events of the orders published, as the relay
// does once the bus has them.
func deliver(t *testing.T, s Store, orderIDs ...string) {
	t.Helper()
	events, err := s.Pending(context.Background(), 100000)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range events {
		var ev order.Event
		if err := json.Unmarshal(e.Data, &ev); err != nil {
			t.Fatal(err)
		}
		if e.Subject == order.SubjectCreated && slices.Contains(orderIDs, ev.OrderID) {
			ids = append(ids, e.ID)
		}
	}
	if len(ids) != len(orderIDs) {
		t.Fatalf("%d undelivered creation events for %d orders", len(ids), len(orderIDs))
	}
	if err := s.MarkPublished(context.Background(), ids); err != nil {
		t.Fatal(err)
	}
}

// testOutboxClaims: relays claim batches of the outbox in commit order;
// what one holds another does not get until it is released or published;
// a relay renews its own claim; relays claiming at once never get the same
// event.
func testOutboxClaims(t *testing.T, s Store) {
	ctx := context.Background()
	newShop(t, s, 100)
	for i := range 10 {
		mustPlace(t, s, placement(fmt.Sprint("buyer-", i), "k", later(), line("COLD", 1)))
	}
	ev, err := s.Pending(ctx, 100)
	if err != nil || len(ev) != 10 {
		t.Fatalf("pending: %d events, %v", len(ev), err)
	}
	claim := func(owner string, limit int, want ...int) {
		t.Helper()
		got, err := s.Claim(ctx, owner, limit, time.Hour)
		if err != nil {
			t.Fatalf("%s claims %d: %v", owner, limit, err)
		}
		var wantIDs []string
		for _, i := range want {
			wantIDs = append(wantIDs, ev[i].ID)
		}
		if !slices.Equal(eventIDs(got), wantIDs) {
			t.Fatalf("%s claims %d: got %v, want events %v (%v)", owner, limit, eventIDs(got), want, wantIDs)
		}
		for _, e := range got {
			if e.Subject != order.SubjectCreated || len(e.Data) == 0 || e.CreatedAt.IsZero() {
				t.Errorf("claimed event %+v lacks its subject, data or time", e)
			}
		}
	}
	claim("a", 2, 0, 1)
	claim("b", 2, 2, 3)    // not what a holds
	claim("a", 3, 0, 1, 4) // a renews its own and takes the next
	if err := s.Release(ctx, "b", []string{ev[1].ID}); err != nil {
		t.Fatal(err)
	}
	claim("c", 1, 5) // b cannot release what a holds
	if err := s.Release(ctx, "a", []string{ev[1].ID, "evt_unknown"}); err != nil {
		t.Fatal(err)
	}
	claim("b", 1, 1) // released: the oldest claimable again
	if err := s.MarkPublished(ctx, []string{ev[0].ID}); err != nil {
		t.Fatal(err)
	}
	if oldest, err := s.Oldest(ctx); err != nil || !sameInstant(oldest, ev[1].CreatedAt) {
		t.Errorf("oldest undelivered = %v, %v; want %v, the first event not published", oldest, err, ev[1].CreatedAt)
	}
	claim("a", 10, 4, 6, 7, 8, 9) // the published one is gone
	if err := s.Release(ctx, "a", eventIDs(ev)); err != nil {
		t.Fatal(err)
	}
	claim("d", 3, 4, 6, 7)
	claim("d", 0)
	if err := s.MarkPublished(ctx, eventIDs(ev)); err != nil {
		t.Fatal(err)
	}
	if oldest, err := s.Oldest(ctx); err != nil || !oldest.IsZero() {
		t.Errorf("oldest undelivered with everything published = %v, %v; want zero", oldest, err)
	}
	claim("a", 10)

	// Relays racing for a larger outbox each get a share, never the same
	// event twice.
	const orders, relays = 60, 4
	for i := range orders {
		mustPlace(t, s, placement(fmt.Sprint("racer-", i), "k", later(), line("COLD", 1)))
	}
	var (
		mu    sync.Mutex
		seen  = map[string]string{}
		wg    sync.WaitGroup
		start = make(chan struct{})
	)
	for r := range relays {
		owner := fmt.Sprint("relay-", r)
		wg.Go(func() {
			<-start
			for {
				got, err := s.Claim(ctx, owner, 5, time.Hour)
				if err != nil {
					t.Error(err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, e := range got {
					if other, dup := seen[e.ID]; dup {
						t.Errorf("event %s claimed by %s and %s", e.ID, other, owner)
					}
					seen[e.ID] = owner
				}
				mu.Unlock()
				if err := s.MarkPublished(ctx, eventIDs(got)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	close(start)
	wg.Wait()
	if len(seen) != orders {
		t.Errorf("%d events claimed, want each of %d once", len(seen), orders)
	}
}

// testExpiryWaitsForDelivery: an order whose creation event never reached
// the bus is never expired, however long ago its reservation ran out:
// nobody was ever asked to take its payment.
func testExpiryWaitsForDelivery(t *testing.T, s Store) {
	ctx := context.Background()
	newShop(t, s, 10)
	past := time.Now().Add(-time.Hour)
	stuck := mustPlace(t, s, placement("a", "1", past, line("HOT", 2)))
	out := mustPlace(t, s, placement("b", "1", past, line("HOT", 3)))
	deliver(t, s, out.ID)
	ids, err := s.ExpireDue(ctx, 100, 0)
	if err != nil || !slices.Equal(ids, []string{out.ID}) {
		t.Fatalf("expired %v (%v); want only %s, whose event was delivered", ids, err, out.ID)
	}
	checkLedger(t, s, "HOT", 2, 0)
	if o, err := s.Order(ctx, stuck.ID); err != nil || o.Status != order.StatusPendingPayment {
		t.Fatalf("undelivered order: %s, %v; want it still pending payment", o.Status, err)
	}
	// Once delivered, and no worker claimed it, it expires as any other.
	deliver(t, s, stuck.ID)
	if ids, err := s.ExpireDue(ctx, 100, 0); err != nil || !slices.Equal(ids, []string{stuck.ID}) {
		t.Fatalf("after delivery: expired %v (%v), want %s", ids, err, stuck.ID)
	}
	checkLedger(t, s, "HOT", 0, 0)
}

// placementAt is placement with the order created at the clock's time.
func placementAt(c *Clock, owner, key string, ttl time.Duration, lines ...order.Line) checkout.Placement {
	p := placement(owner, key, c.Now().Add(ttl), lines...)
	p.Order.CreatedAt, p.Order.UpdatedAt = c.Now(), c.Now()
	return p
}

// testOutboxClaimLease: a claim keeps other relays off its events for its
// lease, and only that long: a relay that died gives them up.
func testOutboxClaimLease(t *testing.T, s Store, c *Clock) {
	ctx := context.Background()
	newShop(t, s, 10)
	for i := range 3 {
		mustPlace(t, s, placementAt(c, fmt.Sprint("buyer-", i), "k", 10*time.Minute, line("COLD", 1)))
	}
	held, err := s.Claim(ctx, "dead", 10, 30*time.Second)
	if err != nil || len(held) != 3 {
		t.Fatalf("claim: %d events, %v", len(held), err)
	}
	c.Advance(29 * time.Second)
	if got, err := s.Claim(ctx, "alive", 10, 30*time.Second); err != nil || len(got) != 0 {
		t.Fatalf("within the lease another relay claimed %v (%v)", eventIDs(got), err)
	}
	c.Advance(2 * time.Second)
	got, err := s.Claim(ctx, "alive", 10, 30*time.Second)
	if err != nil || !slices.Equal(eventIDs(got), eventIDs(held)) {
		t.Fatalf("after the lease: claimed %v (%v), want %v", eventIDs(got), err, eventIDs(held))
	}
	// The relay that took over holds them now; the late one gets nothing.
	if got, err := s.Claim(ctx, "dead", 10, 30*time.Second); err != nil || len(got) != 0 {
		t.Fatalf("the lapsed relay claimed %v (%v) back from the live one", eventIDs(got), err)
	}
}

// testLateDeliveryMovesReservation: when an order's event reaches the bus
// late (the bus was down), its reservation runs from then: the payment
// workers get the whole reservation time to take the payment.
func testLateDeliveryMovesReservation(t *testing.T, s Store, c *Clock) {
	ctx := context.Background()
	newShop(t, s, 10)
	const ttl = 10 * time.Minute
	late := mustPlace(t, s, placementAt(c, "a", "1", ttl, line("HOT", 1)))
	onTime := mustPlace(t, s, placementAt(c, "b", "1", ttl, line("HOT", 1)))
	deliver(t, s, onTime.ID)
	c.Advance(30 * time.Minute) // the bus is down for half an hour
	ids, err := s.ExpireDue(ctx, 100, 0)
	if err != nil || !slices.Equal(ids, []string{onTime.ID}) {
		t.Fatalf("expired %v (%v); want only %s, delivered in time", ids, err, onTime.ID)
	}
	deliver(t, s, late.ID)
	c.Advance(ttl - time.Second)
	if ids, err := s.ExpireDue(ctx, 100, 0); err != nil || len(ids) != 0 {
		t.Fatalf("expired %v (%v) within its reservation counted from delivery", ids, err)
	}
	c.Advance(2 * time.Second)
	if ids, err := s.ExpireDue(ctx, 100, 0); err != nil || !slices.Equal(ids, []string{late.ID}) {
		t.Fatalf("expired %v (%v) after its reservation from delivery ran out; want %s", ids, err, late.ID)
	}
	checkLedger(t, s, "HOT", 0, 0)
}
