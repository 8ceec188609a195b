// Package ledgertest is the conformance suite every waitroom.Ledger
// passes: the in-process MemLedger now, the Redis ledger later. It drives
// the ledger only through the interface, with explicit clock readings, so
// it runs unchanged against any implementation.
package ledgertest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/surge-commerce/surge/internal/waitroom"
)

// t0 is the suite's wall clock origin; every drop starts at or after it.
var t0 = time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)

// LedgerSuite runs every conformance test against ledgers made by
// newLedger, which returns a fresh, empty ledger (cleaning up with
// t.Cleanup if it needs to).
func LedgerSuite(t *testing.T, newLedger func(t *testing.T) waitroom.Ledger) {
	tests := []struct {
		name string
		run  func(t *testing.T, l waitroom.Ledger)
	}{
		{"CreateIsIdempotent", testCreate},
		{"UnknownDrop", testUnknownDrop},
		{"OnePlacePerVisitor", testOnePlace},
		{"PreQueueDrawnAtStart", testPreQueue},
		{"FIFOAfterStart", testFIFO},
		{"RateAndBurstBound", testRate},
		{"ActiveCap", testCap},
		{"ReleaseFreesSlotAtOnce", testRelease},
		{"RejoinAfterRelease", testRejoin},
		{"LeftPlacesAreSkippedForFree", testLeft},
		{"NoShowReclaim", testNoShow},
		{"AccessExpiry", testExpiry},
		{"PauseAndClose", testPauseClose},
		{"ClockNeverRunsBackwards", testClock},
		{"MaxJoins", testMaxJoins},
		{"ConcurrentJoins", testConcurrentJoins},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, newLedger(t)) })
	}
}

// create sets up drop with cfg and the given admission rate.
func create(t *testing.T, l waitroom.Ledger, drop string, cfg waitroom.QueueConfig, rate float64) {
	t.Helper()
	ctx := context.Background()
	if _, err := l.Create(ctx, drop, cfg); err != nil {
		t.Fatalf("Create(%q): %v", drop, err)
	}
	// A day early, so the suite's pre-start joins still count as before the start.
	if _, err := l.SetFlow(ctx, drop, waitroom.Flow{RatePerMinute: rate}, cfg.Start.Add(-24*time.Hour)); err != nil {
		t.Fatalf("SetFlow(%q): %v", drop, err)
	}
}

func join(t *testing.T, l waitroom.Ledger, drop, visitor string, now time.Time) (waitroom.Place, waitroom.Counters) {
	t.Helper()
	p, c, err := l.Join(context.Background(), drop, visitor, now)
	if err != nil {
		t.Fatalf("Join(%q, %q): %v", drop, visitor, err)
	}
	return p, c
}

func counters(t *testing.T, l waitroom.Ledger, drop string, now time.Time) waitroom.Counters {
	t.Helper()
	c, err := l.Counters(context.Background(), drop, now)
	if err != nil {
		t.Fatalf("Counters(%q): %v", drop, err)
	}
	return c
}

func seat(t *testing.T, l waitroom.Ledger, drop string, seq uint64, now time.Time) waitroom.Seat {
	t.Helper()
	s, err := l.Seat(context.Background(), drop, seq, now)
	if err != nil {
		t.Fatalf("Seat(%q, %d): %v", drop, seq, err)
	}
	return s
}

func release(t *testing.T, l waitroom.Ledger, drop, visitor string, now time.Time) waitroom.Counters {
	t.Helper()
	ok, c, err := l.Release(context.Background(), drop, visitor, now)
	if err != nil {
		t.Fatalf("Release(%q, %q): %v", drop, visitor, err)
	}
	if !ok {
		t.Fatalf("Release(%q, %q): no live place", drop, visitor)
	}
	return c
}

func visitor(i int) string { return fmt.Sprintf("v:%d", i) }

