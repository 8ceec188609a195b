// Command ledger checks the stock ledger of one SKU on the PostgreSQL
// primary after the checkout run of the scale-out benchmark
// (bench/scaleout/run). It reads the primary, the record, and never a
// replica: the admin API may answer from a streaming replica that has not
// replayed the last orders yet, and a stale count there is not an
// oversell.
//
// It waits up to -settle for the order workers to pay every order
// (reserved back to 0), then checks, in one REPEATABLE READ snapshot:
//
//   - the variant's reserved and sold equal its held and committed
//     reservation rows;
//   - reserved + sold stays within on_hand;
//   - the units of orders still holding stock (pending payment, paid,
//     fulfilled) equal reserved + sold;
//   - there are at least -acknowledged such orders: every checkout answered
//     201 is in the database and holds its unit.
//
// The last line is machine-readable:
//
//	check on_hand=N reserved=N sold=N held_rows=N committed_rows=N live_units=N live_orders=N acknowledged=N ok=true|false settled=true|false
//
// It exits 1 if the ledger is wrong.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// ledger is one consistent reading of the SKU's stock and orders.
type ledger struct {
	onHand, reserved, sold  int64
	heldRows, committedRows int64
	liveUnits, liveOrders   int64
	ordersByStatus          map[string]int64
}

func main() {
	pg := flag.String("pg", "", "PostgreSQL primary URL")
	sku := flag.String("sku", "HOT-1", "SKU to check")
	acknowledged := flag.Int64("acknowledged", 0, "checkouts the buyers were answered 201 for")
	settle := flag.Duration("settle", 60*time.Second, "how long to wait for every order to be paid")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("ledger: ")
	if *pg == "" {
		log.Fatal("-pg is required")
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, *pg)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close(ctx)

	start := time.Now()
	var l ledger
	for {
		if l, err = read(ctx, conn, *sku); err != nil {
			log.Fatal(err)
		}
		if l.reserved == 0 || time.Since(start) >= *settle {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	settled := l.reserved == 0 && l.heldRows == 0
	if settled {
		fmt.Printf("  primary: every order paid and its stock committed %.1f s after the load stopped\n", time.Since(start).Seconds())
	} else {
		fmt.Printf("  primary: after %.0f s, %d units still reserved by unpaid orders\n", settle.Seconds(), l.reserved)
	}
	var parts []string
	for st, n := range l.ordersByStatus {
		parts = append(parts, fmt.Sprintf("%s %d", st, n))
	}
	sort.Strings(parts)
	fmt.Printf("  primary: orders of %s by status: %s\n", *sku, strings.Join(parts, ", "))

	ok := l.reserved == l.heldRows && l.sold == l.committedRows && l.reserved >= 0 && l.sold >= 0 &&
		l.reserved+l.sold <= l.onHand && l.liveUnits == l.reserved+l.sold && l.liveOrders >= *acknowledged
	if ok {
		fmt.Printf("  primary: zero oversell: reserved %d + sold %d = units of live orders, within on_hand %d; %d live orders for %d acknowledged checkouts\n",
			l.reserved, l.sold, l.onHand, l.liveOrders, *acknowledged)
	} else {
		fmt.Printf("  primary: LEDGER WRONG: see the counts below\n")
	}
	fmt.Printf("check on_hand=%d reserved=%d sold=%d held_rows=%d committed_rows=%d live_units=%d live_orders=%d acknowledged=%d ok=%t settled=%t\n",
		l.onHand, l.reserved, l.sold, l.heldRows, l.committedRows, l.liveUnits, l.liveOrders, *acknowledged, ok, settled)
	if !ok {
		os.Exit(1)
	}
}

// read takes one snapshot of the ledger: the workers keep moving units
// from reserved to sold while it reads, and counts from two moments would
// not add up.
func read(ctx context.Context, conn *pgx.Conn, sku string) (ledger, error) {
	l := ledger{ordersByStatus: map[string]int64{}}
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return l, err
	}
	defer tx.Rollback(ctx)
	err = tx.QueryRow(ctx, `SELECT v.on_hand, v.reserved, v.sold,
		coalesce((SELECT sum(quantity) FROM reservations WHERE sku = v.sku AND status = 'held'), 0)::bigint,
		coalesce((SELECT sum(quantity) FROM reservations WHERE sku = v.sku AND status = 'committed'), 0)::bigint
		FROM variants v WHERE v.sku = $1`, sku).Scan(&l.onHand, &l.reserved, &l.sold, &l.heldRows, &l.committedRows)
	if err != nil {
		return l, fmt.Errorf("variant %s: %w", sku, err)
	}
	rows, err := tx.Query(ctx, `SELECT o.status, count(DISTINCT o.id), coalesce(sum(ol.quantity), 0)::bigint
		FROM orders o JOIN order_lines ol ON ol.order_id = o.id AND ol.sku = $1 GROUP BY o.status`, sku)
	if err != nil {
		return l, fmt.Errorf("orders of %s: %w", sku, err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			status        string
			orders, units int64
		)
		if err := rows.Scan(&status, &orders, &units); err != nil {
			return l, err
		}
		l.ordersByStatus[status] = orders
		// These statuses hold stock; failed, cancelled and expired orders
		// released theirs.
		if status == "pending_payment" || status == "paid" || status == "fulfilled" {
			l.liveUnits += units
			l.liveOrders += orders
		}
	}
	return l, rows.Err()
}
