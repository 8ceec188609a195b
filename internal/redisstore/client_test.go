package redisstore_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/surge-commerce/surge/internal/admission"
	"github.com/surge-commerce/surge/internal/redisstore"
	"github.com/surge-commerce/surge/internal/session"
)

func TestNewRejectsBadConfig(t *testing.T) {
	for _, cfg := range []redisstore.Config{
		{},
		{URL: "http://127.0.0.1:6379"},
		{URL: "redis://127.0.0.1:6379/0", Prefix: "shop{1}:"},
		{URL: "redis://127.0.0.1:6379/0", Timeout: -time.Second},
	} {
		if c, err := redisstore.New(cfg); err == nil {
			c.Close()
			t.Errorf("New(%+v): no error", cfg)
		}
	}
}

func TestPing(t *testing.T) {
	if err := newClient(t).Ping(context.Background()); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

// TestFailFast points every adapter at a Redis that is not there, and at
// one that accepts connections but never answers: each call must give up
// within a few timeouts, so the server can keep serving cached pages.
func TestFailFast(t *testing.T) {
	closed := func(t *testing.T) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		return addr
	}
	silent := func(t *testing.T) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				t.Cleanup(func() { c.Close() })
			}
		}()
		return ln.Addr().String()
	}
	const timeout = 200 * time.Millisecond
	for name, addr := range map[string]func(*testing.T) string{"closed port": closed, "silent server": silent} {
		t.Run(name, func(t *testing.T) {
			c := mustClient(t, redisstore.Config{URL: "redis://" + addr(t) + "/0", Prefix: "p:", Timeout: timeout})
			ctx := context.Background()
			now := time.Now()
			calls := map[string]func() error{
				"Ping": func() error { return c.Ping(ctx) },
				"Ledger.Join": func() error {
					_, _, err := redisstore.NewLedger(c).Join(ctx, "d", "v", now)
					return err
				},
				"Sessions.Session": func() error {
					_, err := redisstore.NewSessions(c, nil).Session(ctx, "id")
					return err
				},
				"Sessions.CreateSession": func() error {
					return redisstore.NewSessions(c, nil).CreateSession(ctx, session.Session{ID: "id", ExpiresAt: now.Add(time.Hour)})
				},
				"Cache.Get": func() error {
					_, _, err := redisstore.NewCache(c).Get(ctx, "k")
					return err
				},
				"RateLimiter.Allow": func() error {
					_, _, err := redisstore.NewRateLimiter(c, "api", admission.Rate{PerSecond: 1, Burst: 1}, nil).Allow(ctx, "k")
					return err
				},
				"Purger.Publish": func() error { return redisstore.NewPurger(c).Publish(ctx, "t") },
			}
			for call, run := range calls {
				start := time.Now()
				err := run()
				took := time.Since(start)
				if err == nil {
					t.Errorf("%s: no error", call)
				}
				// Dialing and the handshake each get a timeout; nothing more.
				if took > 3*timeout {
					t.Errorf("%s took %v; want an error within %v", call, took, 3*timeout)
				}
			}
		})
	}
}
