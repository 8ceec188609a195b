package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.yaml.in/yaml/v3"

	"github.com/surge-commerce/surge/internal/enginetest"
	"github.com/surge-commerce/surge/internal/order"
	"github.com/surge-commerce/surge/internal/slo"
)

// grafanaVars are the Grafana variables the dashboards use, and what
// stands in for them when a query is parsed as PromQL.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__range", "1h", "$__interval", "1m", "$drop", ".*", "$instance", ".*")

// opsQueries returns every PromQL expression of the shipped dashboards and
// rule files, with where it comes from, and the names the rules record.
func opsQueries(t *testing.T) (queries map[string]string, recorded map[string]bool) {
	t.Helper()
	queries, recorded = map[string]string{}, map[string]bool{}
	dashboards, _ := filepath.Glob("../../deploy/grafana/*.json")
	if len(dashboards) < 3 {
		t.Fatalf("dashboards: %v", dashboards)
	}
	labelValues := regexp.MustCompile(`^label_values\(([a-zA-Z_:][a-zA-Z0-9_:]*),`)
	for _, f := range dashboards {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		var walk func(v any)
		walk = func(v any) {
			switch v := v.(type) {
			case map[string]any:
				for k, c := range v {
					if s, ok := c.(string); ok && k == "expr" {
						queries[grafanaVars.Replace(s)] = filepath.Base(f)
					}
					if s, ok := c.(string); ok && k == "query" {
						if m := labelValues.FindStringSubmatch(s); m != nil {
							queries[m[1]] = filepath.Base(f)
						}
					}
					walk(c)
				}
			case []any:
				for _, c := range v {
					walk(c)
				}
			}
		}
		walk(v)
	}
	rules, _ := filepath.Glob("../../deploy/prometheus/*.yml")
	for _, f := range rules {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var rf struct {
			Groups []struct {
				Rules []struct{ Record, Alert, Expr string }
			}
		}
		if err := yaml.Unmarshal(b, &rf); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, g := range rf.Groups {
			for _, r := range g.Rules {
				queries[r.Expr] = filepath.Base(f)
				if r.Record != "" {
					recorded[r.Record] = true
				}
			}
		}
	}
	return queries, recorded
}

// scrapeNames returns the metric names a shop's /metrics exports.
func scrapeNames(t *testing.T, s *runningShop, into map[string]bool) {
	t.Helper()
	for _, line := range strings.Split(do(t, "GET", s.AdminURL+"/metrics", "", "").Body, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			into[line[:i]] = true
		}
	}
}

// engineOnly are metrics only a shop on PostgreSQL replicas and Redis
// exports; without the test engines they cannot be checked.
var engineOnly = map[string]bool{
	"surge_db_replica_lag_seconds": true, "surge_db_replica_reads_total": true, "surge_db_replica_fallback_reads_total": true,
	"surge_redis_pool_connections": true, "surge_redis_pool_wait_seconds_total": true, "surge_redis_pool_timeouts_total": true,
}

// TestOpsPackReferencesExportedMetrics: every PromQL expression of the
// shipped dashboards and rules parses with Prometheus's own parser, and
// every metric it reads is one `surge serve` exports (scraped after a
// shop has served pages, taken an order, opened a drop and dead-lettered
// a message) or one the rules record.
func TestOpsPackReferencesExportedMetrics(t *testing.T) {
	queries, recorded := opsQueries(t)
	natsAddr := freeAddr(t)
	s := startShop(t, "--nats-listen", natsAddr)
	for _, p := range []string{"/", "/search?q=linen", "/api/v1/products", "/cart"} {
		do(t, "GET", s.URL+p, "", "")
	}
	// An order, paid by the workers.
	sku := firstInStockSKU(t, s, 3)
	c := newClient(t, s.URL)
	if st, body := c.do("POST", "/api/v1/cart/items", `{"sku":"`+sku+`","quantity":1}`); st != 201 {
		t.Fatalf("add: %d %s", st, body)
	}
	if st, body := c.do("POST", "/api/v1/checkout", `{"email":"ops@example.com","shipping_address":{"name":"O P","line1":"1 Loop Rd","city":"Localhost","postal_code":"127","country":"US"},"payment":{"card_number":"4242424242424242"}}`,
		"Idempotency-Key", "ops-pack"); st != 201 {
		t.Fatalf("checkout: %d %s", st, body)
	}
	waitMetric(t, s, "surge_order_checkout_to_paid_seconds_count", "1")
	// A drop, which opens its waiting room.
	starts := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	if r := do(t, "POST", s.URL+"/api/v1/admin/drops", s.Token, `{"name":"Ops","slug":"ops","starts_at":"`+starts+`","items":[{"sku":"`+sku+`","allocated":2}]}`); r.Status != 201 {
		t.Fatalf("create drop: %d %s", r.Status, r.Body)
	}
	// A message no retry can fix, dead-lettered at once.
	nc, err := nats.Connect("nats://" + natsAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := nc.JetStream()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.Publish(order.SubjectCreated, []byte("not an order event"), nats.Context(ctx)); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, s, `surge_events_dead_lettered_total{consumer="payment-capture"}`, "1")

	exported := map[string]bool{}
	scrapeNames(t, s, exported)
	engines := os.Getenv("SURGE_TEST_POSTGRES") != "" && os.Getenv("SURGE_TEST_REDIS") != ""
	if engines {
		primary, replica := enginetest.Postgres(t)
		redisURL, prefix := enginetest.Redis(t)
		e := startShop(t, "--db-url", primary, "--db-replica-url", replica, "--redis-url", redisURL, "--redis-prefix", prefix,
			"--waitroom-keys", "k1:"+base64.StdEncoding.EncodeToString(make([]byte, 32)))
		do(t, "GET", e.URL+"/api/v1/products", "", "")
		scrapeNames(t, e, exported)
	}

	var missing, skipped []string
	for q, from := range queries {
		names, err := slo.MetricNames(q)
		if err != nil {
			t.Errorf("%s: %q does not parse: %v", from, q, err)
			continue
		}
		for _, n := range names {
			switch {
			case exported[n] || recorded[n]:
			case engineOnly[n] && !engines:
				skipped = append(skipped, n)
			default:
				missing = append(missing, n+" ("+from+")")
			}
		}
	}
	sort.Strings(missing)
	for _, m := range missing {
		t.Errorf("not exported by surge serve: %s", m)
	}
	if len(skipped) > 0 && !t.Failed() {
		t.Skipf("checked all but the engine metrics %v: set SURGE_TEST_POSTGRES and SURGE_TEST_REDIS (scripts/services start) to check those", skipped)
	}
}
