package redisstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/surge-commerce/surge/internal/enginetest"
	"github.com/surge-commerce/surge/internal/redisstore"
	"github.com/surge-commerce/surge/internal/session"
)

func TestSessions(t *testing.T) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	clock := now
	s := redisstore.NewSessions(newClient(t), func() time.Time { return clock })

	se := session.Session{ID: session.HashToken("token"), CartID: "cart-1", CSRF: "csrf-1", CreatedAt: now, ExpiresAt: now.Add(time.Hour + 1)}
	if err := s.CreateSession(ctx, se); err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	if err := s.CreateSession(ctx, se); err == nil {
		t.Errorf("CreateSession with an ID in use: no error")
	}
	got, err := s.Session(ctx, se.ID)
	if err != nil || got != se {
		t.Fatalf("Session = %+v, %v; want %+v", got, err, se)
	}

	// Sign-in: the customer and cart change, nothing else does.
	changed := se
	changed.CustomerID, changed.CartID, changed.CSRF = 42, "cart-2", "ignored"
	if err := s.UpdateSession(ctx, changed); err != nil {
		t.Fatalf("UpdateSession: %v", err)
	}
	want := se
	want.CustomerID, want.CartID = 42, "cart-2"
	if got, err := s.Session(ctx, se.ID); err != nil || got != want {
		t.Errorf("after UpdateSession: %+v, %v; want %+v", got, err, want)
	}
	if err := s.UpdateSession(ctx, session.Session{ID: "missing"}); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("UpdateSession of a missing session: %v; want ErrNotFound", err)
	}

	if err := s.DeleteSession(ctx, se.ID); err != nil {
		t.Fatalf("DeleteSession: %v", err)
	}
	if _, err := s.Session(ctx, se.ID); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("Session after DeleteSession: %v; want ErrNotFound", err)
	}
	if err := s.DeleteSession(ctx, se.ID); err != nil {
		t.Errorf("DeleteSession of a missing session: %v; want nil", err)
	}
	if _, err := s.Session(ctx, "never"); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("Session of an unknown ID: %v; want ErrNotFound", err)
	}
}

func TestSessionsExpire(t *testing.T) {
	ctx := context.Background()
	url, prefix := enginetest.Redis(t)
	c := mustClient(t, redisstore.Config{URL: url, Prefix: prefix})
	now := time.Now()
	clock := now
	s := redisstore.NewSessions(c, func() time.Time { return clock })

	live := session.Session{ID: "live", CSRF: "x", CreatedAt: now, ExpiresAt: now.Add(30 * time.Minute)}
	if err := s.CreateSession(ctx, live); err != nil {
		t.Fatal(err)
	}
	// Redis itself forgets the session at ExpiresAt, so none piles up.
	ttl := pttl(t, url, prefix+"session:live")
	if ttl < 29*time.Minute || ttl > 30*time.Minute {
		t.Errorf("key TTL = %v; want the 30 minutes to ExpiresAt", ttl)
	}
	// Redis expires to the millisecond by its own clock; the read checks
	// ExpiresAt exactly against the store's clock.
	clock = live.ExpiresAt
	if _, err := s.Session(ctx, "live"); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("Session at ExpiresAt: %v; want ErrNotFound", err)
	}
	clock = live.ExpiresAt.Add(-time.Nanosecond)
	if _, err := s.Session(ctx, "live"); err != nil {
		t.Errorf("Session a nanosecond before ExpiresAt: %v", err)
	}

	gone := session.Session{ID: "gone", CreatedAt: now.Add(-time.Hour), ExpiresAt: now.Add(-time.Minute)}
	if err := s.CreateSession(ctx, gone); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Session(ctx, "gone"); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("Session created already expired: %v; want ErrNotFound", err)
	}
	if ttl := pttl(t, url, prefix+"session:gone"); ttl != -2*time.Nanosecond {
		t.Errorf("expired session's key TTL = %v; want the key gone", ttl)
	}
}

// pttl returns key's time to live as Redis reports it: -2ns when the key
// does not exist.
func pttl(t *testing.T, url, key string) time.Duration {
	t.Helper()
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	d, err := rdb.PTTL(context.Background(), key).Result()
	if err != nil {
		t.Fatal(err)
	}
	return d
}
