package loadtest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// closingServer speaks HTTP/1.1 by hand so it can close a connection
// exactly when a test wants: close(conn, req) says, for the req-th request
// (from 1) on the conn-th connection (from 1), to drop the connection
// without answering.
type closingServer struct {
	ln    net.Listener
	close func(conn, req int) bool
	hold  time.Duration // before answering a connection's first request

	mu     sync.Mutex
	conns  int
	served []string // "conn/req method path body cookie" of each answered request
}

func newClosingServer(t *testing.T, close func(conn, req int) bool) (*closingServer, *url.URL) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &closingServer{ln: ln, close: close}
	t.Cleanup(func() { ln.Close() })
	go s.serve()
	u, _ := url.Parse("http://" + ln.Addr().String())
	return s, u
}

func (s *closingServer) serve() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns++
		n := s.conns
		s.mu.Unlock()
		go s.conn(c, n)
	}
}

func (s *closingServer) conn(c net.Conn, n int) {
	defer c.Close()
	br := bufio.NewReader(c)
	for i := 1; ; i++ {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		body, _ := io.ReadAll(req.Body)
		if s.close(n, i) {
			return
		}
		if i == 1 {
			time.Sleep(s.hold)
		}
		s.mu.Lock()
		s.served = append(s.served, fmt.Sprintf("%d/%d %s %s %s %s", n, i, req.Method, req.URL.Path, body, req.Header.Get("Cookie")))
		s.mu.Unlock()
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nSet-Cookie: s=1; Path=/\r\nContent-Length: 2\r\n\r\nok")
	}
}

const twoPosts = `cookies: true
steps:
  - name: one
    method: post
    url: /one
    body: 'first'
  - name: two
    method: post
    url: /two
    body: 'second'
`

// TestResendOnConnectionClosedByServer: a POST that goes out on a kept-
// alive connection the server closes before answering is sent again on a
// new connection, once, body and cookies intact, and counted as resent,
// not failed, as a browser would. On a fresh connection the same close is
// a failure: the server may have acted on the request.
func TestResendOnConnectionClosedByServer(t *testing.T) {
	sc, err := ParseScenario("t.yaml", []byte(twoPosts))
	if err != nil {
		t.Fatal(err)
	}
	t.Run("reused connection", func(t *testing.T) {
		srv, target := newClosingServer(t, func(conn, req int) bool { return conn == 1 && req == 2 })
		r := mustRun(t, Config{Target: target, Mix: []Weighted{{sc, 1}}, Plan: ConstantPlan(1, time.Second), Duration: time.Second})
		srv.mu.Lock()
		defer srv.mu.Unlock()
		if r.Total.Errors != 0 || r.Completed != 1 || r.Resent != 1 {
			t.Fatalf("errors %d %v, completed %d, resent %d; want no error, 1 completed, 1 resent", r.Total.Errors, r.Total.Failures, r.Completed, r.Resent)
		}
		want := []string{"1/1 POST /one first ", "2/1 POST /two second s=1"}
		if strings.Join(srv.served, "|") != strings.Join(want, "|") {
			t.Errorf("served %q; want %q", srv.served, want)
		}
		if r.Total.Requests != 2 {
			t.Errorf("%d requests recorded; want 2 (a resend is part of its request)", r.Total.Requests)
		}
	})
	t.Run("idempotent request", func(t *testing.T) {
		// Go's transport resends a request with an Idempotency-Key by
		// itself; the generator adds nothing and counts nothing.
		keyed, err := ParseScenario("t.yaml", []byte(twoPosts+"    headers:\n      Idempotency-Key: k-1\n"))
		if err != nil {
			t.Fatal(err)
		}
		srv, target := newClosingServer(t, func(conn, req int) bool { return conn == 1 && req == 2 })
		r := mustRun(t, Config{Target: target, Mix: []Weighted{{keyed, 1}}, Plan: ConstantPlan(1, time.Second), Duration: time.Second})
		srv.mu.Lock()
		defer srv.mu.Unlock()
		if r.Total.Errors != 0 || r.Resent != 0 || len(srv.served) != 2 {
			t.Errorf("errors %d %v, resent %d, served %q; want both answered, the transport's resend not counted",
				r.Total.Errors, r.Total.Failures, r.Resent, srv.served)
		}
	})
	t.Run("fresh connection", func(t *testing.T) {
		_, target := newClosingServer(t, func(conn, req int) bool { return conn == 1 && req == 1 })
		r := mustRun(t, Config{Target: target, Mix: []Weighted{{sc, 1}}, Plan: ConstantPlan(1, time.Second), Duration: time.Second})
		if r.Total.Errors != 1 || r.Resent != 0 || r.Total.Failures["connection closed"] != 1 {
			t.Errorf("errors %d %v, resent %d; want the one failure, not resent", r.Total.Errors, r.Total.Failures, r.Resent)
		}
	})
}

// TestResendTwiceAtMost: a request whose resend meets another closed
// connection is sent a second time, and no more, as Chromium does.
func TestResendTwiceAtMost(t *testing.T) {
	for _, stale := range []int{2, 3} {
		t.Run(fmt.Sprintf("%d stale connections", stale), func(t *testing.T) {
			// The first request on each of the stale connections is
			// answered after a pause, so that concurrent ones open them
			// all; the next request on each finds it closed.
			srv, target := newClosingServer(t, func(conn, req int) bool { return conn <= stale && req == 2 })
			srv.hold = 100 * time.Millisecond
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
			var wg sync.WaitGroup
			for range stale {
				wg.Add(1)
				go func() {
					defer wg.Done()
					resp, err := client.Get(target.String() + "/prime")
					if err == nil {
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
				}()
			}
			wg.Wait()
			e := &engine{reqCtx: t.Context()}
			req, _ := http.NewRequest("POST", target.String()+"/join", strings.NewReader("body"))
			resp, err := e.roundTrip(req, client.Do)
			if resp != nil {
				resp.Body.Close()
			}
			switch {
			case stale == 2 && (err != nil || e.resent.Load() != 2):
				t.Errorf("err %v, resent %d; want the answer after 2 resends", err, e.resent.Load())
			case stale == 3 && (err == nil || e.resent.Load() != 2):
				t.Errorf("err %v, resent %d; want a failure after 2 resends", err, e.resent.Load())
			}
		})
	}
}
