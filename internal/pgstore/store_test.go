package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/surge-commerce/surge/internal/catalog"
	"github.com/surge-commerce/surge/internal/checkout"
	"github.com/surge-commerce/surge/internal/enginetest"
	"github.com/surge-commerce/surge/internal/money"
	"github.com/surge-commerce/surge/internal/order"
	"github.com/surge-commerce/surge/internal/payment"
	"github.com/surge-commerce/surge/internal/payment/simulated"
	"github.com/surge-commerce/surge/internal/pgstore"
	"github.com/surge-commerce/surge/internal/shop"
	"github.com/surge-commerce/surge/internal/storetest"
)

var _ shop.Store = (*pgstore.Store)(nil)

// newTestStore opens and migrates a store on a fresh database. With
// replica set it reads from the test replica too.
func newTestStore(tb testing.TB, replica bool, change ...func(*pgstore.Config)) *pgstore.Store {
	tb.Helper()
	primaryURL, replicaURL := enginetest.Postgres(tb)
	cfg := pgstore.Config{URL: primaryURL, MaxConns: 8}
	if replica {
		if replicaURL == "" {
			tb.Skip("SURGE_TEST_POSTGRES_REPLICA not set")
		}
		cfg.ReplicaURLs = []string{replicaURL}
	}
	for _, c := range change {
		c(&cfg)
	}
	ctx := context.Background()
	s, err := pgstore.Open(ctx, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Error(err)
		}
	})
	if err := s.Migrate(ctx); err != nil {
		tb.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) catalog.Store { return newTestStore(t, false) })
}

func TestShopConformance(t *testing.T) {
	storetest.RunShop(t, func(t *testing.T) storetest.Store { return newTestStore(t, false) })
}

func TestShopConformanceClocked(t *testing.T) {
	storetest.RunShopClocked(t, func(t *testing.T, now func() time.Time) storetest.Store {
		return newTestStore(t, false, func(c *pgstore.Config) { c.Now = now })
	})
}

// replicaReads returns how many reads each replica and the primary (as
// fallbacks) served, from the store's metrics.
func replicaReads(t *testing.T, reg *prometheus.Registry) (replicas, fallbacks float64) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch mf.GetName() {
			case "surge_db_replica_reads_total":
				replicas += m.GetCounter().GetValue()
			case "surge_db_replica_fallback_reads_total":
				fallbacks += m.GetCounter().GetValue()
			}
		}
	}
	return replicas, fallbacks
}

// waitReplayed checks the replicas until every one has replayed past lsn.
func waitReplayed(t *testing.T, s *pgstore.Store, lsn pgstore.LSN) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		s.CheckReplicas(ctx)
		done := true
		for _, r := range s.Replicas() {
			done = done && r.Up && r.Replayed >= lsn
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("replicas never replayed past %s: %+v", lsn, s.Replicas())
		}
		<-tick.C
	}
}

