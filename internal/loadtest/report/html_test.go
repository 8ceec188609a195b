package report

import (
	"bytes"
	"context"
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
// a threshold that fails, so every part of the report has something in it.
func sampleResult(t *testing.T) *loadtest.Result {
	t.Helper()
	var n int
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
	r, err := loadtest.Run(context.Background(), loadtest.Config{Target: target, Plan: plan, Duration: plan.Duration(),
		Mix:      []loadtest.Weighted{{Scenario: browse, Weight: 3}, {Scenario: loadtest.GetScenario(), Weight: 1}},
		Interval: 250 * time.Millisecond, Profile: "spike base=40,x=4,at=1s,hold=1s"})
	if err != nil {
		t.Fatal(err)
	}
	ths, _ := loadtest.ParseThresholds([]string{"p99<10s", "errors<1%", "browse/product:p95<5s"})
	loadtest.Evaluate(r, ths)
	return r
}

func TestSummary(t *testing.T) {
	r := sampleResult(t)
	var b bytes.Buffer
	if err := Summary(&b, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"browse/home", "browse/category", "browse/product", "get/get", "total",
		"statuses: 200 x", "failures: status 503 x", "pass  p99<10s", "FAIL  errors<1%", "no coordinated omission"} {
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
	legends := eval(`document.querySelectorAll("svg .legend").length`)
	stepRows := eval(`document.querySelectorAll("table.steps tr.step").length`)
	thresholdRows := eval(`document.querySelectorAll("#thresholds tbody tr").length`)
	if wide != 5 {
		t.Errorf("%d charts wider than 400px", wide)
	}
	if !strings.Contains(title, "spike base=40") {
		t.Errorf("title %q", title)
	}
	if charts != 5 || drawn != 5 {
		t.Errorf("%d charts, %d with data drawn; want 5 and 5", charts, drawn)
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
