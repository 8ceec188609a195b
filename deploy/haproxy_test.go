package deploy_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/surge-commerce/surge/internal/enginetest"
	"github.com/surge-commerce/surge/internal/ops"
)

const haproxyConfig = "haproxy/haproxy.cfg"

// haproxySection is one section of haproxy.cfg: its keyword ("backend"),
// its name, and its lines split into words, comments removed.
type haproxySection struct {
	kind, name string
	lines      [][]string
}

var haproxySectionKinds = []string{"global", "defaults", "frontend", "backend", "listen", "resolvers", "peers", "userlist", "cache", "mailers", "http-errors", "ring", "program"}

func parseHAProxy(t *testing.T, path string) []haproxySection {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var sections []haproxySection
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		words := strings.Fields(line)
		if len(words) == 0 {
			continue
		}
		if slices.Contains(haproxySectionKinds, words[0]) {
			s := haproxySection{kind: words[0]}
			if len(words) > 1 {
				s.name = words[1]
			}
			sections = append(sections, s)
			continue
		}
		if len(sections) == 0 {
			t.Fatalf("%s:%d: %q outside any section", path, n, line)
		}
		sections[len(sections)-1].lines = append(sections[len(sections)-1].lines, words)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return sections
}

func findSection(sections []haproxySection, kind, name string) (haproxySection, bool) {
	for _, s := range sections {
		if s.kind == kind && s.name == name {
			return s, true
		}
	}
	return haproxySection{}, false
}

// has reports whether the section has a line starting with these words.
func (s haproxySection) has(words ...string) bool {
	return slices.ContainsFunc(s.lines, func(l []string) bool {
		return len(l) >= len(words) && slices.Equal(l[:len(words)], words)
	})
}

// value returns the word after the line starting with words, or "".
func (s haproxySection) value(words ...string) string {
	for _, l := range s.lines {
		if len(l) > len(words) && slices.Equal(l[:len(words)], words) {
			return l[len(words)]
		}
	}
	return ""
}

// serverOption returns the argument of a server keyword (port, inter) on
// default-server or server lines, or "" and whether it appears as a flag.
func serverOption(s haproxySection, key string) (string, bool) {
	for _, l := range s.lines {
		if l[0] != "default-server" && l[0] != "server" && l[0] != "server-template" {
			continue
		}
		for i, w := range l {
			if w == key {
				if i+1 < len(l) {
					return l[i+1], true
				}
				return "", true
			}
		}
	}
	return "", false
}

