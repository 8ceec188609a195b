package pagecache

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// clock is a manually advanced time source for Config.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// page is a test handler whose response can be changed between requests and
// which counts its renders per path.
type page struct {
	mu      sync.Mutex
	body    string
	tags    string
	status  int
	header  http.Header
	block   chan struct{} // when non-nil, renders wait for it to close
	started chan string   // when non-nil, receives the path as a render starts
	renders map[string]int
	cookie  string // Cookie header of the last render
}

func newPage(body, tags string) *page {
	return &page{body: body, tags: tags, status: http.StatusOK, renders: map[string]int{}}
}

func (p *page) set(f func(p *page)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(p)
}

func (p *page) count(path string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.renders[path]
}

func (p *page) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.renders[r.URL.Path]++
	p.cookie = r.Header.Get("Cookie")
	body, tags, status, header, block, started := p.body, p.tags, p.status, p.header, p.block, p.started
	p.mu.Unlock()
	if started != nil {
		started <- r.URL.Path
	}
	if block != nil {
		<-block
	}
	for k, v := range header {
		w.Header()[k] = v
	}
	if tags != "" {
		w.Header().Set("Surrogate-Key", tags)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if _, ok := header["Cache-Control"]; !ok {
		w.Header().Set("Cache-Control", "max-age=999")
	}
	w.WriteHeader(status)
	w.Write([]byte(body + " " + r.URL.Path))
}

func do(h http.Handler, method, target string, header ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Add(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func wantResponse(t *testing.T, w *httptest.ResponseRecorder, status int, xcache, body string) {
	t.Helper()
	if w.Code != status || w.Header().Get("X-Cache") != xcache || w.Body.String() != body {
		t.Fatalf("got %d %s %q, want %d %s %q", w.Code, w.Header().Get("X-Cache"), w.Body.String(), status, xcache, body)
	}
}

func TestSingleFlight10000(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := New(Config{TTL: time.Minute, RenderTimeout: time.Hour})
		p := newPage("v1", "home")
		p.block = make(chan struct{})
		h := c.Middleware(p)

		const n = 10000
		res := make([]*httptest.ResponseRecorder, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { res[i] = do(h, "GET", "/") })
		}
		synctest.Wait() // every request is now waiting on the one render
		if got := p.count("/"); got != 1 {
			t.Fatalf("renders while waiting = %d, want 1", got)
		}
		if got := c.Stats().Misses; got != n {
			t.Fatalf("misses = %d, want %d", got, n)
		}
		close(p.block)
		wg.Wait()

		if got := p.count("/"); got != 1 {
			t.Fatalf("renders = %d, want 1", got)
		}
		etag := res[0].Header().Get("Etag")
		for i, w := range res {
			if w.Code != 200 || w.Body.String() != "v1 /" || w.Header().Get("Etag") != etag {
				t.Fatalf("response %d: %d %q etag %s", i, w.Code, w.Body.String(), w.Header().Get("Etag"))
			}
		}
		wantResponse(t, do(h, "GET", "/"), 200, "HIT", "v1 /")
		if s := c.Stats(); s.Fills != 1 || s.Hits != 1 || s.Entries != 1 {
			t.Fatalf("stats = %+v", s)
		}
	})
}

func TestWaiterHangsUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := New(Config{RenderTimeout: time.Hour})
		p := newPage("v1", "home")
		p.block = make(chan struct{})
		var renderCtxErr error
		h := c.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p.ServeHTTP(w, r)
			renderCtxErr = r.Context().Err()
		}))

		ctx, cancel := context.WithCancel(context.Background())
		first := httptest.NewRecorder()
		firstDone := make(chan struct{})
		go func() {
			defer close(firstDone)
			h.ServeHTTP(first, httptest.NewRequest("GET", "/", nil).WithContext(ctx))
		}()
		synctest.Wait()
		var second *httptest.ResponseRecorder
		secondDone := make(chan struct{})
		go func() {
			defer close(secondDone)
			second = do(h, "GET", "/")
		}()
		synctest.Wait()

		cancel() // the client that started the fill goes away
		<-firstDone
		if first.Body.Len() != 0 {
			t.Fatalf("cancelled client got a body: %q", first.Body.String())
		}
		close(p.block)
		<-secondDone
		wantResponse(t, second, 200, "MISS", "v1 /")
		if renderCtxErr != nil {
			t.Fatalf("render context: %v", renderCtxErr)
		}
		wantResponse(t, do(h, "GET", "/"), 200, "HIT", "v1 /")
	})
}

func TestRenderTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := New(Config{RenderTimeout: time.Second})
		p := newPage("v1", "home")
		p.block = make(chan struct{})
		h := c.Middleware(p)

		// Every goroutine blocks, so the bubble's clock jumps to the timeout.
		w := do(h, "GET", "/")
		if w.Code != http.StatusGatewayTimeout {
			t.Fatalf("status = %d, want 504", w.Code)
		}
		close(p.block)
		synctest.Wait()
		if s := c.Stats(); s.Entries != 0 {
			t.Fatalf("late render was stored: %+v", s)
		}
		wantResponse(t, do(h, "GET", "/"), 200, "MISS", "v1 /")
	})
}

func TestPanicInRender(t *testing.T) {
	c := New(Config{})
	h := c.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Surrogate-Key", "home")
		panic("boom")
	}))
	w := do(h, "GET", "/")
	if w.Code != 500 || c.Stats().Entries != 0 {
		t.Fatalf("status %d entries %d", w.Code, c.Stats().Entries)
	}
}

func TestPurgeTags(t *testing.T) {
	c := New(Config{})
	p := newPage("v1", "")
	h := c.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/a" {
			w.Header().Set("Surrogate-Key", "product:1 home")
		} else {
			w.Header().Set("Surrogate-Key", "product:2")
		}
		p.ServeHTTP(w, r)
	}))
	do(h, "GET", "/a")
	do(h, "GET", "/b")

	if n := c.PurgeTags("product:1"); n != 1 {
		t.Fatalf("purged %d, want 1", n)
	}
	if n := c.PurgeTags("product:1", "home", "unknown"); n != 0 {
		t.Fatalf("second purge removed %d, want 0", n)
	}
	p.set(func(p *page) { p.body = "v2" })
	wantResponse(t, do(h, "GET", "/a"), 200, "MISS", "v2 /a")
	wantResponse(t, do(h, "GET", "/b"), 200, "HIT", "v1 /b")
	if p.count("/a") != 2 || p.count("/b") != 1 {
		t.Fatalf("renders a=%d b=%d", p.count("/a"), p.count("/b"))
	}
	if n := c.PurgeTags("home", "product:2"); n != 2 {
		t.Fatalf("purged %d, want 2", n)
	}
	do(h, "GET", "/a")
	do(h, "GET", "/b")
	if n := c.PurgeAll(); n != 2 {
		t.Fatalf("purge all removed %d, want 2", n)
	}
	if s := c.Stats(); s.Entries != 0 || s.Bytes != 0 || s.Purged != 5 {
		t.Fatalf("stats after purge all: %+v", s)
	}
	wantResponse(t, do(h, "GET", "/b"), 200, "MISS", "v2 /b")
}

