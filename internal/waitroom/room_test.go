package waitroom_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/surge-commerce/surge/internal/admission"
	"github.com/surge-commerce/surge/internal/waitroom"
)

// start is when the test drops start.
var start = time.Date(2030, 6, 1, 18, 0, 0, 0, time.UTC)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

func mustKeys(t testing.TB, id string, fill byte) *waitroom.Keyring {
	t.Helper()
	kr, err := waitroom.NewKeyring(waitroom.Key{ID: id, Secret: []byte(strings.Repeat(string(fill), 32))})
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// env is a Room on a fake clock, a seeded ledger and a stock counter.
type env struct {
	room  *waitroom.Room
	clock *clock
	stock atomic.Int64
	keys  *waitroom.Keyring
}

func newEnv(t testing.TB, mutate func(*waitroom.Config)) *env {
	t.Helper()
	e := &env{clock: &clock{now: start.Add(-2 * time.Hour)}, keys: mustKeys(t, "k1", 'a')}
	e.stock.Store(1000)
	cfg := waitroom.Config{
		Keys:     e.keys,
		Ledger:   waitroom.NewSeededMemLedger([32]byte{9}),
		Stock:    func(ctx context.Context, drop string) (int64, error) { return e.stock.Load(), nil },
		JoinRate: admission.Rate{PerSecond: -1},
		Now:      e.clock.Now,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	r, err := waitroom.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.room = r
	return e
}

func spec(id string) waitroom.DropSpec {
	return waitroom.DropSpec{
		ID: id, Start: start, PreQueueOpens: time.Hour,
		RatePerMinute: 60, Burst: 1,
		NoShowWindow: 2 * time.Minute, AccessTTL: 10 * time.Minute,
	}
}

func (e *env) open(t testing.TB, s waitroom.DropSpec) {
	t.Helper()
	if err := e.room.Open(context.Background(), s); err != nil {
		t.Fatal(err)
	}
}

func (e *env) join(t testing.TB, drop, visitor string) (string, waitroom.Status) {
	t.Helper()
	return e.joinAs(t, drop, visitor, "")
}

func (e *env) joinAs(t testing.TB, drop, visitor, session string) (string, waitroom.Status) {
	t.Helper()
	tk, st, err := e.room.Join(context.Background(), waitroom.JoinRequest{Drop: drop, Visitor: visitor, Session: session, ClientAddr: "192.0.2.1"})
	if err != nil {
		t.Fatalf("Join(%s, %s): %v", drop, visitor, err)
	}
	return tk, st
}

func (e *env) status(t testing.TB, drop, ticket, visitor, session string) waitroom.Status {
	t.Helper()
	st, err := e.room.Status(context.Background(), waitroom.StatusRequest{Drop: drop, Ticket: ticket, Visitor: visitor, Session: session})
	if err != nil {
		t.Fatalf("Status(%s, %s): %v", drop, visitor, err)
	}
	return st
}

func (e *env) counters(t testing.TB, drop string) waitroom.Counters {
	t.Helper()
	c, err := e.room.Counters(context.Background(), drop)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestPreQueueThenFIFO(t *testing.T) {
	e := newEnv(t, nil)
	e.open(t, spec("d"))

	if _, _, err := e.room.Join(context.Background(), waitroom.JoinRequest{Drop: "d", Visitor: "v:early"}); !errors.Is(err, waitroom.ErrNotOpen) {
		t.Fatalf("Join before the pre-queue opens: %v; want ErrNotOpen", err)
	}
	e.clock.Set(start.Add(-time.Hour))
	const n = 30
	tickets := make([]string, n)
	for i := range n {
		var st waitroom.Status
		tickets[i], st = e.join(t, "d", fmt.Sprintf("v:%d", i))
		if st.State != waitroom.StatePreQueue || st.Position != 0 {
			t.Fatalf("pre-queue join %d: %+v; want pre_queue, no position", i, st)
		}
		if st.EstimatedWait != start.Sub(e.clock.Now()) || st.PollAfter < 2*time.Second || st.PollAfter > 31*time.Second {
			t.Fatalf("pre-queue status %+v; want a wait until the start and a poll hint in [2s, 31s]", st)
		}
		e.clock.Add(time.Second)
	}
	e.clock.Set(start)
	seen := map[uint64]bool{}
	inOrder := 0
	for i := range n {
		st := e.status(t, "d", tickets[i], fmt.Sprintf("v:%d", i), "")
		if st.Position < 1 || st.Position > n || seen[st.Position] {
			t.Fatalf("status of pre-queue joiner %d at the start: %+v; want a distinct position in 1..%d", i, st, n)
		}
		seen[st.Position] = true
		if st.Position == uint64(i+1) {
			inOrder++
		}
		if st.Ticket == "" {
			t.Fatalf("the first status after the start gave no ticket holding the drawn position")
		}
		again := e.status(t, "d", st.Ticket, fmt.Sprintf("v:%d", i), "")
		if again.Position != st.Position || again.Ticket != "" {
			t.Fatalf("status with the new ticket: %+v; want position %d and no further ticket", again, st.Position)
		}
		tickets[i] = st.Ticket
	}
	if inOrder > n/3 {
		t.Errorf("%d of %d kept their join order", inOrder, n)
	}
	for i := range 5 {
		_, st := e.join(t, "d", fmt.Sprintf("late:%d", i))
		if st.Position != uint64(n+1+i) || st.State != waitroom.StateWaiting {
			t.Fatalf("join %d after the start: %+v; want waiting at %d (FIFO)", i, st, n+1+i)
		}
		if st.Ahead != st.Position-1-e.counters(t, "d").Frontier {
			t.Fatalf("ahead = %d at position %d", st.Ahead, st.Position)
		}
		if st.EstimatedWait <= 0 {
			t.Fatalf("no wait estimate: %+v", st)
		}
	}
}

// TestPreQueueFirstPollsSpread: the pre-queue is told to come back at
// the start plus a delay spread over PreQueue/StartPollRate seconds, so
// its polls do not all land in the first second of the drop.
func TestPreQueueFirstPollsSpread(t *testing.T) {
	const n, rate = 4000, 400 // a 10 s window
	e := newEnv(t, func(c *waitroom.Config) { c.StartPollRate = rate })
	e.open(t, spec("d"))
	e.clock.Set(start.Add(-time.Hour))
	tickets := make([]string, n)
	for i := range n {
		tickets[i], _ = e.join(t, "d", fmt.Sprintf("v:%d", i))
	}
	e.clock.Set(start.Add(-5 * time.Second))
	var perSecond [12]int
	for i := range n {
		st := e.status(t, "d", tickets[i], fmt.Sprintf("v:%d", i), "")
		after := st.PollAfter - 5*time.Second // from the start
		if st.State != waitroom.StatePreQueue || after < -3*time.Second || after >= 10*time.Second {
			t.Fatalf("visitor %d: %+v; want a first poll within 10s after the start", i, st)
		}
		perSecond[max(0, int(after/time.Second))]++
	}
	// Evenly spread: about n/10 a second; the minimum poll interval folds
	// the first three seconds into one.
	for sec, got := range perSecond[3:10] {
		if got < n/10*7/10 || got > n/10*13/10 {
			t.Errorf("second %d after the start: %d first polls, want about %d (%v)", sec+3, got, n/10, perSecond)
		}
	}
}

// TestDiscoverDrop: a drop another replica created is found through
// Discover on first use; unknown IDs from clients are looked up at a
// bounded rate.
func TestDiscoverDrop(t *testing.T) {
	var asked atomic.Int64
	e := newEnv(t, func(c *waitroom.Config) {
		c.Discover = func(ctx context.Context, id string) (waitroom.DropSpec, bool, error) {
			asked.Add(1)
			if id != "elsewhere" {
				return waitroom.DropSpec{}, false, nil
			}
			return spec("elsewhere"), true, nil
		}
	})
	e.clock.Set(start.Add(-time.Minute))
	if _, st := e.join(t, "elsewhere", "v:1"); st.State != waitroom.StatePreQueue {
		t.Fatalf("join a drop known only to the store: %+v", st)
	}
	if _, st := e.join(t, "elsewhere", "v:2"); st.State != waitroom.StatePreQueue || asked.Load() != 1 {
		t.Fatalf("second join: %+v after %d lookups; want the drop remembered", st, asked.Load())
	}
	for i := range 100 {
		_, _, err := e.room.Join(context.Background(), waitroom.JoinRequest{Drop: fmt.Sprintf("junk-%d", i), Visitor: "v:x"})
		if !errors.Is(err, waitroom.ErrUnknownDrop) {
			t.Fatalf("junk drop: %v", err)
		}
	}
	// The clock stands still: only the burst of 20 (the first lookup
	// included) reaches the store.
	if n := asked.Load(); n != 20 {
		t.Errorf("%d lookups, want 20 (a burst of 20)", n)
	}
}

func TestTicketsRejected(t *testing.T) {
	e := newEnv(t, nil)
	e.open(t, spec("d"))
	e.open(t, spec("other"))
	e.clock.Set(start.Add(-time.Minute))
	ticket, _ := e.join(t, "d", "c:1")
	otherTicket, _ := e.join(t, "other", "c:1")
	e.join(t, "d", "c:2")

	forger := mustKeys(t, "k1", 'b') // same key ID, another secret
	forged := forger.SignTicket(waitroom.Ticket{Drop: "d", Visitor: "c:1", Seq: 1, Position: 1, Expires: start.Add(time.Hour)})
	parsed, err := e.keys.ParseTicket(ticket)
	if err != nil {
		t.Fatal(err)
	}
	// A ticket with the right epoch, signed with a key we do not hold.
	parsed.Position = 1
	forgedRightEpoch := forger.SignTicket(parsed)

	i := strings.IndexByte(ticket, '.') + 3
	tampered := ticket[:i] + string(flip(ticket[i])) + ticket[i+1:]

	cases := []struct {
		name, drop, ticket, visitor string
		at                          time.Time
	}{
		{"garbage", "d", "not a ticket", "c:1", start},
		{"empty", "d", "", "c:1", start},
		{"forged", "d", forged, "c:1", start},
		{"forged with the right epoch", "d", forgedRightEpoch, "c:1", start},
		{"tampered", "d", tampered, "c:1", start},
		{"cross-drop", "d", otherTicket, "c:1", start},
		{"shared with another visitor", "d", ticket, "c:2", start},
		{"expired", "d", ticket, "c:1", start.Add(13 * time.Hour)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e.clock.Set(tc.at)
			st, err := e.room.Status(context.Background(), waitroom.StatusRequest{Drop: tc.drop, Ticket: tc.ticket, Visitor: tc.visitor, Session: "s1"})
			if !errors.Is(err, waitroom.ErrBadTicket) {
				t.Errorf("Status = %+v, %v; want ErrBadTicket", st, err)
			}
		})
	}

	t.Run("replayed after the place was used", func(t *testing.T) {
		e.clock.Set(start)
		st := e.status(t, "d", ticket, "c:1", "s1")
		if st.State != waitroom.StateAdmitted {
			// c:1 drew position 2: one admission a second.
			e.clock.Add(2 * time.Second)
			st = e.status(t, "d", ticket, "c:1", "s1")
		}
		if st.State != waitroom.StateAdmitted {
			t.Fatalf("status = %+v; want admitted", st)
		}
		if err := e.room.Done(context.Background(), "d", "c:1"); err != nil {
			t.Fatal(err)
		}
		st = e.status(t, "d", ticket, "c:1", "s1")
		if st.State != waitroom.StateExpired || st.AccessToken != "" {
			t.Fatalf("status of a used ticket = %+v; want expired, no access token", st)
		}
		if st.Ticket != "" {
			ticket = st.Ticket
		}
		// Joining again queues at the back, and the old ticket stays dead.
		_, st2 := e.join(t, "d", "c:1")
		if st2.Position != 3 {
			t.Fatalf("rejoin after use: %+v; want position 3", st2)
		}
		if st := e.status(t, "d", ticket, "c:1", "s1"); st.State != waitroom.StateExpired {
			t.Fatalf("old ticket after rejoin: %+v; want expired", st)
		}
	})

	t.Run("from an earlier incarnation of the drop", func(t *testing.T) {
		if err := e.room.Remove(context.Background(), "other"); err != nil {
			t.Fatal(err)
		}
		e.open(t, spec("other"))
		_, err := e.room.Status(context.Background(), waitroom.StatusRequest{Drop: "other", Ticket: otherTicket, Visitor: "c:1"})
		if !errors.Is(err, waitroom.ErrBadTicket) {
			t.Fatalf("old ticket on a reopened drop: %v; want ErrBadTicket", err)
		}
	})

	t.Run("unknown drop", func(t *testing.T) {
		_, err := e.room.Status(context.Background(), waitroom.StatusRequest{Drop: "nope", Ticket: ticket, Visitor: "c:1"})
		if !errors.Is(err, waitroom.ErrUnknownDrop) {
			t.Fatalf("Status on an unknown drop: %v; want ErrUnknownDrop", err)
		}
	})
}

func flip(c byte) byte {
	if c == 'A' {
		return 'B'
	}
	return 'A'
}

// admit joins visitor after the start and waits (on the fake clock)
// until they are admitted, returning their access token for session.
func (e *env) admit(t *testing.T, drop, visitor, session string) (ticket, access string) {
	t.Helper()
	ticket, st := e.joinAs(t, drop, visitor, session)
	for range 1000 {
		if st.State == waitroom.StateAdmitted {
			return ticket, st.AccessToken
		}
		if st.State != waitroom.StateWaiting {
			t.Fatalf("%s: %+v", visitor, st)
		}
		e.clock.Add(time.Second)
		st = e.status(t, drop, ticket, visitor, session)
	}
	t.Fatalf("%s never admitted", visitor)
	return "", ""
}

func TestAccessToken(t *testing.T) {
	e := newEnv(t, nil)
	e.open(t, spec("d"))
	e.open(t, spec("other"))
	e.clock.Set(start)
	ctx := context.Background()
	_, access := e.admit(t, "d", "c:1", "session-1")
	if access == "" {
		t.Fatal("admitted without an access token")
	}
	a, err := e.room.VerifyAccess(ctx, access, "d", "session-1")
	if err != nil {
		t.Fatalf("VerifyAccess: %v", err)
	}
	if a.Drop != "d" || a.Visitor != "c:1" || a.Session != "session-1" || !a.Expires.Equal(start.Add(10*time.Minute)) {
		t.Errorf("access = %+v", a)
	}
	forged := mustKeys(t, "k1", 'z')
	for _, tc := range []struct{ name, token, drop, session string }{
		{"other session", access, "d", "session-2"},
		{"no session", access, "d", ""},
		{"other drop", access, "other", "session-1"},
		{"garbage", "x.y.z", "d", "session-1"},
		{"a ticket is not an access token", forged.SignTicket(waitroom.Ticket{Drop: "d"}), "d", "session-1"},
	} {
		if _, err := e.room.VerifyAccess(ctx, tc.token, tc.drop, tc.session); !errors.Is(err, waitroom.ErrBadAccess) {
			t.Errorf("%s: %v; want ErrBadAccess", tc.name, err)
		}
	}
	// A ticket signed with our own key does not pass for an access token.
	ticket, _ := e.join(t, "d", "c:1")
	if _, err := e.room.VerifyAccess(ctx, ticket, "d", "session-1"); !errors.Is(err, waitroom.ErrBadAccess) {
		t.Errorf("ticket used as an access token: %v; want ErrBadAccess", err)
	}
	e.clock.Set(start.Add(10 * time.Minute))
	if _, err := e.room.VerifyAccess(ctx, access, "d", "session-1"); !errors.Is(err, waitroom.ErrBadAccess) {
		t.Errorf("expired access token: %v; want ErrBadAccess", err)
	}
}

func TestKeyRotation(t *testing.T) {
	old := waitroom.Key{ID: "k1", Secret: []byte(strings.Repeat("a", 32))}
	next := waitroom.Key{ID: "k2", Secret: []byte(strings.Repeat("n", 32))}
	before, _ := waitroom.NewKeyring(old)
	during, err := waitroom.NewKeyring(next, old)
	if err != nil {
		t.Fatal(err)
	}
	after, _ := waitroom.NewKeyring(next)
	tk := before.SignTicket(waitroom.Ticket{Drop: "d", Visitor: "v:x", Seq: 1})
	if _, err := during.ParseTicket(tk); err != nil {
		t.Errorf("old key's ticket during rotation: %v; want accepted", err)
	}
	if _, err := after.ParseTicket(tk); !errors.Is(err, waitroom.ErrBadTicket) {
		t.Errorf("old key's ticket after it was dropped: %v; want ErrBadTicket", err)
	}
	if !strings.HasPrefix(during.SignTicket(waitroom.Ticket{}), "k2.") || during.CurrentID() != "k2" {
		t.Errorf("rotation does not sign with the new key")
	}
	kr, err := waitroom.ParseKeyring("k2:" + strings.Repeat("bmV4dA", 8) + ", k1:" + strings.Repeat("YWFh", 11))
	if err != nil || kr.CurrentID() != "k2" {
		t.Errorf("ParseKeyring = %v, %v", kr, err)
	}
	for _, bad := range []string{"", "k1", "k1:c2hvcnQ", "k 1:" + strings.Repeat("YWFh", 11), "k1:" + strings.Repeat("YWFh", 11) + ",k1:" + strings.Repeat("YWFh", 11)} {
		if _, err := waitroom.ParseKeyring(bad); !errors.Is(err, waitroom.ErrInvalid) {
			t.Errorf("ParseKeyring(%q) = %v; want ErrInvalid", bad, err)
		}
	}
}

// TestAdmissionBounds polls a crowd on a fake clock, with visitors
// finishing at random, and checks the rate and cap at every step.
func TestAdmissionBounds(t *testing.T) {
	const (
		rate      = 600 // a minute
		burst     = 20
		maxActive = 50
		crowd     = 3000
	)
	e := newEnv(t, func(c *waitroom.Config) { c.SnapshotTTL = 100 * time.Millisecond })
	s := spec("d")
	s.RatePerMinute, s.Burst, s.MaxActive = rate, burst, maxActive
	e.open(t, s)
	e.clock.Set(start.Add(-time.Minute))
	tickets := make([]string, crowd)
	for i := range crowd {
		tickets[i], _ = e.join(t, "d", fmt.Sprintf("v:%d", i))
	}
	e.clock.Set(start)
	ctx := context.Background()
	done := map[int]bool{}
	var peakActive uint64
	for step := range 1500 { // 150 seconds in 100ms steps
		now := e.clock.Now()
		c := e.counters(t, "d")
		if max := burst + rate*now.Sub(start).Minutes(); float64(c.Admitted) > max {
			t.Fatalf("+%v: %d admitted; want at most %.0f", now.Sub(start), c.Admitted, max)
		}
		if c.Active > maxActive {
			t.Fatalf("+%v: %d active; want at most %d", now.Sub(start), c.Active, maxActive)
		}
		peakActive = max(peakActive, c.Active)
		// A few visitors poll; admitted ones arrive, and some finish.
		for j := range 20 {
			i := (step*37 + j*101) % crowd
			if done[i] {
				continue
			}
			st := e.status(t, "d", tickets[i], fmt.Sprintf("v:%d", i), "s")
			if st.Ticket != "" {
				tickets[i] = st.Ticket
			}
			if st.State == waitroom.StateAdmitted {
				if _, err := e.room.VerifyAccess(ctx, st.AccessToken, "d", "s"); err != nil {
					t.Fatal(err)
				}
				if (step+j)%2 == 0 {
					if err := e.room.Done(ctx, "d", fmt.Sprintf("v:%d", i)); err != nil {
						t.Fatal(err)
					}
					done[i] = true
				}
			}
		}
		e.clock.Add(100 * time.Millisecond)
	}
	if peakActive != maxActive {
		t.Errorf("peak active %d; want the cap %d reached", peakActive, maxActive)
	}
	if c := e.counters(t, "d"); c.Admitted < maxActive+uint64(len(done))/2 {
		t.Errorf("admitted %d with %d done; want freed slots reused", c.Admitted, len(done))
	}
}

func TestSoldOut(t *testing.T) {
	e := newEnv(t, nil)
	s := spec("d")
	s.MaxActive = 1
	e.open(t, s)
	e.clock.Set(start)
	ctx := context.Background()
	_, access := e.admit(t, "d", "c:1", "s1")
	ticket, st := e.join(t, "d", "c:2")
	if st.State != waitroom.StateWaiting {
		t.Fatalf("second visitor: %+v; want waiting", st)
	}
	e.stock.Store(0)
	e.clock.Add(250 * time.Millisecond) // the stock answer is cached for 250ms
	if st := e.status(t, "d", ticket, "c:2", "s2"); st.State != waitroom.StateSoldOut || st.PollAfter != 30*time.Second {
		t.Fatalf("waiting visitor after the stock ran out: %+v; want sold_out, slow polling", st)
	}
	if _, st, err := e.room.Join(ctx, waitroom.JoinRequest{Drop: "d", Visitor: "c:3"}); !errors.Is(err, waitroom.ErrSoldOut) || st.State != waitroom.StateSoldOut {
		t.Fatalf("join when sold out: %+v, %v; want ErrSoldOut", st, err)
	}
	// The admitted visitor, whose reservation may be what is holding the
	// last unit, keeps their access.
	if _, err := e.room.VerifyAccess(ctx, access, "d", "s1"); err != nil {
		t.Fatalf("admitted visitor after sold out: %v", err)
	}
	// Sold out pauses admission: freeing the slot admits nobody.
	if err := e.room.Done(ctx, "d", "c:1"); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(time.Minute)
	if st := e.status(t, "d", ticket, "c:2", "s2"); st.State != waitroom.StateSoldOut {
		t.Fatalf("still sold out: %+v", st)
	}
	if c := e.counters(t, "d"); c.Admitted != 1 || !c.Flow.Paused {
		t.Fatalf("while sold out: admitted %d paused %v; want 1, true", c.Admitted, c.Flow.Paused)
	}
	// A reservation expires: stock is back, the queue resumes.
	e.stock.Store(1)
	e.clock.Add(250 * time.Millisecond)
	st = e.status(t, "d", ticket, "c:2", "s2")
	if st.State != waitroom.StateAdmitted && st.State != waitroom.StateWaiting {
		t.Fatalf("after stock returned: %+v; want waiting or admitted", st)
	}
	e.clock.Add(time.Second)
	if st = e.status(t, "d", ticket, "c:2", "s2"); st.State != waitroom.StateAdmitted || st.AccessToken == "" {
		t.Fatalf("after stock returned: %+v; want admitted again", st)
	}
}

func TestNoShowReclaim(t *testing.T) {
	e := newEnv(t, nil)
	s := spec("d")
	s.MaxActive, s.RatePerMinute, s.Burst = 2, 600, 10
	e.open(t, s)
	e.clock.Set(start)
	ctx := context.Background()
	_, shows := e.admit(t, "d", "c:shows", "s1")
	noTicket, noShow := e.admit(t, "d", "c:noshow", "s2")
	lateTicket, st := e.join(t, "d", "c:late")
	if st.State != waitroom.StateWaiting || st.Ahead != 0 {
		t.Fatalf("third visitor with cap 2: %+v; want waiting, first in line", st)
	}
	if _, err := e.room.VerifyAccess(ctx, shows, "d", "s1"); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(2*time.Minute - time.Second)
	if st := e.status(t, "d", lateTicket, "c:late", "s3"); st.State != waitroom.StateWaiting {
		t.Fatalf("inside the no-show window: %+v; want still waiting", st)
	}
	e.clock.Add(time.Second)
	if st := e.status(t, "d", lateTicket, "c:late", "s3"); st.State != waitroom.StateAdmitted {
		t.Fatalf("after the no-show window: %+v; want the no-show's slot given to the next", st)
	}
	if _, err := e.room.VerifyAccess(ctx, noShow, "d", "s2"); !errors.Is(err, waitroom.ErrBadAccess) {
		t.Errorf("no-show arriving late: %v; want ErrBadAccess", err)
	}
	if st := e.status(t, "d", noTicket, "c:noshow", "s2"); st.State != waitroom.StateExpired {
		t.Errorf("no-show's status: %+v; want expired", st)
	}
	if _, err := e.room.VerifyAccess(ctx, shows, "d", "s1"); err != nil {
		t.Errorf("the visitor who showed up lost access: %v", err)
	}
	if c := e.counters(t, "d"); c.NoShows != 1 || c.Active != 2 {
		t.Errorf("no-shows %d active %d; want 1, 2", c.NoShows, c.Active)
	}
}

func TestDoneFreesSlotAtOnce(t *testing.T) {
	e := newEnv(t, nil)
	s := spec("d")
	s.MaxActive, s.RatePerMinute, s.Burst = 1, 600, 10
	e.open(t, s)
	e.clock.Set(start)
	ctx := context.Background()
	_, access := e.admit(t, "d", "c:1", "s1")
	ticket, st := e.join(t, "d", "c:2")
	if st.State != waitroom.StateWaiting {
		t.Fatalf("with cap 1: %+v; want waiting", st)
	}
	if err := e.room.Done(ctx, "d", "c:1"); err != nil {
		t.Fatal(err)
	}
	// Same instant, no clock movement.
	if st := e.status(t, "d", ticket, "c:2", "s2"); st.State != waitroom.StateAdmitted || st.AccessToken == "" {
		t.Fatalf("after Done: %+v; want the next visitor admitted at once", st)
	}
	if _, err := e.room.VerifyAccess(ctx, access, "d", "s1"); !errors.Is(err, waitroom.ErrBadAccess) {
		t.Errorf("access after Done: %v; want ErrBadAccess", err)
	}
	if err := e.room.Done(ctx, "d", "c:1"); err != nil {
		t.Errorf("second Done: %v; want nil", err)
	}
	// Once the stock is gone, a given-up slot is told the truth: sold
	// out (a retried checkout whose sold-out answer was lost gets it
	// again), not a refusal.
	e.stock.Store(0)
	e.clock.Add(time.Second)
	if _, err := e.room.VerifyAccess(ctx, access, "d", "s1"); !errors.Is(err, waitroom.ErrSoldOut) {
		t.Errorf("access after Done with the stock gone: %v; want ErrSoldOut", err)
	}
}

func TestProofOfWork(t *testing.T) {
	e := newEnv(t, nil)
	s := spec("d")
	s.PoWDifficulty = 8
	e.open(t, s)
	e.open(t, spec("free"))
	e.clock.Set(start)
	ctx := context.Background()
	challenge := func(drop, visitor string) string {
		t.Helper()
		c, diff, err := e.room.Challenge(drop, visitor)
		if err != nil || diff != 8 || c == "" {
			t.Fatalf("Challenge = %q, %d, %v", c, diff, err)
		}
		return c
	}
	good := waitroom.SolvePoW(challenge("d", "v:a"), 8)
	otherVisitor := waitroom.SolvePoW(challenge("d", "v:b"), 8)
	expiring := waitroom.SolvePoW(challenge("d", "v:c"), 8)
	weakSolution := weak(challenge("d", "v:d"), 8)
	forger := mustKeys(t, "k1", 'q')
	e2 := newEnv(t, func(c *waitroom.Config) { c.Keys = forger })
	s2 := spec("d")
	s2.PoWDifficulty = 8
	e2.open(t, s2)
	e2.clock.Set(start)
	foreignChallenge, _, _ := e2.room.Challenge("d", "v:e")

	for _, tc := range []struct {
		name, visitor, pow string
		after              time.Duration
		want               error
	}{
		{"missing", "v:a", "", 0, waitroom.ErrPoWRequired},
		{"garbage", "v:a", "nonsense", 0, waitroom.ErrBadPoW},
		{"no nonce", "v:a", good[:strings.LastIndexByte(good, ':')+1], 0, waitroom.ErrBadPoW},
		{"nonce too long", "v:a", good + strings.Repeat("0", 40), 0, waitroom.ErrBadPoW},
		{"another visitor's", "v:a", otherVisitor, 0, waitroom.ErrBadPoW},
		{"too few zero bits", "v:d", weakSolution, 0, waitroom.ErrBadPoW},
		{"signed by another key", "v:e", waitroom.SolvePoW(foreignChallenge, 8), 0, waitroom.ErrBadPoW},
		{"expired", "v:c", expiring, 5 * time.Minute, waitroom.ErrBadPoW},
		{"valid", "v:a", good, 0, nil},
		{"valid again (same visitor, same place)", "v:a", good, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.clock.Set(start.Add(tc.after))
			_, _, err := e.room.Join(ctx, waitroom.JoinRequest{Drop: "d", Visitor: tc.visitor, PoW: tc.pow})
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("Join = %v; want %v", err, tc.want)
			}
		})
	}
	// A solution for one drop does not open another drop that wants one.
	s3 := spec("d3")
	s3.PoWDifficulty = 8
	e.open(t, s3)
	if _, _, err := e.room.Join(ctx, waitroom.JoinRequest{Drop: "d3", Visitor: "v:a", PoW: good}); !errors.Is(err, waitroom.ErrBadPoW) {
		t.Errorf("another drop's solution: %v; want ErrBadPoW", err)
	}
	if c, diff, err := e.room.Challenge("free", "v:a"); c != "" || diff != 0 || err != nil {
		t.Errorf("Challenge on a drop without PoW = %q, %d, %v; want nothing", c, diff, err)
	}
}

