package capacity

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/surge-commerce/surge/internal/loadtest"
)

// CalibrateConfig says what to measure and how.
type CalibrateConfig struct {
	Target      string // the replica's shop URL
	Admin       string // its operations listener (/metrics, /debug/pprof)
	WorkerAdmin string // a separate `surge worker`'s operations listener, if any
	AdminToken  string // for the admin API: stock for checkouts, a drop for the line
	DBURL       string // PostgreSQL, to read its CPU (on this machine)
	RedisURL    string // Redis, to read its CPU and commands
	PIDs        map[string]int
	Classes     []string
	Step        time.Duration // each stepped load's length
	SourceIPs   string        // local addresses for the drop's joins (the shop limits joins per address)
	SLO         map[string]time.Duration
	MaxRate     float64 // cap on requests per second of any step
	Version     string  // the planner's
	Log         io.Writer
}

// classRun is how one class is driven and counted.
type classRun struct {
	scenario string   // YAML of a loadtest scenario
	routes   []string // the routes its requests count under
	stepName string   // the scenario step whose latency judges the class ("": all)
	pre      []string // classes whose cost the scenario also pays, once per session each
	perSess  float64  // requests of this class per session
	drop     bool     // needs the drop and source addresses
}

// Calibrate measures a running replica and returns its profile.
func Calibrate(ctx context.Context, cfg CalibrateConfig) (*Profile, error) {
	if cfg.Step <= 0 {
		cfg.Step = 5 * time.Second
	}
	if cfg.MaxRate <= 0 {
		cfg.MaxRate = 20000
	}
	logf := func(format string, args ...any) {
		if cfg.Log != nil {
			fmt.Fprintf(cfg.Log, format+"\n", args...)
		}
	}
	hc := &http.Client{Timeout: 60 * time.Second}
	p := &Profile{Version: 1, Taken: time.Now().UTC(), Classes: map[string]*ClassCost{}}
	p.Machine = machine(cfg.Version)
	first, err := ScrapeMetrics(ctx, hc, cfg.Admin)
	if err != nil {
		return nil, fmt.Errorf("--admin: %w", err)
	}
	p.Target = Target{URL: cfg.Target, Cores: first.MaxProcs, Version: "unknown (the server exports no build info; Go " + first.GoVersion + ")"}
	if p.Target.Cores <= 0 {
		return nil, errors.New("--admin: the server reports no go_sched_gomaxprocs_threads, so its cores are unknown")
	}
	p.Target.Worker = "in-process"
	if cfg.WorkerAdmin != "" {
		p.Target.Worker = "separate"
	}
	p.Conns.IdleFDs = int(first.FDs)
	meter := &engineMeter{pids: cfg.PIDs}
	defer meter.close(context.Background())
	if cfg.DBURL != "" {
		pc, err := pgx.ParseConfig(cfg.DBURL)
		if err != nil {
			return nil, fmt.Errorf("--db-url: %w", err)
		}
		pc.RuntimeParams["application_name"] = "surge plan calibrate"
		if meter.db, err = pgx.ConnectConfig(ctx, pc); err != nil {
			return nil, fmt.Errorf("--db-url: %w", err)
		}
	}
	if cfg.RedisURL != "" {
		o, err := redis.ParseURL(cfg.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("--redis-url: %w", err)
		}
		meter.redis = redis.NewClient(o)
	}
	if _, err := meter.read(ctx); err != nil {
		return nil, err
	}

	shop, err := discover(ctx, hc, cfg.Target)
	if err != nil {
		return nil, err
	}
	logf("calibrate: %s, %g cores; category %s, SKU %s, search word %q", cfg.Target, p.Target.Cores, shop.category, shop.sku, shop.word)
	need := func(class string) bool {
		for _, c := range cfg.Classes {
			if c == class {
				return true
			}
		}
		return len(cfg.Classes) == 0
	}
	var dropID string
	if cfg.AdminToken != "" {
		if need(Checkout) {
			if err := shop.raiseStock(ctx, hc, cfg.Target, cfg.AdminToken); err != nil {
				return nil, err
			}
		}
	}
	runs := classRuns(shop, dropID)
	embedded := map[string]bool{}
	for _, class := range Classes {
		if !need(class) {
			continue
		}
		r := runs[class]
		switch {
		case (class == Checkout || r.drop) && cfg.AdminToken == "":
			p.Notes = append(p.Notes, class+": not measured (needs --admin-token: calibration raises a SKU's stock and creates a drop)")
			continue
		case r.drop && cfg.SourceIPs == "":
			p.Notes = append(p.Notes, class+": not measured (needs --source-ips: the shop limits joins per client address)")
			continue
		}
		if r.drop && dropID == "" {
			// A drop of its own product, made only now: a drop locks its
			// SKU behind the waiting room, which the other classes buy.
			if dropID, err = shop.makeDrop(ctx, hc, cfg.Target, cfg.AdminToken); err != nil {
				return nil, err
			}
			runs = classRuns(shop, dropID)
			r = runs[class]
		}
		missing := false
		for _, pre := range r.pre {
			if p.Classes[pre] == nil {
				p.Notes = append(p.Notes, fmt.Sprintf("%s: not measured (its scenario also pays for %s, which was not measured)", class, pre))
				missing = true
			}
		}
		if missing {
			continue
		}
		cc, emb, err := measureClass(ctx, cfg, hc, meter, p, class, r, logf)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", class, err)
		}
		p.Classes[class] = cc
		for k := range emb {
			embedded[k] = true
		}
	}
	for _, k := range []string{"database", "nats", "redis"} {
		if embedded[k] {
			p.Target.Embedded = append(p.Target.Embedded, k)
		}
	}
	last, err := ScrapeMetrics(ctx, hc, cfg.Admin)
	if err == nil {
		p.Memory.ResidentPeakBytes = math.Max(p.Memory.ResidentPeakBytes, last.RSS)
	}
	ec, _ := meter.read(ctx)
	p.Conns.DBPool = ec.DBConns
	if cfg.DBURL == "" {
		p.Notes = append(p.Notes, "connections: the database pool was not read (pass --db-url)")
	}
	p.Notes = append(p.Notes, "the server exports no database or NATS timings: their latency is not in the profile, only their CPU")
	if len(p.Classes) == 0 {
		return nil, errors.New("no class was measured")
	}
	return p, p.validate()
}

