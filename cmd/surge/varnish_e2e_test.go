package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// shippedVCL is the VCL deploy/varnish ships, as an absolute path (varnishd
// reads -f relative to its working directory, not ours).
func shippedVCL(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs("../../deploy/varnish/default.vcl")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func needVarnishd(t *testing.T) string {
	t.Helper()
	v := binary("SURGE_TEST_VARNISHD", "varnishd", "/usr/sbin/varnishd")
	if v == "" {
		t.Skip("varnishd not found: install Debian's varnish and varnish-modules (scripts/services start does) or set SURGE_TEST_VARNISHD")
	}
	return v
}

// TestVarnishVCLCompiles: the shipped VCL (with the backend.vcl beside it)
// compiles with the packaged Varnish and xkey vmod.
func TestVarnishVCLCompiles(t *testing.T) {
	varnishd := needVarnishd(t)
	out, err := exec.Command(varnishd, "-j", "none", "-C", "-f", shippedVCL(t)).CombinedOutput()
	if err != nil {
		t.Fatalf("varnishd -C -f deploy/varnish/default.vcl: %v\n%s", err, lastLines(string(out), 30))
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// startVarnish runs varnishd on addr with the shipped default.vcl, fetching
// from origin (host:port): the policy file as shipped, with a backend.vcl
// beside it naming the origin, as an operator would write one.
func startVarnish(t *testing.T, varnishd, addr, origin string) string {
	t.Helper()
	dir := t.TempDir()
	policy, err := os.ReadFile(shippedVCL(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "default.vcl"), policy, 0o644); err != nil {
		t.Fatal(err)
	}
	backend, err := os.ReadFile(filepath.Join(filepath.Dir(shippedVCL(t)), "backend.vcl"))
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(origin)
	backend = regexp.MustCompile(`\.host = "[^"]*";`).ReplaceAll(backend, []byte(`.host = "`+host+`";`))
	backend = regexp.MustCompile(`\.port = "[^"]*";`).ReplaceAll(backend, []byte(`.port = "`+port+`";`))
	if err := os.WriteFile(filepath.Join(dir, "backend.vcl"), backend, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	log, err := os.Create(filepath.Join(dir, "varnishd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, varnishd, "-F", "-j", "none", "-n", filepath.Join(dir, "work"),
		"-a", addr, "-T", "none", "-f", filepath.Join(dir, "default.vcl"), "-s", "malloc,32m",
		"-l", "4m", "-p", "ban_lurker_sleep=0.1")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cancel()
		<-exited
		if t.Failed() {
			b, _ := os.ReadFile(log.Name())
			t.Logf("varnishd log:\n%s", lastLines(string(b), 40))
		}
	})
	base := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/robots.txt")
		if err == nil {
			resp.Body.Close()
			if resp.Header.Get("Via") != "" || resp.Header.Get("X-Varnish") != "" {
				return base
			}
		}
		select {
		case err := <-exited:
			b, _ := os.ReadFile(log.Name())
			t.Fatalf("varnishd exited: %v\n%s", err, lastLines(string(b), 40))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("varnishd did not answer within 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cdnResponse is a response through Varnish with what tells how Varnish
// served it.
type cdnResponse struct {
	response
	// Hit: X-Varnish names two transactions (this one and the one that
	// stored the object), the cache's own proof of a hit.
	Hit bool
}

func viaCDN(t *testing.T, method, u string, hdr ...string) cdnResponse {
	t.Helper()
	r := do(t, method, u, "", "", hdr...)
	return cdnResponse{response: r, Hit: len(strings.Fields(r.Header.Get("X-Varnish"))) == 2}
}

// TestVarnishInFrontOfShop runs the shipped VCL in a real varnishd in front
// of `surge serve` started with --cdn-purge-url pointing at it: anonymous
// pages are cached by Varnish and change within a second of an admin price
// change; nothing personal and nothing that sets a cookie is ever stored,
// so two sessions never see each other's pages.
func TestVarnishInFrontOfShop(t *testing.T) {
	varnishd := needVarnishd(t)
	cdnAddr := freeAddr(t)
	s := startShop(t, "--cdn-purge-url", "http://"+cdnAddr+"/")
	shopURL, _ := url.Parse(s.URL)
	cdn := startVarnish(t, varnishd, cdnAddr, shopURL.Host)

	var list struct {
		Items []struct{ Slug string }
	}
	mustJSON(t, do(t, "GET", s.URL+"/api/v1/products?limit=5&in_stock=true", "", ""), 200, &list)
	if len(list.Items) < 2 {
		t.Fatalf("want products in stock, got %d", len(list.Items))
	}
	var prod, other struct {
		Name     string
		Variants []struct {
			SKU string `json:"sku"`
		}
	}
	mustJSON(t, do(t, "GET", s.URL+"/api/v1/products/"+list.Items[0].Slug, "", ""), 200, &prod)
	mustJSON(t, do(t, "GET", s.URL+"/api/v1/products/"+list.Items[1].Slug, "", ""), 200, &other)
	page := cdn + "/products/" + list.Items[0].Slug

	// Anonymous pages: stored by Varnish for everyone.
	first := viaCDN(t, "GET", page)
	if first.Status != 200 || first.Hit || first.Header.Get("X-CDN") != "MISS" {
		t.Fatalf("first anonymous GET: %d X-CDN=%q X-Varnish=%q", first.Status, first.Header.Get("X-CDN"), first.Header.Get("X-Varnish"))
	}
	second := viaCDN(t, "GET", page)
	if !second.Hit || second.Header.Get("X-CDN") != "HIT" || second.Header.Get("Age") == "" {
		t.Fatalf("second anonymous GET is not a Varnish hit: X-CDN=%q X-Varnish=%q Age=%q",
			second.Header.Get("X-CDN"), second.Header.Get("X-Varnish"), second.Header.Get("Age"))
	}
	for _, h := range []string{"Surrogate-Key", "Surrogate-Control", "Xkey"} {
		if v := second.Header.Get(h); v != "" {
			t.Errorf("%s %q reaches the browser; it is for the CDN", h, v)
		}
	}
	if api := viaCDN(t, "GET", cdn+"/api/v1/products/"+list.Items[0].Slug); api.Status != 200 {
		t.Fatalf("catalog API through Varnish: %d", api.Status)
	}
	if api := viaCDN(t, "GET", cdn+"/api/v1/products/"+list.Items[0].Slug); !api.Hit {
		t.Fatalf("catalog API is not cached by Varnish: X-Varnish=%q", api.Header.Get("X-Varnish"))
	}

	// An admin price change (through Varnish, which passes the admin API)
	// shows on the cached page and API response within a second.
	const newPrice = "$4321.09"
	r := do(t, "PATCH", cdn+"/api/v1/admin/variants/"+prod.Variants[0].SKU, s.Token, `{"price":{"amount":432109,"currency":"USD"}}`)
	if r.Status != 200 {
		t.Fatalf("price change through Varnish: %d %s", r.Status, r.Body)
	}
	changed := time.Now()
	waitWithin(t, "the cached product page to show the new price", time.Second, func() bool {
		return strings.Contains(viaCDN(t, "GET", page).Body, newPrice)
	})
	waitWithin(t, "the cached product API to show the new price", time.Second-time.Since(changed), func() bool {
		return strings.Contains(viaCDN(t, "GET", cdn+"/api/v1/products/"+list.Items[0].Slug).Body, `"amount":432109`)
	})
	t.Logf("price change visible through Varnish after %v", time.Since(changed).Round(time.Millisecond))
	if again := viaCDN(t, "GET", page); !again.Hit || !strings.Contains(again.Body, newPrice) {
		t.Errorf("after the refill the page is cached again: hit=%v", again.Hit)
	}

	// A purge of everything (the admin purge-all) reaches Varnish as a ban.
	if r := do(t, "POST", s.URL+"/api/v1/admin/cache/purge", s.Token, `{"all": true}`); r.Status != 200 {
		t.Fatalf("purge all: %d %s", r.Status, r.Body)
	}
	waitWithin(t, "a purge of everything to empty Varnish", time.Second, func() bool {
		return !viaCDN(t, "GET", page).Hit
	})

	// Personal pages: two sessions, each with its own cart.
	cookieA := addToCart(t, cdn, prod.Variants[0].SKU)
	cookieB := addToCart(t, cdn, other.Variants[0].SKU)
	if cookieA == cookieB {
		t.Fatal("two visitors were given the same session cookie")
	}
	for range 2 {
		a := viaCDN(t, "GET", cdn+"/cart", "Cookie", cookieA)
		b := viaCDN(t, "GET", cdn+"/cart", "Cookie", cookieB)
		if a.Hit || b.Hit || a.Header.Get("X-CDN") != "PASS" || b.Header.Get("X-CDN") != "PASS" {
			t.Fatalf("a cart page came from Varnish: A %q %q, B %q %q", a.Header.Get("X-CDN"), a.Header.Get("X-Varnish"),
				b.Header.Get("X-CDN"), b.Header.Get("X-Varnish"))
		}
		if !strings.Contains(a.Body, prod.Name) || strings.Contains(a.Body, other.Name) {
			t.Fatalf("session A's cart does not show exactly A's item")
		}
		if !strings.Contains(b.Body, other.Name) || strings.Contains(b.Body, prod.Name) {
			t.Fatalf("session B's cart shows A's item or misses its own")
		}
		api := viaCDN(t, "GET", cdn+"/api/v1/cart", "Cookie", cookieB)
		if api.Hit || strings.Contains(api.Body, prod.Variants[0].SKU) {
			t.Fatalf("session B's cart API came from the cache or shows A's SKU")
		}
	}
	// With a session cookie even a public page goes to Surge, after an
	// anonymous visitor put it in Varnish.
	viaCDN(t, "GET", page)
	if r := viaCDN(t, "GET", page, "Cookie", cookieA); r.Hit || r.Header.Get("X-CDN") != "PASS" {
		t.Errorf("a page for a visitor with a session came from the cache: X-CDN=%q", r.Header.Get("X-CDN"))
	}
	// Foreign cookies (analytics) do not stop caching.
	if r := viaCDN(t, "GET", page, "Cookie", "_ga=GA1.1.123"); !r.Hit {
		t.Errorf("a page for a visitor with only an analytics cookie was not served from the cache")
	}

	// A response that sets a cookie is never stored: every anonymous
	// visitor of the sign-in page gets a session of their own.
	var sessions []string
	for range 3 {
		r := viaCDN(t, "GET", cdn+"/account/signin")
		if r.Status != 200 || r.Hit || r.Header.Get("Age") != "0" && r.Header.Get("Age") != "" {
			t.Fatalf("sign-in page: %d hit=%v Age=%q", r.Status, r.Hit, r.Header.Get("Age"))
		}
		c := r.Header.Get("Set-Cookie")
		if !strings.HasPrefix(c, "surge_session=") {
			t.Fatalf("sign-in page set no session: %q", c)
		}
		for _, prev := range sessions {
			if prev == c {
				t.Fatalf("two visitors got the same Set-Cookie through Varnish: %q", c)
			}
		}
		sessions = append(sessions, c)
	}
	// Anonymous personal pages are not stored either.
	for range 2 {
		if r := viaCDN(t, "GET", cdn+"/cart"); r.Hit {
			t.Fatalf("an anonymous cart page came from the cache")
		}
	}

	// Purges are refused without tags; everything else the shop sent
	// was accepted.
	if r := viaCDN(t, "PURGE", cdn+"/"); r.Status != 400 {
		t.Errorf("PURGE without Surrogate-Key: %d, want 400", r.Status)
	}
	if failed := metricValue(t, s.AdminURL, `surge_cdn_purges_total{result="failed"}`); failed != 0 {
		t.Errorf("%v purges to Varnish failed", failed)
	}
	if ok := metricValue(t, s.AdminURL, `surge_cdn_purges_total{result="ok"}`); ok < 2 {
		t.Errorf("%v purges reached Varnish, want the price change and the purge of everything", ok)
	}
}

// addToCart adds sku to a new visitor's cart through the CDN with the
// product page's form and returns the visitor's session cookie.
func addToCart(t *testing.T, cdn, sku string) string {
	t.Helper()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.PostForm(cdn+"/cart/items", url.Values{"sku": {sku}, "quantity": {"1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("add to cart: %s", resp.Status)
	}
	for _, c := range resp.Cookies() {
		if c.Name == "surge_session" {
			return c.Name + "=" + c.Value
		}
	}
	t.Fatalf("add to cart set no session cookie")
	return ""
}

// waitWithin waits for cond, checking every 20 ms, and fails if it does
// not hold within d.
func waitWithin(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// metricValue reads one sample from the shop's /metrics.
func metricValue(t *testing.T, adminURL, series string) float64 {
	t.Helper()
	r := do(t, "GET", adminURL+"/metrics", "", "")
	for _, line := range strings.Split(r.Body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("no %s in /metrics", series)
	return 0
}

// TestCDNDownNeverBlocksAdminWrites: with the CDN hanging, admin writes
// answer as before, well within one purge timeout; the purges time out in
// the background, are retried, and are counted failed.
func TestCDNDownNeverBlocksAdminWrites(t *testing.T) {
	release := make(chan struct{})
	hanging := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hanging.Close()
	defer close(release)
	s := startShop(t, "--cdn-purge-url", hanging.URL+"/", "--cdn-purge-timeout", "1500ms")
	var list struct{ Items []struct{ Slug string } }
	mustJSON(t, do(t, "GET", s.URL+"/api/v1/products?limit=1", "", ""), 200, &list)
	var prod struct {
		Variants []struct {
			SKU string `json:"sku"`
		}
	}
	mustJSON(t, do(t, "GET", s.URL+"/api/v1/products/"+list.Items[0].Slug, "", ""), 200, &prod)
	// A write that waited for the CDN would take a purge timeout (1.5 s);
	// the client gives each one second.
	client := &http.Client{Timeout: time.Second}
	for i := range 5 {
		req, _ := http.NewRequest("PATCH", s.URL+"/api/v1/admin/variants/"+prod.Variants[0].SKU,
			strings.NewReader(fmt.Sprintf(`{"price":{"amount":%d,"currency":"USD"}}`, 1000+i)))
		req.Header.Set("Authorization", "Bearer "+s.Token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("price change %d with the CDN down: %v", i, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("price change %d with the CDN down: %s", i, resp.Status)
		}
	}
	waitWithin(t, "the hanging CDN's purges to be counted failed", 15*time.Second, func() bool {
		return metricValue(t, s.AdminURL, `surge_cdn_purges_total{result="failed"}`) >= 1
	})
	if retries := metricValue(t, s.AdminURL, "surge_cdn_purge_retries_total"); retries < 2 {
		t.Errorf("retries = %v, want each failed purge tried 3 times", retries)
	}
}