func TestPurgeDuringFill(t *testing.T) {
	tests := []struct {
		name      string
		purge     func(c *Cache)
		wantCache string // X-Cache of the request after the fill
	}{
		{"own tag", func(c *Cache) { c.PurgeTags("product:1") }, "MISS"},
		{"one of several tags", func(c *Cache) { c.PurgeTags("x", "home") }, "MISS"},
		{"purge all", func(c *Cache) { c.PurgeAll() }, "MISS"},
		{"other tag", func(c *Cache) { c.PurgeTags("product:2") }, "HIT"},
		{"none", func(c *Cache) {}, "HIT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := New(Config{})
			p := newPage("v1", "product:1 home")
			p.block = make(chan struct{})
			p.started = make(chan string, 1)
			h := c.Middleware(p)

			done := make(chan *httptest.ResponseRecorder)
			go func() { done <- do(h, "GET", "/a") }()
			<-p.started
			tt.purge(c)
			close(p.block)
			// The purged fill is still delivered to its waiter.
			wantResponse(t, <-done, 200, "MISS", "v1 /a")

			p.set(func(p *page) { p.block, p.started = nil, nil })
			if w := do(h, "GET", "/a"); w.Header().Get("X-Cache") != tt.wantCache {
				t.Fatalf("after fill: X-Cache %s, want %s", w.Header().Get("X-Cache"), tt.wantCache)
			}
			c.mu.Lock()
			defer c.mu.Unlock()
			if len(c.flights) != 0 || len(c.tagPurged) != 0 {
				t.Fatalf("flights %d, purge record %d after fills ended", len(c.flights), len(c.tagPurged))
			}
		})
	}
}

func TestHeaders(t *testing.T) {
	clk := newClock()
	c := New(Config{TTL: 60 * time.Second, StaleWhileRevalidate: 5 * time.Minute, BrowserMaxAge: 10 * time.Second, Now: clk.Now})
	h := c.Middleware(newPage("v1", "product:12 category:3 home"))

	miss := do(h, "GET", "/p")
	clk.Advance(42 * time.Second)
	hit := do(h, "GET", "/p")
	for _, w := range []*httptest.ResponseRecorder{miss, hit} {
		for name, want := range map[string]string{
			"Cache-Control":     "public, max-age=10, s-maxage=60, stale-while-revalidate=300",
			"Surrogate-Control": "max-age=60, stale-while-revalidate=300",
			"Surrogate-Key":     "product:12 category:3 home",
			"Content-Type":      "text/html; charset=utf-8",
			"Content-Length":    "5",
		} {
			if got := w.Header().Get(name); got != want {
				t.Errorf("%s = %q, want %q", name, got, want)
			}
		}
	}
	etag := hit.Header().Get("Etag")
	if len(etag) != 18 || etag[0] != '"' || etag != miss.Header().Get("Etag") {
		t.Fatalf("etag %q vs %q", etag, miss.Header().Get("Etag"))
	}
	if miss.Header().Get("Age") != "0" || hit.Header().Get("Age") != "42" {
		t.Fatalf("age miss %q hit %q", miss.Header().Get("Age"), hit.Header().Get("Age"))
	}
}

func TestConditional(t *testing.T) {
	c := New(Config{})
	h := c.Middleware(newPage("v1", "home"))
	etag := do(h, "GET", "/").Header().Get("Etag")
	tests := []struct {
		inm  string
		want int
	}{
		{etag, 304},
		{"W/" + etag, 304},
		{`"nope", ` + etag, 304},
		{`"a",W/"b" , ` + "W/" + etag, 304},
		{"*", 304},
		{`"nope"`, 200},
		{`W/"nope"`, 200},
		{`"nope", W/"other"`, 200},
		{`garbage, ` + etag, 304},
		{`"unterminated`, 200},
		{``, 200},
	}
	for _, tt := range tests {
		t.Run(tt.inm, func(t *testing.T) {
			w := do(h, "GET", "/", "If-None-Match", tt.inm)
			if w.Code != tt.want {
				t.Fatalf("status %d, want %d", w.Code, tt.want)
			}
			if tt.want == 304 {
				if w.Body.Len() != 0 || w.Header().Get("Etag") != etag || w.Header().Get("Cache-Control") == "" || w.Header().Get("Content-Length") != "" {
					t.Fatalf("bad 304: body %q header %v", w.Body.String(), w.Header())
				}
			} else if w.Body.String() != "v1 /" {
				t.Fatalf("body %q", w.Body.String())
			}
		})
	}

	// The response of the fill itself honours If-None-Match too.
	c.PurgeAll()
	w := do(h, "GET", "/", "If-None-Match", etag)
	if w.Code != 304 || w.Header().Get("X-Cache") != "MISS" {
		t.Fatalf("filled response: %d %s", w.Code, w.Header().Get("X-Cache"))
	}
	// Preconditions do not apply to non-2xx pages.
	nf := c.Middleware(func() http.Handler { p := newPage("gone", "home"); p.status = 404; return p }())
	etag404 := do(nf, "GET", "/x").Header().Get("Etag")
	if w := do(nf, "GET", "/x", "If-None-Match", etag404); w.Code != 404 {
		t.Fatalf("404 with matching etag: %d", w.Code)
	}
}

