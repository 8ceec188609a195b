package capacity

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"strings"
)

// HTML writes the plan as one self-contained page: no script and no
// external asset (a Content-Security-Policy forbids fetching anything);
// the charts are inline SVG.
func (pl *Plan) HTML(w io.Writer, manifests Manifests) error {
	var text strings.Builder
	_ = pl.Text(&text)
	return htmlTmpl.Execute(w, struct {
		P         *Plan
		Text      string
		Charts    []template.HTML
		Manifests Manifests
	}{pl, text.String(), pl.charts(), manifests})
}

type line struct {
	name, color string
	xs, ys      []float64
	step        bool
}

// svgChart draws lines over a shared x axis (minutes).
func svgChart(id, title, ylabel string, lines []line) template.HTML {
	const W, H, L, R, T, B = 760, 240, 60, 16, 28, 36
	var b strings.Builder
	xmax, ymax := 0.0, 0.0
	for _, l := range lines {
		for i := range l.xs {
			xmax, ymax = math.Max(xmax, l.xs[i]), math.Max(ymax, l.ys[i])
		}
	}
	if xmax <= 0 {
		xmax = 1
	}
	if ymax <= 0 {
		ymax = 1
	}
	ymax = niceMax(ymax)
	px := func(x float64) float64 { return L + x/xmax*float64(W-L-R) }
	py := func(y float64) float64 { return T + float64(H-T-B) - y/ymax*float64(H-T-B) }
	fmt.Fprintf(&b, `<figure class="chart"><figcaption>%s</figcaption><svg data-chart="%s" viewBox="0 0 %d %d" role="img" aria-label="%s" xmlns="http://www.w3.org/2000/svg">`,
		template.HTMLEscapeString(title), id, W, H, template.HTMLEscapeString(title))
	for i := 0; i <= 4; i++ {
		v := ymax * float64(i) / 4
		fmt.Fprintf(&b, `<line class="grid" x1="%d" x2="%d" y1="%.1f" y2="%.1f"/><text class="ytick" x="%d" y="%.1f">%s</text>`, L, W-R, py(v), py(v), L-6, py(v)+4, fmtRate(v))
	}
	for i := 0; i <= 6; i++ {
		v := xmax * float64(i) / 6
		fmt.Fprintf(&b, `<text class="xtick" x="%.1f" y="%d">%s</text>`, px(v), H-B+16, fmtRate(v))
	}
	fmt.Fprintf(&b, `<text class="axis" x="%d" y="%d">minutes from the start</text>`, (W+L)/2, H-4)
	fmt.Fprintf(&b, `<text class="axis" transform="translate(14 %d) rotate(-90)">%s</text>`, (H+T-B)/2, template.HTMLEscapeString(ylabel))
	lx := L + 4
	for _, l := range lines {
		var d strings.Builder
		for i := range l.xs {
			if i == 0 {
				fmt.Fprintf(&d, "M%.1f %.1f", px(l.xs[i]), py(l.ys[i]))
				continue
			}
			if l.step {
				fmt.Fprintf(&d, "H%.1f", px(l.xs[i]))
			}
			fmt.Fprintf(&d, "L%.1f %.1f", px(l.xs[i]), py(l.ys[i]))
		}
		fmt.Fprintf(&b, `<path class="series" data-series="%s" stroke="%s" d="%s"/>`, template.HTMLEscapeString(l.name), l.color, d.String())
		fmt.Fprintf(&b, `<g class="legend"><rect x="%d" y="8" width="12" height="12" fill="%s"/><text x="%d" y="18">%s</text></g>`,
			lx, l.color, lx+16, template.HTMLEscapeString(l.name))
		lx += 28 + 7*len(l.name)
	}
	b.WriteString(`</svg></figure>`)
	return template.HTML(b.String())
}

func niceMax(v float64) float64 {
	mag := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10} {
		if m*mag >= v {
			return m * mag
		}
	}
	return 10 * mag
}

