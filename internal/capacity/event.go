package capacity

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Event is a day to plan for: how visitors arrive, what they do, and what
// the shop promises them.
type Event struct {
	Name string `yaml:"name"`
	// Start is when the first phase begins (RFC 3339); the timeline and
	// the cron triggers are in its time zone, or in Timezone when set.
	Start    time.Time `yaml:"start"`
	Timezone string    `yaml:"timezone"`
	// Baseline is an ordinary day's arrivals, in sessions per second.
	Baseline float64 `yaml:"baseline"`
	Phases   []Phase `yaml:"phases"`
	// Mix weighs the journeys the sessions follow: built-in browse, buy and
	// search, or any defined under journeys.
	Mix      map[string]float64 `yaml:"mix"`
	Journeys map[string]Journey `yaml:"journeys"`
	SLO      SLOs               `yaml:"slo"`
	// TargetUtilization is the share of each pod's CPU request the plan
	// fills (default 0.7, as the shipped HPA).
	TargetUtilization float64 `yaml:"target_utilization"`
	Pods              Pods    `yaml:"pods"`
}

// Phase is a stretch of the event with one arrival rate, or a drop.
type Phase struct {
	Name string   `yaml:"name"`
	For  Duration `yaml:"for"`
	// X is the arrival rate as a multiple of the baseline (1 if unset);
	// Ramp, when set, reaches it linearly from the previous phase's rate.
	X    float64  `yaml:"x"`
	Ramp Duration `yaml:"ramp"`
	Drop *Drop    `yaml:"drop"`
}

// Drop is a limited release during a phase: Buyers arrive within Within of
// the phase's start for Units units; the ordinary traffic (X) goes on.
type Drop struct {
	Buyers   int64    `yaml:"buyers"`
	Within   Duration `yaml:"within"`
	Units    int64    `yaml:"units"`
	Shape    string   `yaml:"shape"`    // uniform or front (default front: half arrive in the first 29%)
	Quantity int64    `yaml:"quantity"` // units per order (default 1)
	// Conversion is the share of admitted buyers who check out (default 1).
	Conversion float64 `yaml:"conversion"`
	// Shopping is how long an admitted buyer takes from admission to a
	// placed order (default 45s): it sets the active cap by Little's law.
	Shopping Duration `yaml:"shopping"`
	// PreQueue is how long before the start the line opens (default 15m).
	PreQueue Duration `yaml:"prequeue"`
}

// Journey is what one session does: request classes in order, with a
// pause between them.
type Journey struct {
	Steps []string `yaml:"steps"`
	Think string   `yaml:"think"`
}

// SLOs are the latency objectives the plan keeps.
type SLOs struct {
	// File is an SLO file in Sloth's prometheus/v1 format; its latency
	// objectives override the values below for the routes they name.
	File        string   `yaml:"file"`
	PageP99     Duration `yaml:"page_p99"`
	CheckoutP99 Duration `yaml:"checkout_p99"`
	QueueP99    Duration `yaml:"queue_p99"`
}

// Pods describes how Surge's pods start and what they request.
type Pods struct {
	Startup   Duration `yaml:"startup"`    // scheduled to ready (image pull, start, migrate check)
	Warmup    Duration `yaml:"warmup"`     // ready to full speed (caches, pools)
	MetricLag Duration `yaml:"metric_lag"` // age of the CPU figure the HPA acts on
	// APICPU and WorkerCPU are the pods' CPU requests in cores; when 0
	// they are read from the Deployments in the kustomize directory.
	APICPU    float64 `yaml:"api_cpu"`
	WorkerCPU float64 `yaml:"worker_cpu"`
	// Replicas, when set, fixes the API replicas (a rehearsal on a known
	// machine): the plan then predicts their utilisation instead.
	Replicas int `yaml:"replicas"`
}

// builtinJourneys are the journeys of `surge load` (internal/loadtest/
// journeys), as request classes, so a rehearsal runs what was planned.
var builtinJourneys = map[string]Journey{
	// home, a category, a product: three cached pages.
	"browse": {Steps: []string{CachedPage, CachedPage, CachedPage}, Think: "1s-3s"},
	// product list and product (cached API reads), add to cart, checkout.
	"buy": {Steps: []string{CachedPage, CachedPage, AddToCart, Checkout}, Think: "1s-2s"},
	// a search and a product from it.
	"search": {Steps: []string{Search, CachedPage}, Think: "1s-3s"},
}

// ReadEvent reads and checks an event file.
func ReadEvent(path string) (*Event, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	e, err := ParseEvent(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return e, nil
}

// ParseEvent decodes an event; unknown fields are errors, and so is any
// value out of its range.
func ParseEvent(b []byte) (*Event, error) {
	var e Event
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&e); err != nil {
		return nil, err
	}
	e.defaults()
	return &e, e.validate()
}

