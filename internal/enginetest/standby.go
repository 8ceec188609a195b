package enginetest

import (
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// Standby is a streaming replica of the test PostgreSQL primary that
// belongs to one test, which may kill it: the shared replica of
// scripts/services serves every other test at the same time.
type Standby struct {
	// URL reaches the test's database on the standby.
	URL string
	bin string
	dir string // the standby's data directory
	log string
	as  *syscall.Credential
}

// PostgresStandby starts a streaming replica of the test primary, made
// with pg_basebackup as scripts/services makes the shared one, and
// returns it once the database primaryURL names (from Postgres) can be
// read on it. It is stopped and removed at cleanup. It skips the test
// without the engines or the PostgreSQL binaries.
func PostgresStandby(tb testing.TB, primaryURL string) *Standby {
	tb.Helper()
	if os.Getenv("SURGE_TEST_POSTGRES") == "" {
		tb.Skip("SURGE_TEST_POSTGRES not set; run the tests through scripts/test (or scripts/services start) to test against PostgreSQL")
	}
	bin := postgresBin()
	if bin == "" {
		tb.Skip("no PostgreSQL binaries (pg_basebackup, pg_ctl): set SURGE_TEST_POSTGRES_BIN or start the engines with scripts/services")
	}
	primary, err := url.Parse(primaryURL)
	if err != nil {
		tb.Fatalf("enginetest: primary URL: %v", err)
	}
	as, err := postgresUser()
	if err != nil {
		tb.Fatalf("enginetest: %v", err)
	}
	// PostgreSQL refuses to run as root: as root the standby runs as the
	// postgres user, who must own its directory.
	root, err := os.MkdirTemp("", "surge-standby-")
	if err != nil {
		tb.Fatalf("enginetest: %v", err)
	}
	tb.Cleanup(func() { os.RemoveAll(root) })
	if as != nil {
		if err := os.Chown(root, int(as.Uid), int(as.Gid)); err != nil {
			tb.Fatalf("enginetest: %v", err)
		}
	}
	s := &Standby{bin: bin, dir: filepath.Join(root, "data"), log: filepath.Join(root, "standby.log"), as: as}
	port, err := freePort()
	if err != nil {
		tb.Fatalf("enginetest: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	if out, err := s.run(ctx, "pg_basebackup", "-h", primary.Hostname(), "-p", primary.Port(), "-U", primary.User.Username(),
		"-D", s.dir, "-R", "-X", "stream", "--no-sync", "-c", "fast"); err != nil {
		tb.Fatalf("enginetest: pg_basebackup: %v\n%s", err, out)
	}
	conf, err := os.OpenFile(filepath.Join(s.dir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		tb.Fatalf("enginetest: %v", err)
	}
	_, err = fmt.Fprintf(conf, "port = %d\n", port)
	if cerr := conf.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		tb.Fatalf("enginetest: standby config: %v", err)
	}
	if out, err := s.run(ctx, "pg_ctl", "-D", s.dir, "-l", s.log, "-w", "-t", "60", "start"); err != nil {
		tb.Fatalf("enginetest: start standby: %v\n%s\n%s", err, out, tail(s.log))
	}
	tb.Cleanup(func() { s.stop() })

	u := *primary
	u.Host = net.JoinHostPort(primary.Hostname(), strconv.Itoa(port))
	s.URL = u.String()
	if err := waitConnect(ctx, s.URL); err != nil {
		tb.Fatalf("enginetest: standby never served %s: %v\n%s", primary.Path, err, tail(s.log))
	}
	return s
}

// Kill stops the standby at once, as a crash would: PostgreSQL's
// immediate shutdown ends every session without a checkpoint. It returns
// once the server is gone.
func (s *Standby) Kill(tb testing.TB) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	if out, err := s.run(ctx, "pg_ctl", "-D", s.dir, "-m", "immediate", "-w", "-t", "60", "stop"); err != nil {
		tb.Fatalf("enginetest: kill standby: %v\n%s", err, out)
	}
}

func (s *Standby) stop() {
	if _, err := os.Stat(filepath.Join(s.dir, "postmaster.pid")); err != nil {
		return // not running
	}
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	_, _ = s.run(ctx, "pg_ctl", "-D", s.dir, "-m", "immediate", "-w", "-t", "60", "stop")
}

// run runs one of the PostgreSQL programs as the user that owns the
// standby, detached from the test's terminal and output: pg_ctl leaves the
// server running, and it must not hold the test's pipes open.
func (s *Standby) run(ctx context.Context, prog string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(s.bin, prog), args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Credential: s.as}
	cmd.Dir = filepath.Dir(s.dir)
	out, err := os.CreateTemp("", "surge-standby-out-")
	if err != nil {
		return nil, err
	}
	defer os.Remove(out.Name())
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	err = cmd.Run()
	b, _ := os.ReadFile(out.Name())
	return b, err
}

// postgresBin returns the directory of the PostgreSQL programs:
// $SURGE_TEST_POSTGRES_BIN, else the newest version Debian installed.
func postgresBin() string {
	if d := os.Getenv("SURGE_TEST_POSTGRES_BIN"); d != "" {
		return d
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return va - vb
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "pg_ctl")); err == nil {
			return dirs[i]
		}
	}
	return ""
}

// postgresUser returns the credential to run PostgreSQL with: nil for a
// normal user, the postgres user (which the Debian package creates) for
// root.
func postgresUser() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, PostgreSQL needs the postgres user: %w", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("postgres user: uid %q gid %q", u.Uid, u.Gid)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// freePort returns a loopback port nothing listens on right now, below
// Linux's ephemeral range (as scripts/services picks them), so that no
// outgoing connection takes it before the server binds it.
func freePort() (int, error) {
	for range 100 {
		p := 10000 + mrand.IntN(22000)
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err == nil {
			ln.Close()
			return p, nil
		}
	}
	return 0, errors.New("no free port on 127.0.0.1")
}

// tail returns the last lines of a log file, for failure messages.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-20):], "\n")
}
