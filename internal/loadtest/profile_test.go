package loadtest

import (
	"math"
	"strings"
	"testing"
	"time"
)

// TestArrivalsFollowPlan checks the scheduler's planned send times: every
// one-second window holds the integral of the rate over it to within 1%
// (or one arrival, for small windows), the total is the plan's count, and
// times never go backwards or past the end.
func TestArrivalsFollowPlan(t *testing.T) {
	mustPlan := func(p Plan, err error) Plan {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name string
		plan Plan
	}{
		{"constant 200/s", ConstantPlan(200, 10*time.Second)},
		{"constant 25000/s", ConstantPlan(25000, 4*time.Second)},
		{"fractional 0.5/s", ConstantPlan(0.5, 10*time.Second)},
		{"stages", mustPlan(ParseStages("5s:100,10s:1000,5s:1000,5s:0"))},
		{"stages with a jump", mustPlan(ParseStages("0s:300,3s:300,2s:50"))},
		{"spike", mustPlan(ParseSpike("base=100,x=15,at=3s,hold=4s", 10*time.Second))},
		{"arrivals uniform", mustPlan(ParseArrivals("n=10000,within=20s"))},
		{"arrivals front", mustPlan(ParseArrivals("n=10000,within=20s,shape=front"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dur := tt.plan.Duration()
			secs := int(math.Ceil(dur.Seconds()))
			got := make([]int, secs)
			var n int64
			prev := time.Duration(-1)
			for a := tt.plan.Arrivals(); ; {
				off, ok := a.Next()
				if !ok {
					break
				}
				if off < prev || off < 0 || off >= dur {
					t.Fatalf("arrival %d at %v after %v (plan length %v)", n, off, prev, dur)
				}
				prev = off
				got[int(off/time.Second)]++
				n++
			}
			if want := tt.plan.Count(); n != want {
				t.Errorf("%d arrivals, plan counts %d", n, want)
			}
			for s := range secs {
				want := integral(tt.plan, time.Duration(s)*time.Second, time.Duration(s+1)*time.Second)
				if diff := math.Abs(float64(got[s]) - want); diff > math.Max(1, want*0.01) {
					t.Errorf("second %d: %d arrivals, want %.1f (off by %.2f%%)", s, got[s], want, 100*diff/want)
				}
			}
		})
	}
}

// integral of the plan's rate over [a, b), numerically.
func integral(p Plan, a, b time.Duration) float64 {
	const steps = 10000
	dt := (b - a) / steps
	sum := 0.0
	for i := range steps {
		sum += p.RateAt(a+dt*time.Duration(i)+dt/2) * dt.Seconds()
	}
	return sum
}

func TestFrontLoadedArrivals(t *testing.T) {
	p, err := ParseArrivals("n=1000,within=10s,shape=front")
	if err != nil {
		t.Fatal(err)
	}
	// Half the users arrive by 10s*(1-1/sqrt(2)) = 2.93s.
	a := p.Arrivals()
	var half time.Duration
	for range 500 {
		half, _ = a.Next()
	}
	if half < 2900*time.Millisecond || half > 2960*time.Millisecond {
		t.Errorf("500th of 1000 front-loaded arrivals at %v, want about 2.93s", half)
	}
}

func TestParseProfiles(t *testing.T) {
	tests := []struct {
		in      string
		parse   func(string) (Plan, error)
		count   int64
		dur     time.Duration
		wantErr string
	}{
		{"10s:100,30s:1000", ParseStages, 500 + 16500, 40 * time.Second, ""},
		{"0s:50,10s:50", ParseStages, 500, 10 * time.Second, ""},
		{"10s:6000/m", ParseStages, 500, 10 * time.Second, ""},
		{"10s", ParseStages, 0, 0, "want duration:rate"},
		{"x:100", ParseStages, 0, 0, "bad duration"},
		{"10s:-1", ParseStages, 0, 0, "non-negative"},
		{"0s:10", ParseStages, 0, 0, "must be positive"},
		{"base=100,x=15,at=30s,hold=60s", func(s string) (Plan, error) { return ParseSpike(s, 0) }, 3000 + 90000 + 3000, 120 * time.Second, ""},
		{"base=100,x=15,at=30s,hold=60s", func(s string) (Plan, error) { return ParseSpike(s, 100*time.Second) }, 3000 + 90000 + 1000, 100 * time.Second, ""},
		{"base=100,x=15,at=30s,hold=60s,after=0s", func(s string) (Plan, error) { return ParseSpike(s, 0) }, 93000, 90 * time.Second, ""},
		{"base=100,x=15,at=30s", func(s string) (Plan, error) { return ParseSpike(s, 0) }, 0, 0, "missing hold"},
		{"base=100,x=15,at=30s,hold=60s,y=1", func(s string) (Plan, error) { return ParseSpike(s, 0) }, 0, 0, `unknown key "y"`},
		{"base=100,x=15,at=30s,hold=60s", func(s string) (Plan, error) { return ParseSpike(s, 60*time.Second) }, 0, 0, "longer than the duration"},
		{"n=10000,within=60s", ParseArrivals, 10000, time.Minute, ""},
		{"n=10000,within=60s,shape=front", ParseArrivals, 10000, time.Minute, ""},
		{"n=10000,within=60s,shape=back", ParseArrivals, 0, 0, "want uniform or front"},
		{"n=0,within=60s", ParseArrivals, 0, 0, "positive number"},
	}
	for _, tt := range tests {
		p, err := tt.parse(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%q: error %v, want one containing %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		if p.Count() != tt.count || p.Duration() != tt.dur {
			t.Errorf("%q: %d arrivals over %v, want %d over %v", tt.in, p.Count(), p.Duration(), tt.count, tt.dur)
		}
	}
}

func TestParseRate(t *testing.T) {
	for in, want := range map[string]float64{"200": 200, "200/s": 200, "600/m": 10, "3600/h": 1, "0.5": 0.5} {
		if got, err := ParseRate(in); err != nil || got != want {
			t.Errorf("ParseRate(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "fast", "-1", "10/d", "NaN", "Inf"} {
		if _, err := ParseRate(in); err == nil {
			t.Errorf("ParseRate(%q): no error", in)
		}
	}
}
