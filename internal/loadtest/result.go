package loadtest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latencies are recorded in microseconds from 1µs to one hour with three
// significant digits; the per-interval histograms of the timeline keep two
// digits, which is plenty for a chart and ten times smaller.
const (
	histMax     = int64(time.Hour / time.Microsecond)
	histDigits  = 3
	pointDigits = 2
)

// interruptMsg is the failure of requests cut when the grace period ends.
const interruptMsg = "interrupted"

// Histogram is an HdrHistogram of latencies in microseconds. In JSON it is
// the base64 of the standard compressed V2 encoding, so results from several
// agents (or runs) merge exactly.
type Histogram struct{ h *hdrhistogram.Histogram }

// NewHistogram returns an empty latency histogram.
func NewHistogram() *Histogram { return &Histogram{hdrhistogram.New(1, histMax, histDigits)} }

func newPointHistogram() *Histogram { return &Histogram{hdrhistogram.New(1, histMax, pointDigits)} }

// Record adds one latency.
func (h *Histogram) Record(d time.Duration) {
	v := int64(d / time.Microsecond)
	if v < 1 {
		v = 1
	}
	if v > histMax {
		v = histMax
	}
	_ = h.h.RecordValue(v)
}

// Count is the number of recorded values.
func (h *Histogram) Count() int64 {
	if h == nil || h.h == nil {
		return 0
	}
	return h.h.TotalCount()
}

// Quantile returns the latency at q (0..100, as in 99.9).
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.Count() == 0 {
		return 0
	}
	if q >= 100 {
		return time.Duration(h.h.Max()) * time.Microsecond
	}
	return time.Duration(h.h.ValueAtPercentile(q)) * time.Microsecond
}

// Mean is the mean recorded latency.
func (h *Histogram) Mean() time.Duration {
	if h.Count() == 0 {
		return 0
	}
	return time.Duration(h.h.Mean() * float64(time.Microsecond))
}

// Merge adds every value of o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.Count() > 0 {
		h.h.Merge(o.h)
	}
}

// Clone returns a copy of h.
func (h *Histogram) Clone() *Histogram { return &Histogram{h.h.Clone()} }

// MarshalJSON encodes the histogram as base64 of its V2 compressed form.
func (h *Histogram) MarshalJSON() ([]byte, error) {
	b, err := h.h.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
	if err != nil {
		return nil, err
	}
	return json.Marshal(base64.StdEncoding.EncodeToString(b))
}

// UnmarshalJSON decodes what MarshalJSON wrote.
func (h *Histogram) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return fmt.Errorf("histogram: %w", err)
	}
	hh, err := hdrhistogram.Decode(raw)
	if err != nil {
		return fmt.Errorf("histogram: %w", err)
	}
	h.h = hh
	return nil
}

