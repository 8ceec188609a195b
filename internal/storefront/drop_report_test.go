package storefront_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/surge-commerce/surge/internal/catalog"
	"github.com/surge-commerce/surge/internal/drop"
	"github.com/surge-commerce/surge/internal/dropreport"
	"github.com/surge-commerce/surge/internal/money"
	"github.com/surge-commerce/surge/internal/shop"
)

// dropClock is a clock the test moves by hand.
type dropClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *dropClock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *dropClock) Set(t time.Time)     { c.mu.Lock(); c.t = t; c.mu.Unlock() }
func (c *dropClock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// scriptedShop opens a shop whose waiting room, drop rules and checkout
// run on clock, with a product in two sizes.
func scriptedShop(t testing.TB, clock *dropClock) *shop.Shop {
	t.Helper()
	ctx := context.Background()
	cfg := shop.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.AdminToken = apiTestToken
	cfg.Admission = false
	cfg.DropClock = clock.Now
	sh, err := shop.Open(ctx, cfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sh.Close() })
	c, err := sh.Store.CreateCategory(ctx, catalog.Category{Slug: "drops", Name: "Drops"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = sh.Store.CreateProduct(ctx, catalog.Product{Slug: "runner-one", Name: "Runner One", Status: catalog.StatusActive, CategoryID: c.ID,
		Images: []catalog.Image{{URL: "/images/products/runner-one/1.svg", Alt: "Runner One"}},
		Variants: []catalog.Variant{
			{SKU: "RUN-42", Price: money.Money{Amount: 16000, Currency: "USD"}, OnHand: 1, Options: []catalog.Option{{Name: "size", Value: "42"}}},
			{SKU: "RUN-43", Price: money.Money{Amount: 16000, Currency: "USD"}, OnHand: 1, Options: []catalog.Option{{Name: "size", Value: "43"}}, Position: 1},
		}})
	if err != nil {
		t.Fatal(err)
	}
	return sh
}

// TestScriptedDropReport runs a drop whose every figure is known and
// checks the report says exactly that: 8 visitors join before the start
// and 4 after, 20 bots join from one address (5 more are refused by its
// rate limit) and never come back, 3 forged tickets are refused, 10
// admitted buyers add the drop to their cart at once (2 of them first
// asking for more than the limit), then check out at once for 6 units,
// 2 each: 3 buy, 7 are told sold out at checkout, 3 late joiners are told
// sold out by the line; 2 admitted visitors and the 20 bots never come to
// the cart and become no-shows. Concurrent buyers, run with -race.
func TestScriptedDropReport(t *testing.T) {
	start := time.Now().UTC().Truncate(time.Second).Add(time.Hour)
	clock := &dropClock{t: start.Add(-5 * time.Minute)}
	sh := scriptedShop(t, clock)
	admin := &jarClient{h: sh.Handler, cookies: map[string]string{}}
	body := fmt.Sprintf(`{"name":"Runner One","slug":"runner-one","starts_at":%q,"per_customer_limit":2,
		"items":[{"sku":"RUN-42","allocated":6}],"room":{"rate_per_minute":6000,"max_active":1000,"prequeue_opens":"15m","no_show_window":"1m","access_ttl":"5m"}}`,
		start.Format(time.RFC3339))
	st, out := admin.do("POST", "/api/v1/admin/drops", body, "Authorization", "Bearer "+apiTestToken)
	if st != 201 {
		t.Fatalf("create drop: %d %s", st, out)
	}
	var d drop.Drop
	must(t, json.Unmarshal([]byte(out), &d))

	visitor := func(i int) *jarClient {
		return &jarClient{h: sh.Handler, cookies: map[string]string{}, addr: fmt.Sprintf("127.0.%d.%d:40000", i>>8, i&255)}
	}
	join := func(c *jarClient) queueStatus {
		st, out := c.do("POST", "/api/v1/drops/"+d.ID+"/queue/join", "")
		if st != 200 {
			t.Errorf("join: %d %s", st, out)
		}
		var q queueStatus
		_ = json.Unmarshal([]byte(out), &q)
		return q
	}
	// all runs f for each of cs at once.
	all := func(cs []*jarClient, f func(i int, c *jarClient)) {
		var wg sync.WaitGroup
		for i, c := range cs {
			wg.Go(func() { f(i, c) })
		}
		wg.Wait()
	}

	// Before the start: 8 visitors join the pre-queue.
	var people []*jarClient
	for i := range 12 {
		people = append(people, visitor(i+1))
	}
	all(people[:8], func(i int, c *jarClient) {
		if q := join(c); q.State != "pre_queue" {
			t.Errorf("early visitor %d: %+v", i, q)
		}
	})
	// 3 forged tickets.
	for i := range 3 {
		c := visitor(100 + i)
		if st, out := c.do("GET", "/api/v1/drops/"+d.ID+"/queue", "", "Surge-Ticket", "forged."+fmt.Sprint(i)); st != 401 {
			t.Errorf("forged ticket: %d %s", st, out)
		}
	}

	// The start. 4 visitors join the line, and a bot at one address
	// tries 25 times: its address's burst of 20 gets in, 5 are refused.
	clock.Set(start.Add(time.Second))
	all(people[8:], func(i int, c *jarClient) { join(c) })
	bots := 0
	for range 25 {
		bot := &jarClient{h: sh.Handler, cookies: map[string]string{}, addr: "198.51.100.9:1234"}
		if st, _ := bot.do("POST", "/api/v1/drops/"+d.ID+"/queue/join", ""); st == 200 {
			bots++
		} else if st != 429 {
			t.Errorf("bot join: %d", st)
		}
	}
	if bots != 20 {
		t.Fatalf("%d bot joins got in, want the address's burst of 20", bots)
	}

	// Everyone real learns their turn has come (a burst of 500 admits all).
	clock.Add(10 * time.Second)
	all(people, func(i int, c *jarClient) {
		st, out := c.do("GET", "/api/v1/drops/"+d.ID+"/queue", "")
		var q queueStatus
		_ = json.Unmarshal([]byte(out), &q)
		if st != 200 || q.State != "admitted" {
			t.Errorf("visitor %d status: %d %s", i, st, out)
		}
	})
	buyers := people[:10] // people[10:] never come to the cart: no-shows

	// The adds, at once; the first two buyers first ask for 3.
	all(buyers, func(i int, c *jarClient) {
		if i < 2 {
			if st, out := c.do("POST", "/api/v1/cart/items", `{"sku":"RUN-42","quantity":3}`); st != 422 {
				t.Errorf("buyer %d over the limit: %d %s", i, st, out)
			}
		}
		if st, out := c.do("POST", "/api/v1/cart/items", `{"sku":"RUN-42","quantity":2}`); st != 201 {
			t.Errorf("buyer %d add: %d %s", i, st, out)
		}
	})
	// The checkouts, at once: 6 units, 2 each.
	var mu sync.Mutex
	placed, soldOut := 0, 0
	all(buyers, func(i int, c *jarClient) {
		st, out := c.do("POST", "/api/v1/checkout", checkoutBody, "Idempotency-Key", fmt.Sprint("k", i))
		mu.Lock()
		defer mu.Unlock()
		switch st {
		case 201:
			placed++
		case 409:
			soldOut++
		default:
			t.Errorf("buyer %d checkout: %d %s", i, st, out)
		}
	})
	if placed != 3 || soldOut != 7 {
		t.Fatalf("%d orders placed and %d told sold out, want 3 and 7", placed, soldOut)
	}
	// Three latecomers find it sold out (a second on, the room reads the
	// stock afresh).
	clock.Add(time.Second)
	for i := range 3 {
		c := visitor(200 + i)
		st, out := c.do("POST", "/api/v1/drops/"+d.ID+"/queue/join", "")
		var q queueStatus
		_ = json.Unmarshal([]byte(out), &q)
		if st != 200 || q.State != "sold_out" {
			t.Errorf("latecomer %d: %d %s", i, st, out)
		}
	}
	// Past the no-show window: those admitted who never came are released.
	clock.Add(2 * time.Minute)

	st, out = admin.do("GET", "/api/v1/admin/drops/"+d.Slug+"/report", "", "Authorization", "Bearer "+apiTestToken)
	if st != 200 {
		t.Fatalf("report: %d %s", st, out)
	}
	var rep dropreport.Report
	must(t, json.Unmarshal([]byte(out), &rep))
	f := rep.Funnel
	// No one subscribed: the job ledger counts no reminder sent.
	if f.Notified == nil || *f.Notified != 0 {
		t.Errorf("notified %v, want 0 reminders sent", f.Notified)
	}
	f.Notified = nil
	want := dropreport.Funnel{JoinedBeforeStart: 8, JoinedAfterStart: 24, Admitted: 32, NoShows: 22, Added: 10, Bought: 3, ToldSoldOut: 3}
	if f != want {
		t.Errorf("funnel\n got %+v\nwant %+v", f, want)
	}
	if rep.Orders != 3 || rep.UnitsSold != 6 {
		t.Errorf("orders %d units %d, want 3 and 6", rep.Orders, rep.UnitsSold)
	}
	if rep.SoldOutAfter == nil || rep.SoldOutAfter.Duration() != 11*time.Second {
		t.Errorf("sold out after %v, want 11s (the checkouts ran at the start + 11s)", rep.SoldOutAfter)
	}
	if rep.OrdersPerMinute != 3 || rep.PeakOrdersPerMinute != 3 {
		t.Errorf("orders per minute %v, peak %d; want 3 and 3", rep.OrdersPerMinute, rep.PeakOrdersPerMinute)
	}
	// 32 learnt their turn: the 8 early ones when they polled (admitted
	// when the line was first asked after the start, at 1s), the 24 who
	// joined after the start in their join's answer (at once: 0s).
	if tl := rep.TimeInLine; tl.Samples != 32 || tl.P50 == nil || tl.P50.Duration() != 0 || tl.P99.Duration() != time.Second {
		t.Errorf("time in line %+v (p50 %v, p99 %v), want 32 samples, p50 0s, p99 1s", tl, tl.P50, tl.P99)
	}
	refused := map[string]int64{}
	for _, r := range rep.Refused {
		refused[r.Reason] = r.Requests
	}
	if refused["rate_limit"] != 5 || refused["bad_token"] != 3 || refused["proof_of_work"] != 0 {
		t.Errorf("refused %v, want 5 rate-limited and 3 bad tokens", refused)
	}
	if rep.LimitHits != 2 || rep.LimitRequests != 2 {
		t.Errorf("limit hits %d (%d requests), want 2 buyers", rep.LimitHits, rep.LimitRequests)
	}
	if rep.LostEvents != 0 {
		t.Errorf("%d events lost", rep.LostEvents)
	}
}