// TestHAProxyConfig checks that HAProxy spreads requests round robin over
// the Compose API replicas, health-checks them on /readyz of the admin
// port, retries elsewhere only what never reached a server, and passes the
// client address in the header the API trusts from it.
func TestHAProxyConfig(t *testing.T) {
	p := mustLoadCompose(t)
	sections := parseHAProxy(t, haproxyConfig)
	api := p.Services["api"]
	haproxy := p.Services["haproxy"]

	if !hasBind(haproxy, haproxyConfig, "/usr/local/etc/haproxy/haproxy.cfg") {
		t.Errorf("the haproxy service does not mount %s", haproxyConfig)
	}

	defaults, ok := findSection(sections, "defaults", "")
	if !ok {
		t.Fatal("no defaults section")
	}
	for _, want := range [][]string{{"mode", "http"}, {"option", "forwardfor"}, {"option", "redispatch"}, {"option", "httplog"}} {
		if !defaults.has(want...) {
			t.Errorf("defaults: missing %q", strings.Join(want, " "))
		}
	}
	if n, err := strconv.Atoi(defaults.value("retries")); err != nil || n < 1 {
		t.Errorf("defaults: retries %q, want at least 1", defaults.value("retries"))
	}
	if on := defaults.value("retry-on"); on != "" && on != "conn-failure" {
		t.Errorf("defaults: retry-on %q: retrying after a request reached a server repeats checkouts", on)
	}
	for _, timeout := range []string{"connect", "client", "server", "http-request", "check"} {
		if defaults.value("timeout", timeout) == "" {
			t.Errorf("defaults: no timeout %s", timeout)
		}
	}

	// The API believes X-Forwarded-For only from HAProxy's fixed address.
	if got := envValue(api, "SURGE_CLIENT_IP_HEADER"); got != "X-Forwarded-For" {
		t.Errorf("api: SURGE_CLIENT_IP_HEADER = %q, want X-Forwarded-For (what option forwardfor sets)", got)
	}
	var haproxyIP string
	for _, n := range haproxy.Networks {
		if n != nil && n.Ipv4Address != "" {
			haproxyIP = n.Ipv4Address
		}
	}
	if haproxyIP == "" || !slices.Contains(strings.Split(envValue(api, "SURGE_TRUSTED_PROXIES"), ","), haproxyIP) {
		t.Errorf("api trusts %q, but HAProxy's fixed address is %q", envValue(api, "SURGE_TRUSTED_PROXIES"), haproxyIP)
	}

	var frontendBackends []string
	for _, s := range sections {
		if s.kind == "frontend" && s.value("default_backend") != "" {
			frontendBackends = append(frontendBackends, s.value("default_backend"))
		}
	}
	if len(frontendBackends) != 1 {
		t.Fatalf("want one frontend with a default_backend, found %v", frontendBackends)
	}
	backend, ok := findSection(sections, "backend", frontendBackends[0])
	if !ok {
		t.Fatalf("default_backend %q is not defined", frontendBackends[0])
	}
	if backend.value("balance") != "roundrobin" {
		t.Errorf("backend %s: balance %q, want roundrobin", backend.name, backend.value("balance"))
	}
	if !backend.has("option", "httpchk") || !backend.has("http-check", "send", "meth", "GET", "uri", "/readyz") ||
		!backend.has("http-check", "expect", "status", "200") {
		t.Errorf("backend %s: health check must be GET /readyz expecting 200", backend.name)
	}
	if _, ok := serverOption(backend, "check"); !ok {
		t.Errorf("backend %s: servers are not health-checked", backend.name)
	}
	adminPort := portOf(t, "api SURGE_ADMIN_ADDR", envValue(api, "SURGE_ADMIN_ADDR"))
	if port, _ := serverOption(backend, "port"); port != strconv.Itoa(adminPort) {
		t.Errorf("backend %s: checks port %q, want the admin port %d", backend.name, port, adminPort)
	}
	if r, ok := serverOption(backend, "resolvers"); ok {
		if _, found := findSection(sections, "resolvers", r); !found {
			t.Errorf("backend %s: resolvers %q is not defined", backend.name, r)
		}
	}

	// The servers are the api service's replicas on its public port.
	publicPort := portOf(t, "api SURGE_ADDR", envValue(api, "SURGE_ADDR"))
	var slots int
	for _, l := range backend.lines {
		var addr string
		switch {
		case l[0] == "server-template" && len(l) >= 4:
			n, err := strconv.Atoi(l[2])
			if err != nil {
				t.Fatalf("server-template %v: count: %v", l, err)
			}
			slots += n
			addr = l[3]
		case l[0] == "server" && len(l) >= 3:
			slots++
			addr = l[2]
		default:
			continue
		}
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatalf("server address %q: %v", addr, err)
		}
		if host != "api" || port != strconv.Itoa(publicPort) {
			t.Errorf("backend %s: server %s is not the api service's public port %d", backend.name, addr, publicPort)
		}
	}
	if replicas := *api.Deploy.Replicas; slots < replicas {
		t.Errorf("backend %s: %d server slots for %d api replicas", backend.name, slots, replicas)
	}

	// HAProxy's own health, for its Compose healthcheck.
	if hc := strings.Join(haproxy.HealthCheck.Test, " "); !slices.ContainsFunc(sections, func(s haproxySection) bool {
		uri := s.value("monitor-uri")
		return uri != "" && strings.Contains(hc, uri)
	}) {
		t.Errorf("haproxy healthcheck %q probes no monitor-uri", hc)
	}
}

// TestHAProxyCheck runs `haproxy -c`, HAProxy's own parser, on the file.
// The servers are resolved at run time (init-addr none), so the check needs
// no DNS.
func TestHAProxyCheck(t *testing.T) {
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		if _, statErr := os.Stat("/usr/sbin/haproxy"); statErr != nil {
			t.Skip("haproxy is not installed (apt-get install haproxy): haproxy.cfg is checked by TestHAProxyConfig only")
		}
		bin = "/usr/sbin/haproxy"
	}
	out, err := exec.Command(bin, "-c", "-f", haproxyConfig).CombinedOutput()
	if err != nil {
		t.Fatalf("haproxy -c -f %s: %v\n%s", haproxyConfig, err, out)
	}
	if strings.Contains(string(out), "[WARNING]") {
		t.Errorf("haproxy -c warns:\n%s", out)
	}
}

