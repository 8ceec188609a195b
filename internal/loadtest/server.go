package loadtest

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	promodel "github.com/prometheus/common/model"
)

// MonitorConfig is what to watch on the server side while a run goes on:
// its own metrics (Prometheus text at each of Scrape, read every
// Interval) and its health endpoints (each of Probes asked every
// ProbeEvery, as a load balancer or the kubelet asks).
type MonitorConfig struct {
	Scrape       []string      // metrics URLs: http://admin:9090/metrics
	Probes       []string      // URLs that must answer 200: http://admin:9090/livez
	Interval     time.Duration // scrape period and timeline resolution (the run's)
	ProbeEvery   time.Duration // default 1s
	ProbeTimeout time.Duration // default 2s, the API pods' probe timeout in deploy/k8s
	Start        time.Time     // the run's start: time zero of the timeline
	// Transport replaces the default (tests).
	Transport http.RoundTripper
}

// ServerResult is what the server's own metrics said during a run, on
// the run's time axis.
type ServerResult struct {
	Targets      []string      `json:"targets"`
	Timeline     []ServerPoint `json:"timeline"`
	Counters     []Series      `json:"counters,omitempty"` // increase of every counter over the run, summed over targets
	ScrapeErrors int64         `json:"scrape_errors,omitempty"`
	LastError    string        `json:"last_error,omitempty"`

	// PageCache and ObjectCache are the share of lookups served from
	// cache over the run (hits and stale hits of all lookups that could
	// be), -1 when the server exports no such counter.
	PageCache   float64 `json:"page_cache_hit_ratio"`
	ObjectCache float64 `json:"object_cache_hit_ratio"`
	CPUSeconds  float64 `json:"cpu_seconds"`
	// Shed counts requests refused by admission control, by class.
	Shed map[string]float64 `json:"shed,omitempty"`
}

// ServerPoint is one interval of the server's metrics. Rates are per
// second over the interval; several targets (replicas) add up, except
// the line, which replicas sharing a ledger each report whole.
type ServerPoint struct {
	T        float64            `json:"t"`
	CPU      float64            `json:"cpu_cores"`          // CPU used, in cores
	Sched    float64            `json:"sched_wait_mean_ms"` // mean wait of a runnable goroutine for a CPU (worst target)
	Guard    float64            `json:"sched_wait_p90_ms"`  // the CPU guard's p90 wait (surge_admission_sched_delay_seconds), worst target
	Shed     map[string]float64 `json:"shed_per_s,omitempty"`
	Line     float64            `json:"line"` // people in drop and standby lines whose turn has not come
	Requests float64            `json:"requests_per_s"`
	Errors   float64            `json:"errors_5xx_per_s"`
}

// Series is a counter's increase over the run.
type Series struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels,omitempty"`
	Delta  float64           `json:"delta"`
}

// selector picks counter series by name and labels, as in PromQL's
// name{label="value"}.
type selector struct {
	name   string
	labels map[string]string
}

func (s selector) String() string {
	if len(s.labels) == 0 {
		return s.name
	}
	var parts []string
	for _, k := range sortedStrings(s.labels) {
		parts = append(parts, k+"="+strconv.Quote(s.labels[k]))
	}
	return s.name + "{" + strings.Join(parts, ",") + "}"
}

// parseSelector reads name or name{a="x",b="y"}.
func parseSelector(s string) (selector, error) {
	name, rest, hasLabels := strings.Cut(s, "{")
	sel := selector{name: name, labels: map[string]string{}}
	if !promodel.LegacyValidation.IsValidMetricName(name) {
		return sel, fmt.Errorf("%q is not a metric name", name)
	}
	if !hasLabels {
		return sel, nil
	}
	body, ok := strings.CutSuffix(rest, "}")
	if !ok {
		return sel, fmt.Errorf("%q: missing }", s)
	}
	for body != "" {
		k, v, ok := strings.Cut(body, "=")
		if !ok || !promodel.LegacyValidation.IsValidLabelName(k) || !strings.HasPrefix(v, `"`) {
			return sel, fmt.Errorf("%q: want labels like {class=\"critical\"}", s)
		}
		end := strings.Index(v[1:], `"`)
		if end < 0 {
			return sel, fmt.Errorf("%q: unterminated label value", s)
		}
		sel.labels[k] = v[1 : end+1]
		body = strings.TrimPrefix(v[end+2:], ",")
	}
	return sel, nil
}

