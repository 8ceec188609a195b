package capacity

import (
	"math"
	"testing"
)

// TestStatusRate: the polls of a line, summed from the waiting room's own
// rule, match the rule's closed form (every buyer whose wait is under 6 s
// polls every 2 s, those past 90 s every 30 s, and in between every third
// of their wait) for lines from one buyer to ten million.
func TestStatusRate(t *testing.T) {
	closed := func(q, a float64) float64 {
		p1, p2 := 6*a, 90*a // wait/3 = 2 s and 30 s
		r := math.Min(q, p1) * 0.5
		if q > p1 {
			r += 3 * a * math.Log(math.Min(q, p2)/p1)
		}
		if q > p2 {
			r += (q - p2) / 30
		}
		return r
	}
	for _, c := range []struct{ q, a float64 }{
		{1, 1}, {5, 1}, {12, 1}, {100, 1}, {1000, 1}, {1000, 50}, {1e5, 16.7}, {1e6, 8}, {1e7, 100}, {2.5e4, 0.5},
	} {
		got, want := statusRate(c.q, c.a), closed(c.q, c.a)
		if math.Abs(got-want) > 0.02*want {
			t.Errorf("statusRate(%g waiting, %g/s admitted) = %.4g, want %.4g", c.q, c.a, got, want)
		}
	}
	if statusRate(0, 10) != 0 {
		t.Error("an empty line polls")
	}
}
