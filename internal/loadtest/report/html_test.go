package report

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
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

	"github.com/surge-commerce/surge/internal/loadtest"
)

// sampleResult runs a short real test with two journeys, a few errors and
// a threshold that fails, the target's own metrics scraped and its health
// probed, so every part of the report has something in it; a drop's
// outcome and two phases are added.
func sampleResult(t *testing.T) *loadtest.Result {
	t.Helper()
	var n int
	var mu sync.Mutex
	born := time.Now()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/metrics":
			s := time.Since(born).Seconds()
			fmt.Fprintf(w, "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total %g\n"+
				"# TYPE surge_admission_shed_total counter\nsurge_admission_shed_total{class=\"browse\",reason=\"cpu\"} %g\n"+
				"surge_admission_shed_total{class=\"critical\",reason=\"cpu\"} 0\n"+
				"# TYPE surge_page_cache_requests_total counter\nsurge_page_cache_requests_total{result=\"hit\"} %g\n"+
				"surge_page_cache_requests_total{result=\"miss\"} %g\n"+
				"# TYPE surge_waitroom_waiting gauge\nsurge_waitroom_waiting{drop=\"d\"} %g\n"+
				"# TYPE surge_admission_sched_delay_seconds gauge\nsurge_admission_sched_delay_seconds %g\n",
				0.6*s, 5*s*s, 90*s, 10*s, 100*s, 0.004*s)
			return
		case "/livez", "/readyz":
			return
		}
		mu.Lock()
		n++
		fail := n%7 == 0
		mu.Unlock()
		if fail {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, `<a href="/categories/c1">c</a><a href="/products/p1">p</a>`)
	}))
	t.Cleanup(srv.Close)
	target, _ := url.Parse(srv.URL)
	browse, err := loadtest.Journey("browse")
	if err != nil {
		t.Fatal(err)
	}
	browse = browse.WithThink(loadtest.Think{Min: 10 * time.Millisecond, Max: 50 * time.Millisecond})
	plan, _ := loadtest.ParseSpike("base=40,x=4,at=1s,hold=1s", 3*time.Second)
	start := time.Now().Add(100 * time.Millisecond)
	mon := loadtest.StartMonitor(context.Background(), loadtest.MonitorConfig{Scrape: []string{srv.URL + "/metrics"},
		Probes: []string{srv.URL + "/livez", srv.URL + "/readyz"}, Interval: 250 * time.Millisecond, ProbeEvery: 250 * time.Millisecond, Start: start})
	r, err := loadtest.Run(context.Background(), loadtest.Config{Target: target, Plan: plan, Duration: plan.Duration(),
		Mix:      []loadtest.Weighted{{Scenario: browse, Weight: 3}, {Scenario: loadtest.GetScenario(), Weight: 1}},
		Interval: 250 * time.Millisecond, Profile: "spike base=40,x=4,at=1s,hold=1s", StartAt: start})
	if err != nil {
		t.Fatal(err)
	}
	r.Server, r.Probes = mon.Stop()
	r.Name, r.Description = "sample", "A spike against a page that fails one request in seven."
	r.Phases = []loadtest.Phase{{Name: "base", From: 0, To: 1}, {Name: "spike", From: 1, To: 2}}
	r.Drop = &loadtest.DropResult{Buyers: 40, FinalAnswers: 40, Bought: 4, Units: 4, SoldOut: 36, Allocated: 4, StartS: 1, FirstAdmitS: 1.1, LastSaleS: 1.9, FirstSoldOutS: 2}
	for i := range 40 {
		r.Drop.Places = append(r.Drop.Places, loadtest.Place{JoinS: float64(i) / 20, PreQueue: i < 20, Position: uint64((i*7)%20 + 1 + 20*(i/20)), Bought: i%10 == 0})
	}
	r.Drop.ComputeFairness()
	r.Checks = []loadtest.CheckResult{{Name: "drop stock", Pass: true, Detail: "4 units: the shop records 4 sold, 0 reserved; buyers were told 4"}}
	ths, _ := loadtest.ParseThresholds([]string{"p99<10s", "errors<1%", "browse/product:p95<5s"})
	loadtest.Evaluate(r, ths)
	return r
}

func TestSummary(t *testing.T) {
	r := sampleResult(t)
	if out := os.Getenv("SURGE_REPORT_SAMPLE"); out != "" {
		// Writes the sample report where a person can look at it.
		f, err := os.Create(out)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := HTML(f, r); err != nil {
			t.Fatal(err)
		}
	}
	var b bytes.Buffer
	if err := Summary(&b, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"browse/home", "browse/category", "browse/product", "get/get", "total",
		"statuses: 200 x", "failures: status 503 x", "pass  p99<10s", "FAIL  errors<1%", "no coordinated omission",
		"server (1 target): CPU ", "page cache hit ratio 90.0%", "shed browse ", "longest line ",
		"probes:\n  pass  http://", "/livez: ", "checks:\n  pass  drop stock: 4 units",
		"sold out: last sale 900ms after the drop's start; first buyer told \"sold out\" 2s into the run",
		"draw: 20 pre-queue buyers, join order against place rho "} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, b.String())
		}
	}
}

func TestProgressLines(t *testing.T) {
	var b bytes.Buffer
	p := Progress(&b, false)
	p(loadtest.Progress{Elapsed: 5 * time.Second, Duration: time.Minute, Requests: 1000, Errors: 10, Rate: 200.4,
		InFlight: 3, Users: 40, Recent: loadtest.Latency{P50: 12.3, P99: 340}, CapHits: 2})
	want := "   5s/1m0s       200 req/s  in-flight 3     users 40     p50 12ms    p99 340ms   errors 1.00% (10)  MAX IN-FLIGHT HIT x2\n"
	if b.String() != want {
		t.Errorf("plain progress line\n got  %q\n want %q", b.String(), want)
	}
	b.Reset()
	Progress(&b, true)(loadtest.Progress{Duration: time.Second})
	if !strings.HasPrefix(b.String(), "\r\033[K") || strings.HasSuffix(b.String(), "\n") {
		t.Errorf("terminal progress line %q", b.String())
	}
}

