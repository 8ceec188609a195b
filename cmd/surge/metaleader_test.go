package main

import (
	"bufio"
	"encoding/csv"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/surge-commerce/surge/internal/enginetest"
)

// TestMetaLeaderLossKeepsReplicasInHAProxy kills the node that leads the
// NATS cluster's JetStream meta group under two API replicas behind
// HAProxy, which health-checks them on /readyz with the shipped
// configuration's settings. While the cluster elects a new meta leader,
// HAProxy must have a replica in service at every probe, a cached browse
// page must answer 200 throughout, and no replica's /readyz may fail: the
// cluster is shared, so losing it would make them all fail together
// (whether HAProxy then catches two failed checks in a row on each is a
// matter of timing).
func TestMetaLeaderLossKeepsReplicasInHAProxy(t *testing.T) {
	bin := surgeBinary(t)
	haproxy := enginetest.HAProxy(t)
	primary, _ := enginetest.Postgres(t)
	cluster := enginetest.NATSChaos(t)
	common := []string{"--db-url", primary, "--nats-url", strings.Join(cluster.URLs, ","), "--nats-replicas", "3",
		"--admin-token", testToken, "--log-level", "error", "--access-log=false", "--admin-addr", "127.0.0.1:0",
		"--addr", "127.0.0.1:0", "--admission=false"}
	if out, err := exec.Command(bin, "migrate", "--db-url", primary).CombinedOutput(); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	var apis []*proc
	for range 2 {
		apis = append(apis, startProc(t, append([]string{"serve", "--role", "api", "--data-dir", t.TempDir()}, common...)...))
	}
	check := shippedHealthCheck(t)
	t.Logf("shipped health check: %+v", check)
	lb, stats := startCheckedHAProxy(t, haproxy, apis, check)

	// The page every probe asks for, cached on both replicas.
	const page = "/"
	for range 4 {
		if r := do(t, "GET", lb+page, "", ""); r.Status != 200 {
			t.Fatalf("GET %s through HAProxy: %d", page, r.Status)
		}
	}
	if up := serversUp(stats); up != len(apis) {
		t.Fatalf("%d of %d replicas in service before the kill", up, len(apis))
	}

	leader := cluster.MetaLeader(t)
	var (
		mu        sync.Mutex
		probes    int
		failures  []string
		readiness = map[string]int{} // the replicas' /readyz answers, counted
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		c := &http.Client{Timeout: 5 * time.Second}
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			at := time.Now().Format("15:04:05.000")
			up := serversUp(stats)
			for i, a := range apis {
				answer := "no answer"
				if r, err := c.Get(a.AdminURL + "/readyz"); err == nil {
					b, _ := io.ReadAll(r.Body)
					r.Body.Close()
					answer = fmt.Sprintf("%d %s", r.StatusCode, strings.TrimSpace(string(b)))
				}
				mu.Lock()
				readiness[fmt.Sprintf("replica %d: %s", i+1, answer)]++
				if !strings.HasPrefix(answer, "200 ") {
					failures = append(failures, fmt.Sprintf("%s: replica %d /readyz %s", at, i+1, answer))
				}
				mu.Unlock()
			}
			code := 0
			if resp, err := c.Get(lb + page); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				code = resp.StatusCode
			}
			mu.Lock()
			probes++
			if up == 0 {
				failures = append(failures, at+": no replica in service")
			}
			if code != 200 {
				failures = append(failures, fmt.Sprintf("%s: GET %s answered %d", at, page, code))
			}
			mu.Unlock()
		}
	})
	cluster.StopNode(t, leader)
	killed := time.Now()
	newLeader := cluster.MetaLeader(t, leader)
	t.Logf("meta leader node %d killed; node %d leads after %v", leader, newLeader, time.Since(killed).Round(time.Millisecond))
	// Long enough after the election for HAProxy to act on any check it
	// failed: fall checks, inter apart.
	select {
	case <-time.After(time.Duration(check.fall+1) * check.inter):
	case <-t.Context().Done():
	}
	for i, a := range apis {
		r := do(t, "GET", a.AdminURL+"/readyz", "", "")
		t.Logf("replica %d /readyz after the election: %d %s", i+1, r.Status, strings.TrimSpace(r.Body))
	}
	close(stop)
	wg.Wait()
	cluster.StartNode(t, leader)

	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d probes over %v", probes, time.Since(killed).Round(time.Millisecond))
	for answer, n := range readiness {
		t.Logf("%d times %s", n, answer)
	}
	if probes < 20 {
		t.Errorf("only %d probes: the run proves little", probes)
	}
	for _, f := range failures {
		t.Error(f)
	}
}

