// Command openload is the open-model load generator of the overload
// benchmark (bench/overload/run).
//
// Requests arrive at -rate per second (Poisson arrivals by default, or
// evenly spaced with -arrivals uniform) for -duration, whatever the server
// does. Each arrival is sent at its scheduled time on its own goroutine, so
// a slow server makes requests pile up instead of slowing the generator
// down, and latency is measured from the scheduled time, not from when the
// request could be sent: there is no coordinated omission. How late sends
// were (the generator's own lag) is reported separately. At most
// -max-inflight requests are outstanding; an arrival beyond that is not
// sent and counted as dropped.
//
// Each arrival GETs one of the paths in -paths (the "main" group, picked at
// random), or, with probability -mix-share, -mix-path (the "mix" group).
// Every request has -timeout from its scheduled time to finish.
//
// Alongside, it can probe -probe (e.g. the admin /livez) -probe-rate times
// a second on a separate connection pool, and scrape the Prometheus text at
// -metrics every -metrics-every, keeping the admission gauges
// (surge_admission_limit, _in_flight, _queued, _min_rtt_seconds,
// _cpu_share, _sched_delay_seconds) and the
// change in a few counters (surge_admission_shed_total and
// _admitted_total by label, GC cycles, process CPU seconds).
//
// It prints a human-readable report on stdout, writes the figures as
// key=value lines to -kv, and with -series a table of -series-every
// buckets over the run.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// outcome is what became of one arrival.
type outcome int

const (
	outOK      outcome = iota // 2xx
	outShed                   // 503
	outStatus                 // any other status
	outTimeout                // no full response within -timeout
	outError                  // connection or protocol error
	outDropped                // not sent: -max-inflight outstanding
)

// result is one arrival.
type result struct {
	group   int           // 0 main, 1 mix
	at      time.Duration // scheduled time, from the start of the run
	lat     time.Duration // scheduled time to the last body byte (or to the failure)
	lag     time.Duration // scheduled time to the send
	outcome outcome
	status  int
}

// config is the command line.
type config struct {
	base        string
	paths       []string
	mixPath     string
	mixShare    float64
	rate        float64
	duration    time.Duration
	uniform     bool
	maxInflight int
	timeout     time.Duration
	slo         time.Duration
	probe       string
	probeRate   float64
	metrics     string
	metricsIvl  time.Duration
	kvFile      string
	seriesFile  string
	seriesIvl   time.Duration
	label       string
	seed        uint64
	serverRoute string
}

