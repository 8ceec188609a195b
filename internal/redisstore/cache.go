package redisstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cache is the second-level cache behind each replica's in-process object
// cache: a catalog read that misses locally may still find what another
// replica loaded, instead of going to the database. Values are opaque
// bytes at <prefix>cache:<key>.
type Cache struct {
	c *Client
}

// NewCache returns the shared cache in c's Redis.
func NewCache(c *Client) *Cache { return &Cache{c: c} }

func (ca *Cache) key(k string) string { return ca.c.prefix + "cache:" + k }

// Get returns key's value and whether there was one.
func (ca *Cache) Get(ctx context.Context, key string) ([]byte, bool, error) {
	b, err := ca.c.rdb.Get(ctx, ca.key(key)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("cache get %q: %w", key, err)
	}
	return b, true, nil
}

// Set stores val under key for ttl. A ttl of 0 keeps it until Delete, or
// until Redis evicts it under its maxmemory policy.
func (ca *Cache) Set(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	if ttl < 0 {
		return fmt.Errorf("cache set %q: negative ttl %v", key, ttl)
	}
	if err := ca.c.rdb.Set(ctx, ca.key(key), val, ttl).Err(); err != nil {
		return fmt.Errorf("cache set %q: %w", key, err)
	}
	return nil
}

// Delete removes keys; missing ones are no error.
func (ca *Cache) Delete(ctx context.Context, keys ...string) error {
	if len(keys) == 0 {
		return nil
	}
	// One UNLINK per key, pipelined: a multi-key UNLINK would fail on
	// Redis Cluster when the keys hash to different slots.
	_, err := ca.c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range keys {
			p.Unlink(ctx, ca.key(k))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("cache delete: %w", err)
	}
	return nil
}