// Latency is a summary of a histogram in milliseconds, for people and charts.
type Latency struct {
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P95  float64 `json:"p95_ms"`
	P99  float64 `json:"p99_ms"`
	P999 float64 `json:"p99_9_ms"`
	Max  float64 `json:"max_ms"`
	Mean float64 `json:"mean_ms"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Summary computes the Latency summary of h.
func (h *Histogram) Summary() Latency {
	return Latency{
		P50: ms(h.Quantile(50)), P90: ms(h.Quantile(90)), P95: ms(h.Quantile(95)),
		P99: ms(h.Quantile(99)), P999: ms(h.Quantile(99.9)), Max: ms(h.Quantile(100)),
		Mean: ms(h.Mean()),
	}
}

// Stats are the counts and latencies of one step, or of all steps.
// Latency is measured from the intended send time, not from when the
// request actually left, so queueing in the generator or the target counts.
type Stats struct {
	Name     string           `json:"name"`
	Requests int64            `json:"requests"`
	Errors   int64            `json:"errors"`
	Bytes    int64            `json:"bytes"`
	Statuses map[string]int64 `json:"statuses,omitempty"`
	Failures map[string]int64 `json:"failures,omitempty"`
	Latency  Latency          `json:"latency"`
	Hist     *Histogram       `json:"histogram"`
}

func newStats(name string) *Stats {
	return &Stats{Name: name, Statuses: map[string]int64{}, Failures: map[string]int64{}, Hist: NewHistogram()}
}

// ServerErrors counts the requests the server failed: a 5xx answer, a
// status outside HTTP's range, or no answer at all (timed out, reset,
// refused, never sent), as the SLO file counts them.
func (s *Stats) ServerErrors() int64 {
	var n int64
	for k, v := range s.Statuses {
		if k == "none" || k == "other" || strings.HasPrefix(k, "5") {
			n += v
		}
	}
	return n
}

// StatusCount counts the answers with a status code ("503") or class
// ("5xx").
func (s *Stats) StatusCount(status string) int64 {
	if class, ok := strings.CutSuffix(status, "xx"); ok {
		var n int64
		for k, v := range s.Statuses {
			if len(k) == 3 && strings.HasPrefix(k, class) {
				n += v
			}
		}
		return n
	}
	return s.Statuses[status]
}

// ErrorRate is errors per request, 0..1.
func (s *Stats) ErrorRate() float64 {
	if s.Requests == 0 {
		return 0
	}
	return float64(s.Errors) / float64(s.Requests)
}

func (s *Stats) merge(o *Stats) {
	s.Requests += o.Requests
	s.Errors += o.Errors
	s.Bytes += o.Bytes
	for k, v := range o.Statuses {
		s.Statuses[k] += v
	}
	for k, v := range o.Failures {
		s.Failures[k] += v
	}
	if o.Hist != nil {
		s.Hist.Merge(o.Hist)
	}
	s.Latency = s.Hist.Summary()
}

// Point is one interval of the timeline.
type Point struct {
	T        float64 `json:"t"` // seconds from the start to the interval's start
	Requests int64   `json:"requests"`
	Errors   int64   `json:"errors"`
	// ServerErrors are the requests answered 5xx or not at all.
	ServerErrors int64      `json:"server_errors"`
	Users        int64      `json:"users"`     // most sessions alive at once
	InFlight     int64      `json:"in_flight"` // most requests in flight at once
	Latency      Latency    `json:"latency"`
	Hist         *Histogram `json:"histogram"`
	// Journeys holds each journey's latencies in the interval, by name,
	// when the run mixes several.
	Journeys map[string]*Histogram `json:"journeys,omitempty"`
}

// AgentSummary is what one agent contributed to a merged result.
type AgentSummary struct {
	Addr     string `json:"addr"`
	Requests int64  `json:"requests"`
	Errors   int64  `json:"errors"`
	Error    string `json:"error,omitempty"`
}

// Result is everything a run measured. Results of agents that ran the same
// test merge exactly with Merge.
type Result struct {
	Target   string    `json:"target"`
	Model    string    `json:"model"` // "open" or "closed"
	Profile  string    `json:"profile"`
	Started  time.Time `json:"started"`
	Duration float64   `json:"duration_s"` // planned
	Elapsed  float64   `json:"elapsed_s"`  // until the last response
	Interval float64   `json:"interval_s"` // timeline resolution

	Planned     int64 `json:"planned_arrivals,omitempty"`
	Sessions    int64 `json:"sessions"` // journeys started
	Completed   int64 `json:"completed"`
	MaxInFlight int   `json:"max_in_flight"` // the cap
	PeakFlight  int64 `json:"peak_in_flight"`
	CapHits     int64 `json:"cap_hits"` // arrivals delayed because the cap was reached
	Dropped     int64 `json:"dropped"`  // arrivals never sent (cap held past the grace period)
	// Resent counts requests sent a second time because the kept-alive
	// connection they went out on had been closed by the server before any
	// answer came (see engine.roundTrip). Each counts as one request. The
	// idempotent requests Go's transport resends by itself are not counted.
	Resent int64 `json:"resent,omitempty"`

	Total    *Stats         `json:"total"`
	Service  Latency        `json:"service_time"` // from actual send, for comparison only
	SendLag  Latency        `json:"send_lag"`     // actual minus intended send time
	Steps    []*Stats       `json:"steps"`
	Timeline []*Point       `json:"timeline"`
	Agents   []AgentSummary `json:"agents,omitempty"`
	Drop     *DropResult    `json:"drop,omitempty"` // how the drop journey's buyers ended
	Line     *LineResult    `json:"line,omitempty"` // how sessions fared in the site's waiting line

	Thresholds []ThresholdResult `json:"thresholds,omitempty"`
	// SLOs are the objectives of an SLO file judged on the run.
	SLOs []SLOResult `json:"slos,omitempty"`

	// Name and Description come from a scenario file; Scale and
	// TimeScale are the factors it ran at.
	Name        string  `json:"name,omitempty"`
	Description string  `json:"description,omitempty"`
	Scale       float64 `json:"scale,omitempty"`
	TimeScale   float64 `json:"time_scale,omitempty"`
	// Journeys names the journeys of the mix, in order.
	Journeys []string `json:"journeys,omitempty"`
	// Phases are named windows of the run thresholds can judge apart.
	Phases []Phase `json:"phases,omitempty"`
	// Server is what the server's own metrics said (--scrape); Probes
	// how its health endpoints answered. A failed probe fails the run.
	Server *ServerResult `json:"server,omitempty"`
	Probes []ProbeResult `json:"probes,omitempty"`
	Hooks  []HookResult  `json:"hooks,omitempty"`
	Checks []CheckResult `json:"checks,omitempty"`
	// MailJob is how the scenario's mail job went (a reminder section).
	MailJob *MailJobResult `json:"mail_job,omitempty"`
}

// Phase is a named window of a run, in seconds since the start.
type Phase struct {
	Name string  `json:"name"`
	From float64 `json:"from_s"`
	To   float64 `json:"to_s"`
}

// CheckResult is a verdict a rehearsal reaches on the shop itself after
// the run, such as the drop's units all sold and none twice.
type CheckResult struct {
	Name   string `json:"name"`
	Pass   bool   `json:"pass"`
	Detail string `json:"detail"`
}

// String is the check's verdict line.
func (c CheckResult) String() string {
	if c.Pass {
		return "pass  " + c.Name + ": " + c.Detail
	}
	return "FAIL  " + c.Name + ": " + c.Detail
}

func (r *Result) phase(name string) (Phase, bool) {
	for _, p := range r.Phases {
		if p.Name == name {
			return p, true
		}
	}
	return Phase{}, false
}

// PhaseStats is the stats of the named phase (see phaseStats).
func (r *Result) PhaseStats(name string) (*Stats, bool) {
	p, ok := r.phase(name)
	if !ok {
		return nil, false
	}
	return r.phaseStats(p), true
}

// phaseStats sums the timeline's intervals that lie within p (latency at
// the timeline's two significant digits).
func (r *Result) phaseStats(p Phase) *Stats {
	s := newStats(p.Name)
	s.Hist = newPointHistogram()
	for _, pt := range r.Timeline {
		if pt.T+1e-9 < p.From || pt.T >= p.To-1e-9 {
			continue
		}
		s.Requests += pt.Requests
		s.Errors += pt.Errors
		if pt.ServerErrors > 0 {
			s.Statuses["5xx or none"] += pt.ServerErrors
		}
		if pt.Hist != nil {
			s.Hist.Merge(pt.Hist)
		}
	}
	s.Latency = s.Hist.Summary()
	return s
}

// DropResult is how the buyers of a drop rehearsal ended. Every buyer
// that got a final answer (bought, sold out, closed, expired, over the
// limit) counts in FinalAnswers; a rehearsal went well when that is
// every buyer.
type DropResult struct {
	Buyers       int64 `json:"buyers"` // sessions of the drop journey
	FinalAnswers int64 `json:"final_answers"`
	Bought       int64 `json:"bought"` // orders placed
	Units        int64 `json:"units"`  // units in those orders
	SoldOut      int64 `json:"sold_out"`
	Closed       int64 `json:"closed"`
	Expired      int64 `json:"expired"`
	OverLimit    int64 `json:"over_limit"`
	Errors       int64 `json:"errors"`     // buyers stopped by a failed request
	Unfinished   int64 `json:"unfinished"` // still in line when the run ended

	// Allocated is the drop's units, when the rehearsal created the drop.
	Allocated int64 `json:"allocated,omitempty"`
	// StartS is the drop's start in seconds since the run's (when the
	// rehearsal created the drop); FirstAdmitS, LastSaleS and
	// FirstSoldOutS are when a buyer was first told admitted, when the
	// last order was placed, and when a buyer first heard "sold out".
	StartS        float64 `json:"start_s,omitempty"`
	FirstAdmitS   float64 `json:"first_admit_s,omitempty"`
	LastSaleS     float64 `json:"last_sale_s,omitempty"`
	FirstSoldOutS float64 `json:"first_sold_out_s,omitempty"`
	// Places are the buyers' joins and the places in line they were
	// given; Fairness is what they say about the draw.
	Places   []Place   `json:"places,omitempty"`
	Fairness *Fairness `json:"fairness,omitempty"`
}

// Place is one buyer's way into the line: when its join was answered
// (seconds since the run's start), whether it joined the pre-queue (the
// random draw at the start) and the place it got (0 if it never learnt
// it), and whether it bought.
type Place struct {
	JoinS    float64 `json:"t"`
	PreQueue bool    `json:"pre,omitempty"`
	Position uint64  `json:"pos,omitempty"`
	Bought   bool    `json:"bought,omitempty"`
}

// SellOutS is the time from the drop's start (or, when it is not known,
// the first admission) to its last sale; 0 if nothing sold.
func (d *DropResult) SellOutS() float64 {
	if d == nil || d.Bought == 0 {
		return 0
	}
	from := d.StartS
	if from == 0 {
		from = d.FirstAdmitS
	}
	return max(0, d.LastSaleS-from)
}

// Unanswered is the number of buyers without a final answer.
func (d *DropResult) Unanswered() int64 {
	if d == nil {
		return 0
	}
	return d.Buyers - d.FinalAnswers
}

func (d *DropResult) add(o *DropResult) {
	d.Buyers += o.Buyers
	d.FinalAnswers += o.FinalAnswers
	d.Bought += o.Bought
	d.Units += o.Units
	d.SoldOut += o.SoldOut
	d.Closed += o.Closed
	d.Expired += o.Expired
	d.OverLimit += o.OverLimit
	d.Errors += o.Errors
	d.Unfinished += o.Unfinished
	d.Allocated = max(d.Allocated, o.Allocated)
	d.StartS = max(d.StartS, o.StartS)
	d.FirstAdmitS = minSet(d.FirstAdmitS, o.FirstAdmitS)
	d.LastSaleS = max(d.LastSaleS, o.LastSaleS)
	d.FirstSoldOutS = minSet(d.FirstSoldOutS, o.FirstSoldOutS)
	d.Places = append(d.Places, o.Places...)
}

// minSet is the smaller of two times where 0 means not set.
func minSet(a, b float64) float64 {
	switch {
	case a == 0:
		return b
	case b == 0:
		return a
	}
	return min(a, b)
}

// Rate is the achieved requests per second over the planned duration (or
// the elapsed time when that is longer).
func (r *Result) Rate() float64 {
	d := max(r.Duration, r.Elapsed)
	if d <= 0 {
		return 0
	}
	return float64(r.Total.Requests) / d
}

// Passed reports whether every threshold held.
func (r *Result) Passed() bool {
	for _, t := range r.Thresholds {
		if !t.Pass {
			return false
		}
	}
	for _, s := range r.SLOs {
		if s.Verdict == SLOFail {
			return false
		}
	}
	for _, p := range r.Probes {
		if p.Failures > 0 || p.Checks == 0 {
			return false
		}
	}
	for _, h := range r.Hooks {
		if !h.Pass {
			return false
		}
	}
	for _, c := range r.Checks {
		if !c.Pass {
			return false
		}
	}
	return true
}

// Verdicts counts the failed verdicts (thresholds, SLOs, probes, hooks
// and checks) and all of them.
func (r *Result) Verdicts() (failed, total int) {
	count := func(ok bool) {
		total++
		if !ok {
			failed++
		}
	}
	for _, t := range r.Thresholds {
		count(t.Pass)
	}
	for _, s := range r.SLOs {
		count(s.Verdict != SLOFail)
	}
	for _, p := range r.Probes {
		count(p.Failures == 0 && p.Checks > 0)
	}
	for _, h := range r.Hooks {
		count(h.Pass)
	}
	for _, c := range r.Checks {
		count(c.Pass)
	}
	return failed, total
}

// Step returns the merged stats of the steps matching sel: the whole name
// ("browse/product"), or the step's own name ("product") across journeys.
// An empty sel is the total.
func (r *Result) Step(sel string) (*Stats, bool) {
	if sel == "" {
		return r.Total, true
	}
	var out *Stats
	for _, s := range r.Steps {
		if s.Name == sel || stepPart(s.Name) == sel {
			if out == nil {
				out = newStats(sel)
			}
			out.merge(s)
		}
	}
	return out, out != nil
}

func stepPart(name string) string {
	for i := len(name) - 1; i >= 0; i-- {
		if name[i] == '/' {
			return name[i+1:]
		}
	}
	return name
}

// Merge combines the results of agents that ran parts of one test: counts
// add up, histograms merge exactly, timelines merge interval by interval.
// Thresholds are not merged; evaluate them again on the merged result.
func Merge(rs ...*Result) *Result {
	if len(rs) == 0 {
		return nil
	}
	out := &Result{
		Target: rs[0].Target, Model: rs[0].Model, Profile: rs[0].Profile, Started: rs[0].Started,
		Duration: rs[0].Duration, Interval: rs[0].Interval, Total: newStats("total"), Journeys: rs[0].Journeys,
	}
	steps := map[string]*Stats{}
	var service, lag []Latency
	for _, r := range rs {
		if r.Started.Before(out.Started) {
			out.Started = r.Started
		}
		out.Elapsed = max(out.Elapsed, r.Elapsed)
		out.Planned += r.Planned
		out.Sessions += r.Sessions
		out.Completed += r.Completed
		out.MaxInFlight += r.MaxInFlight
		out.PeakFlight += r.PeakFlight
		out.CapHits += r.CapHits
		out.Dropped += r.Dropped
		out.Resent += r.Resent
		out.Total.merge(r.Total)
		if r.Drop != nil {
			if out.Drop == nil {
				out.Drop = &DropResult{}
			}
			out.Drop.add(r.Drop)
		}
		if r.Line != nil {
			if out.Line == nil {
				out.Line = &LineResult{}
			}
			out.Line.add(r.Line)
		}
		for _, s := range r.Steps {
			m, ok := steps[s.Name]
			if !ok {
				m = newStats(s.Name)
				steps[s.Name] = m
				out.Steps = append(out.Steps, m)
			}
			m.merge(s)
		}
		for i, p := range r.Timeline {
			for len(out.Timeline) <= i {
				n := len(out.Timeline)
				out.Timeline = append(out.Timeline, &Point{T: float64(n) * out.Interval, Hist: newPointHistogram()})
			}
			q := out.Timeline[i]
			q.Requests += p.Requests
			q.Errors += p.Errors
			q.ServerErrors += p.ServerErrors
			for name, h := range p.Journeys {
				if q.Journeys == nil {
					q.Journeys = map[string]*Histogram{}
				}
				if q.Journeys[name] == nil {
					q.Journeys[name] = newPointHistogram()
				}
				q.Journeys[name].Merge(h)
			}
			q.Users += p.Users
			q.InFlight += p.InFlight
			if p.Hist != nil {
				q.Hist.Merge(p.Hist)
			}
			q.Latency = q.Hist.Summary()
		}
		service = append(service, r.Service)
		lag = append(lag, r.SendLag)
	}
	// Service time and send lag are diagnostics without histograms in the
	// result; the merged value is the worst agent's.
	out.Service, out.SendLag = worst(service), worst(lag)
	return out
}

func worst(ls []Latency) Latency {
	var w Latency
	for _, l := range ls {
		w.P50, w.P90, w.P95 = max(w.P50, l.P50), max(w.P90, l.P90), max(w.P95, l.P95)
		w.P99, w.P999, w.Max = max(w.P99, l.P99), max(w.P999, l.P999), max(w.Max, l.Max)
		w.Mean = max(w.Mean, l.Mean)
	}
	return w
}

// SortedKeys returns the keys of a count map, highest count first.
func SortedKeys(m map[string]int64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	return keys
}
