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

// svgChart draws lines over a shared x axis (minutes) in a figure that
// holds two drawings of the same chart: one for a page's width and one
// for a phone's, where the wide one scaled down would make its text too
// small to read. The page's CSS shows one of them.
func svgChart(id, title, xlabel, ylabel string, lines []line) template.HTML {
	var b strings.Builder
	fmt.Fprintf(&b, `<figure class="chart"><figcaption>%s</figcaption>`, template.HTMLEscapeString(title))
	drawChart(&b, "wide", id, title, xlabel, ylabel, lines, 760, 240, 6)
	drawChart(&b, "narrow", id, title, xlabel, ylabel, lines, 360, 250, 4)
	b.WriteString(`</figure>`)
	return template.HTML(b.String())
}

// drawChart draws one W×H drawing with about xticks ticks on the x axis.
// The legend's entries run left to right and wrap onto more rows above
// the plot when they do not fit.
func drawChart(b *strings.Builder, class, id, title, xlabel, ylabel string, lines []line, W, H, xticks int) {
	const R, B, row = 14, 36, 16
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
	ystep := niceStep(ymax / 4)
	ymax = math.Ceil(ymax/ystep-1e-9) * ystep
	// The left margin holds the axis title and the widest tick label.
	L := 30 + legendCharWidth*len(numStr(ymax))
	// Lay the legend out first: its rows set the plot's top.
	type entry struct{ x, y int }
	var legend []entry
	lx, ly := L, 8
	for _, l := range lines {
		w := 16 + legendCharWidth*len([]rune(l.name)) + 14
		if lx > L && lx+w > W-R {
			lx, ly = L, ly+row
		}
		legend = append(legend, entry{lx, ly})
		lx += w
	}
	T := ly + row + 8
	px := func(x float64) float64 { return float64(L) + x/xmax*float64(W-L-R) }
	py := func(y float64) float64 { return float64(T) + float64(H-T-B) - y/ymax*float64(H-T-B) }
	fmt.Fprintf(b, `<svg class="%s" data-chart="%s" viewBox="0 0 %d %d" role="img" aria-label="%s" xmlns="http://www.w3.org/2000/svg">`,
		class, id, W, H, template.HTMLEscapeString(title))
	for v := 0.0; v <= ymax*(1+1e-9); v += ystep {
		fmt.Fprintf(b, `<line class="grid" x1="%d" x2="%d" y1="%.1f" y2="%.1f"/><text class="ytick" x="%d" y="%.1f">%s</text>`,
			L, W-R, py(v), py(v), L-6, py(v)+4, numStr(v))
	}
	step := niceStep(xmax / float64(xticks))
	for v := 0.0; v <= xmax*(1+1e-9); v += step {
		fmt.Fprintf(b, `<text class="xtick" x="%.1f" y="%d">%s</text>`, px(v), H-B+16, fmtRate(v))
	}
	fmt.Fprintf(b, `<text class="axis" x="%d" y="%d">%s</text>`, (W+L)/2, H-4, template.HTMLEscapeString(xlabel))
	fmt.Fprintf(b, `<text class="axis" transform="translate(14 %d) rotate(-90)">%s</text>`, (H+T-B)/2, template.HTMLEscapeString(ylabel))
	for i, l := range lines {
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
		fmt.Fprintf(b, `<path class="series" data-series="%s" stroke="%s" d="%s"/>`, template.HTMLEscapeString(l.name), l.color, d.String())
		e := legend[i]
		fmt.Fprintf(b, `<g class="legend"><rect x="%d" y="%d" width="12" height="12" fill="%s"/><text x="%d" y="%d">%s</text></g>`,
			e.x, e.y, l.color, e.x+16, e.y+10, template.HTMLEscapeString(l.name))
	}
	b.WriteString(`</svg>`)
}

// legendCharWidth is a generous average width of one character of the
// charts' 11-pixel sans-serif text, for laying out the legend.
const legendCharWidth = 7