func main() {
	var cfg config
	var pathsFile, arrivals string
	flag.StringVar(&cfg.base, "base", "", "shop base URL, e.g. http://127.0.0.1:8080 (required)")
	flag.StringVar(&pathsFile, "paths", "", "file of request paths for the main group, one per line (required)")
	flag.StringVar(&cfg.mixPath, "mix-path", "", "path for the mix group (none: no mix)")
	flag.Float64Var(&cfg.mixShare, "mix-share", 0, "share of arrivals sent to -mix-path, in [0, 1)")
	flag.Float64Var(&cfg.rate, "rate", 0, "arrivals per second, both groups together (required)")
	flag.DurationVar(&cfg.duration, "duration", 10*time.Second, "how long requests arrive")
	flag.StringVar(&arrivals, "arrivals", "poisson", "arrival process: poisson or uniform")
	flag.IntVar(&cfg.maxInflight, "max-inflight", 20000, "most outstanding requests; arrivals beyond are dropped (lowered to fit the open-file limit)")
	flag.DurationVar(&cfg.timeout, "timeout", 10*time.Second, "time a request has from its scheduled send to its last byte")
	flag.DurationVar(&cfg.slo, "slo", 500*time.Millisecond, "latency objective: a 2xx within it counts as goodput")
	flag.StringVar(&cfg.probe, "probe", "", "URL to probe at -probe-rate on its own connections, e.g. http://ADMIN/livez")
	flag.Float64Var(&cfg.probeRate, "probe-rate", 20, "probes per second")
	flag.StringVar(&cfg.metrics, "metrics", "", "Prometheus URL to scrape during the run, e.g. http://ADMIN/metrics")
	flag.DurationVar(&cfg.metricsIvl, "metrics-every", 250*time.Millisecond, "scrape interval of -metrics")
	flag.StringVar(&cfg.kvFile, "kv", "", "file to write the results to as key=value lines")
	flag.StringVar(&cfg.seriesFile, "series", "", "file to write a table of the run in -series-every buckets to")
	flag.DurationVar(&cfg.seriesIvl, "series-every", 5*time.Second, "bucket width of -series")
	flag.StringVar(&cfg.label, "label", "run", "name of the run in the report")
	flag.StringVar(&cfg.serverRoute, "server-route", "/api/v1/products", "http_route (path template) of GET requests whose server-side latency histogram (http_server_request_duration_seconds) is reported from -metrics")
	flag.Uint64Var(&cfg.seed, "seed", 0, "random seed (0: from the clock)")
	flag.Parse()

	if cfg.base == "" || pathsFile == "" || cfg.rate <= 0 || cfg.duration <= 0 {
		log.Fatal("openload: -base, -paths, a positive -rate and -duration are required")
	}
	if cfg.mixShare < 0 || cfg.mixShare >= 1 || (cfg.mixShare > 0 && cfg.mixPath == "") {
		log.Fatal("openload: -mix-share must be in [0, 1) and needs -mix-path")
	}
	switch arrivals {
	case "poisson":
	case "uniform":
		cfg.uniform = true
	default:
		log.Fatalf("openload: -arrivals %q: want poisson or uniform", arrivals)
	}
	if cfg.seed == 0 {
		cfg.seed = uint64(time.Now().UnixNano())
	}
	cfg.base = strings.TrimRight(cfg.base, "/")
	var err error
	if cfg.paths, err = readLines(pathsFile); err != nil {
		log.Fatalf("openload: %v", err)
	}
	if len(cfg.paths) == 0 {
		log.Fatalf("openload: %s lists no paths", pathsFile)
	}
	if fdMax := openFileLimit(); fdMax > 0 && cfg.maxInflight > fdMax-512 {
		log.Printf("openload: -max-inflight %d lowered to %d to fit the open-file limit %d", cfg.maxInflight, fdMax-512, fdMax)
		cfg.maxInflight = max(1, fdMax-512)
	}

	r := run(cfg)
	r.report(os.Stdout)
	if cfg.kvFile != "" {
		if err := r.writeKV(cfg.kvFile); err != nil {
			log.Fatalf("openload: %v", err)
		}
	}
	if cfg.seriesFile != "" {
		if err := r.writeSeries(cfg.seriesFile); err != nil {
			log.Fatalf("openload: %v", err)
		}
	}
}

// openFileLimit is the soft RLIMIT_NOFILE after the Go runtime raised it,
// or 0 when unknown.
func openFileLimit() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur > math.MaxInt32 {
		return 0
	}
	return int(rl.Cur)
}

func readLines(name string) ([]string, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out, sc.Err()
}

// runResult is everything one run measured.
type runResult struct {
	cfg      config
	elapsed  time.Duration // from the first scheduled arrival until the last request finished
	results  []result
	probes   []probeResult
	samples  []sample
	counters [2]map[string]float64 // first and last scrape of the counters
}

