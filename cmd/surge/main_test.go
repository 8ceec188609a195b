package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// runningShop is a `surge serve` started through run, as a user would start it.
type runningShop struct {
	URL, AdminURL, Token string
	stop                 context.CancelFunc
	done                 chan error
}

// lineWriter hands each complete output line to a channel.
type lineWriter struct {
	mu    sync.Mutex
	buf   strings.Builder
	lines chan string
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for {
		s := w.buf.String()
		i := strings.IndexByte(s, '\n')
		if i < 0 {
			break
		}
		select {
		case w.lines <- s[:i]:
		default:
		}
		w.buf.Reset()
		w.buf.WriteString(s[i+1:])
	}
	return len(p), nil
}

const testToken = "test-admin-token-0123456789"

// startShop runs `surge serve` on loopback ports chosen by the kernel and
// waits until /readyz says ready.
func startShop(t *testing.T, extra ...string) *runningShop {
	t.Helper()
	return startServe(t, append([]string{"--data-dir", t.TempDir(), "--admin-token", testToken}, extra...)...)
}

// startServe is startShop without a data dir or an admin token of its
// own: extra gives them. Token is the one given or the one the demo
// printed.
func startServe(t *testing.T, extra ...string) *runningShop {
	t.Helper()
	args := append([]string{"serve", "--addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
		"--demo", "--demo-products", "300", "--access-log=false", "--log-level", "warn"}, extra...)
	token := ""
	for i, a := range extra {
		if a == "--admin-token" && i+1 < len(extra) {
			token = extra[i+1]
		}
	}
	return launchServe(t, args, func(string) string { return "" }, io.Discard, token)
}