// healthCheck is how HAProxy checks a server: every inter, down after fall
// failures, up after rise successes, each check given timeout.
type healthCheck struct {
	inter, timeout time.Duration
	fall, rise     int
}

// shippedHealthCheck reads the check settings of deploy/haproxy/haproxy.cfg.
func shippedHealthCheck(t *testing.T) healthCheck {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "deploy", "haproxy", "haproxy.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var hc healthCheck
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		w := strings.Fields(line)
		switch {
		case len(w) == 3 && w[0] == "timeout" && w[1] == "check":
			hc.timeout = parseHAProxyTime(t, w[2])
		case len(w) > 0 && w[0] == "default-server":
			for i := 0; i+1 < len(w); i++ {
				switch w[i] {
				case "inter":
					hc.inter = parseHAProxyTime(t, w[i+1])
				case "fall":
					_, _ = fmt.Sscan(w[i+1], &hc.fall)
				case "rise":
					_, _ = fmt.Sscan(w[i+1], &hc.rise)
				}
			}
		}
	}
	if hc.inter == 0 || hc.timeout == 0 || hc.fall == 0 || hc.rise == 0 {
		t.Fatalf("haproxy.cfg: health check settings incomplete: %+v", hc)
	}
	return hc
}

func parseHAProxyTime(t *testing.T, s string) time.Duration {
	t.Helper()
	if strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' }) < 0 {
		s += "ms"
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("haproxy time %q: %v", s, err)
	}
	return d
}

// startCheckedHAProxy runs HAProxy round-robin over the API replicas with
// the health check hc on each one's /readyz, and returns its URL and the
// URL of its CSV statistics.
func startCheckedHAProxy(t *testing.T, bin string, apis []*proc, hc healthCheck) (lb, stats string) {
	t.Helper()
	addrs := freeAddrs(t, 2)
	var servers strings.Builder
	for i, p := range apis {
		u, _ := url.Parse(p.URL)
		a, _ := url.Parse(p.AdminURL)
		fmt.Fprintf(&servers, "    server api%d %s check port %s inter %dms fall %d rise %d\n", i+1, u.Host, a.Port(),
			hc.inter.Milliseconds(), hc.fall, hc.rise)
	}
	cfg := fmt.Sprintf(`global
    maxconn 1000
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout check %dms
    retries 2
    option redispatch
    retry-on conn-failure
frontend shop
    bind %s
    default_backend api
backend api
    balance roundrobin
    option httpchk
    http-check send meth GET uri /readyz
    http-check expect status 200
%sfrontend stats
    bind %s
    stats enable
    stats uri /stats
`, hc.timeout.Milliseconds(), addrs[0], servers.String(), addrs[1])
	path := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-db", "-f", path)
	if testing.Verbose() {
		cmd.Stderr = os.Stderr
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGKILL); _ = cmd.Wait() })
	lb, stats = "http://"+addrs[0], "http://"+addrs[1]+"/stats;csv"
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(stats)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 && serversUp(stats) == len(apis) {
				return lb, stats
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("HAProxy did not bring the %d replicas into service within 30s: %v", len(apis), err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// serversUp returns how many servers of backend "api" HAProxy has in
// service (UP, or UP and going down: still sent requests).
func serversUp(stats string) int {
	resp, err := http.Get(stats)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	r := csv.NewReader(resp.Body)
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil || len(rows) == 0 {
		return 0
	}
	header := rows[0]
	header[0] = strings.TrimPrefix(header[0], "# ")
	px, sv, st := slices.Index(header, "pxname"), slices.Index(header, "svname"), slices.Index(header, "status")
	if px < 0 || sv < 0 || st < 0 {
		return 0 // not statistics as HAProxy writes them: count nothing in service
	}
	up := 0
	for _, row := range rows[1:] {
		if len(row) <= st || row[px] != "api" || row[sv] == "FRONTEND" || row[sv] == "BACKEND" {
			continue
		}
		if strings.HasPrefix(row[st], "UP") {
			up++
		}
	}
	return up
}
