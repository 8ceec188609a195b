package enginetest

import (
	"context"
	"errors"
	"strconv"
	"testing"

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
