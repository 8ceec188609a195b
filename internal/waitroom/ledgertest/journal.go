package ledgertest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/surge-commerce/surge/internal/waitroom"
)

// JournalSuite runs the conformance tests of a waitroom.Journal and of the
// journaled ledger over it. newJournal returns a fresh, empty journal and
// a function that opens it again as a restarted process would after a
// crash: the journal opened before is not used again (the function may
// close it, as a dying process lets go of its files), and the ledger
// that used it writes nothing more. Both register cleanup with t.
func JournalSuite(t *testing.T, newJournal func(t *testing.T) (waitroom.Journal, func() waitroom.Journal)) {
	t.Run("Ledger", func(t *testing.T) {
		LedgerSuite(t, func(t *testing.T) waitroom.Ledger {
			j, _ := newJournal(t)
			return mustJournaled(t, j)
		})
	})
	t.Run("AppendReplayReset", func(t *testing.T) { testJournalOrder(t, newJournal) })
	t.Run("RestartKeepsTheLine", func(t *testing.T) { testRestart(t, newJournal) })
	t.Run("ConcurrentRestart", func(t *testing.T) { testConcurrentRestart(t, newJournal) })
	t.Run("StatusWritesNothing", func(t *testing.T) { testStatusWritesNothing(t, newJournal) })
	t.Run("WriteFailure", func(t *testing.T) { testWriteFailure(t, newJournal) })
}

func mustJournaled(t *testing.T, j waitroom.Journal) *waitroom.MemLedger {
	t.Helper()
	l, err := waitroom.NewJournaledLedger(context.Background(), j)
	if err != nil {
		t.Fatalf("NewJournaledLedger: %v", err)
	}
	return l
}

func replayAll(t *testing.T, j waitroom.Journal) []waitroom.JournalEntry {
	t.Helper()
	var out []waitroom.JournalEntry
	if err := j.Replay(context.Background(), func(e waitroom.JournalEntry) error {
		out = append(out, e)
		return nil
	}); err != nil {
		t.Fatalf("Replay: %v", err)
	}
	return out
}

// testJournalOrder: entries come back in the order appended, across
// appends and drops; a reset forgets its drop's earlier entries only.
func testJournalOrder(t *testing.T, newJournal func(t *testing.T) (waitroom.Journal, func() waitroom.Journal)) {
	ctx := context.Background()
	j, reopen := newJournal(t)
	e := func(drop string, b ...byte) waitroom.JournalEntry {
		return waitroom.JournalEntry{Drop: drop, Record: b}
	}
	if got := replayAll(t, j); len(got) != 0 {
		t.Fatalf("a new journal replays %d entries", len(got))
	}
	if err := j.Append(ctx, []waitroom.JournalEntry{e("a", 1), e("b", 2), e("a", 3, 0, 255)}); err != nil {
		t.Fatal(err)
	}
	if err := j.Append(ctx, []waitroom.JournalEntry{e("b", 4), {Drop: "a", Reset: true}, e("a", 5)}); err != nil {
		t.Fatal(err)
	}
	if err := j.Append(ctx, nil); err != nil {
		t.Fatalf("Append(nothing): %v", err)
	}
	want := []waitroom.JournalEntry{e("b", 2), e("b", 4), e("a", 5)}
	if got := replayAll(t, j); !reflect.DeepEqual(got, want) {
		t.Errorf("replay = %v, want %v", got, want)
	}
	j = reopen()
	if got := replayAll(t, j); !reflect.DeepEqual(got, want) {
		t.Errorf("replay after reopening = %v, want %v", got, want)
	}
	stop := errors.New("stop")
	n := 0
	if err := j.Replay(ctx, func(waitroom.JournalEntry) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Errorf("Replay with fn failing: %v after %d entries; want fn's error after 1", err, n)
	}
}

// state is everything a ledger tells about a drop at one instant.
type state struct {
	Counters  waitroom.Counters
	Seats     []waitroom.Seat
	Positions []uint64
}

