package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/surge-commerce/surge/internal/catalog"
	"github.com/surge-commerce/surge/internal/money"
	"github.com/surge-commerce/surge/internal/storetest"
)

// newTestStore opens and migrates a store in a fresh temporary file.
func newTestStore(tb testing.TB, opts ...Option) *Store {
	tb.Helper()
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(tb.TempDir(), "surge.db"), opts...)
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

// seedCatalog builds n products with 1-6 variants (3.5 on average) in 50
// categories, like the demo seed.
func seedCatalog(n int) ([]catalog.Category, []catalog.Product) {
	words := []string{"linen", "cotton", "wool", "shirt", "dress", "coat", "boots", "scarf", "black", "navy", "summer", "winter"}
	var cats []catalog.Category
	for i := range 10 {
		cats = append(cats, catalog.Category{Slug: fmt.Sprintf("dept-%d", i), Name: "Department " + words[i], Position: i})
	}
	for i := range 40 {
		cats = append(cats, catalog.Category{ParentID: int64(i%10 + 1), Slug: fmt.Sprintf("cat-%d", i), Name: words[i%len(words)] + " things", Position: i})
	}
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	products := make([]catalog.Product, n)
	for i := range products {
		name := fmt.Sprintf("%s %s %s %d", words[i%12], words[(i/12)%12], words[(i/144)%12], i)
		p := catalog.Product{
			Slug:        fmt.Sprintf("product-%d", i),
			Name:        name,
			Description: "A " + name + " made to last, in " + words[(i*7)%12] + " and " + words[(i*5)%12] + ". Machine washable.",
			Status:      catalog.StatusActive,
			CategoryID:  int64(11 + i%40),
			Images:      []catalog.Image{{URL: fmt.Sprintf("/img/%d.jpg", i), Alt: name}},
			Attributes:  []catalog.Attribute{{Name: "material", Value: words[i%3]}},
			CreatedAt:   base.Add(time.Duration(i) * time.Minute),
		}
		if i%10 == 0 {
			p.Status = catalog.StatusDraft
		}
		for j := range 1 + (i*7)%6 {
			p.Variants = append(p.Variants, catalog.Variant{
				SKU:      fmt.Sprintf("P%d-%d", i, j),
				Options:  []catalog.Option{{Name: "size", Value: []string{"XS", "S", "M", "L", "XL", "XXL"}[j]}},
				Price:    money.Money{Amount: int64(1000 + (i%97)*100 + j*50), Currency: "USD"},
				OnHand:   int64((i + j) % 5),
				Position: j,
			})
		}
		products[i] = p
	}
	return cats, products
}

func BenchmarkImport100k(b *testing.B) {
	cats, products := seedCatalog(100_000)
	variants := 0
	for _, p := range products {
		variants += len(p.Variants)
	}
	for b.Loop() {
		b.StopTimer()
		s := newTestStore(b)
		b.StartTimer()
		start := time.Now()
		if err := s.ImportCatalog(context.Background(), cats, products); err != nil {
			b.Fatal(err)
		}
		b.Logf("imported %d products, %d variants in %s", len(products), variants, time.Since(start))
		b.StopTimer()
		for _, q := range []catalog.Query{
			{},
			{Sort: catalog.SortPriceAsc, InStock: true},
			{CategoryID: 3},
			{CategoryID: 30},
			{Text: "linen shirt"},
			{Text: "winter coat", Sort: catalog.SortPriceDesc},
			{Text: "c"},
		} {
			start := time.Now()
			page, err := s.SearchProducts(context.Background(), q)
			if err != nil {
				b.Fatal(err)
			}
			b.Logf("search %+v: %d items in %s", q, len(page.Items), time.Since(start))
		}
		b.StartTimer()
	}
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) catalog.Store { return newTestStore(t) })
}

func TestShopConformance(t *testing.T) {
	storetest.RunShop(t, func(t *testing.T) storetest.Store { return newTestStore(t) })
}

