package drop_test

import (
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/surge-commerce/surge/internal/admission"
	"github.com/surge-commerce/surge/internal/catalog"
	"github.com/surge-commerce/surge/internal/drop"
	"github.com/surge-commerce/surge/internal/money"
	"github.com/surge-commerce/surge/internal/order"
	"github.com/surge-commerce/surge/internal/sqlitestore"
	"github.com/surge-commerce/surge/internal/waitroom"
)

// clock is a settable clock shared by the room and the gate.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

// gateEnv is a drop of DROP-1 (limit 2) in a real SQLite store, its line
// open in a waiting room on a fake clock, and a gate on both.
type gateEnv struct {
	gate  *drop.Gate
	room  *waitroom.Room
	clock *clock
	drop  drop.Drop
	store *sqlitestore.Store
}

func newGateEnv(t *testing.T) *gateEnv {
	t.Helper()
	ctx := t.Context()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "surge.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := st.CreateCategory(ctx, catalog.Category{Slug: "shoes", Name: "Shoes"})
	if err != nil {
		t.Fatal(err)
	}
	usd := money.Money{Amount: 100, Currency: "USD"}
	if _, err := st.CreateProduct(ctx, catalog.Product{Slug: "pair", Name: "Pair", Status: catalog.StatusActive, CategoryID: c.ID,
		Variants: []catalog.Variant{{SKU: "DROP-1", Price: usd, OnHand: 10, Options: []catalog.Option{{Name: "v", Value: "a"}}},
			{SKU: "PLAIN-1", Price: usd, OnHand: 10, Options: []catalog.Option{{Name: "v", Value: "b"}}}}}); err != nil {
		t.Fatal(err)
	}
	start := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	end := start.Add(time.Hour)
	d := drop.Drop{Slug: "spring", Name: "Spring", StartsAt: start, EndsAt: &end, PerCustomerLimit: 2,
		Items: []drop.Item{{SKU: "DROP-1", Allocated: 5}}}
	d.Defaults()
	if d, err = st.CreateDrop(ctx, d); err != nil {
		t.Fatal(err)
	}
	clk := &clock{now: start.Add(-time.Minute)}
	keys, err := waitroom.NewKeyring(waitroom.Key{ID: "k1", Secret: []byte(strings.Repeat("k", 32))})
	if err != nil {
		t.Fatal(err)
	}
	room, err := waitroom.New(waitroom.Config{Keys: keys, Ledger: waitroom.NewMemLedger(), Stock: st.Available,
		JoinRate: admission.Rate{PerSecond: -1}, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	if err := room.Open(ctx, d.RoomSpec()); err != nil {
		t.Fatal(err)
	}
	return &gateEnv{gate: &drop.Gate{Store: st, Room: room, Now: clk.Now}, room: room, clock: clk, drop: d, store: st}
}

// admit lets visitor (on session) through the line after the start and
// returns their access token.
func (e *gateEnv) admit(t *testing.T, visitor, session string) string {
	t.Helper()
	ctx := t.Context()
	e.clock.Set(e.drop.StartsAt.Add(time.Second))
	ticket, st, err := e.room.Join(ctx, waitroom.JoinRequest{Drop: e.drop.ID, Visitor: visitor, Session: session, ClientAddr: "192.0.2.1"})
	for range 100 {
		if err != nil {
			t.Fatal(err)
		}
		if st.State == waitroom.StateAdmitted {
			return st.AccessToken
		}
		e.clock.Set(e.clock.Now().Add(time.Second))
		st, err = e.room.Status(ctx, waitroom.StatusRequest{Drop: e.drop.ID, Ticket: ticket, Visitor: visitor, Session: session})
	}
	t.Fatalf("%s never admitted: %+v", visitor, st)
	return ""
}

// TestGate: the purchase rules of a drop, one case each: when it sells,
// to whom, and how many.
func TestGate(t *testing.T) {
	e := newGateEnv(t)
	access := e.admit(t, "c:1", "s1")
	live := e.clock.Now()
	token := func(string) string { return access }
	line := func(sku string, qty int64) []order.Line { return []order.Line{{SKU: sku, Quantity: qty}} }
	for _, tc := range []struct {
		name    string
		at      time.Time
		session string
		access  func(string) string
		lines   []order.Line
		want    error // nil: a purchase (or none, for no drop SKU)
	}{
		{"no drop SKU", live, "s1", nil, line("PLAIN-1", 5), nil},
		{"before the start", e.drop.StartsAt.Add(-time.Second), "s1", token, line("DROP-1", 1), drop.ErrNoAccess},
		{"after the end", e.drop.EndsAt.Add(time.Second), "s1", token, line("DROP-1", 1), drop.ErrNoAccess},
		{"no token", live, "s1", nil, line("DROP-1", 1), drop.ErrNoAccess},
		{"another session's token", live, "s2", token, line("DROP-1", 1), drop.ErrNoAccess},
		{"forged token", live, "s1", func(string) string { return access[:len(access)-2] + "xx" }, line("DROP-1", 1), drop.ErrNoAccess},
		{"within the limit", live, "s1", token, append(line("DROP-1", 2), line("PLAIN-1", 9)...), nil},
		{"over the limit", live, "s1", token, line("DROP-1", 3), drop.ErrOverLimit},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.clock.Set(tc.at)
			p, err := e.gate.Gate(t.Context(), tc.session, tc.access, tc.lines)
			switch {
			case tc.want != nil:
				if !errors.Is(err, tc.want) {
					t.Fatalf("Gate: %v; want %v", err, tc.want)
				}
			case err != nil:
				t.Fatalf("Gate: %v", err)
			case tc.lines[0].SKU == "PLAIN-1":
				if p != nil {
					t.Fatalf("a purchase %+v for no drop SKU", p)
				}
			case p == nil || p.DropID != e.drop.ID || p.Buyer != "c:1" || p.Quantity != 2 || p.Limit != 2:
				t.Fatalf("purchase %+v; want 2 of drop %s for c:1, limit 2", p, e.drop.ID)
			}
		})
	}
}