const haproxyLocalConfig = "haproxy/haproxy-local.cfg"

// TestHAProxyLocalConfig checks the one-host variant is haproxy.cfg with
// servers listed by loopback address instead of resolved through Docker's
// DNS: the same defaults and the same balancing and health check, each
// server checked on its own operations port.
func TestHAProxyLocalConfig(t *testing.T) {
	compose, local := parseHAProxy(t, haproxyConfig), parseHAProxy(t, haproxyLocalConfig)
	cd, _ := findSection(compose, "defaults", "")
	ld, ok := findSection(local, "defaults", "")
	if !ok || !slices.EqualFunc(cd.lines, ld.lines, slices.Equal) {
		t.Errorf("defaults differ from %s:\n%v\nwant\n%v", haproxyConfig, ld.lines, cd.lines)
	}
	if _, ok := findSection(local, "resolvers", "docker"); ok {
		t.Error("the one-host variant needs no Docker resolvers")
	}
	cb, _ := findSection(compose, "backend", "api")
	lb, ok := findSection(local, "backend", "api")
	if !ok {
		t.Fatal("no backend api")
	}
	// Docker's service discovery and the shared admin port are all that
	// may differ.
	dockerOnly := map[string]int{"resolvers": 1, "resolve-prefer": 1, "init-addr": 1, "port": 1}
	strip := func(l []string) []string {
		var out []string
		for i := 0; i < len(l); i++ {
			if n, ok := dockerOnly[l[i]]; ok {
				i += n
				continue
			}
			out = append(out, l[i])
		}
		return out
	}
	rest := func(s haproxySection) [][]string {
		var out [][]string
		for _, l := range s.lines {
			switch l[0] {
			case "server", "server-template":
			case "default-server":
				out = append(out, strip(l))
			default:
				out = append(out, l)
			}
		}
		return out
	}
	if got, want := rest(lb), rest(cb); !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("backend api differs from %s beyond its servers:\n%v\nwant\n%v", haproxyConfig, got, want)
	}
	seen := map[string]bool{}
	servers := 0
	for _, l := range lb.lines {
		if l[0] != "server" {
			continue
		}
		servers++
		host, _, err := net.SplitHostPort(l[2])
		check := ""
		if i := slices.Index(l, "port"); i > 0 && i+1 < len(l) {
			check = l[i+1]
		}
		if err != nil || host != "127.0.0.1" || check == "" || seen[l[2]] || seen[check] {
			t.Errorf("server %v: want a loopback shop address and its own operations port", l)
		}
		seen[l[2]], seen[check] = true, true
	}
	if servers < 2 {
		t.Errorf("%d servers, want the replicas the header describes", servers)
	}
}

// TestHAProxyLocalCheck runs `haproxy -c` on the one-host variant.
func TestHAProxyLocalCheck(t *testing.T) {
	bin := enginetest.HAProxy(t)
	out, err := exec.Command(bin, "-c", "-f", haproxyLocalConfig).CombinedOutput()
	if err != nil {
		t.Fatalf("haproxy -c -f %s: %v\n%s", haproxyLocalConfig, err, out)
	}
	if strings.Contains(string(out), "[WARNING]") {
		t.Errorf("haproxy -c warns:\n%s", out)
	}
}

