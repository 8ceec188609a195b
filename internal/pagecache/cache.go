// Package pagecache is an in-process full-page HTTP cache used in front of
// anonymous storefront pages and public catalog JSON. During a traffic spike
// almost every request is a hit served from memory; a miss renders the page
// once no matter how many requests are waiting for it.
//
// A handler opts a response in by setting the Surrogate-Key header to the tags
// the page depends on ("product:12 category:3 home"). Writers of catalog data
// call PurgeTags with the same tags, and a CDN in front (Fastly) can purge by
// the same keys because the header is kept on the response.
package pagecache

import (
	"hash/maphash"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults applied by New to zero Config fields.
const (
	// DefaultMaxBytes is the byte bound used when Config.MaxBytes is zero.
	DefaultMaxBytes = 64 << 20
	// DefaultTTL is the fresh period used when Config.TTL is zero.
	DefaultTTL = 60 * time.Second
	// DefaultRenderTimeout is the fill limit used when Config.RenderTimeout is zero.
	DefaultRenderTimeout = 10 * time.Second
)

// shardCount spreads the read path over several locks so hits on different
// pages do not contend on one RWMutex reader count.
const shardCount = 32

// maxAgeTable bounds the precomputed Age header values; entries older than
// this (only possible with a very long TTL) format their Age on the fly.
const maxAgeTable = 4096

// minPruneAt is the smallest record of purged tags worth scanning to prune.
const minPruneAt = 1024

// entryOverhead approximates the memory of an entry beyond its key, body and
// headers (struct, map slot, slice headers), so that many tiny entries still
// count against MaxBytes.
const entryOverhead = 256

// Config configures a Cache. The zero value is usable: see New for defaults.
type Config struct {
	// MaxBytes bounds the total stored key, body and header bytes; least
	// recently used entries are evicted beyond it. An entry larger than
	// MaxBytes/4 is never stored.
	MaxBytes int64
	// TTL is how long a stored response is fresh.
	TTL time.Duration
	// StaleWhileRevalidate is how long after TTL a stale response is still
	// served while one background refresh runs. Zero disables stale serving.
	StaleWhileRevalidate time.Duration
	// RenderTimeout is the longest a fill may take. The fill is detached from
	// the first client's context so that client hanging up does not fail
	// everyone waiting on the same page.
	RenderTimeout time.Duration
	// BrowserMaxAge is the max-age sent to browsers. The default 0 makes
	// browsers revalidate with the ETag, so a purge is visible at once.
	BrowserMaxAge time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives fill failures; nil discards them.
	Logger *slog.Logger
	// Bypass, when set, reports requests that must skip the cache entirely
	// (for example requests carrying a session cookie).
	Bypass func(r *http.Request) bool
}

// Stats is a snapshot of cache counters.
type Stats struct {
	Hits      uint64 // fresh entries served, by the middleware or the fast path
	Fast      uint64 // fresh and stale entries served by the fast path (see FastListener)
	Misses    uint64 // requests that waited for a fill
	Stale     uint64 // stale entries served while a refresh runs
	Bypass    uint64 // requests not eligible for caching (method, Config.Bypass)
	Fills     uint64 // calls of the wrapped handler made by the cache
	Evictions uint64 // entries removed to stay within MaxBytes
	Purged    uint64 // entries removed by PurgeTags and PurgeAll
	Entries   int    // entries currently stored
	Bytes     int64  // bytes currently accounted
}

// Cache is an in-process full-page HTTP cache. It is safe for concurrent use.
type Cache struct {
	maxBytes      int64
	maxEntry      int64
	ttl           time.Duration
	swr           time.Duration
	renderTimeout time.Duration
	now           func() time.Time
	log           *slog.Logger
	bypass        func(*http.Request) bool
	seed          maphash.Seed

	// Header values shared by every stored entry, built once.
	cacheControl     []string
	surrogateControl []string
	ageValues        [][]string

	shards [shardCount]shard

	// mu serialises every change to the stored set: shard maps are only
	// written with mu held, so the LRU list, byte count and tag index always
	// agree with them. Hits never take mu.
	mu        sync.Mutex
	lruHead   *entry // most recently inserted or promoted
	lruTail   *entry
	bytes     int64
	entries   int
	tags      map[string]map[string]struct{} // tag -> keys
	flights   map[string]*flight             // key -> fill in progress
	purgeSeq  uint64                         // incremented by every purge
	allPurged uint64                         // purgeSeq of the last PurgeAll
	// tagPurged records purgeSeq per purged tag while fills are in flight,
	// so a fill that started earlier can tell its result is outdated. It is
	// cleared whenever no fill is in flight, which keeps it small.
	tagPurged map[string]uint64
	pruneAt   int // size of tagPurged that triggers the next prune

	misses   atomic.Uint64
	fastHits atomic.Uint64
	// fastHeadBytes is what a FastListener adds to the rendered heads of an
	// entry beyond its own header fields; zero without one.
	fastHeadBytes atomic.Int64
	bypassed      atomic.Uint64
	fills         atomic.Uint64
	evictions     atomic.Uint64
	purged        atomic.Uint64
	entriesN      atomic.Int64
	bytesN        atomic.Int64
}

// shard holds part of the key -> entry index. Its counters live beside it
// so the hot path touches one cache line region per shard.
type shard struct {
	mu    sync.RWMutex
	m     map[string]*entry
	hits  atomic.Uint64
	stale atomic.Uint64
	_     [64]byte // keep neighbouring shards off the same cache line
}

// New returns a Cache. Zero fields take defaults: MaxBytes 64 MiB, TTL 60s,
// RenderTimeout 10s, BrowserMaxAge 0, StaleWhileRevalidate 0 (disabled).
func New(cfg Config) *Cache {
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.StaleWhileRevalidate < 0 {
		cfg.StaleWhileRevalidate = 0
	}
	if cfg.RenderTimeout <= 0 {
		cfg.RenderTimeout = DefaultRenderTimeout
	}
	if cfg.BrowserMaxAge < 0 {
		cfg.BrowserMaxAge = 0
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	c := &Cache{
		maxBytes:      cfg.MaxBytes,
		maxEntry:      cfg.MaxBytes / 4,
		ttl:           cfg.TTL,
		swr:           cfg.StaleWhileRevalidate,
		renderTimeout: cfg.RenderTimeout,
		now:           cfg.Now,
		log:           cfg.Logger,
		bypass:        cfg.Bypass,
		seed:          maphash.MakeSeed(),
		tags:          make(map[string]map[string]struct{}),
		flights:       make(map[string]*flight),
		tagPurged:     make(map[string]uint64),
		pruneAt:       minPruneAt,
	}
	ttl := seconds(cfg.TTL)
	swr := seconds(cfg.StaleWhileRevalidate)
	c.cacheControl = []string{"public, max-age=" + seconds(cfg.BrowserMaxAge) +
		", s-maxage=" + ttl + ", stale-while-revalidate=" + swr}
	c.surrogateControl = []string{"max-age=" + ttl + ", stale-while-revalidate=" + swr}

	n := int((cfg.TTL+cfg.StaleWhileRevalidate)/time.Second) + 2
	n = min(n, maxAgeTable)
	c.ageValues = make([][]string, n)
	for i := range c.ageValues {
		c.ageValues[i] = []string{strconv.Itoa(i)}
	}
	for i := range c.shards {
		c.shards[i].m = make(map[string]*entry)
	}
	return c
}

func seconds(d time.Duration) string {
	return strconv.FormatInt(int64(d/time.Second), 10)
}

func (c *Cache) shardFor(key string) *shard {
	return &c.shards[maphash.String(c.seed, key)%shardCount]
}

// lookup returns the stored entry for key, or nil.
func (c *Cache) lookup(key string) (*entry, *shard) {
	sh := c.shardFor(key)
	sh.mu.RLock()
	e := sh.m[key]
	sh.mu.RUnlock()
	return e, sh
}

// ageHeader returns the Age header value for an entry stored at stored.
func (c *Cache) ageHeader(now, stored time.Time) []string {
	age := max(int64(now.Sub(stored)/time.Second), 0)
	if age < int64(len(c.ageValues)) {
		return c.ageValues[age]
	}
	return []string{strconv.FormatInt(age, 10)}
}

// storeLocked inserts e unless a purge that happened after its fill started
// (seq) covers any of its tags. It reports whether e was stored.
func (c *Cache) storeLocked(e *entry, seq uint64) bool {
	if e.size > c.maxEntry {
		return false
	}
	if c.allPurged > seq {
		return false
	}
	for _, t := range e.tags {
		if c.tagPurged[t] > seq {
			return false
		}
	}
	sh := c.shardFor(e.key)
	if old := sh.m[e.key]; old != nil {
		c.removeLocked(old)
	}
	sh.mu.Lock()
	sh.m[e.key] = e
	sh.mu.Unlock()
	c.pushFrontLocked(e)
	c.bytes += e.size
	c.entries++
	for _, t := range e.tags {
		keys := c.tags[t]
		if keys == nil {
			keys = make(map[string]struct{})
			c.tags[t] = keys
		}
		keys[e.key] = struct{}{}
	}
	c.evictLocked(e)
	c.publishSizeLocked()
	return true
}

// evictLocked removes entries until the byte bound holds. It approximates
// LRU with a second chance: hits only set an atomic flag instead of moving
// the entry under mu, and eviction moves flagged entries back to the front.
// Expired entries go first regardless of the flag. keep is never evicted.
func (c *Cache) evictLocked(keep *entry) {
	if c.bytes <= c.maxBytes {
		return
	}
	now := c.now()
	for c.bytes > c.maxBytes && c.lruTail != nil && c.lruTail != keep {
		e := c.lruTail
		if e.referenced.Load() && now.Sub(e.stored) < c.ttl+c.swr {
			e.referenced.Store(false)
			c.unlinkLocked(e)
			c.pushFrontLocked(e)
			continue
		}
		c.removeLocked(e)
		c.evictions.Add(1)
	}
}

// removeLocked drops e from the index, LRU list and tag index.
func (c *Cache) removeLocked(e *entry) {
	sh := c.shardFor(e.key)
	sh.mu.Lock()
	if sh.m[e.key] == e {
		delete(sh.m, e.key)
	}
	sh.mu.Unlock()
	c.unlinkLocked(e)
	c.bytes -= e.size
	c.entries--
	for _, t := range e.tags {
		keys := c.tags[t]
		delete(keys, e.key)
		if len(keys) == 0 {
			delete(c.tags, t)
		}
	}
}

func (c *Cache) pushFrontLocked(e *entry) {
	e.prev = nil
	e.next = c.lruHead
	if c.lruHead != nil {
		c.lruHead.prev = e
	}
	c.lruHead = e
	if c.lruTail == nil {
		c.lruTail = e
	}
}

func (c *Cache) unlinkLocked(e *entry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		c.lruHead = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		c.lruTail = e.prev
	}
	e.prev, e.next = nil, nil
}

func (c *Cache) publishSizeLocked() {
	c.entriesN.Store(int64(c.entries))
	c.bytesN.Store(c.bytes)
}

// PurgeTags removes every entry carrying any of tags and returns how many
// were removed. Fills already running for pages with one of these tags will
// deliver their response but not store it, since it may predate the change
// that caused the purge.
func (c *Cache) PurgeTags(tags ...string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.purgeSeq++
	n := 0
	for _, t := range tags {
		if len(c.flights) > 0 {
			c.tagPurged[t] = c.purgeSeq
		}
		for key := range c.tags[t] {
			if e, _ := c.lookup(key); e != nil {
				c.removeLocked(e)
				n++
			}
		}
	}
	c.purged.Add(uint64(n))
	c.publishSizeLocked()
	c.log.Debug("page cache purge", "tags", tags, "entries", n)
	return n
}

// PurgeAll removes every entry and returns how many were removed. Fills in
// flight when it is called do not store their results.
func (c *Cache) PurgeAll() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.purgeSeq++
	c.allPurged = c.purgeSeq
	n := c.entries
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		sh.m = make(map[string]*entry)
		sh.mu.Unlock()
	}
	c.lruHead, c.lruTail = nil, nil
	c.bytes, c.entries = 0, 0
	clear(c.tags)
	c.purged.Add(uint64(n))
	c.publishSizeLocked()
	c.log.Debug("page cache purge all", "entries", n)
	return n
}

// Stats returns a snapshot of the counters.
func (c *Cache) Stats() Stats {
	s := Stats{
		Misses:    c.misses.Load(),
		Fast:      c.fastHits.Load(),
		Bypass:    c.bypassed.Load(),
		Fills:     c.fills.Load(),
		Evictions: c.evictions.Load(),
		Purged:    c.purged.Load(),
		Entries:   int(c.entriesN.Load()),
		Bytes:     c.bytesN.Load(),
	}
	for i := range c.shards {
		s.Hits += c.shards[i].hits.Load()
		s.Stale += c.shards[i].stale.Load()
	}
	return s
}
