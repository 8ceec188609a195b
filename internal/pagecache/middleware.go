package pagecache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// X-Cache values, allocated once and shared by every response.
var (
	xHit    = []string{"HIT"}
	xMiss   = []string{"MISS"}
	xStale  = []string{"STALE"}
	xBypass = []string{"BYPASS"}
)

// refreshBackoff is how long a stale entry whose refresh failed is served
// before another refresh is tried, so a failing backend sees one attempt per
// page per backoff instead of one per request.
const refreshBackoff = time.Second

// Middleware caches GET and HEAD responses of next that opt in with a
// Surrogate-Key header. Other methods pass straight through.
func (c *Cache) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if (r.Method != http.MethodGet && r.Method != http.MethodHead) || (c.bypass != nil && c.bypass(r)) {
			c.bypassed.Add(1)
			w.Header()["X-Cache"] = xBypass
			next.ServeHTTP(w, r)
			return
		}
		var buf [256]byte
		kb := appendKey(buf[:0], r.URL)
		sh := &c.shards[maphash.Bytes(c.seed, kb)%shardCount]
		sh.mu.RLock()
		e := sh.m[string(kb)]
		sh.mu.RUnlock()
		if e != nil {
			now := c.now()
			age := now.Sub(e.stored)
			if age < c.ttl {
				sh.hits.Add(1)
				if !e.referenced.Load() {
					e.referenced.Store(true)
				}
				if r.Pattern != "" && e.route.Load() == nil {
					p := r.Pattern
					e.route.Store(&p)
				}
				c.serveEntry(w, r, e, xHit, now)
				return
			}
			if age < c.ttl+c.swr {
				sh.stale.Add(1)
				if !e.referenced.Load() {
					e.referenced.Store(true)
				}
				c.maybeRefresh(r, e.key, e, now, next)
				c.serveEntry(w, r, e, xStale, now)
				return
			}
		}
		c.misses.Add(1)
		f, hit := c.join(r, string(kb), next)
		if hit != nil {
			c.serveEntry(w, r, hit, xHit, c.now())
			return
		}
		select {
		case <-f.done:
		case <-r.Context().Done():
			// This client is gone; the fill carries on for the others.
			return
		}
		res := f.res
		if res.entry != nil {
			c.serveEntry(w, r, res.entry, xMiss, c.now())
			return
		}
		h := w.Header()
		for name, vals := range res.header {
			h[name] = vals
		}
		h["X-Cache"] = xMiss
		w.WriteHeader(res.status)
		if r.Method != http.MethodHead {
			w.Write(res.body)
		}
	})
}

// serveEntry writes a stored response, or 304 when the client already has it.
func (c *Cache) serveEntry(w http.ResponseWriter, r *http.Request, e *entry, xcache []string, now time.Time) {
	h := w.Header()
	// Preconditions only apply where the unconditional response is 2xx
	// (RFC 9110 13.2.1), so redirects and 404s are always sent in full.
	if inm := r.Header["If-None-Match"]; len(inm) > 0 && e.status == http.StatusOK && matchesNoneMatch(inm, e.etag) {
		for _, f := range e.notModified {
			h[f.name] = f.vals
		}
		h["Age"] = c.ageHeader(now, e.stored)
		h["X-Cache"] = xcache
		w.WriteHeader(http.StatusNotModified)
		return
	}
	for _, f := range e.header {
		h[f.name] = f.vals
	}
	h["Age"] = c.ageHeader(now, e.stored)
	h["X-Cache"] = xcache
	w.WriteHeader(e.status)
	if r.Method != http.MethodHead {
		w.Write(e.body)
	}
}

