package loadtest

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Segment is a stretch of an open-model profile during which the arrival
// rate changes linearly from From to To (arrivals per second). A constant
// rate has From == To.
type Segment struct {
	Dur  time.Duration `json:"dur"`
	From float64       `json:"from"`
	To   float64       `json:"to"`
}

// count is the number of arrivals the segment plans: the integral of its rate.
func (s Segment) count() float64 { return (s.From + s.To) / 2 * s.Dur.Seconds() }

// Plan is an open-model load profile: consecutive segments of arrival rate.
// Arrivals happen whatever the target does; a slow target cannot slow the
// plan down, which is what keeps the measurement honest.
type Plan []Segment

// Duration is the total length of the plan.
func (p Plan) Duration() time.Duration {
	var d time.Duration
	for _, s := range p {
		d += s.Dur
	}
	return d
}

// Count is the number of arrivals the plan schedules (rounded up, since
// arrival k happens when the cumulative count reaches k, counting from 0).
func (p Plan) Count() int64 {
	var c float64
	for _, s := range p {
		c += s.count()
	}
	return int64(math.Ceil(c - 1e-9))
}

// Scale returns the plan with every rate multiplied by f; the controller
// uses it to split a plan across agents.
func (p Plan) Scale(f float64) Plan {
	out := make(Plan, len(p))
	for i, s := range p {
		out[i] = Segment{s.Dur, s.From * f, s.To * f}
	}
	return out
}

// RateAt is the planned arrival rate at offset t.
func (p Plan) RateAt(t time.Duration) float64 {
	for _, s := range p {
		if t < s.Dur {
			return s.From + (s.To-s.From)*float64(t)/float64(s.Dur)
		}
		t -= s.Dur
	}
	return 0
}

// Arrivals returns an iterator over the plan's arrival offsets.
func (p Plan) Arrivals() *Arrivals { return &Arrivals{plan: p} }

// Arrivals walks the planned arrival times of a Plan in order. Arrival k
// (from 0) is due when the integral of the rate reaches k, so a constant
// 100/s plan sends at 0, 10ms, 20ms, ... and a ramp accelerates smoothly.
type Arrivals struct {
	plan     Plan
	seg      int
	segStart time.Duration
	segBase  float64 // cumulative arrivals before the current segment
	k        int64
}

// Next returns the offset from the start of the run at which the next
// arrival is due, and false when the plan is exhausted.
func (a *Arrivals) Next() (time.Duration, bool) {
	want := float64(a.k)
	for a.seg < len(a.plan) {
		s := a.plan[a.seg]
		c := want - a.segBase
		if n := s.count(); c >= n || s.Dur <= 0 {
			a.segBase += n
			a.segStart += s.Dur
			a.seg++
			continue
		}
		// Solve From*t + (To-From)/(2*Dur)*t^2 = c for t in [0, Dur) with the
		// form that stays stable when the quadratic term vanishes.
		d := s.Dur.Seconds()
		qa := (s.To - s.From) / (2 * d)
		qb := s.From
		disc := qb*qb + 4*qa*c
		if disc < 0 {
			disc = 0
		}
		den := qb + math.Sqrt(disc)
		var t float64
		if den > 0 {
			t = 2 * c / den
		}
		off := time.Duration(t * float64(time.Second))
		if off >= s.Dur {
			off = s.Dur - 1
		}
		a.k++
		return a.segStart + off, true
	}
	return 0, false
}

// ParseRate parses a rate in arrivals per second: "200" or "200/s", or
// per minute or hour with "12000/m" and "50000/h".
func ParseRate(s string) (float64, error) {
	num, unit, _ := strings.Cut(strings.TrimSpace(s), "/")
	r, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || r < 0 || math.IsInf(r, 0) || math.IsNaN(r) {
		return 0, fmt.Errorf("rate %q: want a non-negative number per second, like 200 or 12000/m", s)
	}
	switch strings.TrimSpace(unit) {
	case "", "s":
	case "m":
		r /= 60
	case "h":
		r /= 3600
	default:
		return 0, fmt.Errorf("rate %q: unit must be /s, /m or /h", s)
	}
	return r, nil
}

// ConstantPlan is a plan of rate arrivals per second for d.
func ConstantPlan(rate float64, d time.Duration) Plan {
	return Plan{{Dur: d, From: rate, To: rate}}
}