func TestShopConformanceClocked(t *testing.T) {
	storetest.RunShopClocked(t, func(t *testing.T, now func() time.Time) storetest.Store {
		return newTestStore(t, WithClock(now))
	})
}

func TestMigrateIsIdempotent(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "surge.db")
	// Two stores on one file migrate at once, then again.
	var stores [2]*Store
	for i := range stores {
		s, err := Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
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
		t.Fatalf("second Migrate: %v", err)
	}
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	var n, maxVersion int
	if err := stores[1].Reader().QueryRowContext(ctx, `SELECT count(*), max(version) FROM schema_migrations`).Scan(&n, &maxVersion); err != nil {
		t.Fatal(err)
	}
	if n != len(ms) || maxVersion != ms[len(ms)-1].Version {
		t.Errorf("schema_migrations has %d rows up to %d; want %d up to %d", n, maxVersion, len(ms), ms[len(ms)-1].Version)
	}
}

// TestPragmasOnEveryConnection also checks durability: by default every
// connection syncs the log at each commit (synchronous=FULL, 2), so an
// acknowledged order survives an OS crash; NORMAL (1) only on request.
func TestPragmasOnEveryConnection(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []Option
		sync int
	}{{"default", nil, 2}, {"full", []Option{WithSynchronous(SyncFull)}, 2}, {"normal", []Option{WithSynchronous(SyncNormal)}, 1}} {
		t.Run(tc.name, func(t *testing.T) { checkPragmas(t, tc.sync, tc.opts...) })
	}
	if _, err := Open(context.Background(), filepath.Join(t.TempDir(), "s.db"), WithSynchronous("off")); err == nil {
		t.Error("Open took synchronous=off")
	}
}

func checkPragmas(t *testing.T, wantSync int, opts ...Option) {
	ctx := context.Background()
	s := newTestStore(t, append([]Option{WithReaders(3)}, opts...)...)
	check := func(pool string, db *sql.DB, n int, queryOnly int) {
		// Hold n connections at once so each is a different one.
		conns := make([]*sql.Conn, n)
		for i := range conns {
			c, err := db.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			conns[i] = c
		}
		for i, c := range conns {
			var journal string
			var fk, busy, sync, qo int
			for _, p := range []struct {
				name string
				dest any
			}{{"journal_mode", &journal}, {"foreign_keys", &fk}, {"busy_timeout", &busy}, {"synchronous", &sync}, {"query_only", &qo}} {
				if err := c.QueryRowContext(ctx, "PRAGMA "+p.name).Scan(p.dest); err != nil {
					t.Fatalf("%s connection %d: PRAGMA %s: %v", pool, i, p.name, err)
				}
			}
			if journal != "wal" || fk != 1 || busy != 5000 || sync != wantSync || qo != queryOnly {
				t.Errorf("%s connection %d: journal_mode=%s foreign_keys=%d busy_timeout=%d synchronous=%d query_only=%d",
					pool, i, journal, fk, busy, sync, qo)
			}
		}
	}
	check("reader", s.Reader(), 3, 1)
	check("writer", s.Writer(), 1, 0)

	if _, err := s.Reader().ExecContext(ctx, `DELETE FROM products`); err == nil {
		t.Error("the reader pool accepted a write")
	}
	if err := s.Ping(ctx); err != nil {
		t.Error(err)
	}
}

func TestOpenRefusesMemory(t *testing.T) {
	for _, path := range []string{"", ":memory:", "file::memory:", "a.db?mode=ro"} {
		if s, err := Open(context.Background(), path); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded; want an error", path)
		}
	}
}

func TestFTS5Available(t *testing.T) {
	s := newTestStore(t)
	var opt bool
	if err := s.Reader().QueryRow(`SELECT sqlite_compileoption_used('ENABLE_FTS5')`).Scan(&opt); err != nil || !opt {
		t.Fatalf("FTS5 compiled in: %v, %v", opt, err)
	}
}

