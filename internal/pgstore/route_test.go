package pgstore

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/surge-commerce/surge/internal/enginetest"
)

// routedStore is a store whose pools never connect (pgxpool dials
// lazily), with replicas a and b, for testing where reads go.
func routedStore(t *testing.T) *Store {
	t.Helper()
	pool := func() *pgxpool.Pool {
		p, err := pgxpool.New(context.Background(), "postgres://nobody@127.0.0.1:1/none")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		return p
	}
	rs := []*replica{newReplica("a", pool()), newReplica("b", pool())}
	return &Store{primary: pool(), replicas: rs, maxLag: 5 * time.Second, metrics: newMetrics(rs)}
}

func TestReadRouting(t *testing.T) {
	unknown := time.Duration(math.MaxInt64)
	tests := []struct {
		name   string
		a, b   replicaState
		minLSN LSN
		want   []string // acceptable targets
	}{
		{"both fresh", replicaState{true, 0, 100}, replicaState{true, 0, 100}, 0, []string{"a", "b"}},
		{"one down", replicaState{false, unknown, 0}, replicaState{true, time.Second, 100}, 0, []string{"b"}},
		{"one lagging", replicaState{true, 6 * time.Second, 100}, replicaState{true, 5 * time.Second, 90}, 0, []string{"b"}},
		{"lag unknown", replicaState{true, unknown, 100}, replicaState{false, unknown, 0}, 0, []string{"primary"}},
		{"all down", replicaState{false, unknown, 0}, replicaState{false, unknown, 0}, 0, []string{"primary"}},
		{"all lagging", replicaState{true, time.Minute, 100}, replicaState{true, 10 * time.Second, 100}, 0, []string{"primary"}},
		{"one past the reader's writes", replicaState{true, 0, 149}, replicaState{true, 0, 200}, 150, []string{"b"}},
		{"exactly at the reader's writes", replicaState{true, 0, 150}, replicaState{true, 0, 149}, 150, []string{"a"}},
		{"none past the reader's writes", replicaState{true, 0, 100}, replicaState{true, 0, 200}, 300, []string{"primary"}},
	}
	for _, tt := range tests {
		s := routedStore(t)
		s.replicas[0].state.Store(&tt.a)
		s.replicas[1].state.Store(&tt.b)
		ctx := context.Background()
		if tt.minLSN > 0 {
			ctx = WithMinLSN(ctx, tt.minLSN)
		}
		seen := map[string]bool{}
		for range 10 { // round robin: every acceptable target in turn
			switch s.replicaFor(ctx) {
			case nil:
				seen["primary"] = true
			case s.replicas[0]:
				seen["a"] = true
			case s.replicas[1]:
				seen["b"] = true
			}
		}
		if len(seen) != len(tt.want) {
			t.Errorf("%s: reads went to %v, want %v", tt.name, seen, tt.want)
		}
		for _, w := range tt.want {
			if !seen[w] {
				t.Errorf("%s: reads went to %v, want %v", tt.name, seen, tt.want)
			}
		}
	}
}

func TestLSNContext(t *testing.T) {
	ctx := context.Background()
	if _, ok := LSNFromContext(ctx); ok {
		t.Fatal("LSN in an empty context")
	}
	ctx = WithMinLSN(ctx, 500)
	if lsn, ok := LSNFromContext(WithMinLSN(ctx, 400)); !ok || lsn != 500 {
		t.Errorf("a smaller minimum lowered it: %v", lsn)
	}
	ctx, rec := RecordWrites(ctx)
	if again, rec2 := RecordWrites(ctx); again != ctx || rec2 != rec {
		t.Error("RecordWrites on a recording context made a second record")
	}
	rec.note(450)
	if lsn, _ := LSNFromContext(ctx); lsn != 500 {
		t.Errorf("LSN = %v, want the cookie's 500 over an older write", lsn)
	}
	rec.note(700)
	rec.note(600) // writes may finish out of order
	if lsn, _ := LSNFromContext(ctx); lsn != 700 || rec.LSN() != 700 {
		t.Errorf("LSN = %v (record %v), want the last write's 700", lsn, rec.LSN())
	}
}

func TestParseLSN(t *testing.T) {
	for _, s := range []string{"0/0", "16/B374D848", "FFFFFFFF/FFFFFFFF", "0/1"} {
		l, err := ParseLSN(s)
		if err != nil || l.String() != s {
			t.Errorf("ParseLSN(%q) = %v (%v), which prints as %q", s, l, err, l.String())
		}
	}
	if l, _ := ParseLSN("1/0"); l != 1<<32 {
		t.Errorf("ParseLSN(1/0) = %d", l)
	}
	for _, s := range []string{"", "16", "16/", "/1", "G/1", "1/1/1", "100000000/0"} {
		if _, err := ParseLSN(s); err == nil {
			t.Errorf("ParseLSN(%q) succeeded", s)
		}
	}
}

// TestConnectionLost tells real connection failures, which send a replica
// read to the primary, from errors the server answers with, which would
// fail there too, and from the caller giving up.
func TestConnectionLost(t *testing.T) {
	primary, _ := enginetest.Postgres(t)
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, primary)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())

	_, refused := pgx.Connect(ctx, "postgres://nobody@127.0.0.1:1/none?connect_timeout=2")
	_, syntax := conn.Exec(ctx, `SELEC 1`)
	_, missing := conn.Exec(ctx, `SELECT * FROM no_such_table`)
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, gaveUp := conn.Exec(cancelled, `SELECT 1`)

	// A server shutting down ends its sessions with 57P01, as a
	// terminated backend does.
	killer, err := pgx.Connect(ctx, primary)
	if err != nil {
		t.Fatal(err)
	}
	defer killer.Close(context.Background())
	victim, err := pgx.Connect(ctx, primary)
	if err != nil {
		t.Fatal(err)
	}
	var pid uint32
	if err := victim.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	if _, err := killer.Exec(ctx, `SELECT pg_terminate_backend($1)`, pid); err != nil {
		t.Fatal(err)
	}
	_, terminated := victim.Exec(ctx, `SELECT 1`)
	_, closed := victim.Exec(ctx, `SELECT 1`)

	for _, tt := range []struct {
		name string
		err  error
		want bool
	}{
		{"connection refused", refused, true},
		{"session terminated", terminated, true},
		{"connection already closed", closed, true},
		{"syntax error", syntax, false},
		{"missing table", missing, false},
		{"caller cancelled", gaveUp, false},
		{"no error", nil, false},
	} {
		if tt.want && tt.err == nil {
			t.Errorf("%s: no error to classify", tt.name)
			continue
		}
		err := tt.err
		if err != nil {
			err = fmt.Errorf("wrapped: %w", err)
		}
		if got := connectionLost(err); got != tt.want {
			t.Errorf("%s (%v): connectionLost = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
}