// weak returns a solution for challenge that does NOT reach difficulty.
func weak(challenge string, difficulty int) string {
	for n := 0; ; n++ {
		sol := fmt.Sprintf("%s:%d", challenge, n)
		h := sha256.Sum256([]byte(sol))
		if bits.LeadingZeros8(h[0]) < difficulty {
			return sol
		}
	}
}

func TestJoinRateLimited(t *testing.T) {
	e := newEnv(t, func(c *waitroom.Config) { c.JoinRate = admission.Rate{PerSecond: 1, Burst: 2} })
	e.open(t, spec("d"))
	e.clock.Set(start)
	ctx := context.Background()
	for i := range 3 {
		_, _, err := e.room.Join(ctx, waitroom.JoinRequest{Drop: "d", Visitor: fmt.Sprintf("v:%d", i), ClientAddr: "198.51.100.7"})
		if i < 2 && err != nil {
			t.Fatalf("join %d: %v", i, err)
		}
		if i == 2 {
			if !errors.Is(err, waitroom.ErrRateLimited) || waitroom.RetryAfter(err) != time.Second {
				t.Fatalf("third join from one address: %v (retry after %v); want ErrRateLimited, 1s", err, waitroom.RetryAfter(err))
			}
		}
	}
	if _, _, err := e.room.Join(ctx, waitroom.JoinRequest{Drop: "d", Visitor: "v:x", ClientAddr: "198.51.100.8"}); err != nil {
		t.Errorf("another address: %v", err)
	}
	e.clock.Add(time.Second)
	if _, _, err := e.room.Join(ctx, waitroom.JoinRequest{Drop: "d", Visitor: "v:y", ClientAddr: "198.51.100.7"}); err != nil {
		t.Errorf("after a second: %v", err)
	}
}

