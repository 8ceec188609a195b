package storefront_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/surge-commerce/surge/internal/catalog"
	"github.com/surge-commerce/surge/internal/drop"
	"github.com/surge-commerce/surge/internal/money"
	"github.com/surge-commerce/surge/internal/shop"
)

// jarClient calls a handler in process, keeping cookies like a browser.
type jarClient struct {
	h       http.Handler
	cookies map[string]string
	addr    string // the client's address, as the server sees it
}

func (c *jarClient) do(method, path, body string, hdr ...string) (int, string) {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	for k, v := range c.cookies {
		r.AddCookie(&http.Cookie{Name: k, Value: v})
	}
	if c.addr != "" {
		r.RemoteAddr = c.addr
	}
	w := httptest.NewRecorder()
	c.h.ServeHTTP(w, r)
	for _, ck := range w.Result().Cookies() {
		if ck.MaxAge < 0 {
			delete(c.cookies, ck.Name)
		} else {
			c.cookies[ck.Name] = ck.Value
		}
	}
	return w.Code, w.Body.String()
}

type queueStatus struct {
	State       string `json:"state"`
	AccessToken string `json:"access_token"`
}

// TestDropStampede: 20,000 buyers for 500 units, 2 per buyer. Exactly 500
// units sell, nobody gets more than 2, everyone ends with a final answer,
// and nothing answers 5xx.
func TestDropStampede(t *testing.T) {
	if testing.Short() {
		t.Skip("20,000 simulated buyers; skipped with -short")
	}
	const buyers, units, limit = 20000, 500, 2
	sh := openShop(t, 0, apiTestToken)
	ctx, stop := context.WithCancel(context.Background())
	runDone := make(chan struct{})
	go func() { _ = sh.Run(ctx, shop.RoleAll); close(runDone) }()
	t.Cleanup(func() { stop(); <-runDone })

	c, err := sh.Store.CreateCategory(ctx, catalog.Category{Slug: "drops", Name: "Drops"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sh.Store.CreateProduct(ctx, catalog.Product{Slug: "court-classic", Name: "Court Classic", Status: catalog.StatusActive, CategoryID: c.ID,
		Variants: []catalog.Variant{{SKU: "CC-42", Price: money.Money{Amount: 18000, Currency: "USD"}, OnHand: 1}}}); err != nil {
		t.Fatal(err)
	}
	admin := &jarClient{h: sh.Handler, cookies: map[string]string{}}
	start := time.Now().Add(1500 * time.Millisecond).UTC()
	body := fmt.Sprintf(`{"name":"Court Classic","slug":"court-classic","starts_at":%q,"per_customer_limit":%d,
		"items":[{"sku":"CC-42","allocated":%d}],"room":{"rate_per_minute":60000,"max_active":400,"prequeue_opens":"1m"}}`,
		start.Format(time.RFC3339Nano), limit, units)
	st, out := admin.do("POST", "/api/v1/admin/drops", body, "Authorization", "Bearer "+apiTestToken)
	if st != 201 {
		t.Fatalf("create drop: %d %s", st, out)
	}
	var d drop.Drop
	_ = json.Unmarshal([]byte(out), &d)

	var (
		bought, soldOut, closed, fiveXX atomic.Int64
		admitted                        atomic.Int64
		unitsAcked                      atomic.Int64
		overLimit                       atomic.Int64
		mu                              sync.Mutex
		perBuyer                        = map[int]int64{}
		wg                              sync.WaitGroup
		sem                             = make(chan struct{}, 256)
	)
	deadline := time.Now().Add(3 * time.Minute)

	for i := range buyers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			// Each buyer comes from its own (loopback) address, as real
			// buyers come from their own: joins are limited per address.
			b := &jarClient{h: sh.Handler, cookies: map[string]string{}, addr: fmt.Sprintf("127.%d.%d.%d:40000", 1+i>>16, i>>8&255, i&255)}
			check := func(st int, what, body string) {
				if st >= 500 {
					fiveXX.Add(1)
					t.Errorf("buyer %d %s: %d %s", i, what, st, body)
				}
			}
			st, out := b.do("POST", "/api/v1/drops/"+d.ID+"/queue/join", "")
			check(st, "join", out)
			for st != 200 && time.Now().Before(deadline) {
				if st != 429 && st != 409 {
					t.Errorf("buyer %d join: %d %s", i, st, out)
					return
				}
				time.Sleep(100 * time.Millisecond) // the line not open yet, or Retry-After
				st, out = b.do("POST", "/api/v1/drops/"+d.ID+"/queue/join", "")
				check(st, "join", out)
			}
			for time.Now().Before(deadline) {
				var q queueStatus
				_ = json.Unmarshal([]byte(out), &q)
				switch q.State {
				case "sold_out":
					soldOut.Add(1)
					return
				case "closed", "expired":
					closed.Add(1)
					return
				case "admitted":
					admitted.Add(1)
					want := int64(1 + rand.IntN(limit))
					if i%10 == 0 {
						// Greedy buyers ask for more than the limit first.
						st, body := b.do("POST", "/api/v1/cart/items", fmt.Sprintf(`{"sku":"CC-42","quantity":%d}`, limit+1))
						check(st, "greedy add", body)
						if st != 422 && st != 409 {
							t.Errorf("buyer %d: over-limit add answered %d %s", i, st, body)
						}
					}
					st, body := b.do("POST", "/api/v1/cart/items", fmt.Sprintf(`{"sku":"CC-42","quantity":%d}`, want))
					check(st, "add", body)
					if st == 409 {
						soldOut.Add(1)
						return
					}
					if i%10 == 1 {
						// An add sent again (a retry after a lost answer)
						// may not take the cart past the limit.
						st, body := b.do("POST", "/api/v1/cart/items", fmt.Sprintf(`{"sku":"CC-42","quantity":%d}`, limit-want+1))
						check(st, "second add", body)
						if st != 422 && st != 409 {
							t.Errorf("buyer %d: an add past the limit in the cart answered %d %s", i, st, body)
						}
					}
					st, body = b.do("POST", "/api/v1/checkout", checkoutBody, "Idempotency-Key", fmt.Sprint("k", i))
					check(st, "checkout", body)
					switch st {
					case 201:
						bought.Add(1)
						unitsAcked.Add(want)
						mu.Lock()
						perBuyer[i] += want
						mu.Unlock()
						// Once is the limit for greedy buyers too: a second
						// order over the limit is refused.
						if want == limit {
							b.do("POST", "/api/v1/cart/items", `{"sku":"CC-42","quantity":1}`)
							st2, body2 := b.do("POST", "/api/v1/checkout", checkoutBody, "Idempotency-Key", fmt.Sprint("again", i))
							check(st2, "second checkout", body2)
							if st2 == 201 {
								overLimit.Add(1)
							}
						}
					case 409:
						soldOut.Add(1)
					default:
						t.Errorf("buyer %d checkout: %d %s", i, st, body)
					}
					return
				}
				time.Sleep(time.Duration(50+rand.IntN(100)) * time.Millisecond) // a client's poll interval
				st, out = b.do("GET", "/api/v1/drops/"+d.ID+"/queue", "")
				check(st, "status", out)
			}
			t.Errorf("buyer %d never got a final answer", i)
		}()
	}
	wg.Wait()

	// Let the workers take payment and commit stock.
	var l struct{ Reserved, Sold int64 }
	for end := time.Now().Add(60 * time.Second); ; {
		sl, err := sh.Store.Ledger(ctx, "CC-42")
		if err != nil {
			t.Fatal(err)
		}
		l.Reserved, l.Sold = sl.Reserved, sl.Sold
		if sl.Reserved == 0 || time.Now().After(end) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("bought %d orders (%d units), sold out %d, closed %d; ledger sold %d reserved %d", bought.Load(), unitsAcked.Load(), soldOut.Load(), closed.Load(), l.Sold, l.Reserved)
	if l.Sold != units || l.Reserved != 0 || unitsAcked.Load() != units {
		t.Errorf("sold %d (reserved %d, acknowledged %d), want exactly %d", l.Sold, l.Reserved, unitsAcked.Load(), units)
	}
	for b, n := range perBuyer {
		if n > limit {
			t.Errorf("buyer %d got %d units, limit %d", b, n, limit)
		}
	}
	if overLimit.Load() != 0 {
		t.Errorf("%d buyers bought again past the limit", overLimit.Load())
	}
	if got := bought.Load() + soldOut.Load() + closed.Load(); got != buyers {
		t.Errorf("%d of %d buyers got a final answer", got, buyers)
	}
	if fiveXX.Load() != 0 {
		t.Errorf("%d 5xx answers", fiveXX.Load())
	}
	// Only the admitted cost a session write: those still in line, or
	// told sold out there, have none stored.
	var sessions int64
	if err := sh.Store.Writer().QueryRowContext(ctx, `SELECT count(*) FROM sessions`).Scan(&sessions); err != nil {
		t.Fatal(err)
	}
	if sessions != admitted.Load() {
		t.Errorf("%d sessions stored for %d admitted buyers (of %d); want one each for the admitted only", sessions, admitted.Load(), buyers)
	}
}