// run offers the load and waits for every request to finish.
func run(cfg config) *runResult {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: cfg.timeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        0, // no limit
		MaxIdleConnsPerHost: cfg.maxInflight,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	client := &http.Client{Transport: tr}
	defer tr.CloseIdleConnections()
	rng := rand.New(rand.NewPCG(cfg.seed, cfg.seed^0x9e3779b97f4a7c15))

	var (
		mu       sync.Mutex
		results  = make([]result, 0, int(cfg.rate*cfg.duration.Seconds()*1.1)+16)
		wg       sync.WaitGroup
		inflight atomic.Int64
	)
	record := func(r result) {
		mu.Lock()
		results = append(results, r)
		mu.Unlock()
	}

	start := time.Now().Add(20 * time.Millisecond)
	end := start.Add(cfg.duration)
	stopAux := make(chan struct{})
	var aux sync.WaitGroup
	var probes []probeResult
	if cfg.probe != "" {
		aux.Go(func() { probes = probeLoop(cfg, start, end) })
	}
	var samples []sample
	var counters [2]map[string]float64
	if cfg.metrics != "" {
		aux.Go(func() { samples, counters = scrapeLoop(cfg, start, stopAux) })
	}

	t := 0.0 // seconds from start of the next arrival
	for {
		if cfg.uniform {
			t += 1 / cfg.rate
		} else {
			t += rng.ExpFloat64() / cfg.rate
		}
		at := time.Duration(t * float64(time.Second))
		if at >= cfg.duration {
			break
		}
		sched := start.Add(at)
		if d := time.Until(sched); d > 0 {
			time.Sleep(d)
		}
		group, path := 0, cfg.paths[rng.IntN(len(cfg.paths))]
		if cfg.mixShare > 0 && rng.Float64() < cfg.mixShare {
			group, path = 1, cfg.mixPath
		}
		if inflight.Load() >= int64(cfg.maxInflight) {
			record(result{group: group, at: at, outcome: outDropped})
			continue
		}
		inflight.Add(1)
		wg.Go(func() {
			defer inflight.Add(-1)
			record(fire(client, cfg.base+path, group, start, sched, cfg.timeout))
		})
	}
	wg.Wait()
	close(stopAux)
	aux.Wait()
	return &runResult{cfg: cfg, elapsed: time.Since(start), results: results, probes: probes, samples: samples, counters: counters}
}

// fire sends one request scheduled at sched and reads the whole response.
func fire(client *http.Client, u string, group int, start, sched time.Time, timeout time.Duration) result {
	res := result{group: group, at: sched.Sub(start), lag: time.Since(sched)}
	ctx, cancel := context.WithDeadline(context.Background(), sched.Add(timeout))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		res.outcome, res.lat = outError, time.Since(sched)
		return res
	}
	resp, err := client.Do(req)
	if err == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		res.status = resp.StatusCode
	}
	res.lat = time.Since(sched)
	switch {
	case err != nil && (errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil):
		res.outcome, res.lat = outTimeout, timeout
	case err != nil:
		res.outcome = outError
	case res.status >= 200 && res.status < 300:
		res.outcome = outOK
	case res.status == http.StatusServiceUnavailable:
		res.outcome = outShed
	default:
		res.outcome = outStatus
	}
	return res
}

// probeResult is one probe of -probe.
type probeResult struct {
	at  time.Duration
	lat time.Duration
	ok  bool
}