// appendKey appends the cache key of u to dst: the escaped path plus the
// query with parameters sorted by name (values keep their order). The Host
// is not part of it: the storefront serves one site. The escaped path cannot
// contain '?', so a path never collides with a path plus query.
//
// Building into a caller's buffer lets a hit look the key up without
// allocating; queries that are already canonical are copied as they are.
func appendKey(dst []byte, u *url.URL) []byte {
	dst = append(dst, u.EscapedPath()...)
	if u.RawQuery == "" {
		return dst
	}
	if canonicalQuery(u.RawQuery) {
		dst = append(dst, '?')
		return append(dst, u.RawQuery...)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		// Keep malformed queries distinct rather than merging them.
		dst = append(dst, '?')
		return append(dst, u.RawQuery...)
	}
	if len(q) == 0 {
		return dst
	}
	dst = append(dst, '?')
	return append(dst, q.Encode()...)
}

// cacheKey returns the cache key of u (see appendKey).
func cacheKey(u *url.URL) string {
	var buf [256]byte
	return string(appendKey(buf[:0], u))
}

// canonicalQuery reports whether raw is exactly what url.Values.Encode
// would produce for it: name=value pairs of unreserved characters only,
// names in non-decreasing order.
func canonicalQuery(raw string) bool {
	prev := ""
	for raw != "" {
		part := raw
		if i := strings.IndexByte(raw, '&'); i >= 0 {
			part, raw = raw[:i], raw[i+1:]
			if raw == "" {
				return false // trailing '&'
			}
		} else {
			raw = ""
		}
		eq := strings.IndexByte(part, '=')
		if eq < 0 {
			return false
		}
		name := part[:eq]
		if name < prev {
			return false
		}
		prev = name
		for i := 0; i < len(part); i++ {
			if i != eq && !unreserved(part[i]) {
				return false
			}
		}
	}
	return true
}

func unreserved(b byte) bool {
	return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' ||
		b == '-' || b == '_' || b == '.' || b == '~'
}

// flight is one fill in progress; waiters block on done and then read res.
type flight struct {
	done chan struct{}
	once sync.Once
	res  *result
	seq  uint64 // Cache.purgeSeq when the fill started
}

func (f *flight) finish(res *result) {
	f.once.Do(func() {
		f.res = res
		close(f.done)
	})
}

// result is a rendered response. entry is set when it was cacheable, even if
// it was not stored, so waiters get the same ETag and headers as later hits.
type result struct {
	status int
	header http.Header
	body   []byte
	entry  *entry
}

var timeoutResult = &result{
	status: http.StatusGatewayTimeout,
	header: http.Header{"Content-Type": {"text/plain; charset=utf-8"}},
	body:   []byte("page render timed out\n"),
}

// join returns the fill in progress for key, starting one if there is none.
// If a fill finished and stored key after the caller's lookup, it returns
// that entry instead so the page is not rendered twice.
func (c *Cache) join(r *http.Request, key string, next http.Handler) (*flight, *entry) {
	c.mu.Lock()
	if f := c.flights[key]; f != nil {
		c.mu.Unlock()
		return f, nil
	}
	if e, _ := c.lookup(key); e != nil && c.now().Sub(e.stored) < c.ttl {
		c.mu.Unlock()
		return nil, e
	}
	f := c.startLocked(key)
	c.mu.Unlock()
	req, cancel := c.fillRequest(r)
	go c.fill(f, req, cancel, key, next)
	return f, nil
}

// maybeRefresh starts one background refresh of a stale entry.
func (c *Cache) maybeRefresh(r *http.Request, key string, e *entry, now time.Time, next http.Handler) {
	at := e.nextRefresh.Load()
	if now.UnixNano() < at || !e.nextRefresh.CompareAndSwap(at, now.Add(c.renderTimeout).UnixNano()) {
		return
	}
	c.mu.Lock()
	if c.flights[key] != nil {
		c.mu.Unlock()
		return
	}
	f := c.startLocked(key)
	c.mu.Unlock()
	req, cancel := c.fillRequest(r)
	go func() {
		c.fill(f, req, cancel, key, next)
		// A fill that ran into the render timeout returns as soon as the
		// timeout has started answering the waiters, maybe before it set
		// the result: wait for it.
		<-f.done
		if f.res.entry == nil {
			// Stale-if-error: keep serving e, retry a little later.
			e.nextRefresh.Store(c.now().Add(refreshBackoff).UnixNano())
		}
	}()
}

