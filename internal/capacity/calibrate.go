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
	MaxSteps    int     // steps per class after the probe (default 10)
	// RetryWait bounds how long one of calibration's own calls (a
	// catalog read, an admin call, a scrape) waits on answers of 503 or
	// 429 with Retry-After before the call fails (default 30 s).
	RetryWait time.Duration
	Version   string // the planner's
	Log       io.Writer
}

// classRun is how one class is driven and counted.
type classRun struct {
	scenario  string   // YAML of a loadtest scenario
	routes    []string // the routes its requests count under
	stepNames []string // the scenario steps whose latency judges the class (none: all)
	pre       []string // classes whose cost the scenario also pays, once per session each
	perSess   float64  // requests of this class per session
	drop      bool     // needs the drop and source addresses
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
	if cfg.MaxSteps <= 0 {
		cfg.MaxSteps = 10
	}
	hc := newCaller(&http.Client{Timeout: 60 * time.Second})
	if cfg.RetryWait > 0 {
		hc.maxWait = cfg.RetryWait
	}
	p := &Profile{Version: 1, Taken: time.Now().UTC(), Classes: map[string]*ClassCost{}}
	p.Machine = machine(cfg.Version)
	first, err := hc.scrape(ctx, cfg.Admin)
	if err != nil {
		return nil, fmt.Errorf("--admin: %w", err)
	}
	p.Target = Target{URL: cfg.Target, Cores: first.MaxProcs, Version: targetVersion(first)}
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
	var dropErr error
	stockRaised := false
	unmeasured := func(class, why string) {
		if p.Unmeasured == nil {
			p.Unmeasured = map[string]string{}
		}
		p.Unmeasured[class] = why
		logf("calibrate %s: not measured: %s", class, why)
	}
	runs := classRuns(shop, dropID)
	embedded := map[string]bool{}
	for _, class := range Classes {
		if !need(class) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		r := runs[class]
		switch {
		case (class == Checkout || r.drop) && cfg.AdminToken == "":
			unmeasured(class, "needs --admin-token: calibration raises a SKU's stock and creates a drop")
			continue
		case r.drop && cfg.SourceIPs == "":
			unmeasured(class, "needs --source-ips: the shop limits joins per client address")
			continue
		}
		if class == Checkout && !stockRaised {
			if err := shop.raiseStock(ctx, hc, cfg.Target, cfg.AdminToken); err != nil {
				unmeasured(class, "raising the stock it buys: "+err.Error())
				continue
			}
			stockRaised = true
		}
		if r.drop && dropID == "" {
			// A drop of its own product, made only now: a drop locks its
			// SKU behind the waiting room, which the other classes buy.
			// It is tried once: the second drop class hears why not.
			if dropErr == nil {
				if dropID, dropErr = shop.makeDrop(ctx, hc, cfg.Target, cfg.AdminToken); dropErr == nil {
					runs = classRuns(shop, dropID)
					r = runs[class]
				}
			}
			if dropErr != nil {
				unmeasured(class, dropErr.Error())
				continue
			}
		}
		var missing []string
		for _, pre := range r.pre {
			if p.Classes[pre] == nil {
				missing = append(missing, pre)
			}
		}
		if len(missing) > 0 {
			unmeasured(class, fmt.Sprintf("its scenario also pays for %s, which was not measured", strings.Join(missing, ", ")))
			continue
		}
		cc, emb, err := measureClass(ctx, cfg, hc, meter, p, class, r, logf)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			unmeasured(class, err.Error())
			continue
		}
		if err := cc.check(); err != nil {
			unmeasured(class, "implausible figures: "+class+err.Error())
			continue
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
	last, err := hc.scrape(ctx, cfg.Admin)
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
		var why []string
		for _, c := range sortedKeys(p.Unmeasured) {
			why = append(why, c+": "+p.Unmeasured[c])
		}
		return nil, fmt.Errorf("no class was measured (%s)", strings.Join(why, "; "))
	}
	return p, p.validate()
}

// targetVersion is the replica's version as its surge_build_info says,
// with the Go release it was built with.
func targetVersion(s *Scrape) string {
	goVersion := s.GoVersion
	if goVersion == "" {
		goVersion = "Go unknown"
	}
	if s.Version == "" {
		return "unknown (the server exports no surge_build_info; " + goVersion + ")"
	}
	return s.Version + " (" + goVersion + ")"
}

// machine describes this machine. Its CPUs are those /proc/cpuinfo
// lists, not runtime.NumCPU: the planner itself often runs pinned to one
// core (taskset) beside the replica it measures.
func machine(version string) Machine {
	m := Machine{OS: runtime.GOOS + "/" + runtime.GOARCH, CPUs: runtime.NumCPU(), Planner: version}
	m.Host, _ = os.Hostname()
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		n := 0
		for _, l := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(l, ":")
			switch k = strings.TrimSpace(k); {
			case !ok:
			case k == "processor":
				n++
			case k == "model name" && m.CPUModel == "":
				m.CPUModel = strings.TrimSpace(v)
			}
		}
		m.CPUs = max(m.CPUs, n)
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

