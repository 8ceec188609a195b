package shop_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/surge-commerce/surge/internal/demoshop"
	"github.com/surge-commerce/surge/internal/enginetest"
	"github.com/surge-commerce/surge/internal/shop"
	"github.com/surge-commerce/surge/internal/telemetry"
)

// logTally keeps every record a handler sees, and passes warnings and
// errors on to the test's output.
type logTally struct {
	next slog.Handler
	mu   *sync.Mutex
	recs *[]slog.Record
}

func newLogTally(t *testing.T) *logTally {
	return &logTally{next: slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}),
		mu: &sync.Mutex{}, recs: &[]slog.Record{}}
}

func (h *logTally) Enabled(context.Context, slog.Level) bool { return true }

func (h *logTally) Handle(ctx context.Context, r slog.Record) error {
	h.mu.Lock()
	*h.recs = append(*h.recs, r.Clone())
	h.mu.Unlock()
	if h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}

func (h *logTally) WithAttrs(as []slog.Attr) slog.Handler {
	return &logTally{next: h.next.WithAttrs(as), mu: h.mu, recs: h.recs}
}

func (h *logTally) WithGroup(name string) slog.Handler {
	return &logTally{next: h.next.WithGroup(name), mu: h.mu, recs: h.recs}
}

// since returns the records from the nth on, and how many there are in all.
func (h *logTally) since(n int) ([]slog.Record, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]slog.Record(nil), (*h.recs)[n:]...), len(*h.recs)
}

// TestRedisOutageLoggedOncePerStateChange: while Redis is down every
// request that needs it answers 503, but the log says so once when the
// outage begins and once, with a count, when it ends: not one error line
// per request.
func TestRedisOutageLoggedOncePerStateChange(t *testing.T) {
	redisURL, prefix := enginetest.Redis(t)
	proxy := enginetest.NewProxy(t, redisURL)
	tally := newLogTally(t)
	cfg := shop.Defaults()
	cfg.DataDir, cfg.RedisURL, cfg.RedisPrefix, cfg.Admission, cfg.AccessLog = t.TempDir(), proxy.URL, prefix, false, false
	sh, err := shop.Open(t.Context(), cfg, slog.New(tally), telemetry.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sh.Close() })
	cats, prods := demoshop.Generate(demoshop.Options{Products: 5, Seed: 1})
	if err := sh.Store.ImportCatalog(t.Context(), cats, prods); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sh.Handler)
	t.Cleanup(srv.Close)
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	add := `{"sku":"` + prods[0].Variants[0].SKU + `","quantity":1}`
	if code, body := call(t, c, "POST", srv.URL+"/api/v1/cart/items", add); code != 201 {
		t.Fatalf("cart add with Redis up: %d %s", code, body)
	}

	_, mark := tally.since(0)
	proxy.Cut()
	const requests = 100
	for i := range requests {
		if code, body := call(t, c, "POST", srv.URL+"/api/v1/cart/items", add); code != 503 {
			t.Fatalf("cart add %d with Redis down: %d %s, want 503", i, code, body)
		}
	}
	proxy.Heal()
	// Shoppers keep coming; the outage ends once Redis has answered for
	// a moment (telemetry.DefaultOutageQuiet).
	count := func() (errs, recovered int) {
		recs, _ := tally.since(mark)
		for _, r := range recs {
			if r.Level >= slog.LevelError {
				errs++
			}
			r.Attrs(func(a slog.Attr) bool {
				if a.Key == "failures" {
					recovered++
					if n := a.Value.Int64(); n < requests {
						t.Errorf("%q counts %d failures; %d requests failed", r.Message, n, requests)
					}
				}
				return true
			})
		}
		return errs, recovered
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for {
		// Reading the cart needs the session in Redis too.
		code, body := call(t, c, "GET", srv.URL+"/api/v1/cart", "")
		if _, recovered := count(); recovered > 0 && code == 200 {
			break
		}
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("10s after Redis came back: cart %d %s, and no line said the outage ended", code, body)
		}
	}
	errs, recovered := count()
	if errs != 1 {
		t.Errorf("%d error lines for one Redis outage of %d failed requests, want 1 (when it began)", errs, requests)
	}
	if recovered != 1 {
		t.Errorf("%d lines reported the end of the outage with its count of failures, want 1", recovered)
	}
}
