package loadtest

import (
	"bytes"
	"container/heap"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptrace"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Config describes one run. Exactly one of Plan (open model: sessions
// arrive on schedule whatever the target does) and VUs (closed model: a
// fixed number of users, each starting its next visit after the last) is
// set.
type Config struct {
	Target      *url.URL   // base of relative step URLs
	Mix         []Weighted // journeys and their shares of the sessions
	Plan        Plan
	VUs         int
	Think       Think         // closed model: pause between a user's visits
	Duration    time.Duration // sessions start only within this window
	MaxInFlight int           // cap on requests in flight; reported when hit
	Connections int           // cap on TCP connections (0: as many as needed)
	Timeout     time.Duration // per request
	Grace       time.Duration // after Duration, for started sessions to finish
	Interval    time.Duration // timeline resolution; 0 picks one
	StartAt     time.Time     // wall-clock start (agents); zero: now
	SourceAddrs []netip.Addr  // local addresses to spread sessions over (none: the system's choice)
	Profile     string        // how the load was described, for the report

	// Progress, when set, is called every ProgressEvery (default 1s).
	Progress      func(Progress)
	ProgressEvery time.Duration

	// Transport replaces the tuned default transport (tests).
	Transport http.RoundTripper
}

// Progress is the live state of a run.
type Progress struct {
	Elapsed, Duration time.Duration
	Requests, Errors  int64
	Rate              float64 // requests per second since the last call
	InFlight, Users   int64
	Recent            Latency // the latest complete interval
	CapHits           int64
	Done              bool
}

func (c *Config) validate() error {
	if len(c.Mix) == 0 {
		return errors.New("no journey or scenario to run")
	}
	if (len(c.Plan) > 0) == (c.VUs > 0) {
		return errors.New("want either an arrival profile (open model) or virtual users (closed model)")
	}
	if c.Duration <= 0 {
		return errors.New("duration must be positive")
	}
	if len(c.SourceAddrs) > 0 && c.Connections > 0 {
		return errors.New("source addresses and a connection cap: pick one")
	}
	for _, w := range c.Mix {
		if c.Target == nil && w.Scenario.BaseURL == "" {
			return fmt.Errorf("scenario %s: no target: pass --target or set base_url", w.Scenario.Name)
		}
	}
	return nil
}

func (c *Config) defaults() {
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 10000
	}
	if c.Timeout <= 0 {
		c.Timeout = 30 * time.Second
	}
	if c.Grace <= 0 {
		c.Grace = c.Timeout
		for _, w := range c.Mix {
			if w.Scenario.drop != nil {
				// A drop's line can last long; the run still ends as
				// soon as every buyer has had a final answer.
				c.Grace = max(c.Grace, time.Hour)
			}
		}
	}
	if c.Interval <= 0 {
		c.Interval = time.Second
		if c.Duration > 10*time.Minute {
			c.Interval = (c.Duration / 600).Round(time.Second)
		}
	}
	if c.ProgressEvery <= 0 {
		c.ProgressEvery = time.Second
	}
}

// NewTransport is the generator's HTTP transport: keep-alive connections
// reused across sessions, no compression (the generator should not spend
// CPU inflating bodies it discards), at most conns connections per host
// when conns > 0, like wrk's connection count.
func NewTransport(conns, maxInFlight int, timeout time.Duration) *http.Transport {
	return newTransport(conns, maxInFlight, timeout, netip.Addr{})
}

