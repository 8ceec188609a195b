package redisstore

import (
	"encoding/binary"
	"testing"
)

// TestShuffleIsUniformPermutation checks the pre-queue draw: both arrays
// are inverse permutations, and all 24 orders of 4 come up equally often.
func TestShuffleIsUniformPermutation(t *testing.T) {
	const runs = 24000
	counts := map[[4]uint32]float64{}
	for i := range runs {
		var seed [32]byte
		binary.LittleEndian.PutUint64(seed[:], uint64(i))
		pos2seq, seq2pos := shuffle(seed, 4)
		var order [4]uint32
		for pos := range 4 {
			seq := binary.BigEndian.Uint32(pos2seq[4*pos:])
			if seq < 1 || seq > 4 || binary.BigEndian.Uint32(seq2pos[4*(seq-1):]) != uint32(pos+1) {
				t.Fatalf("seed %d: pos2seq %v and seq2pos %v are not inverse permutations", i, pos2seq, seq2pos)
			}
			order[pos] = seq
		}
		counts[order]++
	}
	if len(counts) != 24 {
		t.Fatalf("saw %d distinct orders of 4; want all 24", len(counts))
	}
	want := float64(runs) / 24
	chi2 := 0.0
	for _, c := range counts {
		chi2 += (c - want) * (c - want) / want
	}
	// The chi-square critical value for 23 degrees of freedom at p = 0.001;
	// with these fixed seeds the check is deterministic.
	if chi2 > 49.728 {
		t.Errorf("chi-square = %.1f over %d draws; want below 49.7: %v", chi2, runs, counts)
	}
}

func TestShuffleEmpty(t *testing.T) {
	if a, b := shuffle([32]byte{}, 0); len(a) != 0 || len(b) != 0 {
		t.Errorf("shuffle of nothing = %v, %v", a, b)
	}
}