// TestHAProxyLocalRuns runs the one-host variant, its ports moved to free
// ones, in front of stand-ins for three replicas: requests are spread over
// them round robin with the client address in X-Forwarded-For, and a
// replica whose /readyz fails is never sent any.
func TestHAProxyLocalRuns(t *testing.T) {
	bin := enginetest.HAProxy(t)
	b, err := os.ReadFile(haproxyLocalConfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(b)
	port := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}
	move := func(from, to string) {
		t.Helper()
		if !strings.Contains(cfg, from) {
			t.Fatalf("%s has no %q to move", haproxyLocalConfig, from)
		}
		cfg = strings.ReplaceAll(cfg, from, to)
	}
	lbAddr := port()
	move("bind 127.0.0.1:8080", "bind "+lbAddr)
	move("bind 127.0.0.1:8404", "bind "+port())
	var forwarded sync.Map
	for i := 1; i <= 3; i++ {
		name := "api" + strconv.Itoa(i)
		shop := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			forwarded.Store(r.Header.Get("X-Forwarded-For"), true)
			io.WriteString(w, name)
		}))
		t.Cleanup(shop.Close)
		ready := i != 3 // the third is not ready
		admin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/readyz" || !ready {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
		}))
		t.Cleanup(admin.Close)
		_, adminPort, _ := net.SplitHostPort(admin.Listener.Addr().String())
		move(fmt.Sprintf("server %s 127.0.0.1:808%d port 909%d", name, i, i),
			fmt.Sprintf("server %s %s port %s", name, shop.Listener.Addr(), adminPort))
	}
	path := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-db", "-f", path)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	// Servers start up; a failing check takes one out after fall (2)
	// checks 2 s apart. Until api3 is out, it may still be answered.
	var counts map[string]int
	client := &http.Client{Timeout: 5 * time.Second}
	for deadline := time.Now().Add(20 * time.Second); ; {
		counts = map[string]int{}
		for range 12 {
			resp, err := client.Get("http://" + lbAddr + "/")
			if err != nil {
				continue
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				counts[string(body)]++
			}
		}
		if counts["api1"]+counts["api2"] == 12 && counts["api3"] == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("through HAProxy: %v; want 12 answers from api1 and api2 only", counts)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if counts["api1"] != 6 || counts["api2"] != 6 {
		t.Errorf("answers %v, want round robin over the two ready replicas", counts)
	}
	if _, ok := forwarded.Load("127.0.0.1"); !ok {
		t.Error("no X-Forwarded-For: 127.0.0.1 reached a replica")
	}
}

// TestHAProxyCheckOutlastsReadyz: a shared dependency that hangs makes
// /readyz answer degraded, and it answers within ops.DependencyWait; the
// shipped HAProxy check timeouts must be longer than that answer (with a
// margin for the network and a busy replica), or every replica would be
// marked down together whenever a shared dependency is slow.
func TestHAProxyCheckOutlastsReadyz(t *testing.T) {
	var worst time.Duration
	synctest.Test(t, func(t *testing.T) {
		h := ops.NewHealth()
		h.SetReady(true)
		h.AddCheck("database", func(context.Context) error { return nil })
		h.AddDegradedCheck("event bus", "order events", func(ctx context.Context) error {
			<-ctx.Done()
			return ctx.Err()
		})
		start := time.Now()
		if ok, why, _ := h.Ready(context.Background()); !ok {
			t.Fatalf("a hanging shared dependency made the replica unready: %v", why)
		}
		worst = time.Since(start)
	})
	const margin = time.Second
	files, err := filepath.Glob("haproxy/*.cfg*")
	if err != nil || len(files) == 0 {
		t.Fatalf("no HAProxy configuration found: %v", err)
	}
	for _, path := range files {
		for _, s := range parseHAProxy(t, path) {
			raw := s.value("timeout", "check")
			if raw == "" {
				continue
			}
			d, err := haproxyDuration(raw)
			if err != nil {
				t.Fatalf("%s: %s %s: timeout check %q: %v", path, s.kind, s.name, raw, err)
			}
			if d < worst+margin {
				t.Errorf("%s: %s %s: timeout check %v; /readyz may take %v with a hanging dependency, want at least %v",
					path, s.kind, s.name, d, worst, worst+margin)
			}
		}
	}
}

// haproxyDuration parses an HAProxy time: a number with an optional unit
// (us, ms, s, m, h, d); milliseconds without one.
func haproxyDuration(s string) (time.Duration, error) {
	i := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	num, unit := s, "ms"
	if i >= 0 {
		num, unit = s[:i], s[i:]
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return 0, err
	}
	units := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second,
		"m": time.Minute, "h": time.Hour, "d": 24 * time.Hour}
	u, ok := units[unit]
	if !ok {
		return 0, fmt.Errorf("unknown unit %q", unit)
	}
	return time.Duration(n) * u, nil
}