// TestSetStockBelowCommitted reserves and sells through the writer, as the
// inventory code will, then checks SetStock refuses to go below that.
func TestSetStockBelowCommitted(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	cat, err := s.CreateCategory(ctx, catalog.Category{Slug: "c", Name: "C"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.CreateProduct(ctx, catalog.Product{Slug: "p", Name: "P", Status: catalog.StatusActive, CategoryID: cat.ID,
		Variants: []catalog.Variant{{SKU: "P-1", Price: money.Money{Amount: 100, Currency: "USD"}, OnHand: 10}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Writer().ExecContext(ctx, `UPDATE variants SET reserved = 2, sold = 3 WHERE sku = 'P-1'`); err != nil {
		t.Fatal(err)
	}
	_, err = s.SetStock(ctx, "P-1", 4)
	if !errors.Is(err, catalog.ErrInvalid) || !strings.Contains(err.Error(), "reserved+sold") {
		t.Errorf("SetStock(4) with 2 reserved and 3 sold: %v; want ErrInvalid naming reserved+sold", err)
	}
	v, err := s.SetStock(ctx, "P-1", 5)
	if err != nil || v.OnHand != 5 || v.Available() != 0 {
		t.Fatalf("SetStock(5) = %+v, %v", v, err)
	}
	got, err := s.ProductByID(ctx, p.ID)
	if err != nil || got.InStock {
		t.Errorf("nothing available but InStock = %v (%v)", got.InStock, err)
	}
	// The CHECK constraint backs this up for any other write path.
	if _, err := s.Writer().ExecContext(ctx, `UPDATE variants SET reserved = reserved + 1 WHERE sku = 'P-1'`); err == nil {
		t.Error("database accepted reserved+sold > on_hand")
	}
	// Releasing a reservation makes the product available again (trigger).
	if _, err := s.Writer().ExecContext(ctx, `UPDATE variants SET reserved = 1 WHERE sku = 'P-1'`); err != nil {
		t.Fatal(err)
	}
	if got, err := s.ProductByID(ctx, p.ID); err != nil || !got.InStock {
		t.Errorf("one unit available but InStock = %v (%v)", got.InStock, err)
	}
}

// TestImportRestoresTriggers checks that writes after an import still keep
// the search index and product summaries up to date.
func TestImportRestoresTriggers(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	countTriggers := func() int {
		var n int
		if err := s.Reader().QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema WHERE type = 'trigger'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := countTriggers()
	cats, products := seedCatalog(50)
	if err := s.ImportCatalog(ctx, cats, products); err != nil {
		t.Fatal(err)
	}
	if after := countTriggers(); after != before {
		t.Fatalf("%d triggers after import, %d before", after, before)
	}
	p, err := s.CreateProduct(ctx, catalog.Product{Slug: "zeppelin", Name: "Zeppelin", Status: catalog.StatusActive, CategoryID: 1,
		Variants: []catalog.Variant{{SKU: "Z-1", Price: money.Money{Amount: 700, Currency: "USD"}, OnHand: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	if p.PriceFrom.Amount != 700 || !p.InStock {
		t.Errorf("product created after import: PriceFrom %v, InStock %v", p.PriceFrom, p.InStock)
	}
	page, err := s.SearchProducts(ctx, catalog.Query{Text: "zeppelin"})
	if err != nil || len(page.Items) != 1 {
		t.Errorf("search for a product created after import: %v, %v", page.Items, err)
	}
}

// TestListingPlans guards the storefront listings against sorting the
// whole catalog: each sort must walk an index.
func TestListingPlans(t *testing.T) {
	s := newTestStore(t)
	for _, q := range []catalog.Query{
		{Sort: catalog.SortNewest},
		{Sort: catalog.SortNewest, After: &catalog.Cursor{Sort: catalog.SortNewest, Time: 5, ID: 3}, InStock: true},
		{Sort: catalog.SortPriceAsc, After: &catalog.Cursor{Sort: catalog.SortPriceAsc, Price: 5, ID: 3}, MinPrice: 100},
		{Sort: catalog.SortPriceDesc, After: &catalog.Cursor{Sort: catalog.SortPriceDesc, Price: 5, ID: 3}},
	} {
		query, args := searchSQL(q, "", q.Sort, 24)
		rows, err := s.Reader().Query("EXPLAIN QUERY PLAN "+query, args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		if p := strings.Join(plan, "; "); strings.Contains(p, "TEMP B-TREE") || !strings.Contains(p, "USING INDEX products_status_") {
			t.Errorf("sort %s plan: %s", q.Sort, p)
		}
	}
}

func TestFTSQuery(t *testing.T) {
	tests := []struct{ text, want string }{
		{"shirt", `"shirt"*`},
		{"linen shirt", `"linen" "shirt"*`},
		{`"linen" AND shirt*`, `"linen" "AND" "shirt"*`},
		{"NEAR(a b)", `"NEAR" "a" "b"*`},
		{"name:parka", `"name" "parka"*`},
		{"café crème", `"café" "crème"*`},
		{"🧥 parka 🙂", `"parka"*`},
		{`*"()-^:+`, ""},
		{"\u0301", ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := ftsQuery(tt.text); got != tt.want {
			t.Errorf("ftsQuery(%q) = %s, want %s", tt.text, got, tt.want)
		}
	}
	if got := ftsQuery(strings.Repeat("a ", 100)); strings.Count(got, `"a"`) != maxSearchWords {
		t.Errorf("ftsQuery of 100 words kept %d", strings.Count(got, `"a"`))
	}
}

// FuzzSearchText checks that no search text makes SearchProducts fail,
// whatever FTS5 or SQL syntax it contains.
func FuzzSearchText(f *testing.F) {
	for _, s := range []string{`"`, `*`, `(`, `AND OR`, `NEAR(`, `NOT x`, `a:b`, `^x`, `-x`, `🙂`, "\x00", "\xff", `""*`, "e\u0301", "shirt", "", " "} {
		f.Add(s)
	}
	ctx := context.Background()
	s := newTestStore(f)
	cats, products := seedCatalog(30)
	if err := s.ImportCatalog(ctx, cats, products); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, text string) {
		if q := ftsQuery(text); q != "" {
			// Only quoted words, the last one a prefix.
			for w := range strings.SplitSeq(strings.TrimSuffix(q, "*"), " ") {
				if len(w) < 3 || w[0] != '"' || w[len(w)-1] != '"' || strings.Contains(w[1:len(w)-1], `"`) {
					t.Fatalf("ftsQuery(%q) = %s: %q is not a quoted word", text, q, w)
				}
			}
		}
		for _, sort := range []catalog.Sort{catalog.SortRelevance, catalog.SortPriceAsc} {
			page, err := s.SearchProducts(ctx, catalog.Query{Text: text, Sort: sort, Limit: 2})
			if err != nil {
				t.Fatalf("search %q: %v", text, err)
			}
			if page.NextCursor == "" {
				continue
			}
			// The next page must load too: the cursor carries a rank.
			want := sort
			if sort == catalog.SortRelevance && strings.TrimSpace(text) == "" {
				want = catalog.SortNewest
			}
			after, err := catalog.DecodeCursor(page.NextCursor, want)
			if err != nil {
				t.Fatalf("search %q: cursor: %v", text, err)
			}
			if _, err := s.SearchProducts(ctx, catalog.Query{Text: text, Sort: sort, Limit: 2, After: after}); err != nil {
				t.Fatalf("search %q, page 2: %v", text, err)
			}
		}
	})
}

// TestLazyWritesCommitUnsyncedAlone: a batch of only lazy writes (the mail
// job's delivery records) commits at synchronous=NORMAL; a batch with any
// durable write commits at FULL, lazy ones included; and the writer is
// back at FULL after each, so the next order is synced. On a store opened
// at NORMAL everything is NORMAL.
func TestLazyWritesCommitUnsyncedAlone(t *testing.T) {
	for _, tc := range []struct {
		name                string
		opts                []Option
		alone, mixed, plain int
	}{
		{"full", nil, 1, 2, 2},
		{"normal", []Option{WithSynchronous(SyncNormal)}, 1, 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			s := newTestStore(t, tc.opts...)
			// seen runs in a write and reports the synchronous setting its
			// transaction will commit with.
			seen := func(lazy bool, got *int) error {
				fn := func(tx wtx) error { return tx.QueryRow("PRAGMA synchronous").Scan(got) }
				if lazy {
					return s.writeLazy(ctx, fn)
				}
				return s.write(ctx, fn)
			}
			var alone, plain int
			if err := seen(true, &alone); err != nil {
				t.Fatal(err)
			}
			if err := seen(false, &plain); err != nil {
				t.Fatal(err)
			}
			// Hold the committer in a write so the next ones queue up and
			// run as one batch: a lazy write and a durable one.
			hold, held := make(chan struct{}), make(chan struct{})
			first := make(chan error, 1)
			go func() {
				first <- s.write(ctx, func(wtx) error { close(held); <-hold; return nil })
			}()
			<-held
			var mixedLazy, mixedPlain int
			errs := make(chan error, 2)
			go func() { errs <- seen(true, &mixedLazy) }()
			go func() { errs <- seen(false, &mixedPlain) }()
			for len(s.commit.jobs) < 2 {
				runtime.Gosched()
			}
			close(hold)
			for _, ch := range []chan error{first, errs, errs} {
				if err := <-ch; err != nil {
					t.Fatal(err)
				}
			}
			if alone != tc.alone || plain != tc.plain || mixedLazy != tc.mixed || mixedPlain != tc.mixed {
				t.Errorf("synchronous: lazy alone %d, durable %d, lazy and durable together %d and %d; want %d, %d, %d",
					alone, plain, mixedLazy, mixedPlain, tc.alone, tc.plain, tc.mixed)
			}
			var after int
			if err := s.writer.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&after); err != nil || after != tc.plain {
				t.Errorf("writer after the batches: synchronous %d (%v), want %d", after, err, tc.plain)
			}
		})
	}
}

// BenchmarkWritesBesideRecords measures a durable write's latency on one
// store (the API's orders) while a second store on the same file (the
// worker's, another process in production) commits a record every 5 ms,
// synced each (durable) or not (lazy): every sync the worker holds the
// file's one write lock through is a wait, with SQLite's busy backoff,
// for the other's orders. Reports the durable writes' p50 and p99; alone
// is the same without the records.
func BenchmarkWritesBesideRecords(b *testing.B) {
	for _, mode := range []string{"alone", "durable", "lazy"} {
		b.Run(mode, func(b *testing.B) {
			ctx := context.Background()
			path := filepath.Join(b.TempDir(), "surge.db")
			api, err := Open(ctx, path)
			if err != nil {
				b.Fatal(err)
			}
			defer api.Close()
			worker, err := Open(ctx, path)
			if err != nil {
				b.Fatal(err)
			}
			defer worker.Close()
			if _, err := api.writer.Exec(`CREATE TABLE bench_orders (x); CREATE TABLE bench_records (x)`); err != nil {
				b.Fatal(err)
			}
			stop, done := make(chan struct{}), make(chan struct{})
			go func() {
				defer close(done)
				tick := time.NewTicker(5 * time.Millisecond)
				defer tick.Stop()
				rec := func(tx wtx) error { _, err := tx.Exec(`INSERT INTO bench_records VALUES (1)`); return err }
				for {
					select {
					case <-stop:
						return
					case <-tick.C:
					}
					switch mode {
					case "lazy":
						_ = worker.writeLazy(ctx, rec)
					case "durable":
						_ = worker.write(ctx, rec)
					}
				}
			}()
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for b.Loop() {
				start := time.Now()
				if err := api.write(ctx, func(tx wtx) error { _, err := tx.Exec(`INSERT INTO bench_orders VALUES (1)`); return err }); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
				time.Sleep(time.Millisecond) // an order now and then, not a stampede
			}
			b.StopTimer()
			close(stop)
			<-done
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-us")
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-us")
		})
	}
}