func TestStaleWhileRevalidate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := newClock()
		c := New(Config{TTL: time.Minute, StaleWhileRevalidate: 5 * time.Minute, RenderTimeout: time.Hour, Now: clk.Now})
		p := newPage("v1", "home")
		h := c.Middleware(p)
		wantResponse(t, do(h, "GET", "/"), 200, "MISS", "v1 /")

		clk.Advance(61 * time.Second)
		p.set(func(p *page) { p.body, p.block = "v2", make(chan struct{}) })
		for range 5 {
			w := do(h, "GET", "/")
			wantResponse(t, w, 200, "STALE", "v1 /")
			if w.Header().Get("Age") != "61" {
				t.Fatalf("stale age %q", w.Header().Get("Age"))
			}
		}
		synctest.Wait()
		if got := p.count("/"); got != 2 {
			t.Fatalf("renders = %d, want 2 (one refresh)", got)
		}
		p.mu.Lock()
		close(p.block)
		p.block = nil
		p.mu.Unlock()
		synctest.Wait() // the refresh has stored v2
		w := do(h, "GET", "/")
		wantResponse(t, w, 200, "HIT", "v2 /")
		if w.Header().Get("Age") != "0" {
			t.Fatalf("age after refresh %q", w.Header().Get("Age"))
		}
		if s := c.Stats(); s.Stale != 5 || s.Fills != 2 || s.Entries != 1 {
			t.Fatalf("stats %+v", s)
		}
	})
}

func TestStaleIfError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := newClock()
		c := New(Config{TTL: time.Minute, StaleWhileRevalidate: 5 * time.Minute, Now: clk.Now})
		p := newPage("v1", "home")
		h := c.Middleware(p)
		do(h, "GET", "/")

		clk.Advance(2 * time.Minute)
		p.set(func(p *page) { p.status, p.body = 500, "broken" })
		wantResponse(t, do(h, "GET", "/"), 200, "STALE", "v1 /")
		synctest.Wait() // the failed refresh has finished
		for range 3 {
			wantResponse(t, do(h, "GET", "/"), 200, "STALE", "v1 /")
		}
		synctest.Wait()
		if got := p.count("/"); got != 2 {
			t.Fatalf("renders = %d, want 2: refresh retried without backoff", got)
		}

		clk.Advance(refreshBackoff)
		p.set(func(p *page) { p.status, p.body = 200, "v2" })
		wantResponse(t, do(h, "GET", "/"), 200, "STALE", "v1 /")
		synctest.Wait()
		wantResponse(t, do(h, "GET", "/"), 200, "HIT", "v2 /")

		// Past TTL + stale window an entry is a plain miss.
		clk.Advance(time.Minute + 5*time.Minute)
		wantResponse(t, do(h, "GET", "/"), 200, "MISS", "v2 /")
	})
}

func TestNoStaleWithoutWindow(t *testing.T) {
	clk := newClock()
	c := New(Config{TTL: time.Minute, Now: clk.Now})
	h := c.Middleware(newPage("v1", "home"))
	do(h, "GET", "/")
	clk.Advance(59 * time.Second)
	wantResponse(t, do(h, "GET", "/"), 200, "HIT", "v1 /")
	clk.Advance(time.Second)
	wantResponse(t, do(h, "GET", "/"), 200, "MISS", "v1 /")
}

