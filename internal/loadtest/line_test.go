package loadtest

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// lineShop is a shop behind a waiting line that speaks the protocol of
// Surge's standby line (internal/storefront/standby.go): while the line is
// on, a page request of a visitor not admitted is sent (303) to
// /queue?next=PAGE, a held form post to /queue?next=THE_PAGE_IT_CAME_FROM,
// an API call refused with 503, a waiting-line problem and Retry-After;
// /queue gives the visitor a cookie, answers 200 with a page that reloads
// itself (a meta refresh in noscript) while they wait, and 303s them to
// next once admitted. admit decides, on each visit of /queue, whether the
// visitor is let in, from how often they loaded it and how many are
// waiting.
type lineShop struct {
	admit func(polls, waiting int) bool
	// forget makes the API refuse even admitted visitors (a line that
	// sends its shoppers back).
	forget bool
	// refuse answers this many first joins 429 with Retry-After (too
	// many joins from the address).
	refuse int

	mu       sync.Mutex
	next     int
	polls    map[string]int
	admitted map[string]bool
	adds     map[string]int
	badAdds  int // form posts that arrived as GETs, or from no visitor
}

func newLineShop(admit func(polls, waiting int) bool) *lineShop {
	return &lineShop{admit: admit, polls: map[string]int{}, admitted: map[string]bool{}, adds: map[string]int{}}
}