// TestGateCartChanges: a cart line of a drop SKU is raised only with
// access (raising is adding), and lowered without.
func TestGateCartChanges(t *testing.T) {
	e := newGateEnv(t)
	access := e.admit(t, "c:1", "s1")
	ctx := t.Context()
	if err := e.gate.MaySet(ctx, "s1", nil, "DROP-1", 2, 1); err != nil {
		t.Errorf("lowering a line without access: %v", err)
	}
	if err := e.gate.MaySet(ctx, "s1", nil, "DROP-1", 1, 2); !errors.Is(err, drop.ErrNoAccess) {
		t.Errorf("raising a line without access: %v; want ErrNoAccess", err)
	}
	token := func(string) string { return access }
	if err := e.gate.MaySet(ctx, "s1", token, "DROP-1", 1, 3); err != nil {
		t.Errorf("raising a line by 2 with access: %v", err)
	}
	if err := e.gate.MayAdd(ctx, "s1", token, "DROP-1", 3); !errors.Is(err, drop.ErrOverLimit) {
		t.Errorf("adding 3 at once: %v; want ErrOverLimit", err)
	}
}

// TestGateNotOpenHereIsUnavailable: a drop the store has open but this
// replica's room has not opened yet is a moment's wait (Unavailable),
// not a refusal nor a missing drop.
func TestGateNotOpenHereIsUnavailable(t *testing.T) {
	e := newGateEnv(t)
	access := e.admit(t, "c:1", "s1")
	if err := e.room.Remove(t.Context(), e.drop.ID); err != nil {
		t.Fatal(err)
	}
	_, err := e.gate.Gate(t.Context(), "s1", func(string) string { return access }, []order.Line{{SKU: "DROP-1", Quantity: 1}})
	var u interface{ Unavailable() bool }
	if !errors.As(err, &u) || !u.Unavailable() || errors.Is(err, drop.ErrNoAccess) || errors.Is(err, waitroom.ErrUnknownDrop) {
		t.Fatalf("Gate on a drop not open here: %v; want unavailable, hiding the unknown drop", err)
	}
}
