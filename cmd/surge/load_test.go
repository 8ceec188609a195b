package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/surge-commerce/surge/internal/loadtest"
)

func noEnv(string) string { return "" }

// runLoadCmd runs `surge load ...` through run and returns its stdout.
func runLoadCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := run(ctx, append([]string{"load"}, args...), noEnv, &out, &errOut)
	if testing.Verbose() {
		t.Logf("surge load %s\n%s%s", strings.Join(args, " "), errOut.String(), out.String())
	}
	return out.String(), err
}

func readResult(t *testing.T, path string) *loadtest.Result {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r loadtest.Result
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

// TestLoadBrowseJourneyAgainstShop walks the built-in browse journey
// through a real `surge serve --demo`: every page of every session loads.
// Overload protection is off: on a busy test machine it may rightly shed
// some pages, and this test is about the journey, not the shedding.
func TestLoadBrowseJourneyAgainstShop(t *testing.T) {
	shop := startShop(t, "--admission=false")
	dir := t.TempDir()
	out, err := runLoadCmd(t, "run", "--target", shop.URL, "--journey", "browse", "--think", "20ms-50ms",
		"--rate", "15", "--duration", "2s", "--threshold", "errors<1%", "--threshold", "product:p99<5s",
		"--out", filepath.Join(dir, "r.json"), "--report", filepath.Join(dir, "r.html"), "--quiet")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	r := readResult(t, filepath.Join(dir, "r.json"))
	if r.Total.Errors != 0 || r.Sessions != 30 || r.Completed != 30 {
		t.Fatalf("errors %d %v, sessions %d, completed %d", r.Total.Errors, r.Total.Failures, r.Sessions, r.Completed)
	}
	for _, s := range r.Steps {
		if s.Requests != 30 || s.Statuses["200"] != 30 {
			t.Errorf("step %s: %d requests, statuses %v", s.Name, s.Requests, s.Statuses)
		}
	}
	for _, want := range []string{"home", "category", "product", "total", "pass  errors<1%", "pass  product:p99<5s"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	html, err := os.ReadFile(filepath.Join(dir, "r.html"))
	if err != nil || !bytes.Contains(html, []byte(`data-chart="latency"`)) {
		t.Errorf("report: %v", err)
	}
}

// TestLoadBuyJourneyAgainstShop: list, product, add to cart, checkout with
// an idempotency key, the cart kept by each session's cookie jar.
func TestLoadBuyJourneyAgainstShop(t *testing.T) {
	shop := startShop(t, "--admission=false")
	dir := t.TempDir()
	out, err := runLoadCmd(t, "run", "--target", shop.URL, "--journey", "buy", "--think", "10ms",
		"--rate", "5", "--duration", "2s", "--threshold", "errors<1%", "--out", filepath.Join(dir, "r.json"), "--quiet")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	r := readResult(t, filepath.Join(dir, "r.json"))
	if r.Total.Errors != 0 || r.Completed != 10 {
		t.Fatalf("errors %d %v, %d of 10 sessions completed", r.Total.Errors, r.Total.Failures, r.Completed)
	}
	for _, s := range r.Steps {
		if s.Requests != 10 {
			t.Errorf("step %s: %d requests", s.Name, s.Requests)
		}
	}
}

// TestLoadThresholdsSetExitStatus: thresholds that fail make run return a
// ThresholdError (main exits 1); thresholds that hold return nil.
func TestLoadThresholdsSetExitStatus(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("fail") {
			http.Error(w, "no", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	base := []string{"run", "--rate", "50", "--duration", "500ms", "--quiet"}
	if _, err := runLoadCmd(t, append(base, "--target", srv.URL, "--threshold", "errors<1%", "--threshold", "p99<5s")...); err != nil {
		t.Errorf("passing thresholds: %v", err)
	}
	out, err := runLoadCmd(t, append(base, "--target", srv.URL+"/?fail", "--threshold", "errors<1%", "--threshold", "p99<5s")...)
	var te *loadtest.ThresholdError
	if !errors.As(err, &te) || te.Failed != 1 || te.Total != 2 {
		t.Errorf("failing threshold: err %v", err)
	}
	if !strings.Contains(out, "FAIL  errors<1% (actual 100%)") || !strings.Contains(out, "status 503 x25") {
		t.Errorf("summary:\n%s", out)
	}
}

func TestLoadScenarioFileThresholds(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"id":"7"}`)
	}))
	defer srv.Close()
	file := filepath.Join(t.TempDir(), "s.yaml")
	os.WriteFile(file, []byte("name: s\nthresholds: ['item:requests>1000000']\nsteps:\n  - name: item\n    url: /item\n    extract: [{name: id, json: id}]\n  - name: again\n    url: /item/{{.id}}\n"), 0o644)
	out, err := runLoadCmd(t, "run", "--target", srv.URL, "--scenario", file, "--vus", "2", "--duration", "300ms", "--quiet")
	var te *loadtest.ThresholdError
	if !errors.As(err, &te) || !strings.Contains(out, "FAIL  item:requests>1000000") {
		t.Errorf("the file's threshold was not applied: %v\n%s", err, out)
	}
}

func TestLoadFlagErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--target", "http://x"}, "want exactly one load profile"},
		{[]string{"--target", "http://x", "--rate", "5", "--vus", "3", "--duration", "1s"}, "want exactly one load profile"},
		{[]string{"--target", "http://x", "--rate", "5"}, "--duration: required with --rate"},
		{[]string{"--target", "http://x", "--rate", "fast", "--duration", "1s"}, "--rate: rate \"fast\""},
		{[]string{"--target", "http://x", "--stages", "10s:5", "--duration", "1s"}, "the profile already lasts 10s"},
		{[]string{"--target", "x", "--rate", "5", "--duration", "1s"}, "--target \"x\": want an http://"},
		{[]string{"--rate", "5", "--duration", "1s"}, "no target"},
		{[]string{"--target", "http://x", "--journey", "nope", "--rate", "5", "--duration", "1s"}, "unknown journey \"nope\""},
		{[]string{"--target", "http://x", "--journey", "drop", "--rate", "5", "--duration", "1s"}, "pass --drop ID"},
		{[]string{"--target", "http://x", "--journey", "drop", "--drop", "d/1", "--drop-sku", "X", "--rate", "5", "--duration", "1s"}, "drop ID \"d/1\""},
		{[]string{"--target", "http://x", "--journey", "drop", "--drop", "d1", "--drop-sku", "X", "--drop-quantity", "0", "--rate", "5", "--duration", "1s"}, "--drop-quantity"},
		{[]string{"--target", "http://x", "--journey", "browse", "--drop", "d1", "--rate", "5", "--duration", "1s"}, "only for the drop journey"},
		{[]string{"--target", "http://x", "--rate", "5", "--duration", "1s", "--source-ips", "10.0.0.0/8"}, "--source-ips"},
		{[]string{"--target", "http://x", "--rate", "5", "--duration", "1s", "--source-ips", "127.0.0.2", "--connections", "4"}, "pick one"},
		{[]string{"--target", "http://x", "--journey", "browse", "--mix", "buy=1", "--rate", "5", "--duration", "1s"}, "pick one"},
		{[]string{"--target", "http://x", "--scenario", "/nonexistent.yaml", "--rate", "5", "--duration", "1s"}, "--scenario: open /nonexistent.yaml"},
		{[]string{"--target", "http://x", "--rate", "5", "--duration", "1s", "--threshold", "p99<soon"}, "--threshold: threshold \"p99<soon\""},
		{[]string{"--target", "http://x", "--vus", "5", "--duration", "1s", "--think", "x"}, "--think: think time \"x\""},
		{[]string{"--target", "http://x", "--rate", "5", "--duration", "1s", "--max-in-flight", "0"}, "--max-in-flight"},
		{[]string{"--target", "http://x", "--rate", "5", "--duration", "1s", "--agents", "nohost"}, "--agents \"nohost\""},
	}
	for _, tt := range tests {
		_, err := runLoadCmd(t, append([]string{"run"}, tt.args...)...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v:\n got  %v\n want %q", tt.args, err, tt.want)
		}
	}
}

// TestLoadDropJourneyAgainstShop rehearses a drop on a real shop: 300
// buyers arrive within 3s for 60 units, before and after the line opens.
// Every buyer gets a final answer, exactly the 60 units sell, and
// nothing answers 5xx. The buyers come from many loopback addresses, as
// buyers come from their own: the shop limits joins per address.
func TestLoadDropJourneyAgainstShop(t *testing.T) {
	const buyers, units = 300, 60
	shop := startShop(t, "--admission=false")
	hotProduct(t, shop.URL, "DROP-1", units)
	starts := time.Now().Add(2 * time.Second).UTC().Format(time.RFC3339Nano)
	created := do(t, "POST", shop.URL+"/api/v1/admin/drops", testToken, fmt.Sprintf(`{"name":"Load Drop","slug":"load-drop",
		"starts_at":%q,"per_customer_limit":2,"items":[{"sku":"DROP-1","allocated":%d}],
		"room":{"rate_per_minute":60000,"max_active":200,"prequeue_opens":"1m"}}`, starts, units))
	var d struct{ ID string }
	if err := json.Unmarshal([]byte(created.Body), &d); created.Status != 201 || err != nil || d.ID == "" {
		t.Fatalf("create drop: %d %s", created.Status, created.Body)
	}

	dir := t.TempDir()
	out, err := runLoadCmd(t, "run", "--target", shop.URL, "--journey", "drop", "--drop", d.ID,
		"--arrivals", fmt.Sprintf("n=%d,within=3s", buyers), "--source-ips", "127.0.1.0/24", "--grace", "20s",
		"--threshold", "errors<1%", "--threshold", "unanswered<1", "--threshold", "sold==100%", "--out", filepath.Join(dir, "r.json"),
		"--report", filepath.Join(dir, "r.html"), "--quiet")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	r := readResult(t, filepath.Join(dir, "r.json"))
	if r.Drop == nil {
		t.Fatalf("no drop outcomes in the result:\n%s", out)
	}
	if r.Sessions != buyers || r.Drop.Buyers != buyers || r.Drop.FinalAnswers != r.Sessions || r.Completed != buyers {
		t.Errorf("sessions %d, buyers %d, final answers %d, completed %d; want %d each", r.Sessions, r.Drop.Buyers, r.Drop.FinalAnswers, r.Completed, buyers)
	}
	if r.Drop.Units != units || r.Drop.Bought != units {
		t.Errorf("bought %d orders, %d units; want %d", r.Drop.Bought, r.Drop.Units, units)
	}
	// The shop told the generator the drop's size and start: how much of
	// it sold, and how fast after its start.
	if r.Drop.Allocated != units || r.Drop.StartS < 1 || r.Drop.SellOutS() <= 0 {
		t.Errorf("allocated %d (want %d), start %.1fs into the run (want about 2s), sold out after %.1fs", r.Drop.Allocated, units, r.Drop.StartS, r.Drop.SellOutS())
	}
	for code, n := range r.Total.Statuses {
		if strings.HasPrefix(code, "5") || code == "none" {
			t.Errorf("%d answers %s", n, code)
		}
	}
	for _, step := range []string{"join", "status", "add", "checkout"} {
		if st, ok := r.Step(step); !ok || st.Requests == 0 {
			t.Errorf("no %s requests", step)
		}
	}
	for _, want := range []string{fmt.Sprintf("drop: %d buyers, %d final answers: bought %d (%d units)", buyers, buyers, units, units),
		"every buyer got a final answer", "pass  unanswered<1"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	if html, err := os.ReadFile(filepath.Join(dir, "r.html")); err != nil || !bytes.Contains(html, []byte(fmt.Sprintf("Drop: %d buyers, %d final answers", buyers, buyers))) {
		t.Errorf("report lacks the drop outcomes: %v", err)
	}
	var after struct{ Available int64 }
	mustJSON(t, do(t, "GET", shop.URL+"/api/v1/admin/drops/"+d.ID, testToken, ""), 200, &after)
	if after.Available != 0 {
		t.Errorf("drop has %d units left, want 0", after.Available)
	}
}

// startAgent runs `surge load agent` on a loopback port and returns its
// address once it printed it.
func startAgent(t *testing.T) string {
	t.Helper()
	return startAgentFrom(t, "")
}

// TestLoadAgents runs a test from two agents on loopback: the controller
// splits the rate, the merged counts equal the sum of the agents' and the
// requests the target saw, and the merged histogram holds every request.
func TestLoadAgents(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// One read of the counter: two requests must never both see
		// the same multiple of ten.
		if hits.Add(1)%10 == 0 {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	defer srv.Close()
	a1, a2 := startAgent(t), startAgent(t)
	out := filepath.Join(t.TempDir(), "r.json")
	stdout, err := runLoadCmd(t, "run", "--target", srv.URL, "--rate", "200", "--duration", "1s",
		"--agents", a1+","+a2, "--out", out, "--threshold", "errors<50%")
	if err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	r := readResult(t, out)
	if len(r.Agents) != 2 {
		t.Fatalf("agents: %+v", r.Agents)
	}
	sum, errSum := r.Agents[0].Requests+r.Agents[1].Requests, r.Agents[0].Errors+r.Agents[1].Errors
	if r.Total.Requests != sum || r.Total.Requests != hits.Load() || r.Total.Requests != 200 {
		t.Errorf("merged %d requests, agents %d + %d, target saw %d, want 200", r.Total.Requests, r.Agents[0].Requests, r.Agents[1].Requests, hits.Load())
	}
	if r.Agents[0].Requests != 100 || r.Agents[1].Requests != 100 {
		t.Errorf("the rate was not split evenly: %+v", r.Agents)
	}
	if r.Total.Errors != errSum || r.Total.Errors != 20 || r.Total.Hist.Count() != 200 {
		t.Errorf("merged %d errors (agents %d), histogram count %d", r.Total.Errors, errSum, r.Total.Hist.Count())
	}
	var timeline int64
	for _, p := range r.Timeline {
		timeline += p.Requests
	}
	if timeline != 200 || r.Total.Statuses["500"] != 20 {
		t.Errorf("timeline holds %d requests, statuses %v", timeline, r.Total.Statuses)
	}
	if !strings.Contains(stdout, "agent "+a1+": 100 requests") {
		t.Errorf("summary lacks the agents:\n%s", stdout)
	}
}

// TestLoadJudgedBySLOFile: --slo judges a rehearsal by the objectives
// production alerts on, one verdict line each; an objective the run
// breaks fails the command.
func TestLoadJudgedBySLOFile(t *testing.T) {
	shop := startShop(t, "--admission=false")
	dir := t.TempDir()
	out, err := runLoadCmd(t, "run", "--target", shop.URL, "--journey", "buy", "--think", "10ms",
		"--rate", "5", "--duration", "2s", "--slo", "../../deploy/slo/surge.yaml", "--out", filepath.Join(dir, "r.json"), "--quiet")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"slos:", "pass  checkout-availability >= 99.9% good (actual 100%, 0 of 10 requests bad)",
		"pass  cart-add-availability", "pass  checkout-latency", "pass  storefront-latency-cached",
		"skip  checkout-payments >= 99%: server-side events (surge_events_processed_total)",
		"skip  waitroom-availability >= 99.9%: no request of this run counts"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	if r := readResult(t, filepath.Join(dir, "r.json")); len(r.SLOs) != 9 {
		t.Errorf("result has %d SLO verdicts, want 9", len(r.SLOs))
	}

	// An objective that calls every placed order bad.
	strict := filepath.Join(dir, "strict.yaml")
	if err := writeFile(strict, `version: prometheus/v1
service: surge
slos:
  - name: checkout-never-201
    objective: 99
    sli:
      events:
        error_query: sum(rate(http_server_request_duration_seconds_count{http_request_method="POST",http_route="/api/v1/checkout",http_response_status_code="201"}[{{.window}}]))
        total_query: sum(rate(http_server_request_duration_seconds_count{http_request_method="POST",http_route="/api/v1/checkout"}[{{.window}}]))
`); err != nil {
		t.Fatal(err)
	}
	out, err = runLoadCmd(t, "run", "--target", shop.URL, "--journey", "buy", "--think", "10ms",
		"--rate", "5", "--duration", "1s", "--slo", strict, "--quiet")
	var te *loadtest.ThresholdError
	if !errors.As(err, &te) || !strings.Contains(out, "FAIL  checkout-never-201 >= 99% good (actual 0%, 5 of 5 requests bad)") {
		t.Fatalf("err %v, want a threshold failure\n%s", err, out)
	}
	if _, err := runLoadCmd(t, "run", "--target", shop.URL, "--rate", "1", "--duration", "1s", "--slo", filepath.Join(dir, "missing.yaml")); err == nil {
		t.Error("a missing SLO file was accepted")
	}
}
