// Package enginetest hands tests their own slice of the real engines that
// scripts/services starts: a fresh PostgreSQL database (on the primary and
// its streaming replica), a Redis key prefix, the NATS cluster's URLs and
// the HAProxy binary. Each helper reads a SURGE_TEST_* variable and skips
// the test when it is unset, so `go test` alone still passes; scripts/test
// starts the engines and sets the variables.
//
// Everything a helper creates is removed by t.Cleanup, so tests can run in
// parallel and in many packages at once against the same engines.
package enginetest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

// setupTimeout bounds each helper's own work, so a wedged engine fails the
// test with a message instead of hanging it until the go test timeout.
const setupTimeout = time.Minute

// uniqueName returns a lowercase name no other test will pick; it is safe
// in SQL identifiers and Redis key patterns without quoting.
func uniqueName() string {
	return "t" + strings.ToLower(rand.Text()[:15])
}

// Postgres creates a fresh database on the test PostgreSQL primary and
// returns URLs to it on the primary and on the streaming replica. The
// replica URL is "" when SURGE_TEST_POSTGRES_REPLICA is unset; when it is
// set, Postgres returns only once the database is visible there, so a test
// can connect to both at once. The database is dropped at cleanup, with any
// connections the test left open.
func Postgres(tb testing.TB) (primary, replica string) {
	tb.Helper()
	base := os.Getenv("SURGE_TEST_POSTGRES")
	if base == "" {
		tb.Skip("SURGE_TEST_POSTGRES not set; run the tests through scripts/test (or scripts/services start) to test against PostgreSQL")
	}
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()

	name := uniqueName()
	primary, err := withDatabase(base, name)
	if err != nil {
		tb.Fatalf("enginetest: SURGE_TEST_POSTGRES: %v", err)
	}
	if err := execOn(ctx, base, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		tb.Fatalf("enginetest: create database %s: %v", name, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
		defer cancel()
		// FORCE ends the connections a test's pool still holds; without it
		// the drop fails and the database leaks into the next run.
		if err := execOn(ctx, base, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			tb.Errorf("enginetest: drop database %s: %v", name, err)
		}
	})

	replicaBase := os.Getenv("SURGE_TEST_POSTGRES_REPLICA")
	if replicaBase == "" {
		return primary, ""
	}
	replica, err = withDatabase(replicaBase, name)
	if err != nil {
		tb.Fatalf("enginetest: SURGE_TEST_POSTGRES_REPLICA: %v", err)
	}
	if err := waitConnect(ctx, replica); err != nil {
		tb.Fatalf("enginetest: database %s never reached the replica: %v", name, err)
	}
	return primary, replica
}

// withDatabase returns the PostgreSQL URL raw pointing at database name.
func withDatabase(raw, name string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("parse %q: %w", raw, err)
	}
	u.Path = "/" + name
	return u.String(), nil
}

// execOn runs one statement on its own connection: CREATE and DROP DATABASE
// cannot run inside the transaction a pool might wrap them in.
func execOn(ctx context.Context, dsn, sql string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("exec: %w", err)
	}
	return nil
}

// waitConnect polls until dsn accepts a connection: a new database exists
// on a replica only once the replica has replayed its creation.
func waitConnect(ctx context.Context, dsn string) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		conn, err := pgx.Connect(ctx, dsn)
		if err == nil {
			return conn.Close(context.Background())
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
		case <-tick.C:
		}
	}
}

// Redis returns the test Redis URL and a key prefix of the test's own, such
// as "tq3x7...:". The test must put every key it writes under the prefix:
// cleanup deletes the keys that match it and nothing else, since other
// packages share the same Redis.
func Redis(tb testing.TB) (url, prefix string) {
	tb.Helper()
	url = os.Getenv("SURGE_TEST_REDIS")
	if url == "" {
		tb.Skip("SURGE_TEST_REDIS not set; run the tests through scripts/test (or scripts/services start) to test against Redis")
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		tb.Fatalf("enginetest: SURGE_TEST_REDIS: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	rdb := redis.NewClient(opts)
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		tb.Fatalf("enginetest: redis at %s: %v", url, err)
	}
	prefix = uniqueName() + ":"
	tb.Cleanup(func() {
		defer rdb.Close()
		ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
		defer cancel()
		if err := deleteKeys(ctx, rdb, prefix); err != nil {
			tb.Errorf("enginetest: delete redis keys %s*: %v", prefix, err)
		}
	})
	return url, prefix
}

// deleteKeys removes every key under prefix. SCAN rather than KEYS keeps a
// shared Redis responsive while other tests use it.
func deleteKeys(ctx context.Context, rdb *redis.Client, prefix string) error {
	iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var batch []string
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == 1000 {
			if err := rdb.Unlink(ctx, batch...).Err(); err != nil {
				return fmt.Errorf("unlink: %w", err)
			}
			batch = batch[:0]
		}
	}
	if err := iter.Err(); err != nil {
		return fmt.Errorf("scan: %w", err)
	}
	if len(batch) > 0 {
		if err := rdb.Unlink(ctx, batch...).Err(); err != nil {
			return fmt.Errorf("unlink: %w", err)
		}
	}
	return nil
}

// HAProxy returns the haproxy binary to run: $SURGE_TEST_HAPROXY, else
// haproxy on the PATH or in /usr/sbin (Debian's package puts it there,
// outside a normal user's PATH). It skips the test when there is none.
func HAProxy(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv("SURGE_TEST_HAPROXY"); p != "" {
		if _, err := os.Stat(p); err != nil {
			tb.Skipf("SURGE_TEST_HAPROXY=%s: %v", p, err)
		}
		return p
	}
	if p, err := exec.LookPath("haproxy"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/haproxy"); err == nil {
		return "/usr/sbin/haproxy"
	} else if !errors.Is(err, os.ErrNotExist) {
		tb.Fatalf("enginetest: /usr/sbin/haproxy: %v", err)
	}
	tb.Skip("no haproxy; run the tests through scripts/test (or scripts/services start, which installs it)")
	return ""
}