// niceStep rounds a tick interval up to 1, 2, 2.5 or 5 times a power of
// ten, so the ticks fall on numbers people count in.
func niceStep(v float64) float64 {
	if v <= 0 {
		return 1
	}
	mag := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*mag >= v*(1-1e-9) {
			return m * mag
		}
	}
	return 10 * mag
}

// numStr writes a count for people: thousands grouped with commas.
func numStr(v float64) string {
	s := fmtRate(v)
	if math.Abs(v) < 10000 {
		return s
	}
	intPart, frac, _ := strings.Cut(s, ".")
	neg := strings.HasPrefix(intPart, "-")
	intPart = strings.TrimPrefix(intPart, "-")
	var out []byte
	for i, c := range []byte(intPart) {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, c)
	}
	s = string(out)
	if frac != "" {
		s += "." + frac
	}
	if neg {
		s = "-" + s
	}
	return s
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
	out = append(out, svgChart("capacity", "API demand against what the ready pods serve within the SLO", "minutes from the start", "cores", lines))
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
	out = append(out, svgChart("pods", "API pods over time", "minutes from the start", "pods", lines))
	bx, by := sim(pl.Reactive, func(p SimPoint) float64 { return p.Backlog })
	out = append(out, svgChart("backlog", "Visitors a standby line would hold (HPA alone)", "minutes from the start", "sessions", []line{{name: "in line", color: "#ea580c", xs: bx, ys: by}}))
	for _, d := range pl.Drops {
		// The line matters until it has emptied and the units are gone:
		// the chart ends a little after that, not at the phase's end.
		end := math.Max(60, d.SellOut)
		for _, p := range d.Line {
			if p.Waiting >= 0.5 {
				end = math.Max(end, p.T)
			}
		}
		end = end*1.25 + 10
		var tx, wy, uy []float64
		for _, p := range d.Line {
			if p.T <= end {
				tx, wy, uy = append(tx, p.T/60), append(wy, p.Waiting), append(uy, p.Units)
			}
		}
		out = append(out, svgChart("line-"+slug(d.Phase), "Drop (phase "+d.Phase+"): buyers waiting and units left", "minutes from the drop's start", "count",
			[]line{{name: "waiting", color: "#ea580c", xs: tx, ys: wy}, {name: "units left", color: "#16a34a", xs: tx, ys: uy}}))
	}
	return out
}