func machine(version string) Machine {
	m := Machine{OS: runtime.GOOS + "/" + runtime.GOARCH, CPUs: runtime.NumCPU(), Planner: version}
	m.Host, _ = os.Hostname()
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Sscanf(string(b), "%g", &m.LoadAvg)
	}
	return m
}

// shopFacts are what the scenarios need from the catalog.
type shopFacts struct {
	category, product, sku, word string
	categoryID                   int64
	currency                     string
}

func discover(ctx context.Context, hc *http.Client, target string) (*shopFacts, error) {
	base := strings.TrimRight(target, "/")
	b, err := get(ctx, hc, base+"/api/v1/products?limit=50&in_stock=true")
	if err != nil {
		return nil, fmt.Errorf("--target: %w", err)
	}
	var list struct {
		Items []struct {
			Slug, Name string
			CategoryID int64 `json:"category_id"`
		} `json:"items"`
	}
	if err := json.Unmarshal(b, &list); err != nil || len(list.Items) == 0 {
		return nil, errors.New("--target: the shop lists no product in stock (seed it: surge serve --demo)")
	}
	f := &shopFacts{product: list.Items[0].Slug, word: strings.ToLower(strings.Fields(list.Items[0].Name + " x")[0])}
	if b, err = get(ctx, hc, base+"/api/v1/products/"+url.PathEscape(f.product)); err != nil {
		return nil, err
	}
	var prod struct {
		Variants []struct {
			SKU       string `json:"sku"`
			Available int64  `json:"available"`
			Price     struct {
				Currency string `json:"currency"`
			} `json:"price"`
		} `json:"variants"`
	}
	if err := json.Unmarshal(b, &prod); err != nil {
		return nil, fmt.Errorf("product %s: %w", f.product, err)
	}
	for _, v := range prod.Variants {
		if v.Available > 0 {
			f.sku, f.currency = v.SKU, v.Price.Currency
			break
		}
	}
	if b, err = get(ctx, hc, base+"/api/v1/categories"); err != nil {
		return nil, err
	}
	var cats struct {
		Items []struct {
			ID   int64  `json:"id"`
			Slug string `json:"slug"`
		} `json:"items"`
	}
	if err := json.Unmarshal(b, &cats); err != nil || len(cats.Items) == 0 || f.sku == "" {
		return nil, errors.New("--target: no category or no SKU in stock found")
	}
	f.category, f.categoryID = cats.Items[0].Slug, cats.Items[0].ID
	return f, nil
}