func snapshot(t *testing.T, l waitroom.Ledger, drop string, now time.Time) state {
	t.Helper()
	ctx := context.Background()
	var s state
	s.Counters = counters(t, l, drop, now)
	for seq := uint64(1); seq <= s.Counters.Joined; seq++ {
		st := seat(t, l, drop, seq, now)
		st.AdmittedAt = st.AdmittedAt.UTC()
		s.Seats = append(s.Seats, st)
		p, err := l.Position(ctx, drop, seq, now)
		if err != nil {
			t.Fatal(err)
		}
		s.Positions = append(s.Positions, p)
	}
	return s
}

// gated passes appends to a journal until it is cut off, then discards
// them: what a crashed process would still do in memory, writing nothing.
type gated struct {
	waitroom.Journal
	cut atomic.Bool
}

func (g *gated) Append(ctx context.Context, es []waitroom.JournalEntry) error {
	if g.cut.Load() {
		return nil
	}
	return g.Journal.Append(ctx, es)
}

// running is a journaled ledger in use and the gate of its journal.
type running struct {
	waitroom.Ledger
	gate *gated
}

func startLedger(t *testing.T, j waitroom.Journal) running {
	t.Helper()
	g := &gated{Journal: j}
	return running{mustJournaled(t, g), g}
}

// restart crashes r at times[0] and opens a ledger from its journal, as a
// restarted process would. It checks the restarted ledger tells exactly
// what r does about every drop at every instant of times: at the crash,
// and later, when admissions, no-shows and expiry have come due (r goes
// on in memory for that, writing nothing). r must not be used again.
func restart(t *testing.T, step string, r running, reopen func() waitroom.Journal, drops []string, times ...time.Time) running {
	t.Helper()
	var before []state
	for i, now := range times {
		if i == 1 {
			r.gate.cut.Store(true)
		}
		for _, d := range drops {
			before = append(before, snapshot(t, r, d, now))
		}
	}
	r.gate.cut.Store(true)
	again := startLedger(t, reopen())
	i := 0
	for _, now := range times {
		for _, d := range drops {
			if after := snapshot(t, again, d, now); !reflect.DeepEqual(before[i], after) {
				t.Fatalf("%s: drop %s at +%v differs after a restart:\nbefore %+v\nafter  %+v", step, d, now.Sub(t0), before[i], after)
			}
			i++
		}
	}
	return again
}

