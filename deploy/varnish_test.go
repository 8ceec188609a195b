package deploy_test

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
)

// TestComposeVarnish checks that Varnish is the front door of the Compose
// topology: it publishes the shop's port, runs the shipped VCL with the
// Compose backend (HAProxy's shop frontend), the API purges it by name and
// believes its X-Forwarded-For, and its purge ACL admits the API replicas.
func TestComposeVarnish(t *testing.T) {
	p := mustLoadCompose(t)
	varnish, api, haproxy := p.Services["varnish"], p.Services["api"], p.Services["haproxy"]

	if !slices.ContainsFunc(varnish.Ports, func(pc types.ServicePortConfig) bool { return pc.Published == "8080" && pc.Target == 8080 }) {
		t.Errorf("varnish does not publish 8080: %v", varnish.Ports)
	}
	if slices.ContainsFunc(haproxy.Ports, func(pc types.ServicePortConfig) bool { return pc.Target == 8080 }) {
		t.Errorf("haproxy still publishes the shop port; shoppers would bypass the CDN")
	}
	if !hasBind(varnish, "varnish/default.vcl", "/etc/varnish/default.vcl") ||
		!hasBind(varnish, "varnish/backend-compose.vcl", "/etc/varnish/backend.vcl") {
		t.Errorf("varnish does not mount default.vcl with backend-compose.vcl as its backend.vcl")
	}
	if d, ok := varnish.DependsOn["haproxy"]; !ok || d.Condition != types.ServiceConditionHealthy {
		t.Errorf("varnish must start after haproxy: the backend's name must resolve when the VCL loads")
	}

	// The backend is HAProxy's shop frontend.
	backend, err := os.ReadFile("varnish/backend-compose.vcl")
	if err != nil {
		t.Fatal(err)
	}
	host, port := vclBackend(t, string(backend))
	if _, ok := p.Services[host]; host != "haproxy" || !ok {
		t.Errorf("backend-compose.vcl fetches from %q, want the haproxy service", host)
	}
	shop, ok := findSection(parseHAProxy(t, haproxyConfig), "frontend", "shop")
	if !ok || shop.value("bind") != ":"+port {
		t.Errorf("backend-compose.vcl uses port %s, HAProxy's shop frontend binds %q", port, shop.value("bind"))
	}

	// The API purges Varnish where it listens, and trusts its address.
	purge := mustParseURL(t, "SURGE_CDN_PURGE_URL", envValue(api, "SURGE_CDN_PURGE_URL"))
	dockerfile, err := os.ReadFile("varnish/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	if purge.Hostname() != "varnish" || !strings.Contains(string(dockerfile), `"-a", ":`+purge.Port()+`"`) {
		t.Errorf("SURGE_CDN_PURGE_URL %q is not where the varnish service listens", purge)
	}
	var ip string
	for _, n := range varnish.Networks {
		if n != nil && n.Ipv4Address != "" {
			ip = n.Ipv4Address
		}
	}
	trusted := strings.Split(envValue(api, "SURGE_TRUSTED_PROXIES"), ",")
	if ip == "" || !slices.Contains(trusted, ip) {
		t.Errorf("varnish's fixed address %q is not in the API's trusted proxies %v", ip, trusted)
	}

	// Purges come from the API replicas' network: the ACL must admit it.
	policy, err := os.ReadFile("varnish/default.vcl")
	if err != nil {
		t.Fatal(err)
	}
	subnet := netip.MustParsePrefix(p.Networks["shop"].Ipam.Config[0].Subnet)
	if !slices.ContainsFunc(vclACL(t, string(policy), "purgers"), func(a netip.Prefix) bool {
		return a.Bits() <= subnet.Bits() && a.Contains(subnet.Addr())
	}) {
		t.Errorf("the purgers ACL does not admit the Compose network %s", subnet)
	}
}

// vclBackend returns the host and port of the one backend in a VCL file.
func vclBackend(t *testing.T, vcl string) (host, port string) {
	t.Helper()
	h := regexp.MustCompile(`\.host\s*=\s*"([^"]+)"`).FindAllStringSubmatch(vcl, -1)
	p := regexp.MustCompile(`\.port\s*=\s*"([0-9]+)"`).FindAllStringSubmatch(vcl, -1)
	if len(h) != 1 || len(p) != 1 {
		t.Fatalf("want one backend with .host and .port, found hosts %v ports %v", h, p)
	}
	return h[0][1], p[0][1]
}

// vclACL returns the entries of a named ACL.
func vclACL(t *testing.T, vcl, name string) []netip.Prefix {
	t.Helper()
	m := regexp.MustCompile(`(?s)acl\s+` + name + `\s*\{(.*?)\}`).FindStringSubmatch(vcl)
	if m == nil {
		t.Fatalf("no acl %s", name)
	}
	var out []netip.Prefix
	for _, e := range regexp.MustCompile(`"([^"]+)"(?:\s*/\s*([0-9]+))?`).FindAllStringSubmatch(m[1], -1) {
		a, err := netip.ParseAddr(e[1])
		if err != nil {
			t.Fatalf("acl %s: %q: %v", name, e[1], err)
		}
		bits := a.BitLen()
		if e[2] != "" {
			bits, _ = strconv.Atoi(e[2])
		}
		out = append(out, netip.PrefixFrom(a, bits))
	}
	return out
}

// TestVarnishComposeVCLCompiles compiles the shipped policy with the
// Compose backend, its host name swapped for an address (varnishd
// resolves it at compile time, and "haproxy" only resolves inside
// Compose).
func TestVarnishComposeVCLCompiles(t *testing.T) {
	varnishd := os.Getenv("SURGE_TEST_VARNISHD")
	if varnishd == "" {
		var err error
		if varnishd, err = exec.LookPath("varnishd"); err != nil {
			t.Skip("varnishd not found: install Debian's varnish and varnish-modules (scripts/services start does)")
		}
	}
	dir := t.TempDir()
	policy, err := os.ReadFile("varnish/default.vcl")
	if err != nil {
		t.Fatal(err)
	}
	backend, err := os.ReadFile("varnish/backend-compose.vcl")
	if err != nil {
		t.Fatal(err)
	}
	backend = []byte(strings.Replace(string(backend), `"haproxy"`, `"127.0.0.1"`, 1))
	if err := os.WriteFile(filepath.Join(dir, "default.vcl"), policy, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "backend.vcl"), backend, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(varnishd, "-j", "none", "-C", "-f", filepath.Join(dir, "default.vcl")).CombinedOutput(); err != nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		t.Fatalf("varnishd -C: %v\n%s", err, strings.Join(lines[max(0, len(lines)-20):], "\n"))
	}
}
