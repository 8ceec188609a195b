package dropreport

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// RecorderConfig configures a Recorder. Store is required.
type RecorderConfig struct {
	Store Store
	// Lines, when set, returns the line counters of every drop open in the
	// waiting room; the recorder copies them to the store every LineEvery.
	Lines func(ctx context.Context) (map[string]Line, error)
	// FlushEvery is the longest an event waits before it is written
	// (default 500ms); a batch of MaxBatch is written at once.
	FlushEvery time.Duration
	// LineEvery is how often the line counters are copied (default 5s).
	LineEvery time.Duration
	// MaxBatch is the events written in one store call (default 1,000).
	MaxBatch int
	// MaxPending bounds the events held while the store is slow or down
	// (default 100,000); beyond it they are counted as lost, and the
	// count is recorded when the store takes writes again.
	MaxPending int
	// MaxSeen bounds the visitors remembered per replica so that one who
	// polls a hundred times is recorded admitted (or told sold out) once
	// (default 1,000,000; forgotten all at once when full, which costs a
	// duplicate row the report counts once anyway).
	MaxSeen int
	Logger  *slog.Logger
}

// Recorder takes a drop's events from the buy path and writes them to
// the store in batches from its own goroutine: recording costs a request
// an append under a lock, never a database write, so the line stays as
// cheap as it was. Record never blocks.
type Recorder struct {
	cfg  RecorderConfig
	log  *slog.Logger
	wake chan struct{}
	stop chan struct{}
	done chan struct{}

	mu      sync.Mutex
	pending []Event
	lost    map[string]int64 // drop -> events not kept
	seen    map[seenKey]struct{}

	writeMu sync.Mutex // one batch written at a time, in order
	closed  sync.Once
}

type seenKey struct {
	drop, visitor string
	kind          Kind
}

// NewRecorder starts a Recorder; Close stops it after writing what it
// holds.
func NewRecorder(cfg RecorderConfig) *Recorder {
	if cfg.FlushEvery <= 0 {
		cfg.FlushEvery = 500 * time.Millisecond
	}
	if cfg.LineEvery <= 0 {
		cfg.LineEvery = 5 * time.Second
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 1000
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = 100_000
	}
	if cfg.MaxSeen <= 0 {
		cfg.MaxSeen = 1_000_000
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Recorder{cfg: cfg, log: log, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
		lost: map[string]int64{}, seen: map[seenKey]struct{}{}}
	go r.run()
	return r
}

// Record queues e. An event that cannot be stored (an unknown kind, an
// over-long field) is dropped; an admission or sold-out notice already
// recorded for the visitor by this replica is not recorded again.
func (r *Recorder) Record(e Event) {
	if e.At.IsZero() {
		e.At = time.Now()
	}
	e.At = e.At.UTC()
	if !e.valid() {
		return
	}
	r.mu.Lock()
	if e.Kind == KindAdmitted || e.Kind == KindToldSoldOut {
		k := seenKey{e.Drop, e.Visitor, e.Kind}
		if _, ok := r.seen[k]; ok {
			r.mu.Unlock()
			return
		}
		if len(r.seen) >= r.cfg.MaxSeen {
			clear(r.seen)
		}
		r.seen[k] = struct{}{}
	}
	if len(r.pending) >= r.cfg.MaxPending {
		r.lost[e.Drop]++
		r.mu.Unlock()
		return
	}
	r.pending = append(r.pending, e)
	full := len(r.pending) >= r.cfg.MaxBatch
	r.mu.Unlock()
	if full {
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
}

func (r *Recorder) run() {
	defer close(r.done)
	flush := time.NewTicker(r.cfg.FlushEvery)
	defer flush.Stop()
	lines := time.NewTicker(r.cfg.LineEvery)
	defer lines.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-r.wake:
		case <-flush.C:
		case <-lines.C:
			if err := r.saveLines(context.Background()); err != nil {
				r.log.Warn("drop report: copy the line counters", "err", err)
			}
			continue
		}
		if err := r.flushEvents(context.Background()); err != nil {
			r.log.Warn("drop report: record events", "err", err)
		}
	}
}

// Flush writes every event recorded so far and copies the line counters
// now: the report calls it so that it shows the drop up to this moment.
func (r *Recorder) Flush(ctx context.Context) error {
	if err := r.flushEvents(ctx); err != nil {
		return err
	}
	return r.saveLines(ctx)
}

// flushEvents writes the pending events in batches. A batch the store
// refuses goes back to the front of the queue for the next try.
func (r *Recorder) flushEvents(ctx context.Context) error {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	for {
		r.mu.Lock()
		n := min(len(r.pending), r.cfg.MaxBatch)
		batch := make([]Event, n, n+len(r.lost))
		copy(batch, r.pending[:n])
		lost := r.lost
		r.lost = map[string]int64{}
		r.mu.Unlock()
		now := time.Now().UTC()
		for drop, k := range lost {
			batch = append(batch, Event{Drop: drop, Kind: KindLost, Quantity: k, At: now})
		}
		if len(batch) == 0 {
			return nil
		}
		if err := r.cfg.Store.RecordDropEvents(ctx, batch); err != nil {
			r.mu.Lock()
			for drop, k := range lost {
				r.lost[drop] += k
			}
			r.mu.Unlock()
			return err
		}
		r.mu.Lock()
		r.pending = r.pending[n:]
		if len(r.pending) == 0 {
			r.pending = nil // let the backing array go after a burst
		}
		more := len(r.pending) > 0
		r.mu.Unlock()
		if !more {
			return nil
		}
	}
}

func (r *Recorder) saveLines(ctx context.Context) error {
	if r.cfg.Lines == nil {
		return nil
	}
	ls, err := r.cfg.Lines(ctx)
	if err != nil {
		return err
	}
	for id, l := range ls {
		if err := r.cfg.Store.SaveDropLine(ctx, id, l); err != nil {
			return err
		}
	}
	return nil
}

// Close stops the recorder after writing what it holds (within ctx).
func (r *Recorder) Close(ctx context.Context) error {
	var err error
	r.closed.Do(func() {
		close(r.stop)
		<-r.done
		err = r.Flush(ctx)
	})
	return err
}
