package enginetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// How tests share the NATS cluster, across every test binary at once:
//
//   - Each test gets a JetStream account of its own (scripts/services
//     configures SURGE_TEST_NATS_ACCOUNTS of them), leased through an
//     exclusive lock file, so streams with the same name and subjects in
//     two tests never meet. Its streams are deleted when the lease ends.
//   - A test that stops nodes takes the cluster lock exclusively; every
//     other NATS test holds it shared. A node stopped under one test thus
//     never fails an unrelated test whose streams have a single replica.
//
// The locks are flock(2) locks: the kernel drops them when a test binary
// dies, so a crashed run leaves nothing behind but streams, which the next
// lease of the account deletes.

// leaseTimeout bounds the wait for a free account or the cluster lock.
const leaseTimeout = 5 * time.Minute

// NATS returns the client URLs of the test NATS cluster, logged in to a
// JetStream account that only this test uses; pass them to nats.Connect
// joined with commas. Streams the test creates are deleted at cleanup. It
// skips the test when SURGE_TEST_NATS is unset.
func NATS(tb testing.TB) []string {
	tb.Helper()
	urls := natsURLs(tb)
	locks := os.Getenv("SURGE_TEST_NATS_LOCKS")
	if locks == "" {
		// Engines started without account leasing: share the default
		// account, as a hand-run NATS server would.
		return urls
	}
	lockFile(tb, filepath.Join(locks, "cluster.lock"), syscall.LOCK_SH, "the NATS cluster (a test that stops nodes holds it)")
	return leaseAccount(tb, urls, locks)
}

func natsURLs(tb testing.TB) []string {
	tb.Helper()
	raw := os.Getenv("SURGE_TEST_NATS")
	if raw == "" {
		tb.Skip("SURGE_TEST_NATS not set; run the tests through scripts/test (or scripts/services start) to test against a NATS cluster")
	}
	return strings.Split(raw, ",")
}

// lockFile takes a flock on path, polling so the wait is bounded, and
// releases it at cleanup.
func lockFile(tb testing.TB, path string, how int, what string) {
	tb.Helper()
	f, err := tryLock(path, how, leaseTimeout)
	if err != nil {
		tb.Fatalf("enginetest: lock %s: %v", what, err)
	}
	tb.Cleanup(func() { f.Close() })
}

