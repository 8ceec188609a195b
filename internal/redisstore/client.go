// Package redisstore keeps the state that several stateless Surge replicas
// share in Redis: the waiting-room ledger, sessions, cross-replica cache
// purges, a second-level object cache and rate-limit buckets.
//
// Every key lives under the Client's prefix, so several shops (or tests)
// can share one Redis. Keys that one atomic operation touches together
// share a hash tag, so the same layout works on Redis Cluster.
//
// Redis is never on the path that keeps cached pages served: every call
// fails fast (Config.Timeout) when Redis is unreachable, so the caller
// can fall back instead of queueing behind a dead connection.
package redisstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/surge-commerce/surge/internal/telemetry"
)

// DefaultTimeout is Config.Timeout when zero: long enough for a loaded
// Redis on the same network, short enough that a request which finds it
// gone still answers in time.
const DefaultTimeout = 500 * time.Millisecond

// DefaultPoolSize is the connections a Client keeps to Redis unless the
// URL says pool_size.
const DefaultPoolSize = 256

// Config says how to reach Redis.
type Config struct {
	// URL is redis://[user:password@]host:port/db (rediss:// for TLS).
	// Query parameters such as read_timeout take precedence over Timeout.
	URL string
	// Prefix starts every key and channel name, such as "shop1:". It may
	// not contain '{' or '}', which would change the keys' hash tags.
	Prefix string
	// Timeout bounds dialing, each read and each write, and waiting for a
	// pooled connection; 0 means DefaultTimeout.
	Timeout time.Duration
	// Name is sent as CLIENT SETNAME on each connection so an operator can
	// tell replicas apart in CLIENT LIST; optional.
	Name string
	// Logger receives a line when Redis becomes unreachable and one when
	// it answers again (default: discard); never one per failed call.
	Logger *slog.Logger
}

func (c Config) validate() error {
	if c.URL == "" {
		return errors.New("redis URL is empty")
	}
	if strings.ContainsAny(c.Prefix, "{}") {
		return fmt.Errorf("redis key prefix %q: must not contain '{' or '}'", c.Prefix)
	}
	if c.Timeout < 0 {
		return fmt.Errorf("redis timeout %v: must not be negative", c.Timeout)
	}
	if strings.ContainsAny(c.Name, " \n") {
		return fmt.Errorf("redis client name %q: must not contain spaces", c.Name)
	}
	return nil
}

// Client is one connection pool to Redis and the key prefix every adapter
// made from it uses. It is safe for concurrent use.
type Client struct {
	rdb    *redis.Client
	prefix string
}

// New returns a client for cfg. It does not connect: Redis may come up
// after the server does, and Ping reports whether it is there.
func New(cfg Config) (*Client, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	opts, err := redis.ParseURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("parse redis URL: %w", err)
	}
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("parse redis URL: %w", err)
	}
	q := u.Query()
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	for name, d := range map[string]*time.Duration{
		"dial_timeout": &opts.DialTimeout, "read_timeout": &opts.ReadTimeout,
		"write_timeout": &opts.WriteTimeout, "pool_timeout": &opts.PoolTimeout,
	} {
		if !q.Has(name) {
			*d = timeout
		}
	}
	if !q.Has("pool_size") {
		// go-redis's default (ten per CPU) is far too few for a spike:
		// every request in flight may need Redis once (its session), and
		// waiting for a pooled connection is what fails first.
		opts.PoolSize = DefaultPoolSize
	}
	if !q.Has("max_retries") {
		// A retry would double the time a caller waits on a dead Redis,
		// and could apply a write twice.
		opts.MaxRetries = -1
	}
	// go-redis dials up to five times per connection by default, which
	// against an unreachable host multiplies the dial timeout.
	opts.DialerRetries = 1
	if cfg.Name != "" && !q.Has("client_name") {
		opts.ClientName = cfg.Name
	}
	opts.ContextTimeoutEnabled = true
	rdb := redis.NewClient(opts)
	rdb.AddHook(unavailableHook{outage: telemetry.NewOutage(cfg.Logger, "redis")})
	return &Client{rdb: rdb, prefix: cfg.Prefix}, nil
}

// Ping checks that Redis answers, for readiness probes.
func (c *Client) Ping(ctx context.Context) error {
	if err := c.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis ping: %w", err)
	}
	return nil
}

// Close closes the connection pool; adapters made from c stop working.
func (c *Client) Close() error {
	if err := c.rdb.Close(); err != nil {
		return fmt.Errorf("close redis: %w", err)
	}
	return nil
}
