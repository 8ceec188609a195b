package loadtest

import (
	"bytes"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.yaml.in/yaml/v3"
)

// WaitingLine is a site's waiting line as a scenario's users meet it: a
// page at Path that holds a visitor, reloading itself, until it sends the
// visitor on to the page they asked for. A user of a scenario with a line
// behaves as a browser does there: it stays on the step, reloads the line
// page when the page says to, and takes the page it is finally sent on to
// as the step's answer, giving up after MaxWait.
type WaitingLine struct {
	Path    string        // the line page's URL path: /queue
	MaxWait time.Duration // how long a user waits before giving up
}

// The bounds on a line page's refresh interval: a page asking for less is
// reloaded after minLineRefresh (as a person cannot reload faster), one
// asking for more (or saying nothing) after at most maxLineRefresh.
const (
	minLineRefresh     = 500 * time.Millisecond
	maxLineRefresh     = time.Minute
	defaultLineRefresh = 5 * time.Second
	defaultLineMaxWait = 5 * time.Minute
)

// lineStat is the name the line page's requests are recorded under.
const lineStat = "line"

type fileLine struct {
	Path    string `yaml:"path"`
	MaxWait string `yaml:"max_wait"`
	line    int
}

func (l *fileLine) UnmarshalYAML(n *yaml.Node) error {
	type plain fileLine
	l.line = n.Line
	return strictDecode(n, "line", (*plain)(l), "path", "max_wait")
}

func compileLine(f *fileLine) (*WaitingLine, error) {
	if f == nil {
		return nil, nil
	}
	l := &WaitingLine{Path: f.Path, MaxWait: defaultLineMaxWait}
	if !strings.HasPrefix(l.Path, "/") || strings.ContainsAny(l.Path, "?# ") {
		return nil, lineErr(f.line, "line: path %q: want the line page's URL path, like /queue", f.Path)
	}
	if f.MaxWait != "" {
		d, err := time.ParseDuration(f.MaxWait)
		if err != nil || d <= 0 || d > 24*time.Hour {
			return nil, lineErr(f.line, "line: max_wait %q: want a positive duration up to 24h, like 3m", f.MaxWait)
		}
		l.MaxWait = d
	}
	return l, nil
}

// LineResult is how the sessions of a run fared in the site's waiting
// line. A session counts once in Sessions however often it met the line.
type LineResult struct {
	Path string `json:"path"`
	// Sessions were sent to the line; Waited of them were shown its page
	// at least once (the others were let through at once).
	Sessions int64 `json:"sessions"`
	Waited   int64 `json:"waited"`
	// Admitted sessions were sent on to their page; GaveUp waited
	// max_wait and left; Failed met a failed request while waiting;
	// Unfinished were still waiting when the run ended.
	Admitted   int64 `json:"admitted"`
	GaveUp     int64 `json:"gave_up"`
	Failed     int64 `json:"failed"`
	Unfinished int64 `json:"unfinished"`
	// SentBack are admitted sessions the site later held again: sent to
	// the line page, or refused with a 503 waiting-line problem. A line
	// that lets its admitted shoppers finish has none.
	SentBack int64 `json:"sent_back"`
	// Finished admitted sessions completed their visit (every later step
	// passed its checks), by journey in FinishedBy; Stopped ones failed
	// a step after admission.
	Finished   int64            `json:"finished"`
	FinishedBy map[string]int64 `json:"finished_by,omitempty"`
	Stopped    int64            `json:"stopped"`
	// Polls are the requests recorded as the line's (the "line" step):
	// those answered with its page, and those that left it from a form
	// post the shopper then sends again.
	Polls int64 `json:"polls"`
	// Wait runs from the first line page a session saw to its admission
	// (zero when let through at once), for admitted sessions.
	Wait     Latency    `json:"wait"`
	WaitHist *Histogram `json:"wait_histogram"`
}

func (l *LineResult) add(o *LineResult) {
	l.Path = o.Path
	l.Sessions += o.Sessions
	l.Waited += o.Waited
	l.Admitted += o.Admitted
	l.GaveUp += o.GaveUp
	l.Failed += o.Failed
	l.Unfinished += o.Unfinished
	l.SentBack += o.SentBack
	l.Finished += o.Finished
	l.Stopped += o.Stopped
	l.Polls += o.Polls
	for k, v := range o.FinishedBy {
		if l.FinishedBy == nil {
			l.FinishedBy = map[string]int64{}
		}
		l.FinishedBy[k] += v
	}
	if l.WaitHist == nil {
		l.WaitHist = NewHistogram()
	}
	if o.WaitHist != nil {
		l.WaitHist.Merge(o.WaitHist)
	}
	l.Wait = l.WaitHist.Summary()
}