func TestStorable(t *testing.T) {
	tests := []struct {
		name   string
		method string
		status int
		tags   string
		header http.Header
		stored bool
	}{
		{"200", "GET", 200, "home", nil, true},
		{"301", "GET", 301, "home", http.Header{"Location": {"/new"}}, true},
		{"404", "GET", 404, "home", nil, true},
		{"410", "GET", 410, "home", nil, true},
		{"500", "GET", 500, "home", nil, false},
		{"302", "GET", 302, "home", http.Header{"Location": {"/new"}}, false},
		{"no surrogate key", "GET", 200, "", nil, false},
		{"set-cookie", "GET", 200, "home", http.Header{"Set-Cookie": {"s=1"}}, false},
		{"private", "GET", 200, "home", http.Header{"Cache-Control": {"Private, max-age=5"}}, false},
		{"no-store", "GET", 200, "home", http.Header{"Cache-Control": {"no-store"}}, false},
		{"vary", "GET", 200, "home", http.Header{"Vary": {"Accept-Encoding"}}, false},
		{"post", "POST", 200, "home", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := New(Config{})
			p := newPage("body", tt.tags)
			p.status = tt.status
			p.header = tt.header
			h := c.Middleware(p)
			first := do(h, tt.method, "/")
			second := do(h, tt.method, "/")
			if first.Code != tt.status || second.Code != tt.status || second.Body.String() != "body /" {
				t.Fatalf("codes %d %d body %q", first.Code, second.Code, second.Body.String())
			}
			wantRenders, wantX := 2, "MISS"
			if tt.stored {
				wantRenders, wantX = 1, "HIT"
			}
			if tt.method == "POST" {
				wantX = "BYPASS"
			}
			if got := p.count("/"); got != wantRenders {
				t.Fatalf("renders %d, want %d", got, wantRenders)
			}
			if got := second.Header().Get("X-Cache"); got != wantX {
				t.Fatalf("X-Cache %s, want %s", got, wantX)
			}
			if !tt.stored {
				// Not stored: the handler's own headers pass through.
				if cc := second.Header().Get("Cache-Control"); cc != strings.Join(tt.header["Cache-Control"], "") && cc != "max-age=999" {
					t.Fatalf("Cache-Control rewritten to %q", cc)
				}
				if v := tt.header.Get("Set-Cookie"); v != "" && second.Header().Get("Set-Cookie") != v {
					t.Fatalf("Set-Cookie lost")
				}
			}
		})
	}
}

func TestHead(t *testing.T) {
	c := New(Config{})
	p := newPage("v1", "home")
	h := c.Middleware(p)

	w := do(h, "HEAD", "/")
	wantResponse(t, w, 200, "MISS", "")
	if w.Header().Get("Content-Length") != "4" {
		t.Fatalf("HEAD Content-Length %q", w.Header().Get("Content-Length"))
	}
	wantResponse(t, do(h, "GET", "/"), 200, "HIT", "v1 /")
	wantResponse(t, do(h, "HEAD", "/"), 200, "HIT", "")
	if p.count("/") != 1 {
		t.Fatalf("renders %d", p.count("/"))
	}
}