func (c *Cache) startLocked(key string) *flight {
	f := &flight{done: make(chan struct{}), seq: c.purgeSeq}
	c.flights[key] = f
	return f
}

// endLocked forgets f; later requests start a new fill.
func (c *Cache) endLocked(key string, f *flight) {
	if c.flights[key] == f {
		delete(c.flights, key)
	}
	c.pruneTagPurgedLocked()
}

// pruneTagPurgedLocked forgets purges older than every fill in flight: no
// fill can be affected by them any more. With no fill in flight the record
// is emptied outright; otherwise the scan runs only when the record has
// doubled, keeping its cost amortised under constant fill traffic.
func (c *Cache) pruneTagPurgedLocked() {
	if len(c.flights) == 0 {
		clear(c.tagPurged)
		return
	}
	if len(c.tagPurged) < c.pruneAt {
		return
	}
	oldest := c.purgeSeq
	for _, f := range c.flights {
		oldest = min(oldest, f.seq)
	}
	for t, seq := range c.tagPurged {
		if seq <= oldest {
			delete(c.tagPurged, t)
		}
	}
	c.pruneAt = max(minPruneAt, 2*len(c.tagPurged))
}

// fillRequest copies r for a fill. The copy is made before the client's
// handler returns, and its context is detached from the client
// (context.WithoutCancel) so the first client hanging up does not fail every
// waiter; RenderTimeout bounds it instead.
func (c *Cache) fillRequest(r *http.Request) (*http.Request, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), c.renderTimeout)
	req := r.Clone(ctx)
	// HEAD shares the GET entry, so render the GET.
	req.Method = http.MethodGet
	req.Body = http.NoBody
	req.ContentLength = 0
	return req, cancel
}

// refillOverhead approximates the memory of an entry's refill request.
const refillOverhead = 512

// refillRequest is what the fast path refreshes a stale entry with: the
// fill's request (method, URL, route and path values) without its headers
// and context, so that no visitor's cookie or request is kept with the
// entry. The pages cached are the same for everybody.
func refillRequest(req *http.Request) *http.Request {
	r := req.Clone(context.Background())
	r.Header = http.Header{}
	r.Host, r.RemoteAddr, r.RequestURI = "", "", ""
	return r
}

// fill renders key through next and stores the result if it may be cached.
// If RenderTimeout passes first, waiters get a 504 and the flight is dropped
// so that later requests try again; the late result is then not stored,
// because purges stop tracking a flight once it is dropped.
func (c *Cache) fill(f *flight, req *http.Request, cancel context.CancelFunc, key string, next http.Handler) {
	defer cancel()
	ctx := req.Context()
	stop := context.AfterFunc(ctx, func() {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			c.log.Warn("page render timed out", "key", key, "timeout", c.renderTimeout)
			c.mu.Lock()
			c.endLocked(key, f)
			c.mu.Unlock()
			f.finish(timeoutResult)
		}
	})

	rec := &recorder{header: make(http.Header)}
	c.fills.Add(1)
	c.render(rec, req, next, key)
	if !stop() {
		// The timeout already answered the waiters and dropped the flight.
		return
	}

	status, header, body := rec.result()
	res := &result{status: status, header: header, body: body}
	if tags, ok := cacheable(status, header); ok {
		res.entry = c.newEntry(key, status, header, body, tags, c.now())
		if req.Pattern != "" {
			p := req.Pattern
			res.entry.route.Store(&p)
		}
		res.entry.handler = next
		res.entry.refill = refillRequest(req)
		res.entry.size += refillOverhead
	}
	// Storing and dropping the flight happen under one lock so that a purge
	// cannot slip in between and go unnoticed.
	c.mu.Lock()
	if res.entry != nil {
		c.storeLocked(res.entry, f.seq)
	}
	c.endLocked(key, f)
	c.mu.Unlock()
	f.finish(res)
}

