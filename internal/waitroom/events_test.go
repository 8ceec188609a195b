package waitroom_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/surge-commerce/surge/internal/admission"
	"github.com/surge-commerce/surge/internal/waitroom"
)

type eventLog struct {
	mu  sync.Mutex
	evs []waitroom.Event
}

func (l *eventLog) add(e waitroom.Event) { l.mu.Lock(); l.evs = append(l.evs, e); l.mu.Unlock() }

func (l *eventLog) count(kind waitroom.EventKind, reason string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, e := range l.evs {
		if e.Kind == kind && e.Reason == reason {
			n++
		}
	}
	return n
}

// TestLineEvents: the room tells its observer of each admission with the
// time in line (from the start for a place taken before it, from the
// join after), of sold-out notices, and of refusals by reason.
func TestLineEvents(t *testing.T) {
	log := &eventLog{}
	e := newEnv(t, func(c *waitroom.Config) {
		c.OnEvent = log.add
		c.JoinRate = admission.Rate{PerSecond: 1, Burst: 1}
	})
	s := spec("d")
	s.RatePerMinute = 60
	s.MaxActive = 1 // the second waits for the first to finish
	e.open(t, s)
	ctx := context.Background()

	e.clock.Set(start.Add(-time.Minute))
	early, _ := e.join(t, "d", "c:1") // before the start: drawn at the start, admitted at once
	e.clock.Set(start)
	if st := e.status(t, "d", early, "c:1", "s1"); st.State != waitroom.StateAdmitted {
		t.Fatalf("early visitor: %+v", st)
	}
	e.clock.Set(start.Add(10 * time.Second))
	late, _, err := e.room.Join(ctx, waitroom.JoinRequest{Drop: "d", Visitor: "c:2", ClientAddr: "192.0.2.2"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.room.Join(ctx, waitroom.JoinRequest{Drop: "d", Visitor: "c:3", ClientAddr: "192.0.2.2"}); !errors.Is(err, waitroom.ErrRateLimited) {
		t.Fatalf("second join from one address: %v, want rate limited", err)
	}
	e.clock.Set(start.Add(40 * time.Second))
	if err := e.room.Done(ctx, "d", "c:1"); err != nil {
		t.Fatal(err)
	}
	if st := e.status(t, "d", late, "c:2", "s2"); st.State != waitroom.StateAdmitted {
		t.Fatalf("late visitor: %+v", st)
	}
	if _, err := e.room.Status(ctx, waitroom.StatusRequest{Drop: "d", Ticket: late, Visitor: "c:9"}); !errors.Is(err, waitroom.ErrBadTicket) {
		t.Fatalf("someone else's ticket: %v", err)
	}
	if _, err := e.room.VerifyAccess(ctx, "forged", "d", "s1"); err == nil {
		t.Fatal("forged access token accepted")
	}

	var waits = map[string]time.Duration{}
	log.mu.Lock()
	for _, ev := range log.evs {
		if ev.Kind == waitroom.EventAdmitted {
			waits[ev.Visitor] = ev.Wait
		}
	}
	log.mu.Unlock()
	// The first is admitted at the start itself, having joined before
	// it; the second's time runs from its join at 10s.
	if w, ok := waits["c:1"]; !ok || w != 0 {
		t.Errorf("early visitor's time in line %v (%v), want 0 from the start", w, ok)
	}
	if w, ok := waits["c:2"]; !ok || w != 30*time.Second {
		t.Errorf("late visitor's time in line %v (%v), want 30s from its join to its admission", w, ok)
	}
	if n := log.count(waitroom.EventRefused, waitroom.RefusedRateLimit); n != 1 {
		t.Errorf("%d rate-limit refusals, want 1", n)
	}
	if n := log.count(waitroom.EventRefused, waitroom.RefusedBadToken); n != 2 {
		t.Errorf("%d bad-token refusals, want 2 (a ticket, an access token)", n)
	}

	e.stock.Store(0)
	e.clock.Add(time.Second)
	if _, _, err := e.room.Join(ctx, waitroom.JoinRequest{Drop: "d", Visitor: "c:4", ClientAddr: "192.0.2.4"}); !errors.Is(err, waitroom.ErrSoldOut) {
		t.Fatalf("join after the sell-out: %v", err)
	}
	if n := log.count(waitroom.EventToldSoldOut, ""); n != 1 {
		t.Errorf("%d sold-out notices, want 1", n)
	}
}