// TestHTMLReportInChromium opens the report from a file in headless
// Chromium: it renders with every chart drawn, the step table filled, no
// console errors and no request for anything outside the file.
func TestHTMLReportInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test: skipped with -short")
	}
	browsertest.Chromium(t) // skips without Chromium, before the shop is built
	r := sampleResult(t)
	file := filepath.Join(t.TempDir(), "report.html")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := HTML(f, r); err != nil {
		t.Fatal(err)
	}
	f.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	ctx, cancelAlloc := browsertest.Allocator(t, ctx)
	defer cancelAlloc()
	var mu sync.Mutex
	var problems, requests []string
	listen := func(ev any) {
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
	}
	ctx, cancelTab := chromedp.NewContext(ctx, chromedp.WithListener(listen))
	defer cancelTab()

	if err := chromedp.Do(ctx, chromedp.Navigate("file://"+file), chromedp.WaitVisible(chromedp.CSS("#charts svg"))); err != nil {
		t.Fatal(err)
	}
	eval := func(expr string) int {
		t.Helper()
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](expr))
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		return n
	}
	title, err := chromedp.Run(ctx, chromedp.Title())
	if err != nil {
		t.Fatal(err)
	}
	verdict, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(".verdict")))
	if err != nil {
		t.Fatal(err)
	}
	charts := eval(`document.querySelectorAll("figure.chart svg[data-chart]").length`)
	// Every chart has a drawn line with real extent, or dots.
	drawn := eval(`[...document.querySelectorAll("figure.chart svg")].filter(s =>
		[...s.querySelectorAll("path.series")].some(p => p.getTotalLength() > 50) ||
		s.querySelectorAll("circle").length > 0).length`)
	// Charts are laid out at a useful size.
	wide := eval(`[...document.querySelectorAll("figure.chart svg")].filter(s => s.getBoundingClientRect().width > 400).length`)
	legends := eval(`document.querySelectorAll("ul.legend li").length`)
	stepRows := eval(`document.querySelectorAll("table.steps tr.step").length`)
	thresholdRows := eval(`document.querySelectorAll("#thresholds tbody tr").length`)
	// Legend entries never overlap one another.
	overlaps := eval(`[...document.querySelectorAll("ul.legend")].reduce((n, s) => {
		const r = [...s.querySelectorAll("li")].map(g => g.getBoundingClientRect());
		for (let i = 0; i < r.length; i++) for (let j = i + 1; j < r.length; j++)
			if (r[i].left < r[j].right && r[j].left < r[i].right && r[i].top < r[j].bottom && r[j].top < r[i].bottom) n++;
		return n;
	}, 0)`)
	sections := eval(`["verdicts", "charts", "server", "steps"].filter(id => document.getElementById(id)).length`)
	probeRows := eval(`document.querySelectorAll("#probes li").length`)
	serverCharts := eval(`document.querySelectorAll("#server figure.chart").length`)
	journeyLines := eval(`document.querySelectorAll("#chart-journeys path.series").length`)
	bands := eval(`document.querySelectorAll("#chart-rps .band").length`)
	if wide != 12 {
		t.Errorf("%d charts wider than 400px", wide)
	}
	if overlaps != 0 || sections != 4 || probeRows != 2 || serverCharts != 5 || journeyLines != 2 || bands != 2 {
		t.Errorf("%d overlapping legend entries, %d of 4 sections, %d probe lines, %d server charts, %d journey lines, %d phase bands",
			overlaps, sections, probeRows, serverCharts, journeyLines, bands)
	}
	body, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Rehearsal: sample", "server errors (5xx, no answer)", "page cache hit ratio 90.0%", "shed browse",
		"Sold out: last sale 900ms after the drop's start", "draw: 20 pre-queue buyers", "pass drop stock"} {
		if !strings.Contains(body, want) {
			t.Errorf("report lacks %q", want)
		}
	}

	// On a phone, the page itself never scrolls sideways: wide charts and
	// tables scroll within their own boxes.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844)); err != nil {
		t.Fatal(err)
	}
	if w := eval(`document.documentElement.scrollWidth - window.innerWidth`); w > 0 {
		t.Errorf("at 390px the page is %dpx wider than the screen", w)
	}
	if n := eval(`[...document.querySelectorAll("ul.legend")].reduce((n, s) => {
		const r = [...s.querySelectorAll("li")].map(g => g.getBoundingClientRect());
		for (let i = 0; i < r.length; i++) for (let j = i + 1; j < r.length; j++)
			if (r[i].left < r[j].right && r[j].left < r[i].right && r[i].top < r[j].bottom && r[j].top < r[i].bottom) n++;
		return n;
	}, 0)`); n != 0 {
		t.Errorf("at 390px %d legend entries overlap", n)
	}
	if !strings.Contains(title, "spike base=40") {
		t.Errorf("title %q", title)
	}
	if charts != 12 || drawn != 12 {
		t.Errorf("%d charts, %d with data drawn; want 12 and 12", charts, drawn)
	}
	if legends < 10 {
		t.Errorf("%d legend entries", legends)
	}
	if stepRows != 4 || thresholdRows != 3 || verdict != "FAILED" {
		t.Errorf("%d step rows (want 4), %d threshold rows (want 3), verdict %q", stepRows, thresholdRows, verdict)
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