func (s *lineShop) visitor(r *http.Request) (string, bool) {
	c, err := r.Cookie("sid")
	if err != nil {
		return "", false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return c.Value, s.admitted[c.Value]
}

func (s *lineShop) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sid, in := s.visitor(r)
	w.Header().Set("Cache-Control", "no-store")
	switch {
	case r.URL.Path == "/queue":
		s.queue(w, r, sid)
		return
	case strings.HasPrefix(r.URL.Path, "/api/") && (!in || s.forget):
		w.Header().Set("Retry-After", "5")
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"type":"https://surge.example/problems/waiting-line","title":"Service Unavailable","status":503}`)
		return
	case !in:
		next := r.URL.RequestURI()
		if r.Method != http.MethodGet {
			next = "/"
			if ref, err := url.Parse(r.Referer()); err == nil && ref.Path != "" {
				next = ref.Path
			}
		}
		http.Redirect(w, r, "/queue?next="+url.QueryEscape(next), http.StatusSeeOther)
		return
	}
	switch {
	case r.URL.Path == "/p":
		fmt.Fprint(w, `<html><body>the page <form method="post" action="/add" data-token="abc123"></form></body></html>`)
	case r.URL.Path == "/add" && r.Method == http.MethodPost:
		s.mu.Lock()
		s.adds[sid]++
		s.mu.Unlock()
		http.Redirect(w, r, "/cart", http.StatusSeeOther)
	case r.URL.Path == "/add":
		s.mu.Lock()
		s.badAdds++
		s.mu.Unlock()
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	case r.URL.Path == "/cart":
		fmt.Fprint(w, "<html><body>added to your cart</body></html>")
	case r.URL.Path == "/api/x":
		io.WriteString(w, `{"ok":true}`)
	default:
		http.NotFound(w, r)
	}
}

func (s *lineShop) queue(w http.ResponseWriter, r *http.Request, sid string) {
	s.mu.Lock()
	if sid == "" && s.refuse > 0 {
		s.refuse--
		s.mu.Unlock()
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusTooManyRequests)
		fmt.Fprint(w, "<html><body>Too many joins from this address: retry after 1s</body></html>")
		return
	}
	if sid == "" {
		s.next++
		sid = strconv.Itoa(s.next)
		http.SetCookie(w, &http.Cookie{Name: "sid", Value: sid, Path: "/"})
	}
	s.polls[sid]++
	waiting := 0
	for id := range s.polls {
		if !s.admitted[id] {
			waiting++
		}
	}
	if !s.admitted[sid] && s.admit(s.polls[sid], waiting) {
		// Everyone waiting moves on together: the line advanced.
		for id := range s.polls {
			s.admitted[id] = true
		}
	}
	in := s.admitted[sid]
	s.mu.Unlock()
	if in {
		next := r.URL.Query().Get("next")
		if !strings.HasPrefix(next, "/") {
			next = "/"
		}
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	fmt.Fprint(w, `<!doctype html><html><head><noscript><meta http-equiv="refresh" content="0"></noscript></head><body>You are in line.</body></html>`)
}

const lineJourneys = `
name: line-shop
think: "0"
headers:
  Accept: text/html
line: {path: /queue, max_wait: %s}
journeys:
  - name: %s
    steps:
%s`

const browseThenBuy = `      - name: page
        url: /p
        check: {status: 200, body_contains: the page}
        extract:
          - {name: token, regex: 'data-token="([a-z0-9]+)"'}
      - name: add
        method: POST
        url: /add
        headers: {Content-Type: application/x-www-form-urlencoded, Referer: '{{.base_url}}/p'}
        body: token={{.token}}
        check: {status: 200, body_contains: added}
      - name: api
        url: /api/x
        check: {status: 200}
`

// A visitor who lands on the form: the post itself is held.
const postFirst = `      - name: add
        method: POST
        url: /add
        headers: {Content-Type: application/x-www-form-urlencoded, Referer: '{{.base_url}}/p'}
        body: token=abc123
        check: {status: 200, body_contains: added}
`

func runLineShop(t *testing.T, shop http.Handler, maxWait, journey, steps string, sessions, maxInFlight int) (*Result, Config) {
	t.Helper()
	f, err := ParseFile("line.yaml", fmt.Appendf(nil, lineJourneys, maxWait, journey, steps))
	if err != nil {
		t.Fatal(err)
	}
	mix, err := f.Mix(DropOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// sessions arrivals within 100 ms.
	cfg := Config{Target: newTarget(t, shop), Mix: mix, Plan: ConstantPlan(float64(sessions)*10, 100*time.Millisecond),
		Duration: 100 * time.Millisecond, Grace: time.Minute, MaxInFlight: maxInFlight}
	return mustRun(t, cfg), cfg
}

// TestLineWaitsAndFinishes runs shoppers into a waiting line: each is held
// on the line page, reloads it when the page says, and once sent on takes
// its page as the step's answer (checks and extraction apply) and shops
// on; a form post the line held is sent again from the page the line sends
// the shopper back to, exactly once.
func TestLineWaitsAndFinishes(t *testing.T) {
	for _, tc := range []struct {
		name, steps string
	}{{"browse-then-buy", browseThenBuy}, {"post-first", postFirst}} {
		t.Run(tc.name, func(t *testing.T) {
			// Let each visitor in on their third look at the line.
			shop := newLineShop(func(polls, _ int) bool { return polls >= 3 })
			const n = 4
			r, cfg := runLineShop(t, shop, "1m", "shopper", tc.steps, n, 0)
			l := r.Line
			if l == nil {
				t.Fatal("no line summary")
			}
			if l.Sessions != n || l.Waited != n || l.Admitted != n || l.Finished != n || l.FinishedBy["shopper"] != n {
				t.Errorf("line %s: want %d sessions, all waited, admitted and finished", l, n)
			}
			if l.SentBack != 0 || l.GaveUp != 0 || l.Failed != 0 || l.Unfinished != 0 || l.Stopped != 0 {
				t.Errorf("line %s: want none sent back, given up, failed, unfinished or stopped", l)
			}
			// Two line pages each before the third look lets them in
			// (and, for a held post, that third look).
			polls := int64(2 * n)
			if tc.name == "post-first" {
				polls = 3 * n
			}
			if l.Polls != polls || l.WaitHist.Count() != n {
				t.Errorf("line %s: want %d line requests and %d waits", l, polls, n)
			}
			if r.Completed != n || r.Total.Errors != 0 {
				t.Errorf("completed %d of %d, errors %v", r.Completed, n, r.Total.Failures)
			}
			st, ok := r.Step(lineStat)
			if !ok || st.Requests != l.Polls || st.Statuses["200"] != l.Polls {
				t.Errorf("line stat %+v: want the %d line pages recorded as requests of their own", st, l.Polls)
			}
			add, _ := r.Step("add")
			if add == nil || add.Requests != n || add.Errors != 0 {
				t.Errorf("add step %+v: want %d answered adds", add, n)
			}
			shop.mu.Lock()
			if shop.badAdds != 0 || len(shop.adds) != n {
				t.Errorf("shop saw %d bad adds, adds %v: want one add per shopper", shop.badAdds, shop.adds)
			}
			for sid, k := range shop.adds {
				if k != 1 {
					t.Errorf("visitor %s added %d times", sid, k)
				}
			}
			shop.mu.Unlock()
			// The line page's requests count for an objective on its route.
			slo := SLO{Name: "line", Objective: 99, Counts: func(m, p string) bool { return p == "/queue" }, BadStatus: func(c int) bool { return c >= 500 }}
			cfg.EvaluateSLOs(r, []SLO{slo})
			if len(r.SLOs) != 1 || r.SLOs[0].Requests != l.Polls {
				t.Errorf("SLO on /queue %+v: want the %d line pages counted", r.SLOs, l.Polls)
			}
			if !Evaluate(r, mustThresholds(t, "line_sent_back<1", "line_admitted==4", "line_gave_up<1")) {
				t.Errorf("thresholds %+v", r.Thresholds)
			}
		})
	}
}

func mustThresholds(t *testing.T, exprs ...string) []Threshold {
	t.Helper()
	ts, err := ParseThresholds(exprs)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

// TestLineTooManyJoins: a line page that answers "too many joins from
// this address, retry after 1s" (429) is reloaded after that time, as a
// person would; the visitor then waits and is let in as usual.
func TestLineTooManyJoins(t *testing.T) {
	shop := newLineShop(func(polls, _ int) bool { return polls >= 2 })
	shop.refuse = 2
	const n = 3
	r, _ := runLineShop(t, shop, "1m", "shopper", browseThenBuy, n, 0)
	l := r.Line
	if l == nil || l.Admitted != n || l.Finished != n || l.Failed != 0 || r.Total.Errors != 0 {
		t.Fatalf("line %v, errors %v: want all %d admitted", l, r.Total.Failures, n)
	}
	if st, _ := r.Step(lineStat); st == nil || st.Statuses["429"] != 2 {
		t.Errorf("line stat %+v: want the two 429s recorded", st)
	}
}

// TestLineWaitHoldsNoSlot: users waiting in line hold neither a goroutine
// nor the in-flight slot between reloads. With one request in flight at
// most, the line lets anyone in only once all four shoppers stand in it
// together; a user that held its slot while waiting would keep the others
// out of the line, and they would all give up.
func TestLineWaitHoldsNoSlot(t *testing.T) {
	const n = 4
	shop := newLineShop(func(_, waiting int) bool { return waiting >= n })
	r, _ := runLineShop(t, shop, "30s", "shopper", browseThenBuy, n, 1)
	if l := r.Line; l == nil || l.Admitted != n || l.Finished != n || l.GaveUp != 0 {
		t.Fatalf("line %v: want all %d admitted together", l, n)
	}
}

// TestLineSentBack: a shop that refuses an admitted shopper's API call for
// its waiting line has sent them back; the summary says so and the
// threshold fails.
func TestLineSentBack(t *testing.T) {
	shop := newLineShop(func(polls, _ int) bool { return polls >= 2 })
	shop.forget = true
	const n = 3
	r, _ := runLineShop(t, shop, "1m", "shopper", browseThenBuy, n, 0)
	l := r.Line
	if l == nil || l.Admitted != n || l.SentBack != n || l.Stopped != n || l.Finished != 0 {
		t.Fatalf("line %v: want %d admitted, all sent back and stopped", l, n)
	}
	if Evaluate(r, mustThresholds(t, "line_sent_back<1")) {
		t.Errorf("line_sent_back<1 passed with %d sent back", l.SentBack)
	}
	var text strings.Builder
	fmt.Fprint(&text, l)
	if !strings.Contains(text.String(), "3 sent back") {
		t.Errorf("summary %q", text.String())
	}
}

// TestLineGiveUp: a line that never moves loses its visitors at max_wait;
// they are not errors of the steps, and their visits do not complete.
func TestLineGiveUp(t *testing.T) {
	shop := newLineShop(func(int, int) bool { return false })
	const n = 2
	r, _ := runLineShop(t, shop, "1s", "shopper", browseThenBuy, n, 0)
	l := r.Line
	if l == nil || l.Sessions != n || l.GaveUp != n || l.Admitted != 0 || l.Unfinished != 0 {
		t.Fatalf("line %v: want %d given up", l, n)
	}
	if r.Completed != 0 || r.Total.Errors != 0 {
		t.Errorf("completed %d, errors %v: want none", r.Completed, r.Total.Failures)
	}
	if page, _ := r.Step("page"); page != nil && page.Requests != 0 {
		t.Errorf("page step recorded %d requests: the line pages are the line's", page.Requests)
	}
}

// TestLineLetThroughAtOnce: a line that admits on the first look sends the
// visitor on without showing its page; the session counts as sent to the
// line and admitted, not as having waited.
func TestLineLetThroughAtOnce(t *testing.T) {
	shop := newLineShop(func(int, int) bool { return true })
	const n = 3
	r, _ := runLineShop(t, shop, "1m", "shopper", browseThenBuy, n, 0)
	l := r.Line
	if l == nil || l.Sessions != n || l.Waited != 0 || l.Admitted != n || l.Polls != 0 || l.Finished != n || l.Wait.Max >= 1 {
		t.Fatalf("line %v: want %d let through at once", l, n)
	}
}

// TestNoLineNoSummary: a scenario without a line has no line summary, and
// a line threshold says there is nothing to judge.
func TestNoLineNoSummary(t *testing.T) {
	target := newTarget(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	r := mustRun(t, Config{Target: target, Mix: getMix(), Plan: ConstantPlan(10, 100*time.Millisecond), Duration: 100 * time.Millisecond})
	if r.Line != nil {
		t.Fatalf("line %v without a line", r.Line)
	}
	res := mustThresholds(t, "line_sent_back<1")[0].Eval(r)
	if res.Pass || !strings.Contains(res.Note, "no waiting line") {
		t.Errorf("threshold without a line: %+v", res)
	}
}

func TestRefreshAfter(t *testing.T) {
	for _, tc := range []struct {
		header, body string
		want         time.Duration
	}{
		{"", `<noscript><meta http-equiv="refresh" content="7"></noscript>`, 7 * time.Second},
		{"", `<META HTTP-EQUIV=Refresh CONTENT='3; url=/queue?next=%2F'>`, 3 * time.Second},
		{"", `<meta content="2" http-equiv="refresh">`, 2 * time.Second},
		{"4", `<meta http-equiv="refresh" content="9">`, 4 * time.Second},
		{"1.5, url=/x", "", 1500 * time.Millisecond},
		{"", `<meta http-equiv="refresh" content="0">`, minLineRefresh},
		{"", `<meta http-equiv="refresh" content="-3">`, minLineRefresh},
		{"", `<meta http-equiv="refresh" content="86400">`, maxLineRefresh},
		{"", `<meta http-equiv="refresh" content="1e300">`, maxLineRefresh},
		{"", `<meta http-equiv="refresh" content="NaN">`, defaultLineRefresh},
		{"", `<p>no refresh</p>`, defaultLineRefresh},
		{"soon", "", defaultLineRefresh},
	} {
		h := http.Header{}
		if tc.header != "" {
			h.Set("Refresh", tc.header)
		}
		if got := refreshAfter(h, []byte(tc.body)); got != tc.want {
			t.Errorf("refreshAfter(%q, %q) = %v, want %v", tc.header, tc.body, got, tc.want)
		}
	}
}

// FuzzRefreshAfter: whatever a page says, the wait is within bounds.
func FuzzRefreshAfter(f *testing.F) {
	f.Add("", `<meta http-equiv="refresh" content="5">`)
	f.Add("3;url=/", "")
	f.Add("", `<meta http-equiv=refresh content=Inf>`)
	f.Fuzz(func(t *testing.T, header, body string) {
		h := http.Header{}
		h.Set("Refresh", header)
		if d := refreshAfter(h, []byte(body)); d < minLineRefresh || d > maxLineRefresh {
			t.Fatalf("refreshAfter(%q, %q) = %v", header, body, d)
		}
		if d := refreshAfter(http.Header{}, []byte(body)); d < minLineRefresh || d > maxLineRefresh {
			t.Fatalf("refreshAfter(%q) = %v", body, d)
		}
	})
}

func TestLineFileErrors(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		{"line: {path: queue}", "want the line page's URL path"},
		{"line: {path: /queue, max_wait: forever}", "max_wait"},
		{"line: {path: /queue, max_wait: -1s}", "max_wait"},
		{"line: {path: /queue, wait: 1m}", `unknown line field "wait"`},
		{"line: {path: /queue}\ncookies: false", "leave cookies on"},
	} {
		src := "name: x\n" + tc.line + "\nsteps:\n  - {name: a, url: /}\n"
		if _, err := ParseFile("x.yaml", []byte(src)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one saying %q", tc.line, err, tc.want)
		}
	}
	if _, err := ParseFile("x.yaml", []byte("name: x\nline: {path: /queue}\nsteps:\n  - {name: line, url: /}\n")); err == nil || !strings.Contains(err.Error(), "name the step otherwise") {
		t.Errorf("a step named line: %v", err)
	}
	f, err := ParseFile("x.yaml", []byte("name: x\nline: {path: /queue}\nsteps:\n  - {name: a, url: /}\n"))
	if err != nil || f.Line == nil || f.Line.MaxWait != defaultLineMaxWait {
		t.Fatalf("file %+v, %v: want the default max_wait", f, err)
	}
	// Every journey but drop and get follows the line.
	f, err = ParseFile("x.yaml", []byte("name: x\nline: {path: /queue, max_wait: 2m}\njourneys:\n  - {use: browse}\n  - {use: get}\n  - name: own\n    steps: [{name: a, url: /}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	mix, err := f.Mix(DropOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range mix {
		if got := w.Scenario.Line != nil; got != (w.Scenario.Name != "get") {
			t.Errorf("journey %s: line %v", w.Scenario.Name, w.Scenario.Line)
		}
	}
}

func TestLineResultMerge(t *testing.T) {
	a := &LineResult{Path: "/queue", Sessions: 3, Waited: 2, Admitted: 3, SentBack: 1, Finished: 2, FinishedBy: map[string]int64{"buy": 2}, WaitHist: NewHistogram()}
	a.WaitHist.Record(2 * time.Second)
	b := &LineResult{Path: "/queue", Sessions: 1, Waited: 1, GaveUp: 1, Unfinished: 0, FinishedBy: map[string]int64{"buy": 1}, WaitHist: NewHistogram()}
	b.WaitHist.Record(4 * time.Second)
	m := Merge(&Result{Total: newStats("total"), Line: a}, &Result{Total: newStats("total"), Line: b})
	l := m.Line
	if l == nil || l.Sessions != 4 || l.Waited != 3 || l.Admitted != 3 || l.GaveUp != 1 || l.SentBack != 1 || l.FinishedBy["buy"] != 3 ||
		l.WaitHist.Count() != 2 || l.Wait.Max < 3999 {
		t.Fatalf("merged line %+v", l)
	}
}