// probeLoop GETs cfg.probe at cfg.probeRate, each probe on its own
// goroutine at its scheduled time, until end; latency is from the
// scheduled time.
func probeLoop(cfg config, start, end time.Time) []probeResult {
	tr := &http.Transport{MaxIdleConnsPerHost: 16, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	var (
		mu  sync.Mutex
		out []probeResult
		wg  sync.WaitGroup
	)
	step := time.Duration(float64(time.Second) / cfg.probeRate)
	for sched := start; sched.Before(end); sched = sched.Add(step) {
		if d := time.Until(sched); d > 0 {
			time.Sleep(d)
		}
		wg.Go(func() {
			ctx, cancel := context.WithDeadline(context.Background(), sched.Add(5*time.Second))
			defer cancel()
			p := probeResult{at: sched.Sub(start)}
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, cfg.probe, nil)
			resp, err := client.Do(req)
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				p.ok = err == nil && resp.StatusCode == http.StatusOK
			}
			p.lat = time.Since(sched)
			mu.Lock()
			out = append(out, p)
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

// gauges are the metrics kept from every scrape.
var gauges = []string{
	"surge_admission_limit",
	"surge_admission_in_flight",
	"surge_admission_queued",
	"surge_admission_min_rtt_seconds",
	"surge_admission_cpu_share",
	"surge_admission_sched_delay_seconds",
	"go_goroutines",
}

// counterNames are the metrics whose change over the run is reported, per
// label set.
var counterNames = []string{
	"surge_admission_shed_total",
	"surge_admission_admitted_total",
	"go_gc_duration_seconds_count",
	"process_cpu_seconds_total",
	"http_server_request_duration_seconds_bucket",
}

// sample is one scrape of the gauges; a gauge the server does not export
// is NaN.
type sample struct {
	at     time.Duration
	values []float64 // indexed like gauges
}

// scrapeLoop scrapes cfg.metrics every cfg.metricsIvl until stop, once
// more after it, and returns the gauge samples and the first and last counter values.
func scrapeLoop(cfg config, start time.Time, stop <-chan struct{}) ([]sample, [2]map[string]float64) {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 2}}
	var out []sample
	var counters [2]map[string]float64
	tick := time.NewTicker(cfg.metricsIvl)
	defer tick.Stop()
	final := false
	for {
		all, err := scrape(client, cfg.metrics)
		if err == nil {
			s := sample{at: time.Since(start), values: make([]float64, len(gauges))}
			c := map[string]float64{}
			for i, g := range gauges {
				s.values[i] = math.NaN()
				if v, ok := all[g]; ok {
					s.values[i] = v
				}
			}
			for k, v := range all {
				name, _, _ := strings.Cut(k, "{")
				if slices.Contains(counterNames, name) {
					c[k] = v
				}
			}
			out = append(out, s)
			if counters[0] == nil {
				counters[0] = c
			}
			counters[1] = c
		}
		if final {
			return out, counters
		}
		select {
		case <-stop:
			// One last scrape once every request has finished, so the
			// counters cover the whole run.
			final = true
		case <-tick.C:
		}
	}
}

// scrape reads one Prometheus text exposition into series → value.
func scrape(client *http.Client, u string) (map[string]float64, error) {
	resp, err := client.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out, sc.Err()
}

// groupStats summarises one group of arrivals.
type groupStats struct {
	arrivals, sent, ok, okSLO, shed, status, timeout, errs, dropped int
	okLat, allLat                                                   []time.Duration // sorted
}

func (r *runResult) group(g int, from, to time.Duration) groupStats {
	var s groupStats
	for _, x := range r.results {
		if x.group != g || x.at < from || x.at >= to {
			continue
		}
		s.arrivals++
		switch x.outcome {
		case outDropped:
			s.dropped++
			continue
		case outOK:
			s.ok++
			s.okLat = append(s.okLat, x.lat)
			if x.lat <= r.cfg.slo {
				s.okSLO++
			}
		case outShed:
			s.shed++
		case outStatus:
			s.status++
		case outTimeout:
			s.timeout++
		case outError:
			s.errs++
		}
		s.sent++
		s.allLat = append(s.allLat, x.lat)
	}
	slices.Sort(s.okLat)
	slices.Sort(s.allLat)
	return s
}

// pct is the p-th quantile (0..1) of sorted d, or 0 when empty.
func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(d)))) - 1
	return d[min(max(i, 0), len(d)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// kv collects the key=value results in order.
type kv struct {
	keys []string
	vals map[string]string
}

func (k *kv) set(key, format string, args ...any) {
	if k.vals == nil {
		k.vals = map[string]string{}
	}
	if _, ok := k.vals[key]; !ok {
		k.keys = append(k.keys, key)
	}
	k.vals[key] = fmt.Sprintf(format, args...)
}

func (r *runResult) figures() *kv {
	k := &kv{}
	secs := r.cfg.duration.Seconds()
	k.set("label", "%s", r.cfg.label)
	k.set("rate", "%.1f", r.cfg.rate)
	k.set("duration_s", "%.1f", secs)
	k.set("slo_ms", "%.0f", ms(r.cfg.slo))
	k.set("elapsed_s", "%.1f", r.elapsed.Seconds())
	for g, name := range []string{"main", "mix"} {
		s := r.group(g, 0, r.cfg.duration)
		if g == 1 && s.arrivals == 0 {
			continue
		}
		k.set(name+"_offered", "%d", s.arrivals)
		k.set(name+"_offered_rps", "%.1f", float64(s.arrivals)/secs)
		k.set(name+"_sent", "%d", s.sent)
		k.set(name+"_completed", "%d", s.ok+s.shed+s.status)
		k.set(name+"_ok", "%d", s.ok)
		k.set(name+"_ok_slo", "%d", s.okSLO)
		k.set(name+"_shed", "%d", s.shed)
		k.set(name+"_other_status", "%d", s.status)
		k.set(name+"_timeouts", "%d", s.timeout)
		k.set(name+"_errors", "%d", s.errs)
		k.set(name+"_dropped", "%d", s.dropped)
		k.set(name+"_goodput", "%.1f", float64(s.okSLO)/secs)
		k.set(name+"_ok_rps", "%.1f", float64(s.ok)/secs)
		k.set(name+"_p50_ms", "%.1f", ms(pct(s.okLat, 0.50)))
		k.set(name+"_p90_ms", "%.1f", ms(pct(s.okLat, 0.90)))
		k.set(name+"_p99_ms", "%.1f", ms(pct(s.okLat, 0.99)))
		k.set(name+"_max_ms", "%.1f", ms(pct(s.okLat, 1)))
		k.set(name+"_p99_all_ms", "%.1f", ms(pct(s.allLat, 0.99)))
	}
	var lags []time.Duration
	for _, x := range r.results {
		if x.outcome != outDropped {
			lags = append(lags, x.lag)
		}
	}
	slices.Sort(lags)
	k.set("send_lag_p99_ms", "%.2f", ms(pct(lags, 0.99)))
	k.set("send_lag_max_ms", "%.2f", ms(pct(lags, 1)))
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		k.set("generator_cpu_s", "%.2f", time.Duration(ru.Utime.Nano()+ru.Stime.Nano()).Seconds())
	}
	if r.cfg.probe != "" {
		var lat []time.Duration
		fails := 0
		for _, p := range r.probes {
			lat = append(lat, p.lat)
			if !p.ok {
				fails++
			}
		}
		slices.Sort(lat)
		k.set("probe_n", "%d", len(lat))
		k.set("probe_fail", "%d", fails)
		k.set("probe_p50_ms", "%.2f", ms(pct(lat, 0.50)))
		k.set("probe_p99_ms", "%.2f", ms(pct(lat, 0.99)))
		k.set("probe_max_ms", "%.2f", ms(pct(lat, 1)))
	}
	if r.cfg.metrics != "" {
		k.set("scrapes", "%d", len(r.samples))
		for i, g := range gauges {
			var v []float64
			for _, s := range r.samples {
				if !math.IsNaN(s.values[i]) {
					v = append(v, s.values[i])
				}
			}
			if len(v) == 0 {
				continue
			}
			slices.Sort(v)
			sum := 0.0
			for _, x := range v {
				sum += x
			}
			name := strings.TrimPrefix(strings.TrimPrefix(g, "surge_admission_"), "go_")
			k.set(name+"_min", "%g", v[0])
			k.set(name+"_p50", "%g", v[len(v)/2])
			k.set(name+"_mean", "%.3g", sum/float64(len(v)))
			k.set(name+"_max", "%g", v[len(v)-1])
		}
		if r.counters[0] != nil {
			keys := make([]string, 0, len(r.counters[1]))
			for s := range r.counters[1] {
				keys = append(keys, s)
			}
			sort.Strings(keys)
			for _, s := range keys {
				if strings.HasPrefix(s, "http_server_request_duration_seconds_bucket") {
					continue
				}
				if d := r.counters[1][s] - r.counters[0][s]; d != 0 {
					k.set("delta "+s, "%g", d)
				}
			}
			for _, code := range []string{"200", "503"} {
				n, q := r.serverQuantiles(code, 0.5, 0.9, 0.99)
				k.set("server_"+code+"_count", "%.0f", n)
				if n > 0 {
					k.set("server_"+code+"_p50_le_ms", "%g", q[0]*1000)
					k.set("server_"+code+"_p90_le_ms", "%g", q[1]*1000)
					k.set("server_"+code+"_p99_le_ms", "%g", q[2]*1000)
				}
			}
		}
	}
	return k
}

// serverQuantiles reads the change over the run of surge's
// http_server_request_duration_seconds histogram for cfg.serverRoute and
// status code: the number of requests, and for each quantile the upper
// bound (seconds) of the bucket it falls in. The server measures from the
// moment its handler chain got the parsed request, so the difference from
// the client's figures is time spent before that: in the generator, the
// kernel, and the server's accept, read and goroutine scheduling.
func (r *runResult) serverQuantiles(code string, qs ...float64) (float64, []float64) {
	type bucket struct{ le, n float64 }
	var bs []bucket
	match := `http_route="` + r.cfg.serverRoute + `"`
	for s, v1 := range r.counters[1] {
		if !strings.HasPrefix(s, "http_server_request_duration_seconds_bucket{") || !strings.Contains(s, match) ||
			!strings.Contains(s, `http_response_status_code="`+code+`"`) || !strings.Contains(s, `http_request_method="GET"`) {
			continue
		}
		i := strings.Index(s, `le="`)
		if i < 0 {
			continue
		}
		le, err := strconv.ParseFloat(strings.TrimSuffix(s[i+4:], `"}`), 64)
		if err != nil {
			continue
		}
		bs = append(bs, bucket{le, v1 - r.counters[0][s]})
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].le < bs[j].le })
	if len(bs) == 0 || bs[len(bs)-1].n <= 0 {
		return 0, nil
	}
	total := bs[len(bs)-1].n
	out := make([]float64, len(qs))
	for i, q := range qs {
		for _, b := range bs {
			if b.n >= q*total {
				out[i] = b.le
				break
			}
		}
	}
	return total, out
}