func TestCacheKey(t *testing.T) {
	tests := []struct {
		a, b string
		same bool
	}{
		{"/p?b=2&a=1", "/p?a=1&b=2", true},
		{"/p?", "/p", true},
		{"/p?a=1&a=2", "/p?a=2&a=1", false},
		{"/p?a=1&b=2&a=3", "/p?b=2&a=1&a=3", true},
		{"/p?q=red%20shoes", "/p?q=red+shoes", true},
		{"http://one.example/p", "http://two.example/p", true},
		{"/p?a=1", "/p", false},
		{"/p%3Fa=1", "/p?a=1", false},
		{"/p", "/P", false},
	}
	for _, tt := range tests {
		t.Run(tt.a+" "+tt.b, func(t *testing.T) {
			ka := cacheKey(httptest.NewRequest("GET", tt.a, nil).URL)
			kb := cacheKey(httptest.NewRequest("GET", tt.b, nil).URL)
			if (ka == kb) != tt.same {
				t.Fatalf("keys %q and %q: same=%v, want %v", ka, kb, ka == kb, tt.same)
			}
		})
	}

	// The no-parse fast path must agree with url.Values.Encode.
	for _, q := range []string{
		"a=1", "a=1&b=2", "b=2&a=1", "a=1&a=0", "a=", "a", "a=1&", "&a=1", "a=1&&b=2",
		"a=b=c", "q=x+y", "q=x%20y", "q=%7E", "q=~._-", "A=1&a=2", "a=2&A=1", "=v", "k=%zz", "a=1;b=2",
	} {
		u := &url.URL{Path: "/p", RawQuery: q}
		want := "/p"
		if v, err := url.ParseQuery(q); err != nil {
			want += "?" + q
		} else if len(v) > 0 {
			want += "?" + v.Encode()
		}
		if got := cacheKey(u); got != want {
			t.Errorf("cacheKey(?%s) = %q, want %q", q, got, want)
		}
	}

	c := New(Config{})
	p := newPage("v1", "home")
	h := c.Middleware(p)
	do(h, "GET", "/s?b=2&a=1")
	wantResponse(t, do(h, "GET", "/s?a=1&b=2"), 200, "HIT", "v1 /s")
}

func TestByteBoundAndLRU(t *testing.T) {
	body := strings.Repeat("x", 500)
	handler := func(p *page) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p.set(func(p *page) { p.renders[r.URL.Path]++ })
			w.Header().Set("Surrogate-Key", "k")
			w.Header().Set("Content-Type", "text/plain")
			w.Write([]byte(body))
		})
	}

	// Measure one entry, then allow room for four and a half.
	probe := New(Config{})
	do(probe.Middleware(handler(newPage("", ""))), "GET", "/p0")
	size := probe.Stats().Bytes
	if size < 500 {
		t.Fatalf("entry size %d does not count the body", size)
	}

	c := New(Config{MaxBytes: 4*size + size/2})
	p := newPage("", "")
	h := c.Middleware(handler(p))
	for _, path := range []string{"/p1", "/p2", "/p3", "/p4"} {
		do(h, "GET", path)
	}
	do(h, "GET", "/p1") // p1 is now recently used; p2 is the oldest
	do(h, "GET", "/p5")
	s := c.Stats()
	if s.Entries != 4 || s.Evictions != 1 || s.Bytes > 4*size+size/2 {
		t.Fatalf("stats %+v", s)
	}
	// p2 goes last: refilling it evicts another page.
	for _, tt := range []struct{ path, want string }{{"/p1", "HIT"}, {"/p3", "HIT"}, {"/p4", "HIT"}, {"/p5", "HIT"}, {"/p2", "MISS"}} {
		if got := do(h, "GET", tt.path).Header().Get("X-Cache"); got != tt.want {
			t.Errorf("%s: X-Cache %s, want %s", tt.path, got, tt.want)
		}
	}

	// An entry over a quarter of the budget is served but never stored.
	small := New(Config{MaxBytes: 4*size - 4})
	hs := small.Middleware(handler(newPage("", "")))
	do(hs, "GET", "/p1")
	if small.Stats().Entries != 0 {
		t.Fatalf("oversized entry stored: %+v", small.Stats())
	}
}

func TestBypassFunc(t *testing.T) {
	c := New(Config{Bypass: func(r *http.Request) bool { return r.Header.Get("Cookie") != "" }})
	p := newPage("v1", "home")
	h := c.Middleware(p)
	do(h, "GET", "/")
	wantResponse(t, do(h, "GET", "/", "Cookie", "session=1"), 200, "BYPASS", "v1 /")
	if p.count("/") != 2 {
		t.Fatalf("renders %d", p.count("/"))
	}
}

