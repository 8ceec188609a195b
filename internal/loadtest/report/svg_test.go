package report

import (
	"slices"
	"testing"
)

func TestNiceTicks(t *testing.T) {
	tests := []struct {
		lo, hi float64
		want   []float64
	}{
		{0, 37, []float64{0, 10, 20, 30, 40}},
		{0, 40, []float64{0, 10, 20, 30, 40}},
		{0, 1, []float64{0, 0.2, 0.4, 0.6000000000000001, 0.8, 1}},
		{0, 1234, []float64{0, 250, 500, 750, 1000, 1250}},
		{0, 6, []float64{0, 2, 4, 6}},
	}
	for _, tt := range tests {
		got := niceTicks(tt.lo, tt.hi, 5)
		if !slices.Equal(got, tt.want) || got[len(got)-1] < tt.hi {
			t.Errorf("niceTicks(%v, %v) = %v, want %v", tt.lo, tt.hi, got, tt.want)
		}
	}
}
