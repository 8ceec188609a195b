// Package cdnpurge sends the shop's cache purges to the CDN caches in front
// of it (Varnish with the xkey vmod, see deploy/varnish/default.vcl), so a
// page a CDN stored changes as soon as the product on it does.
//
// The shop already knows which surrogate keys (tags) a change touches: it
// purges them from its own page cache. A Client sends the same tags to
// every configured CDN instance:
//
//	PURGE <url>   Surrogate-Key: product:12 category:3 home
//	BAN   <url>   (everything: the shop purged its whole cache)
//
// Purges never block or fail the admin write that caused them. Purge and
// PurgeAll only record what to send and return; one background loop sends
// it, with a timeout per request, a bounded number of requests in flight,
// retries with backoff, and a metric and a log line for each purge that
// still failed. While a round of requests is out, new purges accumulate and
// are merged into the next round, so a burst of admin writes costs one
// request per instance, not one per write; if too many tags accumulate, the
// next round purges everything instead, which is always safe.
//
// A purge that fails leaves the CDN's copy until its TTL (Surge's
// Surrogate-Control max-age) runs out.
package cdnpurge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Config says where purges go and how hard to try.
type Config struct {
	// URLs are the purge endpoints, one per CDN instance, such as
	// http://varnish:8080/ (each instance of a cluster must be named:
	// purges do not propagate between Varnish servers).
	URLs []string
	// Timeout bounds each request (default 2s).
	Timeout time.Duration
	// Attempts is how many times a purge is sent to an instance before it
	// is counted failed (default 3).
	Attempts int
	// Backoff is the wait before the first retry; it doubles for each
	// further one (default 200ms).
	Backoff time.Duration
	// Concurrency bounds the requests in flight across all instances
	// (default 4).
	Concurrency int
	// MaxPendingTags bounds the tags waiting to be sent; beyond it the
	// next round purges everything (default 1000).
	MaxPendingTags int
	// Client sends the requests (default: a client with no redirects).
	Client *http.Client
	// Logger receives a line per failed purge (default: discard).
	Logger *slog.Logger
}

// maxHeaderBytes keeps each Surrogate-Key request header well under
// Varnish's default limit for one header line (http_req_hdr_len, 8 KiB);
// longer tag lists go in several requests.
const maxHeaderBytes = 4096

// Client sends purges to the CDN. It is safe for concurrent use.
type Client struct {
	urls    []*url.URL
	cfg     Config
	client  *http.Client
	log     *slog.Logger
	metrics metrics

	mu      sync.Mutex
	tags    map[string]struct{} // waiting to be sent
	all     bool                // a purge of everything is waiting
	queued  uint64              // purges recorded so far
	sent    uint64              // purges whose round has finished
	changed chan struct{}       // closed and replaced when sent moves or work arrives
	closed  bool

	wake   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
}

type metrics struct {
	purges   *prometheus.CounterVec
	retries  prometheus.Counter
	overflow prometheus.Counter
}

// New validates cfg and starts the sending loop; Close stops it.
func New(cfg Config) (*Client, error) {
	if len(cfg.URLs) == 0 {
		return nil, errors.New("cdn purge: no URLs")
	}
	var urls []*url.URL
	for _, raw := range cfg.URLs {
		u, err := url.Parse(strings.TrimSpace(raw))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
			return nil, fmt.Errorf("cdn purge URL %q: want http(s)://host[:port]/path without credentials", raw)
		}
		if u.Path == "" {
			u.Path = "/"
		}
		urls = append(urls, u)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = 3
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 200 * time.Millisecond
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 4
	}
	if cfg.MaxPendingTags <= 0 {
		cfg.MaxPendingTags = 1000
	}
	client := cfg.Client
	if client == nil {
		client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Client{urls: urls, cfg: cfg, client: client, log: log, tags: map[string]struct{}{},
		changed: make(chan struct{}), wake: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{}),
		metrics: metrics{
			purges: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "surge_cdn_purges_total",
				Help: "Purges sent to a CDN instance, by result: ok, or failed after every attempt (the CDN keeps its copy until its TTL)."},
				[]string{"result"}),
			retries: prometheus.NewCounter(prometheus.CounterOpts{Name: "surge_cdn_purge_retries_total",
				Help: "Purge requests to a CDN instance that failed and were tried again."}),
			overflow: prometheus.NewCounter(prometheus.CounterOpts{Name: "surge_cdn_purge_overflows_total",
				Help: "Times so many tags waited to be purged that the CDN was purged entirely instead."}),
		}}
	c.metrics.purges.WithLabelValues("ok")
	c.metrics.purges.WithLabelValues("failed")
	go c.loop(ctx)
	return c, nil
}

// Register adds the client's metrics to reg.
func (c *Client) Register(reg prometheus.Registerer) error {
	for _, col := range []prometheus.Collector{c.metrics.purges, c.metrics.retries, c.metrics.overflow} {
		if err := reg.Register(col); err != nil {
			return fmt.Errorf("register cdn purge metrics: %w", err)
		}
	}
	return nil
}

// Purge schedules the removal of every CDN object tagged with any of tags.
// It never blocks on the network.
func (c *Client) Purge(tags ...string) {
	c.enqueue(false, tags)
}

