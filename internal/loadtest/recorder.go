package loadtest

import (
	"strconv"
	"sync"
	"time"
)

// maxFailureKinds bounds the distinct failure messages kept per step, so a
// target that returns a new error text each time cannot grow memory.
const maxFailureKinds = 32

// stepAcc accumulates one step. Status codes go to an array so the hot
// path never allocates a map key.
type stepAcc struct {
	stats    *Stats
	statuses [600]int64
	other    int64 // status codes outside 0..599
}

func (a *stepAcc) add(lat time.Duration, status int, failure string, bytes int64) {
	s := a.stats
	s.Requests++
	s.Bytes += bytes
	s.Hist.Record(lat)
	if status >= 0 && status < len(a.statuses) {
		a.statuses[status]++
	} else {
		a.other++
	}
	if failure != "" {
		s.Errors++
		if _, ok := s.Failures[failure]; !ok && len(s.Failures) >= maxFailureKinds {
			failure = "other"
		}
		s.Failures[failure]++
	}
}

func (a *stepAcc) finish() *Stats {
	for code, n := range a.statuses {
		if n > 0 {
			key := strconv.Itoa(code)
			if code == 0 {
				key = "none" // no response: connection error, timeout, not sent
			}
			a.stats.Statuses[key] = n
		}
	}
	if a.other > 0 {
		a.stats.Statuses["other"] = a.other
	}
	a.stats.Latency = a.stats.Hist.Summary()
	return a.stats
}

// recorder collects every measurement of a run. One mutex guards it: a
// record is a few array increments and three histogram updates, far
// cheaper than the request it measures.
type recorder struct {
	mu       sync.Mutex
	start    time.Time
	interval time.Duration
	steps    []*stepAcc
	total    *stepAcc
	service  *Histogram
	lag      *Histogram
	points   []*Point
	last     time.Time // latest response
	peak     int64

	// journeyOf maps each step to its journey's name when the run mixes
	// several journeys; nil otherwise.
	journeyOf []string
}

func newRecorder(stepNames []string, start time.Time, interval time.Duration) *recorder {
	r := &recorder{start: start, interval: interval, total: &stepAcc{stats: newStats("total")},
		service: NewHistogram(), lag: NewHistogram()}
	for _, n := range stepNames {
		r.steps = append(r.steps, &stepAcc{stats: newStats(n)})
	}
	return r
}

// point returns the timeline interval containing t; r.mu must be held.
func (r *recorder) point(t time.Time) *Point {
	i := int(t.Sub(r.start) / r.interval)
	if i < 0 {
		i = 0
	}
	for len(r.points) <= i {
		n := len(r.points)
		r.points = append(r.points, &Point{T: (time.Duration(n) * r.interval).Seconds(), Hist: newPointHistogram()})
	}
	return r.points[i]
}

// record adds one request. Latency runs from intended, the time the request
// was due, so time spent waiting for the generator or for a connection is
// part of it; service time (from sent) is kept only as a diagnostic.
// A request that was never sent has sent == done.
func (r *recorder) record(step int, intended, sent, done time.Time, status int, failure string, bytes int64) {
	lat := done.Sub(intended)
	r.mu.Lock()
	r.steps[step].add(lat, status, failure, bytes)
	r.total.add(lat, status, failure, bytes)
	if sent != done || status != 0 {
		r.service.Record(done.Sub(sent))
		r.lag.Record(sent.Sub(intended))
	}
	p := r.point(done)
	p.Requests++
	if failure != "" {
		p.Errors++
	}
	if status == 0 || status >= 500 {
		p.ServerErrors++
	}
	p.Hist.Record(lat)
	if r.journeyOf != nil {
		name := r.journeyOf[step]
		h := p.Journeys[name]
		if h == nil {
			if p.Journeys == nil {
				p.Journeys = map[string]*Histogram{}
			}
			h = newPointHistogram()
			p.Journeys[name] = h
		}
		h.Record(lat)
	}
	if done.After(r.last) {
		r.last = done
	}
	r.mu.Unlock()
}

// sample notes the gauges in the current interval.
func (r *recorder) sample(now time.Time, users, inFlight int64) {
	r.mu.Lock()
	p := r.point(now)
	p.Users = max(p.Users, users)
	p.InFlight = max(p.InFlight, inFlight)
	r.peak = max(r.peak, inFlight)
	r.mu.Unlock()
}

// snapshot is what the live progress line shows.
func (r *recorder) snapshot(now time.Time) (requests, errors int64, recent Latency) {
	r.mu.Lock()
	defer r.mu.Unlock()
	requests, errors = r.total.stats.Requests, r.total.stats.Errors
	// The latest complete interval, or the current one at the very start.
	i := int(now.Sub(r.start)/r.interval) - 1
	if i >= len(r.points) {
		i = len(r.points) - 1
	}
	if i < 0 && len(r.points) > 0 {
		i = 0
	}
	if i >= 0 && i < len(r.points) {
		recent = r.points[i].Hist.Summary()
	}
	return requests, errors, recent
}

func (r *recorder) result() *Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	res := &Result{
		Started:  r.start,
		Interval: r.interval.Seconds(),
		Total:    r.total.finish(),
		Service:  r.service.Summary(),
		SendLag:  r.lag.Summary(),
	}
	for _, s := range r.steps {
		res.Steps = append(res.Steps, s.finish())
	}
	if !r.last.IsZero() {
		res.Elapsed = r.last.Sub(r.start).Seconds()
	}
	for _, p := range r.points {
		p.Latency = p.Hist.Summary()
	}
	res.Timeline = r.points
	res.PeakFlight = r.peak
	return res
}