// testRestart drives two drops through a random day (pre-queue joins,
// the draw, paced admissions with uneven gaps between calls, arrivals,
// leaving, finishing, no-shows, expiry, flow changes, a close, and one
// drop deleted and made again), restarting from the journal at many
// points: the restarted ledger tells exactly what the running one does,
// then and later.
func testRestart(t *testing.T, newJournal func(t *testing.T) (waitroom.Journal, func() waitroom.Journal)) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(7, 11))
	j, reopen := newJournal(t)
	l := startLedger(t, j)
	drops := []string{"a", "b"}
	cfgs := map[string]waitroom.QueueConfig{
		"a": {Start: t0, Burst: 3, MaxActive: 5, NoShowWindow: 20 * time.Second, AccessTTL: time.Minute},
		"b": {Start: t0.Add(30 * time.Second), Burst: 1, AccessTTL: 45 * time.Second},
	}
	for _, d := range drops {
		create(t, l, d, cfgs[d], 30)
	}
	joined := map[string][]string{}
	now := t0.Add(-2 * time.Minute)
	restarts := 0
	for step := range 600 {
		// Uneven time: bursts of calls a few milliseconds apart, and
		// silences long enough for the no-show and expiry sweeps.
		switch r := rng.IntN(100); {
		case r < 70:
			now = now.Add(time.Duration(rng.IntN(50)) * time.Millisecond)
		case r < 97:
			now = now.Add(time.Duration(rng.IntN(3000)) * time.Millisecond)
		default:
			now = now.Add(time.Duration(10+rng.IntN(40)) * time.Second)
		}
		d := drops[rng.IntN(len(drops))]
		switch r := rng.IntN(100); {
		case r < 35:
			v := fmt.Sprintf("v:%s%d", d, rng.IntN(80))
			if _, _, err := l.Join(ctx, d, v, now); err != nil && !errors.Is(err, waitroom.ErrClosed) {
				t.Fatal(err)
			}
			joined[d] = append(joined[d], v)
		case r < 55:
			counters(t, l, d, now) // a status check
		case r < 65:
			if c := counters(t, l, d, now); c.Joined > 0 {
				seq := 1 + uint64(rng.IntN(int(c.Joined)))
				if _, err := l.Seat(ctx, d, seq, now); err != nil {
					t.Fatal(err)
				}
				if rng.IntN(2) == 0 {
					if _, err := l.Arrive(ctx, d, seq, now); err != nil {
						t.Fatal(err)
					}
				}
			}
		case r < 75:
			if vs := joined[d]; len(vs) > 0 {
				if _, _, err := l.Release(ctx, d, vs[rng.IntN(len(vs))], now); err != nil {
					t.Fatal(err)
				}
			}
		case r < 78:
			if _, err := l.SetFlow(ctx, d, waitroom.Flow{RatePerMinute: float64(10 + rng.IntN(120)), Paused: rng.IntN(4) == 0}, now); err != nil {
				t.Fatal(err)
			}
		case r < 79 && step > 400:
			if _, err := l.Close(ctx, d, now); err != nil {
				t.Fatal(err)
			}
		case r < 80 && d == "b" && step > 200 && step < 400:
			// A new incarnation: everything before it is forgotten.
			if err := l.Delete(ctx, d); err != nil {
				t.Fatal(err)
			}
			if _, err := l.Create(ctx, d, cfgs[d]); err != nil {
				t.Fatal(err)
			}
			joined[d] = nil
		case r < 82:
			// Every replica opens with its config at start; a changed
			// one is applied.
			cfg := cfgs[d]
			cfg.MaxActive = 3 + rng.IntN(5)
			if _, err := l.Create(ctx, d, cfg); err != nil {
				t.Fatal(err)
			}
		}
		if step%25 == 24 {
			restarts++
			// Compare at now, and later, when the sweeps come due; from
			// then on the restarted ledger is the one in use, as after a
			// crash.
			l = restart(t, fmt.Sprintf("restart %d (step %d)", restarts, step), l, reopen, drops, now, now.Add(30*time.Second))
			now = now.Add(30 * time.Second)
		}
	}
	if c := counters(t, l, "a", now); c.Admitted == 0 || c.Completed+c.NoShows+c.Expired == 0 || c.Left == 0 {
		t.Errorf("the workload did not exercise admissions and releases: %+v", c)
	}
}