// PurgeAll schedules the removal of everything the CDN holds from the shop.
func (c *Client) PurgeAll() {
	c.enqueue(true, nil)
}

func (c *Client) enqueue(all bool, tags []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	switch {
	case all || c.all:
		c.all = true
		clear(c.tags)
	default:
		for _, t := range tags {
			if t = strings.TrimSpace(t); t != "" {
				c.tags[t] = struct{}{}
			}
		}
		if len(c.tags) > c.cfg.MaxPendingTags {
			// Sending them all would take many requests and hold memory
			// without bound; everything is a superset of them.
			c.metrics.overflow.Inc()
			c.all = true
			clear(c.tags)
		}
	}
	c.queued++
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Flush waits until every purge scheduled before the call has been sent (or
// has failed for good), or ctx ends.
func (c *Client) Flush(ctx context.Context) error {
	c.mu.Lock()
	target := c.queued
	for c.sent < target && !c.closed {
		ch := c.changed
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		c.mu.Lock()
	}
	c.mu.Unlock()
	return nil
}

// Close sends what is still waiting (for at most the time one round of
// requests may take) and stops the loop.
func (c *Client) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), c.roundLimit())
	defer cancel()
	_ = c.Flush(ctx)
	c.mu.Lock()
	c.closed = true
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
	c.cancel()
	<-c.done
	return nil
}

// roundLimit is the longest one instance's share of a round can take.
func (c *Client) roundLimit() time.Duration {
	d := time.Duration(c.cfg.Attempts) * c.cfg.Timeout
	for i := 1; i < c.cfg.Attempts; i++ {
		d += c.cfg.Backoff << (i - 1)
	}
	return d
}

// take removes the waiting work: a purge of everything, or the tags.
func (c *Client) take() (all bool, tags []string, upTo uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	all, c.all = c.all, false
	for t := range c.tags {
		tags = append(tags, t)
	}
	clear(c.tags)
	slices.Sort(tags)
	return all, tags, c.queued
}

// finished records that every purge up to upTo has been handled.
func (c *Client) finished(upTo uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if upTo > c.sent {
		c.sent = upTo
		close(c.changed)
		c.changed = make(chan struct{})
	}
}

func (c *Client) loop(ctx context.Context) {
	defer close(c.done)
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.wake:
		}
		all, tags, upTo := c.take()
		if all || len(tags) > 0 {
			c.round(ctx, requestsFor(all, tags))
		}
		c.finished(upTo)
	}
}

// purgeRequest is one request to send to every instance.
type purgeRequest struct {
	method string
	keys   string // Surrogate-Key header value; empty for BAN
}

// requestsFor turns waiting work into requests: one BAN, or PURGEs whose
// Surrogate-Key header stays under maxHeaderBytes.
func requestsFor(all bool, tags []string) []purgeRequest {
	if all {
		return []purgeRequest{{method: "BAN"}}
	}
	var reqs []purgeRequest
	var b strings.Builder
	for _, t := range tags {
		if b.Len() > 0 && b.Len()+1+len(t) > maxHeaderBytes {
			reqs = append(reqs, purgeRequest{method: "PURGE", keys: b.String()})
			b.Reset()
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(t)
	}
	if b.Len() > 0 {
		reqs = append(reqs, purgeRequest{method: "PURGE", keys: b.String()})
	}
	return reqs
}

// round sends every request to every instance, at most Concurrency at a
// time, and returns when all are done.
func (c *Client) round(ctx context.Context, reqs []purgeRequest) {
	sem := make(chan struct{}, c.cfg.Concurrency)
	var wg sync.WaitGroup
	for _, u := range c.urls {
		for _, pr := range reqs {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				wg.Wait()
				return
			}
			wg.Go(func() {
				defer func() { <-sem }()
				c.send(ctx, u, pr)
			})
		}
	}
	wg.Wait()
}

// send delivers one request to one instance, retrying failures that may
// pass: network errors, timeouts and 5xx. A 4xx (a refused ACL, a VCL
// without purge support) will not pass by retrying.
func (c *Client) send(ctx context.Context, u *url.URL, pr purgeRequest) {
	var err error
	for attempt := 1; ; attempt++ {
		var retry bool
		retry, err = c.attempt(ctx, u, pr)
		if err == nil {
			c.metrics.purges.WithLabelValues("ok").Inc()
			return
		}
		if !retry || attempt >= c.cfg.Attempts || ctx.Err() != nil {
			break
		}
		c.metrics.retries.Inc()
		t := time.NewTimer(c.cfg.Backoff << (attempt - 1))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	c.metrics.purges.WithLabelValues("failed").Inc()
	c.log.Warn("cdn purge failed; the CDN keeps its copy until it expires",
		"cdn", u.Redacted(), "method", pr.method, "keys", pr.keys, "err", err)
}

func (c *Client) attempt(ctx context.Context, u *url.URL, pr purgeRequest) (retry bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, pr.method, u.String(), nil)
	if err != nil {
		return false, err
	}
	if pr.keys != "" {
		req.Header.Set("Surrogate-Key", pr.keys)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return true, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return false, nil
	case resp.StatusCode >= 500:
		return true, fmt.Errorf("%s %s: %s", pr.method, u.Redacted(), resp.Status)
	default:
		return false, fmt.Errorf("%s %s: %s", pr.method, u.Redacted(), resp.Status)
	}
}