func TestWarm(t *testing.T) {
	c := New(Config{})
	p := newPage("v1", "home")
	if err := c.Warm(context.Background(), p, "/", "/a?x=1"); err != nil {
		t.Fatal(err)
	}
	wantResponse(t, do(c.Middleware(p), "GET", "/a?x=1"), 200, "HIT", "v1 /a")
	if err := c.Warm(context.Background(), newPage("v1", ""), "/untagged"); err == nil {
		t.Fatal("warming an uncacheable page succeeded")
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := New(Config{MaxBytes: 1 << 20})
	if err := c.Register(reg); err != nil {
		t.Fatal(err)
	}
	p := newPage("v1", "home")
	h := c.Middleware(p)
	do(h, "GET", "/")
	do(h, "GET", "/")
	do(h, "GET", "/")
	do(h, "POST", "/")
	c.PurgeTags("home")

	want := `
# HELP surge_page_cache_requests_total Page cache lookups by result: hit, miss, stale or bypass.
# TYPE surge_page_cache_requests_total counter
surge_page_cache_requests_total{result="bypass"} 1
surge_page_cache_requests_total{result="hit"} 2
surge_page_cache_requests_total{result="miss"} 1
surge_page_cache_requests_total{result="stale"} 0
# HELP surge_page_cache_fills_total Renders of the wrapped handler started by the cache.
# TYPE surge_page_cache_fills_total counter
surge_page_cache_fills_total 1
# HELP surge_page_cache_purged_entries_total Entries removed by tag purges and purge-all.
# TYPE surge_page_cache_purged_entries_total counter
surge_page_cache_purged_entries_total 1
# HELP surge_page_cache_evictions_total Entries evicted to stay within the byte bound.
# TYPE surge_page_cache_evictions_total counter
surge_page_cache_evictions_total 0
# HELP surge_page_cache_entries Entries currently stored.
# TYPE surge_page_cache_entries gauge
surge_page_cache_entries 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"surge_page_cache_requests_total", "surge_page_cache_fills_total",
		"surge_page_cache_purged_entries_total", "surge_page_cache_evictions_total",
		"surge_page_cache_entries"); err != nil {
		t.Fatal(err)
	}
	do(h, "GET", "/")
	if got := testutil.ToFloat64(gaugeFor(t, reg, "surge_page_cache_bytes")); got != float64(c.Stats().Bytes) || got == 0 {
		t.Fatalf("bytes gauge %v, stats %d", got, c.Stats().Bytes)
	}
	if err := c.Register(reg); err == nil {
		t.Fatal("registering twice succeeded")
	}
}

// gaugeFor returns a collector reporting the gathered value of name.
func gaugeFor(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			v := mf.GetMetric()[0].GetGauge().GetValue()
			return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: "copy"}, func() float64 { return v })
		}
	}
	t.Fatalf("metric %s not gathered", name)
	return nil
}

// benchWriter is a ResponseWriter that reuses its header map, so the
// benchmark measures the cache rather than the recorder.
type benchWriter struct {
	h http.Header
	n int
}

func (w *benchWriter) Header() http.Header         { return w.h }
func (w *benchWriter) WriteHeader(int)             {}
func (w *benchWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }

var benchBody = []byte(strings.Repeat("<div>product</div>", 500))

func BenchmarkHit(b *testing.B) {
	c := New(Config{TTL: time.Hour})
	h := c.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Surrogate-Key", "product:12 category:3 home")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(benchBody)
	}))
	r := httptest.NewRequest("GET", "/products/12", nil)
	w := &benchWriter{h: make(http.Header)}
	h.ServeHTTP(w, r)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		clear(w.h)
		h.ServeHTTP(w, r)
	}
	b.StopTimer()
	if c.Stats().Fills != 1 {
		b.Fatalf("fills %d", c.Stats().Fills)
	}
}

func BenchmarkHitParallel(b *testing.B) {
	c := New(Config{TTL: time.Hour})
	h := c.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Surrogate-Key", "home")
		w.Write(benchBody)
	}))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		r := httptest.NewRequest("GET", "/?page=2&sort=price", nil)
		w := &benchWriter{h: make(http.Header)}
		for pb.Next() {
			clear(w.h)
			h.ServeHTTP(w, r)
		}
	})
}

// BenchmarkServer compares cached pages with a bare handler writing the same
// bytes, both behind a real net/http server on loopback.
func BenchmarkServer(b *testing.B) {
	bare := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Length", strconv.Itoa(len(benchBody)))
		w.Write(benchBody)
	})
	cached := New(Config{TTL: time.Hour}).Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Surrogate-Key", "home")
		bare.ServeHTTP(w, r)
	}))
	for _, bc := range []struct {
		name string
		h    http.Handler
	}{{"bare", bare}, {"cached", cached}} {
		b.Run(bc.name, func(b *testing.B) {
			srv := httptest.NewServer(bc.h)
			defer srv.Close()
			tr := &http.Transport{MaxIdleConnsPerHost: 256}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				buf := make([]byte, 32<<10)
				for pb.Next() {
					resp, err := client.Get(srv.URL + "/")
					if err != nil {
						b.Error(err)
						return
					}
					for {
						if _, err := resp.Body.Read(buf); err != nil {
							break
						}
					}
					resp.Body.Close()
				}
			})
		})
	}
}

func TestHas(t *testing.T) {
	now := time.Unix(1000, 0)
	c := New(Config{MaxBytes: 1 << 20, TTL: time.Minute, StaleWhileRevalidate: time.Minute, Now: func() time.Time { return now }})
	h := c.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Surrogate-Key", "t")
		_, _ = w.Write([]byte("page"))
	}))
	req := httptest.NewRequest("GET", "/p?b=2&a=1", nil)
	if c.Has(req) {
		t.Fatal("Has before any fill")
	}
	h.ServeHTTP(httptest.NewRecorder(), req)
	if !c.Has(httptest.NewRequest("GET", "/p?a=1&b=2", nil)) || !c.Has(httptest.NewRequest("HEAD", "/p?a=1&b=2", nil)) {
		t.Fatal("Has misses a stored page (canonical query, HEAD)")
	}
	if c.Has(httptest.NewRequest("POST", "/p?a=1&b=2", nil)) {
		t.Fatal("Has true for POST")
	}
	now = now.Add(90 * time.Second)
	if !c.Has(req) {
		t.Fatal("stale entry within SWR not reported")
	}
	now = now.Add(time.Minute)
	if c.Has(req) {
		t.Fatal("expired entry reported")
	}
}

// TestStaleRefreshTimesOut: a background refresh of a stale page that
// runs into RenderTimeout (an overloaded shop, whose render gives up when
// its context does) leaves the stale page served and retries after a
// backoff; it must not crash the process, which reading the refresh's
// result before the timeout had set it did.
func TestStaleRefreshTimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := newClock()
		c := New(Config{TTL: time.Minute, StaleWhileRevalidate: 5 * time.Minute, RenderTimeout: time.Second, Now: clk.Now})
		var slow atomic.Bool
		var renders atomic.Int64
		h := c.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			renders.Add(1)
			w.Header().Set("Surrogate-Key", "home")
			if slow.Load() {
				<-r.Context().Done() // the render's own query gives up with it
				http.Error(w, "timed out", http.StatusServiceUnavailable)
				return
			}
			io.WriteString(w, "v"+strconv.FormatInt(renders.Load(), 10))
		}))
		wantResponse(t, do(h, "GET", "/"), 200, "MISS", "v1")

		clk.Advance(61 * time.Second)
		slow.Store(true)
		wantResponse(t, do(h, "GET", "/"), 200, "STALE", "v1")
		// The bubble's clock passes the render timeout (no real wait).
		time.Sleep(2 * time.Second)
		synctest.Wait()
		wantResponse(t, do(h, "GET", "/"), 200, "STALE", "v1")
		synctest.Wait()
		if got := renders.Load(); got != 2 {
			t.Fatalf("renders = %d, want 2: a timed-out refresh retried without backoff", got)
		}
		slow.Store(false)
		clk.Advance(refreshBackoff)
		wantResponse(t, do(h, "GET", "/"), 200, "STALE", "v1")
		synctest.Wait()
		wantResponse(t, do(h, "GET", "/"), 200, "HIT", "v3")
	})
}
