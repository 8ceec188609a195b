package capacity

import (
	"math"
	"testing"
	"time"
)

// FuzzParseEvent: an event file is input from whoever plans; no bytes may
// panic the parser, and an event it accepts is one the planner can plan:
// finite rates, a mix that adds up, and (for events short enough to plan
// on every run) a plan with at least one pod per phase.
func FuzzParseEvent(f *testing.F) {
	for _, seed := range []string{
		dropEvent,
		"name: rehearsal\nstart: 2026-12-04T19:00:00Z\nbaseline: 100\nmix: {buy: 1}\npods: {replicas: 1, api_cpu: 1}\nphases:\n  - {name: load, for: 1m}\n",
		"baseline: 40\nmix: {browse: 80, buy: 20}\njourneys:\n  campaign: {steps: [cached_page, search, cached_page], think: 2s}\n" +
			"phases:\n  - {name: before, for: 10m}\n  - {name: ad, for: 20m, x: 15}\n  - {name: day, for: 30m, x: 5, ramp: 10m}\n" +
			"slo: {page_p99: 500ms, checkout_p99: 1s, queue_p99: 500ms}\ntarget_utilization: 0.7\npods: {startup: 30s, warmup: 20s, metric_lag: 30s}\n",
		"baseline: 1\nphases: [{name: d, for: 5m, drop: {buyers: 5000, within: 1m, units: 50, shape: uniform, quantity: 2, conversion: 0.5, shopping: 30s, prequeue: 5m}}]\n",
		"baseline: 1\nmix: {campaign: 1}\njourneys: {campaign: {steps: [drop_join, drop_status], think: 1s-3s}}\nphases: [{name: a, for: 1m}]\n",
		"baseline: -1\nphases: [{name: a, for: 1m}]",
		"baseline: 1\nphases: [{name: a, for: 1m, x: .nan}]",
		"baseline: 1\ntimezone: Europe/Amsterdam\nphases: [{name: a, for: 1m, ramp: 2m}]",
		"baseline: 1e308\nphases: [{name: a, for: 2562047h}]",
		"&a [*a, *a]",
		"",
	} {
		f.Add([]byte(seed))
	}
	cluster, err := ReadCluster("../../deploy/k8s/base")
	if err != nil {
		f.Fatal(err)
	}
	prof := testProfile()
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := ParseEvent(b)
		if err != nil {
			return
		}
		d := e.Duration()
		if d <= 0 || d > 31*24*time.Hour {
			t.Fatalf("accepted an event lasting %s", d)
		}
		for _, at := range []time.Duration{0, d / 3, d / 2, d - time.Nanosecond} {
			if r := e.SessionRate(at); math.IsNaN(r) || math.IsInf(r, 0) || r < 0 {
				t.Fatalf("session rate %g at %s", r, at)
			}
		}
		per, steps, think := e.classMix()
		if steps <= 0 || math.IsNaN(steps) || think < 0 {
			t.Fatalf("mix: %g steps per session, think %s", steps, think)
		}
		for c, n := range per {
			if math.IsNaN(n) || math.IsInf(n, 0) || n < 0 {
				t.Fatalf("mix: %g %s per session", n, c)
			}
		}
		if d > 30*time.Minute || e.Baseline > 1e5 {
			return // planned second by second: too slow to plan on every input
		}
		for _, ph := range e.Phases {
			if ph.Drop != nil && ph.Drop.Buyers > 1e6 {
				return
			}
		}
		pl, err := Make(prof, e, cluster)
		if err != nil {
			t.Fatalf("accepted event, no plan: %v", err)
		}
		for _, pp := range pl.Phases {
			if pp.APIReplicas < 1 || math.IsNaN(pp.Utilization) {
				t.Fatalf("phase %s: %d pods, utilisation %g", pp.Name, pp.APIReplicas, pp.Utilization)
			}
		}
	})
}