func (e *Event) defaults() {
	if e.TargetUtilization == 0 {
		e.TargetUtilization = 0.7
	}
	if e.Pods.Startup == 0 {
		e.Pods.Startup = Duration(30 * time.Second)
	}
	if e.Pods.Warmup == 0 {
		e.Pods.Warmup = Duration(20 * time.Second)
	}
	if e.Pods.MetricLag == 0 {
		e.Pods.MetricLag = Duration(30 * time.Second)
	}
	if e.SLO.PageP99 == 0 {
		e.SLO.PageP99 = Duration(500 * time.Millisecond)
	}
	if e.SLO.CheckoutP99 == 0 {
		e.SLO.CheckoutP99 = Duration(time.Second)
	}
	if e.SLO.QueueP99 == 0 {
		e.SLO.QueueP99 = Duration(500 * time.Millisecond)
	}
	if len(e.Mix) == 0 {
		e.Mix = map[string]float64{"browse": 1}
	}
	for i := range e.Phases {
		p := &e.Phases[i]
		if p.X == 0 {
			p.X = 1
		}
		if d := p.Drop; d != nil {
			if d.Shape == "" {
				d.Shape = "front"
			}
			if d.Quantity == 0 {
				d.Quantity = 1
			}
			if d.Conversion == 0 {
				d.Conversion = 1
			}
			if d.Shopping == 0 {
				d.Shopping = Duration(45 * time.Second)
			}
			if d.PreQueue == 0 {
				d.PreQueue = Duration(15 * time.Minute)
			}
		}
	}
}

func (e *Event) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if e.Baseline <= 0 || e.Baseline > 1e7 {
		bad("baseline %g: want sessions per second, above 0 and at most 10,000,000", e.Baseline)
	}
	if len(e.Phases) == 0 {
		bad("phases: none")
	}
	if len(e.Phases) > 100 {
		bad("phases: %d, at most 100", len(e.Phases))
	}
	var total time.Duration
	for i, p := range e.Phases {
		where := fmt.Sprintf("phases[%d] (%s)", i, p.Name)
		if p.For.D() <= 0 {
			bad("%s: for: want a positive duration", where)
		}
		total += p.For.D()
		if p.X < 0 || p.X > 10000 || math.IsNaN(p.X) {
			bad("%s: x %g: want 0 to 10000", where, p.X)
		}
		if p.Ramp.D() > p.For.D() {
			bad("%s: ramp %s is longer than the phase", where, p.Ramp.D())
		}
		if d := p.Drop; d != nil {
			if d.Buyers < 1 || d.Buyers > 1e9 {
				bad("%s: drop.buyers %d: want 1 to 1,000,000,000", where, d.Buyers)
			}
			if d.Units < 1 || d.Units > 1e9 {
				bad("%s: drop.units %d: want 1 to 1,000,000,000", where, d.Units)
			}
			if d.Within.D() <= 0 || d.Within.D() > p.For.D() {
				bad("%s: drop.within %s: want a positive duration within the phase's %s", where, d.Within.D(), p.For.D())
			}
			if d.Shape != "front" && d.Shape != "uniform" {
				bad("%s: drop.shape %q: want front or uniform", where, d.Shape)
			}
			if d.Quantity < 1 || d.Quantity > 1000 {
				bad("%s: drop.quantity %d: want 1 to 1000", where, d.Quantity)
			}
			if d.Conversion <= 0 || d.Conversion > 1 {
				bad("%s: drop.conversion %g: want above 0 and at most 1", where, d.Conversion)
			}
		}
	}
	if total > 31*24*time.Hour {
		bad("phases last %s; at most 31 days", total)
	}
	if e.TargetUtilization <= 0 || e.TargetUtilization > 1 {
		bad("target_utilization %g: want above 0 and at most 1", e.TargetUtilization)
	}
	if e.Pods.APICPU < 0 || e.Pods.WorkerCPU < 0 || e.Pods.APICPU > 256 || e.Pods.WorkerCPU > 256 {
		bad("pods: api_cpu and worker_cpu are cores, 0 (from the manifests) to 256")
	}
	if e.Pods.Replicas < 0 || e.Pods.Replicas > 10000 {
		bad("pods.replicas %d: want 0 (planned) to 10000", e.Pods.Replicas)
	}
	if e.Timezone != "" {
		if _, err := time.LoadLocation(e.Timezone); err != nil {
			bad("timezone %q: %v", e.Timezone, err)
		}
	}
	var sum float64
	for name, w := range e.Mix {
		if w < 0 || math.IsNaN(w) || math.IsInf(w, 0) {
			bad("mix.%s: weight %g: want 0 or more", name, w)
		}
		sum += w
		if _, ok := e.journey(name); !ok {
			bad("mix.%s: no such journey (built in: browse, buy, search; or define it under journeys)", name)
		}
	}
	if sum <= 0 {
		bad("mix: the weights add up to 0")
	}
	for name, j := range e.Journeys {
		if len(j.Steps) == 0 || len(j.Steps) > 100 {
			bad("journeys.%s: want 1 to 100 steps", name)
		}
		for _, s := range j.Steps {
			if !known(s) {
				bad("journeys.%s: step %q: want one of %v", name, s, Classes)
			}
		}
		if _, _, err := parseThink(j.Think); err != nil {
			bad("journeys.%s: think: %v", name, err)
		}
	}
	return errors.Join(errs...)
}

