package report

import (
	"fmt"
	"html/template"
	"math"
	"strconv"
	"strings"
)

// Charts are inline SVG drawn here, so the report needs no script and no
// asset from anywhere: it opens offline, from a mail attachment, years on.

const (
	chartW, chartH = 760, 260
	padL, padR     = 64, 16
	padRAxis       = 64 // room for a right-hand axis
	padT, padB     = 12, 40
)

type series struct {
	name  string
	color string
	xs    []float64
	ys    []float64
	right bool // on the right-hand axis
	dash  bool
}

// band is a named stretch of the time axis (a phase of the run).
type band struct {
	label    string
	from, to float64
}

type chart struct {
	id     string // data-chart attribute, for tests and styling
	title  string
	xLabel string
	yLabel string
	// yRight labels the right-hand axis of the series marked right.
	yRight string
	series []series
	points bool // scatter: dots instead of lines
	// xMax, when set, fixes the x axis to [0, xMax]: every chart over
	// time shares one axis, so moments line up from chart to chart.
	xMax  float64
	bands []band
	note  string // said under the chart
}

// niceTicks returns about n round tick values covering [lo, hi].
func niceTicks(lo, hi float64, n int) []float64 {
	if hi <= lo {
		hi = lo + 1
	}
	raw := (hi - lo) / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	var out []float64
	first, last := math.Floor(lo/step), math.Ceil(hi/step-1e-9)
	for i := first; i <= last; i++ {
		out = append(out, i*step)
	}
	return out
}

func fmtTick(v float64) string {
	switch a := math.Abs(v); {
	case a >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', -1, 64) + "M"
	case a >= 1e4:
		return strconv.FormatFloat(v/1e3, 'f', -1, 64) + "k"
	default:
		return strconv.FormatFloat(math.Round(v*1000)/1000, 'f', -1, 64)
	}
}