func discover(ctx context.Context, hc *caller, target string) (*shopFacts, error) {
	base := strings.TrimRight(target, "/")
	b, err := hc.get(ctx, base+"/api/v1/products?limit=50&in_stock=true")
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
	if b, err = hc.get(ctx, base+"/api/v1/products/"+url.PathEscape(f.product)); err != nil {
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
	if b, err = hc.get(ctx, base+"/api/v1/categories"); err != nil {
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

// admin calls the shop's admin API and decodes its answer into out.
func (c *caller) admin(ctx context.Context, method, url, token string, body any, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	h := http.Header{"Authorization": {"Bearer " + token}, "Content-Type": {"application/json"}}
	status, rb, err := c.do(ctx, method, url, h, b)
	if err != nil {
		return err
	}
	if status >= 300 {
		return fmt.Errorf("%s %s: %d %s: %s", method, url, status, http.StatusText(status), bytes.TrimSpace(rb[:min(len(rb), 1<<10)]))
	}
	if out != nil {
		return json.Unmarshal(rb, out)
	}
	return nil
}

// raiseStock gives the SKU calibration buys enough stock for every step.
func (f *shopFacts) raiseStock(ctx context.Context, hc *caller, target, token string) error {
	return hc.admin(ctx, http.MethodPut, strings.TrimRight(target, "/")+"/api/v1/admin/variants/"+url.PathEscape(f.sku)+"/stock",
		token, map[string]int64{"on_hand": 50_000_000}, nil)
}

// makeDrop creates a drop of the calibration SKU that starts in an hour
// with its line open, so joins and status polls land in the pre-queue.
func (f *shopFacts) makeDrop(ctx context.Context, hc *caller, target, token string) (string, error) {
	n := time.Now().UnixNano() % 1e9
	base := strings.TrimRight(target, "/")
	sku := fmt.Sprintf("PLAN-CAL-%d", n)
	err := hc.admin(ctx, http.MethodPost, base+"/api/v1/admin/products", token, map[string]any{
		"name": fmt.Sprintf("Calibration item %d", n), "slug": fmt.Sprintf("plan-calibration-%d", n), "status": "active",
		"category_id": f.categoryID, "variants": []map[string]any{{"sku": sku, "price": map[string]any{"amount": 1000, "currency": f.currency}, "on_hand": 0}},
	}, nil)
	if err != nil {
		return "", fmt.Errorf("creating the calibration drop's product: %w", err)
	}
	var d struct {
		ID string `json:"id"`
	}
	err = hc.admin(ctx, http.MethodPost, base+"/api/v1/admin/drops", token, map[string]any{
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
	status := func(n int) string { return get(fmt.Sprintf("status%d", n), "/api/v1/drops/"+drop+"/queue") }
	return map[string]classRun{
		CachedPage: {scenario: head("cached") + get("home", "/") + get("category", "/categories/"+f.category) + get("product", "/products/"+f.product),
			routes: classRoutes[CachedPage], perSess: 3},
		UncachedPage: {scenario: head("uncached") + get("category", "/categories/"+f.category+"?min={{randInt 1 1000000}}"),
			routes: classRoutes[UncachedPage], stepNames: []string{"category"}, perSess: 1},
		Search: {scenario: head("search") + get("search", "/search?q="+url.QueryEscape(f.word)+"&min={{randInt 1 1000000}}"),
			routes: classRoutes[Search], stepNames: []string{"search"}, perSess: 1},
		AddToCart: {scenario: head("add") + add, routes: classRoutes[AddToCart], stepNames: []string{"add"}, perSess: 1},
		Checkout: {scenario: head("checkout") + add + checkout, routes: classRoutes[Checkout], stepNames: []string{"checkout"},
			pre: []string{AddToCart}, perSess: 1},
		DropJoin: {scenario: head("join") + join, routes: classRoutes[DropJoin], stepNames: []string{"join"}, perSess: 1, drop: true},
		DropStatus: {scenario: head("status") + join + status(1) + status(2) + status(3) + status(4), routes: classRoutes[DropStatus],
			stepNames: []string{"status1", "status2", "status3", "status4"}, pre: []string{DropJoin}, perSess: 4, drop: true},
	}
}

// stepReading is what one step of load measured.
type stepReading struct {
	sessions, requests  float64 // of the class (requests from the routes' counters)
	apiCPU, workerCPU   float64
	eng                 engineCPU
	load                time.Duration // how long the load ran
	drain               time.Duration // how long the order pipeline took to finish after it
	p99, errRate, rate  float64
	split               Split
	heapBefore, heapAft float64
	fds, events         float64
	sent                int64 // requests of the class the generator sent
}

// judged is the latency and errors of the scenario steps that judge a
// class, merged.
func judged(res *loadtest.Result, names []string) (p99, errRate float64, sent, answered int64) {
	if len(names) == 0 {
		st := res.Total
		return st.Latency.P99, st.ErrorRate(), st.Requests, st.Requests - st.Errors
	}
	h := loadtest.NewHistogram()
	var n, bad int64
	for _, name := range names {
		if st, ok := res.Step(name); ok {
			n += st.Requests
			bad += st.Errors
			if st.Hist != nil {
				h.Merge(st.Hist)
			}
		}
	}
	if n > 0 {
		errRate = float64(bad) / float64(n)
	}
	return float64(h.Quantile(99).Microseconds()) / 1000, errRate, n, n - bad
}

func measureClass(ctx context.Context, cfg CalibrateConfig, hc *caller, meter *engineMeter, p *Profile, class string, r classRun,
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
	addrs, err := loadtest.ParseSourceIPs(strings.Join(src, ","))
	if err != nil {
		return nil, nil, err
	}
	stepsPer := float64(len(sc.Steps))
	run := func(rate float64, d time.Duration, profileIt bool) (stepReading, error) {
		var rd stepReading
		heapGC(ctx, hc, cfg.Admin)
		b, err := hc.scrape(ctx, cfg.Admin)
		if err != nil {
			return rd, err
		}
		var wb *Scrape
		if cfg.WorkerAdmin != "" {
			if wb, err = hc.scrape(ctx, cfg.WorkerAdmin); err != nil {
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
				prof, _ = hc.get(ctx, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", strings.TrimRight(cfg.Admin, "/"), secs))
			}()
		}
		res, err := loadtest.Run(ctx, loadtest.Config{Target: target, Mix: []loadtest.Weighted{{Scenario: sc, Weight: 1}},
			Plan: loadtest.ConstantPlan(rate, d), Duration: d, Timeout: 10 * time.Second, Grace: 10 * time.Second, MaxInFlight: 5000,
			SourceAddrs: addrs, Profile: fmt.Sprintf("calibrate %s at %s sessions/s", class, fmtRate(rate))})
		if err != nil {
			return rd, err
		}
		wg.Wait()
		// Let the order pipeline finish what the step queued: its work is
		// part of what the step's requests cost.
		if class == Checkout {
			t := time.Now()
			waitPipeline(ctx, hc, cfg, wb)
			rd.drain = time.Since(t)
		}
		a, err := hc.scrape(ctx, cfg.Admin)
		if err != nil {
			return rd, err
		}
		heapGC(ctx, hc, cfg.Admin)
		ag, _ := hc.scrape(ctx, cfg.Admin)
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
			wa, err := hc.scrape(ctx, cfg.WorkerAdmin)
			if err != nil {
				return rd, err
			}
			rd.workerCPU = wa.CPU - wb.CPU
		}
		rd.eng = engineCPU{Database: e1.Database - e0.Database, NATS: e1.NATS - e0.NATS, Redis: e1.Redis - e0.Redis, RedisOps: e1.RedisOps - e0.RedisOps}
		rd.load = time.Duration(res.Elapsed * float64(time.Second))
		var answered int64
		rd.p99, rd.errRate, rd.sent, answered = judged(res, r.stepNames)
		rd.rate = float64(answered) / math.Max(res.Duration, 1e-9)
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
		if len(prof) > 0 {
			if s, err := SplitProfile(prof); err == nil {
				rd.split = s
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
	var split Split
	var memSessions, memDelta float64
	// Steps from a quarter of the probe's estimate (which idle work
	// inflates) up by a third each, until a step leaves the SLO, the CPU
	// is full, or MaxSteps steps have run. When even the first step
	// leaves it (a busy machine sheds early), the rate is halved, at most
	// three times, so the class is measured where the replica holds.
	f := 0.25
	for down := 0; len(cc.Steps) < cfg.MaxSteps; {
		rate := math.Min(f*capacity, cfg.MaxRate/stepsPer)
		rd, err := run(rate, cfg.Step, true)
		if err != nil {
			return nil, nil, err
		}
		// Utilisation is the CPU the step's load demanded (the pipeline's
		// catching up included) per second of load, as the planner
		// computes it from rate times cost.
		util := (rd.apiCPU + rd.workerCPU) / rd.load.Seconds() / p.Target.Cores
		reqRate := rate * r.perSess
		st := Step{Offered: reqRate, Achieved: rd.rate, P99: rd.p99, ErrorRate: rd.errRate, Utilization: util}
		behind := rd.drain > max(2*time.Second, cfg.Step/4)
		ok := rd.p99 <= float64(slo.Milliseconds()) && rd.errRate < 0.01 && rd.rate >= 0.95*reqRate && !behind
		why := ""
		switch {
		case behind:
			why = fmt.Sprintf("  <- past the knee: the order pipeline took %s to catch up", rd.drain.Round(100*time.Millisecond))
		case !ok:
			why = "  <- past the knee"
		}
		logf("calibrate %s: %s req/s offered, %s answered, p99 %.1fms, errors %.2f%%, CPU %.0f%%%s", class, fmtRate(reqRate), fmtRate(rd.rate),
			rd.p99, 100*rd.errRate, 100*util, why)
		if !ok && len(cc.Steps) == 0 && down < 3 {
			down++
			f /= 2
			logf("calibrate %s: the first step left the SLO; trying half the rate", class)
			continue
		}
		cc.Steps = append(cc.Steps, st)
		if ok {
			cc.KneeRate, cc.KneeUtilization = reqRate, util
		} else {
			cc.Saturated = true
		}
		// The cost comes from the steps below the knee, where nothing was
		// shed and the CPU went to answering.
		// The server's own count of the class's requests must agree with
		// what was sent, or the cost per request rests on the wrong count.
		if ok && rd.sent > 0 && math.Abs(rd.requests-float64(rd.sent)) > 0.02*float64(rd.sent)+2 {
			return nil, nil, fmt.Errorf("the server counted %.0f requests on %v where %d were sent: the routes do not match its metrics",
				rd.requests, r.routes, rd.sent)
		}
		if ok && rd.requests > 0 {
			sumCPU = sumCPU.Add(Components{API: rd.apiCPU, Worker: rd.workerCPU, Database: rd.eng.Database, NATS: rd.eng.NATS, Redis: rd.eng.Redis}, 1)
			sumReq += rd.requests
			sumSess += rd.sessions
			sumEvents += rd.events
			sumRedis += rd.eng.RedisOps
			split = split.Merge(rd.split)
			if class == AddToCart || class == DropJoin {
				memSessions += rd.sessions
				memDelta += rd.heapAft - rd.heapBefore
			}
		}
		if cc.Saturated || util >= 0.97 || rate >= cfg.MaxRate/stepsPer {
			break
		}
		f *= 4.0 / 3
	}
	if sumReq == 0 {
		return nil, nil, fmt.Errorf("no step held the SLO (p99 %s, under 1%% errors, 95%% answered), down to %.0f%% of the probe's estimate",
			slo, 100*f)
	}
	// sumCPU.API is the replica process's CPU: its profiles split it into
	// the API and what runs embedded in it.
	emb := map[string]bool{}
	if split.Samples >= 50 {
		proc := sumCPU.API
		sumCPU.API = proc * split.API
		sumCPU.Worker += proc * split.Worker
		if split.Database > 0 {
			sumCPU.Database += proc * split.Database
			emb["database"] = true
		}
		if split.NATS > 0 {
			sumCPU.NATS += proc * split.NATS
			emb["nats"] = true
		}
	} else {
		p.Notes = append(p.Notes, fmt.Sprintf("%s: its CPU profiles held %d samples, too few to split the process's CPU by component: all of it is counted as the API's", class, split.Samples))
	}
	// What the scenario paid for other classes (a checkout's add to cart)
	// comes off, component by component. An engine this class barely
	// uses can come out below zero then: noise around nothing.
	for _, pre := range r.pre {
		sumCPU = sumCPU.Add(p.Classes[pre].CPU, -sumSess)
	}
	sumCPU = sumCPU.atLeastZero()
	cost := Components{API: sumCPU.API / sumReq, Worker: sumCPU.Worker / sumReq, Database: sumCPU.Database / sumReq,
		NATS: sumCPU.NATS / sumReq, Redis: sumCPU.Redis / sumReq}
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
func heapGC(ctx context.Context, hc *caller, admin string) {
	_, _ = hc.get(ctx, strings.TrimRight(admin, "/")+"/debug/pprof/heap?gc=1")
}

// waitPipeline waits, at most 30 s, until the order pipeline has stopped
// processing events: nothing more came through in the last half second.
func waitPipeline(ctx context.Context, hc *caller, cfg CalibrateConfig, workerBefore *Scrape) {
	admin := cfg.Admin
	if workerBefore != nil {
		admin = cfg.WorkerAdmin
	}
	deadline := time.Now().Add(30 * time.Second)
	last := -1.0
	for time.Now().Before(deadline) {
		s, err := hc.scrape(ctx, admin)
		if err != nil || s.Processed == last {
			return
		}
		last = s.Processed
		if sleepCtx(ctx, 500*time.Millisecond) != nil {
			return
		}
	}
}
