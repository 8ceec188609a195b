package pagecache

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// stack is a cache behind net/http the way the storefront uses it: handlers
// in front add security headers and a request ID to every response, and
// personal routes are not cached. fast says whether its listener has the
// fast path.
type stack struct {
	c       *Cache
	page    *page
	addr    string
	renders atomic.Int64 // renders of every route, personal ones included
}

var testSecurity = http.Header{
	"Content-Security-Policy": {"default-src 'none'"},
	"X-Content-Type-Options":  {"nosniff"},
}

func newStack(t *testing.T, fast bool, cfg Config, fcfg FastConfig) *stack {
	t.Helper()
	s := &stack{page: newPage("<h1>product</h1>", "product:1")}
	s.c = New(cfg)
	mux := http.NewServeMux()
	cached := s.c.Middleware(s.page)
	mux.Handle("GET /p/{slug}", cached)
	mux.Handle("GET /search", cached)
	// Personal pages: what a signed-in visitor, a cart or an admin sees.
	personal := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "private, no-store")
		c, _ := r.Cookie("session")
		name := "anonymous"
		if c != nil {
			name = c.Value
		}
		io.WriteString(w, "personal page of "+name)
	})
	for _, p := range []string{"GET /cart", "GET /account", "GET /api/v1/me", "GET /admin/orders"} {
		mux.Handle(p, s.c.Middleware(personal))
	}
	mux.HandleFunc("POST /cart/items", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		io.WriteString(w, "added "+string(b))
	})
	front := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.renders.Add(1)
		h := w.Header()
		for k, v := range testSecurity {
			h[k] = v
		}
		id := r.Header.Get("X-Request-Id")
		if id == "" || len(id) > 64 {
			id = "generated-id"
		}
		h.Set("X-Request-Id", id)
		mux.ServeHTTP(w, r)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if fast {
		fcfg.Header = testSecurity
		ln = s.c.FastListener(ln, fcfg)
	}
	srv := &http.Server{Handler: front, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 5 * time.Second,
		ErrorLog: nil}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	s.addr = ln.Addr().String()
	return s
}

// conn is a raw client connection.
type conn struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

