package report

import (
	_ "embed"
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
	"joinKV": joinKV,
}).Parse(reportHTML))

func joinKV(m map[string]int64) string {
	var parts []string
	for _, k := range loadtest.SortedKeys(m) {
		parts = append(parts, k+" ×"+fmtTick(float64(m[k])))
	}
	return strings.Join(parts, ", ")
}

// HTML writes the self-contained report: summary, thresholds, charts of
// requests per second, latency percentiles, errors, users and in-flight
// requests over time, users against error rate, and the per-step table.
func HTML(w io.Writer, r *loadtest.Result) error {
	return reportTmpl.Execute(w, struct {
		R      *loadtest.Result
		Steps  []*loadtest.Stats
		Span   float64
		Charts []template.HTML
	}{r, steps(r), max(r.Duration, r.Elapsed), charts(r)})
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
)

func charts(r *loadtest.Result) []template.HTML {
	iv := r.Interval
	if iv <= 0 {
		iv = 1
	}
	var t, rps, eps, p50, p90, p99, pmax, errPct, users, inflight []float64
	var scatterX, scatterY []float64
	for _, p := range r.Timeline {
		t = append(t, p.T)
		rps = append(rps, float64(p.Requests)/iv)
		eps = append(eps, float64(p.Errors)/iv)
		ep := 0.0
		if p.Requests > 0 {
			ep = 100 * float64(p.Errors) / float64(p.Requests)
			p50, p90 = append(p50, p.Latency.P50), append(p90, p.Latency.P90)
			p99, pmax = append(p99, p.Latency.P99), append(pmax, p.Latency.Max)
			scatterX, scatterY = append(scatterX, float64(p.Users)), append(scatterY, ep)
		} else {
			p50, p90, p99, pmax = append(p50, 0), append(p90, 0), append(p99, 0), append(pmax, 0)
		}
		errPct = append(errPct, ep)
		users = append(users, float64(p.Users))
		inflight = append(inflight, float64(p.InFlight))
	}
	x := "seconds since start"
	out := []chart{
		{id: "rps", title: "Requests per second", xLabel: x, yLabel: "per second", series: []series{
			{"requests/s", blue, t, rps}, {"errors/s", red, t, eps}}},
		{id: "latency", title: "Latency percentiles (from intended send time)", xLabel: x, yLabel: "ms", series: []series{
			{"p50", green, t, p50}, {"p90", blue, t, p90}, {"p99", orange, t, p99}, {"max", red, t, pmax}}},
		{id: "errors", title: "Error rate", xLabel: x, yLabel: "% of requests", series: []series{
			{"errors %", red, t, errPct}}},
		{id: "users", title: "Concurrent users and requests in flight", xLabel: x, yLabel: "count", series: []series{
			{"users", purple, t, users}, {"in flight", gray, t, inflight}}},
		{id: "users-errors", title: "Concurrent users against error rate (one dot per interval)", xLabel: "concurrent users",
			yLabel: "% errors", points: true, series: []series{{"intervals", red, scatterX, scatterY}}},
	}
	html := make([]template.HTML, len(out))
	for i, c := range out {
		html[i] = c.render()
	}
	return html
}