// testConcurrentRestart: joins, status checks and arrivals from many
// goroutines at once, then a restart: the same line.
func testConcurrentRestart(t *testing.T, newJournal func(t *testing.T) (waitroom.Journal, func() waitroom.Journal)) {
	ctx := context.Background()
	j, reopen := newJournal(t)
	l := startLedger(t, j)
	create(t, l, "d", waitroom.QueueConfig{Start: t0, Burst: 20, MaxActive: 40, NoShowWindow: time.Minute, AccessTTL: 2 * time.Minute}, 600)
	var clock atomic.Int64
	clock.Store(int64(-30 * time.Second))
	tick := func() time.Time { return t0.Add(time.Duration(clock.Add(int64(7 * time.Millisecond)))) }
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 60 {
				v := fmt.Sprintf("v:%d", (w*60+i)%300)
				p, _, err := l.Join(ctx, "d", v, tick())
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := l.Counters(ctx, "d", tick()); err != nil {
					t.Error(err)
				}
				if s, err := l.Seat(ctx, "d", p.Seq, tick()); err == nil && s.Admitted() && i%3 == 0 {
					if _, err := l.Arrive(ctx, "d", p.Seq, tick()); err != nil {
						t.Error(err)
					}
				}
				if i%11 == 0 {
					if _, _, err := l.Release(ctx, "d", v, tick()); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Wait()
	now := tick()
	restart(t, "after concurrent calls", l, reopen, []string{"d"}, now, now.Add(90*time.Second), now.Add(5*time.Minute))
}

// countingJournal counts the entries appended through it.
type countingJournal struct {
	waitroom.Journal
	entries atomic.Int64
	fail    atomic.Bool
}

func (c *countingJournal) Append(ctx context.Context, es []waitroom.JournalEntry) error {
	if c.fail.Load() {
		return errors.New("disk full")
	}
	if err := c.Journal.Append(ctx, es); err != nil {
		return err
	}
	c.entries.Add(int64(len(es)))
	return nil
}

// testStatusWritesNothing: status checks that move nothing (the waiting
// in the pre-queue, a full line held by the active cap) write nothing;
// only joins and the calls that move the line do, and a tick that
// admits writes one entry however many are admitted.
func testStatusWritesNothing(t *testing.T, newJournal func(t *testing.T) (waitroom.Journal, func() waitroom.Journal)) {
	ctx := context.Background()
	j, _ := newJournal(t)
	cj := &countingJournal{Journal: j}
	l := mustJournaled(t, cj)
	create(t, l, "d", waitroom.QueueConfig{Start: t0, Burst: 100, MaxActive: 10, AccessTTL: time.Hour}, 60)
	base := cj.entries.Load()
	for i := range 50 {
		join(t, l, "d", visitor(i), t0.Add(-time.Minute))
	}
	if n := cj.entries.Load() - base; n != 50 {
		t.Errorf("50 joins wrote %d entries, want 50", n)
	}
	written := func(what string, want int64, f func()) {
		t.Helper()
		before := cj.entries.Load()
		f()
		if n := cj.entries.Load() - before; n != want {
			t.Errorf("%s wrote %d entries, want %d", what, n, want)
		}
	}
	written("1,000 status checks in the pre-queue", 0, func() {
		for i := range 1000 {
			now := t0.Add(-time.Minute + time.Duration(i)*time.Millisecond)
			counters(t, l, "d", now)
			if _, err := l.Position(ctx, "d", uint64(1+i%50), now); err != nil {
				t.Fatal(err)
			}
		}
	})
	written("the draw and the first admissions", 1, func() { counters(t, l, "d", t0) })
	written("1,000 status checks of a line held by the cap", 0, func() {
		for i := range 1000 {
			now := t0.Add(time.Duration(i) * time.Millisecond)
			counters(t, l, "d", now)
			seat(t, l, "d", uint64(1+i%50), now)
		}
	})
	written("joining again", 0, func() { join(t, l, "d", visitor(3), t0.Add(2*time.Second)) })
}

// testWriteFailure: while the journal cannot write, calls that change
// the line fail as unavailable (and their answers are not given); once
// it writes again, everything queued is written in order and a restart
// finds it.
func testWriteFailure(t *testing.T, newJournal func(t *testing.T) (waitroom.Journal, func() waitroom.Journal)) {
	ctx := context.Background()
	j, reopen := newJournal(t)
	cj := &countingJournal{Journal: j}
	l := startLedger(t, cj)
	create(t, l, "d", waitroom.QueueConfig{Start: t0, Burst: 1, AccessTTL: time.Hour}, 60)
	join(t, l, "d", "v:first", t0.Add(-time.Minute))
	cj.fail.Store(true)
	_, _, err := l.Join(ctx, "d", "v:second", t0.Add(-time.Minute))
	var u interface{ Unavailable() bool }
	if err == nil || !errors.As(err, &u) || !u.Unavailable() {
		t.Fatalf("Join while the journal fails: %v; want an unavailable error", err)
	}
	cj.fail.Store(false)
	p, _ := join(t, l, "d", "v:second", t0.Add(-time.Minute))
	if !p.Existing || p.Seq != 2 {
		t.Errorf("joining again once the journal writes: %+v; want the place taken before, seq 2", p)
	}
	restart(t, "after a failed write", l, reopen, []string{"d"}, t0.Add(-time.Second), t0.Add(time.Minute))
}
