package sqlitestore

import (
	"context"
	"strings"
	"testing"
)

// explain returns SQLite's query plan for q, one detail per line.
func explain(t *testing.T, s *Store, q string, args ...any) string {
	t.Helper()
	rows, err := s.writer.QueryContext(context.Background(), "EXPLAIN QUERY PLAN "+q, args...)
	if err != nil {
		t.Fatalf("explain %s: %v", q, err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		b.WriteString(detail + "\n")
	}
	return b.String()
}

// An order's held reservations must be found through the primary key
// (order_id, sku). Through reservations_held (status, expires_at) the same
// statement walks every order waiting for payment: with a few thousand of
// them, committing one order's stock cost more than the rest of the
// checkout.
func TestOrderReservationsFoundByPrimaryKey(t *testing.T) {
	s := newTestStore(t)
	plan := explain(t, s, sqlSettleHeld, "committed", "ord_1")
	if !strings.Contains(plan, "sqlite_autoindex_reservations_1 (order_id=?)") || strings.Contains(plan, "reservations_held") {
		t.Errorf("plan of %q:\n%s\nwant a search of the primary key by order_id", sqlSettleHeld, plan)
	}
}
