// Package productimage draws the shop's product pictures. They are
// generated SVG, never fetched from elsewhere: a soft gradient in a hue
// derived from the product, a simple shape that changes with the image
// number, and the product name. The same input always gives the same bytes,
// so responses can be cached forever and compared by ETag.
package productimage

import (
	"bytes"
	"encoding/xml"
	"hash/fnv"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Canvas size in SVG user units. The picture scales to its container, so
// these fix only the 4:5 portrait shape product photos usually have.
const (
	Width  = 800
	Height = 1000
)

// Text layout: at most maxLines lines of at most lineRunes characters, which
// fit the canvas at fontSize in a typical sans-serif.
const (
	maxLabelRunes = 300 // longer labels are cut before anything else
	lineRunes     = 24
	maxLines      = 3
	fontSize      = 44
	lineHeight    = 56
	bandTop       = 770 // the light band behind the text
)

// ContentType is the media type of what SVG writes.
func ContentType() string { return "image/svg+xml" }

// SVG writes a self-contained, responsive SVG picture for the n-th image
// (from 1) of the product identified by seed, captioned with label. seed
// picks the colours (the product slug is a good seed, so all images of a
// product match); n picks the motif; label is shown wrapped and, if long,
// truncated, and is the picture's accessible title. Any strings are safe:
// the output is always well-formed XML.
func SVG(w io.Writer, seed string, label string, n int) error {
	h := fnv.New64a()
	io.WriteString(h, seed) // a hash.Hash never returns a write error
	sum := h.Sum64()
	p := newPalette(sum)
	id := strconv.FormatUint(sum&0xffffff, 16) // keeps ids apart if inlined together

	label = cleanLabel(label)
	title := label
	if title == "" {
		title = "Product image"
	}

	var b bytes.Buffer
	b.Grow(2048)
	b.WriteString(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 `)
	b.WriteString(strconv.Itoa(Width) + " " + strconv.Itoa(Height))
	b.WriteString(`" width="100%" height="100%" preserveAspectRatio="xMidYMid slice" role="img" aria-labelledby="t-` + id + `">`)
	b.WriteString(`<title id="t-` + id + `">`)
	escape(&b, title)
	b.WriteString(`</title>`)

	b.WriteString(`<defs><linearGradient id="g-` + id + `" x1="0" y1="0" x2="0.35" y2="1">`)
	b.WriteString(`<stop offset="0" stop-color="` + p.top + `"/>`)
	b.WriteString(`<stop offset="1" stop-color="` + p.bottom + `"/>`)
	b.WriteString(`</linearGradient></defs>`)
	b.WriteString(`<rect width="100%" height="100%" fill="url(#g-` + id + `)"/>`)

	motif(&b, p, sum, n)

	lines := wrap(label, lineRunes, maxLines)
	if len(lines) > 0 {
		b.WriteString(`<rect x="0" y="` + strconv.Itoa(bandTop) + `" width="` + strconv.Itoa(Width) + `" height="` + strconv.Itoa(Height-bandTop) + `" fill="#ffffff" fill-opacity="0.6"/>`)
		b.WriteString(`<g font-family="ui-sans-serif, system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif" font-size="` + strconv.Itoa(fontSize) + `" font-weight="600" text-anchor="middle" fill="` + p.ink + `">`)
		// Centre the block of lines in the band; y is each baseline.
		first := bandTop + (Height-bandTop-len(lines)*lineHeight)/2 + fontSize
		for i, line := range lines {
			b.WriteString(`<text x="` + strconv.Itoa(Width/2) + `" y="` + strconv.Itoa(first+i*lineHeight) + `">`)
			escape(&b, line)
			b.WriteString(`</text>`)
		}
		b.WriteString(`</g>`)
	}
	b.WriteString(`</svg>`)
	_, err := w.Write(b.Bytes())
	return err
}

// palette holds the colours of one product, as #rrggbb.
type palette struct {
	top, bottom string // background gradient
	accent      string // the motif
	soft        string // a lighter motif colour
	ink         string // text
}

// newPalette derives calm colours from a hash: one hue, low saturation,
// light background, and a deeper accent a little around the colour wheel.
func newPalette(sum uint64) palette {
	hue := float64(sum % 360)
	sat := 0.28 + float64(sum>>12%20)/100   // 0.28-0.47
	shift := float64(int(sum>>20%61) - 30)  // -30..30 degrees
	light := 0.50 + float64(sum>>28%12)/100 // 0.50-0.61
	return palette{
		top:    hexHSL(hue, sat, 0.92),
		bottom: hexHSL(hue+8, sat, 0.80),
		accent: hexHSL(hue+shift, sat+0.12, light),
		soft:   hexHSL(hue-shift, sat, 0.70),
		ink:    hexHSL(hue, 0.35, 0.17),
	}
}

// motif draws the shape for image n; consecutive images differ, and bits of
// the hash nudge sizes and positions so products do not look stamped.
func motif(b *bytes.Buffer, p palette, sum uint64, n int) {
	const motifs = 5
	k := ((n-1)%motifs + motifs) % motifs // n may be anything, even negative
	j := int(sum >> 36 % 60)              // 0-59 units of jitter
	itoa := strconv.Itoa
	switch k {
	case 0: // a sun and its reflection
		b.WriteString(`<circle cx="` + itoa(370+j) + `" cy="` + itoa(390+j/2) + `" r="` + itoa(210+j) + `" fill="` + p.accent + `" fill-opacity="0.85"/>`)
		b.WriteString(`<circle cx="` + itoa(520-j) + `" cy="` + itoa(540) + `" r="` + itoa(120+j/2) + `" fill="` + p.soft + `" fill-opacity="0.7"/>`)
	case 1: // nested arches
		for i := 0; i < 4; i++ {
			r := 300 - i*62 - j/3
			y := 690
			b.WriteString(`<path d="M` + itoa(400-r) + ` ` + itoa(y) + ` A` + itoa(r) + ` ` + itoa(r) + ` 0 0 1 ` + itoa(400+r) + ` ` + itoa(y) + `" fill="none" stroke="` + pick(i, p.accent, p.soft) + `" stroke-width="34" stroke-linecap="round"/>`)
		}
	case 2: // a folded stack, like garments on a table
		for i := 0; i < 3; i++ {
			w := 460 - i*60 - j
			x := (Width - w) / 2
			y := 560 - i*130
			b.WriteString(`<rect x="` + itoa(x) + `" y="` + itoa(y) + `" width="` + itoa(w) + `" height="110" rx="22" fill="` + pick(i, p.accent, p.soft) + `" fill-opacity="` + pick(i, "0.9", "0.8") + `"/>`)
		}
	case 3: // soft waves
		for i := 0; i < 5; i++ {
			y := 220 + i*95 + j/2
			amp := 40 + j/2
			b.WriteString(`<path d="M-20 ` + itoa(y) + ` Q200 ` + itoa(y-amp) + ` 400 ` + itoa(y) + ` T820 ` + itoa(y) + `" fill="none" stroke="` + pick(i, p.accent, p.soft) + `" stroke-width="22" stroke-linecap="round"/>`)
		}
	default: // a grid of dots
		r := 26 + j/6
		for row := 0; row < 5; row++ {
			for col := 0; col < 5; col++ {
				cx := 160 + col*120
				cy := 150 + row*120
				b.WriteString(`<circle cx="` + itoa(cx) + `" cy="` + itoa(cy) + `" r="` + itoa(r) + `" fill="` + pick(row+col, p.accent, p.soft) + `"/>`)
			}
		}
	}
}

// pick alternates between a and b.
func pick(i int, a, b string) string {
	if i%2 == 0 {
		return a
	}
	return b
}

// cleanLabel makes any string printable on one line: invalid UTF-8,
// control characters and the non-characters XML forbids become spaces, runs of space collapse, and it is cut
// to maxLabelRunes.
func cleanLabel(s string) string {
	s = strings.ToValidUTF8(s, " ")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == utf8.RuneError || r == 0xFFFE || r == 0xFFFF {
			return ' '
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) > maxLabelRunes {
		s = string([]rune(s)[:maxLabelRunes-1]) + "…"
	}
	return s
}

// wrap breaks s into at most max lines of at most width runes, filling each
// line with whole words, splitting a word only if it alone is too long, and
// ending with "…" if the text does not fit.
func wrap(s string, width, max int) []string {
	var lines []string
	var cur []rune
	for _, word := range strings.Fields(s) {
		w := []rune(word)
		for len(w) > 0 {
			if len(cur) > 0 && len(cur)+1+len(w) <= width {
				cur = append(append(cur, ' '), w...)
				w = nil
				continue
			}
			if len(cur) > 0 {
				lines = append(lines, string(cur))
				cur = nil
			}
			n := min(len(w), width)
			cur = append(cur, w[:n]...)
			w = w[n:]
		}
	}
	if len(cur) > 0 {
		lines = append(lines, string(cur))
	}
	if len(lines) > max {
		last := []rune(lines[max-1])
		if len(last) >= width {
			last = last[:width-1]
		}
		lines = append(lines[:max-1], strings.TrimRight(string(last), " ")+"…")
	}
	return lines
}

// escape writes s as XML character data. cleanLabel has already removed
// what XML cannot hold; EscapeText would replace any left with U+FFFD.
func escape(b *bytes.Buffer, s string) {
	xml.EscapeText(b, []byte(s)) // writes to a bytes.Buffer cannot fail
}

// hexHSL converts hue (degrees, any value), saturation and lightness (0-1)
// to #rrggbb.
func hexHSL(h, s, l float64) string {
	h = math.Mod(h, 360)
	if h < 0 {
		h += 360
	}
	s = math.Min(math.Max(s, 0), 1)
	c := (1 - math.Abs(2*l-1)) * s
	x := c * (1 - math.Abs(math.Mod(h/60, 2)-1))
	m := l - c/2
	var r, g, bl float64
	switch {
	case h < 60:
		r, g, bl = c, x, 0
	case h < 120:
		r, g, bl = x, c, 0
	case h < 180:
		r, g, bl = 0, c, x
	case h < 240:
		r, g, bl = 0, x, c
	case h < 300:
		r, g, bl = x, 0, c
	default:
		r, g, bl = c, 0, x
	}
	const digits = "0123456789abcdef"
	out := []byte{'#', 0, 0, 0, 0, 0, 0}
	for i, v := range []float64{r, g, bl} {
		n := int(math.Round((v + m) * 255))
		n = min(max(n, 0), 255)
		out[1+2*i] = digits[n>>4]
		out[2+2*i] = digits[n&15]
	}
	return string(out)
}
