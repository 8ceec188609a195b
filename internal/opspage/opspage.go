// Package opspage serves /ops, the operations page of the day of a spike,
// for shops with no Grafana: requests and errors by journey with their
// latency, the SLOs' error budgets and burn rates, admission control's
// shares and sheds by class, CPU and scheduler wait, and each open drop's
// line. It reads nothing but the process's own metrics registry (and the
// list of open drops): it samples the registry every few seconds and
// computes rates, percentiles and burn rates from its own samples, the
// way Prometheus would from scrapes, with the objectives of the SLO file.
package opspage

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/surge-commerce/surge/internal/slo"
)

// Drop is an open drop as the page shows it.
type Drop struct {
	ID, Name string
	// Allocated is the units the drop sells, all items together.
	Allocated int64
}

// Config is what a Page reads.
type Config struct {
	// Gatherer is the process's metrics registry.
	Gatherer prometheus.Gatherer
	// SLOs are the objectives (deploy/slo/surge.yaml).
	SLOs *slo.File
	// Every is how often the registry is sampled (default 5s), Keep how
	// much history is kept for the error budgets (default 6h).
	Every, Keep time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Page samples the metrics and renders the operations page.
type Page struct {
	cfg       Config
	slos      []sloQuery
	journeys  []journey
	drops     func(context.Context) ([]Drop, error)
	dropsMu   sync.Mutex
	mu        sync.Mutex
	points    []point
	openDrops []Drop
	dropErr   string
}

type sloQuery struct {
	slo.SLO
	errQ, totalQ parser.Expr
}

// journey is the requests one availability objective counts.
type journey struct {
	name string
	sli  slo.RequestSLI
}

// point is one sample of everything the page shows, cumulative.
type point struct {
	at       time.Time
	slo      [][2]float64 // bad, total per SLO; NaN when not evaluable
	journeys []journeyPoint
	admitted map[string]float64 // by class
	shed     map[string]float64 // by class
	cpu      float64
	sched    []bucket
	drops    map[string]dropPoint
}

type journeyPoint struct {
	count, errors float64
	buckets       []bucket
}

type dropPoint struct{ waiting, rate, admitted, units float64 }

// New returns a page over cfg's registry and objectives.
func New(cfg Config) (*Page, error) {
	if cfg.Gatherer == nil || cfg.SLOs == nil {
		return nil, errors.New("opspage: Gatherer and SLOs are required")
	}
	if cfg.Every <= 0 {
		cfg.Every = 5 * time.Second
	}
	if cfg.Keep <= 0 {
		cfg.Keep = 6 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	p := &Page{cfg: cfg}
	for _, s := range cfg.SLOs.SLOs {
		q := sloQuery{SLO: s}
		var err error
		if q.errQ, err = parser.ParseExpr(slo.Window(s.ErrorQuery, "5m")); err != nil {
			return nil, fmt.Errorf("opspage: slo %s: %w", s.Name, err)
		}
		if q.totalQ, err = parser.ParseExpr(slo.Window(s.TotalQuery, "5m")); err != nil {
			return nil, fmt.Errorf("opspage: slo %s: %w", s.Name, err)
		}
		p.slos = append(p.slos, q)
		if sli, ok, err := s.RequestSLI(); err == nil && ok && sli.BadStatus != nil {
			name := s.Name
			if n := len(name) - len("-availability"); n > 0 && name[n:] == "-availability" {
				name = name[:n]
			}
			p.journeys = append(p.journeys, journey{name: name, sli: sli})
		}
	}
	return p, nil
}

// SetDrops gives the page the list of open drops, once the shop that
// knows them is open.
func (p *Page) SetDrops(f func(context.Context) ([]Drop, error)) {
	p.dropsMu.Lock()
	p.drops = f
	p.dropsMu.Unlock()
}

// Run samples every Config.Every until ctx ends.
func (p *Page) Run(ctx context.Context) {
	t := time.NewTicker(p.cfg.Every)
	defer t.Stop()
	p.Sample(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.Sample(ctx)
		}
	}
}

// Sample takes one sample of the registry and of the open drops.
func (p *Page) Sample(ctx context.Context) {
	fams, err := p.cfg.Gatherer.Gather()
	if err != nil && len(fams) == 0 {
		return
	}
	all := flatten(fams)
	pt := point{at: p.cfg.Now(), admitted: map[string]float64{}, shed: map[string]float64{}, drops: map[string]dropPoint{}}
	for _, q := range p.slos {
		bad, err1 := cumulative(q.errQ, all)
		total, err2 := cumulative(q.totalQ, all)
		if err1 != nil || err2 != nil {
			bad, total = math.NaN(), math.NaN()
		}
		pt.slo = append(pt.slo, [2]float64{bad, total})
	}
	jb := make([]map[float64]float64, len(p.journeys))
	pt.journeys = make([]journeyPoint, len(p.journeys))
	for i := range jb {
		jb[i] = map[float64]float64{}
	}
	sched := map[float64]float64{}
	for _, s := range all {
		switch s.name {
		case slo.RequestMetric + "_count", slo.RequestMetric + "_bucket":
			for i, j := range p.journeys {
				if !j.sli.Counts(s.labels["http_request_method"], s.labels["http_route"]) {
					continue
				}
				if s.name == slo.RequestMetric+"_bucket" {
					mergeBuckets(jb[i], s)
					continue
				}
				pt.journeys[i].count += s.value
				if code, err := strconv.Atoi(s.labels["http_response_status_code"]); err == nil && j.sli.BadCode(code) {
					pt.journeys[i].errors += s.value
				}
			}
		case "surge_admission_admitted_total":
			pt.admitted[s.labels["class"]] += s.value
		case "surge_admission_shed_total":
			pt.shed[s.labels["class"]] += s.value
		case "process_cpu_seconds_total":
			pt.cpu = s.value
		case "go_sched_latencies_seconds_bucket":
			mergeBuckets(sched, s)
		case "surge_waitroom_waiting", "surge_waitroom_admit_rate", "surge_waitroom_admitted_total", "surge_waitroom_units_available":
			d := pt.drops[s.labels["drop"]]
			switch s.name {
			case "surge_waitroom_waiting":
				d.waiting = s.value
			case "surge_waitroom_admit_rate":
				d.rate = s.value
			case "surge_waitroom_admitted_total":
				d.admitted = s.value
			default:
				d.units = s.value
			}
			pt.drops[s.labels["drop"]] = d
		}
	}
	for i := range jb {
		pt.journeys[i].buckets = sortedBuckets(jb[i])
	}
	pt.sched = sortedBuckets(sched)

	p.dropsMu.Lock()
	df := p.drops
	p.dropsMu.Unlock()
	var open []Drop
	dropErr := ""
	if df != nil {
		dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		open, err = df(dctx)
		cancel()
		if err != nil {
			dropErr = err.Error()
		}
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	p.points = append(p.points, pt)
	cut := 0
	for cut < len(p.points)-1 && pt.at.Sub(p.points[cut].at) > p.cfg.Keep {
		cut++
	}
	p.points = append(p.points[:0], p.points[cut:]...)
	// Percentiles are read over the last minute only: older samples
	// give their buckets up, so six hours of history stays small.
	for i := len(p.points) - 1; i >= 0; i-- {
		old := &p.points[i]
		if pt.at.Sub(old.at) <= 2*rateWindow {
			continue
		}
		if old.sched == nil {
			break
		}
		old.sched = nil
		for j := range old.journeys {
			old.journeys[j].buckets = nil
		}
	}
	if df != nil {
		p.openDrops, p.dropErr = open, dropErr
	}
}

// View is what the page shows, ready to render or encode.
type View struct {
	At        time.Time    `json:"at"`
	Since     time.Time    `json:"history_since"`
	RateOver  string       `json:"rate_window"`
	Journeys  []JourneyRow `json:"journeys"`
	SLOs      []SLORow     `json:"slos"`
	Admission []ClassRow   `json:"admission"`
	CPU       string       `json:"cpu_cores"`
	SchedP99  string       `json:"sched_wait_p99"`
	Drops     []DropRow    `json:"drops"`
	Notes     []string     `json:"notes,omitempty"`
}

// JourneyRow is one journey's traffic over the rate window.
type JourneyRow struct {
	Name     string `json:"name"`
	PerSec   string `json:"requests_per_s"`
	Errors   string `json:"errors_per_s"`
	ErrorPct string `json:"error_pct"`
	P50      string `json:"p50"`
	P99      string `json:"p99"`
}

// SLORow is one objective's state.
type SLORow struct {
	Name       string `json:"name"`
	Objective  string `json:"objective"`
	BudgetLeft string `json:"budget_left"`
	Burn5m     string `json:"burn_5m"`
	Burn1h     string `json:"burn_1h"`
	// Paging is true when both windows burn past 14.4x, where the page
	// alert fires.
	Paging bool   `json:"paging"`
	Why    string `json:"description"`
}

// ClassRow is admission control for one priority class.
type ClassRow struct {
	Class     string `json:"class"`
	Admitted  string `json:"admitted_per_s"`
	Shed      string `json:"shed_per_s"`
	Share     string `json:"admitted_share"`
	ShedTotal string `json:"shed_total"`
}

// DropRow is one open drop.
type DropRow struct {
	Name      string `json:"name"`
	ID        string `json:"id"`
	Waiting   string `json:"line_length"`
	Rate      string `json:"admission_rate_per_min"`
	Admitted  string `json:"admitted"`
	Bought    string `json:"bought"`
	UnitsLeft string `json:"units_left"`
	SellOut   string `json:"time_to_sell_out"`
}

const rateWindow = time.Minute

// at returns the newest point at least d older than the last one, or the
// oldest there is.
func at(points []point, d time.Duration) point {
	last := points[len(points)-1]
	for i := len(points) - 1; i >= 0; i-- {
		if last.at.Sub(points[i].at) >= d {
			return points[i]
		}
	}
	return points[0]
}

// View computes the page from the samples taken so far.
func (p *Page) View() View {
	p.mu.Lock()
	defer p.mu.Unlock()
	v := View{At: p.cfg.Now(), RateOver: "0s"}
	if len(p.points) == 0 {
		v.Notes = append(v.Notes, "no sample yet")
		return v
	}
	now, first := p.points[len(p.points)-1], p.points[0]
	w1m, w5m, w1h := at(p.points, rateWindow), at(p.points, 5*time.Minute), at(p.points, time.Hour)
	v.At, v.Since = now.at, first.at
	dt := now.at.Sub(w1m.at).Seconds()
	v.RateOver = now.at.Sub(w1m.at).Round(time.Second).String()
	rate := func(a, b float64) float64 {
		if dt <= 0 {
			return 0
		}
		return (a - b) / dt
	}
	if len(p.points) < 2 {
		v.Notes = append(v.Notes, "rates appear after the second sample")
	}
	for i, j := range p.journeys {
		n, o := now.journeys[i], w1m.journeys[i]
		row := JourneyRow{Name: j.name, PerSec: num(rate(n.count, o.count)), Errors: num(rate(n.errors, o.errors)),
			ErrorPct: pct(n.errors-o.errors, n.count-o.count)}
		d := deltaBuckets(n.buckets, o.buckets)
		row.P50, row.P99 = dur(quantile(0.5, d)), dur(quantile(0.99, d))
		v.Journeys = append(v.Journeys, row)
	}
	for i, q := range p.slos {
		budget := q.ErrorBudget()
		burn := func(then point) (float64, string) {
			bad, total := now.slo[i][0]-then.slo[i][0], now.slo[i][1]-then.slo[i][1]
			if math.IsNaN(bad) || total <= 0 {
				return math.NaN(), "–"
			}
			b := bad / total / budget
			return b, strconv.FormatFloat(b, 'f', 2, 64) + "x"
		}
		b5, s5 := burn(w5m)
		b1, s1 := burn(w1h)
		row := SLORow{Name: q.Name, Objective: strconv.FormatFloat(q.Objective, 'f', -1, 64) + "%", Burn5m: s5, Burn1h: s1,
			Paging: b5 > 14.4 && b1 > 14.4, Why: q.Description, BudgetLeft: "–"}
		if bad, total := now.slo[i][0]-first.slo[i][0], now.slo[i][1]-first.slo[i][1]; !math.IsNaN(bad) && total > 0 {
			row.BudgetLeft = strconv.FormatFloat(100*(1-bad/total/budget), 'f', 1, 64) + "%"
		} else if math.IsNaN(now.slo[i][0]) {
			row.BudgetLeft = "not computable in process"
		}
		v.SLOs = append(v.SLOs, row)
	}
	classes := map[string]bool{}
	for c := range now.admitted {
		classes[c] = true
	}
	for c := range now.shed {
		classes[c] = true
	}
	names := make([]string, 0, len(classes))
	for c := range classes {
		names = append(names, c)
	}
	sort.Strings(names)
	for _, c := range names {
		a, s := now.admitted[c]-w1m.admitted[c], now.shed[c]-w1m.shed[c]
		v.Admission = append(v.Admission, ClassRow{Class: c, Admitted: num(rate(now.admitted[c], w1m.admitted[c])),
			Shed: num(rate(now.shed[c], w1m.shed[c])), Share: pct(a, a+s), ShedTotal: strconv.FormatFloat(now.shed[c], 'f', 0, 64)})
	}
	v.CPU = strconv.FormatFloat(rate(now.cpu, w1m.cpu), 'f', 2, 64)
	v.SchedP99 = dur(quantile(0.99, deltaBuckets(now.sched, w1m.sched)))
	if p.dropErr != "" {
		v.Notes = append(v.Notes, "drops: "+p.dropErr)
	}
	for _, d := range p.openDrops {
		n, o := now.drops[d.ID], w1m.drops[d.ID]
		row := DropRow{Name: d.Name, ID: d.ID, Waiting: count(n.waiting), Rate: count(n.rate), Admitted: count(n.admitted),
			Bought: count(float64(d.Allocated) - n.units), UnitsLeft: count(n.units), SellOut: "–"}
		if _, ok := now.drops[d.ID]; !ok {
			row.Waiting, row.Rate, row.Admitted, row.Bought, row.UnitsLeft = "–", "–", "–", "–", "–"
		} else if n.units <= 0 {
			row.SellOut = "sold out"
		} else if sold := rate(o.units, n.units); sold > 0 {
			row.SellOut = (time.Duration(n.units/sold) * time.Second).Round(time.Second).String()
		}
		v.Drops = append(v.Drops, row)
	}
	return v
}

func num(v float64) string {
	switch {
	case math.IsNaN(v):
		return "–"
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

func count(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) }

func pct(part, whole float64) string {
	if whole <= 0 {
		return "–"
	}
	return strconv.FormatFloat(100*part/whole, 'f', 1, 64) + "%"
}

func dur(seconds float64) string {
	if math.IsNaN(seconds) {
		return "–"
	}
	d := time.Duration(seconds * float64(time.Second))
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(100 * time.Microsecond).String()
	}
	return d.Round(time.Microsecond).String()
}