// tryLock opens path and locks it with flock(how), waiting up to timeout.
// Closing the file releases the lock.
func tryLock(path string, how int, timeout time.Duration) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	deadline := time.Now().Add(timeout)
	for {
		err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, fmt.Errorf("%s still held by another test after %v", path, timeout)
			}
			return nil, fmt.Errorf("flock %s: %w", path, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// leaseAccount takes a free test account, empties it of anything a crashed
// run left behind, and returns urls logged in to it.
func leaseAccount(tb testing.TB, urls []string, locks string) []string {
	tb.Helper()
	n, err := strconv.Atoi(os.Getenv("SURGE_TEST_NATS_ACCOUNTS"))
	if err != nil || n < 1 {
		tb.Fatalf("enginetest: SURGE_TEST_NATS_ACCOUNTS=%q: want the number of test accounts", os.Getenv("SURGE_TEST_NATS_ACCOUNTS"))
	}
	deadline := time.Now().Add(leaseTimeout)
	for {
		for a := 1; a <= n; a++ {
			f, err := tryLock(filepath.Join(locks, fmt.Sprintf("account-%d.lock", a)), syscall.LOCK_EX, 0)
			if err != nil {
				continue
			}
			user := "t" + strconv.Itoa(a)
			mine, err := withUser(urls, user, user)
			if err != nil {
				f.Close()
				tb.Fatalf("enginetest: SURGE_TEST_NATS: %v", err)
			}
			if err := deleteStreams(mine); err != nil {
				f.Close()
				tb.Fatalf("enginetest: empty NATS account %s: %v", user, err)
			}
			tb.Cleanup(func() {
				defer f.Close()
				if err := deleteStreams(mine); err != nil {
					// The next lease of the account deletes them.
					tb.Logf("enginetest: delete streams of NATS account %s: %v", user, err)
				}
			})
			return mine
		}
		if time.Now().After(deadline) {
			tb.Fatalf("enginetest: all %d NATS test accounts still leased after %v", n, leaseTimeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// withUser returns urls with user and password set.
func withUser(urls []string, user, password string) ([]string, error) {
	out := make([]string, len(urls))
	for i, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil {
			return nil, fmt.Errorf("parse %q: %w", raw, err)
		}
		u.User = url.UserPassword(user, password)
		out[i] = u.String()
	}
	return out, nil
}

// deleteStreams removes every stream, and with them every consumer, in the
// account urls log in to. Right after a node restart the cluster may still
// be electing leaders, so it retries for a while.
func deleteStreams(urls []string) error {
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	nc, err := nats.Connect(strings.Join(urls, ","), nats.Name("enginetest"), nats.Timeout(10*time.Second))
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	var last error
	for ctx.Err() == nil {
		if last = deleteStreamsOnce(ctx, js); last == nil {
			return nil
		}
		time.Sleep(250 * time.Millisecond)
	}
	return last
}

func deleteStreamsOnce(ctx context.Context, js jetstream.JetStream) error {
	names := js.StreamNames(ctx)
	var all []string
	for name := range names.Name() {
		all = append(all, name)
	}
	if err := names.Err(); err != nil {
		return fmt.Errorf("list streams: %w", err)
	}
	for _, name := range all {
		if err := js.DeleteStream(ctx, name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("delete stream %s: %w", name, err)
		}
	}
	return nil
}

// NATSCluster is the test NATS cluster held by one test alone, so that it
// may stop and restart nodes. Get one with NATSChaos.
type NATSCluster struct {
	// URLs are the client URLs of every node, logged in to a JetStream
	// account of this test's own.
	URLs  []string
	nodes []natsNode
	bin   string
}

// natsNode is what it takes to stop, start and watch one node.
type natsNode struct {
	conf, pidFile, monitor string
	// name is the node's server_name, which JetStream reports as the
	// leader of a stream or consumer.
	name string
}

// NATSChaos takes the test NATS cluster for this test alone, waiting for
// other NATS tests to finish first, and returns it with a JetStream account
// of the test's own. At cleanup, nodes the test stopped are started again
// and the cluster is healthy before anyone else gets it. It skips the test
// when the engines or the node controls are missing.
func NATSChaos(tb testing.TB) *NATSCluster {
	tb.Helper()
	urls := natsURLs(tb)
	confs := splitEnv("SURGE_TEST_NATS_CONF")
	pids := splitEnv("SURGE_TEST_NATS_PID")
	monitors := splitEnv("SURGE_TEST_NATS_MONITOR")
	bin := os.Getenv("SURGE_TEST_NATS_SERVER")
	locks := os.Getenv("SURGE_TEST_NATS_LOCKS")
	if bin == "" || locks == "" || len(confs) != len(urls) || len(pids) != len(urls) || len(monitors) != len(urls) {
		tb.Skip("SURGE_TEST_NATS_CONF, _PID, _MONITOR, _SERVER or _LOCKS not set for every node; start the engines with scripts/services to stop and restart NATS nodes")
	}
	c := &NATSCluster{bin: bin}
	for i := range urls {
		name, err := serverName(confs[i])
		if err != nil {
			tb.Fatalf("enginetest: NATS node %d: %v", i, err)
		}
		c.nodes = append(c.nodes, natsNode{conf: confs[i], pidFile: pids[i], monitor: monitors[i], name: name})
	}
	lockFile(tb, filepath.Join(locks, "cluster.lock"), syscall.LOCK_EX, "the NATS cluster for stopping nodes (other NATS tests hold it shared)")
	// Registered after the lock, so it runs before the lock is released.
	tb.Cleanup(func() { c.restore(tb) })
	// A run that died with a node down left the cluster degraded.
	c.restore(tb)
	c.URLs = leaseAccount(tb, urls, locks)
	return c
}

func splitEnv(name string) []string {
	v := os.Getenv(name)
	if v == "" {
		return nil
	}
	return strings.Split(v, ",")
}

// serverName reads the server_name line scripts/services writes.
func serverName(conf string) (string, error) {
	b, err := os.ReadFile(conf)
	if err != nil {
		return "", fmt.Errorf("read config: %w", err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "server_name:"); ok {
			return strings.Trim(strings.TrimSpace(v), `"`), nil
		}
	}
	return "", fmt.Errorf("%s has no server_name", conf)
}

// Nodes returns the number of nodes in the cluster.
func (c *NATSCluster) Nodes() int { return len(c.nodes) }

// NodeNamed returns the index of the node whose server name is name, as
// JetStream reports a stream's leader, so a test can stop that leader.
func (c *NATSCluster) NodeNamed(tb testing.TB, name string) int {
	tb.Helper()
	for i, n := range c.nodes {
		if n.name == name {
			return i
		}
	}
	tb.Fatalf("enginetest: no NATS node named %q", name)
	return -1
}

// MetaLeader returns the index of the node that leads the cluster's
// JetStream meta group (which answers account and stream administration),
// as the running nodes' monitoring endpoints report it. Given not, it
// waits for a leader other than those nodes: the successor of a stopped
// leader, which the others still name until they have elected one.
func (c *NATSCluster) MetaLeader(tb testing.TB, not ...int) int {
	tb.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for {
		for i := range c.nodes {
			if slices.Contains(not, i) {
				continue
			}
			resp, err := client.Get(c.nodes[i].monitor + "/jsz")
			if err != nil {
				last = err.Error()
				continue
			}
			var jsz struct {
				Meta *struct{ Leader string } `json:"meta_cluster"`
			}
			err = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&jsz)
			resp.Body.Close()
			switch {
			case err != nil:
				last = err.Error()
			case jsz.Meta == nil || jsz.Meta.Leader == "":
				last = "no meta leader"
			case slices.Contains(not, c.NodeNamed(tb, jsz.Meta.Leader)):
				last = "still " + jsz.Meta.Leader
			default:
				return c.NodeNamed(tb, jsz.Meta.Leader)
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("enginetest: no NATS meta leader after 30s (last: %s)", last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// StopNode kills node i (0-based) with SIGKILL, as a crash or a lost
// machine would, and returns once it is gone. Its JetStream files stay for
// StartNode.
func (c *NATSCluster) StopNode(tb testing.TB, i int) {
	tb.Helper()
	n := c.node(tb, i)
	pid, err := readPid(n.pidFile)
	if err != nil {
		tb.Fatalf("enginetest: stop NATS node %d: %v", i, err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		tb.Fatalf("enginetest: stop NATS node %d (pid %d): %v", i, pid, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			tb.Fatalf("enginetest: NATS node %d (pid %d) still running 30s after SIGKILL", i, pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// StartNode starts node i again from its configuration and store, and
// returns once its monitoring endpoint says it is healthy: it has rejoined
// the cluster and caught up on the JetStream assets it holds.
func (c *NATSCluster) StartNode(tb testing.TB, i int) {
	tb.Helper()
	n := c.node(tb, i)
	if err := c.start(n); err != nil {
		tb.Fatalf("enginetest: start NATS node %d: %v", i, err)
	}
	if err := waitHealthy(n, time.Minute); err != nil {
		tb.Fatalf("enginetest: NATS node %d: %v", i, err)
	}
}

func (c *NATSCluster) node(tb testing.TB, i int) *natsNode {
	tb.Helper()
	if i < 0 || i >= len(c.nodes) {
		tb.Fatalf("enginetest: NATS node %d: the cluster has nodes 0 to %d", i, len(c.nodes)-1)
	}
	return &c.nodes[i]
}

// start runs nats-server detached from the test: it must outlive the test
// binary, since the node belongs to the engines, which scripts/services
// stops by pid file. Its output goes to a file, never to the test's pipes,
// which go test would otherwise wait on.
func (c *NATSCluster) start(n *natsNode) error {
	out, err := os.OpenFile(filepath.Join(filepath.Dir(n.conf), "stdout.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	defer out.Close()
	cmd := exec.Command(c.bin, "-c", n.conf)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("run %s -c %s: %w", c.bin, n.conf, err)
	}
	// Reaps it should it die while this test binary still runs.
	go func() { _ = cmd.Wait() }()
	return nil
}

// StartStopped starts every node that is not running and returns once all
// are healthy: after stopping a majority, the nodes must come back
// together to elect a meta leader.
func (c *NATSCluster) StartStopped(tb testing.TB) {
	tb.Helper()
	c.restore(tb)
}

// restore starts every node that is not running and waits until all are
// healthy.
func (c *NATSCluster) restore(tb testing.TB) {
	tb.Helper()
	for i := range c.nodes {
		n := &c.nodes[i]
		pid, err := readPid(n.pidFile)
		if err == nil && alive(pid) {
			continue
		}
		if err := c.start(n); err != nil {
			tb.Errorf("enginetest: restart NATS node %d: %v", i, err)
			continue
		}
	}
	for i := range c.nodes {
		if err := waitHealthy(&c.nodes[i], time.Minute); err != nil {
			tb.Errorf("enginetest: NATS node %d: %v", i, err)
		}
	}
}

func readPid(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read pid file: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("pid file %s: %q is not a pid", path, b)
	}
	return pid, nil
}

// alive reports whether pid runs. A zombie counts as gone: a container's
// first process may never reap a node that scripts/services started.
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return !errors.Is(err, os.ErrNotExist)
	}
	// The state follows the parenthesised command name: "pid (comm) S ...".
	s := string(stat)
	if j := strings.LastIndexByte(s, ')'); j >= 0 && j+2 < len(s) {
		return s[j+2] != 'Z'
	}
	return true
}

// waitHealthy polls the node's /healthz, which in a cluster answers ok
// only once the node is current with the meta leader and its streams.
func waitHealthy(n *natsNode, timeout time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	var last string
	for {
		resp, err := client.Get(n.monitor + "/healthz")
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not healthy after %v (last: %s); see the log next to %s", timeout, last, n.conf)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