// render calls next, turning a panic into a 500 for the waiters: the fill
// runs on its own goroutine, outside net/http's recovery.
func (c *Cache) render(rec *recorder, req *http.Request, next http.Handler, key string) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				c.log.Warn("page render aborted", "key", key)
			} else {
				c.log.Error("page render panicked", "key", key, "panic", fmt.Sprint(v))
			}
			rec.reset(http.StatusInternalServerError)
		}
	}()
	next.ServeHTTP(rec, req)
}

// recorder captures a fill's response in memory.
type recorder struct {
	header   http.Header
	snapshot http.Header // header as of WriteHeader
	status   int
	body     bytes.Buffer
}

func (rec *recorder) Header() http.Header { return rec.header }

func (rec *recorder) WriteHeader(status int) {
	if rec.status != 0 || status < 200 {
		// Informational responses (103 Early Hints) are not cached.
		return
	}
	rec.status = status
	rec.snapshot = rec.header.Clone()
}

func (rec *recorder) Write(p []byte) (int, error) {
	if rec.status == 0 {
		rec.WriteHeader(http.StatusOK)
	}
	return rec.body.Write(p)
}

// Flush is a no-op so handlers that flush still work; the whole response is
// delivered when the fill ends.
func (rec *recorder) Flush() {}

func (rec *recorder) reset(status int) {
	rec.header = http.Header{"Content-Type": {"text/plain; charset=utf-8"}}
	rec.snapshot = nil
	rec.status = status
	rec.body.Reset()
	rec.body.WriteString(http.StatusText(status) + "\n")
}

func (rec *recorder) result() (int, http.Header, []byte) {
	status, h := rec.status, rec.snapshot
	if status == 0 {
		status = http.StatusOK
	}
	if h == nil {
		h = rec.header
	}
	return status, h, bytes.Clone(rec.body.Bytes())
}

// Warm renders paths through h and stores the cacheable results, so a
// deploy or a purge-all does not send the first wave of a spike to the
// renderer. It returns an error for paths whose response was not stored.
func (c *Cache) Warm(ctx context.Context, h http.Handler, paths ...string) error {
	mw := c.Middleware(h)
	var errs []error
	for _, p := range paths {
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, err)...)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, p, nil)
		if err != nil {
			errs = append(errs, fmt.Errorf("warm %s: %w", p, err))
			continue
		}
		d := &discard{header: make(http.Header)}
		mw.ServeHTTP(d, req)
		if e, _ := c.lookup(cacheKey(req.URL)); e == nil {
			errs = append(errs, fmt.Errorf("warm %s: response not stored (status %d)", p, d.status))
		}
	}
	return errors.Join(errs...)
}

// discard is a ResponseWriter that keeps only the status.
type discard struct {
	header http.Header
	status int
}

func (d *discard) Header() http.Header { return d.header }

func (d *discard) WriteHeader(status int) {
	if d.status == 0 {
		d.status = status
	}
}

func (d *discard) Write(p []byte) (int, error) {
	d.WriteHeader(http.StatusOK)
	return len(p), nil
}

// Has reports whether Middleware would answer r from memory (a fresh or
// stale entry) without calling the handler. Admission control uses it to
// serve cache hits even while shedding. It takes one shard read lock and
// allocates nothing.
func (c *Cache) Has(r *http.Request) bool {
	if (r.Method != http.MethodGet && r.Method != http.MethodHead) || (c.bypass != nil && c.bypass(r)) {
		return false
	}
	var buf [256]byte
	kb := appendKey(buf[:0], r.URL)
	sh := &c.shards[maphash.Bytes(c.seed, kb)%shardCount]
	sh.mu.RLock()
	e := sh.m[string(kb)]
	sh.mu.RUnlock()
	return e != nil && c.now().Sub(e.stored) < c.ttl+c.swr
}