func TestJoinErrors(t *testing.T) {
	e := newEnv(t, nil)
	s := spec("d")
	s.End = start.Add(time.Hour)
	e.open(t, s)
	ctx := context.Background()
	e.clock.Set(start)
	for _, v := range []string{"", "has space", strings.Repeat("x", 200)} {
		if _, _, err := e.room.Join(ctx, waitroom.JoinRequest{Drop: "d", Visitor: v}); !errors.Is(err, waitroom.ErrBadVisitor) {
			t.Errorf("visitor %q: %v; want ErrBadVisitor", v, err)
		}
	}
	if _, _, err := e.room.Join(ctx, waitroom.JoinRequest{Drop: "nope", Visitor: "v:a"}); !errors.Is(err, waitroom.ErrUnknownDrop) {
		t.Errorf("unknown drop: %v", err)
	}
	ticket, _ := e.join(t, "d", "v:a")
	ticket2, _ := e.join(t, "d", "v:b")
	if err := e.room.Close(ctx, "d"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.room.Join(ctx, waitroom.JoinRequest{Drop: "d", Visitor: "v:c"}); !errors.Is(err, waitroom.ErrClosed) {
		t.Errorf("join after Close: %v; want ErrClosed", err)
	}
	if st := e.status(t, "d", ticket, "v:a", ""); st.State != waitroom.StateAdmitted {
		t.Errorf("admitted visitor after Close: %+v; want still admitted", st)
	}
	if st := e.status(t, "d", ticket2, "v:b", ""); st.State != waitroom.StateClosed || st.PollAfter != 0 {
		t.Errorf("waiting visitor after Close: %+v; want closed, no polling", st)
	}
	e2 := newEnv(t, nil)
	e2.open(t, s)
	e2.clock.Set(s.End)
	if _, _, err := e2.room.Join(ctx, waitroom.JoinRequest{Drop: "d", Visitor: "v:a"}); !errors.Is(err, waitroom.ErrClosed) {
		t.Errorf("join after End: %v; want ErrClosed", err)
	}
	for _, bad := range []waitroom.DropSpec{
		{ID: "bad id!", Start: start, RatePerMinute: 1},
		{ID: "d", RatePerMinute: 1},
		{ID: "d", Start: start},
		{ID: "d", Start: start, RatePerMinute: 1, PoWDifficulty: 40},
		{ID: "d", Start: start, RatePerMinute: 1, End: start},
		{ID: "d", Mode: waitroom.ModeStandby, RatePerMinute: 1},
		{ID: "d", Start: start, RatePerMinute: 1, Adaptive: &waitroom.AdaptiveTargets{}},
	} {
		if err := e.room.Open(ctx, bad); !errors.Is(err, waitroom.ErrInvalid) {
			t.Errorf("Open(%+v) = %v; want ErrInvalid", bad, err)
		}
	}
}

func TestStandbyHysteresis(t *testing.T) {
	clk := &clock{now: start}
	s, err := waitroom.NewStandby(waitroom.StandbyConfig{
		Paths: []string{"/"}, Except: []string{"/queue", "/static"},
		OnActive: 1000, OffActive: 600, OnLatency: 2 * time.Second, OffLatency: 500 * time.Millisecond,
		MinOn: time.Minute, Now: clk.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		after   time.Duration
		active  int
		p95     time.Duration
		want    bool
		episode uint64
	}{
		{0, 500, 100 * time.Millisecond, false, 0},
		{time.Second, 999, time.Second, false, 0},            // below both "on" thresholds
		{time.Second, 1000, time.Second, true, 1},            // active users reach OnActive
		{time.Second, 800, time.Second, true, 1},             // between the thresholds: stays on
		{time.Second, 100, 100 * time.Millisecond, true, 1},  // calm, but not on for MinOn yet
		{time.Minute, 100, time.Second, true, 1},             // latency not back under OffLatency
		{time.Second, 100, 400 * time.Millisecond, false, 1}, // both calm, MinOn passed
		{time.Second, 800, time.Second, false, 1},            // between the thresholds: stays off
		{time.Second, 10, 3 * time.Second, true, 2},          // latency alone turns it on
	}
	for i, st := range steps {
		clk.Add(st.after)
		if got := s.Observe(st.active, st.p95); got != st.want || s.Active() != st.want || s.Episode() != st.episode {
			t.Fatalf("step %d (%d active, p95 %v): on %v episode %d; want %v, %d", i, st.active, st.p95, got, s.Episode(), st.want, st.episode)
		}
	}
	for path, want := range map[string]bool{"/": true, "/products/1": true, "/queue": false, "/queue/status": false, "/static/app.css": false, "/queued": true} {
		if got := s.Protects(path); got != want {
			t.Errorf("Protects(%q) = %v; want %v", path, got, want)
		}
	}
	narrow, _ := waitroom.NewStandby(waitroom.StandbyConfig{Paths: []string{"/products"}, OnActive: 2, OffActive: 1})
	for path, want := range map[string]bool{"/products": true, "/products/x": true, "/productsale": false, "/": false} {
		if got := narrow.Protects(path); got != want {
			t.Errorf("Protects(%q) under /products = %v; want %v", path, got, want)
		}
	}
	for _, bad := range []waitroom.StandbyConfig{
		{Paths: []string{"/"}},
		{Paths: []string{"/"}, OnActive: 10, OffActive: 10},
		{Paths: []string{"/"}, OnLatency: time.Second, OffLatency: 2 * time.Second},
		{OnActive: 10},
		{Paths: []string{"products"}, OnActive: 10},
	} {
		if _, err := waitroom.NewStandby(bad); !errors.Is(err, waitroom.ErrInvalid) {
			t.Errorf("NewStandby(%+v) = %v; want ErrInvalid", bad, err)
		}
	}
}

func TestStandbyQueue(t *testing.T) {
	e := newEnv(t, nil)
	sb, err := waitroom.NewStandby(waitroom.StandbyConfig{Paths: []string{"/"}, OnActive: 100, OffActive: 50, MinOn: time.Minute, Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	e.open(t, waitroom.DropSpec{ID: "standby", Mode: waitroom.ModeStandby, Standby: sb, RatePerMinute: 60, Burst: 2, MaxActive: 2})
	ctx := context.Background()
	tk, st := e.join(t, "standby", "v:a")
	if tk != "" || st.State != waitroom.StateAdmitted {
		t.Fatalf("join while standby is off: %q, %+v; want go ahead, no ticket", tk, st)
	}
	sb.Observe(150, 0)
	var tickets []string
	for i := range 4 {
		tk, st := e.join(t, "standby", fmt.Sprintf("v:%d", i))
		want := waitroom.StateWaiting
		if i < 2 {
			want = waitroom.StateAdmitted
		}
		if tk == "" || st.State != want || st.Position != uint64(i+1) {
			t.Fatalf("join %d while standby is on: %+v; want %s at %d", i, st, want, i+1)
		}
		tickets = append(tickets, tk)
	}
	st = e.status(t, "standby", tickets[0], "v:0", "s0")
	if _, err := e.room.VerifyAccess(ctx, st.AccessToken, "standby", "s0"); err != nil {
		t.Fatalf("standby access: %v", err)
	}
	if err := e.room.Done(ctx, "standby", "v:0"); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(time.Second)
	if st := e.status(t, "standby", tickets[2], "v:2", "s2"); st.State != waitroom.StateAdmitted {
		t.Fatalf("FIFO: third after a slot freed: %+v; want admitted", st)
	}
	if st := e.status(t, "standby", tickets[3], "v:3", "s3"); st.State != waitroom.StateWaiting || st.Ahead != 0 {
		t.Fatalf("fourth: %+v; want waiting, next in line", st)
	}
	e.clock.Add(time.Minute)
	sb.Observe(10, 0)
	if st := e.status(t, "standby", tickets[3], "v:3", "s3"); st.State != waitroom.StateAdmitted || st.AccessToken != "" {
		t.Fatalf("standby off: %+v; want go ahead without a token", st)
	}
	// A new episode starts a fresh queue: old tickets are void.
	sb.Observe(200, 0)
	if _, err := e.room.Status(ctx, waitroom.StatusRequest{Drop: "standby", Ticket: tickets[3], Visitor: "v:3"}); !errors.Is(err, waitroom.ErrBadTicket) {
		t.Fatalf("last episode's ticket: %v; want ErrBadTicket", err)
	}
	if _, st := e.join(t, "standby", "v:3"); st.Position != 1 || st.State != waitroom.StateAdmitted {
		t.Fatalf("first join of a new episode: %+v; want position 1, admitted", st)
	}
}

func TestAdaptiveRate(t *testing.T) {
	e := newEnv(t, nil)
	s := spec("d")
	s.RatePerMinute = 600
	s.Adaptive = &waitroom.AdaptiveTargets{Latency: 500 * time.Millisecond, ErrorRate: 0.05, MinRate: 100, MaxRate: 1000, Interval: 10 * time.Second}
	e.open(t, s)
	e.clock.Set(start)
	rate := func() float64 {
		t.Helper()
		e.clock.Add(250 * time.Millisecond) // past the snapshot
		return e.counters(t, "d").Flow.RatePerMinute
	}
	feed := func(latency time.Duration, errEvery int) {
		for i := range 100 {
			var err error
			if errEvery > 0 && i%errEvery == 0 {
				err = errors.New("boom")
			}
			e.room.ObserveCheckout("d", latency, err)
		}
		e.clock.Add(10 * time.Second)
	}
	if r := rate(); r != 600 {
		t.Fatalf("initial rate %v; want 600", r)
	}
	feed(2*time.Second, 0) // four times the target: cut by half, no more
	if r := rate(); r != 300 {
		t.Fatalf("after slow checkouts: rate %v; want 300", r)
	}
	feed(100*time.Millisecond, 2) // fast but failing half the time
	if r := rate(); r != 150 {
		t.Fatalf("after failing checkouts: rate %v; want 150", r)
	}
	feed(2*time.Second, 0)
	if r := rate(); r != 100 {
		t.Fatalf("rate %v; want the floor 100", r)
	}
	feed(400*time.Millisecond, 0) // within target but not comfortably: hold
	if r := rate(); r != 100 {
		t.Fatalf("rate %v; want held at 100", r)
	}
	for range 30 {
		feed(50*time.Millisecond, 0)
	}
	if r := rate(); r != 1000 {
		t.Fatalf("after calm checkouts: rate %v; want the ceiling 1000", r)
	}
	e.room.ObserveCheckout("d", time.Hour, nil) // too few samples to move anything
	e.clock.Add(10 * time.Second)
	if r := rate(); r != 1000 {
		t.Fatalf("one sample moved the rate to %v", r)
	}
}

func TestStatusJSON(t *testing.T) {
	b, err := json.Marshal(waitroom.Status{State: waitroom.StateWaiting, Position: 42, Ahead: 41, EstimatedWait: 90500 * time.Millisecond, PollAfter: 2500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"state":"waiting","position":42,"ahead":41,"estimated_wait_seconds":91,"poll_after_seconds":2.5}`
	if string(b) != want {
		t.Errorf("JSON = %s; want %s", b, want)
	}
	b, _ = json.Marshal(waitroom.Status{State: waitroom.StateAdmitted, AccessToken: "tok"})
	if !strings.Contains(string(b), `"access_token":"tok"`) {
		t.Errorf("JSON = %s; want the access token", b)
	}
}

func TestMetrics(t *testing.T) {
	e := newEnv(t, nil)
	e.open(t, spec("d"))
	e.clock.Set(start)
	reg := prometheus.NewRegistry()
	if err := e.room.Register(reg); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		e.join(t, "d", fmt.Sprintf("v:%d", i))
	}
	e.join(t, "d", "v:0")
	e.clock.Add(time.Second)
	want := `
# HELP surge_waitroom_active Admitted visitors whose slot is not freed yet, by drop.
# TYPE surge_waitroom_active gauge
surge_waitroom_active{drop="d"} 2
# HELP surge_waitroom_admit_rate Admission rate in force, visitors per minute (0 while paused), by drop.
# TYPE surge_waitroom_admit_rate gauge
surge_waitroom_admit_rate{drop="d"} 60
# HELP surge_waitroom_admitted_total Visitors admitted since the drop's queue was created, by drop.
# TYPE surge_waitroom_admitted_total counter
surge_waitroom_admitted_total{drop="d"} 2
# HELP surge_waitroom_waiting Visitors in line (pre-queue included) whose turn has not come, by drop.
# TYPE surge_waitroom_waiting gauge
surge_waitroom_waiting{drop="d"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "surge_waitroom_active", "surge_waitroom_admit_rate", "surge_waitroom_admitted_total", "surge_waitroom_waiting"); err != nil {
		t.Error(err)
	}
	if got := joins(t, reg, "ok"); got != 3 {
		t.Errorf("joins ok = %v; want 3", got)
	}
	if got := joins(t, reg, "rejoin"); got != 1 {
		t.Errorf("joins rejoin = %v; want 1", got)
	}
}

// joins reads surge_waitroom_joins_total{drop="d",result=result}.
func joins(t *testing.T, reg *prometheus.Registry, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "surge_waitroom_joins_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "result" && lp.GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no joins_total{result=%q}", result)
	return 0
}

// BenchmarkStatus is the hot path: 100,000 visitors polling.
func BenchmarkStatus(b *testing.B) {
	e := newEnv(b, func(c *waitroom.Config) { c.Now = time.Now })
	s := spec("d")
	s.Start = time.Now().Add(-time.Minute)
	e.open(b, s)
	const n = 100_000
	tickets, visitors := make([]string, n), make([]string, n)
	for i := range n {
		visitors[i] = fmt.Sprintf("v:%d", i)
		tickets[i], _ = e.join(b, "d", visitors[i])
	}
	ctx := context.Background()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i = (i + 7919) % n
			if _, err := e.room.Status(ctx, waitroom.StatusRequest{Drop: "d", Ticket: tickets[i], Visitor: visitors[i]}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestSignedAccess: the cheap check accepts only tokens these keys signed
// that have not expired; it does not consult the ledger.
func TestSignedAccess(t *testing.T) {
	e := newEnv(t, nil)
	e.open(t, spec("d"))
	e.clock.Set(start)
	_, access := e.admit(t, "d", "v:1", "s1")
	other := newEnv(t, func(c *waitroom.Config) { c.Keys = mustKeys(t, "k9", 'z') })
	for _, tt := range []struct {
		name  string
		room  *waitroom.Room
		token string
		want  bool
	}{
		{"signed", e.room, access, true},
		{"junk", e.room, "not-a-token", false},
		{"empty", e.room, "", false},
		{"tampered", e.room, access[:len(access)-2] + string(flip(access[len(access)-2])) + access[len(access)-1:], false},
		{"other keys", other.room, access, false},
	} {
		if got := tt.room.SignedAccess(tt.token); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
	e.clock.Add(11 * time.Minute) // past the access TTL
	if e.room.SignedAccess(access) {
		t.Error("expired token accepted")
	}
}

// TestStandbyAccessOutlivesEpisode: a visitor the standby line let in
// keeps shopping when the line turns off and on again (a new episode, a
// fresh queue) for as long as their access lasts: the new spike must not
// send admitted shoppers back to the line. Their token still works only
// for their own session, and not past its expiry.
func TestStandbyAccessOutlivesEpisode(t *testing.T) {
	e := newEnv(t, nil)
	sb, err := waitroom.NewStandby(waitroom.StandbyConfig{Paths: []string{"/"}, OnActive: 100, OffActive: 50, MinOn: time.Minute, Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	e.open(t, waitroom.DropSpec{ID: "standby", Mode: waitroom.ModeStandby, Standby: sb, RatePerMinute: 60, Burst: 2, MaxActive: 10, AccessTTL: 30 * time.Minute})
	ctx := context.Background()
	sb.Observe(150, 0)
	tk, _ := e.join(t, "standby", "v:0")
	st := e.status(t, "standby", tk, "v:0", "s0")
	if st.State != waitroom.StateAdmitted || st.AccessToken == "" {
		t.Fatalf("first of the line: %+v; want admitted with a token", st)
	}
	if _, err := e.room.VerifyAccess(ctx, st.AccessToken, "standby", "s0"); err != nil {
		t.Fatalf("access in its episode: %v", err)
	}
	// The spike ebbs, then a second wave: a new episode.
	e.clock.Add(2 * time.Minute)
	sb.Observe(10, 0)
	sb.Observe(200, 0)
	if sb.Episode() != 2 {
		t.Fatalf("episode %d; want 2", sb.Episode())
	}
	if _, err := e.room.VerifyAccess(ctx, st.AccessToken, "standby", "s0"); err != nil {
		t.Fatalf("admitted shopper in the next episode: %v; want still let in", err)
	}
	if _, err := e.room.VerifyAccess(ctx, st.AccessToken, "standby", "s1"); !errors.Is(err, waitroom.ErrBadAccess) {
		t.Fatalf("the token from another session: %v; want ErrBadAccess", err)
	}
	e.clock.Add(30 * time.Minute)
	if _, err := e.room.VerifyAccess(ctx, st.AccessToken, "standby", "s0"); !errors.Is(err, waitroom.ErrBadAccess) {
		t.Fatalf("the token after its 30 minutes: %v; want ErrBadAccess", err)
	}
}
