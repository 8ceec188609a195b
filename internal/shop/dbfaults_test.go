package shop_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/surge-commerce/surge/internal/demoshop"
	"github.com/surge-commerce/surge/internal/enginetest"
	"github.com/surge-commerce/surge/internal/pgstore"
	"github.com/surge-commerce/surge/internal/shop"
)

// TestReplicaKilledUnderReadLoad: killing the PostgreSQL read replica
// while shoppers search costs them nothing. Reads that fail on the dead
// replica run again on the primary at once, and the replica leaves the
// rotation at the first failure rather than at its next health check, so
// not one search is answered 5xx.
func TestReplicaKilledUnderReadLoad(t *testing.T) {
	const workers, beforeKill, afterKill = 8, 100, 400
	primary, _ := enginetest.Postgres(t)
	standby := enginetest.PostgresStandby(t, primary)

	cfg := shop.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.DBURL, cfg.DBReplicaURLs = primary, []string{standby.URL}
	// The engines are shared with the rest of the suite, whose writes can
	// leave the replica seconds behind on a busy machine, and a lagging
	// replica rightly leaves the rotation. This test is about killing it,
	// not about lag: accept any lag, so the reads go there until the kill.
	cfg.MaxReplicaLag = 10 * time.Minute
	// Every search reaches the database: no page cache, no shedding.
	cfg.PageCache, cfg.Admission, cfg.AccessLog = false, false, false
	cfg.WaitroomKeys = "k1:" + strings.Repeat("QUJD", 11)
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	reg := prometheus.NewRegistry()
	sh, err := shop.Open(t.Context(), cfg, log, reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sh.Close() })
	cats, prods := demoshop.Generate(demoshop.Options{Products: 40, Seed: 1})
	if err := sh.Store.ImportCatalog(t.Context(), cats, prods); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sh.Handler)
	t.Cleanup(srv.Close)
	pg := sh.Store.(*pgstore.Store)
	eventually(t, "the replica is up", func() bool {
		st := pg.Replicas()
		return len(st) == 1 && st[0].Up
	})
	name := pg.Replicas()[0].Name
	replicaReads := func() float64 {
		return metricValue(t, reg, "surge_db_replica_reads_total", name)
	}

	// Shoppers search for words from the catalog, each query different
	// enough to be a real read.
	var words []string
	for _, p := range prods {
		words = append(words, strings.Fields(p.Name)...)
	}
	var (
		done     atomic.Int64
		mu       sync.Mutex
		statuses = map[int]int{}
		failures []string
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second}
	for w := range workers {
		wg.Go(func() {
			for i := w; ; i += workers {
				select {
				case <-stop:
					return
				default:
				}
				url := fmt.Sprintf("%s/api/v1/products?q=%s&limit=%d", srv.URL, words[i%len(words)], 1+i%7)
				resp, err := client.Get(url)
				mu.Lock()
				if err != nil {
					failures = append(failures, err.Error())
				} else {
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					statuses[resp.StatusCode]++
					if resp.StatusCode >= 500 && len(failures) < 5 {
						failures = append(failures, fmt.Sprintf("%d %s", resp.StatusCode, body))
					}
				}
				mu.Unlock()
				done.Add(1)
			}
		})
	}
	stopLoad := func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}
	t.Cleanup(stopLoad)
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); !cond(); {
			if time.Now().After(deadline) {
				stopLoad()
				t.Fatalf("%s: not within 30s (statuses %v, replicas %+v)", what, statuses, pg.Replicas())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor("searches served by the replica", func() bool { return replicaReads() >= beforeKill })

	standby.Kill(t)
	killedAt := done.Load()
	waitFor("searches after the kill", func() bool { return done.Load() >= killedAt+afterKill })
	stopLoad()

	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d searches: statuses %v; %v served by the replica", done.Load(), statuses, replicaReads())
	for code, n := range statuses {
		if code != http.StatusOK {
			t.Errorf("%d searches answered %d, want every one 200", n, code)
		}
	}
	if len(failures) > 0 {
		t.Errorf("failures: %q", failures)
	}
	if st := pg.Replicas(); st[0].Up {
		t.Errorf("replica still marked up after it was killed: %+v", st[0])
	}
	retried := metricValue(t, reg, "surge_db_replica_read_retries_total", name)
	if retried < 1 {
		t.Errorf("%v reads retried on the primary; the kill must have failed some on the replica", retried)
	}
}

// metricValue returns the value of the counter or gauge name with label
// replica=replica in reg, 0 when there is none.
func metricValue(t *testing.T, reg *prometheus.Registry, name, replica string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "replica" && l.GetValue() == replica {
					if c := m.GetCounter(); c != nil {
						return c.GetValue()
					}
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	return 0
}

// TestPrimaryDownIs503: with the PostgreSQL primary unreachable, what
// needs it is answered 503 with Retry-After, on pages and in the API, as
// any dependency outage is: the request may succeed in a moment and was no
// fault of the shopper's. Never a 500.
func TestPrimaryDownIs503(t *testing.T) {
	primary, _ := enginetest.Postgres(t)
	px := enginetest.NewProxy(t, primary)
	cfg := shop.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.DBURL = px.URL
	cfg.PageCache, cfg.Admission, cfg.AccessLog = false, false, false
	cfg.WaitroomKeys = "k1:" + strings.Repeat("QUJD", 11)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	sh, err := shop.Open(t.Context(), cfg, log, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sh.Close() })
	cats, prods := demoshop.Generate(demoshop.Options{Products: 10, Seed: 1})
	if err := sh.Store.ImportCatalog(t.Context(), cats, prods); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sh.Handler)
	t.Cleanup(srv.Close)
	sku := prods[0].Variants[0].SKU
	if code, body := call(t, http.DefaultClient, "GET", srv.URL+"/api/v1/products?q=a", ""); code != 200 {
		t.Fatalf("search with the primary up: %d %s", code, body)
	}

	px.Cut() // as the primary going down: connections reset, new ones refused
	for _, r := range []struct{ method, path, body string }{
		{"GET", "/api/v1/products?q=" + strings.Fields(prods[1].Name)[0], ""},
		{"GET", "/search?q=" + strings.Fields(prods[2].Name)[0], ""},
		{"GET", "/api/v1/products/" + prods[3].Slug, ""},
		{"GET", "/products/" + prods[4].Slug, ""},
		{"POST", "/api/v1/cart/items", `{"sku":"` + sku + `","quantity":1}`},
	} {
		req, _ := http.NewRequest(r.method, srv.URL+r.path, strings.NewReader(r.body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Errorf("%s %s with the primary down: %d, Retry-After %q; want 503 with Retry-After",
				r.method, r.path, resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	}
}