// Delta sums the increase of the counter series sel picks; false when
// none was scraped.
func (s *ServerResult) Delta(sel selector) (float64, bool) {
	var sum float64
	found := false
	for _, c := range s.Counters {
		if c.Name != sel.name {
			continue
		}
		match := true
		for k, v := range sel.labels {
			match = match && c.Labels[k] == v
		}
		if match {
			sum += c.Delta
			found = true
		}
	}
	return sum, found
}

// ProbeResult is how a health endpoint answered during a run.
type ProbeResult struct {
	URL      string           `json:"url"`
	Checks   int64            `json:"checks"`
	Failures int64            `json:"failures"`
	Statuses map[string]int64 `json:"statuses"`
	Latency  Latency          `json:"latency"`
	Timeout  float64          `json:"timeout_s"`
	// FailedAt holds the first failures' times (seconds since the start)
	// and what went wrong.
	FailedAt []ProbeFailure `json:"failed_at,omitempty"`
}

// ProbeFailure is one failed probe.
type ProbeFailure struct {
	T    float64 `json:"t"`
	What string  `json:"what"`
}

// String is the probe's verdict line.
func (p ProbeResult) String() string {
	if p.Failures == 0 {
		return fmt.Sprintf("pass  %s: %d of %d answered 200 within %s (p99 %s, max %s)", p.URL, p.Checks, p.Checks,
			secondsString(p.Timeout), msString(p.Latency.P99), msString(p.Latency.Max))
	}
	s := fmt.Sprintf("FAIL  %s: %d of %d failed", p.URL, p.Failures, p.Checks)
	if len(p.FailedAt) > 0 {
		f := p.FailedAt[0]
		s += fmt.Sprintf(", first at %.0fs: %s", f.T, f.What)
	}
	return s
}

func secondsString(s float64) string { return (time.Duration(s * float64(time.Second))).String() }

func msString(v float64) string {
	if v < 1 {
		return strconv.FormatFloat(v*1000, 'f', 0, 64) + "µs"
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + "ms"
}

// maxFailuresKept bounds ProbeResult.FailedAt.
const maxFailuresKept = 20

// Monitor scrapes and probes the server during a run.
type Monitor struct {
	cfg    MonitorConfig
	client *http.Client
	probe  *http.Client
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	first    []*scrape // per target; nil until one succeeded
	prev     []*scrape
	prevAt   []time.Time
	last     []*scrape
	points   []ServerPoint
	errs     int64
	lastErr  string
	probes   []*probeAcc
	stopOnce sync.Once
	result   *ServerResult
}

type probeAcc struct {
	res  ProbeResult
	hist *Histogram
}

// StartMonitor begins watching the server; Stop ends it and returns what
// it saw. It does nothing without scrape or probe URLs.
func StartMonitor(ctx context.Context, cfg MonitorConfig) *Monitor {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.ProbeEvery <= 0 {
		cfg.ProbeEvery = time.Second
	}
	if cfg.ProbeTimeout <= 0 {
		cfg.ProbeTimeout = 2 * time.Second
	}
	if cfg.Start.IsZero() {
		cfg.Start = time.Now()
	}
	tr := cfg.Transport
	if tr == nil {
		tr = &http.Transport{MaxIdleConnsPerHost: 4, IdleConnTimeout: 90 * time.Second}
	}
	// Probes open a new connection each time, as the kubelet's do: a
	// server too busy to accept one fails them, as it would in production.
	ptr := cfg.Transport
	if ptr == nil {
		ptr = &http.Transport{DisableKeepAlives: true}
	}
	ctx, cancel := context.WithCancel(ctx)
	m := &Monitor{cfg: cfg, cancel: cancel,
		client: &http.Client{Transport: tr, Timeout: 10 * time.Second},
		probe:  &http.Client{Transport: ptr, Timeout: cfg.ProbeTimeout},
		first:  make([]*scrape, len(cfg.Scrape)), prev: make([]*scrape, len(cfg.Scrape)),
		prevAt: make([]time.Time, len(cfg.Scrape)), last: make([]*scrape, len(cfg.Scrape))}
	if len(cfg.Scrape) > 0 {
		m.wg.Add(1)
		go m.scrapeLoop(ctx)
	}
	for _, u := range cfg.Probes {
		acc := &probeAcc{res: ProbeResult{URL: u, Statuses: map[string]int64{}, Timeout: cfg.ProbeTimeout.Seconds()}, hist: NewHistogram()}
		m.probes = append(m.probes, acc)
		m.wg.Add(1)
		go m.probeLoop(ctx, acc)
	}
	return m
}

// waitUntil sleeps until t or until ctx ends; false when ctx ended.
func waitUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (m *Monitor) scrapeLoop(ctx context.Context) {
	defer m.wg.Done()
	// The first reading at the start is the baseline; then one at the end
	// of every interval, so point k covers the run's interval k.
	for k := 0; ; k++ {
		if !waitUntil(ctx, m.cfg.Start.Add(time.Duration(k)*m.cfg.Interval)) {
			return
		}
		m.scrapeAll(ctx)
	}
}

func (m *Monitor) probeLoop(ctx context.Context, acc *probeAcc) {
	defer m.wg.Done()
	for k := 0; ; k++ {
		if !waitUntil(ctx, m.cfg.Start.Add(time.Duration(k)*m.cfg.ProbeEvery)) {
			return
		}
		m.probeOnce(ctx, acc)
	}
}

func (m *Monitor) probeOnce(ctx context.Context, acc *probeAcc) {
	start := time.Now()
	what := ""
	code := "none"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, acc.res.URL, nil)
	if err == nil {
		var resp *http.Response
		resp, err = m.probe.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			code = strconv.Itoa(resp.StatusCode)
			if resp.StatusCode != http.StatusOK {
				what = "status " + code
			}
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return // the run ended while the probe was out: not a failure
		}
		what = err.Error()
		if len(what) > 120 {
			what = what[:120]
		}
	}
	d := time.Since(start)
	m.mu.Lock()
	defer m.mu.Unlock()
	acc.res.Checks++
	acc.res.Statuses[code]++
	acc.hist.Record(d)
	if what != "" {
		acc.res.Failures++
		if len(acc.res.FailedAt) < maxFailuresKept {
			acc.res.FailedAt = append(acc.res.FailedAt, ProbeFailure{T: round(start.Sub(m.cfg.Start).Seconds(), 3), What: what})
		}
	}
}