func (e *Event) journey(name string) (Journey, bool) {
	if j, ok := e.Journeys[name]; ok {
		return j, true
	}
	j, ok := builtinJourneys[name]
	return j, ok
}

// Location is the event's time zone.
func (e *Event) Location() *time.Location {
	if e.Timezone != "" {
		if l, err := time.LoadLocation(e.Timezone); err == nil {
			return l
		}
	}
	if e.Start.IsZero() {
		return time.UTC
	}
	return e.Start.Location()
}

// Duration is how long the phases last together.
func (e *Event) Duration() time.Duration {
	var d time.Duration
	for _, p := range e.Phases {
		d += p.For.D()
	}
	return d
}

// PhaseAt returns the phase running at t (from the event's start) and when
// it began.
func (e *Event) PhaseAt(t time.Duration) (int, time.Duration) {
	var at time.Duration
	for i, p := range e.Phases {
		if t < at+p.For.D() {
			return i, at
		}
		at += p.For.D()
	}
	return len(e.Phases) - 1, at - e.Phases[len(e.Phases)-1].For.D()
}

// SessionRate is the ordinary arrivals per second at t (drop buyers not
// included), with ramps.
func (e *Event) SessionRate(t time.Duration) float64 {
	i, at := e.PhaseAt(t)
	p := e.Phases[i]
	to := p.X * e.Baseline
	if p.Ramp > 0 && t-at < p.Ramp.D() {
		from := e.Baseline
		if i > 0 {
			from = e.Phases[i-1].X * e.Baseline
		}
		return from + (to-from)*float64(t-at)/float64(p.Ramp.D())
	}
	return to
}

// DropArrivals is the drop buyers' arrival rate (per second) at time s
// after the drop phase began: uniform, or front-loaded (falling linearly
// from twice the mean to zero, as `surge load --arrivals shape=front`).
func (d *Drop) DropArrivals(s time.Duration) float64 {
	w := d.Within.D().Seconds()
	x := s.Seconds()
	if x < 0 || x >= w {
		return 0
	}
	mean := float64(d.Buyers) / w
	if d.Shape == "uniform" {
		return mean
	}
	return 2 * mean * (1 - x/w)
}

// classMix is the requests of each class one session makes, averaged over
// the mix, and the mean think time between a session's steps.
func (e *Event) classMix() (perSession map[string]float64, stepsPerSession float64, think time.Duration) {
	perSession = map[string]float64{}
	var sum float64
	for _, w := range e.Mix {
		sum += w
	}
	names := make([]string, 0, len(e.Mix))
	for n := range e.Mix {
		names = append(names, n)
	}
	sort.Strings(names)
	var thinkSum float64
	for _, n := range names {
		j, _ := e.journey(n)
		share := e.Mix[n] / sum
		for _, s := range j.Steps {
			perSession[s] += share
		}
		stepsPerSession += share * float64(len(j.Steps))
		lo, hi, _ := parseThink(j.Think)
		thinkSum += share * float64(len(j.Steps)-1) * (lo + hi).Seconds() / 2
	}
	return perSession, stepsPerSession, time.Duration(thinkSum * float64(time.Second))
}

// parseThink reads "2s" or "1s-3s" ("" is no pause).
func parseThink(s string) (lo, hi time.Duration, err error) {
	if strings.TrimSpace(s) == "" || s == "0" {
		return 0, 0, nil
	}
	a, b, ok := strings.Cut(s, "-")
	if lo, err = time.ParseDuration(strings.TrimSpace(a)); err != nil {
		return 0, 0, fmt.Errorf("%q: want 2s or 1s-3s", s)
	}
	hi = lo
	if ok {
		if hi, err = time.ParseDuration(strings.TrimSpace(b)); err != nil || hi < lo {
			return 0, 0, fmt.Errorf("%q: want 2s or 1s-3s", s)
		}
	}
	if lo < 0 || hi > time.Hour {
		return 0, 0, fmt.Errorf("%q: want 0 to 1h", s)
	}
	return lo, hi, nil
}

func fmtRate(r float64) string {
	switch {
	case r >= 100:
		return strconv.FormatFloat(math.Round(r), 'f', -1, 64)
	case r >= 10:
		return strconv.FormatFloat(math.Round(r*10)/10, 'f', -1, 64)
	}
	return strconv.FormatFloat(math.Round(r*100)/100, 'f', -1, 64)
}
