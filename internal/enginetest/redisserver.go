package enginetest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisServer is a Redis of one test's own, configured as the shared one
// is, which the test may restart: restarting the shared Redis would fail
// every other test using it at the time.
type RedisServer struct {
	// URL reaches the server; it stays the same across restarts.
	URL  string
	bin  string
	conf string
	dir  string
	port int
	cmd  *exec.Cmd
	done chan struct{}
}

// RestartableRedis starts a Redis server from the configuration
// scripts/services runs the shared one with (SURGE_TEST_REDIS_CONF), on a
// port and in a directory of its own, so what it keeps across a restart
// is what the harness's Redis, and every shipped deployment, keeps. It is
// stopped and its files removed at cleanup. It skips the test without the
// engines.
func RestartableRedis(tb testing.TB) *RedisServer {
	tb.Helper()
	conf := os.Getenv("SURGE_TEST_REDIS_CONF")
	if conf == "" {
		tb.Skip("SURGE_TEST_REDIS_CONF not set; start the engines with scripts/services to run Redis servers of a test's own")
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		tb.Skipf("no redis-server: %v", err)
	}
	port, err := freePort()
	if err != nil {
		tb.Fatalf("enginetest: %v", err)
	}
	r := &RedisServer{URL: fmt.Sprintf("redis://127.0.0.1:%d/0", port), bin: bin, conf: conf, dir: tb.TempDir(), port: port}
	tb.Cleanup(func() { r.kill() })
	if err := r.start(); err != nil {
		tb.Fatalf("enginetest: start redis: %v", err)
	}
	return r
}

// Restart stops the server as a restart would (SIGTERM: Redis finishes
// writing what it persists and exits) and starts it again on the same
// port and files, returning once it answers PING with its data loaded.
func (r *RedisServer) Restart(tb testing.TB) {
	tb.Helper()
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		tb.Fatalf("enginetest: stop redis: %v", err)
	}
	select {
	case <-r.done:
	case <-time.After(setupTimeout):
		tb.Fatalf("enginetest: redis still running %v after SIGTERM", setupTimeout)
	}
	if err := r.start(); err != nil {
		tb.Fatalf("enginetest: restart redis: %v", err)
	}
}

func (r *RedisServer) start() error {
	logFile := filepath.Join(r.dir, "redis.log")
	out, err := os.OpenFile(logFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	// Options after the file override it: the port and files are this
	// server's own, everything else (persistence above all) the harness's.
	cmd := exec.Command(r.bin, r.conf, "--port", strconv.Itoa(r.port), "--dir", r.dir,
		"--pidfile", filepath.Join(r.dir, "redis.pid"), "--logfile", "")
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("run %s: %w", r.bin, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	r.cmd, r.done = cmd, done

	opts, _ := redis.ParseURL(r.URL)
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	deadline := time.Now().Add(setupTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := rdb.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("redis-server exited while starting: %s", tail(logFile))
		default:
		}
		if time.Now().After(deadline) {
			return errors.Join(fmt.Errorf("not answering after %v: %s", setupTimeout, tail(logFile)), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *RedisServer) kill() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	<-r.done
}
