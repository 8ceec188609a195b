package drop_test

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/surge-commerce/surge/internal/drop"
)

// TestLinesReportWhatCannotOpen: a drop whose line cannot open is named by
// Check, with how to mend it, until it is closed; a good one opens.
func TestLinesReportWhatCannotOpen(t *testing.T) {
	e := newGateEnv(t)
	ctx := t.Context()
	ls := &drop.Lines{Store: e.store, Room: e.room, Log: slog.New(slog.DiscardHandler)}
	if err := ls.Check(ctx); err != nil {
		t.Fatalf("Check with nothing wrong: %v", err)
	}
	bad := e.drop
	bad.ID, bad.Slug, bad.Room.RatePerMinute = "bad-drop", "bad", 0 // stored before the bounds
	if err := ls.Changed(ctx, bad); err == nil {
		t.Fatal("Changed opened an invalid drop")
	}
	if err := ls.Check(ctx); err == nil || !strings.Contains(err.Error(), "bad-drop (bad)") || !strings.Contains(err.Error(), "/close") {
		t.Fatalf("Check: %v; want the bad drop named with how to close it", err)
	}
	bad.Closed = true
	if err := ls.Changed(ctx, bad); err != nil {
		t.Fatalf("closing a drop never opened here: %v", err)
	}
	if err := ls.Check(ctx); err != nil {
		t.Fatalf("Check after the bad drop closed: %v", err)
	}
}

// TestLinesFollow: a drop created in the store after the shop started (by
// another replica's admin API) has its line opened by Follow, and closed
// again when it is closed.
func TestLinesFollow(t *testing.T) {
	e := newGateEnv(t)
	ctx := t.Context()
	if err := e.room.Remove(ctx, e.drop.ID); err != nil {
		t.Fatal(err)
	}
	ls := &drop.Lines{Store: e.store, Room: e.room, Log: slog.New(slog.DiscardHandler)}
	go ls.Follow(ctx, 10*time.Millisecond)
	open := func() bool { _, err := e.room.Spec(e.drop.ID); return err == nil }
	waitFor(t, "the line opened", open)
	if _, err := e.store.CloseDrop(ctx, e.drop.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the line closed", func() bool {
		c, err := e.room.Counters(ctx, e.drop.ID)
		return err == nil && c.Closed
	})
}

// waitFor waits up to 10s for cond.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
