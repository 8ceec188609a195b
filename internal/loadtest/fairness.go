package loadtest

import (
	"fmt"
	"math"
	"slices"
	"strconv"
)

// Fairness is what the buyers of a drop rehearsal saw of the line's
// order, from their side: a fair line draws the places of everyone who
// came before the start at random (arriving first, or on a faster
// connection, is worth nothing) and serves everyone after the start in
// the order they came.
type Fairness struct {
	// PreQueue counts the buyers who joined before the start and learnt
	// the place the draw gave them.
	PreQueue int64 `json:"prequeue"`
	// DrawRho is Spearman's rank correlation between the order those
	// buyers joined in and their places: about 0 for a random draw, 1
	// if arriving first won. DrawBound is 3/sqrt(n-1): a random draw
	// stays within ±DrawBound 99.7% of the time.
	DrawRho   float64 `json:"draw_rho"`
	DrawBound float64 `json:"draw_bound"`
	// EarlyBought and LateBought are the shares (percent) of the first
	// and second half of the pre-queue, in join order, who bought.
	EarlyBought float64 `json:"early_half_bought_percent"`
	LateBought  float64 `json:"late_half_bought_percent"`
	// AfterStart counts the buyers who joined after the start and learnt
	// their place; FIFORho is their join order against their places
	// (near 1: first come, first served).
	AfterStart int64   `json:"after_start"`
	FIFORho    float64 `json:"fifo_rho"`
	// Jumped counts buyers who joined after the start but were placed
	// ahead of someone from the pre-queue.
	Jumped int64 `json:"jumped_prequeue"`
}

// DrawFair reports whether the draw looks random: its rank correlation
// within the bound, and nobody from after the start placed ahead of the
// pre-queue. With fewer than 10 pre-queue buyers it says nothing.
func (f *Fairness) DrawFair() bool {
	return f.PreQueue < 10 || (math.Abs(f.DrawRho) <= f.DrawBound && f.Jumped == 0)
}

// String sums the fairness up in a line.
func (f *Fairness) String() string {
	s := ""
	switch {
	case f.PreQueue >= 10:
		verdict := "consistent with a random draw"
		if !f.DrawFair() {
			verdict = "NOT what a random draw gives"
		}
		s = fmt.Sprintf("draw: %d pre-queue buyers, join order against place rho %s (a random draw stays within ±%s: %s); bought: first half %s%%, second half %s%%",
			f.PreQueue, ff(f.DrawRho), ff(f.DrawBound), verdict, ff(f.EarlyBought), ff(f.LateBought))
	case f.PreQueue > 0:
		s = fmt.Sprintf("draw: only %d pre-queue buyers, too few to judge", f.PreQueue)
	default:
		s = "draw: no buyer joined before the start"
	}
	if f.AfterStart > 0 {
		s += fmt.Sprintf("; after the start: %d buyers, join order against place rho %s", f.AfterStart, ff(f.FIFORho))
	}
	if f.Jumped > 0 {
		s += fmt.Sprintf("; %d buyers from after the start placed ahead of the pre-queue", f.Jumped)
	}
	return s
}

// ff shows a correlation or a share to two decimals.
func ff(v float64) string {
	s := strconv.FormatFloat(v, 'f', 2, 64)
	if s == "-0.00" {
		s = "0.00"
	}
	return s
}

// ComputeFairness fills d.Fairness from d.Places.
func (d *DropResult) ComputeFairness() {
	if d == nil || len(d.Places) == 0 {
		return
	}
	var pre, after []Place
	for _, p := range d.Places {
		if p.Position == 0 {
			continue
		}
		if p.PreQueue {
			pre = append(pre, p)
		} else {
			after = append(after, p)
		}
	}
	f := &Fairness{PreQueue: int64(len(pre)), AfterStart: int64(len(after))}
	byJoin := func(a, b Place) int {
		if a.JoinS != b.JoinS {
			if a.JoinS < b.JoinS {
				return -1
			}
			return 1
		}
		return int(a.Position) - int(b.Position)
	}
	slices.SortFunc(pre, byJoin)
	slices.SortFunc(after, byJoin)
	if len(pre) > 1 {
		f.DrawRho = spearman(pre)
		f.DrawBound = 3 / math.Sqrt(float64(len(pre)-1))
		half := len(pre) / 2
		f.EarlyBought = boughtShare(pre[:half])
		f.LateBought = boughtShare(pre[half:])
	}
	if len(after) > 1 {
		f.FIFORho = spearman(after)
	}
	var lastPre uint64
	for _, p := range pre {
		lastPre = max(lastPre, p.Position)
	}
	for _, p := range after {
		if p.Position < lastPre {
			f.Jumped++
		}
	}
	d.Fairness = f
}

func boughtShare(ps []Place) float64 {
	if len(ps) == 0 {
		return 0
	}
	n := 0
	for _, p := range ps {
		if p.Bought {
			n++
		}
	}
	return round(100*float64(n)/float64(len(ps)), 4)
}

// spearman is the rank correlation between the order of ps (join order)
// and their positions. Positions are distinct places in one line, so
// their ranks have no ties.
func spearman(ps []Place) float64 {
	n := len(ps)
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int {
		switch {
		case ps[a].Position < ps[b].Position:
			return -1
		case ps[a].Position > ps[b].Position:
			return 1
		}
		return a - b
	})
	var d2 float64
	for rank, i := range idx {
		d := float64(rank - i)
		d2 += d * d
	}
	nf := float64(n)
	return 1 - 6*d2/(nf*(nf*nf-1))
}