func (r *runResult) writeKV(name string) error {
	k := r.figures()
	var b strings.Builder
	for _, key := range k.keys {
		fmt.Fprintf(&b, "%s=%s\n", key, k.vals[key])
	}
	return os.WriteFile(name, []byte(b.String()), 0o644)
}

// report prints the run for people.
func (r *runResult) report(w io.Writer) {
	fig := r.figures()
	k := fig.vals
	fmt.Fprintf(w, "%s: %s arrivals/s for %ss (%s, SLO %sms), finished after %ss; send lag p99 %sms max %sms; generator CPU %ss\n",
		r.cfg.label, k["rate"], k["duration_s"], map[bool]string{true: "uniform", false: "poisson"}[r.cfg.uniform],
		k["slo_ms"], k["elapsed_s"], k["send_lag_p99_ms"], k["send_lag_max_ms"], k["generator_cpu_s"])
	for _, name := range []string{"main", "mix"} {
		if _, ok := k[name+"_offered"]; !ok {
			continue
		}
		fmt.Fprintf(w, "  %-4s offered %s (%s/s): 2xx %s (within SLO %s, goodput %s/s), 503 %s, other status %s, timeouts %s, errors %s, dropped %s\n",
			name, k[name+"_offered"], k[name+"_offered_rps"], k[name+"_ok"], k[name+"_ok_slo"], k[name+"_goodput"],
			k[name+"_shed"], k[name+"_other_status"], k[name+"_timeouts"], k[name+"_errors"], k[name+"_dropped"])
		fmt.Fprintf(w, "       2xx latency p50 %sms p90 %sms p99 %sms max %sms; p99 of every answer %sms\n",
			k[name+"_p50_ms"], k[name+"_p90_ms"], k[name+"_p99_ms"], k[name+"_max_ms"], k[name+"_p99_all_ms"])
	}
	if r.cfg.probe != "" {
		fmt.Fprintf(w, "  probe %s: %s probes, %s failed, p50 %sms p99 %sms max %sms\n",
			r.cfg.probe, k["probe_n"], k["probe_fail"], k["probe_p50_ms"], k["probe_p99_ms"], k["probe_max_ms"])
	}
	if r.cfg.metrics != "" {
		if _, ok := k["limit_p50"]; ok {
			fmt.Fprintf(w, "  admission limit min/p50/mean/max %s/%s/%s/%s, in flight p50/max %s/%s, queued p50/max %s/%s, min RTT p50 %ss (%s scrapes)\n",
				k["limit_min"], k["limit_p50"], k["limit_mean"], k["limit_max"], k["in_flight_p50"], k["in_flight_max"],
				k["queued_p50"], k["queued_max"], k["min_rtt_seconds_p50"], k["scrapes"])
		}
		if _, ok := k["cpu_share_p50"]; ok {
			fmt.Fprintf(w, "  CPU guard share of browse admitted min/p50/mean/max %s/%s/%s/%s, wait for a CPU (p90 of a window) p50/max %ss/%ss\n",
				k["cpu_share_min"], k["cpu_share_p50"], k["cpu_share_mean"], k["cpu_share_max"],
				k["sched_delay_seconds_p50"], k["sched_delay_seconds_max"])
		}
		if n := k["server_200_count"]; n != "" && n != "0" {
			fmt.Fprintf(w, "  server-side latency of %s 200s (its own histogram, bucket bounds): p50 <= %sms p90 <= %sms p99 <= %sms (%s requests)\n",
				r.cfg.serverRoute, k["server_200_p50_le_ms"], k["server_200_p90_le_ms"], k["server_200_p99_le_ms"], n)
		}
		if n := k["server_503_count"]; n != "" && n != "0" {
			fmt.Fprintf(w, "  server-side latency of its 503s: p50 <= %sms p99 <= %sms (%s requests)\n",
				k["server_503_p50_le_ms"], k["server_503_p99_le_ms"], n)
		}
		if _, ok := k["goroutines_p50"]; ok {
			fmt.Fprintf(w, "  server goroutines p50/max %s/%s\n", k["goroutines_p50"], k["goroutines_max"])
		}
		for _, key := range fig.keys {
			if s, ok := strings.CutPrefix(key, "delta "); ok && strings.HasPrefix(s, "surge_admission_shed_total") {
				fmt.Fprintf(w, "  %s +%s\n", s, k[key])
			}
		}
	}
}