// String is the line's summary for the text report.
func (l *LineResult) String() string {
	w := l.Wait
	return fmt.Sprintf("waiting line %s: %d sessions sent to it, %d waited, %d admitted (wait p50 %s, p99 %s, max %s), %d gave up, %d failed in line, %d still waiting at the end, %d sent back; admitted: %d finished, %d stopped; %d line page requests",
		l.Path, l.Sessions, l.Waited, l.Admitted, msString(w.P50), msString(w.P99), msString(w.Max), l.GaveUp, l.Failed, l.Unfinished, l.SentBack,
		l.Finished, l.Stopped, l.Polls)
}

// lineState is a session's way through the line.
type lineState struct {
	url      string        // the line page to reload while held; "" when not held
	since    time.Time     // when the session was first held for this step
	pause    time.Duration // until the next reload
	resend   bool          // admitted on a step that is not a GET: send the step again
	entered  bool          // the session was sent to the line at some time
	held     bool          // the session was shown the line page at some time
	admitted bool          // the line let the session through at some time
	sentBack bool          // already counted in SentBack
	gaveUp   bool
}

// lineAcc accumulates the line's figures of a run.
type lineAcc struct {
	path                                        string
	sessions, waited, admitted, gaveUp, failed  atomic.Int64
	waiting, sentBack, finished, stopped, polls atomic.Int64
	mu                                          sync.Mutex
	wait                                        *Histogram
	finishedBy                                  map[string]int64
}

func newLineAcc(path string) *lineAcc {
	return &lineAcc{path: path, wait: NewHistogram(), finishedBy: map[string]int64{}}
}

func (a *lineAcc) result() *LineResult {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := &LineResult{Path: a.path, Sessions: a.sessions.Load(), Waited: a.waited.Load(), Admitted: a.admitted.Load(),
		GaveUp: a.gaveUp.Load(), Failed: a.failed.Load(), Unfinished: a.waiting.Load(), SentBack: a.sentBack.Load(),
		Finished: a.finished.Load(), Stopped: a.stopped.Load(), Polls: a.polls.Load(), WaitHist: a.wait.Clone()}
	if len(a.finishedBy) > 0 {
		r.FinishedBy = map[string]int64{}
		for k, v := range a.finishedBy {
			r.FinishedBy[k] = v
		}
	}
	r.Wait = r.WaitHist.Summary()
	return r
}

// lineVerdict is what a response says about a session and the line.
type lineVerdict int

const (
	lineNone     lineVerdict = iota // nothing to do with the line
	lineHeld                        // the answer is the line page: wait and reload it
	lineAdmitted                    // the line sent the session on: the answer is its page
	lineResend                      // the line sent the session on from a form post: send it again
	lineGaveUp                      // held longer than max_wait: the user leaves
)