func (s *stack) dial(t *testing.T) *conn {
	t.Helper()
	nc, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	return &conn{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (c *conn) send(raw string) {
	c.t.Helper()
	if _, err := io.WriteString(c.nc, raw); err != nil {
		c.t.Fatal(err)
	}
}

// read reads one response to a request of method.
func (c *conn) read(method string) (*http.Response, string) {
	c.t.Helper()
	resp, err := http.ReadResponse(c.br, &http.Request{Method: method})
	if err != nil {
		c.t.Fatalf("read response: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("read body: %v", err)
	}
	return resp, string(b)
}

func get(target string, header ...string) string {
	return "GET " + target + " HTTP/1.1\r\nHost: shop.test\r\n" + strings.Join(header, "") + "\r\n"
}

// warm makes target a cache hit through net/http.
func (s *stack) warm(t *testing.T, target string) {
	t.Helper()
	c := s.dial(t)
	c.send(get(target, "Connection: close\r\n"))
	c.read("GET")
	c.nc.Close()
}

func TestFastKeepAlive(t *testing.T) {
	s := newStack(t, true, Config{}, FastConfig{})
	s.warm(t, "/p/a")
	renders := s.renders.Load()
	c := s.dial(t)
	for i := range 100 {
		c.send(get("/p/a"))
		resp, body := c.read("GET")
		if resp.StatusCode != 200 || body != "<h1>product</h1> /p/a" || resp.Header.Get("X-Cache") != "HIT" || resp.Close {
			t.Fatalf("response %d: %d %q X-Cache %q close %v", i, resp.StatusCode, body, resp.Header.Get("X-Cache"), resp.Close)
		}
	}
	if got := s.c.Stats().Fast; got != 100 {
		t.Errorf("fast hits = %d, want 100", got)
	}
	if got := s.renders.Load(); got != renders {
		t.Errorf("net/http handled %d requests, want 0", got-renders)
	}
}

// canon is a response with the per-response header values blanked.
func canon(resp *http.Response, body string) string {
	h := resp.Header.Clone()
	for _, k := range []string{"Date", "Age"} {
		if _, ok := h[k]; ok {
			h[k] = []string{"*"}
		}
	}
	// A generated request ID: the test's handler's, or the fast path's.
	if id := h.Get("X-Request-Id"); id == "generated-id" || generatedID.MatchString(id) {
		h.Set("X-Request-Id", "*")
	}
	var b strings.Builder
	b.WriteString(resp.Status + "\n")
	h.Write(&b)
	b.WriteString(strings.Repeat("-", 8) + "\n" + body)
	return b.String()
}

var generatedID = regexp.MustCompile(`^[0-9a-f]{16}$`)

// TestFastSameAsNetHTTP sends the same requests to the stack with and
// without the fast path: the responses are the same but for Date and Age.
func TestFastSameAsNetHTTP(t *testing.T) {
	slow := newStack(t, false, Config{}, FastConfig{})
	fast := newStack(t, true, Config{}, FastConfig{})
	for _, s := range []*stack{slow, fast} {
		s.warm(t, "/p/a")
		s.warm(t, "/search?q=shoes")
	}
	c := slow.dial(t)
	c.send(get("/p/a"))
	resp, _ := c.read("GET")
	etag := resp.Header.Get("Etag")
	tests := []struct {
		name, method, raw string
		fast              bool
	}{
		{"get", "GET", get("/p/a"), true},
		{"head", "HEAD", "HEAD /p/a HTTP/1.1\r\nHost: shop.test\r\n\r\n", true},
		{"query", "GET", get("/search?q=shoes"), true},
		{"if-none-match", "GET", get("/p/a", "If-None-Match: "+etag+"\r\n"), true},
		{"if-none-match weak in list", "GET", get("/p/a", "If-None-Match: \"x\", W/"+etag+"\r\n"), true},
		{"if-none-match star", "HEAD", "HEAD /p/a HTTP/1.1\r\nHost: a\r\nIf-None-Match: *\r\n\r\n", true},
		{"if-none-match other", "GET", get("/p/a", "If-None-Match: \"other\"\r\n"), true},
		{"if-none-match twice", "GET", get("/p/a", "If-None-Match: \"other\"\r\nIf-None-Match: "+etag+"\r\n"), true},
		// Range is not implemented by the cache: the whole page, 200.
		{"range", "GET", get("/p/a", "Range: bytes=0-3\r\n"), true},
		{"if-range", "GET", get("/p/a", "Range: bytes=0-3\r\nIf-Range: "+etag+"\r\n"), true},
		{"request id echoed", "GET", get("/p/a", "X-Request-Id: abc-123\r\n"), true},
		{"first request id echoed", "GET", get("/p/a", "X-Request-Id: first\r\nX-Request-Id: second\r\n"), true},
		{"long request id replaced", "GET", get("/p/a", "X-Request-Id: "+strings.Repeat("x", 65)+"\r\n"), true},
		{"keep-alive", "GET", get("/p/a", "Connection: Keep-Alive\r\n"), true},
		{"browser headers", "GET", get("/p/a", "User-Agent: Mozilla/5.0 (X11)\r\nAccept: text/html,*/*;q=0.8\r\n"+
			"Accept-Language: en-GB,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br\r\nSec-Fetch-Mode: navigate\r\n"), true},
		{"case-insensitive names", "GET", "GET /p/a HTTP/1.1\r\nhOsT: a\r\nif-NONE-match: " + etag + "\r\n\r\n", true},
		{"junk query", "GET", get("/p/a?utm=1"), false},
		{"query not canonical", "GET", get("/search?q=shoes&a=1"), false},
		{"escaped path", "GET", get("/p/%61"), false},
		{"uncached page", "GET", get("/p/b"), false},
		{"cookie", "GET", get("/p/a", "Cookie: session=alice\r\n"), false},
		{"authorization", "GET", get("/p/a", "Authorization: Bearer x\r\n"), false},
		{"connection close", "GET", get("/p/a", "Connection: close\r\n"), false},
		{"http/1.0", "GET", "GET /p/a HTTP/1.0\r\n\r\n", false},
		{"absolute form", "GET", "GET http://shop.test/p/a HTTP/1.1\r\nHost: shop.test\r\n\r\n", false},
		{"personal", "GET", get("/account"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got [2]string
			for i, s := range []*stack{slow, fast} {
				before := s.c.Stats().Fast
				c := s.dial(t)
				c.send(tt.raw)
				resp, body := c.read(tt.method)
				got[i] = canon(resp, body)
				if s == fast {
					if served := s.c.Stats().Fast - before; (served == 1) != tt.fast {
						t.Errorf("fast path answered %d requests, want fast=%v", served, tt.fast)
					}
				}
			}
			if got[0] != got[1] {
				t.Errorf("net/http:\n%s\nfast path:\n%s", got[0], got[1])
			}
		})
	}
}

// TestFastPipelining sends hits, a miss, a POST with a body and hits again
// in one write: every response comes back, in order.
func TestFastPipelining(t *testing.T) {
	s := newStack(t, true, Config{}, FastConfig{})
	s.warm(t, "/p/a")
	c := s.dial(t)
	c.send(get("/p/a") + "HEAD /p/a HTTP/1.1\r\nHost: a\r\n\r\n" + get("/p/a") +
		"POST /cart/items HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nSKU-1" +
		get("/account") + get("/p/a"))
	want := []struct{ method, body string }{
		{"GET", "<h1>product</h1> /p/a"}, {"HEAD", ""}, {"GET", "<h1>product</h1> /p/a"},
		{"POST", "added SKU-1"}, {"GET", "personal page of anonymous"}, {"GET", "<h1>product</h1> /p/a"},
	}
	for i, w := range want {
		resp, body := c.read(w.method)
		if resp.StatusCode != 200 || body != w.body {
			t.Fatalf("response %d: %d %q, want 200 %q", i, resp.StatusCode, body, w.body)
		}
	}
	if got := s.c.Stats().Fast; got != 3 {
		t.Errorf("fast hits = %d, want the 3 before the POST", got)
	}
}

// TestFastPipelinedRest: a request cut after pipelined hits is finished by
// later bytes, within the header timeout counted from its first bytes.
func TestFastPipelinedRest(t *testing.T) {
	s := newStack(t, true, Config{}, FastConfig{})
	s.warm(t, "/p/a")
	c := s.dial(t)
	c.send(get("/p/a") + get("/p/a") + "GET /p/a HTTP/1.1\r\nHo")
	c.read("GET")
	c.read("GET")
	c.send("st: a\r\n\r\n")
	if resp, body := c.read("GET"); resp.StatusCode != 200 || body != "<h1>product</h1> /p/a" {
		t.Fatalf("finished request: %d %q", resp.StatusCode, body)
	}
	if got := s.c.Stats().Fast; got != 3 {
		t.Errorf("fast hits = %d, want 3", got)
	}
}

// TestFastNoPersonalPages: requests with a session cookie or credentials,
// and personal routes, never get a fast response, on a connection of their
// own or after fast hits on the same one.
func TestFastNoPersonalPages(t *testing.T) {
	s := newStack(t, true, Config{}, FastConfig{})
	s.warm(t, "/p/a")
	for _, target := range []string{"/cart", "/account", "/api/v1/me", "/admin/orders"} {
		for range 3 { // none becomes cacheable by being asked for again
			c := s.dial(t)
			c.send(get(target))
			resp, body := c.read("GET")
			if body != "personal page of anonymous" || resp.Header.Get("X-Cache") == "HIT" {
				t.Fatalf("%s: %q X-Cache %q", target, body, resp.Header.Get("X-Cache"))
			}
		}
	}
	c := s.dial(t)
	c.send(get("/p/a"))
	c.read("GET")
	c.send(get("/account", "Cookie: session=alice\r\n"))
	if _, body := c.read("GET"); body != "personal page of alice" {
		t.Fatalf("signed-in account page: %q", body)
	}
	c.send(get("/p/a", "Cookie: session=alice\r\n"))
	c.read("GET")
	c2 := s.dial(t)
	c2.send(get("/p/a", "Authorization: Basic YTpi\r\n"))
	c2.read("GET")
	if got := s.c.Stats().Fast; got != 1 {
		t.Errorf("fast hits = %d, want only the anonymous GET", got)
	}
}

// TestFastMalformed: requests the fast path cannot read go to net/http,
// which refuses them with 400, also after fast hits on the connection.
func TestFastMalformed(t *testing.T) {
	s := newStack(t, true, Config{}, FastConfig{})
	s.warm(t, "/p/a")
	for _, raw := range []string{
		"GET /p/a HTTP/1.1\r\n\r\n",                       // no Host
		"GET /p/a HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", // two
		"GET /p/a HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n",
		"GET /p/a HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n",
		"GET /p/a HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n",
		"GET /p/a\r\nHost: a\r\n\r\n",
		"GET  /p/a HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /p/a HTTP/1.1 extra\r\nHost: a\r\n\r\n",
		"\x00\x01\x02 / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /p/a HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
	} {
		c := s.dial(t)
		c.send(get("/p/a"))
		if resp, _ := c.read("GET"); resp.StatusCode != 200 {
			t.Fatalf("hit before %q: %d", raw, resp.StatusCode)
		}
		c.send(raw)
		if resp, _ := c.read("GET"); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%q: status %d, want 400", raw, resp.StatusCode)
		}
	}
	c := s.dial(t)
	c.send(get("/p/a") + "GET /p/a HTTP/9.9\r\nHost: a\r\n\r\n")
	c.read("GET")
	if resp, _ := c.read("GET"); resp.StatusCode != http.StatusHTTPVersionNotSupported {
		t.Errorf("HTTP/9.9: status %d, want net/http's 505", resp.StatusCode)
	}
}

// readUntilClosed reads from c until the server closes it, failing if it
// still has not after 10s.
func readUntilClosed(t *testing.T, c *conn) string {
	t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(c.br)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("server did not close the connection")
	}
	return string(b)
}

// TestFastSlowClients: after fast hits, a connection that goes quiet is
// closed after the idle timeout, one that trickles a header in after the
// header timeout.
func TestFastSlowClients(t *testing.T) {
	s := newStack(t, true, Config{}, FastConfig{ReadHeaderTimeout: 100 * time.Millisecond, IdleTimeout: 150 * time.Millisecond})
	s.warm(t, "/p/a")

	idle := s.dial(t)
	idle.send(get("/p/a"))
	idle.read("GET")
	start := time.Now()
	if rest := readUntilClosed(t, idle); rest != "" {
		t.Errorf("idle connection got %q", rest)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("idle connection closed after %v, before the idle timeout", d)
	}

	slow := s.dial(t)
	slow.send(get("/p/a"))
	slow.read("GET")
	slow.send("GET /p/a HTTP/1.1\r\nHo")
	start = time.Now()
	readUntilClosed(t, slow)
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("slow header closed after %v, before the header timeout", d)
	}
	if got := s.c.Stats().Fast; got != 2 {
		t.Errorf("fast hits = %d, want 2", got)
	}
}