func adminDo(ctx context.Context, hc *http.Client, method, url, token string, body any, out any) error {
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, bytes.TrimSpace(rb))
	}
	if out != nil {
		return json.Unmarshal(rb, out)
	}
	return nil
}

// raiseStock gives the SKU calibration buys enough stock for every step.
func (f *shopFacts) raiseStock(ctx context.Context, hc *http.Client, target, token string) error {
	return adminDo(ctx, hc, http.MethodPut, strings.TrimRight(target, "/")+"/api/v1/admin/variants/"+url.PathEscape(f.sku)+"/stock",
		token, map[string]int64{"on_hand": 50_000_000}, nil)
}

// makeDrop creates a drop of the calibration SKU that starts in an hour
// with its line open, so joins and status polls land in the pre-queue.
func (f *shopFacts) makeDrop(ctx context.Context, hc *http.Client, target, token string) (string, error) {
	n := time.Now().UnixNano() % 1e9
	base := strings.TrimRight(target, "/")
	sku := fmt.Sprintf("PLAN-CAL-%d", n)
	err := adminDo(ctx, hc, http.MethodPost, base+"/api/v1/admin/products", token, map[string]any{
		"name": fmt.Sprintf("Calibration item %d", n), "slug": fmt.Sprintf("plan-calibration-%d", n), "status": "active",
		"category_id": f.categoryID, "variants": []map[string]any{{"sku": sku, "price": map[string]any{"amount": 1000, "currency": f.currency}, "on_hand": 0}},
	}, nil)
	if err != nil {
		return "", fmt.Errorf("creating the calibration drop's product: %w", err)
	}
	var d struct {
		ID string `json:"id"`
	}
	err = adminDo(ctx, hc, http.MethodPost, base+"/api/v1/admin/drops", token, map[string]any{
		"name": fmt.Sprintf("Capacity calibration %d", n), "slug": fmt.Sprintf("calibration-%d", n),
		"starts_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339), "per_customer_limit": 1,
		"items": []map[string]any{{"sku": sku, "allocated": 1}},
		"room":  map[string]any{"prequeue_opens": "2h", "rate_per_minute": 600, "max_active": 100},
	}, &d)
	if err != nil {
		return "", fmt.Errorf("creating the calibration drop: %w", err)
	}
	return d.ID, nil
}

