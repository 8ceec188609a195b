package report

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"strings"
	"time"

	"github.com/surge-commerce/surge/internal/loadtest"
)

//go:embed report.html
var reportHTML string

var reportTmpl = template.Must(template.New("report").Funcs(template.FuncMap{
	"ms":  fmtMS,
	"pct": pct,
	"rate": func(n int64, secs float64) string {
		if secs <= 0 {
			return "-"
		}
		return fmtTick(float64(int64(float64(n)/secs*10)) / 10)
	},
	"keys": loadtest.SortedKeys,
	"when": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	"secs": func(s float64) string {
		return (time.Duration(s * float64(time.Second))).Round(100 * time.Millisecond).String()
	},
	"joinKV":  joinKV,
	"verdict": verdictHTML,
}).Parse(reportHTML))

// verdictHTML sets a verdict line's first word ("pass", "FAIL", "skip")
// in bold.
func verdictHTML(v fmt.Stringer) template.HTML {
	word, rest, _ := strings.Cut(v.String(), "  ")
	return template.HTML("<b>" + template.HTMLEscapeString(word) + "</b> " + template.HTMLEscapeString(rest))
}

func joinKV(m map[string]int64) string {
	var parts []string
	for _, k := range loadtest.SortedKeys(m) {
		parts = append(parts, k+" ×"+fmtTick(float64(m[k])))
	}
	return strings.Join(parts, ", ")
}

// HTML writes the self-contained report: summary, verdicts, charts of
// requests per second, latency percentiles, errors, users and in-flight
// requests over time, concurrent users against the server error rate,
// each journey's latency, the server's own metrics (CPU, scheduler wait,
// shed by class, people in line) on the same time axis, users against
// error rate, the per-step table, and how a drop's buyers fared.
func HTML(w io.Writer, r *loadtest.Result) error {
	load, server := charts(r)
	return reportTmpl.Execute(w, struct {
		R            *loadtest.Result
		Steps        []*loadtest.Stats
		Span         float64
		Charts       []template.HTML
		ServerCharts []template.HTML
		ServerLine   string
		SellOut      string
		ServerErrors int64
	}{r, steps(r), max(r.Duration, r.Elapsed), load, server, serverSummary(r), sellOut(r), r.Total.ServerErrors()})
}

func serverSummary(r *loadtest.Result) string {
	if r.Server == nil {
		return ""
	}
	return strings.TrimPrefix(serverLine(r), "server ")
}

