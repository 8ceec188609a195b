package waitroom

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"time"
)

// Journal keeps the changes of a journaled MemLedger (NewJournaledLedger)
// in order, so that replaying them after a crash rebuilds the ledger
// exactly: the epochs, every place, the pre-queue draw, who was admitted
// when, who arrived, left or finished. The embedded shop keeps it in an
// append-only file in its data directory (internal/journalfile).
//
// Only what cannot be worked out again is written: the calls that change
// a queue (Create, Join, Release, Arrive, SetFlow, Close, Delete) and the
// clock readings at which a call moved the line (admitted someone, freed a
// slot, drew the pre-queue). A status check that moves nothing, which is
// nearly all of them, writes nothing.
type Journal interface {
	// Replay calls fn with every entry appended and not reset, in the
	// order they were appended.
	Replay(ctx context.Context, fn func(JournalEntry) error) error
	// Append stores entries, in order, after every entry appended before.
	// When it returns nil they survive a crash of the process; when it
	// fails none of them was stored.
	Append(ctx context.Context, entries []JournalEntry) error
}

// JournalEntry is one change to one drop's queue.
type JournalEntry struct {
	Drop string
	// Reset forgets the drop's earlier entries (its queue was deleted);
	// Record is then empty.
	Reset bool
	// Record is the change, encoded by the ledger (opaque to the journal).
	Record []byte
}

// Journal record kinds.
const (
	recCreate  byte = 1 // a new queue: epoch, shuffle seed, config
	recConfig  byte = 2 // an existing queue's config changed
	recJoin    byte = 3
	recRelease byte = 4
	recArrive  byte = 5
	recFlow    byte = 6
	recClose   byte = 7
	recTick    byte = 8 // a call at this clock reading moved the line

	recVersion byte = 1
)

// journalError marks a failed journal write as a moment's unavailability
// (the HTTP layer answers 503 with Retry-After).
type journalError struct{ err error }

func (e journalError) Error() string     { return "waiting room journal: " + e.err.Error() }
func (e journalError) Unwrap() error     { return e.err }
func (e journalError) Unavailable() bool { return true }

