package cdnpurge

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// recorder is a CDN instance that records the purges it gets and answers
// with whatever status its plan says for each request.
type recorder struct {
	mu   sync.Mutex
	reqs []string // "METHOD keys"
	plan func(n int) int
	srv  *httptest.Server
}

func newRecorder(t *testing.T, plan func(n int) int) *recorder {
	t.Helper()
	r := &recorder{plan: plan}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.reqs = append(r.reqs, req.Method+" "+req.Header.Get("Surrogate-Key"))
		n := len(r.reqs)
		r.mu.Unlock()
		status := 200
		if r.plan != nil {
			status = r.plan(n)
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *recorder) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.reqs...)
}

func newClient(t *testing.T, cfg Config) (*Client, *prometheus.Registry) {
	t.Helper()
	if cfg.Backoff == 0 {
		cfg.Backoff = time.Millisecond
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	if err := c.Register(reg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, reg
}

func flush(t *testing.T, c *Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Flush(ctx); err != nil {
		t.Fatalf("flush: %v", err)
	}
}

func TestPurgeSendsTagsToEveryInstance(t *testing.T) {
	a, b := newRecorder(t, nil), newRecorder(t, nil)
	c, reg := newClient(t, Config{URLs: []string{a.srv.URL, b.srv.URL + "/purge"}})
	c.Purge("product:12", "home", "category:3")
	flush(t, c)
	for _, r := range []*recorder{a, b} {
		if got := r.got(); len(got) != 1 || got[0] != "PURGE category:3 home product:12" {
			t.Errorf("instance got %q, want one PURGE with the three tags", got)
		}
	}
	c.PurgeAll()
	flush(t, c)
	if got := a.got(); len(got) != 2 || got[1] != "BAN " {
		t.Errorf("after PurgeAll: %q, want a BAN", got)
	}
	if n := testutil.ToFloat64(c.metrics.purges.WithLabelValues("ok")); n != 4 {
		t.Errorf("ok purges = %v, want 4 (2 rounds x 2 instances)", n)
	}
	if n, err := testutil.GatherAndCount(reg, "surge_cdn_purges_total"); err != nil || n != 2 {
		t.Errorf("surge_cdn_purges_total series = %d (%v), want ok and failed", n, err)
	}
}

func TestRetryUntilSuccess(t *testing.T) {
	r := newRecorder(t, func(n int) int {
		if n < 3 {
			return http.StatusServiceUnavailable
		}
		return 200
	})
	c, _ := newClient(t, Config{URLs: []string{r.srv.URL}, Attempts: 3})
	c.Purge("home")
	flush(t, c)
	if got := len(r.got()); got != 3 {
		t.Errorf("requests = %d, want 3 (two 503s, then 200)", got)
	}
	if ok, retries := testutil.ToFloat64(c.metrics.purges.WithLabelValues("ok")), testutil.ToFloat64(c.metrics.retries); ok != 1 || retries != 2 {
		t.Errorf("ok = %v, retries = %v; want 1 and 2", ok, retries)
	}
}

func TestRefusedPurgeIsNotRetried(t *testing.T) {
	r := newRecorder(t, func(int) int { return http.StatusForbidden })
	c, _ := newClient(t, Config{URLs: []string{r.srv.URL}, Attempts: 5})
	c.Purge("home")
	flush(t, c)
	if got := len(r.got()); got != 1 {
		t.Errorf("requests = %d, want 1: a 403 will not change by retrying", got)
	}
	if n := testutil.ToFloat64(c.metrics.purges.WithLabelValues("failed")); n != 1 {
		t.Errorf("failed = %v, want 1", n)
	}
}

// TestHangingCDNNeverBlocksPurge: an instance that never answers makes
// each attempt time out and the purge fail, but Purge itself returns at
// once: it runs while the server is still holding the first request.
func TestHangingCDNNeverBlocksPurge(t *testing.T) {
	release := make(chan struct{})
	var arrived atomic.Int32
	first := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if arrived.Add(1) == 1 {
			close(first)
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	c, _ := newClient(t, Config{URLs: []string{srv.URL}, Timeout: 50 * time.Millisecond, Attempts: 2})
	c.Purge("product:1")
	<-first
	// The loop is stuck on the hanging request; more purges still return.
	for i := range 1000 {
		c.Purge("product:" + strings.Repeat("x", i%7))
	}
	flush(t, c)
	if n := testutil.ToFloat64(c.metrics.purges.WithLabelValues("failed")); n < 1 {
		t.Errorf("failed = %v, want the hanging instance's purges counted failed", n)
	}
	if n := arrived.Load(); n < 2 {
		t.Errorf("requests = %d, want a retry after the timeout", n)
	}
}

// TestBurstIsMerged: purges that arrive while a round is out go out
// together in the next round, whatever their number.
func TestBurstIsMerged(t *testing.T) {
	gate, started := make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	var mu sync.Mutex
	var keys []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			close(started)
			<-gate
		}
		mu.Lock()
		keys = append(keys, r.Header.Get("Surrogate-Key"))
		mu.Unlock()
	}))
	defer srv.Close()
	c, _ := newClient(t, Config{URLs: []string{srv.URL}})
	c.Purge("first")
	<-started // the first round is out before the burst
	for i := range 100 {
		c.Purge("p", "q", strings.Repeat("r", i%3+1))
	}
	close(gate)
	flush(t, c)
	mu.Lock()
	defer mu.Unlock()
	if len(keys) != 2 || keys[1] != "p q r rr rrr" {
		t.Errorf("requests %q, want the first and one merged request", keys)
	}
}

