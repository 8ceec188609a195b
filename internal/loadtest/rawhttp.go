package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// rawClient sends one prebuilt HTTP/1.1 request over a fixed pool of
// kept-alive connections, like wrk: the request bytes are written as they
// are, the response is parsed in place and its body discarded. It is what
// plain GET steps use when --connections fixes the connection count; it
// allocates nothing per request, which lets one core drive a fast target.
// Anything it does not handle (TLS, cookies, bodies to check or extract
// from, templated requests) goes through net/http instead.
type rawClient struct {
	pool   *rawPool
	req    []byte
	method string
}

// rawPool is the fixed set of connections to one host:port.
type rawPool struct {
	addr    string
	timeout time.Duration
	slots   chan *rawConn // one per allowed connection; nil: not dialed yet

	mu    sync.Mutex
	conns map[*rawConn]struct{}
	stop  func() bool
}

type rawConn struct {
	c net.Conn
	r *bufio.Reader
}

func newRawPool(ctx context.Context, addr string, conns int, timeout time.Duration) *rawPool {
	p := &rawPool{addr: addr, timeout: timeout, slots: make(chan *rawConn, conns), conns: map[*rawConn]struct{}{}}
	for range conns {
		p.slots <- nil
	}
	// When the run is cut short, close every connection so blocked reads end.
	p.stop = context.AfterFunc(ctx, p.closeAll)
	return p
}

func (p *rawPool) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.c.Close()
	}
}

func (p *rawPool) close() {
	p.stop()
	p.closeAll()
}

func (p *rawPool) drop(c *rawConn) {
	c.c.Close()
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// rawEligible reports whether the raw client can send a step: a static
// request without body, checks on the body or extraction, to http://.
func rawEligible(st *Step, rawURL string) bool {
	if !st.url.isStatic() || st.body != nil || st.needBody || len(st.extract) > 0 || st.Method == http.MethodConnect {
		return false
	}
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "http" || u.User != nil || u.Host == "" {
		return false
	}
	for _, h := range st.headers {
		switch h.name {
		case "Host", "Connection", "Content-Length", "Transfer-Encoding", "Expect":
			return false
		}
		if !h.value.isStatic() {
			return false
		}
	}
	return true
}

// newRawClient prepares the request of an eligible step, sharing the
// pools of connections by host.
func newRawClient(pools map[string]*rawPool, newPool func(addr string) *rawPool, st *Step, rawURL string) *rawClient {
	u, _ := url.Parse(rawURL)
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	p := pools[addr]
	if p == nil {
		p = newPool(addr)
		pools[addr] = p
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\n", st.Method, u.RequestURI(), u.Host)
	hasUA := false
	for _, h := range st.headers {
		hasUA = hasUA || h.name == "User-Agent"
		fmt.Fprintf(&b, "%s: %s\r\n", h.name, h.value.static)
	}
	if !hasUA {
		b.WriteString("User-Agent: surge-load\r\n")
	}
	b.WriteString("\r\n")
	return &rawClient{pool: p, req: b.Bytes(), method: st.Method}
}

var errRawProtocol = errors.New("malformed HTTP response")

// do sends the request and reads the response, returning the status and
// the body length. It waits for a free connection first; that wait is part
// of the request's latency, as it would be for a browser.
func (rc *rawClient) do(ctx context.Context) (status int, n int64, err error) {
	p := rc.pool
	var c *rawConn
	select {
	case c = <-p.slots:
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	}
	if c == nil {
		nc, err := net.DialTimeout("tcp", p.addr, 10*time.Second)
		if err != nil {
			p.slots <- nil
			return 0, 0, err
		}
		c = &rawConn{c: nc, r: bufio.NewReaderSize(nc, 8192)}
		p.mu.Lock()
		p.conns[c] = struct{}{}
		p.mu.Unlock()
		if ctx.Err() != nil {
			p.drop(c)
			p.slots <- nil
			return 0, 0, ctx.Err()
		}
	}
	status, n, keep, err := rc.roundTrip(c, true)
	if err != nil || !keep {
		p.drop(c)
		c = nil
	}
	p.slots <- c
	return status, n, err
}

// roundTrip writes the request (unless write is false: reading the final
// response after an interim one) and reads the response.
func (rc *rawClient) roundTrip(c *rawConn, write bool) (status int, n int64, keep bool, err error) {
	if write {
		if rc.pool.timeout > 0 {
			c.c.SetDeadline(time.Now().Add(rc.pool.timeout))
		}
		if _, err := c.c.Write(rc.req); err != nil {
			return 0, 0, false, err
		}
	}
	line, err := c.r.ReadSlice('\n')
	if err != nil {
		return 0, 0, false, err
	}
	// "HTTP/1.1 200 OK\r\n"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return 0, 0, false, errRawProtocol
	}
	status = int(line[9]-'0')*100 + int(line[10]-'0')*10 + int(line[11]-'0')
	if status < 100 || status > 999 {
		return 0, 0, false, errRawProtocol
	}
	keep = line[7] == '1' // HTTP/1.0 closes unless told otherwise
	length := int64(-1)
	chunked := false
	for {
		h, err := c.r.ReadSlice('\n')
		if err != nil {
			return status, 0, false, err
		}
		if len(h) <= 2 {
			break
		}
		colon := bytes.IndexByte(h, ':')
		if colon < 0 {
			return status, 0, false, errRawProtocol
		}
		name, value := h[:colon], bytes.TrimSpace(h[colon+1:])
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			v, err := strconv.ParseInt(string(value), 10, 64) // no allocation: the compiler elides the copy
			if err != nil || v < 0 {
				return status, 0, false, errRawProtocol
			}
			length = v
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			if bytes.EqualFold(value, []byte("close")) {
				keep = false
			} else if bytes.EqualFold(value, []byte("keep-alive")) {
				keep = true
			}
		}
	}
	switch {
	case status < 200 || status == 204 || status == 304 || rc.method == http.MethodHead:
		if status < 200 && status != 101 {
			// An interim response (100 Continue, 103 Early Hints): the real
			// one follows.
			return rc.roundTrip(c, false)
		}
		return status, 0, keep, nil
	case chunked:
		n, err = discardChunked(c.r)
		return status, n, keep && err == nil, err
	case length >= 0:
		d, err := c.r.Discard(int(length))
		return status, int64(d), keep && err == nil, err
	default:
		// No length: the body runs until the server closes.
		n, err = io.Copy(io.Discard, c.r)
		return status, n, false, err
	}
}

func discardChunked(r *bufio.Reader) (int64, error) {
	var total int64
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return total, err
		}
		line = bytes.TrimSpace(line)
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i]
		}
		size, err := strconv.ParseInt(string(line), 16, 64)
		if err != nil || size < 0 {
			return total, errRawProtocol
		}
		if size == 0 {
			// Trailers, then the empty line.
			for {
				t, err := r.ReadSlice('\n')
				if err != nil {
					return total, err
				}
				if len(t) <= 2 {
					return total, nil
				}
			}
		}
		d, err := r.Discard(int(size))
		total += int64(d)
		if err != nil {
			return total, err
		}
		if _, err := r.Discard(2); err != nil {
			return total, err
		}
	}
}