func sellOut(r *loadtest.Result) string {
	if r.Drop == nil {
		return ""
	}
	s := sellOutLine(r.Drop)
	if s == "" {
		return ""
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func steps(r *loadtest.Result) []*loadtest.Stats {
	if len(r.Steps) == 1 && r.Steps[0].Name == r.Total.Name {
		return nil
	}
	return r.Steps
}

const (
	blue   = "#2563eb"
	green  = "#16a34a"
	orange = "#ea580c"
	red    = "#dc2626"
	purple = "#7c3aed"
	gray   = "#6b7280"
	teal   = "#0d9488"
	brown  = "#92400e"
	pink   = "#db2777"
)

// palette colours journeys and classes in a fixed order.
var palette = []string{blue, orange, green, purple, teal, pink, brown, gray}

// classColors keeps a priority class's colour the same in every report.
var classColors = map[string]string{"critical": red, "high": orange, "browse": blue, "background": gray}

func charts(r *loadtest.Result) (load, server []template.HTML) {
	iv := r.Interval
	if iv <= 0 {
		iv = 1
	}
	span := max(r.Duration, r.Elapsed)
	var bands []band
	for _, p := range r.Phases {
		bands = append(bands, band{p.Name, p.From, p.To})
	}
	var t, rps, eps, p50, p90, p99, pmax, errPct, srvPct, users, inflight []float64
	var scatterX, scatterY []float64
	byJourney := map[string][]float64{}
	for _, p := range r.Timeline {
		t = append(t, p.T)
		rps = append(rps, float64(p.Requests)/iv)
		eps = append(eps, float64(p.Errors)/iv)
		ep, sp := 0.0, 0.0
		if p.Requests > 0 {
			ep = 100 * float64(p.Errors) / float64(p.Requests)
			sp = 100 * float64(p.ServerErrors) / float64(p.Requests)
			p50, p90 = append(p50, p.Latency.P50), append(p90, p.Latency.P90)
			p99, pmax = append(p99, p.Latency.P99), append(pmax, p.Latency.Max)
			scatterX, scatterY = append(scatterX, float64(p.Users)), append(scatterY, ep)
		} else {
			p50, p90, p99, pmax = append(p50, 0), append(p90, 0), append(p99, 0), append(pmax, 0)
		}
		for _, j := range r.Journeys {
			v := 0.0
			if h := p.Journeys[j]; h.Count() > 0 {
				v = float64(h.Quantile(99).Microseconds()) / 1000
			}
			byJourney[j] = append(byJourney[j], v)
		}
		errPct = append(errPct, ep)
		srvPct = append(srvPct, sp)
		users = append(users, float64(p.Users))
		inflight = append(inflight, float64(p.InFlight))
	}
	x := "seconds since start"
	timeChart := func(c chart) chart {
		c.xLabel, c.xMax, c.bands = x, span, bands
		return c
	}
	out := []chart{
		timeChart(chart{id: "users-server-errors", title: "Concurrent users and the server error rate", yLabel: "users", yRight: "% answered 5xx or not at all",
			series: []series{{name: "users", color: purple, xs: t, ys: users}, {name: "server errors %", color: red, xs: t, ys: srvPct, right: true}},
			note:   "Server errors are answers 5xx (a shed request is a 503) and requests that got no answer at all."}),
		timeChart(chart{id: "rps", title: "Requests per second", yLabel: "per second", series: []series{
			{name: "requests/s", color: blue, xs: t, ys: rps}, {name: "errors/s", color: red, xs: t, ys: eps}}}),
		timeChart(chart{id: "latency", title: "Latency percentiles (from intended send time)", yLabel: "ms", series: []series{
			{name: "p50", color: green, xs: t, ys: p50}, {name: "p90", color: blue, xs: t, ys: p90},
			{name: "p99", color: orange, xs: t, ys: p99}, {name: "max", color: red, xs: t, ys: pmax}}}),
	}
	if len(r.Journeys) > 1 {
		var ss []series
		for i, j := range r.Journeys {
			ss = append(ss, series{name: j, color: palette[i%len(palette)], xs: t, ys: byJourney[j]})
		}
		out = append(out, timeChart(chart{id: "journeys", title: "p99 latency by journey", yLabel: "ms", series: ss}))
	}
	out = append(out,
		timeChart(chart{id: "errors", title: "Error rate", yLabel: "% of requests", series: []series{
			{name: "errors %", color: red, xs: t, ys: errPct}, {name: "server errors %", color: orange, xs: t, ys: srvPct, dash: true}}}),
		timeChart(chart{id: "users", title: "Concurrent users and requests in flight", yLabel: "count", series: []series{
			{name: "users", color: purple, xs: t, ys: users}, {name: "in flight", color: gray, xs: t, ys: inflight}}}),
		chart{id: "users-errors", title: "Concurrent users against error rate (one dot per interval)", xLabel: "concurrent users",
			yLabel: "% errors", points: true, series: []series{{name: "intervals", color: red, xs: scatterX, ys: scatterY}}},
	)
	if r.Server != nil {
		server = serverCharts(r, timeChart)
	}
	return render(out), server
}

func render(cs []chart) []template.HTML {
	html := make([]template.HTML, len(cs))
	for i, c := range cs {
		html[i] = c.render()
	}
	return html
}

// serverCharts draws what the server's own metrics said, on the run's
// time axis.
func serverCharts(r *loadtest.Result, timeChart func(chart) chart) []template.HTML {
	var t, cpu, sched, guard, line, reqs, errs []float64
	shed := map[string][]float64{}
	classes := []string{"critical", "high", "browse", "background"}
	for _, p := range r.Server.Timeline {
		t = append(t, p.T)
		cpu = append(cpu, p.CPU)
		sched = append(sched, p.Sched)
		guard = append(guard, p.Guard)
		line = append(line, p.Line)
		reqs = append(reqs, p.Requests)
		errs = append(errs, p.Errors)
		for _, c := range classes {
			shed[c] = append(shed[c], p.Shed[c])
		}
	}
	var shedSeries []series
	for _, c := range classes {
		shedSeries = append(shedSeries, series{name: c, color: classColors[c], xs: t, ys: shed[c]})
	}
	return render([]chart{
		timeChart(chart{id: "server-cpu", title: "Server CPU", yLabel: "cores", series: []series{
			{name: "CPU", color: blue, xs: t, ys: cpu}},
			note: "process_cpu_seconds_total, summed over the scraped servers."}),
		timeChart(chart{id: "server-sched", title: "Scheduler wait: how long runnable goroutines waited for a CPU", yLabel: "ms", series: []series{
			{name: "mean", color: purple, xs: t, ys: sched}, {name: "CPU guard p90", color: orange, xs: t, ys: guard}},
			note: "Mean from go_sched_latencies_seconds; p90 as admission control's CPU guard measured it (surge_admission_sched_delay_seconds). Above the guard's target, browse is shed."}),
		timeChart(chart{id: "server-shed", title: "Shed by class", yLabel: "requests/s", series: shedSeries,
			note: "surge_admission_shed_total: requests refused with 503 by admission control, lowest classes first."}),
		timeChart(chart{id: "server-line", title: "People in line", yLabel: "waiting", series: []series{
			{name: "in line", color: teal, xs: t, ys: line}},
			note: "surge_waitroom_waiting: drop and standby lines, people whose turn has not come."}),
		timeChart(chart{id: "server-requests", title: "Requests the server counted", yLabel: "per second", series: []series{
			{name: "requests/s", color: blue, xs: t, ys: reqs}, {name: "5xx/s", color: red, xs: t, ys: errs}}}),
	})
}
