package shop

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/surge-commerce/surge/internal/drop"
	"github.com/surge-commerce/surge/internal/dropreport"
	"github.com/surge-commerce/surge/internal/jobs"
	"github.com/surge-commerce/surge/internal/waitroom"
)

// openDropRecorder starts the recorder of drop events: the waiting room
// and the storefront hand it what happens at a drop, and it writes them
// to the store in batches, off the buyer's path.
func (s *Shop) openDropRecorder(cfg Config, log *slog.Logger) {
	s.dropNow = time.Now
	if cfg.DropClock != nil {
		s.dropNow = cfg.DropClock
	}
	s.DropEvents = dropreport.NewRecorder(dropreport.RecorderConfig{Store: s.Store, Lines: s.dropLines, Logger: log})
	s.closers = append(s.closers, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return s.DropEvents.Close(ctx)
	})
}

// roomEvent records a line's event, the standby line's excepted (it is
// not a drop).
func (s *Shop) roomEvent(e waitroom.Event) {
	if e.Drop == waitroom.StandbyDrop || s.DropEvents == nil {
		return
	}
	s.DropEvents.Record(dropreport.Event{Drop: e.Drop, Kind: dropreport.Kind(e.Kind), Visitor: e.Visitor, Reason: e.Reason, Wait: e.Wait, At: e.At})
}

// dropLines reads the counters of every drop line open in this replica's
// waiting room, for the recorder to copy to the store.
func (s *Shop) dropLines(ctx context.Context) (map[string]dropreport.Line, error) {
	if s.Room == nil {
		return nil, nil
	}
	ds, err := s.Store.Drops(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]dropreport.Line{}
	now := s.dropNow()
	for _, d := range ds {
		if _, err := s.Room.Spec(d.ID); err != nil {
			continue // not open here (closed, or not yet picked up)
		}
		c, err := s.Room.Counters(ctx, d.ID)
		if err != nil {
			continue
		}
		out[d.ID] = dropreport.Line{At: now, PreQueue: c.PreQueue, Joined: c.Joined, Admitted: c.Admitted, NoShows: c.NoShows}
	}
	return out, nil
}

// DropReport makes drop d's report from what the shop recorded, after
// writing what this replica still holds. s.Notified counts the reminders
// when the shop sends them; without it the report says "not tracked".
func (s *Shop) DropReport(ctx context.Context, d drop.Drop) (dropreport.Report, error) {
	if s.DropEvents != nil {
		if err := s.DropEvents.Flush(ctx); err != nil {
			return dropreport.Report{}, err
		}
	}
	return dropreport.Build(ctx, s.Store, s.Notified, d)
}

// dropPagePurger empties a drop's cached pages when what they show
// changes: the units left, and the start (scheduled to live). The room
// reads a drop's stock at most every StockTTL (250ms) while anybody is in
// line, so the drop page's "units left" is never staler than the line's
// own status, and the pages are rendered at most that often.
type dropPagePurger struct {
	mu    sync.Mutex
	seen  map[string]dropPageState
	purge func(tags ...string)
}

type dropPageState struct {
	left    int64
	started bool
}

// observe notes drop id's stock and start and purges its pages when
// either changed since the last reading.
func (p *dropPagePurger) observe(id string, left int64, started bool) {
	st := dropPageState{left: left, started: started}
	p.mu.Lock()
	old, ok := p.seen[id]
	if p.seen == nil {
		p.seen = map[string]dropPageState{}
	}
	p.seen[id] = st
	purge := p.purge
	p.mu.Unlock()
	if ok && old != st && purge != nil {
		purge("drop:"+id, "drops")
	}
}

// stockWatch wraps the waiting room's stock reading with the drop page
// purger.
func (s *Shop) stockWatch(ctx context.Context, id string) (int64, error) {
	n, err := s.Store.Available(ctx, id)
	if err != nil {
		return n, err
	}
	started := false
	if spec, serr := s.Room.Spec(id); serr == nil {
		started = !s.dropNow().Before(spec.Start)
	}
	s.dropPages.observe(id, n, started)
	return n, nil
}

// remindersSent is the funnel's "notified" from the mail job ledger: the
// drop reminders the mail server accepted for the drop, on every worker.
type remindersSent struct {
	jobs interface {
		Jobs(ctx context.Context) ([]jobs.Job, error)
	}
}

// DropNotified counts the reminders sent for dropID.
func (r remindersSent) DropNotified(ctx context.Context, dropID string) (int64, error) {
	all, err := r.jobs.Jobs(ctx)
	if err != nil {
		return 0, fmt.Errorf("count reminders of drop %s: %w", dropID, err)
	}
	var sent int64
	for _, j := range all {
		if j.DropID == dropID && j.Kind == jobs.KindReminder {
			sent += j.Sent
		}
	}
	return sent, nil
}
