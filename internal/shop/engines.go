package shop

import (
	"context"
	"os"

	"github.com/surge-commerce/surge/internal/redisstore"
)

// openRedis connects the Redis every replica shares, when one is
// configured. It does not fail when Redis is down at start: the shop
// serves what it can without it and readiness says what is missing.
func (s *Shop) openRedis(cfg Config) error {
	if cfg.RedisURL == "" {
		return nil
	}
	host, _ := os.Hostname()
	c, err := redisstore.New(redisstore.Config{URL: cfg.RedisURL, Prefix: cfg.RedisPrefix, Name: "surge-" + host, Logger: s.log})
	if err != nil {
		return err
	}
	s.Redis = c
	s.purger = redisstore.NewPurger(c)
	s.closers = append(s.closers, c.Close)
	return nil
}

// followPurges applies other replicas' purges to this one's caches until
// ctx ends. A nil tag list (a missed message, a reconnect) empties them.
func (s *Shop) followPurges(ctx context.Context) {
	subscribed := false
	s.purger.Subscribe(ctx, func(tags []string) {
		s.Catalog.ForgetCached()
		// The first purge of everything only says the subscription is up:
		// nothing was missed, and a CDN flushed each time a replica
		// starts would send a scale-out's traffic to the origin.
		if subscribed || tags != nil {
			defer s.purgeCDN(tags == nil, tags)
		}
		subscribed = true
		if s.Cache == nil {
			return
		}
		if tags == nil {
			s.Cache.PurgeAll()
			return
		}
		s.Cache.PurgeTags(tags...)
	})
}