// newTransport is NewTransport with connections from the local address
// from, when it is valid.
func newTransport(conns, maxInFlight int, timeout time.Duration, from netip.Addr) *http.Transport {
	idle := maxInFlight
	if conns > 0 {
		idle = conns
	}
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	if from.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: from.AsSlice()}
	}
	return &http.Transport{
		DialContext:           d.DialContext,
		MaxIdleConns:          0,
		MaxIdleConnsPerHost:   idle,
		MaxConnsPerHost:       conns,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
		ResponseHeaderTimeout: timeout,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

type engine struct {
	cfg       Config
	stepIndex [][]int // stat index of each scenario's steps
	weights   []int   // cumulative
	urls      [][]string
	static    [][]*http.Request // prebuilt requests for plain static steps
	raw       [][]*rawClient    // the lean client, with --connections
	pools     map[string]*rawPool
	tr        http.RoundTripper
	sources   []http.RoundTripper // one per source address; sessions take turns
	fastRT    bool                // tr is our own transport with ResponseHeaderTimeout
	plain     *http.Client
	rec       *recorder
	start     time.Time
	end       time.Time
	graceEnd  time.Time

	sem  chan struct{}
	mu   sync.Mutex
	q    eventQueue
	wake chan struct{}

	running, inFlight, users atomic.Int64
	sessions, completed      atomic.Int64
	capHits, dropped         atomic.Int64
	resent                   atomic.Int64
	nextSession              atomic.Int64

	buyers   atomic.Int64 // sessions of the drop journey
	outcomes [numDropOutcomes]atomic.Int64
	units    atomic.Int64 // bought by drop buyers
	// When, in nanoseconds since the start, a buyer was first admitted,
	// the last one bought, and the first one heard "sold out" (0: not yet).
	firstAdmit, lastSale, firstSoldOut atomic.Int64
	placesMu                           sync.Mutex
	places                             []Place

	// The site's waiting line, when the scenarios follow one: its
	// figures, and the stat its page's requests are recorded under.
	line    *lineAcc
	lineIdx int

	reqCtx    context.Context
	cancelReq context.CancelFunc
	wg        sync.WaitGroup
}

type session struct {
	sc     int // index into Mix
	step   int
	vu     int // closed model: the user; -1 in the open model
	vars   map[string]string
	client *http.Client
	buf    bytes.Buffer

	// A drop buyer's next step and the pause before it, or its outcome,
	// as dropAnswer decided.
	next    int
	pause   time.Duration
	outcome dropOutcome
	// transient marks the last failure as one a person would retry (no
	// answer, or a 5xx); retries counts the drop buyer's retries so far.
	transient bool
	retries   int
	// addRetried: an add to cart failed without an answer and was sent
	// again, so the first may have gone through.
	addRetried bool
	// The buyer's way into the line: when its join was answered, whether
	// into the pre-queue, the place it learnt, and whether the last
	// answer admitted it.
	joinAt   time.Time
	preQueue bool
	position uint64
	admitted bool

	// line is the session's way through the site's waiting line.
	line lineState
}

type event struct {
	due time.Time
	s   *session // nil: closed-model user vu starts a visit
	vu  int
}

type eventQueue []event

func (q eventQueue) Len() int           { return len(q) }
func (q eventQueue) Less(i, j int) bool { return q[i].due.Before(q[j].due) }
func (q eventQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)        { *q = append(*q, x.(event)) }
func (q *eventQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

// Run performs a load test and returns what it measured. Cancelling ctx
// stops it early; the partial result is still returned.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.defaults()
	e := &engine{cfg: cfg, sem: make(chan struct{}, cfg.MaxInFlight), wake: make(chan struct{}, 1)}
	var names []string
	multi := len(cfg.Mix) > 1
	total := 0
	for _, w := range cfg.Mix {
		var idx []int
		var urls []string
		for _, st := range w.Scenario.Steps {
			name := st.Name
			if multi {
				name = w.Scenario.Name + "/" + st.Name
			}
			idx = append(idx, len(names))
			names = append(names, name)
			u := ""
			if st.url.isStatic() {
				u = e.resolve(w.Scenario, st.url.static)
			}
			urls = append(urls, u)
		}
		e.stepIndex = append(e.stepIndex, idx)
		e.urls = append(e.urls, urls)
		total += w.Weight
		e.weights = append(e.weights, total)
	}
	if total <= 0 {
		return nil, errors.New("the journey mix has no positive weight")
	}
	for _, w := range cfg.Mix {
		if ln := w.Scenario.Line; ln != nil && e.line == nil {
			e.line, e.lineIdx = newLineAcc(ln.Path), len(names)
			names = append(names, lineStat)
		}
	}
	if cfg.Transport != nil {
		e.tr = cfg.Transport
	} else {
		tr := NewTransport(cfg.Connections, cfg.MaxInFlight, cfg.Timeout)
		defer tr.CloseIdleConnections()
		e.tr, e.fastRT = tr, true
	}
	for _, a := range cfg.SourceAddrs {
		tr := newTransport(0, cfg.MaxInFlight, cfg.Timeout, a)
		defer tr.CloseIdleConnections()
		e.sources = append(e.sources, tr)
	}
	e.plain = &http.Client{Transport: e.tr, Timeout: cfg.Timeout}

	if !cfg.StartAt.IsZero() {
		select {
		case <-time.After(time.Until(cfg.StartAt)):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	e.start = time.Now()
	e.end = e.start.Add(cfg.Duration)
	e.graceEnd = e.end.Add(cfg.Grace)
	e.rec = newRecorder(names, e.start, cfg.Interval)
	if multi {
		for i, w := range cfg.Mix {
			for range e.stepIndex[i] {
				e.rec.journeyOf = append(e.rec.journeyOf, w.Scenario.Name)
			}
		}
		if e.line != nil {
			e.rec.journeyOf = append(e.rec.journeyOf, lineStat)
		}
	}
	e.reqCtx, e.cancelReq = context.WithCancel(context.Background())
	defer e.cancelReq()
	if err := e.prebuild(); err != nil {
		return nil, err
	}
	defer func() {
		for _, p := range e.pools {
			p.close()
		}
	}()

	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go e.sample(stopSampling, sampled)

	aborted := e.dispatch(ctx)
	e.cancelReq()
	e.wg.Wait()
	close(stopSampling)
	<-sampled

	r := e.rec.result()
	r.Model = "open"
	if cfg.VUs > 0 {
		r.Model = "closed"
	}
	if cfg.Target != nil {
		r.Target = cfg.Target.String()
	} else {
		r.Target = cfg.Mix[0].Scenario.BaseURL
	}
	r.Profile = cfg.Profile
	r.Duration = cfg.Duration.Seconds()
	if len(cfg.Plan) > 0 {
		r.Planned = cfg.Plan.Count()
	}
	r.Sessions = e.sessions.Load()
	r.Completed = e.completed.Load()
	r.MaxInFlight = cfg.MaxInFlight
	r.CapHits = e.capHits.Load()
	r.Dropped = e.dropped.Load()
	r.Resent = e.resent.Load()
	r.Drop = e.dropResult()
	if e.line != nil {
		r.Line = e.line.result()
	}
	for _, w := range cfg.Mix {
		r.Journeys = append(r.Journeys, w.Scenario.Name)
	}
	if aborted {
		return r, ctx.Err()
	}
	return r, nil
}

// resolve makes a step URL absolute against the target (or the scenario's
// base_url). An empty URL is the target itself.
func (e *engine) resolve(sc *Scenario, u string) string {
	if strings.HasPrefix(u, "http://") || strings.HasPrefix(u, "https://") {
		return u
	}
	base := sc.BaseURL
	if e.cfg.Target != nil {
		base = e.cfg.Target.String()
	}
	if u == "" {
		return base
	}
	return strings.TrimSuffix(base, "/") + "/" + strings.TrimPrefix(u, "/")
}

// prebuild makes one request per static step of a cookie-less scenario:
// those are sent as they are, again and again, with no allocation for the
// request itself.
func (e *engine) prebuild() error {
	e.static = make([][]*http.Request, len(e.cfg.Mix))
	e.raw = make([][]*rawClient, len(e.cfg.Mix))
	// With a fixed connection count and nothing but plain requests, the
	// lean HTTP/1.1 client sends them all; mixing it with net/http would
	// break the connection cap.
	useRaw := e.cfg.Connections > 0 && e.fastRT && len(e.sources) == 0
	for i, w := range e.cfg.Mix {
		for j, st := range w.Scenario.Steps {
			useRaw = useRaw && !w.Scenario.Cookies && w.Scenario.Line == nil && rawEligible(st, e.urls[i][j])
		}
	}
	if useRaw {
		e.pools = map[string]*rawPool{}
		newPool := func(addr string) *rawPool { return newRawPool(e.reqCtx, addr, e.cfg.Connections, e.cfg.Timeout) }
		for i, w := range e.cfg.Mix {
			e.raw[i] = make([]*rawClient, len(w.Scenario.Steps))
			for j, st := range w.Scenario.Steps {
				e.raw[i][j] = newRawClient(e.pools, newPool, st, e.urls[i][j])
			}
		}
		return nil
	}
	for i, w := range e.cfg.Mix {
		e.static[i] = make([]*http.Request, len(w.Scenario.Steps))
		if w.Scenario.Cookies || w.Scenario.Line != nil || !e.fastRT || len(e.sources) > 0 {
			continue
		}
		for j, st := range w.Scenario.Steps {
			if st.body != nil || !st.url.isStatic() {
				continue
			}
			plain := true
			for _, h := range st.headers {
				plain = plain && h.value.isStatic()
			}
			if !plain {
				continue
			}
			req, err := http.NewRequestWithContext(e.reqCtx, st.Method, e.urls[i][j], nil)
			if err != nil {
				return fmt.Errorf("step %s: %w", st.Name, err)
			}
			for _, h := range st.headers {
				req.Header.Set(h.name, h.value.static)
			}
			e.static[i][j] = req
		}
	}
	return nil
}

func (e *engine) signal() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

func (e *engine) push(ev event) {
	e.mu.Lock()
	heap.Push(&e.q, ev)
	e.mu.Unlock()
	e.signal()
}

// dispatch starts every session and step when it is due, until the plan is
// done and every started session finished, or the grace period ran out.
// It reports whether ctx cancelled the run.
func (e *engine) dispatch(ctx context.Context) (aborted bool) {
	var arr *Arrivals
	var nextOff time.Duration
	haveArr := false
	if len(e.cfg.Plan) > 0 {
		arr = e.cfg.Plan.Arrivals()
		nextOff, haveArr = arr.Next()
		haveArr = haveArr && nextOff < e.cfg.Duration
	} else {
		// Spread the users' first visits over one think time, so a closed
		// model does not start with every user at the same instant.
		spread := min(e.cfg.Think.Max, e.cfg.Duration)
		e.mu.Lock()
		for vu := range e.cfg.VUs {
			off := time.Duration(0)
			if spread > 0 {
				off = spread * time.Duration(vu) / time.Duration(e.cfg.VUs)
			}
			e.q = append(e.q, event{due: e.start.Add(off), vu: vu})
		}
		heap.Init(&e.q)
		e.mu.Unlock()
	}
	graceTimer := time.NewTimer(time.Until(e.graceEnd))
	defer graceTimer.Stop()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	held := false // a slot of the in-flight cap, acquired for the next due item
	defer func() {
		if held {
			<-e.sem
		}
	}()
	for {
		var due time.Time
		fromArr := false
		if haveArr {
			due, fromArr = e.start.Add(nextOff), true
		}
		e.mu.Lock()
		if len(e.q) > 0 && (!fromArr || e.q[0].due.Before(due)) {
			due, fromArr = e.q[0].due, false
		}
		empty := !haveArr && len(e.q) == 0
		e.mu.Unlock()

		if empty {
			if e.running.Load() == 0 {
				return false
			}
			select {
			case <-e.wake:
			case <-graceTimer.C:
				return false
			case <-ctx.Done():
				return true
			}
			continue
		}
		now := time.Now()
		if wait := due.Sub(now); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-e.wake:
				timer.Stop() // since Go 1.23 no stale tick can follow
			case <-graceTimer.C:
				e.drop(arr, haveArr, nextOff)
				return false
			case <-ctx.Done():
				return true
			}
			continue
		}
		if !held {
			select {
			case e.sem <- struct{}{}:
			default:
				e.capHits.Add(1)
				select {
				case e.sem <- struct{}{}:
				case <-graceTimer.C:
					e.drop(arr, haveArr, nextOff)
					return false
				case <-ctx.Done():
					return true
				}
			}
			held = true
			continue // something earlier may have become due meanwhile
		}
		var s *session
		if fromArr {
			s = e.newSession(-1)
			e.users.Add(1)
			nextOff, haveArr = arr.Next()
			haveArr = haveArr && nextOff < e.cfg.Duration
		} else {
			e.mu.Lock()
			ev := heap.Pop(&e.q).(event)
			e.mu.Unlock()
			s = ev.s
			if s == nil {
				if ev.due.After(e.end) {
					continue // the window closed while the user was thinking
				}
				s = e.newSession(ev.vu)
			}
		}
		held = false
		e.running.Add(1)
		e.wg.Add(1)
		go e.runSession(s, due)
	}
}

// drop accounts for arrivals that were due but never sent because the cap
// held until the grace period ran out: each is recorded as a failed first
// step with the latency it had reached, so the cap cannot hide slowness.
func (e *engine) drop(arr *Arrivals, haveArr bool, nextOff time.Duration) {
	now := time.Now()
	for haveArr && nextOff < e.cfg.Duration {
		due := e.start.Add(nextOff)
		sc := e.pick()
		e.rec.record(e.stepIndex[sc][0], due, now, now, 0, "not sent: max in-flight", 0)
		e.dropped.Add(1)
		nextOff, haveArr = arr.Next()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, ev := range e.q {
		if ev.s == nil || ev.due.After(now) {
			continue
		}
		e.rec.record(e.stepIndex[ev.s.sc][ev.s.step], ev.due, now, now, 0, "not sent: max in-flight", 0)
		e.dropped.Add(1)
	}
	e.q = nil
}

func (e *engine) pick() int {
	n := rand.IntN(e.weights[len(e.weights)-1])
	for i, w := range e.weights {
		if n < w {
			return i
		}
	}
	return 0
}

func (e *engine) newSession(vu int) *session {
	sc := e.pick()
	id := e.nextSession.Add(1)
	e.sessions.Add(1)
	s := &session{sc: sc, vu: vu}
	scn := e.cfg.Mix[sc].Scenario
	tr := e.tr
	if len(e.sources) > 0 {
		tr = e.sources[int(id%int64(len(e.sources)))]
	}
	switch {
	case scn.drop != nil:
		e.buyers.Add(1)
		s.client = &http.Client{Transport: tr, Jar: &buyerJar{}, Timeout: e.cfg.Timeout}
	case scn.Cookies:
		jar, _ := cookiejar.New(nil)
		s.client = &http.Client{Transport: tr, Jar: jar, Timeout: e.cfg.Timeout}
	case len(e.sources) > 0:
		s.client = &http.Client{Transport: tr, Timeout: e.cfg.Timeout}
	}
	needVars := false
	for _, st := range scn.Steps {
		needVars = needVars || !st.url.isStatic() || st.body != nil || len(st.extract) > 0
	}
	if needVars {
		s.vars = make(map[string]string, len(scn.vars)+4)
		for k, v := range scn.vars {
			s.vars[k] = v
		}
		s.vars["session"] = strconv.FormatInt(id, 10)
		s.vars["vu"] = strconv.Itoa(vu)
		s.vars["base_url"] = e.resolve(scn, "")
		if scn.drop != nil {
			// One key and one body for the buyer's checkout, kept across
			// retries: a retry with another body would be a misuse of the
			// key (422), not a replay.
			s.vars["idem"] = newUUID()
			s.vars["email"] = fmt.Sprintf("load+%016x@example.com", rand.Uint64())
		}
	}
	return s
}

// runSession runs steps of s from intended on, in this goroutine while no
// think time separates them, and queues the rest.
func (e *engine) runSession(s *session, intended time.Time) {
	defer func() {
		<-e.sem
		e.running.Add(-1)
		e.wg.Done()
		e.signal()
	}()
	for {
		st := e.cfg.Mix[s.sc].Scenario.Steps[s.step]
		ok := e.do(s, st, intended)
		now := time.Now()
		more, think := e.advance(s, st, ok)
		if more {
			if think > 0 {
				e.push(event{due: now.Add(think), s: s})
				return
			}
			if e.reqCtx.Err() != nil {
				return
			}
			intended = now
			continue
		}
		// The visit is over.
		if ok {
			e.completed.Add(1)
		}
		if e.line != nil {
			e.lineVisitOver(s, ok)
		}
		if s.vu < 0 {
			e.users.Add(-1)
			return
		}
		if now.After(e.end) || e.reqCtx.Err() != nil {
			return
		}
		if think := e.cfg.Think.Pick(); think > 0 {
			e.push(event{due: now.Add(think), vu: s.vu})
			return
		}
		s = e.newSession(s.vu)
		intended = now
	}
}

// advance moves s on after step st answered (ok: it passed its checks):
// it reports whether the visit goes on, and the pause before the next
// step. A visit that ends ok has completed.
func (e *engine) advance(s *session, st *Step, ok bool) (more bool, think time.Duration) {
	steps := e.cfg.Mix[s.sc].Scenario.Steps
	if e.cfg.Mix[s.sc].Scenario.drop == nil {
		switch {
		case ok && s.line.url != "":
			// Held in the waiting line: the same step, from the line
			// page, when the page says to reload.
			return true, s.line.pause
		case ok && s.line.resend:
			s.line.resend = false
			return true, 0
		}
		s.step++
		if !ok || s.step >= len(steps) {
			return false, 0
		}
		return true, st.Think.Pick()
	}
	switch {
	case !ok && e.reqCtx.Err() != nil:
		// Cut off by the end of the run: unfinished, not an error.
		return false, 0
	case !ok && s.transient && s.retries < dropMaxRetries:
		// A buyer whose page failed to load presses reload: the same step
		// again, after a backoff (checkout keeps its idempotency key).
		s.retries++
		if s.step == dropAdd {
			s.addRetried = true
		}
		return true, jitter(dropRetryBackoff << min(s.retries-1, 4))
	case !ok:
		e.outcomes[dropFailed].Add(1)
		e.notePlace(s)
		return false, 0
	case s.outcome != dropGoingOn:
		e.outcomes[s.outcome].Add(1)
		now := int64(time.Since(e.start))
		switch s.outcome {
		case dropBought:
			e.units.Add(int64(e.cfg.Mix[s.sc].Scenario.drop.Quantity))
			for v := e.lastSale.Load(); now > v && !e.lastSale.CompareAndSwap(v, now); v = e.lastSale.Load() {
			}
		case dropSoldOut:
			setFirst(&e.firstSoldOut, now)
		}
		e.notePlace(s)
		return false, 0
	}
	if s.admitted {
		s.admitted = false
		setFirst(&e.firstAdmit, int64(time.Since(e.start)))
	}
	s.step = s.next
	return true, s.pause
}

// setFirst stores t in v unless an earlier time is there.
func setFirst(v *atomic.Int64, t int64) {
	t = max(t, 1) // 0 means unset
	for old := v.Load(); (old == 0 || t < old) && !v.CompareAndSwap(old, t); old = v.Load() {
	}
}

// notePlace keeps a finished buyer's way into the line, for the
// fairness report.
func (e *engine) notePlace(s *session) {
	if s.joinAt.IsZero() {
		return
	}
	p := Place{JoinS: s.joinAt.Sub(e.start).Seconds(), PreQueue: s.preQueue, Position: s.position, Bought: s.outcome == dropBought}
	e.placesMu.Lock()
	e.places = append(e.places, p)
	e.placesMu.Unlock()
}

// dropResult sums up the drop buyers; nil when the run had none.
func (e *engine) dropResult() *DropResult {
	n := e.buyers.Load()
	if n == 0 {
		return nil
	}
	d := &DropResult{
		Buyers: n, Bought: e.outcomes[dropBought].Load(), Units: e.units.Load(),
		SoldOut: e.outcomes[dropSoldOut].Load(), Closed: e.outcomes[dropClosed].Load(),
		Expired: e.outcomes[dropExpired].Load(), OverLimit: e.outcomes[dropOverLimit].Load(),
		Errors: e.outcomes[dropFailed].Load(),
	}
	d.FinalAnswers = d.Bought + d.SoldOut + d.Closed + d.Expired + d.OverLimit
	d.Unfinished = d.Buyers - d.FinalAnswers - d.Errors
	secs := func(v *atomic.Int64) float64 { return round(time.Duration(v.Load()).Seconds(), 6) }
	d.FirstAdmitS, d.LastSaleS, d.FirstSoldOutS = secs(&e.firstAdmit), secs(&e.lastSale), secs(&e.firstSoldOut)
	e.placesMu.Lock()
	d.Places = e.places
	e.placesMu.Unlock()
	return d
}

// maxBody bounds what a step reads into memory for checks and extraction.
const maxBody = 16 << 20

// do sends one step's request and records it. It reports whether the
// session may go on.
func (e *engine) do(s *session, st *Step, intended time.Time) bool {
	idx := e.stepIndex[s.sc][s.step]
	if e.raw[s.sc] != nil {
		return e.doRaw(e.raw[s.sc][s.step], st, idx, intended)
	}
	ln := e.cfg.Mix[s.sc].Scenario.Line
	req := e.static[s.sc][s.step]
	var err error
	switch {
	case ln != nil && s.line.url != "":
		// A reload of the line page the session is held on.
		idx = e.lineIdx
		req, err = http.NewRequestWithContext(e.reqCtx, http.MethodGet, s.line.url, nil)
		if err == nil {
			req.Header.Set("Accept", "text/html")
		}
	case req == nil:
		req, err = e.build(s, st)
	}
	if err != nil {
		now := time.Now()
		e.rec.record(idx, intended, now, now, 0, "build: "+err.Error(), 0)
		return false
	}
	sent := time.Now()
	e.inFlight.Add(1)
	send := e.plain.Do
	switch {
	case s.client != nil:
		send = s.client.Do
	case e.static[s.sc][s.step] != nil:
		send = e.tr.RoundTrip
	}
	resp, err := e.roundTrip(req, send)
	s.transient = false
	if err != nil {
		e.inFlight.Add(-1)
		now := time.Now()
		s.transient = e.reqCtx.Err() == nil
		e.rec.record(idx, intended, sent, now, 0, e.failureKind(err), 0)
		if ln != nil {
			e.lineFailed(s)
		}
		return false
	}
	var body []byte
	var n int64
	if st.needBody || len(st.extract) > 0 || ln != nil {
		body, err = io.ReadAll(io.LimitReader(resp.Body, maxBody))
		n = int64(len(body))
	} else {
		n, err = io.Copy(io.Discard, resp.Body)
	}
	resp.Body.Close()
	e.inFlight.Add(-1)
	done := time.Now()
	failure := ""
	if err == nil && ln != nil {
		switch e.lineAnswer(s, st, ln, resp, body, done) {
		case lineHeld, lineResend:
			e.line.polls.Add(1)
			e.rec.record(e.lineIdx, intended, sent, done, resp.StatusCode, "", n)
			return true
		case lineGaveUp:
			e.line.polls.Add(1)
			e.rec.record(e.lineIdx, intended, sent, done, resp.StatusCode, "", n)
			return false
		}
		// Let through: the answer is the step's.
		idx = e.stepIndex[s.sc][s.step]
	}
	if err != nil {
		failure = "body: " + e.failureKind(err)
		if ln != nil {
			e.lineFailed(s)
		}
	} else {
		failure = st.check.failure(resp.StatusCode, body)
	}
	if failure == "" && e.cfg.Mix[s.sc].Scenario.drop != nil {
		failure = dropAnswer(s, resp.StatusCode, resp.Header, body, st.Think.Pick())
	}
	if failure == "" {
		var jar http.CookieJar
		if s.client != nil {
			jar = s.client.Jar
		}
		for i := range st.extract {
			ex := &st.extract[i]
			v, err := ex.apply(resp, body, jar)
			if err != nil {
				failure = "extract " + ex.name + ": " + err.Error()
				break
			}
			s.vars[ex.name] = v
		}
	}
	s.transient = failure != "" && (err != nil || resp.StatusCode >= 500)
	e.rec.record(idx, intended, sent, done, resp.StatusCode, failure, n)
	return failure == ""
}

// maxResends is how many times a request is sent again on finding its
// kept-alive connection closed: two, as Chromium does (kMaxRetryAttempts
// in its HttpNetworkTransaction).
const maxResends = 2

// roundTrip sends req with send and, as browsers do, sends it again when
// the kept-alive connection it went out on turns out to have been closed
// by the server before any answer came. A server closes a connection it
// has kept idle long enough, or one the client opened but never used, and
// a client that picks that connection at the same moment finds it gone:
// nobody failed. Go's transport resends by itself only the requests it
// knows to be idempotent; browsers resend any request on a reused
// connection that got no answer, at most maxResends times, and the
// generator does so for the requests Go's transport leaves alone. Its
// resends are counted in Result.Resent; the transport's are not.
func (e *engine) roundTrip(req *http.Request, send func(*http.Request) (*http.Response, error)) (*http.Response, error) {
	if transportResends(req) {
		// No tracing on the requests plain static steps reuse: they go
		// out as they are, allocating nothing.
		return send(req)
	}
	// A client with a cookie jar adds the jar's cookies to the request it
	// is given; a resend starts from the request as it came.
	cookie := req.Header.Get("Cookie")
	try := req
	for n := 0; ; n++ {
		var reused, answered atomic.Bool
		trace := &httptrace.ClientTrace{
			GotConn:              func(i httptrace.GotConnInfo) { reused.Store(i.Reused) },
			GotFirstResponseByte: func() { answered.Store(true) },
		}
		resp, err := send(try.WithContext(httptrace.WithClientTrace(req.Context(), trace)))
		if err == nil || n == maxResends || !reused.Load() || answered.Load() || e.reqCtx.Err() != nil || !staleConn(err) {
			return resp, err
		}
		try = req.Clone(req.Context())
		try.Header.Del("Cookie")
		if cookie != "" {
			try.Header.Set("Cookie", cookie)
		}
		if req.Body != nil && req.Body != http.NoBody {
			if req.GetBody == nil {
				return resp, err
			}
			body, gerr := req.GetBody()
			if gerr != nil {
				return resp, err
			}
			try.Body = body
		}
		e.resent.Add(1)
	}
}

// transportResends reports whether Go's transport itself sends req again
// on a kept-alive connection found closed (net/http's isReplayable): a
// rewindable body and an idempotent method or an Idempotency-Key header.
func transportResends(r *http.Request) bool {
	if r.Body != nil && r.Body != http.NoBody && r.GetBody == nil {
		return false
	}
	switch r.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	_, key := r.Header["Idempotency-Key"]
	_, xkey := r.Header["X-Idempotency-Key"]
	return key || xkey
}

// staleConn reports whether err is what a request meets on a connection
// the server has closed: end of stream, a reset, or a broken pipe.
func staleConn(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func (e *engine) doRaw(rc *rawClient, st *Step, idx int, intended time.Time) bool {
	sent := time.Now()
	e.inFlight.Add(1)
	status, n, err := rc.do(e.reqCtx)
	e.inFlight.Add(-1)
	done := time.Now()
	failure := ""
	if err != nil {
		failure = e.failureKind(err)
	} else {
		failure = st.check.failure(status, nil)
	}
	e.rec.record(idx, intended, sent, done, status, failure, n)
	return failure == ""
}

func (e *engine) build(s *session, st *Step) (*http.Request, error) {
	u, err := st.url.render(&s.buf, s.vars)
	if err != nil {
		return nil, fmt.Errorf("url: %v", err)
	}
	if !st.url.isStatic() {
		u = e.resolve(e.cfg.Mix[s.sc].Scenario, u)
	} else {
		u = e.urls[s.sc][s.step]
	}
	var body io.Reader
	if st.body != nil {
		b, err := st.body.render(&s.buf, s.vars)
		if err != nil {
			return nil, fmt.Errorf("body: %v", err)
		}
		body = strings.NewReader(b)
	}
	req, err := http.NewRequestWithContext(e.reqCtx, st.Method, u, body)
	if err != nil {
		return nil, err
	}
	for _, h := range st.headers {
		v, err := h.value.render(&s.buf, s.vars)
		if err != nil {
			return nil, fmt.Errorf("header %s: %v", h.name, err)
		}
		req.Header.Set(h.name, v)
	}
	return req, nil
}

// failureKind names a transport error in a few words, so failures group.
func (e *engine) failureKind(err error) string {
	var ne net.Error
	switch {
	case e.reqCtx.Err() != nil:
		return interruptMsg
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "connection reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed"
	case errors.Is(err, syscall.EADDRNOTAVAIL), errors.Is(err, syscall.EMFILE):
		return "generator out of sockets"
	}
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		msg = msg[i+2:]
	}
	if len(msg) > 60 {
		msg = msg[:60]
	}
	return msg
}

// sample records the gauges and drives the progress callback.
func (e *engine) sample(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	lastProgress := e.start
	var lastRequests int64
	report := func(now time.Time, final bool) {
		req, errs, recent := e.rec.snapshot(now)
		dt := now.Sub(lastProgress).Seconds()
		rate := 0.0
		if dt > 0 {
			rate = float64(req-lastRequests) / dt
		}
		if final {
			rate = float64(req) / max(now.Sub(e.start).Seconds(), e.cfg.Duration.Seconds())
		}
		lastProgress, lastRequests = now, req
		e.cfg.Progress(Progress{
			Elapsed: now.Sub(e.start), Duration: e.cfg.Duration, Requests: req, Errors: errs,
			Rate: rate, InFlight: e.inFlight.Load(), Users: e.usersNow(), Recent: recent,
			CapHits: e.capHits.Load(), Done: final,
		})
	}
	for {
		select {
		case now := <-tick.C:
			e.rec.sample(now, e.usersNow(), e.inFlight.Load())
			if e.cfg.Progress != nil && now.Sub(lastProgress) >= e.cfg.ProgressEvery {
				report(now, false)
			}
		case <-stop:
			if e.cfg.Progress != nil {
				report(time.Now(), true)
			}
			return
		}
	}
}

// usersNow is the number of users in the system: sessions alive in the
// open model; users that are running or thinking in the closed one.
func (e *engine) usersNow() int64 {
	if e.cfg.VUs == 0 {
		return e.users.Load()
	}
	e.mu.Lock()
	n := len(e.q)
	e.mu.Unlock()
	// A user between visits can be seen both running and queued for an
	// instant; there are never more than VUs.
	return min(e.running.Load()+int64(n), int64(e.cfg.VUs))
}