var htmlTmpl = template.Must(template.New("plan").Funcs(template.FuncMap{
	"mul1000": func(f float64) float64 { return f * 1000 },
	"pct":     func(f float64) string { return fmt.Sprintf("%.0f%%", 100*f) },
	"rate":    fmtRate,
	"num":     numStr,
	"int":     func(n int64) string { return numStr(float64(n)) },
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
		return numStr(s)
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
th { white-space: normal; vertical-align: bottom; font-size: .8rem; }
th:first-child, td:first-child { text-align: left; }
.bad { color: #b91c1c; font-weight: 600; } .good { color: #15803d; font-weight: 600; }
.warn { background: #fef3c7; border-left: 4px solid #d97706; padding: 8px 12px; margin: 8px 0; }
dl.facts { display: grid; grid-template-columns: repeat(auto-fill, minmax(160px, 1fr)); gap: 8px; margin: 0; }
dl.facts div { background: #f3f4f6; border-radius: 6px; padding: 8px 10px; }
dl.facts dt { font-size: .75rem; color: #4b5563; } dl.facts dd { margin: 2px 0 0; font-size: 1.05rem; font-weight: 600; }
figure.chart { margin: 16px 0; } figure.chart figcaption { font-weight: 600; margin-bottom: 4px; }
figure.chart svg { width: 100%; height: auto; border: 1px solid #e5e7eb; border-radius: 6px; }
figure.chart svg.narrow { display: none; }
@media (max-width: 560px) { figure.chart svg.wide { display: none; } figure.chart svg.narrow { display: block; } }
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
<p class="sub">Starts {{.P.Start.Format "2006-01-02 15:04 MST"}} &middot; profile: {{.P.ProfileOf}}{{with .P.SLONote}} &middot; {{.}}{{end}}</p>
</header>
{{range .P.Warnings}}<p class="warn">{{.}}</p>{{end}}
<section id="summary">
<dl class="facts">
<div><dt>CPU per session</dt><dd>{{printf "%.2f ms" (mul1000 .P.SessionCPU.Total)}}</dd></div>
<div><dt>sessions/s per API pod ({{.P.Cluster.APICPU}} CPU at {{pct .P.TargetUtil}})</dt><dd>{{rate .P.ReplicaCapacity}}</dd></div>
<div><dt>HPA alone: under capacity</dt><dd class="{{if .P.Reactive.UnderCapacity}}bad{{else}}good{{end}}">{{dur .P.Reactive.UnderCapacity}}</dd></div>
<div><dt>HPA alone: requests shed</dt><dd>{{num .P.Reactive.Shed}}</dd></div>
{{if not .P.Cluster.Fixed}}<div><dt>pre-scaled: under capacity</dt><dd class="{{if .P.PreScaled.UnderCapacity}}bad{{else}}good{{end}}">{{dur .P.PreScaled.UnderCapacity}}</dd></div>{{end}}
</dl>
</section>
<section id="phases">
<h2>Phases</h2>
<div class="scroll"><table class="phases">
<thead><tr><th>phase</th><th>from</th><th>API pods</th><th>CPU use</th><th>SLO</th><th>sessions/s</th><th>requests/s</th><th>workers</th><th>DB vCPU</th><th>DB pool / max_connections</th><th>Redis ops/s</th><th>NATS msg/s</th></tr></thead>
<tbody>{{range .P.Phases}}<tr class="phase"><td>{{.Name}}</td><td>{{rel .From}}</td><td>{{.APIReplicas}}</td><td>{{pct .Utilization}}</td><td class="{{if .Breach}}bad{{else}}good{{end}}">{{if .Breach}}breach: admit {{rate .AdmitSessions}}/s{{else}}holds{{end}}</td><td>{{num .Sessions}}</td><td>{{sum .Requests}}</td><td>{{.WorkerReplicas}}</td><td>{{.DB.VCPUs}}</td><td>{{.DB.PoolPerReplica}} / {{.DB.MaxConnections}}</td><td>{{num .RedisOps}}</td><td>{{num .NATSMsgs}}</td></tr>
{{end}}</tbody></table></div>
{{range .P.Phases}}<details><summary>{{.Name}}: predicted p99 by class</summary><ul>{{range $k, $v := .P99Out}}<li>{{$k}}: {{ms $v}}</li>{{end}}</ul>{{with .BreachWhy}}<p class="bad">{{.}}</p>{{end}}</details>{{end}}
</section>
{{with .P.Drops}}<section id="drops"><h2>Drops</h2>
{{range .}}<p><strong>{{.Phase}}</strong>: {{int .Buyers}} buyers for {{int .Units}} units on {{.APIReplicas}} API pods. Waiting room: <code>rate_per_minute: {{.AdmitPerMinute}}</code>, <code>max_active: {{printf "%.0f" .ActiveCap}}</code>.
{{if ge .SellOut 0.0}}Sold out {{dur .SellOut}} after the start{{else}}Not sold out within the phase{{end}}; time in line median {{dur .WaitMedian}}, longest {{dur .WaitMax}}; {{num .ToldSoldOut}} told sold out while waiting; at most {{num .PeakWaiting}} waiting.</p>{{end}}
</section>{{end}}
<section id="timeline">
<h2>Timeline</h2>
<ol class="timeline">{{range .P.Timeline}}<li><time>{{.At.Format "Jan 2 15:04"}}</time> ({{rel .Rel}}) {{.What}}</li>{{end}}</ol>
</section>
<section id="charts">
<h2>Against the arrivals</h2>
{{range .Charts}}{{.}}
{{end}}
<p class="note">{{.P.Reactive.Strategy}}: {{dur .P.Reactive.UnderCapacity}} under capacity, {{num .P.Reactive.Shed}} requests shed without a line, or {{num .P.Reactive.Queued}} sessions held by a standby line (longest wait {{dur .P.Reactive.LongestWait}}); peak {{.P.Reactive.PeakPods}} pods.
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
