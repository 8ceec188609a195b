package pagecache

import (
	"bytes"
	"context"
	"hash/maphash"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of FastConfig's timeouts, those of `surge serve`'s http.Server.
const (
	defaultFastHeaderTimeout = 5 * time.Second
	defaultFastIdleTimeout   = 120 * time.Second
	defaultFastWriteTimeout  = 60 * time.Second
)

// fastHeadOverhead approximates what a rendered head holds beyond the
// entry's and the configured header fields: status line, X-Cache, field
// separators.
const fastHeadOverhead = 128

// fastBufSize bounds the header of a request the fast path reads itself. A
// bigger one is handed to net/http, which has its own, larger limit.
const fastBufSize = 4096

// deadlineSlack is how stale a connection deadline may get before it is
// moved: setting one costs a timer update, and a response every few
// microseconds would otherwise move it every time.
const deadlineSlack = time.Second

// FastConfig configures Cache.FastListener.
type FastConfig struct {
	// Header is added to every fast response, as the handlers in front of
	// the cache add it to every response (the security headers).
	Header http.Header
	// Off, when it returns true, sends the next request of every
	// connection, and so the connection, to net/http (for instance while
	// the standby waiting line holds visitors).
	Off func() bool
	// Observe, when set, is told of every fast response: the method, the
	// route pattern the page was rendered for, the status and the time
	// from reading the request to queuing the response.
	Observe func(method, route string, status int, d time.Duration)
	// Log, when set, gets one "request" line per fast response, as the
	// access log does for the others.
	Log *slog.Logger
	// ReadHeaderTimeout bounds how long a request's header may take to
	// arrive (default 5s), IdleTimeout how long a kept-alive connection may
	// wait for its next request (default 120s), WriteTimeout how long one
	// batch of responses may take to write (default 60s).
	ReadHeaderTimeout time.Duration
	IdleTimeout       time.Duration
	WriteTimeout      time.Duration
}

// fastPath is the shared state of the connections of one FastListener.
type fastPath struct {
	c       *Cache
	cfg     FastConfig
	headers []byte // cfg.Header as header lines, sorted
	date    atomic.Pointer[fastDate]
}

// fastDate is the Date header line of one second.
type fastDate struct {
	sec  int64
	line []byte
}

// fastRendered is an entry's response heads, full and 304, without the
// per-response header lines (Age, X-Request-Id, Date) and the blank line.
type fastRendered struct {
	fp                *fastPath
	full, notModified fastHead
}

// fastHead is a response head with the X-Cache line cut out at at, where
// HIT or STALE goes.
type fastHead struct {
	b  []byte
	at int
}

func (h *fastHead) append(out []byte, xcache string) []byte {
	out = append(out, h.b[:h.at]...)
	out = append(out, "X-Cache: "...)
	out = append(out, xcache...)
	out = append(out, "\r\n"...)
	return append(out, h.b[h.at:]...)
}

// FastListener wraps ln so that its connections answer fresh cache hits
// themselves, before net/http reads the request: a GET or HEAD of an
// HTTP/1.1 request whose header the fast path understands completely, with
// no cookie and no credentials, for a page in the cache, is answered from
// bytes rendered once per entry. Anything else (another method or version,
// a cookie, Authorization, a body, Connection other than keep-alive, a miss
// or a stale entry, a header it cannot read) is handed, with every byte
// read so far, to net/http on the same connection, which then keeps the
// connection: responses never overtake each other, pipelined or not.
//
// Only the cache's fresh entries are served, and only for exactly the key
// the middleware would look up, so the fast path answers nothing the
// middleware would not answer from memory with the same status, headers and
// body. Handlers in front of the middleware are skipped: cfg says what of
// theirs a fast response keeps.
func (c *Cache) FastListener(ln net.Listener, cfg FastConfig) net.Listener {
	if cfg.ReadHeaderTimeout <= 0 {
		cfg.ReadHeaderTimeout = defaultFastHeaderTimeout
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = defaultFastIdleTimeout
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = defaultFastWriteTimeout
	}
	fp := &fastPath{c: c, cfg: cfg}
	fp.headers = appendHeaderLines(nil, cfg.Header)
	// Entries stored from now on count the heads the fast path renders.
	c.fastHeadBytes.Store(int64(len(fp.headers)) + fastHeadOverhead)
	return &fastListener{Listener: ln, fp: fp}
}

type fastListener struct {
	net.Listener
	fp *fastPath
}

// Accept wraps the next connection.
func (l *fastListener) Accept() (net.Conn, error) {
	conn, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &fastConn{Conn: conn, fp: l.fp}, nil
}

// fastSeg is one response of a batch: its head ends at headEnd in
// fastConn.out, its body is the entry's.
type fastSeg struct {
	headEnd int
	body    []byte
}

// fastConn answers cache hits in Read, on net/http's own goroutine for the
// connection, until a request needs net/http.
type fastConn struct {
	net.Conn
	fp *fastPath

	// mu is held while responses are written, so that Close (from
	// Server.Shutdown, say) does not cut one in half: a Close that finds
	// it held leaves closing set, and serve closes after the batch.
	mu      sync.Mutex
	closed  bool
	closing atomic.Bool

	handed bool   // net/http has the connection from now on
	buf    []byte // read, not yet consumed: buf[r:w]
	r, w   int
	out    []byte      // response heads of the batch
	segs   []fastSeg   // where each head ends in out, and its body
	bufs   net.Buffers // the batch as written
	err    error       // read error for net/http once buf is drained

	httpRD  time.Time // read deadline net/http set last
	rd, wd  time.Time // deadlines set on Conn by the fast path
	served  bool      // a fast response was written
	partial time.Time // when the first bytes of an incomplete request came
	ids     *rand.ChaCha8
}

// Read serves cache hits until a request needs net/http, then gives
// net/http that request's bytes and everything after them.
func (fc *fastConn) Read(p []byte) (int, error) {
	if !fc.handed {
		fc.serve()
	}
	if fc.r < fc.w {
		n := copy(p, fc.buf[fc.r:fc.w])
		fc.r += n
		if fc.r == fc.w {
			fc.buf, fc.r, fc.w = nil, 0, 0
		}
		return n, nil
	}
	if err := fc.err; err != nil {
		fc.err = nil
		return 0, err
	}
	return fc.Conn.Read(p)
}

// SetReadDeadline records net/http's deadline: the fast path keeps its own
// while it serves, and hands a fresh one over with the connection.
func (fc *fastConn) SetReadDeadline(t time.Time) error {
	fc.httpRD = t
	fc.rd = t
	return fc.Conn.SetReadDeadline(t)
}

// SetDeadline sets both deadlines (see SetReadDeadline).
func (fc *fastConn) SetDeadline(t time.Time) error {
	fc.httpRD, fc.rd, fc.wd = t, t, t
	return fc.Conn.SetDeadline(t)
}

// SetWriteDeadline sets the write deadline.
func (fc *fastConn) SetWriteDeadline(t time.Time) error {
	fc.wd = t
	return fc.Conn.SetWriteDeadline(t)
}

// Close closes the connection, or has serve close it once the batch of
// responses it is writing is out. It never waits for a slow client.
func (fc *fastConn) Close() error {
	fc.closing.Store(true)
	if !fc.mu.TryLock() {
		return nil
	}
	defer fc.mu.Unlock()
	return fc.closeLocked()
}

func (fc *fastConn) closeLocked() error {
	if fc.closed {
		return nil
	}
	fc.closed = true
	return fc.Conn.Close()
}

// serve answers requests until one needs net/http or reading fails; it
// leaves the bytes for net/http in buf, or the error in err.
func (fc *fastConn) serve() {
	fp := fc.fp
	if fc.buf == nil {
		fc.buf = make([]byte, fastBufSize)
	}
	for {
		fc.mu.Lock()
		if fc.closing.Load() {
			fc.closeLocked() //nolint:errcheck // net/http learns of it from the read error
			fc.mu.Unlock()
			fc.err = net.ErrClosed
			fc.r, fc.w = 0, 0
			fc.handOver()
			return
		}
		hand := false
		for fc.r < fc.w {
			var req fastRequest
			st := parseFast(fc.buf[fc.r:fc.w], &req)
			if st == parseMore {
				if fc.r == 0 && fc.w == len(fc.buf) {
					hand = true // a header bigger than the buffer
				}
				break
			}
			if st == parseNo || (fp.cfg.Off != nil && fp.cfg.Off()) {
				hand = true
				break
			}
			out, body, ok := fp.respond(fc.out, &req, fc)
			if !ok {
				hand = true
				break
			}
			fc.out = out
			fc.segs = append(fc.segs, fastSeg{headEnd: len(out), body: body})
			fc.r += req.n
		}
		if len(fc.segs) > 0 {
			err := fc.flush()
			fc.served = true
			if err != nil {
				fc.mu.Unlock()
				fc.err = err
				fc.r, fc.w = 0, 0
				fc.handOver()
				return
			}
		}
		fc.mu.Unlock()
		if fc.closing.Load() {
			continue // closed at the top of the loop
		}
		if hand {
			fc.handOver()
			return
		}
		// Keep the unread part at the front, then read more. The header
		// timeout of a request runs from when its first bytes came.
		if fc.r == fc.w {
			fc.r, fc.w = 0, 0
			fc.partial = time.Time{}
		} else if fc.r > 0 {
			fc.w = copy(fc.buf, fc.buf[fc.r:fc.w])
			fc.r = 0
			fc.partial = time.Now()
		}
		fc.readDeadline()
		n, err := fc.Conn.Read(fc.buf[fc.w:])
		if n > 0 && fc.w == 0 {
			fc.partial = time.Now()
		}
		fc.w += n
		if err != nil {
			fc.err = err
			fc.handOver()
			return
		}
	}
}

// flush writes the batch of responses in fc.out and fc.segs, with one
// writev: heads from fc.out, bodies straight from the entries.
func (fc *fastConn) flush() error {
	fp := fc.fp
	now := time.Now()
	if fc.wd.IsZero() || fc.wd.Before(now.Add(fp.cfg.WriteTimeout-deadlineSlack)) {
		fc.wd = now.Add(fp.cfg.WriteTimeout)
		fc.Conn.SetWriteDeadline(fc.wd) //nolint:errcheck // a failed write reports it
	}
	bufs := fc.bufs[:0]
	start := 0
	for _, sg := range fc.segs {
		bufs = append(bufs, fc.out[start:sg.headEnd])
		if len(sg.body) > 0 {
			bufs = append(bufs, sg.body)
		}
		start = sg.headEnd
	}
	fc.bufs = bufs
	_, err := bufs.WriteTo(fc.Conn)
	clear(fc.bufs[:cap(fc.bufs)]) // keep no entry's body alive
	fc.out, fc.segs = fc.out[:0], fc.segs[:0]
	if cap(fc.out) > fastBufSize {
		fc.out = nil // a long pipelined batch does not stay with the connection
	}
	return err
}

// readDeadline sets the deadline of the next read: net/http's own until a
// fast response went out, then the idle timeout while no request is
// pending and the header timeout from the first bytes of one.
func (fc *fastConn) readDeadline() {
	if !fc.served {
		return
	}
	cfg := &fc.fp.cfg
	var want time.Time
	if fc.w > 0 {
		want = fc.partial.Add(cfg.ReadHeaderTimeout)
		if fc.rd.Equal(want) {
			return
		}
	} else {
		want = time.Now().Add(cfg.IdleTimeout)
		if !fc.rd.IsZero() && !fc.rd.Before(want.Add(-deadlineSlack)) && !fc.rd.After(want) {
			return
		}
	}
	fc.rd = want
	fc.Conn.SetReadDeadline(want) //nolint:errcheck // the read reports it
}

// handOver gives the connection to net/http for good. If the fast path
// answered requests since net/http set its read deadline, the header
// timeout restarts now.
func (fc *fastConn) handOver() {
	fc.handed = true
	fc.out, fc.segs, fc.bufs = nil, nil, nil
	if fc.r == fc.w {
		fc.buf, fc.r, fc.w = nil, 0, 0
	}
	if fc.served {
		t := fc.httpRD // none, if net/http wants none
		if !t.IsZero() {
			t = time.Now().Add(fc.fp.cfg.ReadHeaderTimeout)
		}
		fc.Conn.SetReadDeadline(t) //nolint:errcheck // the read reports it
	}
}

// respond appends the head of the response to req to out and returns its
// body, or reports false when net/http must answer it: no fresh entry under
// its key.
func (fp *fastPath) respond(out []byte, req *fastRequest, fc *fastConn) ([]byte, []byte, bool) {
	start := time.Now()
	c := fp.c
	sh := &c.shards[maphash.Bytes(c.seed, req.key)%shardCount]
	sh.mu.RLock()
	e := sh.m[string(req.key)]
	sh.mu.RUnlock()
	if e == nil {
		return out, nil, false
	}
	now := c.now()
	age := now.Sub(e.stored)
	stale := age >= c.ttl
	if stale {
		if age >= c.ttl+c.swr || e.refill == nil {
			return out, nil, false // expired: a miss, for the middleware
		}
		// As the middleware does: serve it while one refresh runs.
		sh.stale.Add(1)
		c.maybeRefresh(e.refill, e.key, e, now, e.handler)
	} else {
		sh.hits.Add(1)
	}
	c.fastHits.Add(1)
	if !e.referenced.Load() {
		e.referenced.Store(true)
	}
	fr := e.fast.Load()
	if fr == nil || fr.fp != fp {
		fr = fp.render(e)
		e.fast.Store(fr)
	}
	status := e.status
	xcache := xHit[0]
	if stale {
		xcache = xStale[0]
	}
	head := &fr.full
	if len(req.inm) > 0 && e.status == http.StatusOK && matchesNoneMatch(req.inm, e.etag) {
		status = http.StatusNotModified
		head = &fr.notModified
	}
	out = head.append(out, xcache)
	out = append(out, "Age: "...)
	out = strconv.AppendInt(out, max(int64(now.Sub(e.stored)/time.Second), 0), 10)
	out = append(out, "\r\nX-Request-Id: "...)
	idStart := len(out)
	if req.id != "" {
		out = append(out, req.id...)
	} else {
		out = fc.appendID(out)
	}
	id := out[idStart:]
	out = append(out, "\r\n"...)
	out = append(out, fp.dateLine(start)...)
	out = append(out, "\r\n"...)
	var body []byte
	if !req.head && status != http.StatusNotModified {
		body = e.body
	}
	if fp.cfg.Observe != nil || fp.cfg.Log != nil {
		fp.report(req, e, status, len(body), xcache, string(id), fc, start)
	}
	return out, body, true
}

// report tells cfg.Observe and cfg.Log of one fast response.
func (fp *fastPath) report(req *fastRequest, e *entry, status, bytes int, cache, id string, fc *fastConn, start time.Time) {
	method := http.MethodGet
	if req.head {
		method = http.MethodHead
	}
	route := ""
	if p := e.route.Load(); p != nil {
		route = *p
	}
	d := time.Since(start)
	if fp.cfg.Observe != nil {
		fp.cfg.Observe(method, route, status, d)
	}
	if fp.cfg.Log != nil {
		path, _, _ := strings.Cut(string(req.key), "?")
		fp.cfg.Log.LogAttrs(context.Background(), slog.LevelInfo, "request",
			slog.String("method", method), slog.String("path", path), slog.String("route", route),
			slog.Int("status", status), slog.Int64("bytes", int64(bytes)),
			slog.Float64("duration_ms", float64(d.Microseconds())/1000), slog.String("cache", cache),
			slog.String("remote", fc.RemoteAddr().String()), slog.String("request_id", id), slog.Bool("fast", true))
	}
}

// appendID appends a new request ID: 16 hex digits, like the middleware's.
// They only correlate log lines, so a per-connection generator seeded from
// the runtime's random source is enough.
func (fc *fastConn) appendID(out []byte) []byte {
	if fc.ids == nil {
		var seed [32]byte
		for i := 0; i < len(seed); i += 8 {
			v := rand.Uint64()
			for j := range 8 {
				seed[i+j] = byte(v >> (8 * j))
			}
		}
		fc.ids = rand.NewChaCha8(seed)
	}
	v := fc.ids.Uint64()
	const hex = "0123456789abcdef"
	for i := 60; i >= 0; i -= 4 {
		out = append(out, hex[(v>>uint(i))&0xf])
	}
	return out
}

// dateLine returns the Date header line (with CRLF) for now, formatted once
// a second.
func (fp *fastPath) dateLine(now time.Time) []byte {
	sec := now.Unix()
	if d := fp.date.Load(); d != nil && d.sec == sec {
		return d.line
	}
	line := append([]byte("Date: "), now.UTC().AppendFormat(nil, http.TimeFormat)...)
	line = append(line, "\r\n"...)
	fp.date.Store(&fastDate{sec: sec, line: line})
	return line
}

// render builds an entry's response heads as net/http would write them:
// the status line, then the header fields sorted by name. Age, X-Request-Id
// and Date follow per response.
func (fp *fastPath) render(e *entry) *fastRendered {
	full := http.Header{}
	for _, f := range e.header {
		full[f.name] = f.vals
	}
	nm := http.Header{}
	for _, f := range e.notModified {
		nm[f.name] = f.vals
	}
	for name, vals := range fp.cfg.Header {
		full[name] = vals
		nm[name] = vals
	}
	return &fastRendered{
		fp:          fp,
		full:        headOf(e.status, full),
		notModified: headOf(http.StatusNotModified, nm),
	}
}

// xcacheMark stands for the X-Cache line while a head is rendered.
const xcacheMark = "X-Cache: \x00\r\n"

func headOf(status int, h http.Header) fastHead {
	h["X-Cache"] = []string{"\x00"}
	delete(h, "Age")
	delete(h, "X-Request-Id")
	delete(h, "Date")
	b := appendHeaderLines(appendStatusLine(nil, status), h)
	at := bytes.Index(b, []byte(xcacheMark))
	return fastHead{b: append(b[:at:at], b[at+len(xcacheMark):]...), at: at}
}

func appendStatusLine(b []byte, status int) []byte {
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, ' ')
	b = append(b, http.StatusText(status)...)
	return append(b, "\r\n"...)
}

// headerValueCleaner is net/http's: a newline in a value becomes a space.
var headerValueCleaner = strings.NewReplacer("\n", " ", "\r", " ")

// appendHeaderLines appends h's fields sorted by name, as net/http writes
// them: invalid names are dropped, values trimmed and freed of newlines.
func appendHeaderLines(b []byte, h http.Header) []byte {
	names := make([]string, 0, len(h))
	for name := range h {
		if validFieldName(name) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		for _, v := range h[name] {
			b = append(b, name...)
			b = append(b, ": "...)
			b = append(b, strings.TrimSpace(headerValueCleaner.Replace(v))...)
			b = append(b, "\r\n"...)
		}
	}
	return b
}

func validFieldName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tokenByte(s[i]) {
			return false
		}
	}
	return true
}

// tokenByte reports whether b may appear in an RFC 9110 token.
func tokenByte(b byte) bool {
	if 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' {
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", b) >= 0
}
