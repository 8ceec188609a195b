package productimage

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"regexp"
	"strings"
	"testing"
)

func render(t testing.TB, seed, label string, n int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := SVG(&b, seed, label, n); err != nil {
		t.Fatalf("SVG: %v", err)
	}
	return b.Bytes()
}

// parse walks the document with encoding/xml and returns the text of its
// <title> and of its <text> elements.
func parse(t testing.TB, doc []byte) (title string, texts []string) {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(doc))
	var stack []string
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, doc)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			stack = append(stack, tok.Name.Local)
			if len(stack) == 1 && (tok.Name.Local != "svg" || tok.Name.Space != "http://www.w3.org/2000/svg") {
				t.Fatalf("root element is %v, want svg in the SVG namespace", tok.Name)
			}
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			switch stack[len(stack)-1] {
			case "title":
				title += string(tok)
			case "text":
				texts = append(texts, string(tok))
			}
		}
	}
	if len(stack) != 0 {
		t.Fatalf("unclosed elements %v", stack)
	}
	return title, texts
}

func TestContentType(t *testing.T) {
	if got := ContentType(); got != "image/svg+xml" {
		t.Errorf("ContentType() = %q", got)
	}
}

func TestSVGIsWellFormedAndAccessible(t *testing.T) {
	for n := -1; n <= 7; n++ {
		doc := render(t, "washed-linen-relaxed-shirt", "Washed Linen Relaxed Shirt", n)
		title, texts := parse(t, doc)
		if title != "Washed Linen Relaxed Shirt" {
			t.Errorf("n=%d: title %q", n, title)
		}
		if got := strings.Join(texts, " "); got != "Washed Linen Relaxed Shirt" {
			t.Errorf("n=%d: text %q", n, got)
		}
		s := string(doc)
		for _, want := range []string{`viewBox="0 0 800 1000"`, `width="100%"`, `height="100%"`, `role="img"`} {
			if !strings.Contains(s, want) {
				t.Errorf("n=%d: missing %s", n, want)
			}
		}
		if strings.Contains(s, "http://") && strings.Count(s, "http://") != 1 {
			t.Errorf("n=%d: refers to something other than the SVG namespace", n)
		}
	}
}

func TestSVGIsDeterministic(t *testing.T) {
	a := render(t, "merino-crew-neck-sweater", "Merino Crew Neck Sweater", 2)
	b := render(t, "merino-crew-neck-sweater", "Merino Crew Neck Sweater", 2)
	if !bytes.Equal(a, b) {
		t.Error("same input gave different bytes")
	}
}

func TestMotifVariesWithImageNumber(t *testing.T) {
	seen := map[string]int{}
	for n := 1; n <= 5; n++ {
		doc := string(render(t, "stoneware-pour-over-set", "Stoneware Pour-Over Set", n))
		if m, ok := seen[doc]; ok {
			t.Errorf("images %d and %d are identical", m, n)
		}
		seen[doc] = n
	}
}

func TestHostileLabelsAreEscaped(t *testing.T) {
	tests := []string{
		`<script>alert("x")</script>`,
		`Tom & Jerry's "Best" Tee`,
		`]]><x/><!--`,
		"bad \x00 bytes \xff\xfe and \u2028 separators \ufffe",
		`&amp; already escaped &#x3c;`,
	}
	for _, label := range tests {
		doc := render(t, label, label, 1)
		if bytes.Contains(doc, []byte("<script")) || bytes.Contains(doc, []byte("<x/>")) {
			t.Errorf("label %q reached the markup:\n%s", label, doc)
		}
		title, _ := parse(t, doc)
		if want := cleanLabel(label); title != want {
			t.Errorf("label %q: title %q, want %q", label, title, want)
		}
	}
	title, _ := parse(t, render(t, "x", `Tom & Jerry's "Best" Tee`, 1))
	if title != `Tom & Jerry's "Best" Tee` {
		t.Errorf("title %q does not round-trip", title)
	}
}

func TestLongLabelsWrapAndTruncate(t *testing.T) {
	long := strings.Repeat("Extraordinarily Long Product Name ", 20)
	_, texts := parse(t, render(t, "x", long, 1))
	if len(texts) != maxLines {
		t.Fatalf("got %d lines, want %d", len(texts), maxLines)
	}
	for _, line := range texts {
		if n := len([]rune(line)); n > lineRunes {
			t.Errorf("line %q has %d characters, want at most %d", line, n, lineRunes)
		}
	}
	if !strings.HasSuffix(texts[maxLines-1], "…") {
		t.Errorf("last line %q does not end in an ellipsis", texts[maxLines-1])
	}

	_, texts = parse(t, render(t, "x", strings.Repeat("W", 60), 1))
	if len(texts) != 3 || texts[0] != strings.Repeat("W", lineRunes) {
		t.Errorf("an unbreakable word should be split across lines, got %q", texts)
	}

	_, texts = parse(t, render(t, "x", "", 1))
	if len(texts) != 0 {
		t.Errorf("empty label drew text %q", texts)
	}
}

var stopColor = regexp.MustCompile(`stop-color="(#[0-9a-f]{6})"`)

func TestSeedsGiveDifferentColours(t *testing.T) {
	tops := map[string]bool{}
	for _, seed := range []string{"a", "b", "linen-shirt", "linen-shirt-2", "merino-crew", "oak-board", "silk-dress", "denim-jacket", "wool-coat", "canvas-tote"} {
		m := stopColor.FindSubmatch(render(t, seed, "Label", 1))
		if m == nil {
			t.Fatalf("seed %q: no gradient stop colour", seed)
		}
		tops[string(m[1])] = true
	}
	if len(tops) < 8 {
		t.Errorf("10 seeds gave only %d distinct background colours", len(tops))
	}
}

func TestHexHSL(t *testing.T) {
	tests := []struct {
		h, s, l float64
		want    string
	}{
		{0, 1, 0.5, "#ff0000"},
		{120, 1, 0.5, "#00ff00"},
		{240, 1, 0.5, "#0000ff"},
		{-120, 1, 0.5, "#0000ff"},
		{0, 0, 1, "#ffffff"},
		{200, 0.5, 0, "#000000"},
	}
	for _, tt := range tests {
		if got := hexHSL(tt.h, tt.s, tt.l); got != tt.want {
			t.Errorf("hexHSL(%v, %v, %v) = %s, want %s", tt.h, tt.s, tt.l, got, tt.want)
		}
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestSVGReportsWriteErrors(t *testing.T) {
	if err := SVG(failingWriter{}, "x", "y", 1); err == nil {
		t.Error("want the writer's error")
	}
}

func FuzzSVG(f *testing.F) {
	f.Add("washed-linen-relaxed-shirt", "Washed Linen Relaxed Shirt", 1)
	f.Add("", "", 0)
	f.Add("x", `<script>alert("&")</script>`, -7)
	f.Add("\xff", "\x00\x01\ufffe]]>", 1<<40)
	f.Fuzz(func(t *testing.T, seed, label string, n int) {
		doc := render(t, seed, label, n)
		title, texts := parse(t, doc)
		if title == "" {
			t.Error("empty title")
		}
		if len(texts) > maxLines {
			t.Errorf("%d lines of text", len(texts))
		}
		if again := render(t, seed, label, n); !bytes.Equal(doc, again) {
			t.Error("not deterministic")
		}
	})
}

func BenchmarkSVG(b *testing.B) {
	for b.Loop() {
		SVG(io.Discard, "washed-linen-relaxed-shirt", "Washed Linen Relaxed Shirt", 2)
	}
}
