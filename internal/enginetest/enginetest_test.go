package enginetest

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

func TestPostgresGivesEachTestItsOwnDatabase(t *testing.T) {
	var primary, replica string
	t.Run("use", func(t *testing.T) {
		primary, replica = Postgres(t)
		other, _ := Postgres(t)
		if other == primary {
			t.Fatalf("two calls returned the same database %s", primary)
		}
		ctx := t.Context()
		conn, err := pgx.Connect(ctx, primary)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(ctx, "CREATE TABLE t (v int); INSERT INTO t VALUES (42)"); err != nil {
			t.Fatal(err)
		}
		if replica == "" {
			return
		}
		// Left open on purpose: cleanup must drop the database anyway.
		rconn, err := pgx.Connect(ctx, replica)
		if err != nil {
			t.Fatal(err)
		}
		var inRecovery bool
		if err := rconn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil {
			t.Fatal(err)
		}
		if !inRecovery {
			t.Fatalf("replica URL %s reaches a primary", replica)
		}
	})
	if primary == "" {
		t.Skip("no PostgreSQL")
	}
	ctx := t.Context()
	_, err := pgx.Connect(ctx, primary)
	var pgErr interface{ SQLState() string }
	if !errors.As(err, &pgErr) || pgErr.SQLState() != "3D000" {
		t.Fatalf("database still there after cleanup: connect = %v", err)
	}
}

func TestRedisCleansUpItsPrefix(t *testing.T) {
	var url, prefix string
	t.Run("use", func(t *testing.T) {
		url, prefix = Redis(t)
		_, other := Redis(t)
		if other == prefix {
			t.Fatalf("two calls returned the same prefix %s", prefix)
		}
		opts, err := redis.ParseURL(url)
		if err != nil {
			t.Fatal(err)
		}
		rdb := redis.NewClient(opts)
		defer rdb.Close()
		// More keys than one cleanup batch, so batching is exercised.
		pipe := rdb.Pipeline()
		for i := range 2500 {
			pipe.Set(t.Context(), prefix+strconv.Itoa(i), i, 0)
		}
		if _, err := pipe.Exec(t.Context()); err != nil {
			t.Fatal(err)
		}
	})
	if url == "" {
		t.Skip("no Redis")
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	iter := rdb.Scan(t.Context(), 0, prefix+"*", 1000).Iterator()
	for iter.Next(t.Context()) {
		t.Fatalf("key %s left after cleanup", iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
}

func TestHAProxyIsABinary(t *testing.T) {
	p := HAProxy(t)
	if p == "" {
		t.Fatal("empty path")
	}
}

// TestRestartableRedisKeepsWhatItStored: a Redis run as the harness runs
// it (append-only file, fsync every second) keeps its keys, and their
// expiry, across a restart, as every shipped deployment's does.
func TestRestartableRedisKeepsWhatItStored(t *testing.T) {
	rs := RestartableRedis(t)
	opts, err := redis.ParseURL(rs.URL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	ctx := t.Context()
	if err := rdb.Set(ctx, "session:a", "cart-1", time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.HSet(ctx, "ledger", "joined", 42).Err(); err != nil {
		t.Fatal(err)
	}
	rs.Restart(t)
	if v, err := rdb.Get(ctx, "session:a").Result(); err != nil || v != "cart-1" {
		t.Errorf("session after the restart: %q, %v", v, err)
	}
	if ttl, err := rdb.TTL(ctx, "session:a").Result(); err != nil || ttl <= 0 || ttl > time.Hour {
		t.Errorf("session TTL after the restart: %v, %v", ttl, err)
	}
	if v, err := rdb.HGet(ctx, "ledger", "joined").Result(); err != nil || v != "42" {
		t.Errorf("ledger after the restart: %q, %v", v, err)
	}
}

// TestPostgresStandbyFollowsAndDies: a test's own standby replays what
// the primary commits, and once killed refuses connections.
func TestPostgresStandbyFollowsAndDies(t *testing.T) {
	primary, _ := Postgres(t)
	sb := PostgresStandby(t, primary)
	ctx := t.Context()
	if err := execOn(ctx, primary, "CREATE TABLE t (v int); INSERT INTO t VALUES (7)"); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, sb.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var v int
	for deadline := time.Now().Add(30 * time.Second); ; {
		err := conn.QueryRow(ctx, "SELECT v FROM t").Scan(&v)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the standby never replayed the insert: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	sb.Kill(t)
	if c, err := pgx.Connect(ctx, sb.URL); err == nil {
		c.Close(context.Background())
		t.Fatal("the killed standby still accepts connections")
	}
}
