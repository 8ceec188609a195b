// Command reserve measures the reservation path of the checkout benchmark
// (bench/checkout/run) in process, without HTTP, against a naive baseline.
//
// With -mode store it opens a fresh sqlitestore database (Open and Migrate,
// as surge does), creates one product whose only SKU has -units units, and
// has -buyers goroutines call Store.PlaceOrder with one-unit orders, each
// with its own owner, idempotency key and order ID, for -duration. Every
// PlaceOrder goes through the store's group-commit writer.
//
// With -mode naive it does what a typical application does, on a fresh
// SQLite file opened with database/sql and modernc.org/sqlite: WAL,
// busy_timeout, the same synchronous setting as the store, a pool of
// 2*GOMAXPROCS connections whose transactions BEGIN IMMEDIATE, and per
// checkout one transaction running
//
//	UPDATE stock SET qty = qty - ? WHERE sku = ? AND qty >= ?
//
// then INSERT INTO orders, then COMMIT, from the same number of goroutines
// for the same time.
//
// Both end by asserting zero oversell: the units reserved (or taken from
// stock) equal the orders acknowledged, the orders in the table equal them
// too, and no more than -units were handed out. The last line is
// machine-readable:
//
//	mode=store ok=N sold_out=N errors=N seconds=S per_s=R cpu_us_per_op=C oversell=0
//
// where C is this process's CPU time (setup and ledger check included)
// per acknowledged order.
//
// With -mode naive-full it runs the same naive transactions (a pool of
// 2*GOMAXPROCS connections, BEGIN IMMEDIATE, one transaction per checkout)
// but with the statements PlaceOrder runs, on surge's own schema (Open and
// Migrate): the idempotency lookup, the reservation UPDATE, the order
// number, and the order, line, reservation, transition, outbox and
// idempotency-key rows. It tells the gain of group commit for equal work;
// the benchmark reports it for information only.
//
// With -check PATH it instead opens an existing surge database (a data
// dir's surge.db, after the server stopped), prints the stock ledger of
// -sku and the orders by status, and exits non-zero if the counters
// disagree with the reservation rows or exceed the stock. The last line is
//
//	check on_hand=N reserved=N sold=N held_rows=N committed_rows=N orders=N ok=true|false
package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	_ "modernc.org/sqlite"

	"github.com/surge-commerce/surge/internal/catalog"
	"github.com/surge-commerce/surge/internal/checkout"
	"github.com/surge-commerce/surge/internal/money"
	"github.com/surge-commerce/surge/internal/order"
	"github.com/surge-commerce/surge/internal/sqlitestore"
)

const sku = "HOT-1"

// tally counts the outcomes of one run's buyers.
type tally struct {
	ok, soldOut, errs atomic.Int64
	firstErr          atomic.Value // string
}

func (t *tally) fail(err error) {
	t.errs.Add(1)
	t.firstErr.CompareAndSwap(nil, err.Error())
}