func classRuns(f *shopFacts, drop string) map[string]classRun {
	get := func(name, u string) string {
		return fmt.Sprintf("  - name: %s\n    url: %s\n    check: {status: 200}\n", name, u)
	}
	add := fmt.Sprintf("  - name: add\n    method: POST\n    url: /api/v1/cart/items\n    headers: {Content-Type: application/json}\n    body: '{\"sku\":\"%s\",\"quantity\":1}'\n    check: {status: 2xx}\n", f.sku)
	checkout := "  - name: checkout\n    method: POST\n    url: /api/v1/checkout\n    headers: {Content-Type: application/json, Idempotency-Key: '{{uuid}}'}\n" +
		"    body: '{\"email\":\"{{email}}\",\"shipping_address\":{\"name\":\"Plan Calibration\",\"line1\":\"1 Test Street\",\"city\":\"Testville\",\"postal_code\":\"12345\",\"country\":\"US\"},\"payment\":{\"card_number\":\"4242424242424242\"}}'\n    check: {status: 2xx}\n"
	head := func(name string) string { return "name: " + name + "\nthink: 0s\nsteps:\n" }
	join := fmt.Sprintf("  - name: join\n    method: POST\n    url: /api/v1/drops/%s/queue/join\n    headers: {Accept: application/json}\n    check: {status: 200}\n", drop)
	status := get("status", "/api/v1/drops/"+drop+"/queue")
	return map[string]classRun{
		CachedPage: {scenario: head("cached") + get("home", "/") + get("category", "/categories/"+f.category) + get("product", "/products/"+f.product),
			routes: []string{"GET /{$}", "GET /categories/{slug}", "GET /products/{slug}"}, perSess: 3},
		UncachedPage: {scenario: head("uncached") + get("category", "/categories/"+f.category+"?min={{randInt 1 1000000}}"),
			routes: []string{"GET /categories/{slug}"}, stepName: "category", perSess: 1},
		Search: {scenario: head("search") + get("search", "/search?q="+url.QueryEscape(f.word)+"&min={{randInt 1 1000000}}"),
			routes: []string{"GET /search"}, stepName: "search", perSess: 1},
		AddToCart: {scenario: head("add") + add, routes: []string{"POST /api/v1/cart/items"}, stepName: "add", perSess: 1},
		Checkout: {scenario: head("checkout") + add + checkout, routes: []string{"POST /api/v1/checkout"}, stepName: "checkout",
			pre: []string{AddToCart}, perSess: 1},
		DropJoin: {scenario: head("join") + join, routes: []string{"POST /api/v1/drops/{id}/queue/join"}, stepName: "join", perSess: 1, drop: true},
		DropStatus: {scenario: head("status") + join + status + status + status + status, routes: []string{"GET /api/v1/drops/{id}/queue"},
			stepName: "status", pre: []string{DropJoin}, perSess: 4, drop: true},
	}
}

// stepReading is what one step of load measured.
type stepReading struct {
	sessions, requests  float64 // of the class (requests from the routes' counters)
	apiCPU, workerCPU   float64
	eng                 engineCPU
	wall                time.Duration
	p99, errRate, rate  float64
	split               *Split
	heapBefore, heapAft float64
	fds, events         float64
}