func (c chart) render() template.HTML {
	var b strings.Builder
	xmin, xmax := math.Inf(1), math.Inf(-1)
	ymax, rmax := 0.0, 0.0
	n, right := 0, false
	for _, s := range c.series {
		for i, x := range s.xs {
			xmin, xmax = math.Min(xmin, x), math.Max(xmax, x)
			if s.right {
				rmax = math.Max(rmax, s.ys[i])
			} else {
				ymax = math.Max(ymax, s.ys[i])
			}
			n++
		}
		right = right || s.right
	}
	fmt.Fprintf(&b, `<figure class="chart" id="chart-%s"><figcaption>%s</figcaption>`, c.id, template.HTMLEscapeString(c.title))
	// The legend is HTML above the chart, so that it wraps on a phone
	// rather than hiding off the side of a chart that scrolls.
	if !c.points || len(c.series) > 1 {
		b.WriteString(`<ul class="legend">`)
		for _, s := range c.series {
			name := template.HTMLEscapeString(s.name)
			if s.right && !c.points {
				name += ` <span class="note">(right axis)</span>`
			}
			style := "background:" + s.color
			if s.dash {
				style = "background: repeating-linear-gradient(90deg," + s.color + " 0 4px, transparent 4px 6px)"
			}
			fmt.Fprintf(&b, `<li><i style="%s"></i>%s</li>`, style, name)
		}
		b.WriteString(`</ul>`)
	}
	fmt.Fprintf(&b, `<div class="scroll"><svg data-chart="%s" viewBox="0 0 %d %d" role="img" aria-label="%s" xmlns="http://www.w3.org/2000/svg">`,
		c.id, chartW, chartH, template.HTMLEscapeString(c.title))
	if n == 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d" class="empty">no data</text></svg></div>%s</figure>`, chartW/2, chartH/2, c.noteHTML())
		return template.HTML(b.String())
	}
	if c.xMax > 0 {
		xmin, xmax = 0, c.xMax
	}
	if xmax <= xmin {
		xmax = xmin + 1
	}
	if c.points {
		xmin = 0
	}
	if ymax <= 0 {
		ymax = 1 // all zero: a flat line at the bottom of a 0..1 scale
	}
	if rmax <= 0 {
		rmax = 1
	}
	pr := padR
	if right {
		pr = padRAxis
	}
	yt := niceTicks(0, ymax, 5)
	ytop := yt[len(yt)-1]
	rt := niceTicks(0, rmax, len(yt)-1)
	rtop := rt[len(rt)-1]
	xt := niceTicks(xmin, xmax, 8)
	pw, ph := float64(chartW-padL-pr), float64(chartH-padT-padB)
	px := func(x float64) float64 { return padL + (x-xmin)/(xmax-xmin)*pw }
	py := func(y float64) float64 { return padT + ph - y/ytop*ph }
	pyr := func(y float64) float64 { return padT + ph - y/rtop*ph }
	for i, bd := range c.bands {
		x0, x1 := px(math.Max(bd.from, xmin)), px(math.Min(bd.to, xmax))
		if x1 <= x0 {
			continue
		}
		// Phases alternate their shade and each begins with a line, so
		// two that touch still read as two.
		fmt.Fprintf(&b, `<g class="band band-%d"><rect x="%.1f" y="%d" width="%.1f" height="%.1f"/><line x1="%.1f" x2="%.1f" y1="%d" y2="%.1f"/><text x="%.1f" y="%d">%s</text></g>`,
			i%2, x0, padT, x1-x0, ph, x0, x0, padT, float64(padT)+ph, x0+4, padT+14, template.HTMLEscapeString(bd.label))
	}
	b.WriteString(`<g class="grid">`)
	for _, v := range yt {
		y := py(v)
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f"/><text class="ytick" x="%d" y="%.1f">%s</text>`,
			padL, chartW-pr, y, y, padL-6, y+4, fmtTick(v))
	}
	if right {
		for _, v := range rt {
			fmt.Fprintf(&b, `<text class="rtick" x="%d" y="%.1f">%s</text>`, chartW-pr+6, pyr(v)+4, fmtTick(v))
		}
	}
	for _, v := range xt {
		if v < xmin-1e-9 || v > xmax+1e-9 {
			continue
		}
		x := px(v)
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%d"/><text class="xtick" x="%.1f" y="%d">%s</text>`,
			x, x, padT, chartH-padB, x, chartH-padB+16, fmtTick(v))
	}
	b.WriteString(`</g>`)
	fmt.Fprintf(&b, `<text class="axis" x="%d" y="%d">%s</text>`, padL+int(pw/2), chartH-4, template.HTMLEscapeString(c.xLabel))
	fmt.Fprintf(&b, `<text class="axis" transform="translate(14 %d) rotate(-90)">%s</text>`, padT+int(ph/2), template.HTMLEscapeString(c.yLabel))
	if right {
		fmt.Fprintf(&b, `<text class="axis" transform="translate(%d %d) rotate(90)">%s</text>`, chartW-12, padT+int(ph/2), template.HTMLEscapeString(c.yRight))
	}
	for _, s := range c.series {
		y := py
		if s.right {
			y = pyr
		}
		if c.points {
			fmt.Fprintf(&b, `<g class="series" data-series="%s" fill="%s">`, template.HTMLEscapeString(s.name), s.color)
			for i := range s.xs {
				fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3.5"><title>%s users, %s%%</title></circle>`,
					px(s.xs[i]), y(s.ys[i]), fmtTick(s.xs[i]), fmtTick(s.ys[i]))
			}
			b.WriteString(`</g>`)
			continue
		}
		var d strings.Builder
		for i := range s.xs {
			cmd := 'L'
			if i == 0 {
				cmd = 'M'
			}
			fmt.Fprintf(&d, "%c%.1f %.1f", cmd, px(s.xs[i]), y(s.ys[i]))
		}
		dash := ""
		if s.dash {
			dash = ` stroke-dasharray="6 4"`
		}
		fmt.Fprintf(&b, `<path class="series" data-series="%s" stroke="%s"%s d="%s"/>`, template.HTMLEscapeString(s.name), s.color, dash, d.String())
	}
	fmt.Fprintf(&b, `</svg></div>%s</figure>`, c.noteHTML())
	return template.HTML(b.String())
}

func (c chart) noteHTML() string {
	if c.note == "" {
		return ""
	}
	return `<p class="note">` + template.HTMLEscapeString(c.note) + `</p>`
}
