package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/surge-commerce/surge/internal/session"
)

// Sessions is the session.Store every replica shares. A session is a hash
// at <prefix>session:<id> that Redis expires at the session's ExpiresAt,
// so no sweeper is needed.
type Sessions struct {
	c   *Client
	now func() time.Time
}

var _ session.Store = (*Sessions)(nil)

// NewSessions returns the session store in c's Redis. now is the clock a
// session's ExpiresAt is checked against on read (Redis expires keys only
// to the millisecond, by its own clock); nil means time.Now.
func NewSessions(c *Client, now func() time.Time) *Sessions {
	if now == nil {
		now = time.Now
	}
	return &Sessions{c: c, now: now}
}

func (s *Sessions) key(id string) string { return s.c.prefix + "session:" + id }

// createSession refuses to overwrite: a clash of 256-bit IDs means a bug,
// not a session to replace.
var createSession = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'customer', ARGV[1], 'cart', ARGV[2], 'csrf', ARGV[3], 'created', ARGV[4], 'expires', ARGV[5])
redis.call('PEXPIREAT', KEYS[1], ARGV[6])
return 1
`)

// updateSession changes only what UpdateSession may change, and keeps the
// key's expiry.
var updateSession = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'customer', ARGV[1], 'cart', ARGV[2])
return 1
`)

// CreateSession implements session.Store.
func (s *Sessions) CreateSession(ctx context.Context, se session.Session) error {
	// Round the expiry up so Redis never drops a session before ExpiresAt.
	expireMS := (se.ExpiresAt.UnixNano() + int64(time.Millisecond) - 1) / int64(time.Millisecond)
	ok, err := createSession.Run(ctx, s.c.rdb, []string{s.key(se.ID)},
		se.CustomerID, se.CartID, se.CSRF, se.CreatedAt.UnixNano(), se.ExpiresAt.UnixNano(), expireMS).Int()
	if err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	if ok == 0 {
		return errors.New("create session: a session with that ID exists")
	}
	return nil
}

// Session implements session.Store.
func (s *Sessions) Session(ctx context.Context, id string) (session.Session, error) {
	vals, err := s.c.rdb.HMGet(ctx, s.key(id), "customer", "cart", "csrf", "created", "expires").Result()
	if err != nil {
		return session.Session{}, fmt.Errorf("session: %w", err)
	}
	if vals[0] == nil {
		return session.Session{}, session.ErrNotFound
	}
	var nums [3]int64 // customer, created, expires
	for i, v := range []any{vals[0], vals[3], vals[4]} {
		str, _ := v.(string)
		if nums[i], err = strconv.ParseInt(str, 10, 64); err != nil {
			return session.Session{}, fmt.Errorf("session %s: %w", id, err)
		}
	}
	se := session.Session{ID: id, CustomerID: nums[0]}
	se.CartID, _ = vals[1].(string)
	se.CSRF, _ = vals[2].(string)
	se.CreatedAt, se.ExpiresAt = time.Unix(0, nums[1]).UTC(), time.Unix(0, nums[2]).UTC()
	if !se.ExpiresAt.After(s.now()) {
		return session.Session{}, session.ErrNotFound
	}
	return se, nil
}

// UpdateSession implements session.Store: it saves the customer and cart.
func (s *Sessions) UpdateSession(ctx context.Context, se session.Session) error {
	ok, err := updateSession.Run(ctx, s.c.rdb, []string{s.key(se.ID)}, se.CustomerID, se.CartID).Int()
	if err != nil {
		return fmt.Errorf("update session: %w", err)
	}
	if ok == 0 {
		return session.ErrNotFound
	}
	return nil
}

// DeleteSession implements session.Store; deleting a missing session is
// not an error.
func (s *Sessions) DeleteSession(ctx context.Context, id string) error {
	if err := s.c.rdb.Unlink(ctx, s.key(id)).Err(); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}
