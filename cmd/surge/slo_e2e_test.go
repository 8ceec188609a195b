package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// binary finds a program: the env variable the test harness writes
// (scripts/services), else the first of names on PATH, else "".
func binary(env string, names ...string) string {
	if p := os.Getenv(env); p != "" {
		return p
	}
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	return ""
}

// freeAddr returns a loopback address nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	return freeAddrs(t, 1)[0]
}

// freeAddrs returns n distinct loopback addresses nothing listens on now.
// All n are held open until each is known, since a port closed at once
// may be handed out again by the next call (two processes then race for
// one address).
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	addrs := make([]string, n)
	for i := range addrs {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		addrs[i] = ln.Addr().String()
	}
	return addrs
}

// startProcess runs a server process for the test, its output in a log
// file shown if the test fails, and waits until ready answers 200.
func startProcess(t *testing.T, name, ready string, bin string, args ...string) {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			if len(b) > 4000 {
				b = b[len(b)-4000:]
			}
			t.Logf("%s log (end):\n%s", name, b)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(ready)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		select {
		case <-exited:
			t.Fatalf("%s exited while starting", name)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready within 30s", name)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// serveOn runs `surge serve` through run on fixed addresses and data
// directory, so a test can stop it and start it again where Prometheus
// scrapes it. It returns a function that stops it.
func serveOn(t *testing.T, dir, addr, admin string, extra ...string) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	args := append([]string{"serve", "--addr", addr, "--admin-addr", admin, "--data-dir", dir, "--demo",
		"--demo-products", "300", "--admin-token", testToken, "--access-log=false", "--log-level", "error"}, extra...)
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, func(string) string { return "" }, io.Discard, io.Discard) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				t.Error("serve did not stop within 20s")
			}
		})
	}
	t.Cleanup(stop)
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return stop
			}
		}
		select {
		case err := <-done:
			t.Fatalf("serve exited early: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("serve not ready within 60s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// hook records the notifications Alertmanager sends to its webhook.
type hook struct {
	mu     sync.Mutex
	events []string // "firing SurgeCheckoutPayments page"
}

func (h *hook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var msg struct {
		Alerts []struct {
			Status string            `json:"status"`
			Labels map[string]string `json:"labels"`
		} `json:"alerts"`
	}
	if err := json.NewDecoder(r.Body).Decode(&msg); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	h.mu.Lock()
	for _, a := range msg.Alerts {
		h.events = append(h.events, a.Status+" "+a.Labels["alertname"]+" "+a.Labels["sloth_severity"])
	}
	h.mu.Unlock()
}

func (h *hook) has(event string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range h.events {
		if e == event {
			return true
		}
	}
	return false
}

// getJSON decodes a JSON answer from url into v.
func getJSON(url string, v any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// eventually waits for cond with a deadline, checking every 250 ms.
func eventually(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// TestSLOAlertEndToEnd: a real Prometheus scrapes `surge serve` with the
// SLO rules (the test variant generated from deploy/slo, windows divided
// by 60), a real Alertmanager receives its alerts. The payment provider
// fails every call for a while: the checkout payments burn-rate alert
// pages and reaches Alertmanager. The provider recovers (the shop is
// restarted healthy on the same addresses): the alert resolves and
// Alertmanager sends the resolution.
func TestSLOAlertEndToEnd(t *testing.T) {
	prom := binary("SURGE_TEST_PROMETHEUS_BIN", "prometheus")
	am := binary("SURGE_TEST_ALERTMANAGER_BIN", "prometheus-alertmanager", "alertmanager")
	if prom == "" || am == "" {
		t.Skip("prometheus and alertmanager not found: install Debian's prometheus and prometheus-alertmanager (scripts/services start does) or set SURGE_TEST_PROMETHEUS_BIN and SURGE_TEST_ALERTMANAGER_BIN")
	}
	rules, err := filepath.Abs("../../deploy/prometheus/tests/slo-rules-fast.yml")
	if err != nil {
		t.Fatal(err)
	}
	const alert = "SurgeCheckoutPayments"

	hk := &hook{}
	hookSrv := httptest.NewServer(hk)
	t.Cleanup(hookSrv.Close)
	dir := t.TempDir()
	addrs := freeAddrs(t, 4)
	amAddr, promAddr, shopAddr, adminAddr := addrs[0], addrs[1], addrs[2], addrs[3]
	amConf := filepath.Join(dir, "alertmanager.yml")
	mustWriteFile(t, amConf, fmt.Sprintf(`route:
  receiver: test
  group_by: [alertname, sloth_severity]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: test
    webhook_configs:
      - url: %s/hook
        send_resolved: true
`, hookSrv.URL))
	startProcess(t, "alertmanager", "http://"+amAddr+"/-/ready", am, "--config.file="+amConf,
		"--storage.path="+filepath.Join(dir, "am"), "--web.listen-address="+amAddr, "--cluster.listen-address=")

	promConf := filepath.Join(dir, "prometheus.yml")
	mustWriteFile(t, promConf, fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [%q]
alerting:
  alertmanagers:
    - static_configs: [{targets: [%q]}]
scrape_configs:
  - job_name: surge
    static_configs: [{targets: [%q]}]
`, rules, amAddr, adminAddr))
	startProcess(t, "prometheus", "http://"+promAddr+"/-/ready", prom, "--config.file="+promConf,
		"--storage.tsdb.path="+filepath.Join(dir, "prom"), "--web.listen-address="+promAddr)

	// The provider fails every call: every payment attempt is retried.
	shopDir := filepath.Join(dir, "shop")
	stop := serveOn(t, shopDir, shopAddr, adminAddr, "--payment-failure-rate", "1")
	s := &runningShop{URL: "http://" + shopAddr, AdminURL: "http://" + adminAddr}
	skus := inStockSKUs(t, s, 5)

	// Shoppers check out all along, one every 200 ms, through the burst
	// and after it.
	var checkouts, placed atomic.Int64
	buyCtx, stopBuying := context.WithCancel(context.Background())
	buying := make(chan struct{})
	go func() {
		defer close(buying)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-buyCtx.Done():
				return
			case <-tick.C:
			}
			checkouts.Add(1)
			if checkoutOnce(s.URL, skus[i%len(skus)], i) {
				placed.Add(1)
			}
		}
	}()
	t.Cleanup(func() { stopBuying(); <-buying })

	firing := func(severity string) bool {
		var res struct {
			Data struct {
				Alerts []struct {
					Labels map[string]string `json:"labels"`
					State  string            `json:"state"`
				} `json:"alerts"`
			} `json:"data"`
		}
		if err := getJSON("http://"+promAddr+"/api/v1/alerts", &res); err != nil {
			t.Log(err)
			return false
		}
		for _, a := range res.Data.Alerts {
			if a.Labels["alertname"] == alert && a.Labels["sloth_severity"] == severity && a.State == "firing" {
				return true
			}
		}
		return false
	}
	start := time.Now()
	eventually(t, "checkout payments page alert firing in Prometheus", 60*time.Second, func() bool { return firing("page") })
	t.Logf("page alert firing %v after the burst began (%d checkouts, %d placed)", time.Since(start).Round(time.Second), checkouts.Load(), placed.Load())
	inAlertmanager := func() bool {
		var alerts []struct {
			Labels map[string]string `json:"labels"`
			Status struct {
				State string `json:"state"`
			} `json:"status"`
		}
		q := url.Values{"filter": {`alertname="` + alert + `"`, `sloth_severity="page"`}}
		if err := getJSON("http://"+amAddr+"/api/v2/alerts?"+q.Encode(), &alerts); err != nil {
			t.Log(err)
			return false
		}
		return len(alerts) > 0 && alerts[0].Status.State == "active"
	}
	eventually(t, "Alertmanager holding the page alert", 30*time.Second, inAlertmanager)
	eventually(t, "Alertmanager notifying the page", 30*time.Second, func() bool { return hk.has("firing " + alert + " page") })
	if firing := func() bool {
		// The storefront and checkout requests themselves never failed:
		// the provider's outage burns the payments budget only.
		return firingAny(t, promAddr, "SurgeCheckoutAvailability") || firingAny(t, promAddr, "SurgeStorefrontAvailability")
	}(); firing {
		t.Error("checkout or storefront availability alert fired on a payment provider outage")
	}

	// The provider recovers.
	stop()
	serveOn(t, shopDir, shopAddr, adminAddr)
	recovered := time.Now()
	eventually(t, "page alert resolved in Prometheus", 90*time.Second, func() bool { return !firing("page") })
	t.Logf("page alert resolved %v after recovery", time.Since(recovered).Round(time.Second))
	eventually(t, "Alertmanager notifying the resolution", 30*time.Second, func() bool { return hk.has("resolved " + alert + " page") })
	eventually(t, "Alertmanager no longer holding the alert", 30*time.Second, func() bool { return !inAlertmanager() })
	if placed.Load() == 0 {
		t.Fatal("no checkout was placed")
	}
}

// firingAny reports whether Prometheus has alertname firing at all.
func firingAny(t *testing.T, promAddr, alertname string) bool {
	var res struct {
		Data struct {
			Alerts []struct {
				Labels map[string]string `json:"labels"`
				State  string            `json:"state"`
			} `json:"alerts"`
		} `json:"data"`
	}
	if err := getJSON("http://"+promAddr+"/api/v1/alerts", &res); err != nil {
		t.Log(err)
		return false
	}
	for _, a := range res.Data.Alerts {
		if a.Labels["alertname"] == alertname && a.State == "firing" {
			return true
		}
	}
	return false
}

// inStockSKUs lists SKUs with at least n units available.
func inStockSKUs(t *testing.T, s *runningShop, n int64) []string {
	t.Helper()
	var page struct {
		Items []struct{ Slug string }
	}
	mustJSON(t, do(t, "GET", s.URL+"/api/v1/products?in_stock=true&limit=50", "", ""), 200, &page)
	var out []string
	for _, it := range page.Items {
		var p struct {
			Variants []struct {
				SKU       string `json:"sku"`
				Available int64  `json:"available"`
			}
		}
		mustJSON(t, do(t, "GET", s.URL+"/api/v1/products/"+it.Slug, "", ""), 200, &p)
		for _, v := range p.Variants {
			if v.Available >= n {
				out = append(out, v.SKU)
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("no SKU in stock")
	}
	return out
}

// checkoutOnce adds sku to a new cart and checks it out; it reports
// whether the order was placed. Failures are the shop's business here.
func checkoutOnce(base, sku string, i int) bool {
	c := &http.Client{Timeout: 10 * time.Second}
	post := func(path, body string, cookies []*http.Cookie, hdr ...string) (*http.Response, error) {
		req, err := http.NewRequest("POST", base+path, strings.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		for _, ck := range cookies {
			req.AddCookie(ck)
		}
		return c.Do(req)
	}
	resp, err := post("/api/v1/cart/items", `{"sku":"`+sku+`","quantity":1}`, nil)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 201 {
		return false
	}
	resp, err = post("/api/v1/checkout", `{"email":"slo@example.com","shipping_address":{"name":"S L O","line1":"1 Loop Rd","city":"Localhost","postal_code":"127","country":"US"},"payment":{"card_number":"4242424242424242"}}`,
		resp.Cookies(), "Idempotency-Key", fmt.Sprintf("slo-%d-%d", time.Now().UnixNano(), i))
	if err != nil {
		return false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == 201
}

func mustWriteFile(t *testing.T, path, content string) {
	t.Helper()
	if err := writeFile(path, content); err != nil {
		t.Fatal(err)
	}
}

// TestShippedRulesOnServicesPrometheus: the Prometheus scripts/services
// starts, loaded with the shipped rule files, scrapes a shop the test
// names in a file_sd target file, and evaluates every rule group without
// an error.
func TestShippedRulesOnServicesPrometheus(t *testing.T) {
	prom, targets := os.Getenv("SURGE_TEST_PROMETHEUS"), os.Getenv("SURGE_TEST_PROMETHEUS_TARGETS")
	if prom == "" || targets == "" {
		t.Skip("SURGE_TEST_PROMETHEUS not set: run scripts/services start and source its env")
	}
	s := startShop(t)
	run := fmt.Sprintf("r%d", time.Now().UnixNano())
	target := filepath.Join(targets, run+".json")
	mustWriteFile(t, target, fmt.Sprintf(`[{"targets": [%q], "labels": {"test_run": %q}}]`, strings.TrimPrefix(s.AdminURL, "http://"), run))
	t.Cleanup(func() { os.Remove(target) })

	ready := func() bool {
		var res struct {
			Data struct {
				Result []struct {
					Value []any `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		q := url.Values{"query": {`surge_ready{state="ready", test_run="` + run + `"}`}}
		if err := getJSON(prom+"/api/v1/query?"+q.Encode(), &res); err != nil {
			t.Log(err)
			return false
		}
		return len(res.Data.Result) == 1 && res.Data.Result[0].Value[1] == "1"
	}
	eventually(t, "Prometheus scraping the shop named in the file_sd target file", 30*time.Second, ready)

	var rules struct {
		Data struct {
			Groups []struct {
				Name  string `json:"name"`
				File  string `json:"file"`
				Rules []struct {
					Name   string `json:"name"`
					Health string `json:"health"`
					Error  string `json:"lastError"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	// Every group evaluates within a few of the 1 s intervals.
	eventually(t, "every shipped rule evaluated", 30*time.Second, func() bool {
		if err := getJSON(prom+"/api/v1/rules", &rules); err != nil {
			t.Log(err)
			return false
		}
		for _, g := range rules.Data.Groups {
			for _, r := range g.Rules {
				if r.Health != "ok" {
					return false
				}
			}
		}
		return len(rules.Data.Groups) > 0
	})
	files := map[string]bool{}
	for _, g := range rules.Data.Groups {
		files[filepath.Base(g.File)] = true
		for _, r := range g.Rules {
			if r.Error != "" {
				t.Errorf("%s: %s: %s", g.Name, r.Name, r.Error)
			}
		}
	}
	for _, f := range []string{"slo-rules.yml", "saturation-rules.yml"} {
		if !files[f] {
			t.Errorf("services Prometheus has not loaded %s (has %v)", f, files)
		}
	}
}