func main() {
	mode := flag.String("mode", "store", "store (sqlitestore.PlaceOrder), naive (one BEGIN IMMEDIATE transaction per checkout) or naive-full (the same with PlaceOrder's statements)")
	buyers := flag.Int("buyers", 64, "concurrent goroutines placing orders")
	duration := flag.Duration("duration", 10*time.Second, "how long to place orders")
	units := flag.Int64("units", 1_000_000, "units on hand of the one SKU")
	dir := flag.String("dir", "", "directory for the fresh database (required unless -check)")
	check := flag.String("check", "", "instead of benchmarking, check the ledger of an existing surge database file")
	checkSKU := flag.String("sku", sku, "SKU whose ledger -check reads")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the run to this file")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("reserve: ")
	ctx := context.Background()

	if *check != "" {
		if !checkDB(ctx, *check, *checkSKU) {
			os.Exit(1)
		}
		return
	}
	if *dir == "" || *buyers < 1 || *duration <= 0 || *units < 1 {
		log.Fatal("need -dir, and -buyers, -duration and -units above zero")
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	var (
		t     tally
		secs  float64
		sound bool
	)
	cpu0 := cpuSeconds()
	switch *mode {
	case "store":
		secs, sound = runStore(ctx, filepath.Join(*dir, "store.db"), *buyers, *duration, *units, &t)
	case "naive":
		secs, sound = runNaive(ctx, filepath.Join(*dir, "naive.db"), *buyers, *duration, *units, &t)
	case "naive-full":
		secs, sound = runNaiveFull(ctx, filepath.Join(*dir, "naive-full.db"), *buyers, *duration, *units, &t)
	default:
		log.Fatalf("-mode %q: want store, naive or naive-full", *mode)
	}
	cpu := cpuSeconds() - cpu0
	if e, _ := t.firstErr.Load().(string); e != "" {
		fmt.Printf("  first error: %s\n", e)
	}
	oversell := 0
	if !sound {
		oversell = 1
	}
	fmt.Printf("mode=%s ok=%d sold_out=%d errors=%d seconds=%.2f per_s=%.1f cpu_us_per_op=%.0f oversell=%d\n",
		*mode, t.ok.Load(), t.soldOut.Load(), t.errs.Load(), secs, float64(t.ok.Load())/secs,
		1e6*cpu/float64(max(t.ok.Load(), 1)), oversell)
	if !sound {
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

// drive runs place from n goroutines until d has passed and returns the
// wall time from the start until the last call returned.
func drive(n int, d time.Duration, place func(buyer, seq int)) float64 {
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for b := range n {
		wg.Go(func() {
			for seq := 0; time.Now().Before(deadline); seq++ {
				place(b, seq)
			}
		})
	}
	wg.Wait()
	return time.Since(start).Seconds()
}

func newID(prefix string) string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

var price = money.Money{Amount: 5000, Currency: "USD"}

// openShop opens and migrates a fresh surge database holding one product
// whose SKU has units on hand.
func openShop(ctx context.Context, path string, units int64) *sqlitestore.Store {
	s, err := sqlitestore.Open(ctx, path)
	if err != nil {
		log.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		log.Fatal(err)
	}
	c, err := s.CreateCategory(ctx, catalog.Category{Slug: "drops", Name: "Drops"})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := s.CreateProduct(ctx, catalog.Product{Slug: "hot", Name: "Hot", Status: catalog.StatusActive, CategoryID: c.ID,
		Variants: []catalog.Variant{{SKU: sku, Price: price, OnHand: units}}}); err != nil {
		log.Fatal(err)
	}
	return s
}

// naivePool opens path the way a typical application does: the same
// pragmas as the store's connections (internal/sqlitestore), so durability
// is alike (WAL, synchronous=NORMAL), BEGIN IMMEDIATE, 2*GOMAXPROCS
// connections.
func naivePool(path string) (*sql.DB, int) {
	v := url.Values{}
	for _, p := range []string{"busy_timeout(5000)", "foreign_keys(1)", "journal_mode(WAL)", "synchronous(NORMAL)"} {
		v.Add("_pragma", p)
	}
	v.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", path+"?"+v.Encode())
	if err != nil {
		log.Fatal(err)
	}
	conns := 2 * runtime.GOMAXPROCS(0)
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	return db, conns
}

// runStore benchmarks sqlitestore.PlaceOrder and reports the elapsed
// seconds and whether the ledger is sound afterwards.
func runStore(ctx context.Context, path string, buyers int, d time.Duration, units int64, t *tally) (float64, bool) {
	s := openShop(ctx, path, units)
	defer s.Close()
	zero := money.Money{Currency: "USD"}
	addr := order.Address{Name: "Bench Buyer", Line1: "1 Main St", City: "Springfield", PostalCode: "12345", Country: "US"}
	secs := drive(buyers, d, func(b, seq int) {
		now := time.Now().UTC()
		key := fmt.Sprintf("k-%d-%d", b, seq)
		p := checkout.Placement{Owner: newID("sess_"), Key: key, RequestHash: "h-" + key, Order: order.Order{
			ID: newID("ord_"), Email: "buyer@example.com", Status: order.StatusPendingPayment,
			Lines:    []order.Line{{SKU: sku, ProductName: "Hot", Quantity: 1, UnitPrice: price, LineTotal: price}},
			Subtotal: price, Tax: zero, Shipping: zero, Total: price, ShippingAddress: addr, PaymentMethod: "pm_bench",
			ReservedUntil: now.Add(10 * time.Minute), CreatedAt: now, UpdatedAt: now}}
		_, replayed, err := s.PlaceOrder(ctx, p)
		var so *checkout.SoldOutError
		switch {
		case err == nil && !replayed:
			t.ok.Add(1)
		case err == nil:
			t.fail(errors.New("unexpected idempotent replay"))
		case errors.As(err, &so):
			t.soldOut.Add(1)
		default:
			t.fail(err)
		}
	})

	l, err := s.Ledger(ctx, sku)
	if err != nil {
		log.Fatal(err)
	}
	var orders int64
	if err := s.Reader().QueryRowContext(ctx, `SELECT count(*) FROM orders`).Scan(&orders); err != nil {
		log.Fatal(err)
	}
	ok := t.ok.Load()
	fmt.Printf("  ledger: on_hand %d reserved %d sold %d; held reservation rows %d; orders %d; acknowledged %d\n",
		l.OnHand, l.Reserved, l.Sold, l.HeldByReservations, orders, ok)
	sound := l.Reserved == ok && l.Sold == 0 && l.HeldByReservations == ok && orders == ok && l.Reserved+l.Sold <= l.OnHand
	if !sound {
		fmt.Println("  OVERSELL OR LEDGER MISMATCH")
	}
	return secs, sound
}

// runNaive benchmarks the textbook checkout transaction and reports the
// elapsed seconds and whether stock and orders agree afterwards.
func runNaive(ctx context.Context, path string, buyers int, d time.Duration, units int64, t *tally) (float64, bool) {
	db, conns := naivePool(path)
	defer db.Close()
	for _, q := range []string{
		`CREATE TABLE stock (sku TEXT PRIMARY KEY, qty INTEGER NOT NULL CHECK (qty >= 0)) STRICT`,
		`CREATE TABLE orders (id TEXT PRIMARY KEY, sku TEXT NOT NULL, quantity INTEGER NOT NULL, email TEXT NOT NULL,
			status TEXT NOT NULL, total INTEGER NOT NULL, currency TEXT NOT NULL, shipping_address TEXT NOT NULL,
			created_at INTEGER NOT NULL) STRICT`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			log.Fatal(err)
		}
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO stock (sku, qty) VALUES (?, ?)`, sku, units); err != nil {
		log.Fatal(err)
	}
	errSoldOut := errors.New("sold out")
	addr := `{"name":"Bench Buyer","line1":"1 Main St","city":"Springfield","postal_code":"12345","country":"US"}`
	secs := drive(buyers, d, func(int, int) {
		err := func() error {
			tx, err := db.BeginTx(ctx, nil) // BEGIN IMMEDIATE (_txlock)
			if err != nil {
				return err
			}
			defer tx.Rollback()
			res, err := tx.Exec(`UPDATE stock SET qty = qty - ? WHERE sku = ? AND qty >= ?`, 1, sku, 1)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 0 {
				return errSoldOut
			}
			if _, err := tx.Exec(`INSERT INTO orders (id, sku, quantity, email, status, total, currency, shipping_address, created_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, newID("ord_"), sku, 1, "buyer@example.com", "pending_payment", 5000, "USD",
				addr, time.Now().UnixNano()); err != nil {
				return err
			}
			return tx.Commit()
		}()
		switch {
		case err == nil:
			t.ok.Add(1)
		case errors.Is(err, errSoldOut):
			t.soldOut.Add(1)
		default:
			t.fail(err)
		}
	})

	var left, orders int64
	if err := db.QueryRowContext(ctx, `SELECT qty FROM stock WHERE sku = ?`, sku).Scan(&left); err != nil {
		log.Fatal(err)
	}
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM orders`).Scan(&orders); err != nil {
		log.Fatal(err)
	}
	ok := t.ok.Load()
	fmt.Printf("  ledger: on_hand %d left %d (taken %d); orders %d; acknowledged %d; pool %d connections\n",
		units, left, units-left, orders, ok, conns)
	sound := units-left == ok && orders == ok && left >= 0
	if !sound {
		fmt.Println("  OVERSELL OR LEDGER MISMATCH")
	}
	return secs, sound
}

// runNaiveFull runs PlaceOrder's statements, one transaction per order, on
// surge's schema, and reports the elapsed seconds and whether the ledger
// is sound afterwards.
func runNaiveFull(ctx context.Context, path string, buyers int, d time.Duration, units int64, t *tally) (float64, bool) {
	s := openShop(ctx, path, units)
	defer s.Close()
	db, conns := naivePool(path)
	defer db.Close()
	errSoldOut := errors.New("sold out")
	addr := `{"name":"Bench Buyer","line1":"1 Main St","city":"Springfield","postal_code":"12345","country":"US"}`
	secs := drive(buyers, d, func(b, seq int) {
		err := func() error {
			tx, err := db.BeginTx(ctx, nil) // BEGIN IMMEDIATE (_txlock)
			if err != nil {
				return err
			}
			defer tx.Rollback()
			owner, key, id := newID("sess_"), fmt.Sprintf("k-%d-%d", b, seq), newID("ord_")
			var prev string
			switch err := tx.QueryRow(`SELECT order_id FROM idempotency_keys WHERE owner = ? AND key = ?`, owner, key).Scan(&prev); {
			case err == nil:
				return errors.New("unexpected idempotent replay")
			case !errors.Is(err, sql.ErrNoRows):
				return err
			}
			res, err := tx.Exec(`UPDATE variants SET reserved = reserved + ?1 WHERE sku = ?2 AND on_hand - reserved - sold >= ?1`, 1, sku)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 0 {
				return errSoldOut
			}
			var number int64
			if err := tx.QueryRow(`SELECT coalesce(max(number), 1000) + 1 FROM orders`).Scan(&number); err != nil {
				return err
			}
			now := time.Now().UnixNano()
			until := now + int64(10*time.Minute)
			if _, err := tx.Exec(`INSERT INTO orders (id, number, customer_id, email, status, currency, subtotal, tax, shipping, total,
				shipping_address, payment_method, card_last4, reserved_until, created_at, updated_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				id, number, nil, "buyer@example.com", "pending_payment", "USD", 5000, 0, 0, 5000, addr, "pm_bench", "", until, now, now); err != nil {
				return err
			}
			if _, err := tx.Exec(`INSERT INTO order_lines (order_id, position, sku, product_name, variant_title, quantity, unit_price, line_total)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, id, 0, sku, "Hot", "", 1, 5000, 5000); err != nil {
				return err
			}
			if _, err := tx.Exec(`INSERT INTO reservations (order_id, sku, quantity, status, expires_at) VALUES (?, ?, ?, 'held', ?)`,
				id, sku, 1, until); err != nil {
				return err
			}
			if _, err := tx.Exec(`INSERT INTO order_transitions (order_id, from_status, to_status, reason, at) VALUES (?, ?, ?, ?, ?)`,
				id, "", "pending_payment", "checkout", now); err != nil {
				return err
			}
			if _, err := tx.Exec(`INSERT INTO outbox (id, subject, data, created_at) VALUES (?, ?, ?, ?)`, newID("evt_"), "surge.order.created",
				fmt.Appendf(nil, `{"order_id":%q,"status":"pending_payment","at":%d}`, id, now), now); err != nil {
				return err
			}
			if _, err := tx.Exec(`INSERT INTO idempotency_keys (owner, key, request_hash, order_id, created_at) VALUES (?, ?, ?, ?, ?)`,
				owner, key, "h-"+key, id, now); err != nil {
				return err
			}
			return tx.Commit()
		}()
		switch {
		case err == nil:
			t.ok.Add(1)
		case errors.Is(err, errSoldOut):
			t.soldOut.Add(1)
		default:
			t.fail(err)
		}
	})

	l, err := s.Ledger(ctx, sku)
	if err != nil {
		log.Fatal(err)
	}
	var orders int64
	if err := s.Reader().QueryRowContext(ctx, `SELECT count(*) FROM orders`).Scan(&orders); err != nil {
		log.Fatal(err)
	}
	ok := t.ok.Load()
	fmt.Printf("  ledger: on_hand %d reserved %d sold %d; held reservation rows %d; orders %d; acknowledged %d; pool %d connections\n",
		l.OnHand, l.Reserved, l.Sold, l.HeldByReservations, orders, ok, conns)
	sound := l.Reserved == ok && l.HeldByReservations == ok && orders == ok && l.Reserved+l.Sold <= l.OnHand
	if !sound {
		fmt.Println("  OVERSELL OR LEDGER MISMATCH")
	}
	return secs, sound
}

// checkDB reads the ledger of sku in an existing surge database and reports
// whether it is sound.
func checkDB(ctx context.Context, path, sku string) bool {
	if _, err := os.Stat(path); err != nil {
		log.Fatal(err)
	}
	s, err := sqlitestore.Open(ctx, path)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	l, err := s.Ledger(ctx, sku)
	if err != nil {
		log.Fatal(err)
	}
	rows, err := s.Reader().QueryContext(ctx, `SELECT status, count(*) FROM orders GROUP BY status`)
	if err != nil {
		log.Fatal(err)
	}
	byStatus := map[string]int64{}
	var orders int64
	for rows.Next() {
		var st string
		var n int64
		if err := rows.Scan(&st, &n); err != nil {
			log.Fatal(err)
		}
		byStatus[st] = n
		orders += n
	}
	rows.Close()
	var parts []string
	for st, n := range byStatus {
		parts = append(parts, fmt.Sprintf("%s %d", st, n))
	}
	sort.Strings(parts)
	fmt.Printf("  orders by status: %s\n", strings.Join(parts, ", "))
	ok := l.Reserved == l.HeldByReservations && l.Sold == l.SoldByReservations && l.Reserved+l.Sold <= l.OnHand &&
		l.Reserved >= 0 && l.Sold >= 0
	fmt.Printf("check on_hand=%d reserved=%d sold=%d held_rows=%d committed_rows=%d orders=%d ok=%t\n",
		l.OnHand, l.Reserved, l.Sold, l.HeldByReservations, l.SoldByReservations, orders, ok)
	return ok
}

// cpuSeconds is the user+system CPU time this process has used.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
