package main

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/surge-commerce/surge/internal/enginetest"
)

// startRun runs the surge command args through run, as a user would, and
// returns the operations listener's URL once /readyz answers 200.
func startRun(t *testing.T, args ...string) string {
	t.Helper()
	admin, _ := startRunLogged(t, io.Discard, args...)
	return admin
}

// startRunLogged is startRun with the log going to stderr; it also
// returns the shop's URL (empty for a worker).
func startRunLogged(t *testing.T, stderr io.Writer, args ...string) (admin, shop string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := &lineWriter{lines: make(chan string, 64)}
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, func(string) string { return "" }, out, stderr) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("surge did not stop within 20s")
		}
	})
	for deadline := time.After(60 * time.Second); admin == "" || shop == "" && args[0] != "worker" && !slices.Contains(args, "worker"); {
		select {
		case line := <-out.lines:
			if v, ok := strings.CutPrefix(line, "admin: "); ok {
				admin = v
			}
			if v, ok := strings.CutPrefix(line, "shop: "); ok {
				shop = v
			}
		case err := <-done:
			done <- err // for the cleanup
			t.Fatalf("surge %s exited at start: %v", args[0], err)
		case <-deadline:
			t.Fatalf("surge %s did not print its admin address within 60s", args[0])
		}
	}
	for deadline := time.Now().Add(60 * time.Second); ; {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("surge %s exited at start: %v", args[0], err)
		default:
		}
		resp, err := http.Get(admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return admin, shop
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("surge %s never ready", args[0])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestWorkerStartsWithoutDataDir: on PostgreSQL and an external NATS a
// worker keeps nothing on disk, so a --data-dir that does not exist stops
// nothing, and none is made: a worker has no waiting room, so it needs
// no waiting-room key.
func TestWorkerStartsWithoutDataDir(t *testing.T) {
	primary, _ := enginetest.Postgres(t)
	nats := enginetest.NATS(t)
	dir := filepath.Join(t.TempDir(), "missing")
	startRun(t, "worker", "--db-url", primary, "--nats-url", strings.Join(nats, ","), "--data-dir", dir,
		"--admin-addr", "127.0.0.1:0", "--log-level", "warn")
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the worker made %s (stat: %v); it keeps nothing there", dir, err)
	}
}

// TestServeOnPostgresMakesDataDir: an API replica on PostgreSQL without
// --waitroom-keys keeps a generated key in --data-dir, creating the
// directory when it does not exist yet.
func TestServeOnPostgresMakesDataDir(t *testing.T) {
	primary, _ := enginetest.Postgres(t)
	nats := enginetest.NATS(t)
	dir := filepath.Join(t.TempDir(), "not", "yet")
	startRun(t, "serve", "--role", "api", "--db-url", primary, "--nats-url", strings.Join(nats, ","), "--data-dir", dir,
		"--addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--log-level", "warn")
	if _, err := os.Stat(filepath.Join(dir, "waitroom.keys")); err != nil {
		t.Errorf("no generated waiting-room key: %v", err)
	}
}

// TestWaitroomKeysChecked: --waitroom-keys is refused at start, naming the
// flag, when a secret is shorter than 32 bytes, and required where
// replicas share a waiting room through Redis.
func TestWaitroomKeysChecked(t *testing.T) {
	short := "k1:" + base64.StdEncoding.EncodeToString(make([]byte, 31))
	good := "k1:" + base64.StdEncoding.EncodeToString(make([]byte, 32))
	for _, tt := range []struct {
		args []string
		want string // in the error; "" for none
	}{
		{[]string{"serve", "--waitroom-keys", short}, "32"},
		{[]string{"serve", "--waitroom-keys", "k1"}, "--waitroom-keys"},
		{[]string{"worker", "--waitroom-keys", short}, "32"},
		{[]string{"serve", "--role", "api", "--redis-url", "redis://127.0.0.1:1/0"}, "--waitroom-keys: required with --redis-url"},
	} {
		err := run(context.Background(), append(tt.args, "--admin-addr", "nonsense"), func(string) string { return "" }, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("run %v: err = %v, want one saying %q", tt.args, err, tt.want)
		}
	}
	// The same flags with good keys fail only for the bad operations address.
	for _, args := range [][]string{
		{"serve", "--waitroom-keys", good},
		{"serve", "--role", "api", "--redis-url", "redis://127.0.0.1:1/0", "--waitroom-keys", good},
		{"worker", "--redis-url", "redis://127.0.0.1:1/0"},
	} {
		err := run(context.Background(), append(args, "--admin-addr", "nonsense"), func(string) string { return "" }, io.Discard, io.Discard)
		if err == nil || strings.Contains(err.Error(), "waitroom") {
			t.Errorf("run %v: err = %v, want only the --admin-addr error", args, err)
		}
	}
}