// ParseStages parses "10s:100,30s:1000,1m:1000": each stage ramps the rate
// linearly from the previous stage's target (0 at first) to its own over
// its duration. A zero-length stage ("0s:100") jumps straight to a rate.
func ParseStages(s string) (Plan, error) {
	var p Plan
	prev := 0.0
	for i, part := range strings.Split(s, ",") {
		ds, rs, ok := strings.Cut(strings.TrimSpace(part), ":")
		if !ok {
			return nil, fmt.Errorf("stage %d %q: want duration:rate, like 30s:1000", i+1, part)
		}
		d, err := time.ParseDuration(strings.TrimSpace(ds))
		if err != nil || d < 0 {
			return nil, fmt.Errorf("stage %d %q: bad duration %q", i+1, part, ds)
		}
		r, err := ParseRate(rs)
		if err != nil {
			return nil, fmt.Errorf("stage %d: %w", i+1, err)
		}
		if d > 0 {
			p = append(p, Segment{Dur: d, From: prev, To: r})
		}
		prev = r
	}
	if p.Duration() <= 0 {
		return nil, errors.New("stages: the total duration must be positive")
	}
	return p, nil
}

// keyValues parses "a=1,b=2" into a map, rejecting keys outside allowed.
func keyValues(what, s string, allowed ...string) (map[string]string, error) {
	out := map[string]string{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || v == "" {
			return nil, fmt.Errorf("%s: %q is not key=value", what, part)
		}
		known := false
		for _, a := range allowed {
			known = known || a == k
		}
		if !known {
			return nil, fmt.Errorf("%s: unknown key %q (want %s)", what, k, strings.Join(allowed, ", "))
		}
		out[k] = v
	}
	return out, nil
}

// ParseSpike parses "base=100,x=15,at=30s,hold=60s[,after=30s]": base rate
// until at, then a step to x times base held for hold, then base again for
// after. When after is missing it is total-at-hold if total > 0, else at.
func ParseSpike(s string, total time.Duration) (Plan, error) {
	kv, err := keyValues("spike", s, "base", "x", "at", "hold", "after")
	if err != nil {
		return nil, err
	}
	for _, k := range []string{"base", "x", "at", "hold"} {
		if kv[k] == "" {
			return nil, fmt.Errorf("spike: missing %s (want base=100,x=15,at=30s,hold=60s)", k)
		}
	}
	base, err := ParseRate(kv["base"])
	if err != nil {
		return nil, fmt.Errorf("spike: base: %w", err)
	}
	x, err := strconv.ParseFloat(kv["x"], 64)
	if err != nil || x < 0 {
		return nil, fmt.Errorf("spike: x=%q: want a non-negative multiplier", kv["x"])
	}
	at, err1 := time.ParseDuration(kv["at"])
	hold, err2 := time.ParseDuration(kv["hold"])
	if err1 != nil || err2 != nil || at < 0 || hold <= 0 {
		return nil, fmt.Errorf("spike: at=%q hold=%q: want durations, hold positive", kv["at"], kv["hold"])
	}
	after := at
	if v := kv["after"]; v != "" {
		if after, err = time.ParseDuration(v); err != nil || after < 0 {
			return nil, fmt.Errorf("spike: after=%q: want a duration", v)
		}
	} else if total > 0 {
		after = total - at - hold
		if after < 0 {
			return nil, fmt.Errorf("spike: at+hold (%s) is longer than the duration %s", at+hold, total)
		}
	}
	var p Plan
	if at > 0 {
		p = append(p, Segment{at, base, base})
	}
	p = append(p, Segment{hold, base * x, base * x})
	if after > 0 {
		p = append(p, Segment{after, base, base})
	}
	return p, nil
}

// ParseArrivals parses "n=10000,within=60s[,shape=uniform|front]": n users
// arrive within the window, evenly or front-loaded (the rate falls linearly
// from twice the average to zero, so half arrive in the first ~29%).
func ParseArrivals(s string) (Plan, error) {
	kv, err := keyValues("arrivals", s, "n", "within", "shape")
	if err != nil {
		return nil, err
	}
	n, err := strconv.ParseFloat(kv["n"], 64)
	if err != nil || n <= 0 {
		return nil, fmt.Errorf("arrivals: n=%q: want a positive number of users", kv["n"])
	}
	within, err := time.ParseDuration(kv["within"])
	if err != nil || within <= 0 {
		return nil, fmt.Errorf("arrivals: within=%q: want a positive duration", kv["within"])
	}
	avg := n / within.Seconds()
	switch kv["shape"] {
	case "", "uniform":
		return Plan{{within, avg, avg}}, nil
	case "front":
		return Plan{{within, 2 * avg, 0}}, nil
	default:
		return nil, fmt.Errorf("arrivals: shape=%q: want uniform or front", kv["shape"])
	}
}
