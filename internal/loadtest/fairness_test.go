package loadtest

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// places makes n pre-queue buyers joining in order, placed by order
// (1..n in some arrangement), then m buyers after the start placed
// n+1.. in join order; the first k by place bought.
func places(order []int, m, k int) []Place {
	var ps []Place
	for i, pos := range order {
		ps = append(ps, Place{JoinS: float64(i), PreQueue: true, Position: uint64(pos), Bought: pos <= k})
	}
	n := len(order)
	for i := range m {
		ps = append(ps, Place{JoinS: float64(n + i), Position: uint64(n + i + 1)})
	}
	return ps
}

func TestFairnessOfARandomDraw(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	order := rng.Perm(1000)
	for i := range order {
		order[i]++
	}
	d := &DropResult{Places: places(order, 500, 100)}
	d.ComputeFairness()
	f := d.Fairness
	if f.PreQueue != 1000 || f.AfterStart != 500 || f.Jumped != 0 {
		t.Fatalf("%+v", f)
	}
	if !f.DrawFair() || f.DrawRho > f.DrawBound || f.DrawRho < -f.DrawBound {
		t.Errorf("a shuffled line judged unfair: %s", f)
	}
	if f.FIFORho != 1 {
		t.Errorf("first come first served after the start: rho %v", f.FIFORho)
	}
	if !strings.Contains(f.String(), "consistent with a random draw") {
		t.Error(f.String())
	}
}

func TestFairnessSeesAnUnfairDraw(t *testing.T) {
	// Arriving first wins: the draw kept the join order.
	order := make([]int, 400)
	for i := range order {
		order[i] = i + 1
	}
	d := &DropResult{Places: places(order, 10, 50)}
	d.ComputeFairness()
	f := d.Fairness
	if f.DrawFair() || f.DrawRho != 1 || f.EarlyBought != 25 || f.LateBought != 0 {
		t.Errorf("join order kept: %+v", f)
	}
	if !strings.Contains(f.String(), "NOT what a random draw gives") {
		t.Error(f.String())
	}
	// Someone from after the start placed ahead of the pre-queue.
	d = &DropResult{Places: append(places(order, 0, 0), Place{JoinS: 1000, Position: 5})}
	d.ComputeFairness()
	if d.Fairness.Jumped != 1 || d.Fairness.DrawFair() {
		t.Errorf("a late buyer ahead of the pre-queue: %+v", d.Fairness)
	}
}

func TestSellOutTime(t *testing.T) {
	d := &DropResult{Bought: 3, StartS: 10, FirstAdmitS: 10.2, LastSaleS: 14.5}
	if got := d.SellOutS(); got != 4.5 {
		t.Errorf("sold out %v s after the start, want 4.5", got)
	}
	d.StartS = 0 // a drop of the user's own: from the first admission
	if got := d.SellOutS(); got < 4.29 || got > 4.31 {
		t.Errorf("sold out %v s after the first admission, want 4.3", got)
	}
}
