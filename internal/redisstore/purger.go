package redisstore

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultCheckEvery is Purger.CheckEvery when zero.
const DefaultCheckEvery = 5 * time.Second

// Purger spreads cache purges between replicas over Redis pub/sub on the
// channel <prefix>purge. A replica that changes a product purges its own
// caches, then publishes the tags; every other replica's Subscribe hands
// them to its page and object caches.
//
// Pub/sub delivers only to those listening at that moment, so whenever a
// subscription starts (the first time, and after every lost connection)
// Subscribe calls fn(nil), meaning "purge everything": a purge may have
// been missed while nobody was listening.
type Purger struct {
	c       *Client
	id      string
	channel string
	// CheckEvery is how long a quiet subscription waits before pinging
	// Redis to learn whether the connection is still alive; a connection
	// that stays quiet as long again is dropped and made anew. 0 means
	// DefaultCheckEvery. Set it before calling Subscribe.
	CheckEvery time.Duration
}

// purgeMessage is what goes over the channel.
type purgeMessage struct {
	From string   `json:"from"` // the publishing Purger's ID
	Tags []string `json:"tags,omitempty"`
	All  bool     `json:"all,omitempty"`
}

// NewPurger returns a purger with a random replica ID, so it can tell its
// own messages from the others'.
func NewPurger(c *Client) *Purger {
	id := make([]byte, 8)
	crand.Read(id) // never fails; see crypto/rand.Read
	return &Purger{c: c, id: hex.EncodeToString(id), channel: c.prefix + "purge"}
}

// ID is the replica ID that goes with every message this purger sends.
func (p *Purger) ID() string { return p.id }

// Publish tells the other replicas to purge everything tagged with any of
// tags. The caller has purged its own caches already.
func (p *Purger) Publish(ctx context.Context, tags ...string) error {
	if len(tags) == 0 {
		return nil
	}
	return p.publish(ctx, purgeMessage{From: p.id, Tags: tags})
}

// PublishAll tells the other replicas to purge their caches entirely.
func (p *Purger) PublishAll(ctx context.Context) error {
	return p.publish(ctx, purgeMessage{From: p.id, All: true})
}

func (p *Purger) publish(ctx context.Context, m purgeMessage) error {
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("publish purge: %w", err)
	}
	if err := p.c.rdb.Publish(ctx, p.channel, b).Err(); err != nil {
		return fmt.Errorf("publish purge: %w", err)
	}
	return nil
}

// Subscribe calls fn with the tags of every purge another replica
// publishes, and with nil whenever everything must be purged: on
// PublishAll, and each time the subscription (re)starts. It keeps
// reconnecting while Redis is away and returns when ctx is done. fn runs
// on Subscribe's goroutine, one call at a time.
func (p *Purger) Subscribe(ctx context.Context, fn func(tags []string)) {
	const minBackoff, maxBackoff = 50 * time.Millisecond, 5 * time.Second
	backoff := minBackoff
	for ctx.Err() == nil {
		if p.listen(ctx, fn) {
			backoff = minBackoff
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
		backoff = min(2*backoff, maxBackoff)
	}
}

// listen runs one subscription until its connection fails or ctx is done,
// and reports whether it got as far as subscribing.
func (p *Purger) listen(ctx context.Context, fn func(tags []string)) bool {
	checkEvery := p.CheckEvery
	if checkEvery <= 0 {
		checkEvery = DefaultCheckEvery
	}
	ps := p.c.rdb.Subscribe(ctx, p.channel)
	defer ps.Close()
	// A blocked read does not watch ctx; closing the connection ends it.
	stop := context.AfterFunc(ctx, func() { ps.Close() })
	defer stop()
	// Nothing published before Redis confirms the subscription reaches us.
	wait := p.c.rdb.Options().ReadTimeout
	if wait <= 0 {
		wait = DefaultTimeout
	}
	if _, err := ps.ReceiveTimeout(ctx, wait); err != nil {
		return false
	}
	fn(nil)
	pinged := false
	for {
		msg, err := ps.ReceiveTimeout(ctx, checkEvery)
		if err != nil {
			if ctx.Err() != nil || !isTimeout(err) || pinged {
				return true
			}
			// A half-open connection never errors by itself: ask Redis
			// for a reply and give it one more period to arrive.
			if err := ps.Ping(ctx); err != nil {
				return true
			}
			pinged = true
			continue
		}
		pinged = false
		if m, ok := msg.(*redis.Message); ok {
			p.deliver(m.Payload, fn)
		}
	}
}

func (p *Purger) deliver(payload string, fn func(tags []string)) {
	var m purgeMessage
	if err := json.Unmarshal([]byte(payload), &m); err != nil {
		// Something changed and we cannot tell what.
		fn(nil)
		return
	}
	switch {
	case m.From == p.id:
		// Purged locally before publishing.
	case m.All:
		fn(nil)
	case len(m.Tags) > 0:
		fn(m.Tags)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