// launchServe runs the surge command line args (a serve) in process with
// getenv and its logs to logs, waits until it is ready and stops it when
// the test ends. token is the admin token given, if any; otherwise the one
// a demo prints is kept.
func launchServe(t *testing.T, args []string, getenv func(string) string, logs io.Writer, token string) *runningShop {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := &lineWriter{lines: make(chan string, 64)}
	s := &runningShop{Token: token, stop: cancel, done: make(chan error, 1)}
	go func() { s.done <- run(ctx, args, getenv, out, logs) }()
	deadline := time.After(60 * time.Second)
	for s.URL == "" || s.AdminURL == "" {
		select {
		case line := <-out.lines:
			if v, ok := strings.CutPrefix(line, "shop: "); ok {
				s.URL = v
			}
			if v, ok := strings.CutPrefix(line, "admin: "); ok {
				s.AdminURL = v
			}
			if _, v, ok := strings.Cut(line, "admin token (demo, kept in "); ok && s.Token == "" {
				_, s.Token, _ = strings.Cut(v, "): ")
			}
		case err := <-s.done:
			t.Fatalf("serve exited early: %v", err)
		case <-deadline:
			t.Fatal("serve did not print its addresses within 60s")
		}
	}
	t.Cleanup(func() {
		cancel()
		select {
		case <-s.done:
		case <-time.After(20 * time.Second):
			t.Error("serve did not stop within 20s")
		}
	})
	waitWithin(t, "the shop to be ready", 60*time.Second, func() bool {
		resp, err := http.Get(s.AdminURL + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return s
}

type response struct {
	Status int
	Header http.Header
	Body   string
}

func do(t *testing.T, method, url, token, body string, hdr ...string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, string(b)}
}

func TestServeEndToEnd(t *testing.T) {
	s := startShop(t)

	home := do(t, "GET", s.URL+"/", "", "")
	if home.Status != 200 || !strings.Contains(home.Body, "Surge Demo Shop") {
		t.Fatalf("home: %d %.200s", home.Status, home.Body)
	}

	var cats struct {
		Items []struct {
			ID   int64
			Slug string
		}
	}
	mustJSON(t, do(t, "GET", s.URL+"/api/v1/categories", "", ""), 200, &cats)
	if len(cats.Items) != 17 {
		t.Fatalf("categories = %d, want 17", len(cats.Items))
	}

	// Walk the whole catalog by cursor: every active product exactly once.
	seen := map[string]bool{}
	next := ""
	for pages := 0; ; pages++ {
		var page struct {
			Items []struct {
				Slug string
			}
			NextCursor string `json:"next_cursor"`
		}
		mustJSON(t, do(t, "GET", s.URL+"/api/v1/products?limit=100&sort=price_asc&cursor="+next, "", ""), 200, &page)
		for _, it := range page.Items {
			if seen[it.Slug] {
				t.Fatalf("product %s listed twice", it.Slug)
			}
			seen[it.Slug] = true
		}
		if page.NextCursor == "" {
			break
		}
		next = page.NextCursor
		if pages > 10 {
			t.Fatal("pagination does not end")
		}
	}
	if len(seen) < 280 || len(seen) > 300 {
		t.Fatalf("walked %d active products of 300 (about 1%% are drafts)", len(seen))
	}

	var slug string
	for k := range seen {
		slug = k
		break
	}
	var prod struct {
		ID       int64
		Variants []struct {
			SKU   string `json:"sku"`
			Price struct {
				Amount   int64
				Currency string
			}
			Available *int64 `json:"available"`
		}
	}
	mustJSON(t, do(t, "GET", s.URL+"/api/v1/products/"+slug, "", ""), 200, &prod)
	if len(prod.Variants) == 0 || prod.Variants[0].SKU == "" || prod.Variants[0].Available == nil || prod.Variants[0].Price.Currency != "USD" {
		t.Fatalf("product %s variants = %+v", slug, prod.Variants)
	}

	// Bad input is a 4xx problem, never a 5xx.
	for _, u := range []string{"/api/v1/products?cursor=garbage", "/api/v1/products?min_price=-1",
		"/api/v1/products?limit=1000", "/api/v1/products?sort=cheapest", "/api/v1/products?category=nope"} {
		r := do(t, "GET", s.URL+u, "", "")
		if r.Status != 400 || r.Header.Get("Content-Type") != "application/problem+json" || !strings.Contains(r.Body, `"detail"`) {
			t.Errorf("GET %s = %d %s %s, want 400 problem", u, r.Status, r.Header.Get("Content-Type"), r.Body)
		}
	}
	if r := do(t, "GET", s.URL+"/api/v1/products/no-such-thing", "", ""); r.Status != 404 {
		t.Errorf("missing product = %d", r.Status)
	}
	if r := do(t, "GET", s.URL+"/products/no-such-thing", "", ""); r.Status != 404 || !strings.Contains(r.Body, "could not find") {
		t.Errorf("missing product page = %d", r.Status)
	}

	// Product page: second request is a cache hit, and a matching ETag is 304.
	page := s.URL + "/products/" + slug
	first := do(t, "GET", page, "", "")
	again := do(t, "GET", page, "", "")
	if first.Status != 200 || again.Header.Get("X-Cache") != "HIT" {
		t.Fatalf("product page: %d, second X-Cache=%q", first.Status, again.Header.Get("X-Cache"))
	}
	if r := do(t, "GET", page, "", "", "If-None-Match", again.Header.Get("ETag")); r.Status != 304 {
		t.Fatalf("If-None-Match = %d, want 304", r.Status)
	}
	if !strings.Contains(again.Header.Get("Surrogate-Key"), fmt.Sprintf("product:%d", prod.ID)) ||
		!strings.Contains(again.Header.Get("Cache-Control"), "s-maxage=") {
		t.Fatalf("CDN headers: Surrogate-Key=%q Cache-Control=%q", again.Header.Get("Surrogate-Key"), again.Header.Get("Cache-Control"))
	}

	// Admin API: refused without the token, and a price change shows at once.
	sku := prod.Variants[0].SKU
	if r := do(t, "PATCH", s.URL+"/api/v1/admin/variants/"+sku, "", `{"price":{"amount":777,"currency":"USD"}}`); r.Status != 401 {
		t.Fatalf("admin without token = %d", r.Status)
	}
	if r := do(t, "PATCH", s.URL+"/api/v1/admin/variants/"+sku, "wrong-token-wrong-token", `{"price":{"amount":777,"currency":"USD"}}`); r.Status != 401 {
		t.Fatalf("admin with wrong token = %d", r.Status)
	}
	if r := do(t, "PATCH", s.URL+"/api/v1/admin/variants/"+sku, s.Token, `{"price":{"amount":777,"currency":"USD"}}`); r.Status != 200 {
		t.Fatalf("price update = %d %s", r.Status, r.Body)
	}
	if r := do(t, "GET", page, "", ""); r.Header.Get("X-Cache") == "HIT" || !strings.Contains(r.Body, "$7.77") {
		t.Fatalf("after price update: X-Cache=%q, new price shown=%v", r.Header.Get("X-Cache"), strings.Contains(r.Body, "$7.77"))
	}
	if r := do(t, "PUT", s.URL+"/api/v1/admin/variants/"+sku+"/stock", s.Token, `{"on_hand": 3}`); r.Status != 200 {
		t.Fatalf("set stock = %d %s", r.Status, r.Body)
	}
	mustJSON(t, do(t, "GET", s.URL+"/api/v1/products/"+slug, "", ""), 200, &prod)
	for _, v := range prod.Variants {
		if v.SKU == sku && (*v.Available != 3 || v.Price.Amount != 777) {
			t.Fatalf("after admin updates: %+v", v)
		}
	}
	for body, want := range map[string]int{`{"on_hand": -1}`: 422, `{"on_hand": "x"}`: 400, `{}`: 400, `{"on_hand": 1, "extra": 2}`: 400, `not json`: 400} {
		if r := do(t, "PUT", s.URL+"/api/v1/admin/variants/"+sku+"/stock", s.Token, body); r.Status != want {
			t.Errorf("set stock %s = %d %s, want %d", body, r.Status, r.Body, want)
		}
	}

	// Operations endpoints.
	if r := do(t, "GET", s.AdminURL+"/livez", "", ""); r.Status != 200 {
		t.Fatalf("livez = %d", r.Status)
	}
	metrics := do(t, "GET", s.AdminURL+"/metrics", "", "").Body
	for _, m := range []string{`http_server_request_duration_seconds_bucket{http_request_method="GET",http_response_status_code="200",http_route="/products/{slug}",url_scheme="http"`,
		`surge_ready{state="ready"} 1`, `go_sql_open_connections{db_name="writer"}`, "surge_page_cache_requests_total", "surge_object_cache_requests_total", "surge_admission_limit", "surge_admission_admitted_total", "go_goroutines"} {
		if !strings.Contains(metrics, m) {
			t.Errorf("metrics lack %s", m)
		}
	}
}

func mustJSON(t *testing.T, r response, status int, v any) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d: %.300s", r.Status, status, r.Body)
	}
	if err := json.Unmarshal([]byte(r.Body), v); err != nil {
		t.Fatalf("decode %.200s: %v", r.Body, err)
	}
}