func measureClass(ctx context.Context, cfg CalibrateConfig, hc *http.Client, meter *engineMeter, p *Profile, class string, r classRun,
	logf func(string, ...any)) (*ClassCost, map[string]bool, error) {
	sc, err := loadtest.ParseScenario(class+".yaml", []byte(r.scenario))
	if err != nil {
		return nil, nil, err
	}
	slo := cfg.SLO[class]
	if slo == 0 {
		slo = 500 * time.Millisecond
	}
	target, _ := url.Parse(cfg.Target)
	var src []string
	if r.drop {
		src = []string{cfg.SourceIPs}
	}
	stepsPer := float64(len(sc.Steps))
	run := func(rate float64, d time.Duration, profileIt bool) (stepReading, error) {
		var rd stepReading
		heapGC(ctx, hc, cfg.Admin)
		b, err := ScrapeMetrics(ctx, hc, cfg.Admin)
		if err != nil {
			return rd, err
		}
		var wb *Scrape
		if cfg.WorkerAdmin != "" {
			if wb, err = ScrapeMetrics(ctx, hc, cfg.WorkerAdmin); err != nil {
				return rd, fmt.Errorf("--worker-admin: %w", err)
			}
		}
		e0, err := meter.read(ctx)
		if err != nil {
			return rd, err
		}
		var prof []byte
		var wg sync.WaitGroup
		if profileIt {
			wg.Add(1)
			go func() {
				defer wg.Done()
				secs := max(1, int(d.Seconds())-1)
				prof, _ = get(ctx, hc, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", strings.TrimRight(cfg.Admin, "/"), secs))
			}()
		}
		addrs, err := loadtest.ParseSourceIPs(strings.Join(src, ","))
		if err != nil {
			return rd, err
		}
		plan := loadtest.ConstantPlan(rate, d)
		res, err := loadtest.Run(ctx, loadtest.Config{Target: target, Mix: []loadtest.Weighted{{Scenario: sc, Weight: 1}}, Plan: plan,
			Duration: d, Timeout: 10 * time.Second, Grace: 10 * time.Second, MaxInFlight: 5000, SourceAddrs: addrs,
			Profile: fmt.Sprintf("calibrate %s at %s sessions/s", class, fmtRate(rate))})
		if err != nil {
			return rd, err
		}
		wg.Wait()
		// Let the order pipeline finish what the step queued.
		if class == Checkout {
			waitPipeline(ctx, hc, cfg, b, wb)
		}
		a, err := ScrapeMetrics(ctx, hc, cfg.Admin)
		if err != nil {
			return rd, err
		}
		heapGC(ctx, hc, cfg.Admin)
		ag, _ := ScrapeMetrics(ctx, hc, cfg.Admin)
		e1, err := meter.read(ctx)
		if err != nil {
			return rd, err
		}
		for _, rt := range r.routes {
			rd.requests += a.Routes[rt] - b.Routes[rt]
		}
		rd.sessions = float64(res.Sessions)
		rd.apiCPU = a.CPU - b.CPU
		if wb != nil {
			wa, err := ScrapeMetrics(ctx, hc, cfg.WorkerAdmin)
			if err != nil {
				return rd, err
			}
			rd.workerCPU = wa.CPU - wb.CPU
		}
		rd.eng = engineCPU{Database: e1.Database - e0.Database, NATS: e1.NATS - e0.NATS, Redis: e1.Redis - e0.Redis, RedisOps: e1.RedisOps - e0.RedisOps}
		rd.wall = time.Duration(res.Elapsed * float64(time.Second))
		st := res.Total
		if r.stepName != "" {
			if s, ok := res.Step(r.stepName); ok {
				st = s
			}
		}
		rd.p99, rd.errRate = st.Latency.P99, st.ErrorRate()
		rd.rate = float64(st.Requests-st.Errors) / math.Max(res.Duration, 1e-9)
		rd.heapBefore = b.HeapLive
		if ag != nil {
			rd.heapAft = ag.HeapLive
		}
		rd.fds = a.FDs
		rd.events = a.Events - b.Events
		p.Conns.PeakFDs = max(p.Conns.PeakFDs, int(a.FDs))
		p.Memory.ResidentPeakBytes = math.Max(p.Memory.ResidentPeakBytes, a.RSS)
		if p.Memory.BaseBytes == 0 {
			p.Memory.BaseBytes = b.HeapLive
		}
		// Events per request counts what the API process published.
		if len(prof) > 0 {
			if s, err := SplitProfile(prof); err == nil {
				rd.split = &s
			}
		}
		return rd, nil
	}

	// Probe: a low rate to learn what a session costs.
	probeRate := 20.0
	pr, err := run(probeRate, 3*time.Second, false)
	if err != nil {
		return nil, nil, err
	}
	if pr.sessions == 0 || pr.apiCPU <= 0 {
		return nil, nil, errors.New("the probe made no request or used no CPU")
	}
	perSess := (pr.apiCPU + pr.workerCPU) / pr.sessions
	capacity := p.Target.Cores / perSess // sessions/s at 100% of the replica's cores
	logf("calibrate %s: probe %s sessions/s, %s CPU per session -> about %s sessions/s at full CPU",
		class, fmtRate(probeRate), cpuStr(perSess), fmtRate(capacity))
	cc := &ClassCost{SLO: Duration(slo)}
	var sumCPU Components
	var sumReq, sumSess, sumEvents, sumRedis float64
	var split *Split
	var memSessions, memDelta float64
	// Steps from a quarter of the probe's estimate (which idle work
	// inflates) up by a third each, until a step leaves the SLO, the CPU
	// is full, or ten steps have run.
	f := 0.25
	for i := 0; i < 10; i, f = i+1, f*4/3 {
		rate := math.Min(f*capacity, cfg.MaxRate/stepsPer)
		rd, err := run(rate, cfg.Step, i == 1)
		if err != nil {
			return nil, nil, err
		}
		if rd.split != nil {
			split = rd.split
		}
		util := (rd.apiCPU + rd.workerCPU) / rd.wall.Seconds() / p.Target.Cores
		reqRate := rate * r.perSess
		st := Step{Offered: reqRate, Achieved: rd.rate, P99: rd.p99, ErrorRate: rd.errRate, Utilization: util}
		cc.Steps = append(cc.Steps, st)
		ok := rd.p99 <= float64(slo.Milliseconds()) && rd.errRate < 0.01 && rd.rate >= 0.95*reqRate
		logf("calibrate %s: %s req/s offered, %s answered, p99 %.1fms, errors %.2f%%, CPU %.0f%%%s", class, fmtRate(reqRate), fmtRate(rd.rate),
			rd.p99, 100*rd.errRate, 100*util, map[bool]string{true: "", false: "  <- past the knee"}[ok])
		if ok {
			cc.KneeRate, cc.KneeUtilization = reqRate, util
		} else {
			cc.Saturated = true
		}
		// The cost comes from the steps below the knee, where nothing was
		// shed and the CPU went to answering.
		if ok && rd.requests > 0 {
			cpu := Components{API: rd.apiCPU, Worker: rd.workerCPU, Database: rd.eng.Database, NATS: rd.eng.NATS, Redis: rd.eng.Redis}
			for _, pre := range r.pre {
				c := p.Classes[pre].CPU
				cpu = cpu.Add(c, -rd.sessions)
			}
			sumCPU = sumCPU.Add(cpu, 1)
			sumReq += rd.requests
			sumSess += rd.sessions
			sumEvents += rd.events
			sumRedis += rd.eng.RedisOps
			if class == AddToCart || class == DropJoin {
				memSessions += rd.sessions
				memDelta += rd.heapAft - rd.heapBefore
			}
		}
		if cc.Saturated || util >= 0.97 || rate >= cfg.MaxRate/stepsPer {
			break
		}
	}
	if sumReq == 0 {
		return nil, nil, fmt.Errorf("no step held the SLO (p99 %s): even %.0f%% of the replica's CPU was too much", slo, 25.0)
	}
	cost := Components{API: sumCPU.API / sumReq, Worker: sumCPU.Worker / sumReq, Database: sumCPU.Database / sumReq,
		NATS: sumCPU.NATS / sumReq, Redis: sumCPU.Redis / sumReq}
	emb := map[string]bool{}
	if split != nil && split.Samples > 50 {
		// The API process's own CPU, split by its profile.
		api := cost.API
		cost.API = api * split.API
		cost.Worker += api * split.Worker
		if split.Database > 0 {
			cost.Database += api * split.Database
			emb["database"] = true
		}
		if split.NATS > 0 {
			cost.NATS += api * split.NATS
			emb["nats"] = true
		}
	}
	cc.CPU = cost
	cc.Requests = int64(sumReq)
	cc.Events = sumEvents / sumReq
	cc.RedisOps = sumRedis / sumReq
	if memSessions > 0 {
		per := math.Max(0, memDelta/memSessions)
		if class == AddToCart {
			p.Memory.PerSessionBytes, p.Memory.MeasuredSessions = per, int64(memSessions)
		} else {
			p.Memory.PerWaitingBuyer, p.Memory.MeasuredWaitingBuy = per, int64(memSessions)
		}
	}
	logf("calibrate %s: %s per request (API %s, worker %s, database %s, NATS %s, Redis %s); knee %s req/s at %.0f%% CPU",
		class, cpuStr(cost.Total()), cpuStr(cost.API), cpuStr(cost.Worker), cpuStr(cost.Database), cpuStr(cost.NATS), cpuStr(cost.Redis),
		fmtRate(cc.KneeRate), 100*cc.KneeUtilization)
	return cc, emb, nil
}

// heapGC asks the replica to collect garbage (the heap profile's gc=1), so
// the live heap read next holds only what is really kept.
func heapGC(ctx context.Context, hc *http.Client, admin string) {
	_, _ = get(ctx, hc, strings.TrimRight(admin, "/")+"/debug/pprof/heap?gc=1")
}

// waitPipeline waits, at most 30 s, until the payments captured have
// caught up with the events the step published.
func waitPipeline(ctx context.Context, hc *http.Client, cfg CalibrateConfig, before, workerBefore *Scrape) {
	admin := cfg.Admin
	if cfg.WorkerAdmin != "" {
		admin = cfg.WorkerAdmin
	}
	deadline := time.Now().Add(30 * time.Second)
	var last float64 = -1
	for time.Now().Before(deadline) {
		s, err := ScrapeMetrics(ctx, hc, admin)
		if err != nil {
			return
		}
		if s.Processed == last {
			return // nothing more came through in the last half second
		}
		last = s.Processed
		t := time.NewTimer(500 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}
