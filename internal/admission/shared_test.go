package admission_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/surge-commerce/surge/internal/admission"
)

// fixedBuckets answers every Allow with the same result.
type fixedBuckets struct {
	ok  bool
	err error
	n   int
}

func (f *fixedBuckets) Allow(context.Context, string) (bool, time.Duration, error) {
	f.n++
	return f.ok, time.Second, f.err
}

func TestBucketsFallBackToLocal(t *testing.T) {
	now := time.Unix(1000, 0)
	clock := func() time.Time { return now }
	tests := []struct {
		name     string
		shared   *fixedBuckets
		want     []bool // five calls in a row, burst 2
		failures int
	}{
		{"local only", nil, []bool{true, true, false, false, false}, 0},
		{"shared says yes", &fixedBuckets{ok: true}, []bool{true, true, true, true, true}, 0},
		{"shared says no", &fixedBuckets{ok: false}, []bool{false, false, false, false, false}, 0},
		// Redis down: each replica still limits, alone.
		{"shared fails", &fixedBuckets{err: errors.New("redis: connection refused")}, []bool{true, true, false, false, false}, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			failures := 0
			b := &admission.Buckets{Local: admission.NewRateLimiter(admission.Rate{PerSecond: 0.001, Burst: 2}, 100, clock),
				OnError: func(error) { failures++ }}
			if tt.shared != nil {
				b.Shared = tt.shared
			}
			for i, want := range tt.want {
				if ok, _ := b.Allow(context.Background(), "198.51.100.7"); ok != want {
					t.Errorf("call %d: %v, want %v", i, ok, want)
				}
			}
			if failures != tt.failures {
				t.Errorf("%d failures reported, want %d", failures, tt.failures)
			}
		})
	}
}
