package storefront

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/http"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	_ "modernc.org/sqlite" // a real database/sql driver's errors
)

// TestStoreConnectionErrorsAre503: a database that cannot be reached is a
// dependency outage, 503 with Retry-After, whichever store's driver
// reports it and however it is wrapped; the server's own answers to a
// query are not.
func TestStoreConnectionErrorsAre503(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	_, refused := pgx.Connect(context.Background(), "postgres://nobody@"+dead+"/none?connect_timeout=2")

	// A server that accepts and hangs up mid-handshake, as one dying does.
	cut, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer cut.Close()
	go func() {
		for {
			c, err := cut.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	_, hungUp := pgx.Connect(context.Background(), "postgres://nobody@"+cut.Addr().String()+"/none?connect_timeout=2")

	db, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, sqliteErr := db.Exec(`SELEC 1`)

	for _, tt := range []struct {
		name string
		err  error
		want int
	}{
		{"connection refused", refused, http.StatusServiceUnavailable},
		{"server hung up", hungUp, http.StatusServiceUnavailable},
		{"server shutting down", &pgconn.PgError{Severity: "FATAL", Code: "57P01", Message: "terminating connection due to administrator command"}, http.StatusServiceUnavailable},
		{"connection exception", &pgconn.PgError{Severity: "FATAL", Code: "08006"}, http.StatusServiceUnavailable},
		{"syntax error", &pgconn.PgError{Severity: "ERROR", Code: "42601"}, http.StatusInternalServerError},
		{"sqlite error", sqliteErr, http.StatusInternalServerError},
		{"plain error", errors.New("boom"), http.StatusInternalServerError},
	} {
		if tt.err == nil {
			t.Errorf("%s: no error to map", tt.name)
			continue
		}
		if got := errorStatus(fmt.Errorf("search products: %w", tt.err)); got != tt.want {
			t.Errorf("%s (%v): %d, want %d", tt.name, tt.err, got, tt.want)
		}
	}
}
