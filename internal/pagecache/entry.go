package pagecache

import (
	"hash/fnv"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// entry is a stored response. Everything a hit writes is computed once here,
// so serving it is a handful of map assignments and one Write.
type entry struct {
	key    string
	status int
	body   []byte
	etag   string
	tags   []string
	stored time.Time
	size   int64

	header      []headerField // written on full responses
	notModified []headerField // written on 304 responses (RFC 9110 15.4.5)

	// referenced is set by hits and read by eviction (second-chance LRU).
	referenced atomic.Bool
	// nextRefresh (unix nanoseconds) gates background refreshes of a stale
	// entry: only the request that moves it forward starts one.
	nextRefresh atomic.Int64
	// route is the ServeMux pattern the page was rendered for, for the
	// metrics of fast responses; set by the first request that knows it.
	route atomic.Pointer[string]
	// fast holds the response heads the fast path writes, built on its
	// first hit.
	fast atomic.Pointer[fastRendered]
	// handler and refill re-render the entry when the fast path serves it
	// stale: the handler that rendered it and the request it was rendered
	// for, without headers (see refillRequest).
	handler http.Handler
	refill  *http.Request

	prev, next *entry // LRU list, guarded by Cache.mu
}

// headerField is one stored header. vals has len == cap so that a later
// Header.Add on a served response copies instead of writing into the slice
// shared by every response for this entry.
type headerField struct {
	name string
	vals []string
}

// notModifiedHeaders are kept on 304 responses because a 200 would have
// carried them (RFC 9110 15.4.5), plus the CDN directives.
var notModifiedHeaders = map[string]bool{
	"Cache-Control":     true,
	"Content-Location":  true,
	"Etag":              true,
	"Expires":           true,
	"Vary":              true,
	"Surrogate-Control": true,
	"Surrogate-Key":     true,
}

// droppedHeaders are replaced by the cache or are per-response.
var droppedHeaders = map[string]bool{
	"Age":               true,
	"Cache-Control":     true,
	"Connection":        true,
	"Content-Length":    true,
	"Date":              true,
	"Etag":              true,
	"Keep-Alive":        true,
	"Surrogate-Control": true,
	"Trailer":           true,
	"Transfer-Encoding": true,
	"X-Cache":           true,
}

// cacheable reports whether a rendered response may be stored, and its tags.
// Responses with Vary are refused because the key ignores request headers,
// so one variant would be served to everybody.
func cacheable(status int, h http.Header) ([]string, bool) {
	switch status {
	case http.StatusOK, http.StatusMovedPermanently, http.StatusNotFound, http.StatusGone:
	default:
		return nil, false
	}
	if len(h["Set-Cookie"]) > 0 || len(h["Vary"]) > 0 {
		return nil, false
	}
	for _, v := range h["Cache-Control"] {
		v = strings.ToLower(v)
		if strings.Contains(v, "no-store") || strings.Contains(v, "private") {
			return nil, false
		}
	}
	var tags []string
	for _, v := range h["Surrogate-Key"] {
		tags = append(tags, strings.Fields(v)...)
	}
	return tags, len(tags) > 0
}

// newEntry builds a storable entry from a rendered response.
func (c *Cache) newEntry(key string, status int, h http.Header, body []byte, tags []string, now time.Time) *entry {
	e := &entry{
		key:    key,
		status: status,
		body:   body,
		etag:   etagOf(body),
		tags:   tags,
		stored: now,
	}
	size := int64(len(key)+len(body)) + entryOverhead
	add := func(name string, vals []string) {
		f := headerField{name: name, vals: vals[:len(vals):len(vals)]}
		e.header = append(e.header, f)
		if notModifiedHeaders[name] {
			e.notModified = append(e.notModified, f)
		}
		size += int64(len(name))
		for _, v := range vals {
			size += int64(len(v))
		}
	}
	for name, vals := range h {
		if droppedHeaders[name] {
			continue
		}
		add(name, vals)
	}
	// Mirror net/http, which would sniff the type on the first Write; doing
	// it here keeps the sniffing off the hit path.
	if _, ok := h["Content-Type"]; !ok && len(body) > 0 {
		add("Content-Type", []string{http.DetectContentType(body)})
	}
	add("Content-Length", []string{strconv.Itoa(len(body))})
	add("Etag", []string{e.etag})
	add("Cache-Control", c.cacheControl)
	add("Surrogate-Control", c.surrogateControl)
	if extra := c.fastHeadBytes.Load(); extra > 0 {
		// The fast path's two rendered heads (full and 304), each about
		// the header fields again.
		fields := int64(0)
		for _, f := range e.header {
			fields += int64(len(f.name)) + 4
			for _, v := range f.vals {
				fields += int64(len(v))
			}
		}
		size += 2 * (fields + extra)
	}
	e.size = size
	return e
}

// etagOf returns a strong entity tag: the FNV-1a 64 hash of the body.
func etagOf(body []byte) string {
	h := fnv.New64a()
	h.Write(body)
	var b [18]byte
	b[0] = '"'
	const hex = "0123456789abcdef"
	sum := h.Sum64()
	for i := 16; i >= 1; i-- {
		b[i] = hex[sum&0xf]
		sum >>= 4
	}
	b[17] = '"'
	return string(b[:])
}

// matchesNoneMatch reports whether an If-None-Match header list matches etag
// using the weak comparison RFC 9110 13.1.2 requires: a W/ prefix on either
// side is ignored. It does not allocate.
func matchesNoneMatch(values []string, etag string) bool {
	for _, v := range values {
		for v != "" {
			v = strings.TrimLeft(v, " \t,")
			if v == "" {
				break
			}
			if v[0] == '*' {
				return true
			}
			v = strings.TrimPrefix(v, "W/")
			if v == "" || v[0] != '"' {
				// Malformed: skip to the next list element.
				i := strings.IndexByte(v, ',')
				if i < 0 {
					break
				}
				v = v[i+1:]
				continue
			}
			end := strings.IndexByte(v[1:], '"')
			if end < 0 {
				break
			}
			tag := v[:end+2]
			if tag == strings.TrimPrefix(etag, "W/") {
				return true
			}
			v = v[end+2:]
		}
	}
	return false
}