// lineAnswer decides what resp (after redirects) means for s in line ln,
// and keeps the line's figures. now is when the answer came.
func (e *engine) lineAnswer(s *session, st *Step, ln *WaitingLine, resp *http.Response, body []byte, now time.Time) lineVerdict {
	ls := &s.line
	a := e.line
	if resp.Request != nil && resp.Request.URL.Path == ln.Path && (resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusTooManyRequests) {
		// The line page, or its "too many joins from your address, try
		// again in a moment": either way the person stays and reloads.
		if ls.admitted && !ls.sentBack {
			ls.sentBack = true
			a.sentBack.Add(1)
		}
		if !ls.entered {
			ls.entered = true
			a.sessions.Add(1)
		}
		if !ls.held {
			ls.held = true
			a.waited.Add(1)
		}
		if ls.since.IsZero() {
			ls.since = now
			a.waiting.Add(1)
		}
		if now.Sub(ls.since) >= ln.MaxWait {
			a.waiting.Add(-1)
			a.gaveUp.Add(1)
			ls.url, ls.since, ls.pause, ls.gaveUp = "", time.Time{}, 0, true
			return lineGaveUp
		}
		u := *resp.Request.URL
		ls.url = u.String()
		pause := refreshAfter(resp.Header, body)
		if resp.StatusCode == http.StatusTooManyRequests {
			pause = min(retryAfter(resp.Header), maxLineRefresh)
		}
		ls.pause = min(pause, max(ln.MaxWait-now.Sub(ls.since), minLineRefresh))
		return lineHeld
	}
	if ls.url == "" && !passedThrough(resp, ln.Path) {
		if resp.StatusCode == http.StatusServiceUnavailable && ls.admitted && !ls.sentBack && waitingLineProblem(resp, body) {
			ls.sentBack = true
			a.sentBack.Add(1)
		}
		return lineNone
	}
	// Sent on: from the line page the session was reloading, or through
	// the line at once.
	var wait time.Duration
	if !ls.since.IsZero() {
		wait = now.Sub(ls.since)
		a.waiting.Add(-1)
	}
	if !ls.entered {
		ls.entered = true
		a.sessions.Add(1)
	}
	if !ls.admitted {
		ls.admitted = true
		a.admitted.Add(1)
		a.mu.Lock()
		a.wait.Record(wait)
		a.mu.Unlock()
	}
	ls.url, ls.since, ls.pause = "", time.Time{}, 0
	if st.Method != http.MethodGet && st.Method != http.MethodHead {
		// A browser cannot carry a form post through redirects: the
		// person is back on a page and sends the form again.
		ls.resend = true
		return lineResend
	}
	return lineAdmitted
}

// lineFailed notes that a request of s failed while it was held.
func (e *engine) lineFailed(s *session) {
	if s.line.url == "" || e.reqCtx.Err() != nil {
		return // cut off by the end of the run: still waiting
	}
	e.line.waiting.Add(-1)
	e.line.failed.Add(1)
	s.line.url, s.line.since = "", time.Time{}
}

// lineVisitOver notes how an admitted session's visit ended.
func (e *engine) lineVisitOver(s *session, ok bool) {
	if !s.line.admitted || s.line.gaveUp || (!ok && e.reqCtx.Err() != nil) {
		return
	}
	if !ok {
		e.line.stopped.Add(1)
		return
	}
	e.line.finished.Add(1)
	e.line.mu.Lock()
	e.line.finishedBy[e.cfg.Mix[s.sc].Scenario.Name]++
	e.line.mu.Unlock()
}

// passedThrough reports whether resp came through a redirect by the line
// page at path: the line let the visitor through at once.
func passedThrough(resp *http.Response, path string) bool {
	for r := resp.Request; r != nil && r.Response != nil; r = r.Response.Request {
		if prev := r.Response.Request; prev != nil && prev.URL.Path == path {
			return true
		}
	}
	return false
}

// waitingLineProblem reports whether resp is an API's refusal for the
// waiting line: a problem whose type ends in "waiting-line".
func waitingLineProblem(resp *http.Response, body []byte) bool {
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") {
		return false
	}
	return waitingLineTypeRE.Match(body)
}

var (
	waitingLineTypeRE = regexp.MustCompile(`"type"\s*:\s*"[^"]*waiting-line"`)
	metaRefreshRE     = regexp.MustCompile(`(?i)<meta\s[^>]*http-equiv\s*=\s*["']?refresh["']?[^>]*>`)
	metaContentRE     = regexp.MustCompile(`(?i)\scontent\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))`)
)

// refreshAfter is how long a line page asks to wait before it reloads:
// its Refresh header, else its meta refresh, bounded; the default when
// it says neither.
func refreshAfter(h http.Header, body []byte) time.Duration {
	v := h.Get("Refresh")
	if v == "" {
		if tag := metaRefreshRE.Find(body); tag != nil {
			if m := metaContentRE.FindSubmatch(tag); m != nil {
				v = string(bytes.Join(m[1:], nil))
			}
		}
	}
	secs, _, _ := strings.Cut(v, ";")
	secs, _, _ = strings.Cut(secs, ",")
	f, err := strconv.ParseFloat(strings.TrimSpace(secs), 64)
	switch {
	case err != nil || math.IsNaN(f):
		return defaultLineRefresh
	case f >= maxLineRefresh.Seconds():
		return maxLineRefresh
	}
	return max(time.Duration(f*float64(time.Second)), minLineRefresh)
}
