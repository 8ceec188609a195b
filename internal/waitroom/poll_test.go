package waitroom_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/surge-commerce/surge/internal/waitroom"
)

// TestPollIntervalIsTheRoomsRule: what PollInterval says (the capacity
// planner counts a line's polls with it) is what a room with the default
// bounds tells each buyer in line, up to its jitter (under 1,024 ms).
func TestPollIntervalIsTheRoomsRule(t *testing.T) {
	e := newEnv(t, nil)
	s := spec("d")
	s.NoShowWindow = 10 * time.Minute // long enough not to shorten the polls
	e.open(t, s)
	e.clock.Set(start.Add(time.Second))
	regimes := map[time.Duration]int{}
	for i := range 300 {
		_, st := e.join(t, "d", fmt.Sprintf("v:%d", i))
		if st.State == waitroom.StateAdmitted {
			continue // the burst lets the first in at once
		}
		if st.State != waitroom.StateWaiting {
			t.Fatalf("join %d: %+v", i, st)
		}
		want := waitroom.PollInterval(st.EstimatedWait)
		if d := st.PollAfter - want; d < 0 || d >= 1024*time.Millisecond {
			t.Fatalf("position %d, wait %s: the room says poll after %s, PollInterval %s", st.Position, st.EstimatedWait, st.PollAfter, want)
		}
		regimes[min(max(want, 2*time.Second), 30*time.Second)]++
	}
	// The line reached past both bounds, so all three parts of the rule ran.
	if regimes[2*time.Second] == 0 || regimes[30*time.Second] == 0 || len(regimes) < 3 {
		t.Errorf("intervals seen: %v", regimes)
	}
}