func TestReplicaReadsSeeYourWrites(t *testing.T) {
	ctx := context.Background()
	// Checks only when the test asks, so the routing below is not raced by
	// the background ones.
	s := newTestStore(t, true, func(c *pgstore.Config) { c.ReplicaCheckInterval = time.Hour })
	reg := prometheus.NewRegistry()
	if err := s.Register(reg); err != nil {
		t.Fatal(err)
	}
	s.CheckReplicas(ctx)
	st := s.Replicas()
	if len(st) != 1 || !st[0].Up || st[0].Lag > 5*time.Second {
		t.Fatalf("replica status %+v; want one replica, up, within 5s", st)
	}
	if got := testutil.ToFloat64(gauge(t, reg, "surge_db_replica_lag_seconds", st[0].Name)); got < 0 || got > 5 {
		t.Errorf("surge_db_replica_lag_seconds{replica=%q} = %v", st[0].Name, got)
	}
	if got := testutil.ToFloat64(gauge(t, reg, "surge_db_replica_up", st[0].Name)); got != 1 {
		t.Errorf("surge_db_replica_up = %v", got)
	}

	// A write recorded in the context: reads with it see the write
	// wherever they run.
	wctx, rec := pgstore.RecordWrites(ctx)
	cat, err := s.CreateCategory(wctx, catalog.Category{Slug: "fresh", Name: "Fresh"})
	if err != nil {
		t.Fatal(err)
	}
	lsn := rec.LSN()
	if lsn == 0 {
		t.Fatal("a recorded write left no LSN")
	}
	if primary, err := s.CurrentLSN(ctx); err != nil || primary < lsn {
		t.Fatalf("primary at %v (%v), before the write's %v", primary, err, lsn)
	}
	// The replica's last check predates the write, so these reads must
	// go to the primary.
	rBefore, fBefore := replicaReads(t, reg)
	if got, err := s.CategoryBySlug(wctx, "fresh"); err != nil || got.ID != cat.ID {
		t.Fatalf("read after write: %+v, %v", got, err)
	}
	if got, err := s.CategoryBySlug(pgstore.WithMinLSN(ctx, lsn), "fresh"); err != nil || got.ID != cat.ID {
		t.Fatalf("read with the write's LSN from a cookie: %+v, %v", got, err)
	}
	if r, f := replicaReads(t, reg); r != rBefore || f != fBefore+2 {
		t.Errorf("reads needing the write: %v on replicas, %v fallbacks; want 0 and 2", r-rBefore, f-fBefore)
	}

	// Once the replica has replayed the write it serves those reads.
	waitReplayed(t, s, lsn)
	if got, err := s.CategoryBySlug(pgstore.WithMinLSN(ctx, lsn), "fresh"); err != nil || got.ID != cat.ID {
		t.Fatalf("read from the replica: %+v, %v", got, err)
	}
	if _, err := s.SearchProducts(ctx, catalog.Query{}); err != nil {
		t.Fatal(err)
	}
	if r, f := replicaReads(t, reg); r != rBefore+2 || f != fBefore+2 {
		t.Errorf("reads after replay: %v on replicas, %v fallbacks; want 2 and 0", r-rBefore, f-fBefore-2)
	}
	// Reads that must be current never go to a replica.
	if _, err := s.Ledger(ctx, "NOPE"); err == nil {
		t.Error("Ledger of an unknown SKU succeeded")
	}
	if r, _ := replicaReads(t, reg); r != rBefore+2 {
		t.Error("a primary-only read went to a replica")
	}
}

// gauge returns the collector for one labelled series of a gauge vector.
func gauge(t *testing.T, reg *prometheus.Registry, name, replica string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "replica" && l.GetValue() == replica {
					g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name})
					g.Set(m.GetGauge().GetValue())
					return g
				}
			}
		}
	}
	t.Fatalf("no %s{replica=%q}", name, replica)
	return nil
}