func testCreate(t *testing.T, l waitroom.Ledger) {
	ctx := context.Background()
	cfg := waitroom.QueueConfig{Start: t0, Burst: 1, AccessTTL: time.Minute}
	e1, err := l.Create(ctx, "d", cfg)
	if err != nil || e1 == 0 {
		t.Fatalf("Create = %d, %v; want a non-zero epoch", e1, err)
	}
	join(t, l, "d", "v:a", t0)
	e2, err := l.Create(ctx, "d", cfg)
	if err != nil || e2 != e1 {
		t.Fatalf("second Create = %d, %v; want the same epoch %d", e2, err, e1)
	}
	if c := counters(t, l, "d", t0); c.Joined != 1 || c.Epoch != e1 {
		t.Fatalf("after second Create: joined %d epoch %d; want the queue kept", c.Joined, c.Epoch)
	}
	if err := l.Delete(ctx, "d"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	e3, err := l.Create(ctx, "d", cfg)
	if err != nil || e3 == e1 {
		t.Fatalf("Create after Delete = %d, %v; want a new epoch", e3, err)
	}
	if c := counters(t, l, "d", t0); c.Joined != 0 {
		t.Fatalf("after Delete and Create: joined %d; want an empty queue", c.Joined)
	}
	other, err := l.Create(ctx, "other", cfg)
	if err != nil || other == e3 {
		t.Fatalf("Create(other) = %d, %v; want an epoch of its own", other, err)
	}
}

func testUnknownDrop(t *testing.T, l waitroom.Ledger) {
	ctx := context.Background()
	check := func(name string, err error) {
		t.Helper()
		if !errors.Is(err, waitroom.ErrUnknownDrop) {
			t.Errorf("%s on an unknown drop: %v; want ErrUnknownDrop", name, err)
		}
	}
	_, _, err := l.Join(ctx, "nope", "v:a", t0)
	check("Join", err)
	_, err = l.Counters(ctx, "nope", t0)
	check("Counters", err)
	_, err = l.SetFlow(ctx, "nope", waitroom.Flow{}, t0)
	check("SetFlow", err)
	_, err = l.Close(ctx, "nope", t0)
	check("Close", err)
	_, err = l.Position(ctx, "nope", 1, t0)
	check("Position", err)
	_, err = l.Seat(ctx, "nope", 1, t0)
	check("Seat", err)
	_, err = l.Arrive(ctx, "nope", 1, t0)
	check("Arrive", err)
	_, _, err = l.Release(ctx, "nope", "v:a", t0)
	check("Release", err)
	check("Delete", l.Delete(ctx, "nope"))
}

func testOnePlace(t *testing.T, l waitroom.Ledger) {
	create(t, l, "d", waitroom.QueueConfig{Start: t0, Burst: 1, AccessTTL: time.Hour}, 0)
	a, _ := join(t, l, "d", "c:1", t0.Add(-time.Minute))
	b, _ := join(t, l, "d", "c:2", t0.Add(-time.Minute))
	again, c := join(t, l, "d", "c:1", t0.Add(time.Minute))
	if a.Existing || b.Existing || !again.Existing {
		t.Errorf("Existing: first %v, other %v, again %v; want false, false, true", a.Existing, b.Existing, again.Existing)
	}
	if again.Seq != a.Seq || a.Seq == b.Seq {
		t.Errorf("seqs: a %d, b %d, a again %d; want a's place kept and b's its own", a.Seq, b.Seq, again.Seq)
	}
	if c.Joined != 2 {
		t.Errorf("Joined = %d; want 2", c.Joined)
	}
}

func testPreQueue(t *testing.T, l waitroom.Ledger) {
	ctx := context.Background()
	const n = 200
	create(t, l, "d", waitroom.QueueConfig{Start: t0, Burst: 1, AccessTTL: time.Hour}, 0)
	for i := range n {
		p, _ := join(t, l, "d", visitor(i), t0.Add(-time.Hour+time.Duration(i)*time.Second))
		if !p.PreQueue || p.Position != 0 || p.Seq != uint64(i+1) {
			t.Fatalf("pre-queue join %d = %+v; want seq %d, PreQueue, no position yet", i, p, i+1)
		}
	}
	if pos, err := l.Position(ctx, "d", 1, t0.Add(-time.Second)); err != nil || pos != 0 {
		t.Fatalf("Position before the start = %d, %v; want 0 (not drawn yet)", pos, err)
	}
	if c := counters(t, l, "d", t0.Add(-time.Second)); c.Started || c.PreQueue != n {
		t.Fatalf("before the start: Started %v PreQueue %d; want false, %d", c.Started, c.PreQueue, n)
	}
	seen := make([]bool, n+1)
	inOrder := 0
	for seq := uint64(1); seq <= n; seq++ {
		pos, err := l.Position(ctx, "d", seq, t0)
		if err != nil || pos < 1 || pos > n || seen[pos] {
			t.Fatalf("Position(%d) at the start = %d, %v; want a distinct position in 1..%d", seq, pos, err, n)
		}
		seen[pos] = true
		if pos == seq {
			inOrder++
		}
	}
	if inOrder > n/4 {
		t.Errorf("%d of %d pre-queue places kept their join order; want a shuffle", inOrder, n)
	}
	p, c := join(t, l, "d", "late", t0.Add(time.Second))
	if p.PreQueue || p.Position != n+1 || !c.Started || c.PreQueue != n {
		t.Errorf("join after the start = %+v, counters %+v; want position %d, not pre-queue", p, c, n+1)
	}
	// The draw is fixed once made.
	for seq := uint64(1); seq <= 5; seq++ {
		a, _ := l.Position(ctx, "d", seq, t0.Add(time.Minute))
		b, _ := l.Position(ctx, "d", seq, t0.Add(time.Hour))
		if a != b {
			t.Errorf("Position(%d) changed from %d to %d", seq, a, b)
		}
	}
}

func testFIFO(t *testing.T, l waitroom.Ledger) {
	create(t, l, "d", waitroom.QueueConfig{Start: t0, Burst: 1, AccessTTL: time.Hour}, 60)
	// Everybody joins after the start; one admission a second.
	const n = 20
	for i := range n {
		p, _ := join(t, l, "d", visitor(i), t0.Add(time.Duration(i)*time.Millisecond))
		if p.PreQueue || p.Position != p.Seq || p.Seq != uint64(i+1) {
			t.Fatalf("join %d after the start = %+v; want position = seq = %d", i, p, i+1)
		}
	}
	var last time.Time
	for seq := uint64(1); seq <= n; seq++ {
		now := t0.Add(time.Duration(seq) * time.Second)
		counters(t, l, "d", now)
		s := seat(t, l, "d", seq, now)
		if !s.Admitted() {
			t.Fatalf("seq %d not admitted at %v", seq, now.Sub(t0))
		}
		if s.AdmittedAt.Before(last) {
			t.Fatalf("seq %d admitted at %v, before seq %d", seq, s.AdmittedAt.Sub(t0), seq-1)
		}
		last = s.AdmittedAt
		if seq < n {
			if next := seat(t, l, "d", seq+1, now); next.Admitted() && seq+1 > uint64(now.Sub(t0)/time.Second)+1 {
				t.Fatalf("seq %d admitted ahead of its turn", seq+1)
			}
		}
	}
}

func testRate(t *testing.T, l waitroom.Ledger) {
	const (
		rate  = 120.0 // a minute: 2 a second
		burst = 5
	)
	create(t, l, "d", waitroom.QueueConfig{Start: t0, Burst: burst, AccessTTL: time.Hour}, rate)
	for i := range 2000 {
		join(t, l, "d", visitor(i), t0.Add(-time.Minute))
	}
	type obs struct {
		at       time.Time
		admitted uint64
	}
	var seen []obs
	now := t0
	// Uneven gaps: many calls, then long silences.
	for i := range 400 {
		gap := time.Duration(i%7) * 137 * time.Millisecond
		if i%50 == 0 {
			gap = 20 * time.Second
		}
		now = now.Add(gap)
		c := counters(t, l, "d", now)
		seen = append(seen, obs{now, c.Admitted})
	}
	for i, a := range seen {
		if max := burst + rate*a.at.Sub(t0).Minutes(); float64(a.admitted) > max+1e-9 {
			t.Fatalf("at +%v: %d admitted; want at most burst + rate*elapsed = %.1f", a.at.Sub(t0), a.admitted, max)
		}
		for _, b := range seen[i+1:] {
			if max := burst + rate*b.at.Sub(a.at).Minutes(); float64(b.admitted-a.admitted) > max+1e-9 {
				t.Fatalf("between +%v and +%v: %d admitted; want at most %.1f", a.at.Sub(t0), b.at.Sub(t0), b.admitted-a.admitted, max)
			}
		}
	}
	last := seen[len(seen)-1]
	if want := rate * last.at.Sub(t0).Minutes(); float64(last.admitted) < want-burst-1 {
		t.Errorf("after %v: %d admitted; want about %.0f (the rate must be used, not just bounded)", last.at.Sub(t0), last.admitted, want)
	}
}

func testCap(t *testing.T, l waitroom.Ledger) {
	const maxActive = 10
	create(t, l, "d", waitroom.QueueConfig{Start: t0, Burst: 100, MaxActive: maxActive, AccessTTL: time.Hour}, 6000)
	for i := range 50 {
		join(t, l, "d", visitor(i), t0.Add(-time.Minute))
	}
	now := t0
	done := 0
	for step := range 100 {
		now = now.Add(time.Second)
		c := counters(t, l, "d", now)
		if c.Active > maxActive {
			t.Fatalf("step %d: %d active; want at most %d", step, c.Active, maxActive)
		}
		if c.Admitted-c.Completed != c.Active {
			t.Fatalf("step %d: admitted %d - completed %d != active %d", step, c.Admitted, c.Completed, c.Active)
		}
		if step == 0 && c.Active != maxActive {
			t.Fatalf("at the start: %d active; want the cap %d filled", c.Active, maxActive)
		}
		// Every third second one admitted visitor finishes.
		if step%3 == 0 && done < 30 {
			c = release(t, l, "d", visitor(int(firstLive(t, l, now, c))), now)
			done++
			if c.Active > maxActive {
				t.Fatalf("after release: %d active", c.Active)
			}
		}
	}
	if c := counters(t, l, "d", now); c.Admitted != maxActive+uint64(done) {
		t.Errorf("admitted %d; want the cap plus one per release = %d", c.Admitted, maxActive+done)
	}
}

// firstLive returns the index of an admitted, unreleased visitor of "d".
func firstLive(t *testing.T, l waitroom.Ledger, now time.Time, c waitroom.Counters) uint64 {
	t.Helper()
	for seq := uint64(1); seq <= c.Joined; seq++ {
		if s := seat(t, l, "d", seq, now); s.Admitted() && s.Live() {
			return seq - 1 // visitor(i) joined as seq i+1
		}
	}
	t.Fatal("no live admitted visitor")
	return 0
}

func testRelease(t *testing.T, l waitroom.Ledger) {
	create(t, l, "d", waitroom.QueueConfig{Start: t0, Burst: 10, MaxActive: 1, AccessTTL: time.Hour}, 600)
	join(t, l, "d", "a", t0)
	_, c := join(t, l, "d", "b", t0)
	if c.Frontier != 1 || c.Active != 1 {
		t.Fatalf("with cap 1: frontier %d active %d; want 1, 1", c.Frontier, c.Active)
	}
	c = release(t, l, "d", "a", t0)
	if c.Frontier != 2 || c.Active != 1 || c.Completed != 1 {
		t.Fatalf("after a's release, same instant: frontier %d active %d completed %d; want b admitted at once", c.Frontier, c.Active, c.Completed)
	}
	if s := seat(t, l, "d", 1, t0); s.Live() || s.Released != waitroom.ReleasedDone {
		t.Errorf("a's seat = %+v; want released %q", s, waitroom.ReleasedDone)
	}
	ok, _, err := l.Release(context.Background(), "d", "a", t0)
	if err != nil || ok {
		t.Errorf("second Release = %v, %v; want false, nil", ok, err)
	}
	ok, _, err = l.Release(context.Background(), "d", "stranger", t0)
	if err != nil || ok {
		t.Errorf("Release of a stranger = %v, %v; want false, nil", ok, err)
	}
}

func testRejoin(t *testing.T, l waitroom.Ledger) {
	create(t, l, "d", waitroom.QueueConfig{Start: t0, Burst: 10, AccessTTL: time.Hour}, 600)
	a, _ := join(t, l, "d", "a", t0)
	join(t, l, "d", "b", t0)
	release(t, l, "d", "a", t0)
	again, _ := join(t, l, "d", "a", t0.Add(time.Second))
	if again.Existing || again.Seq != 3 || again.Position != 3 {
		t.Errorf("rejoin after release = %+v (first place %+v); want a new place at the back, seq 3", again, a)
	}
}

func testLeft(t *testing.T, l waitroom.Ledger) {
	// Burst 1, one a minute: a goes in at the start; b leaves; at +1m the
	// one credit must go to c, not be spent on b's empty place.
	create(t, l, "d", waitroom.QueueConfig{Start: t0, Burst: 1, AccessTTL: time.Hour}, 1)
	for _, v := range []string{"a", "b", "c", "d"} {
		join(t, l, "d", v, t0.Add(-time.Minute))
	}
	c := counters(t, l, "d", t0)
	if c.Frontier != 1 || c.Waiting != 3 {
		t.Fatalf("at the start: frontier %d waiting %d; want 1, 3", c.Frontier, c.Waiting)
	}
	first := firstLive(t, l, t0, c)
	// Make the two places right behind the first leave.
	ctx := context.Background()
	var behind []string
	for pos := uint64(2); pos <= 3; pos++ {
		for seq := uint64(1); seq <= 4; seq++ {
			if p, _ := l.Position(ctx, "d", seq, t0); p == pos {
				behind = append(behind, []string{"a", "b", "c", "d"}[seq-1])
			}
		}
	}
	for _, v := range behind {
		c = release(t, l, "d", v, t0)
	}
	if c.Waiting != 1 || c.Left != 2 || c.Completed != 0 {
		t.Fatalf("after two left: waiting %d left %d completed %d; want 1, 2, 0", c.Waiting, c.Left, c.Completed)
	}
	c = counters(t, l, "d", t0.Add(time.Minute))
	if c.Frontier != 4 || c.Admitted != 2 || c.Waiting != 0 {
		t.Errorf("one credit later: frontier %d admitted %d waiting %d; want the leavers skipped and the last admitted (4, 2, 0); first was %d", c.Frontier, c.Admitted, c.Waiting, first)
	}
}

func testNoShow(t *testing.T, l waitroom.Ledger) {
	ctx := context.Background()
	create(t, l, "d", waitroom.QueueConfig{Start: t0, Burst: 10, MaxActive: 2, NoShowWindow: time.Minute, AccessTTL: time.Hour}, 600)
	for _, v := range []string{"a", "b", "c", "d"} {
		join(t, l, "d", v, t0)
	}
	// a (seq 1) shows up, b (seq 2) does not.
	if s, err := l.Arrive(ctx, "d", 1, t0.Add(30*time.Second)); err != nil || !s.Arrived {
		t.Fatalf("Arrive(1) = %+v, %v; want arrived", s, err)
	}
	if s, err := l.Arrive(ctx, "d", 3, t0.Add(30*time.Second)); err != nil || s.Arrived || s.Admitted() {
		t.Fatalf("Arrive(3) while waiting = %+v, %v; want no effect", s, err)
	}
	c := counters(t, l, "d", t0.Add(59*time.Second))
	if c.Active != 2 || c.Frontier != 2 {
		t.Fatalf("inside the window: active %d frontier %d; want 2, 2", c.Active, c.Frontier)
	}
	c = counters(t, l, "d", t0.Add(time.Minute))
	if c.NoShows != 1 || c.Active != 2 || c.Frontier != 3 {
		t.Fatalf("window over: no-shows %d active %d frontier %d; want b reclaimed and c admitted (1, 2, 3)", c.NoShows, c.Active, c.Frontier)
	}
	if s := seat(t, l, "d", 2, t0.Add(time.Minute)); s.Released != waitroom.ReleasedNoShow {
		t.Errorf("b's seat = %+v; want released %q", s, waitroom.ReleasedNoShow)
	}
	if s := seat(t, l, "d", 1, t0.Add(time.Minute)); !s.Live() {
		t.Errorf("a arrived in time but was released: %+v", s)
	}
	if s, _ := l.Arrive(ctx, "d", 2, t0.Add(61*time.Second)); s.Arrived || s.Live() {
		t.Errorf("b arriving late = %+v; want still released", s)
	}
}

func testExpiry(t *testing.T, l waitroom.Ledger) {
	ctx := context.Background()
	create(t, l, "d", waitroom.QueueConfig{Start: t0, Burst: 10, MaxActive: 1, NoShowWindow: time.Minute, AccessTTL: 5 * time.Minute}, 600)
	join(t, l, "d", "a", t0)
	join(t, l, "d", "b", t0)
	if _, err := l.Arrive(ctx, "d", 1, t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if c := counters(t, l, "d", t0.Add(5*time.Minute-time.Nanosecond)); c.Frontier != 1 {
		t.Fatalf("before the access ran out: frontier %d; want 1", c.Frontier)
	}
	c := counters(t, l, "d", t0.Add(5*time.Minute))
	if c.Expired != 1 || c.Frontier != 2 || c.Active != 1 {
		t.Fatalf("access ran out: expired %d frontier %d active %d; want 1, 2, 1", c.Expired, c.Frontier, c.Active)
	}
	if s := seat(t, l, "d", 1, t0.Add(5*time.Minute)); s.Released != waitroom.ReleasedExpired {
		t.Errorf("a's seat = %+v; want released %q", s, waitroom.ReleasedExpired)
	}
}

func testPauseClose(t *testing.T, l waitroom.Ledger) {
	ctx := context.Background()
	create(t, l, "d", waitroom.QueueConfig{Start: t0, Burst: 1, AccessTTL: time.Hour}, 60)
	if _, err := l.SetFlow(ctx, "d", waitroom.Flow{RatePerMinute: 60, Paused: true}, t0); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		join(t, l, "d", visitor(i), t0)
	}
	if c := counters(t, l, "d", t0.Add(time.Minute)); c.Admitted != 0 || !c.Flow.Paused {
		t.Fatalf("paused a minute: admitted %d, paused %v; want 0, true", c.Admitted, c.Flow.Paused)
	}
	c, err := l.SetFlow(ctx, "d", waitroom.Flow{RatePerMinute: 60}, t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if c.Admitted != 1 {
		t.Fatalf("unpaused: admitted %d; want the saved burst (1) at once, no more", c.Admitted)
	}
	if c := counters(t, l, "d", t0.Add(2*time.Minute)); c.Admitted < 50 || c.Admitted > 61 {
		t.Fatalf("a minute after unpausing at 60/min: admitted %d; want about 60", c.Admitted)
	}
	if _, err := l.Close(ctx, "d", t0.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.Join(ctx, "d", "new", t0.Add(2*time.Minute)); !errors.Is(err, waitroom.ErrClosed) {
		t.Errorf("Join after Close: %v; want ErrClosed", err)
	}
	before := counters(t, l, "d", t0.Add(2*time.Minute))
	after := counters(t, l, "d", t0.Add(10*time.Minute))
	if !after.Closed || after.Admitted != before.Admitted {
		t.Errorf("closed: admitted went %d -> %d, closed %v; want no admissions", before.Admitted, after.Admitted, after.Closed)
	}
}

func testClock(t *testing.T, l waitroom.Ledger) {
	create(t, l, "d", waitroom.QueueConfig{Start: t0, Burst: 1, AccessTTL: time.Hour}, 60)
	for i := range 10 {
		join(t, l, "d", visitor(i), t0.Add(-time.Second))
	}
	c1 := counters(t, l, "d", t0.Add(5*time.Second))
	c2 := counters(t, l, "d", t0.Add(time.Second)) // a replica with a slow clock
	c3 := counters(t, l, "d", t0.Add(6*time.Second))
	if c2.Admitted < c1.Admitted || c3.Admitted > c1.Admitted+1 {
		t.Errorf("admitted %d, then %d with an older clock, then %d a second later; want never backwards nor credit counted twice", c1.Admitted, c2.Admitted, c3.Admitted)
	}
	p, _ := join(t, l, "d", "late", t0.Add(-time.Hour))
	if p.PreQueue {
		t.Errorf("a join with a clock before the start, after the start was seen, went into the pre-queue")
	}
}

func testMaxJoins(t *testing.T, l waitroom.Ledger) {
	create(t, l, "d", waitroom.QueueConfig{Start: t0, Burst: 1, AccessTTL: time.Hour, MaxJoins: 3}, 0)
	for i := range 3 {
		join(t, l, "d", visitor(i), t0)
	}
	join(t, l, "d", visitor(0), t0) // an existing place is not a new one
	if _, _, err := l.Join(context.Background(), "d", "one-too-many", t0); !errors.Is(err, waitroom.ErrQueueFull) {
		t.Errorf("Join past MaxJoins: %v; want ErrQueueFull", err)
	}
}

func testConcurrentJoins(t *testing.T, l waitroom.Ledger) {
	create(t, l, "d", waitroom.QueueConfig{Start: t0, Burst: 1000, MaxActive: 50, AccessTTL: time.Hour}, 6000)
	const workers, each = 8, 100
	var mu sync.Mutex
	seqs := map[string]uint64{}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				// Every visitor joins from two workers at once.
				v := visitor((w/2)*each + i)
				p, _, err := l.Join(context.Background(), "d", v, t0.Add(time.Duration(i)*time.Millisecond))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if old, ok := seqs[v]; ok && old != p.Seq {
					t.Errorf("%s got places %d and %d", v, old, p.Seq)
				}
				seqs[v] = p.Seq
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	all := make([]uint64, 0, len(seqs))
	for _, s := range seqs {
		all = append(all, s)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	for i, s := range all {
		if s != uint64(i+1) {
			t.Fatalf("seqs are not 1..%d without gaps: %v", len(all), all)
		}
	}
	if c := counters(t, l, "d", t0.Add(time.Second)); c.Joined != workers/2*each || c.Active != 50 {
		t.Errorf("joined %d active %d; want %d, 50", c.Joined, c.Active, workers/2*each)
	}
}