func (pl *Plan) charts() []template.HTML {
	var out []template.HTML
	sim := func(r SimResult, f func(SimPoint) float64) (xs, ys []float64) {
		for _, p := range r.Points {
			xs, ys = append(xs, p.T/60), append(ys, f(p))
		}
		return
	}
	dx, dy := sim(pl.Reactive, func(p SimPoint) float64 { return p.Demand })
	cx, cy := sim(pl.Reactive, func(p SimPoint) float64 { return p.Capacity })
	lines := []line{{name: "CPU demand (cores)", color: "#dc2626", xs: dx, ys: dy},
		{name: "HPA alone: capacity", color: "#2563eb", xs: cx, ys: cy}}
	if !pl.Cluster.Fixed {
		px, py := sim(pl.PreScaled, func(p SimPoint) float64 { return p.Capacity })
		lines = append(lines, line{name: "pre-scaled: capacity", color: "#16a34a", xs: px, ys: py})
	}
	out = append(out, svgChart("capacity", "API demand against what the ready pods serve within the SLO", "cores", lines))
	rx, ry := sim(pl.Reactive, func(p SimPoint) float64 { return float64(p.Pods) })
	lines = []line{{name: "HPA alone: pods", color: "#2563eb", xs: rx, ys: ry, step: true}}
	if !pl.Cluster.Fixed {
		px, py := sim(pl.PreScaled, func(p SimPoint) float64 { return float64(p.Pods) })
		lines = append(lines, line{name: "pre-scaled: pods", color: "#16a34a", xs: px, ys: py, step: true})
	}
	var planX, planY []float64
	for _, pp := range pl.Phases {
		planX = append(planX, pp.From/60, pp.To/60)
		planY = append(planY, float64(pp.APIReplicas), float64(pp.APIReplicas))
	}
	lines = append(lines, line{name: "planned API pods", color: "#7c3aed", xs: planX, ys: planY})
	out = append(out, svgChart("pods", "API pods over time", "pods", lines))
	bx, by := sim(pl.Reactive, func(p SimPoint) float64 { return p.Backlog })
	out = append(out, svgChart("backlog", "Visitors a standby line would hold (HPA alone)", "sessions", []line{{name: "in line", color: "#ea580c", xs: bx, ys: by}}))
	for _, d := range pl.Drops {
		var tx, wy, uy []float64
		for _, p := range d.Line {
			tx, wy, uy = append(tx, p.T/60), append(wy, p.Waiting), append(uy, p.Units)
		}
		out = append(out, svgChart("line-"+slug(d.Phase), "Drop "+d.Phase+": buyers waiting and units left", "count",
			[]line{{name: "waiting", color: "#ea580c", xs: tx, ys: wy}, {name: "units left", color: "#16a34a", xs: tx, ys: uy}}))
	}
	return out
}