// TestFastSlowReader: a client that sends requests but does not read the
// responses has its connection closed after the write timeout.
func TestFastSlowReader(t *testing.T) {
	c := New(Config{})
	p := newPage(strings.Repeat("x", 64<<10), "t")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln = c.FastListener(ln, FastConfig{WriteTimeout: 100 * time.Millisecond})
	closed := make(chan struct{}, 8)
	srv := &http.Server{Handler: c.Middleware(p), ConnState: func(_ net.Conn, st http.ConnState) {
		if st == http.StateClosed {
			closed <- struct{}{}
		}
	}}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	s := &stack{c: c, addr: ln.Addr().String()}
	s.warm(t, "/a")
	<-closed // the warm-up connection
	nc, err := net.DialTCP("tcp", nil, ln.Addr().(*net.TCPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetReadBuffer(4096)
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	go func() {
		// About 100 requests fill the fast path's buffer, and their 6 MiB
		// of responses the socket buffers.
		for range 1000 {
			if _, err := io.WriteString(nc, get("/a")); err != nil {
				return
			}
		}
	}()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("connection of a client that does not read still open after 10s")
	}
	if c.Stats().Fast == 0 {
		t.Error("no fast hits")
	}
}

// TestFastStaleAndOff: a stale entry is served by the fast path as the
// middleware serves it (X-Cache: STALE) while one refresh renders the page
// again, with no visitor's headers; Off sends requests to net/http.
func TestFastStaleAndOff(t *testing.T) {
	clk := newClock()
	var off atomic.Bool
	s := newStack(t, true, Config{TTL: time.Minute, StaleWhileRevalidate: time.Hour, Now: clk.Now},
		FastConfig{Off: off.Load})
	s.warm(t, "/p/a")
	s.page.set(func(p *page) { p.body = "<h1>new</h1>" })
	clk.Advance(2 * time.Minute)
	c := s.dial(t)
	c.send(get("/p/a", "Cookie: x=1\r\n"))
	if resp, _ := c.read("GET"); resp.Header.Get("X-Cache") != "STALE" {
		t.Errorf("stale entry through net/http: X-Cache %q", resp.Header.Get("X-Cache"))
	}
	// The middleware started the refresh: wait for the new page.
	deadline := time.Now().Add(10 * time.Second)
	c = s.dial(t)
	for {
		c.send(get("/p/a"))
		resp, body := c.read("GET")
		if resp.Header.Get("X-Cache") == "HIT" {
			if body != "<h1>new</h1> /p/a" {
				t.Fatalf("refreshed page: %q", body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("page not refreshed after 10s")
		}
	}
	fast := s.c.Stats().Fast
	renders := s.page.count("/p/a")
	s.page.set(func(p *page) { p.body = "<h1>newer</h1>" })
	clk.Advance(2 * time.Minute)
	c = s.dial(t)
	c.send(get("/p/a"))
	resp, body := c.read("GET")
	if resp.Header.Get("X-Cache") != "STALE" || body != "<h1>new</h1> /p/a" {
		t.Errorf("stale entry on the fast path: X-Cache %q, %q", resp.Header.Get("X-Cache"), body)
	}
	if got := s.c.Stats().Fast - fast; got != 1 {
		t.Errorf("fast responses = %d, want 1", got)
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		c.send(get("/p/a"))
		resp, body := c.read("GET")
		if resp.Header.Get("X-Cache") == "HIT" {
			if body != "<h1>newer</h1> /p/a" {
				t.Fatalf("page refreshed by the fast path: %q", body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("page not refreshed by the fast path after 10s")
		}
	}
	if got := s.page.count("/p/a") - renders; got != 1 {
		t.Errorf("%d renders for the stale page, want one refresh", got)
	}
	var cookie string
	s.page.set(func(p *page) { cookie = p.cookie })
	if cookie != "" {
		t.Errorf("the fast path's refresh carried the Cookie %q of the request that filled the entry", cookie)
	}
	// Past stale-while-revalidate the entry is a miss, for net/http.
	clk.Advance(2 * time.Hour)
	fast = s.c.Stats().Fast
	c.send(get("/p/a"))
	if resp, _ := c.read("GET"); resp.Header.Get("X-Cache") != "MISS" {
		t.Errorf("expired entry: X-Cache %q", resp.Header.Get("X-Cache"))
	}
	if got := s.c.Stats().Fast - fast; got != 0 {
		t.Errorf("fast responses for an expired entry = %d", got)
	}

	off.Store(true)
	fast = s.c.Stats().Fast
	c = s.dial(t)
	c.send(get("/p/a"))
	c.read("GET")
	c.send(get("/p/a"))
	c.read("GET")
	if got := s.c.Stats().Fast - fast; got != 0 {
		t.Errorf("fast hits while off = %d, want 0", got)
	}
}

// TestFastShutdown: Server.Shutdown closes kept-alive fast connections and
// returns.
func TestFastShutdown(t *testing.T) {
	c := New(Config{})
	p := newPage("x", "t")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln = c.FastListener(ln, FastConfig{})
	srv := &http.Server{Handler: c.Middleware(p)}
	go srv.Serve(ln)
	s := &stack{c: c, addr: ln.Addr().String()}
	s.warm(t, "/a")
	cl := s.dial(t)
	cl.send(get("/a"))
	cl.read("GET")
	// The fast connection is older than net/http's grace for new ones.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	readUntilClosed(t, cl)
}

func FuzzParseFast(f *testing.F) {
	for _, s := range []string{
		get("/p/a"),
		get("/search?q=shoes&sort=price"),
		"HEAD /p/a HTTP/1.1\r\nHost: a:80\r\nIf-None-Match: W/\"1\", \"2\"\r\nX-Request-Id: id\r\n\r\nGET / HTTP/1.1\r\n",
		"GET /p/a HTTP/1.1\r\nHost: [::1]:8080\r\nConnection: keep-alive\r\nAccept: */*\r\n\r\n",
		"GET /p/a HTTP/1.1\r\nHost: a\r\nCookie: s=1\r\n\r\n",
		"GET /p/a HTTP/1.1\r\nHost: a\r\n X\r\n\r\n",
		"GET /p/a HTTP/1.1\nHost: a\n\n",
		"GET /p/a HTTP/1.1\r\nHo",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var req fastRequest
		st := parseFast(b, &req)
		if st != parseOK {
			return
		}
		// What the fast path accepts, net/http reads the same way.
		r := bytes.NewReader(b)
		br := bufio.NewReader(r)
		hr, err := http.ReadRequest(br)
		if err != nil {
			t.Fatalf("fast path accepted what net/http refuses (%v): %q", err, b)
		}
		if used := len(b) - r.Len() - br.Buffered(); used != req.n {
			t.Fatalf("fast path read %d bytes, net/http %d: %q", req.n, used, b)
		}
		method := http.MethodGet
		if req.head {
			method = http.MethodHead
		}
		if hr.Method != method || hr.Proto != "HTTP/1.1" || hr.Host == "" || len(hr.Header["Host"]) > 0 && hr.Host != hr.Header.Get("Host") {
			t.Fatalf("net/http read %s %s host %q: %q", hr.Method, hr.Proto, hr.Host, b)
		}
		if k := cacheKey(hr.URL); k != string(req.key) {
			t.Fatalf("key %q, middleware's %q: %q", req.key, k, b)
		}
		for _, h := range []string{"Cookie", "Authorization", "Content-Length", "Transfer-Encoding", "Upgrade", "Expect"} {
			if _, ok := hr.Header[h]; ok {
				t.Fatalf("fast path accepted a request with %s: %q", h, b)
			}
		}
		if hr.ContentLength != 0 || hr.Close {
			t.Fatalf("body %d or close %v: %q", hr.ContentLength, hr.Close, b)
		}
		if !slices.Equal(req.inm, hr.Header["If-None-Match"]) {
			t.Fatalf("If-None-Match %q, net/http %q: %q", req.inm, hr.Header["If-None-Match"], b)
		}
		if id := hr.Header.Get("X-Request-Id"); len(id) <= 64 && id != req.id {
			t.Fatalf("request ID %q, net/http %q: %q", req.id, id, b)
		}
		if _, err := url.ParseRequestURI(hr.RequestURI); err != nil {
			t.Fatal(err)
		}
	})
}

// TestFastHeadsCounted: with a fast path, an entry's size counts the two
// response heads it renders, so MaxBytes still bounds the memory.
func TestFastHeadsCounted(t *testing.T) {
	var sizes [2]int64
	for i, fast := range []bool{false, true} {
		c := New(Config{})
		if fast {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			c.FastListener(ln, FastConfig{Header: testSecurity})
		}
		if err := c.Warm(context.Background(), newPage("body", "t"), "/a"); err != nil {
			t.Fatal(err)
		}
		sizes[i] = c.Stats().Bytes
	}
	c := New(Config{})
	c.Warm(context.Background(), newPage("body", "t"), "/a")
	e, _ := c.lookup("/a")
	fp := &fastPath{c: c, cfg: FastConfig{Header: testSecurity}}
	r := fp.render(e)
	if heads := int64(len(r.full.b) + len(r.notModified.b)); sizes[1]-sizes[0] < heads {
		t.Errorf("fast path adds %d bytes to the entry's size, its heads take %d", sizes[1]-sizes[0], heads)
	}
}
