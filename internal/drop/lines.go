package drop

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/surge-commerce/surge/internal/waitroom"
)

// Discover returns the waiting room's discovery (waitroom.Config.Discover)
// of the drops in st: a drop the room has not heard of opens when a buyer
// asks for it, unless it is closed, gone or invalid (Lines reports that
// one; asking again will not help).
func Discover(st Store) func(ctx context.Context, id string) (waitroom.DropSpec, bool, error) {
	return func(ctx context.Context, id string) (waitroom.DropSpec, bool, error) {
		d, err := st.DropByID(ctx, id)
		if errors.Is(err, ErrNotFound) || err == nil && d.Closed {
			return waitroom.DropSpec{}, false, nil
		}
		if err != nil {
			return waitroom.DropSpec{}, false, err
		}
		if err := d.Validate(); err != nil {
			return waitroom.DropSpec{}, false, nil
		}
		return d.RoomSpec(), true, nil
	}
}

// Lines keeps the waiting room's lines in step with the drops in the
// store: each drop not closed has its line open, each closed one none. A
// drop whose line cannot open is remembered, and reported by Check, until
// it opens or is closed: no stored drop may stop the shop serving the
// rest.
type Lines struct {
	Store Store
	Room  *waitroom.Room
	Log   *slog.Logger

	mu       sync.Mutex
	problems map[string]string // drop ID -> why its line is not open here
}

// OpenAll opens the line of every drop not closed. local, when not nil,
// is the room's ledger kept in process (journaled): the lines it holds
// of drops that are closed, ended or gone are forgotten first, since
// nobody can buy through them any more and they would be replayed at
// every start. A drop whose line cannot open is logged and reported by
// Check; the drop sync, or the room's discovery when a buyer asks for it,
// opens it later if it can be.
func (ls *Lines) OpenAll(ctx context.Context, local *waitroom.MemLedger) error {
	ds, err := ls.Store.Drops(ctx)
	if err != nil {
		return err
	}
	if local != nil {
		ls.forgetEnded(ctx, local, ds)
	}
	for _, d := range ds {
		_ = ls.Changed(ctx, d)
	}
	return nil
}

func (ls *Lines) forgetEnded(ctx context.Context, l *waitroom.MemLedger, ds []Drop) {
	open := map[string]bool{waitroom.StandbyDrop: true}
	now := time.Now()
	for _, d := range ds {
		if d.StateAt(now) != StateClosed {
			open[d.ID] = true
		}
	}
	for _, id := range l.Drops() {
		if open[id] {
			continue
		}
		if err := l.Delete(ctx, id); err != nil && !errors.Is(err, waitroom.ErrUnknownDrop) {
			ls.Log.Warn("waiting room: forget an ended line", "drop", id, "err", err)
		}
	}
}

// Changed tells the waiting room about a created or closed drop.
func (ls *Lines) Changed(ctx context.Context, d Drop) error {
	if d.Closed {
		ls.note(d, nil)
		err := ls.Room.Close(ctx, d.ID)
		if errors.Is(err, waitroom.ErrUnknownDrop) {
			return nil
		}
		return err
	}
	err := d.Validate()
	if err == nil {
		err = ls.Room.Open(ctx, d.RoomSpec())
	}
	ls.note(d, err)
	return err
}

// Follow keeps the lines in step with the drops in the store, which
// another replica's admin API may create or close, until ctx ends: each
// drop is (re)opened or closed here within every.
func (ls *Lines) Follow(ctx context.Context, every time.Duration) {
	seen := map[string]Drop{}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		ds, err := ls.Store.Drops(ctx)
		if err != nil && ctx.Err() == nil {
			ls.Log.Warn("drop sync: list drops", "err", err)
		}
		for _, d := range ds {
			if old, ok := seen[d.ID]; ok && reflect.DeepEqual(old, d) {
				continue
			}
			if err := ls.Changed(ctx, d); err != nil {
				continue // logged once and reported by Check
			}
			seen[d.ID] = d
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// note records whether drop d's line is open (err nil) or why not,
// logging each new reason once.
func (ls *Lines) note(d Drop, err error) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if err == nil {
		delete(ls.problems, d.ID)
		return
	}
	why := fmt.Sprintf("%s (%s): %v", d.ID, d.Slug, err)
	if errors.Is(err, ErrInvalid) {
		why += "; close it with POST /api/v1/admin/drops/" + d.ID + "/close and create it anew"
	}
	if ls.problems[d.ID] == why {
		return
	}
	if ls.problems == nil {
		ls.problems = map[string]string{}
	}
	ls.problems[d.ID] = why
	ls.Log.Error("waiting room: drop not open, skipped", "drop", d.ID, "slug", d.Slug, "err", err)
}

// Check fails, naming each one and why, while any drop that is not
// closed could not have its line opened in this replica's waiting room:
// the shop serves everything else, and readiness reports it as degraded.
func (ls *Lines) Check(context.Context) error {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	why := make([]string, 0, len(ls.problems))
	for id, w := range ls.problems {
		if _, err := ls.Room.Spec(id); err == nil {
			// Opened since, when a buyer asked for it (Discover).
			delete(ls.problems, id)
			continue
		}
		why = append(why, w)
	}
	if len(why) == 0 {
		return nil
	}
	slices.Sort(why)
	return errors.New(strings.Join(why, "; "))
}