var htmlTmpl = template.Must(template.New("plan").Funcs(template.FuncMap{
	"mul1000": func(f float64) float64 { return f * 1000 },
	"pct":     func(f float64) string { return fmt.Sprintf("%.0f%%", 100*f) },
	"rate":    fmtRate,
	"rel":     relSigned,
	"dur":     relStr,
	"ms": func(p *float64) string {
		if p == nil {
			return "past knee"
		}
		return fmt.Sprintf("%.0f ms", *p)
	},
	"sum": func(m map[string]float64) string {
		var s float64
		for _, v := range m {
			s += v
		}
		return fmtRate(s)
	},
}).Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>surge plan: {{.P.Event}}</title>
<style>
:root { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; color: #111827; }
body { margin: 0 auto; max-width: 1100px; padding: 16px; }
h1 { font-size: 1.5rem; margin: 0 0 4px; } h2 { font-size: 1.15rem; margin: 28px 0 8px; }
.sub, .note { color: #4b5563; } .note { font-size: .85rem; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; }
th, td { padding: 5px 8px; border-bottom: 1px solid #e5e7eb; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
.bad { color: #b91c1c; font-weight: 600; } .good { color: #15803d; font-weight: 600; }
.warn { background: #fef3c7; border-left: 4px solid #d97706; padding: 8px 12px; margin: 8px 0; }
dl.facts { display: grid; grid-template-columns: repeat(auto-fill, minmax(200px, 1fr)); gap: 8px; margin: 0; }
dl.facts div { background: #f3f4f6; border-radius: 6px; padding: 8px 10px; }
dl.facts dt { font-size: .75rem; color: #4b5563; } dl.facts dd { margin: 2px 0 0; font-size: 1.05rem; font-weight: 600; }
figure.chart { margin: 16px 0; } figure.chart figcaption { font-weight: 600; margin-bottom: 4px; }
figure.chart svg { width: 100%; height: auto; border: 1px solid #e5e7eb; border-radius: 6px; }
svg .grid { stroke: #e5e7eb; } svg text { font-size: 11px; fill: #4b5563; }
svg .ytick { text-anchor: end; } svg .xtick, svg .axis { text-anchor: middle; }
svg path.series { fill: none; stroke-width: 2; }
ol.timeline li { margin: 4px 0; } ol.timeline time { font-weight: 600; }
pre { background: #f9fafb; border: 1px solid #e5e7eb; padding: 8px; overflow-x: auto; font-size: .8rem; }
details { margin: 6px 0; }
</style>
</head>
<body>
<header>
<h1>Capacity plan: {{.P.Event}}</h1>
<p class="sub">Starts {{.P.Start.Format "2006-01-02 15:04 MST"}} &middot; profile: {{.P.ProfileOf}} &middot; {{.P.SLONote}}</p>
</header>
{{range .P.Warnings}}<p class="warn">{{.}}</p>{{end}}
<section id="summary">
<dl class="facts">
<div><dt>CPU per session</dt><dd>{{printf "%.2f ms" (mul1000 .P.SessionCPU.Total)}}</dd></div>
<div><dt>sessions/s per API pod ({{.P.Cluster.APICPU}} CPU at {{pct .P.TargetUtil}})</dt><dd>{{rate .P.ReplicaCapacity}}</dd></div>
<div><dt>HPA alone: under capacity</dt><dd class="{{if .P.Reactive.UnderCapacity}}bad{{else}}good{{end}}">{{dur .P.Reactive.UnderCapacity}}</dd></div>
<div><dt>HPA alone: requests shed</dt><dd>{{rate .P.Reactive.Shed}}</dd></div>
{{if not .P.Cluster.Fixed}}<div><dt>pre-scaled: under capacity</dt><dd class="{{if .P.PreScaled.UnderCapacity}}bad{{else}}good{{end}}">{{dur .P.PreScaled.UnderCapacity}}</dd></div>{{end}}
</dl>
</section>
<section id="phases">
<h2>Phases</h2>
<div class="scroll"><table class="phases">
<thead><tr><th>phase</th><th>from</th><th>sessions/s</th><th>requests/s</th><th>API pods</th><th>CPU use</th><th>workers</th><th>DB vCPU</th><th>DB pool / max_connections</th><th>Redis ops/s</th><th>NATS msg/s</th><th>SLO</th></tr></thead>
<tbody>{{range .P.Phases}}<tr class="phase"><td>{{.Name}}</td><td>{{rel .From}}</td><td>{{rate .Sessions}}</td><td>{{sum .Requests}}</td><td>{{.APIReplicas}}</td><td>{{pct .Utilization}}</td><td>{{.WorkerReplicas}}</td><td>{{.DB.VCPUs}}</td><td>{{.DB.PoolPerReplica}} / {{.DB.MaxConnections}}</td><td>{{rate .RedisOps}}</td><td>{{rate .NATSMsgs}}</td><td class="{{if .Breach}}bad{{else}}good{{end}}">{{if .Breach}}breach: admit {{rate .AdmitSessions}}/s{{else}}holds{{end}}</td></tr>
{{end}}</tbody></table></div>
{{range .P.Phases}}<details><summary>{{.Name}}: predicted p99 by class</summary><ul>{{range $k, $v := .P99Out}}<li>{{$k}}: {{ms $v}}</li>{{end}}</ul>{{with .BreachWhy}}<p class="bad">{{.}}</p>{{end}}</details>{{end}}
</section>
{{with .P.Drops}}<section id="drops"><h2>Drops</h2>
{{range .}}<p><strong>{{.Phase}}</strong>: {{.Buyers}} buyers for {{.Units}} units on {{.APIReplicas}} API pods. Waiting room: <code>rate_per_minute: {{.AdmitPerMinute}}</code>, <code>max_active: {{printf "%.0f" .ActiveCap}}</code>.
{{if ge .SellOut 0.0}}Sold out {{dur .SellOut}} after the start{{else}}Not sold out within the phase{{end}}; time in line median {{dur .WaitMedian}}, longest {{dur .WaitMax}}; {{rate .ToldSoldOut}} told sold out while waiting; at most {{rate .PeakWaiting}} waiting.</p>{{end}}
</section>{{end}}
<section id="timeline">
<h2>Timeline</h2>
<ol class="timeline">{{range .P.Timeline}}<li><time>{{.At.Format "Jan 2 15:04"}}</time> ({{rel .Rel}}) {{.What}}</li>{{end}}</ol>
</section>
<section id="charts">
<h2>Against the arrivals</h2>
{{range .Charts}}{{.}}
{{end}}
<p class="note">{{.P.Reactive.Strategy}}: {{dur .P.Reactive.UnderCapacity}} under capacity, {{rate .P.Reactive.Shed}} requests shed without a line, or {{rate .P.Reactive.Queued}} sessions held by a standby line (longest wait {{dur .P.Reactive.LongestWait}}); peak {{.P.Reactive.PeakPods}} pods.
{{if not .P.Cluster.Fixed}}{{.P.PreScaled.Strategy}}: {{dur .P.PreScaled.UnderCapacity}} under capacity, {{rate .P.PreScaled.Shed}} shed; peak {{.P.PreScaled.PeakPods}} pods.{{end}}</p>
</section>
{{if .Manifests}}<section id="manifests"><h2>Manifests</h2>
{{range $name, $body := .Manifests}}<details><summary>{{$name}}</summary><pre>{{$body}}</pre></details>{{end}}
</section>{{end}}
<section id="assumptions"><h2>Assumptions</h2><ul>{{range .P.Assumptions}}<li>{{.}}</li>{{end}}</ul></section>
<footer class="note"><p>Generated by <code>surge plan</code>; see docs/capacity.md. This file is self-contained and works offline.</p></footer>
</body>
</html>
`))