func TestReplicaDownFallsBackToPrimary(t *testing.T) {
	ctx := context.Background()
	// Nothing listens on port 1: the replica is down from the start.
	s := newTestStore(t, false, func(c *pgstore.Config) {
		c.ReplicaURLs = []string{"postgres://surge@127.0.0.1:1/none?connect_timeout=1"}
		c.ReplicaCheckInterval = time.Hour
	})
	reg := prometheus.NewRegistry()
	if err := s.Register(reg); err != nil {
		t.Fatal(err)
	}
	s.CheckReplicas(ctx)
	if st := s.Replicas(); len(st) != 1 || st[0].Up {
		t.Fatalf("replica status %+v; want down", st)
	}
	if got := testutil.ToFloat64(gauge(t, reg, "surge_db_replica_lag_seconds", "127.0.0.1:1")); !math.IsInf(got, 1) {
		t.Errorf("lag of a down replica = %v, want +Inf", got)
	}
	if _, err := s.CreateCategory(ctx, catalog.Category{Slug: "c", Name: "C"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CategoryBySlug(ctx, "c"); err != nil {
		t.Fatalf("read with the only replica down: %v", err)
	}
	if r, f := replicaReads(t, reg); r != 0 || f != 1 {
		t.Errorf("%v replica reads, %v fallbacks; want 0 and 1", r, f)
	}
	if err := s.Ping(ctx); err != nil {
		t.Errorf("Ping with a replica down: %v", err)
	}
}

func TestReplicaConformance(t *testing.T) {
	// Every catalog read may go to the replica, and every test's writes are
	// recorded in the context its reads use: the suite's read-after-write
	// expectations must hold as a visitor's do.
	storetest.Run(t, func(t *testing.T) catalog.Store {
		s := newTestStore(t, true, func(c *pgstore.Config) { c.ReplicaCheckInterval = 20 * time.Millisecond })
		ctx, _ := pgstore.RecordWrites(context.Background())
		return readYourWrites{s: s, ctx: ctx}
	})
}

// readYourWrites runs every call with one recording context, as the
// requests of one visitor carrying the LSN cookie would.
type readYourWrites struct {
	s   *pgstore.Store
	ctx context.Context
}

func (w readYourWrites) CreateCategory(_ context.Context, c catalog.Category) (catalog.Category, error) {
	return w.s.CreateCategory(w.ctx, c)
}
func (w readYourWrites) Categories(context.Context) ([]catalog.Category, error) {
	return w.s.Categories(w.ctx)
}
func (w readYourWrites) CategoryBySlug(_ context.Context, slug string) (catalog.Category, error) {
	return w.s.CategoryBySlug(w.ctx, slug)
}
func (w readYourWrites) CreateProduct(_ context.Context, p catalog.Product) (catalog.Product, error) {
	return w.s.CreateProduct(w.ctx, p)
}
func (w readYourWrites) UpdateProduct(_ context.Context, p catalog.Product) (catalog.Product, error) {
	return w.s.UpdateProduct(w.ctx, p)
}
func (w readYourWrites) ProductBySlug(_ context.Context, slug string) (catalog.Product, error) {
	return w.s.ProductBySlug(w.ctx, slug)
}
func (w readYourWrites) ProductByID(_ context.Context, id int64) (catalog.Product, error) {
	return w.s.ProductByID(w.ctx, id)
}
func (w readYourWrites) SearchProducts(_ context.Context, q catalog.Query) (catalog.Page, error) {
	return w.s.SearchProducts(w.ctx, q)
}
func (w readYourWrites) CountProducts(context.Context) (int, error) { return w.s.CountProducts(w.ctx) }
func (w readYourWrites) CreateVariant(_ context.Context, productID int64, v catalog.Variant) (catalog.Variant, error) {
	return w.s.CreateVariant(w.ctx, productID, v)
}
func (w readYourWrites) UpdateVariant(_ context.Context, v catalog.Variant) (catalog.Variant, error) {
	return w.s.UpdateVariant(w.ctx, v)
}
func (w readYourWrites) VariantBySKU(_ context.Context, sku string) (catalog.Variant, error) {
	return w.s.VariantBySKU(w.ctx, sku)
}
func (w readYourWrites) SetStock(_ context.Context, sku string, onHand int64) (catalog.Variant, error) {
	return w.s.SetStock(w.ctx, sku, onHand)
}
func (w readYourWrites) ImportCatalog(_ context.Context, cats []catalog.Category, products []catalog.Product) error {
	return w.s.ImportCatalog(w.ctx, cats, products)
}

func TestMigrateConcurrently(t *testing.T) {
	ctx := context.Background()
	primaryURL, _ := enginetest.Postgres(t)
	// Several app replicas start at once on a new database.
	stores := make([]*pgstore.Store, 4)
	for i := range stores {
		s, err := pgstore.Open(ctx, pgstore.Config{URL: primaryURL, MaxConns: 2})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		stores[i] = s
	}
	errs := make(chan error, len(stores))
	for _, s := range stores {
		go func() { errs <- s.Migrate(ctx) }()
	}
	for range stores {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if err := stores[0].Migrate(ctx); err != nil {
		t.Fatalf("Migrate again: %v", err)
	}
	files, err := filepath.Glob("migrations/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("migration files: %v, %v", files, err)
	}
	var n, maxVersion int
	if err := stores[1].Primary().QueryRow(ctx, `SELECT count(*), max(version) FROM schema_migrations`).Scan(&n, &maxVersion); err != nil {
		t.Fatal(err)
	}
	if n != len(files) || maxVersion != len(files) {
		t.Errorf("schema_migrations has %d rows up to %d; want %d, once each", n, maxVersion, len(files))
	}
	// The lock is free again: a session can take it at once.
	var got bool
	if err := stores[2].Primary().QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, int64(0x7375726765)).Scan(&got); err != nil || !got {
		t.Errorf("migration lock still held after Migrate: %v, %v", got, err)
	}
}

// TestStampedeAcrossStores: buyers reach several app processes (one store
// each, with its own pool) at once; none oversells.
func TestStampedeAcrossStores(t *testing.T) {
	ctx := context.Background()
	primaryURL, _ := enginetest.Postgres(t)
	stores := make([]*pgstore.Store, 3)
	for i := range stores {
		s, err := pgstore.Open(ctx, pgstore.Config{URL: primaryURL, MaxConns: 6})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		stores[i] = s
	}
	if err := stores[0].Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	s0 := stores[0]
	cat, err := s0.CreateCategory(ctx, catalog.Category{Slug: "drops", Name: "Drops"})
	if err != nil {
		t.Fatal(err)
	}
	usd := func(a int64) money.Money { return money.Money{Amount: a, Currency: "USD"} }
	if _, err := s0.CreateProduct(ctx, catalog.Product{Slug: "p", Name: "P", Status: catalog.StatusActive, CategoryID: cat.ID,
		Variants: []catalog.Variant{{SKU: "A", Price: usd(100), OnHand: 25}, {SKU: "B", Price: usd(100), OnHand: 15}}}); err != nil {
		t.Fatal(err)
	}
	const buyers = 200
	type result struct {
		both bool
		err  error
	}
	results := make(chan result, buyers)
	for i := range buyers {
		s := stores[i%len(stores)]
		lines := []order.Line{{SKU: "A", Quantity: 1, UnitPrice: usd(100), LineTotal: usd(100)}}
		if i%2 == 1 { // both SKUs, in the order that invites a deadlock
			lines = []order.Line{{SKU: "B", Quantity: 1, UnitPrice: usd(100), LineTotal: usd(100)}, lines[0]}
		}
		go func() {
			now := time.Now()
			_, _, err := s.PlaceOrder(ctx, checkout.Placement{Owner: fmt.Sprint("buyer-", i), Key: "k", RequestHash: "h",
				Order: order.Order{ID: fmt.Sprint("ord_", i), Email: "b@example.com", Status: order.StatusPendingPayment, Lines: lines,
					Subtotal: usd(100), Tax: usd(0), Shipping: usd(0), Total: usd(100), PaymentMethod: "pm",
					ReservedUntil: now.Add(time.Hour), CreatedAt: now, UpdatedAt: now}})
			results <- result{len(lines) == 2, err}
		}()
	}
	ok, withB := 0, int64(0)
	for range buyers {
		r := <-results
		if _, soldOut := errors.AsType[*checkout.SoldOutError](r.err); r.err != nil && !soldOut {
			t.Error(r.err)
		}
		if r.err == nil {
			ok++
			if r.both {
				withB++
			}
		}
	}
	a, errA := s0.Ledger(ctx, "A")
	b, errB := s0.Ledger(ctx, "B")
	if errA != nil || errB != nil {
		t.Fatal(errA, errB)
	}
	// Every order takes one A, so A sells out after exactly 25 orders;
	// B goes to those of them that asked for it, 15 at most.
	if a.Reserved != 25 || a.Reserved != a.HeldByReservations || b.Reserved != withB || b.Reserved > 15 || b.Reserved != b.HeldByReservations {
		t.Errorf("ledgers A %+v, B %+v; want A sold out, B matching the %d orders with B", a, b, withB)
	}
	if ok != 25 {
		t.Errorf("%d orders placed, want 25", ok)
	}
}

// TestWriterKeepsSimulatedPayments: the simulated provider keeps its
// ledger on the primary through Writer.
func TestWriterKeepsSimulatedPayments(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t, false)
	p, err := simulated.New(s.Writer(), simulated.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	tok, _, err := p.Tokenize("4242 4242 4242 4242")
	if err != nil {
		t.Fatal(err)
	}
	a, err := p.Authorize(ctx, payment.AuthorizeRequest{IdempotencyKey: "auth:o1", OrderID: "o1", Amount: money.Money{Amount: 500, Currency: "USD"}, PaymentMethod: tok})
	if err != nil {
		t.Fatal(err)
	}
	req := payment.CaptureRequest{IdempotencyKey: "cap:o1", AuthorizationID: a.ID, OrderID: "o1", Amount: a.Amount}
	for range 2 {
		if _, err := p.Capture(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := p.Captures(ctx, "o1"); err != nil || n != 1 {
		t.Fatalf("captures = %d, %v; want 1", n, err)
	}
}