// writeSeries writes the run in buckets of cfg.seriesIvl: what arrived
// in each bucket and what became of it, the probe latency and the
// admission gauges scraped during it.
func (r *runResult) writeSeries(name string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%6s %6s %6s %6s %6s %6s %8s %8s %8s %7s %9s %8s %7s\n",
		"t(s)", "offer", "ok", "inSLO", "503", "tmout", "p50ms", "p99ms", "probe99", "limit", "inflight", "queued", "minRTT")
	for from := time.Duration(0); from < r.cfg.duration; from += r.cfg.seriesIvl {
		to := min(from+r.cfg.seriesIvl, r.cfg.duration)
		s := r.group(0, from, to)
		var pl []time.Duration
		for _, p := range r.probes {
			if p.at >= from && p.at < to {
				pl = append(pl, p.lat)
			}
		}
		slices.Sort(pl)
		gauge := func(i int) (lo, hi float64, ok bool) {
			lo, hi = math.Inf(1), math.Inf(-1)
			for _, x := range r.samples {
				if x.at >= from && x.at < to && !math.IsNaN(x.values[i]) {
					lo, hi, ok = min(lo, x.values[i]), max(hi, x.values[i]), true
				}
			}
			return
		}
		rng := func(i int) string {
			lo, hi, ok := gauge(i)
			switch {
			case !ok:
				return "-"
			case lo == hi:
				return strconv.FormatFloat(lo, 'f', -1, 64)
			}
			return fmt.Sprintf("%g-%g", lo, hi)
		}
		minRTT := "-"
		if _, hi, ok := gauge(3); ok {
			minRTT = fmt.Sprintf("%.1fms", hi*1000)
		}
		fmt.Fprintf(&b, "%6.0f %6d %6d %6d %6d %6d %8.1f %8.1f %8.1f %7s %9s %8s %7s\n",
			from.Seconds(), s.arrivals, s.ok, s.okSLO, s.shed, s.timeout, ms(pct(s.okLat, 0.5)), ms(pct(s.okLat, 0.99)),
			ms(pct(pl, 0.99)), rng(0), rng(1), rng(2), minRTT)
	}
	return os.WriteFile(name, []byte(b.String()), 0o644)
}
