package capacity

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/surge-commerce/surge/internal/browsertest"
)

// layout is what layoutJS measures on the page.
type layout struct {
	Charts   int      `json:"charts"`
	Drawn    int      `json:"drawn"`
	Narrow   []string `json:"narrow"`
	Small    []string `json:"small"`
	Overlaps []string `json:"overlaps"`
	Scroll   int      `json:"scroll"`
	Inner    int      `json:"inner"`
	Wide     []string `json:"wide"`
}

// layoutJS counts the charts and those with a line of real length drawn,
// and lists what a reader would trip over: a chart narrower than the
// column it sits in, chart text smaller than 9 px on screen, any two
// texts of one chart (ticks, axis titles, legend entries) or two fact
// cards that overlap, and anything reaching past the window's right
// edge outside a scrolling box.
const layoutJS = `(() => {
	const out = {charts: 0, drawn: 0, narrow: [], small: [], overlaps: [], wide: []};
	const hit = (a, b) => a.left < b.right - 0.5 && b.left < a.right - 0.5 && a.top < b.bottom - 0.5 && b.top < a.bottom - 0.5;
	const name = el => el.tagName.toLowerCase() + (el.getAttribute("class") ? "." + el.getAttribute("class").trim().split(/\s+/).join(".") : "") +
		(el.textContent ? " '" + el.textContent.trim().slice(0, 30) + "'" : "");
	const pairs = (els, where) => {
		const rs = els.map(e => e.getBoundingClientRect());
		for (let i = 0; i < els.length; i++)
			for (let j = i + 1; j < els.length; j++)
				if (rs[i].width > 0 && rs[j].width > 0 && hit(rs[i], rs[j]) && out.overlaps.length < 20)
					out.overlaps.push(where + ": " + name(els[i]) + " / " + name(els[j]));
	};
	for (const fig of document.querySelectorAll("figure.chart")) {
		const shown = [...fig.querySelectorAll("svg[data-chart]")].filter(s => s.getBoundingClientRect().width > 0);
		if (shown.length !== 1) { out.narrow.push(shown.length + " drawings shown in one figure"); continue; }
		const svg = shown[0];
		out.charts++;
		const id = svg.dataset.chart;
		if ([...svg.querySelectorAll("path.series")].some(p => p.getTotalLength() > 50)) out.drawn++;
		const box = fig.getBoundingClientRect();
		if (svg.getBoundingClientRect().width < box.width - 2) out.narrow.push(id);
		const texts = [...svg.querySelectorAll("text")];
		for (const t of texts) {
			const h = t.getBoundingClientRect().height;
			if (h > 0 && h < 9 && out.small.length < 10) out.small.push(id + ": " + name(t) + " " + h.toFixed(1) + "px");
		}
		pairs(texts, id);
	}
	pairs([...document.querySelectorAll("dl.facts > div")], "facts");
	const inner = window.innerWidth;
	for (const el of document.querySelectorAll("body *")) {
		if (el.closest(".scroll, pre, svg")) continue;
		const r = el.getBoundingClientRect();
		if (r.right > inner + 0.5 && out.wide.length < 10) out.wide.push(name(el) + " right=" + Math.round(r.right));
	}
	out.scroll = document.documentElement.scrollWidth;
	out.inner = inner;
	return out;
})()`

// TestHTMLReportInChromium opens the plan of a drop event from its file in
// headless Chromium at a desktop's and a phone's width: every chart is
// drawn at the width of the page, its text is legible and nothing
// overlaps or reaches past the window; the page has no script errors
// and fetches nothing. It keeps a full-page screenshot of each.
func TestHTMLReportInChromium(t *testing.T) {
	browsertest.Chromium(t) // skips without Chromium
	pl, e := planFor(t, dropEvent)
	file := filepath.Join(t.TempDir(), "plan.html")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := pl.HTML(f, pl.BuildManifests(e, "../../deploy/k8s/base")); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	ctx, cancelAlloc := browsertest.Allocator(t, ctx)
	defer cancelAlloc()
	var mu sync.Mutex
	var problems, requests []string
	ctx, cancelTab := chromedp.NewContext(ctx, chromedp.WithListener(func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			problems = append(problems, "exception: "+ev.ExceptionDetails.Text)
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeWarning {
				problems = append(problems, "console "+string(ev.Type))
			}
		case *log.EventEntryAdded:
			if ev.Entry.Level == log.EntryLevelError || ev.Entry.Level == log.EntryLevelWarning {
				problems = append(problems, "browser log: "+ev.Entry.Text)
			}
		case *network.EventRequestWillBeSent:
			requests = append(requests, ev.Request.URL)
		}
	}))
	defer cancelTab()

	for _, vp := range []struct {
		name string
		w, h int64
	}{{"desktop", 1280, 900}, {"phone", 390, 844}} {
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(vp.w, vp.h), chromedp.Navigate("file://"+file),
			chromedp.WaitVisible(chromedp.CSS("#charts figure.chart"))); err != nil {
			t.Fatalf("%s: %v", vp.name, err)
		}
		l, err := chromedp.Run(ctx, chromedp.Evaluate[layout](layoutJS))
		if err != nil {
			t.Fatalf("%s: %v", vp.name, err)
		}
		// Demand against capacity, pods, the standby line, the drop's line.
		if l.Charts != 4 || l.Drawn != 4 {
			t.Errorf("%s: %d charts, %d with a line drawn; want 4 and 4", vp.name, l.Charts, l.Drawn)
		}
		if len(l.Narrow) > 0 || len(l.Small) > 0 || len(l.Overlaps) > 0 {
			t.Errorf("%s: charts narrower than the page %q; text under 9px %q; overlapping %q", vp.name, l.Narrow, l.Small, l.Overlaps)
		}
		if l.Scroll > l.Inner || len(l.Wide) > 0 {
			t.Errorf("%s: page %dpx wide in a %dpx window; past the edge: %q", vp.name, l.Scroll, l.Inner, l.Wide)
		}
		rows, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("table.phases tr.phase").length`))
		if err != nil || rows != 4 {
			t.Errorf("%s: %d phase rows (%v), want 4", vp.name, rows, err)
		}
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.scrollTo(0, 0), true`)); err != nil {
			t.Fatal(err)
		}
		shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.ArtifactDir(), "plan-"+vp.name+".png")
		if err := os.WriteFile(path, shot, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", path)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(problems) > 0 {
		t.Errorf("page problems: %v", problems)
	}
	if len(requests) == 0 {
		t.Error("no network events seen: the request check proves nothing")
	}
	for _, u := range requests {
		if !strings.HasPrefix(u, "file://") {
			t.Errorf("the report fetched %s: it must be self-contained", u)
		}
	}
}
