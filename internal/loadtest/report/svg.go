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
	padT, padB     = 16, 40
)

type series struct {
	name  string
	color string
	xs    []float64
	ys    []float64
}

type chart struct {
	id     string // data-chart attribute, for tests and styling
	title  string
	xLabel string
	yLabel string
	series []series
	points bool // scatter: dots instead of lines
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
	xmin, xmax, ymax := math.Inf(1), math.Inf(-1), 0.0
	n := 0
	for _, s := range c.series {
		for i, x := range s.xs {
			xmin, xmax = math.Min(xmin, x), math.Max(xmax, x)
			ymax = math.Max(ymax, s.ys[i])
			n++
		}
	}
	fmt.Fprintf(&b, `<figure class="chart" id="chart-%s"><figcaption>%s</figcaption>`, c.id, template.HTMLEscapeString(c.title))
	fmt.Fprintf(&b, `<svg data-chart="%s" viewBox="0 0 %d %d" role="img" aria-label="%s" xmlns="http://www.w3.org/2000/svg">`,
		c.id, chartW, chartH, template.HTMLEscapeString(c.title))
	if n == 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d" class="empty">no data</text></svg></figure>`, chartW/2, chartH/2)
		return template.HTML(b.String())
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
	yt := niceTicks(0, ymax, 5)
	ytop := yt[len(yt)-1]
	xt := niceTicks(xmin, xmax, 8)
	pw, ph := float64(chartW-padL-padR), float64(chartH-padT-padB)
	px := func(x float64) float64 { return padL + (x-xmin)/(xmax-xmin)*pw }
	py := func(y float64) float64 { return padT + ph - y/ytop*ph }
	b.WriteString(`<g class="grid">`)
	for _, v := range yt {
		y := py(v)
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f"/><text class="ytick" x="%d" y="%.1f">%s</text>`,
			padL, chartW-padR, y, y, padL-6, y+4, fmtTick(v))
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
	for _, s := range c.series {
		if c.points {
			fmt.Fprintf(&b, `<g class="series" data-series="%s" fill="%s">`, template.HTMLEscapeString(s.name), s.color)
			for i := range s.xs {
				fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3.5"><title>%s users, %s%%</title></circle>`,
					px(s.xs[i]), py(s.ys[i]), fmtTick(s.xs[i]), fmtTick(s.ys[i]))
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
			fmt.Fprintf(&d, "%c%.1f %.1f", cmd, px(s.xs[i]), py(s.ys[i]))
		}
		fmt.Fprintf(&b, `<path class="series" data-series="%s" stroke="%s" d="%s"/>`, template.HTMLEscapeString(s.name), s.color, d.String())
	}
	// Legend, top right.
	lx := chartW - padR - 8
	for i := len(c.series) - 1; i >= 0; i-- {
		s := c.series[i]
		w := 18 + 7*len(s.name)
		lx -= w + 10
		fmt.Fprintf(&b, `<g class="legend"><rect x="%d" y="%d" width="12" height="12" fill="%s"/><text x="%d" y="%d">%s</text></g>`,
			lx, padT+2, s.color, lx+16, padT+12, template.HTMLEscapeString(s.name))
	}
	b.WriteString(`</svg></figure>`)
	return template.HTML(b.String())
}