// scrape is one reading of a target's metrics.
type scrape struct {
	counters map[string]counterValue // by series key
	cpu      float64
	schedSum float64
	schedN   float64
	guard    float64
	line     float64
	shed     map[string]float64
	requests float64
	errors   float64
}

type counterValue struct {
	name   string
	labels map[string]string
	v      float64
}

func seriesKey(name string, labels map[string]string) string {
	var b strings.Builder
	b.WriteString(name)
	for _, k := range sortedStrings(labels) {
		b.WriteString("\xff" + k + "=" + labels[k])
	}
	return b.String()
}

func labelMap(m *dto.Metric) map[string]string {
	out := make(map[string]string, len(m.Label))
	for _, l := range m.Label {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// parseScrape reads the Prometheus text exposition.
func parseScrape(r io.Reader) (*scrape, error) {
	p := expfmt.NewTextParser(promodel.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, err
	}
	s := &scrape{counters: map[string]counterValue{}, shed: map[string]float64{}}
	for name, f := range fams {
		for _, m := range f.Metric {
			labels := labelMap(m)
			switch {
			case m.Counter != nil:
				v := m.Counter.GetValue()
				s.counters[seriesKey(name, labels)] = counterValue{name, labels, v}
				switch name {
				case "process_cpu_seconds_total":
					s.cpu += v
				case "surge_admission_shed_total":
					s.shed[labels["class"]] += v
				}
			case m.Histogram != nil:
				n := float64(m.Histogram.GetSampleCount())
				if n == 0 {
					n = m.Histogram.GetSampleCountFloat() // counts written as floats
				}
				switch name {
				case "go_sched_latencies_seconds":
					s.schedSum += m.Histogram.GetSampleSum()
					s.schedN += n
				case "http_server_request_duration_seconds":
					s.requests += n
					if strings.HasPrefix(labels["http_response_status_code"], "5") {
						s.errors += n
					}
				}
			case m.Gauge != nil:
				switch name {
				case "surge_admission_sched_delay_seconds":
					s.guard = max(s.guard, m.Gauge.GetValue())
				case "surge_waitroom_waiting":
					s.line += m.Gauge.GetValue()
				}
			case m.Untyped != nil && name == "process_cpu_seconds_total":
				s.cpu += m.Untyped.GetValue()
			}
		}
	}
	return s, nil
}

func (m *Monitor) scrapeAll(ctx context.Context) {
	type reading struct {
		s   *scrape
		at  time.Time
		err error
	}
	got := make([]reading, len(m.cfg.Scrape))
	var wg sync.WaitGroup
	for i, u := range m.cfg.Scrape {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := m.fetch(ctx, u)
			got[i] = reading{s, time.Now(), err}
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var pt ServerPoint
	have := false
	for i, g := range got {
		if g.err != nil {
			m.errs++
			m.lastErr = fmt.Sprintf("%s: %v", m.cfg.Scrape[i], g.err)
			continue
		}
		if m.first[i] == nil {
			m.first[i] = g.s
		}
		m.last[i] = g.s
		prev, prevAt := m.prev[i], m.prevAt[i]
		m.prev[i], m.prevAt[i] = g.s, g.at
		if prev == nil {
			continue
		}
		dt := g.at.Sub(prevAt).Seconds()
		if dt <= 0 {
			continue
		}
		have = true
		pt.CPU += nonNeg(g.s.cpu-prev.cpu) / dt
		if n := g.s.schedN - prev.schedN; n > 0 {
			pt.Sched = max(pt.Sched, 1000*(g.s.schedSum-prev.schedSum)/n)
		}
		pt.Guard = max(pt.Guard, 1000*g.s.guard)
		pt.Line = max(pt.Line, g.s.line)
		pt.Requests += nonNeg(g.s.requests-prev.requests) / dt
		pt.Errors += nonNeg(g.s.errors-prev.errors) / dt
		for class, v := range g.s.shed {
			if d := nonNeg(v - prev.shed[class]); d > 0 {
				if pt.Shed == nil {
					pt.Shed = map[string]float64{}
				}
				pt.Shed[class] += d / dt
			}
		}
	}
	if !have {
		return
	}
	// The interval this reading closes: the one before the reading.
	k := int(math.Round(time.Since(m.cfg.Start).Seconds()/m.cfg.Interval.Seconds())) - 1
	pt.T = max(0, float64(k)) * m.cfg.Interval.Seconds()
	if n := len(m.points); n > 0 && pt.T <= m.points[n-1].T {
		pt.T = m.points[n-1].T + m.cfg.Interval.Seconds()
	}
	m.points = append(m.points, pt)
}

func nonNeg(v float64) float64 { return max(v, 0) } // a restarted process starts its counters again

func (m *Monitor) fetch(ctx context.Context, u string) (*scrape, error) {
	ctx, cancel := context.WithTimeout(ctx, max(m.cfg.Interval, 2*time.Second))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("answered %s", resp.Status)
	}
	return parseScrape(io.LimitReader(resp.Body, 32<<20))
}

// Stop ends the watch, takes a last reading and returns what the server
// said (nil without scrape URLs) and how the probes went.
func (m *Monitor) Stop() (*ServerResult, []ProbeResult) {
	m.stopOnce.Do(func() {
		m.cancel()
		m.wg.Wait()
		if len(m.cfg.Scrape) > 0 {
			m.scrapeAll(context.Background())
			m.result = m.summarize()
		}
	})
	m.mu.Lock()
	defer m.mu.Unlock()
	var probes []ProbeResult
	for _, p := range m.probes {
		r := p.res
		r.Latency = p.hist.Summary()
		probes = append(probes, r)
	}
	return m.result, probes
}

func (m *Monitor) summarize() *ServerResult {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := &ServerResult{Targets: m.cfg.Scrape, Timeline: m.points, ScrapeErrors: m.errs, LastError: m.lastErr,
		PageCache: -1, ObjectCache: -1}
	sums := map[string]*Series{}
	for i := range m.first {
		first, last := m.first[i], m.last[i]
		if first == nil || last == nil {
			continue
		}
		for key, c := range last.counters {
			d := c.v - first.counters[key].v
			if d < 0 {
				d = c.v // restarted
			}
			s := sums[key]
			if s == nil {
				s = &Series{Name: c.name, Labels: c.labels}
				sums[key] = s
			}
			s.Delta += d
		}
	}
	keys := make([]string, 0, len(sums))
	for k := range sums {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		r.Counters = append(r.Counters, *sums[k])
	}
	ratio := func(name string) float64 {
		hit, ok1 := r.Delta(selector{name: name, labels: map[string]string{"result": "hit"}})
		stale, _ := r.Delta(selector{name: name, labels: map[string]string{"result": "stale"}})
		miss, ok2 := r.Delta(selector{name: name, labels: map[string]string{"result": "miss"}})
		if !ok1 || !ok2 || hit+stale+miss == 0 {
			return -1
		}
		return round((hit+stale)/(hit+stale+miss), 4)
	}
	r.PageCache = ratio("surge_page_cache_requests_total")
	r.ObjectCache = ratio("surge_object_cache_requests_total")
	r.CPUSeconds, _ = r.Delta(selector{name: "process_cpu_seconds_total"})
	for _, c := range r.Counters {
		if c.Name == "surge_admission_shed_total" && c.Delta > 0 {
			if r.Shed == nil {
				r.Shed = map[string]float64{}
			}
			r.Shed[c.Labels["class"]] += c.Delta
		}
	}
	return r
}
