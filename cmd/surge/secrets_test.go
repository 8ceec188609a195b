package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestPprofKeepsSecrets: the operations listener serves no profiles
// unless --pprof asks for them; then they need the admin token, and
// /debug/pprof/cmdline shows the command line with its secrets redacted.
func TestPprofKeepsSecrets(t *testing.T) {
	s := startShop(t)
	for _, p := range []string{"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/profile?seconds=1"} {
		if r := do(t, "GET", s.AdminURL+p, s.Token, ""); r.Status != 404 {
			t.Errorf("without --pprof, GET %s = %d, want 404", p, r.Status)
		}
	}

	s = startShop(t, "--pprof", "--smtp-password", "smtp-secret-pw")
	if r := do(t, "GET", s.AdminURL+"/debug/pprof/cmdline", "", ""); r.Status != 401 {
		t.Errorf("pprof without the admin token: %d, want 401", r.Status)
	}
	r := do(t, "GET", s.AdminURL+"/debug/pprof/cmdline", s.Token, "")
	if r.Status != 200 {
		t.Fatalf("pprof with the admin token: %d", r.Status)
	}
	for _, secret := range []string{testToken, "smtp-secret-pw"} {
		if strings.Contains(r.Body, secret) {
			t.Errorf("/debug/pprof/cmdline shows a secret: %q", r.Body)
		}
	}
	if !strings.Contains(r.Body, "--admin-token=[redacted]") || !strings.Contains(r.Body, "--pprof=true") {
		t.Errorf("/debug/pprof/cmdline = %q, want the flags with secrets redacted", r.Body)
	}
	if r := do(t, "GET", s.AdminURL+"/debug/pprof/", s.Token, ""); r.Status != 200 || !strings.Contains(r.Body, "goroutine") {
		t.Errorf("pprof index with the token: %d", r.Status)
	}
}

func TestRedactedCmdline(t *testing.T) {
	cmd := newServeCmd(func(string) string { return "" }, io.Discard, io.Discard)
	root := &cobra.Command{Use: "surge"}
	root.AddCommand(cmd)
	if err := cmd.Flags().Parse([]string{"--admin-token", "tok-0123456789abcdef", "--redis-url=redis://:redis-pw@cache:6379/0",
		"--db-url", "postgres://surge:db-pw@db/surge", "--db-replica-url", "postgres://surge:r1-pw@r1/surge,postgres://surge:r2-pw@r2/surge",
		"--waitroom-keys", "k1:c2VjcmV0", "--smtp-password", "mail-pw", "--shop-name", "Corner Shop"}); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(redactedCmdline(cmd), " ")
	for _, secret := range []string{"tok-0123456789abcdef", "redis-pw", "db-pw", "r1-pw", "r2-pw", "c2VjcmV0", "mail-pw"} {
		if strings.Contains(got, secret) {
			t.Errorf("redacted command line shows %q: %s", secret, got)
		}
	}
	for _, want := range []string{"surge serve", "--shop-name=Corner Shop", "--redis-url=redis://:xxxxx@cache:6379/0", "@r2/surge"} {
		if !strings.Contains(got, want) {
			t.Errorf("redacted command line lacks %q: %s", want, got)
		}
	}
}

// TestAdminTokenFile: --admin-token-file gives the token without putting
// it on the command line; giving both, or a short token, is refused.
func TestAdminTokenFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "token")
	const token = "token-from-a-file-0123456789"
	if err := os.WriteFile(file, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServe(t, "--data-dir", t.TempDir(), "--admin-token-file", file)
	if r := do(t, "GET", s.URL+"/api/v1/admin/products?limit=1", token, ""); r.Status != 200 {
		t.Errorf("admin API with the token from the file: %d %s", r.Status, r.Body)
	}
	if r := do(t, "GET", s.URL+"/api/v1/admin/products?limit=1", "", ""); r.Status != 401 {
		t.Errorf("admin API without a token: %d", r.Status)
	}

	short := filepath.Join(t.TempDir(), "short")
	if err := os.WriteFile(short, []byte("abc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"serve", "--admin-token", token, "--admin-token-file", file},
		{"serve", "--admin-token-file", short},
		{"serve", "--admin-token-file", filepath.Join(t.TempDir(), "missing")},
	} {
		err := run(context.Background(), append(args, "--data-dir", t.TempDir()), func(string) string { return "" }, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "admin-token") {
			t.Errorf("run %v: %v, want an error about the admin token", args, err)
		}
	}
}

// TestDemoAdminTokenKept: a demo shop without a token makes one, keeps it
// in its data dir (owner-only) and uses the same one after a restart.
func TestDemoAdminTokenKept(t *testing.T) {
	dir := t.TempDir()
	first := startServe(t, "--data-dir", dir)
	if len(first.Token) < 16 {
		t.Fatalf("the demo printed no admin token (%q)", first.Token)
	}
	if r := do(t, "GET", first.URL+"/api/v1/admin/products?limit=1", first.Token, ""); r.Status != 200 {
		t.Fatalf("admin API with the printed token: %d", r.Status)
	}
	fi, err := os.Stat(filepath.Join(dir, "admin-token"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("kept token file: %v, %v; want mode 0600", fi, err)
	}
	first.stop()
	<-first.done
	first.done <- nil // for the cleanup's wait

	second := startServe(t, "--data-dir", dir)
	if second.Token != first.Token {
		t.Errorf("after a restart the demo token is %q, was %q", second.Token, first.Token)
	}
	if r := do(t, "GET", second.URL+"/api/v1/admin/products?limit=1", first.Token, ""); r.Status != 200 {
		t.Errorf("the first token after a restart: %d", r.Status)
	}
}