// NewJournaledLedger rebuilds an in-process ledger from j and returns it
// writing every change to j before answering: a crash loses no place, no
// draw and no admission the ledger told anyone about. It needs no
// background goroutine: the callers waiting for their changes to be
// written take turns writing everything queued (group commit).
func NewJournaledLedger(ctx context.Context, j Journal) (*MemLedger, error) {
	l := NewMemLedger()
	err := j.Replay(ctx, func(e JournalEntry) error {
		if err := l.replay(e); err != nil {
			return fmt.Errorf("drop %q: %w", e.Drop, err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("replay the waiting room journal: %w", err)
	}
	l.journal = j
	return l, nil
}

// Drops lists the drops the ledger holds a queue for.
func (l *MemLedger) Drops() []string {
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make([]string, 0, len(l.drops))
	for id := range l.drops {
		out = append(out, id)
	}
	return out
}

// ErrCorruptJournal means a journal holds an entry no ledger call writes
// (damaged, or written by a newer version): NewJournaledLedger cannot
// rebuild the line from it.
var ErrCorruptJournal = errors.New("corrupt waiting room journal")

var errCorrupt = ErrCorruptJournal

// replay applies one journal entry as the call that wrote it did: from
// the credit that call found, at its clock reading, through the same
// code.
func (l *MemLedger) replay(e JournalEntry) error {
	if e.Reset {
		delete(l.drops, e.Drop)
		return nil
	}
	r := decoder{b: e.Record}
	if len(r.b) < 2 || r.b[0] != recVersion {
		return errCorrupt
	}
	kind := r.b[1]
	r.b = r.b[2:]
	d, ok := l.drops[e.Drop]
	switch kind {
	case recCreate:
		epoch := r.uvarint()
		var shuffle [32]byte
		r.fixed(shuffle[:])
		cfg := decodeQueueConfig(&r)
		if r.done() != nil || ok || epoch == 0 {
			return errCorrupt
		}
		l.create(e.Drop, cfg.withDefaults(), epoch, shuffle)
		return nil
	case recConfig:
		cfg := decodeQueueConfig(&r)
		if r.done() != nil || !ok {
			return errCorrupt
		}
		d.configure(cfg.withDefaults())
		return nil
	}
	if !ok {
		return errCorrupt
	}
	now := decodeNano(&r)
	b := decodeBucket(&r)
	if now.After(d.clock) {
		d.clock = now
	}
	d.credits, d.accrued = b.credits, b.accrued
	switch kind {
	case recTick:
		if r.done() != nil {
			return errCorrupt
		}
		d.advance(now)
	case recJoin:
		visitor := r.str()
		if r.done() != nil {
			return errCorrupt
		}
		if p, _, err := d.join(visitor, now); err != nil || p.Existing {
			return errCorrupt
		}
	case recRelease:
		visitor := r.str()
		if r.done() != nil || !d.releaseVisitor(visitor, now) {
			return errCorrupt
		}
	case recArrive:
		seq := r.uvarint()
		if r.done() != nil || seq == 0 || seq > uint64(len(d.seats)) {
			return errCorrupt
		}
		d.arrive(seq)
	case recFlow:
		rate := math.Float64frombits(r.uvarint())
		paused := r.flagValue()
		if r.done() != nil {
			return errCorrupt
		}
		d.setFlow(Flow{RatePerMinute: rate, Paused: paused}, now)
	case recClose:
		if r.done() != nil {
			return errCorrupt
		}
		d.closed = true
	default:
		return errCorrupt
	}
	return nil
}

// bucket is a drop's admission credit at one instant. Credit is the one
// thing a call changes that depends on when earlier calls came, so each
// journaled call carries what it found.
type bucket struct {
	credits float64
	accrued time.Time
}

func (d *memDrop) bucket() bucket { return bucket{d.credits, d.accrued} }

func (b bucket) encode(e *encoder) {
	e.uvarint(math.Float64bits(b.credits))
	e.flag(!b.accrued.IsZero())
	if !b.accrued.IsZero() {
		e.nano(b.accrued)
	}
}

func decodeBucket(d *decoder) bucket {
	b := bucket{credits: math.Float64frombits(d.uvarint())}
	if d.flagValue() {
		b.accrued = decodeNano(d)
	}
	return b
}

func (e *encoder) flag(v bool) {
	if v {
		e.uvarint(1)
	} else {
		e.uvarint(0)
	}
}

func (d *decoder) flagValue() bool {
	switch d.uvarint() {
	case 0:
		return false
	case 1:
		return true
	}
	d.bad = true
	return false
}

func record(kind byte) encoder {
	return encoder{b: append(make([]byte, 0, 48), recVersion, kind)}
}

func (e *encoder) nano(t time.Time) { e.uvarint(uint64(t.UnixNano())) }

func decodeNano(d *decoder) time.Time { return time.Unix(0, int64(d.uvarint())) }

func encodeQueueConfig(e *encoder, c QueueConfig) {
	e.flag(!c.Start.IsZero())
	if !c.Start.IsZero() {
		e.nano(c.Start)
	}
	e.uvarint(uint64(c.Burst))
	e.uvarint(uint64(c.MaxActive))
	e.uvarint(uint64(c.NoShowWindow))
	e.uvarint(uint64(c.AccessTTL))
	e.uvarint(uint64(c.MaxJoins))
}

func decodeQueueConfig(d *decoder) QueueConfig {
	var c QueueConfig
	if d.flagValue() {
		c.Start = decodeNano(d)
	}
	c.Burst = int(d.uvarint())
	c.MaxActive = int(d.uvarint())
	c.NoShowWindow = time.Duration(d.uvarint())
	c.AccessTTL = time.Duration(d.uvarint())
	c.MaxJoins = int(d.uvarint())
	return c
}

// logged is what a call wrote to the journal: the sequence number of its
// last entry, 0 for none.
type logged uint64

// log queues an entry of d's (called with d.mu held, so each drop's
// entries are queued in the order its changes happened). A queue deleted
// meanwhile writes nothing more: its entries would land after the reset,
// in the next incarnation's.
func (l *MemLedger) log(d *memDrop, drop string, e encoder) {
	if l.journal == nil || d.deleted {
		return
	}
	l.jmu.Lock()
	defer l.jmu.Unlock()
	l.jqueue = append(l.jqueue, JournalEntry{Drop: drop, Record: e.b})
	l.jseq++
	d.logged = logged(l.jseq)
}

// logReset queues the reset of drop's entries.
func (l *MemLedger) logReset(drop string) logged {
	if l.journal == nil {
		return 0
	}
	l.jmu.Lock()
	defer l.jmu.Unlock()
	l.jqueue = append(l.jqueue, JournalEntry{Drop: drop, Reset: true})
	l.jseq++
	return logged(l.jseq)
}

// journalTimeout bounds one journal write, whoever's request it runs in.
const journalTimeout = 10 * time.Second

// sync returns once every entry up to upTo is written. The first caller
// to find nobody writing writes everything queued in one Append (group
// commit); the others wait. When a write ends it wakes only the callers
// it wrote for, and one more to write the next batch: waking every
// caller at every write would cost more than the writes at a drop's
// stampede. A caller that gives up (ctx done) stops waiting, but a write
// it started runs on for the callers whose entries it holds.
func (l *MemLedger) sync(ctx context.Context, upTo logged) error {
	if upTo == 0 {
		return nil
	}
	l.jmu.Lock()
	for {
		if l.jdone >= uint64(upTo) {
			l.jmu.Unlock()
			return nil
		}
		if !l.jflushing {
			if err := l.flush(ctx); err != nil {
				l.jmu.Unlock()
				return err
			}
			continue
		}
		w := &journalWaiter{upTo: uint64(upTo), wake: make(chan struct{})}
		l.jwaiters = append(l.jwaiters, w)
		l.jmu.Unlock()
		select {
		case <-w.wake:
			l.jmu.Lock()
		case <-ctx.Done():
			l.jmu.Lock()
			l.jwaiters = slices.DeleteFunc(l.jwaiters, func(o *journalWaiter) bool { return o == w })
			l.wakeWaiters() // pass the turn on if it was handed to this caller
			l.jmu.Unlock()
			return journalError{ctx.Err()}
		}
	}
}

// journalWaiter is a caller of sync waiting for entries up to upTo.
type journalWaiter struct {
	upTo uint64
	wake chan struct{}
}

// flush writes everything queued (called with jmu held, which it lets go
// of while writing).
func (l *MemLedger) flush(ctx context.Context) error {
	// Let the goroutines ready to run go first: under a stampede they are
	// requests about to queue entries, which then share this write
	// instead of each paying for one of their own.
	l.jflushing = true
	l.jmu.Unlock()
	runtime.Gosched()
	l.jmu.Lock()
	batch, end := l.jqueue, l.jseq
	l.jqueue = nil
	l.jmu.Unlock()
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), journalTimeout)
	err := l.journal.Append(wctx, batch)
	cancel()
	l.jmu.Lock()
	l.jflushing = false
	if err == nil {
		l.jdone = end
	} else {
		// Written by the next turn, still ahead of anything queued since.
		l.jqueue = append(batch, l.jqueue...)
	}
	l.wakeWaiters()
	if err != nil {
		return journalError{err}
	}
	return nil
}

// wakeWaiters wakes the waiters whose entries are written and, while
// nobody writes, one more to write (called with jmu held).
func (l *MemLedger) wakeWaiters() {
	keep := l.jwaiters[:0]
	for _, w := range l.jwaiters {
		if w.upTo <= l.jdone {
			close(w.wake)
		} else {
			keep = append(keep, w)
		}
	}
	clear(l.jwaiters[len(keep):])
	l.jwaiters = keep
	if !l.jflushing && len(l.jwaiters) > 0 {
		close(l.jwaiters[0].wake)
		l.jwaiters = l.jwaiters[1:]
	}
}

// mark is what a ledger call may change in a drop by only bringing it up
// to date (advance), besides the credit: when it differs before and
// after, the call's clock reading is journaled, for a replay to draw,
// admit and release as it did. A call that only accrued credit is not:
// the next journaled call carries the credit it found.
type mark struct {
	frozen                         bool
	frontier, noShowCur, expireCur uint64
	active, admitted, leftWaiting  uint64
}

func (d *memDrop) mark() mark {
	return mark{frozen: d.frozen, frontier: d.frontier, noShowCur: d.noShowCur,
		expireCur: d.expireCur, active: d.active, admitted: d.admitted, leftWaiting: d.leftWaiting}
}
