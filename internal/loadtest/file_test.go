package loadtest

import (
	"strings"
	"testing"
	"time"
)

const rehearsalFile = `name: friday
description: A mix of our own and built-in journeys.
think: 1s-2s
headers:
  Accept: text/html
load:
  spike: base=100,x=15,at=60s,hold=2m,after=30s
  max_in_flight: 5000
  timeout: 10s
probes: [/livez, /readyz]
drop:
  units: 1000
  limit: 1
  starts: 30s
  rate_per_minute: 6000
  max_active: 2000
phases:
  - {name: baseline, from: 0s, to: 60s}
  - {name: peak, from: 60s, to: 80%}
reminder: {subscribers: 30000, at: 50%}
hooks:
  - {name: purge, at: 50%, url: /api/v1/admin/cache/purge, admin: true, body: '{"all":true}'}
thresholds:
  - server_errors<=0.01%
  - sold==100%
journeys:
  - use: browse
    weight: 60
  - use: drop
    weight: 10
  - name: search
    weight: 30
    steps:
      - name: search
        url: /search?q={{pick "linen" "wool"}}
`

func TestParseRehearsalFile(t *testing.T) {
	f, err := ParseFile("friday.yaml", []byte(rehearsalFile))
	if err != nil {
		t.Fatal(err)
	}
	if f.Name != "friday" || len(f.Probes) != 2 || f.Drop.Units != 1000 || f.Drop.Starts != 30*time.Second ||
		len(f.Phases) != 2 || len(f.Hooks) != 1 || len(f.Thresholds) != 2 || !f.UsesDrop() {
		t.Fatalf("%+v", f)
	}
	if f.Hooks[0].Method != "POST" || f.Hooks[0].When.Share != 0.5 || !f.Hooks[0].Admin {
		t.Errorf("hook %+v", f.Hooks[0])
	}
	mix, err := f.Mix(DropOptions{ID: "d1", SKU: "S1", Quantity: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(mix) != 3 || mix[0].Scenario.Name != "browse" || mix[0].Weight != 60 || mix[1].Scenario.drop == nil ||
		mix[2].Scenario.Name != "search" || mix[2].Scenario.Steps[0].Think != (Think{time.Second, 2 * time.Second}) {
		t.Fatalf("mix %+v", mix)
	}
	// The file's think applies to built-in journeys too.
	if th := mix[0].Scenario.Steps[0].Think; th != (Think{time.Second, 2 * time.Second}) {
		t.Errorf("browse think %v", th)
	}
	if _, err := f.Mix(DropOptions{}); err == nil {
		t.Error("the drop journey without its drop was accepted")
	}

	b, err := f.Load.Build(0.01, 0.1)
	if err != nil {
		t.Fatal(err)
	}
	// 1/s for 6 s, 15/s for 12 s, 1/s for 3 s.
	if b.Duration != 21*time.Second || b.Plan.Count() != 6+180+3 || b.Profile != "spike base=1,x=15,at=6s,hold=12s,after=3s" {
		t.Errorf("scaled spike: %v, %d arrivals, %q", b.Duration, b.Plan.Count(), b.Profile)
	}
	d := f.Drop.ScaleDrop(0.01, 0.1)
	if d.Units != 10 || d.Starts != 3*time.Second || d.MaxActive != 20 || d.RatePerMinute != 600 {
		t.Errorf("scaled drop %+v", d)
	}
	if r := f.Reminder; r == nil || r.Subscribers != 30000 || r.At.Share != 0.5 || r.ScaleReminder(0.01).Subscribers != 300 ||
		r.ScaleReminder(1e-9).Subscribers != 1 || r.At.At(b.Duration, 0.1) != 10500*time.Millisecond {
		t.Errorf("reminder %+v", f.Reminder)
	}
	ph := f.Phases[1]
	if ph.From.At(b.Duration, 0.1) != 6*time.Second || ph.To.At(b.Duration, 0.1) != 16800*time.Millisecond {
		t.Errorf("peak phase %v..%v", ph.From.At(b.Duration, 0.1), ph.To.At(b.Duration, 0.1))
	}
}

func TestBuildScalesEachProfile(t *testing.T) {
	tests := []struct {
		spec     LoadSpec
		arrivals int64
		vus      int
		dur      time.Duration
		profile  string
	}{
		{LoadSpec{Rate: "100", Duration: time.Minute}, 60, 0, 6 * time.Second, "rate 10/s for 6s"},
		{LoadSpec{Stages: "1m:100,1m:500"}, 6*5 + 6*30, 0, 12 * time.Second, "stages 6s:10,6s:50"},
		{LoadSpec{Arrivals: "n=100000,within=2m,shape=front"}, 10000, 0, 12 * time.Second, "arrivals n=10000,within=12s,shape=front"},
		{LoadSpec{VUs: 10000, Think: "5s-15s", Duration: 5 * time.Minute}, 0, 1000, 30 * time.Second, "1000 users, think 5s-15s, for 30s"},
	}
	for _, tt := range tests {
		b, err := tt.spec.Build(0.1, 0.1)
		if err != nil {
			t.Errorf("%+v: %v", tt.spec, err)
			continue
		}
		if b.Plan.Count() != tt.arrivals || b.VUs != tt.vus || b.Duration != tt.dur || b.Profile != tt.profile {
			t.Errorf("%+v: %d arrivals, %d users, %v, %q", tt.spec, b.Plan.Count(), b.VUs, b.Duration, b.Profile)
		}
	}
	for _, bad := range []LoadSpec{{}, {Rate: "1", Spike: "base=1,x=2,at=1s,hold=1s"}, {Rate: "1"}, {VUs: 3}, {Rate: "1", Duration: time.Second, Think: "1s"}} {
		if _, err := bad.Build(1, 1); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	if _, err := (LoadSpec{Rate: "1", Duration: time.Second}).Build(0, 1); err == nil {
		t.Error("scale 0 accepted")
	}
}

func TestRehearsalFileErrors(t *testing.T) {
	tests := []struct{ file, want string }{
		{"steps: [{url: /}]\njourneys: [{use: browse}]\n", "not both"},
		{"journeys: [{use: shop}]\n", `unknown built-in journey "shop"`},
		{"journeys: [{name: a, use: browse}]\n", "keeps its name"},
		{"journeys: [{name: a}]\n", "give steps"},
		{"journeys: [{use: browse}, {use: browse}]\n", "unique name"},
		{"journeys: [{use: browse, weight: -1}]\n", "weight"},
		{"journeys: [{use: browse, wait: 1s}]\n", `unknown journey field "wait"`},
		{"journeys: [{use: browse}]\ndrop: {units: 10}\n", "no journey buys it"},
		{"journeys: [{use: drop}]\ndrop: {units: 0}\n", "units at least 1"},
		{"journeys: [{use: drop}]\ndrop: {units: 5, starts: soon}\n", "starts"},
		{"journeys: [{use: browse}]\nload: {rate: 5}\n", "a rate needs a duration"},
		{"journeys: [{use: browse}]\nload: {rate: 5, spike: x}\n", "exactly one load profile"},
		{"journeys: [{use: browse}]\nload: {rate: 5, duration: 1m, ramp: 1}\n", `unknown load field "ramp"`},
		{"journeys: [{use: browse}]\nprobes: [livez]\n", "want a path"},
		{"journeys: [{use: browse}]\nphases: [{name: a, from: 0s, to: 120%}]\n", "0% to 100%"},
		{"journeys: [{use: browse}]\nhooks: [{name: h, at: 1s}]\n", "name and url are required"},
		{"journeys: [{use: browse}]\nthresholds: [sold<1]\n", ""},
		{"journeys: [{use: browse}]\nreminder: {subscribers: 0, at: 50%}\n", "subscribers must be 1 to 1000000"},
		{"journeys: [{use: browse}]\nreminder: {subscribers: 1000001, at: 50%}\n", "subscribers must be 1 to 1000000"},
		{"journeys: [{use: browse}]\nreminder: {subscribers: 10}\n", "at is required"},
		{"journeys: [{use: browse}]\nreminder: {subscribers: 10, at: later}\n", "reminder: at"},
		{"journeys: [{use: browse}]\nreminder: {subscribers: 10, at: 50%, kind: blast}\n", `unknown reminder field "kind"`},
		{"journeys: [{use: browse}]\nthresholds: [sold<lots]\n", "not a count or a share"},
	}
	for _, tt := range tests {
		_, err := ParseFile("r.yaml", []byte(tt.file))
		if tt.want == "" {
			if err != nil {
				t.Errorf("%q: %v", tt.file, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "r.yaml:") {
			t.Errorf("%q:\n got  %v\n want %q", tt.file, err, tt.want)
		}
	}
}
