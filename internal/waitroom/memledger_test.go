package waitroom_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/surge-commerce/surge/internal/waitroom"
	"github.com/surge-commerce/surge/internal/waitroom/ledgertest"
)

func TestMemLedgerConformance(t *testing.T) {
	ledgertest.LedgerSuite(t, func(t *testing.T) waitroom.Ledger { return waitroom.NewMemLedger() })
}

// drawPreQueue joins k visitors before the start of a fresh drop and
// returns the position each seq (index seq-1) got at the start.
func drawPreQueue(t *testing.T, l waitroom.Ledger, drop string, k int) []uint64 {
	t.Helper()
	ctx := context.Background()
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := l.Create(ctx, drop, waitroom.QueueConfig{Start: start, Burst: 1, AccessTTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	for i := range k {
		if _, _, err := l.Join(ctx, drop, fmt.Sprintf("v:%d", i), start.Add(-time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	pos := make([]uint64, k)
	for seq := range k {
		p, err := l.Position(ctx, drop, uint64(seq+1), start)
		if err != nil {
			t.Fatal(err)
		}
		pos[seq] = p
	}
	if err := l.Delete(ctx, drop); err != nil {
		t.Fatal(err)
	}
	return pos
}

// Chi-square critical values at p = 0.001: a correct shuffle fails with
// probability 1/1000, and with the fixed seed below it never does.
const (
	chi2Crit49 = 85.351 // 49 degrees of freedom
	chi2Crit23 = 49.728 // 23 degrees of freedom
)

// TestPreQueueDrawIsUniform checks that where a pre-queue joiner ends up
// does not depend on when they joined: over many draws of 8, each
// (join order, position) pair turns up equally often.
func TestPreQueueDrawIsUniform(t *testing.T) {
	const k, runs = 8, 16000
	l := waitroom.NewSeededMemLedger([32]byte{1, 2, 3})
	var counts [k][k]float64
	for range runs {
		for seq, p := range drawPreQueue(t, l, "d", k) {
			counts[seq][p-1]++
		}
	}
	want := float64(runs) / k
	chi2 := 0.0
	for seq := range k {
		for p := range k {
			d := counts[seq][p] - want
			chi2 += d * d / want
		}
	}
	// A (join order x position) table of a permutation has (k-1)^2
	// degrees of freedom.
	if chi2 > chi2Crit49 {
		t.Errorf("chi-square = %.1f over %d draws; want below %.1f (join order leaks into position): %v", chi2, runs, chi2Crit49, counts)
	}
	// The first to join gets no advantage: their mean position is the middle.
	mean := 0.0
	for p := range k {
		mean += float64(p+1) * counts[0][p]
	}
	if mean /= runs; mean < 4.4 || mean > 4.6 {
		t.Errorf("first joiner's mean position = %.2f; want about 4.5", mean)
	}
}

// TestPreQueueDrawIsUniformPermutation checks the whole order, not just
// each place: all 24 orders of 4 pre-queue joiners are equally likely.
func TestPreQueueDrawIsUniformPermutation(t *testing.T) {
	const runs = 24000
	l := waitroom.NewSeededMemLedger([32]byte{4, 5, 6})
	counts := map[[4]uint64]float64{}
	for range runs {
		var key [4]uint64
		copy(key[:], drawPreQueue(t, l, "d", 4))
		counts[key]++
	}
	if len(counts) != 24 {
		t.Fatalf("saw %d distinct orders of 4; want all 24", len(counts))
	}
	want := float64(runs) / 24
	chi2 := 0.0
	for _, c := range counts {
		chi2 += (c - want) * (c - want) / want
	}
	if chi2 > chi2Crit23 {
		t.Errorf("chi-square = %.1f over %d draws; want below %.1f: %v", chi2, runs, chi2Crit23, counts)
	}
}

func BenchmarkMemLedgerCounters(b *testing.B) {
	l := waitroom.NewMemLedger()
	ctx := context.Background()
	start := time.Now()
	if _, err := l.Create(ctx, "d", waitroom.QueueConfig{Start: start, Burst: 10, MaxActive: 1000, AccessTTL: time.Hour}); err != nil {
		b.Fatal(err)
	}
	for i := range 100_000 {
		if _, _, err := l.Join(ctx, "d", fmt.Sprintf("v:%d", i), start); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := l.Counters(ctx, "d", time.Now()); err != nil {
				b.Fatal(err)
			}
		}
	})
}