func TestTooManyTagsPurgeEverything(t *testing.T) {
	r := newRecorder(t, nil)
	c, _ := newClient(t, Config{URLs: []string{r.srv.URL}, MaxPendingTags: 10})
	tags := make([]string, 11)
	for i := range tags {
		tags[i] = "product:" + strings.Repeat("1", i+1)
	}
	c.Purge(tags...)
	flush(t, c)
	if got := r.got(); len(got) != 1 || got[0] != "BAN " {
		t.Errorf("got %q, want one BAN", got)
	}
	if n := testutil.ToFloat64(c.metrics.overflow); n != 1 {
		t.Errorf("overflows = %v, want 1", n)
	}
}

func TestLongTagListsAreSplit(t *testing.T) {
	var tags []string
	for i := range 500 {
		tags = append(tags, "product:"+strings.Repeat("9", 10)+string(rune('a'+i%26))+strings.Repeat("z", i%5))
	}
	reqs := requestsFor(false, tags)
	if len(reqs) < 2 {
		t.Fatalf("%d requests for %d tags", len(reqs), len(tags))
	}
	n := 0
	for _, r := range reqs {
		if len(r.keys) > maxHeaderBytes {
			t.Errorf("header of %d bytes", len(r.keys))
		}
		n += len(strings.Fields(r.keys))
	}
	if n != len(tags) {
		t.Errorf("%d tags sent, want %d", n, len(tags))
	}
}

// TestConcurrencyIsBounded: with many instances hanging, no more than
// Concurrency requests are ever in flight.
func TestConcurrencyIsBounded(t *testing.T) {
	var inFlight, peak, total atomic.Int32
	release, arrived := make(chan struct{}), make(chan struct{}, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		total.Add(1)
		arrived <- struct{}{}
		<-release
	}))
	defer srv.Close()
	var urls []string
	for i := range 10 {
		urls = append(urls, srv.URL+"/"+strings.Repeat("i", i+1))
	}
	c, _ := newClient(t, Config{URLs: urls, Concurrency: 3})
	c.Purge("home")
	for range 3 {
		<-arrived
	}
	close(release)
	flush(t, c)
	if p := peak.Load(); p != 3 {
		t.Errorf("peak in flight = %d, want 3", p)
	}
	if n := total.Load(); n != 10 {
		t.Errorf("requests = %d, want one per instance", n)
	}
}

func TestBadURLs(t *testing.T) {
	for _, u := range []string{"", "varnish:8080", "ftp://x/", "http://user:pw@x/", "http:///nohost"} {
		if _, err := New(Config{URLs: []string{u}}); err == nil {
			t.Errorf("New accepted %q", u)
		}
	}
	if _, err := New(Config{}); err == nil {
		t.Error("New accepted no URLs")
	}
}