// TestShutdownDrains checks the order on SIGTERM: readiness goes false while
// the shop still answers, then the process stops.
func TestShutdownDrains(t *testing.T) {
	s := startShop(t, "--drain-delay", "2s")
	s.stop()
	deadline := time.Now().Add(2 * time.Second)
	for {
		r := do(t, "GET", s.AdminURL+"/readyz", "", "")
		if r.Status == 503 && strings.Contains(r.Body, "draining") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readyz did not turn false: %d %s", r.Status, r.Body)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if r := do(t, "GET", s.URL+"/api/v1/categories", "", ""); r.Status != 200 {
		t.Fatalf("shop stopped answering during the drain delay: %d", r.Status)
	}
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatalf("serve returned %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop")
	}
	s.done <- nil // for the cleanup
}

func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := dir + "/surge.yaml"
	if err := writeFile(file, "shop_name: From File\ncurrency: EUR\naddr: 127.0.0.1:1\n"); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"SURGE_CONFIG": file, "SURGE_CURRENCY": "GBP"}
	cmd := newServeCmd(func(k string) string { return env[k] }, io.Discard, io.Discard)
	if err := cmd.Flags().Parse([]string{"--addr", "127.0.0.1:2"}); err != nil {
		t.Fatal(err)
	}
	if err := bindConfig(cmd.Flags(), func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	get := func(n string) string { return cmd.Flags().Lookup(n).Value.String() }
	if get("addr") != "127.0.0.1:2" || get("currency") != "GBP" || get("shop-name") != "From File" || get("admin-addr") != "127.0.0.1:9090" {
		t.Fatalf("addr=%s currency=%s shop-name=%s admin-addr=%s", get("addr"), get("currency"), get("shop-name"), get("admin-addr"))
	}
	if err := writeFile(file, "no_such_setting: 1\n"); err != nil {
		t.Fatal(err)
	}
	cmd = newServeCmd(func(k string) string { return env[k] }, io.Discard, io.Discard)
	if err := bindConfig(cmd.Flags(), func(k string) string { return env[k] }); err == nil || !strings.Contains(err.Error(), "no_such_setting") {
		t.Fatalf("unknown setting: err = %v", err)
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"serve", "--addr", "nonsense"},
		{"serve", "--admin-token", "short"},
		{"serve", "--page-cache-bytes", "10"},
		{"serve", "--cookie-secure", "sometimes"},
		{"serve", "--sqlite-synchronous", "off"},
		{"seed", "--products", "0"},
	} {
		err := run(context.Background(), args, func(string) string { return "" }, io.Discard, io.Discard)
		if err == nil {
			t.Errorf("run %v: want an error", args)
		}
	}
	var out strings.Builder
	if err := run(context.Background(), []string{"version"}, func(string) string { return "" }, &out, io.Discard); err != nil || !strings.HasPrefix(out.String(), "surge ") {
		t.Fatalf("version: %q %v", out.String(), err)
	}
}

func writeFile(path, content string) error {
	return os.WriteFile(path, []byte(content), 0o644)
}
