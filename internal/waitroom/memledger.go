package waitroom

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"time"
)

// MemLedger is the in-process Ledger: one mutex per drop, O(1) amortized
// per call (the shuffle at the start is O(pre-queue) once), and about 16
// bytes per place plus the visitor map.
type MemLedger struct {
	mu    sync.RWMutex
	drops map[string]*memDrop

	rngMu sync.Mutex
	rng   *rand.ChaCha8 // draws epochs and per-drop shuffle seeds

	// journal, when set, gets every change before a call answers (see
	// NewJournaledLedger); the rest is its queue of entries not yet
	// written, numbered 1..jseq, of which 1..jdone are written.
	journal   Journal
	jmu       sync.Mutex
	jqueue    []JournalEntry
	jseq      uint64
	jdone     uint64
	jflushing bool
	jwaiters  []*journalWaiter
}

var _ Ledger = (*MemLedger)(nil)

// NewMemLedger returns an empty in-process ledger with cryptographically
// random shuffles.
func NewMemLedger() *MemLedger {
	var seed [32]byte
	if _, err := crand.Read(seed[:]); err != nil {
		panic(fmt.Sprintf("waitroom: crypto/rand: %v", err)) // crypto/rand never fails on supported platforms
	}
	return NewSeededMemLedger(seed)
}

// NewSeededMemLedger returns an in-process ledger whose epochs and
// shuffles all follow from seed: for tests only, since anyone who knows
// the seed can predict the pre-queue draw.
func NewSeededMemLedger(seed [32]byte) *MemLedger {
	return &MemLedger{drops: make(map[string]*memDrop), rng: rand.NewChaCha8(seed)}
}

type memDrop struct {
	mu       sync.Mutex
	cfg      QueueConfig
	epoch    uint64
	shuffle  [32]byte // seed of the pre-queue draw
	flow     Flow
	closed   bool
	clock    time.Time // latest reading seen; time never runs backwards
	frozen   bool      // pre-queue drawn
	preQueue uint64

	visitors map[string]uint32 // visitor -> seq
	seats    []memSeat         // by seq-1
	posToSeq []uint32          // pre-queue draw: position-1 -> seq
	seqToPos []uint32          // and back: seq-1 -> position

	// logged is the journal number of the drop's latest entry: no call
	// answers before it is written, so no answer rests on a change a
	// crash could undo.
	logged  logged
	deleted bool // by Delete: a caller still holding d changes nothing that counts

	frontier  uint64 // positions 1..frontier had their turn
	credits   float64
	accrued   time.Time // credits are up to date to here
	active    uint64
	noShowCur uint64 // positions the no-show sweep has passed
	expireCur uint64 // positions the expiry sweep has passed

	admitted, completed, noShows, expired, left, leftWaiting uint64
}

// memSeat is one place. admittedAt is Unix nanoseconds, 0 while waiting
// (or skipped after leaving).
type memSeat struct {
	admittedAt int64
	arrived    bool
	released   uint8
}

const (
	relNone uint8 = iota
	relDone
	relNoShow
	relExpired
	relLeft
)

var relNames = [...]string{relNone: ReleasedNone, relDone: ReleasedDone, relNoShow: ReleasedNoShow, relExpired: ReleasedExpired, relLeft: ReleasedLeft}

func (l *MemLedger) random() (epoch uint64, shuffle [32]byte) {
	l.rngMu.Lock()
	defer l.rngMu.Unlock()
	for epoch == 0 {
		epoch = l.rng.Uint64()
	}
	for i := 0; i < len(shuffle); i += 8 {
		binary.LittleEndian.PutUint64(shuffle[i:], l.rng.Uint64())
	}
	return epoch, shuffle
}

// Create implements Ledger.
func (l *MemLedger) Create(ctx context.Context, drop string, cfg QueueConfig) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	cfg = cfg.withDefaults()
	l.mu.Lock()
	d, ok := l.drops[drop]
	if !ok {
		epoch, shuffle := l.random()
		d = l.create(drop, cfg, epoch, shuffle)
		d.mu.Lock()
		if l.journal != nil {
			e := record(recCreate)
			e.uvarint(epoch)
			e.b = append(e.b, shuffle[:]...)
			encodeQueueConfig(&e, cfg)
			l.log(d, drop, e)
		}
	} else {
		d.mu.Lock()
		if d.configure(cfg) && l.journal != nil {
			e := record(recConfig)
			encodeQueueConfig(&e, cfg)
			l.log(d, drop, e)
		}
	}
	l.mu.Unlock()
	epoch := d.epoch
	return epoch, l.unlock(ctx, d)
}

// create adds a new queue for drop (called with l.mu held).
func (l *MemLedger) create(drop string, cfg QueueConfig, epoch uint64, shuffle [32]byte) *memDrop {
	d := &memDrop{
		cfg: cfg, epoch: epoch, shuffle: shuffle,
		visitors: make(map[string]uint32),
		credits:  float64(cfg.Burst),
	}
	l.drops[drop] = d
	return d
}

// configure applies cfg to an existing queue (the start only until the
// pre-queue is drawn) and reports whether anything changed.
func (d *memDrop) configure(cfg QueueConfig) bool {
	old := d.cfg
	if !d.frozen {
		d.cfg.Start = cfg.Start
	}
	start := d.cfg.Start
	d.cfg = cfg
	d.cfg.Start = start
	return !d.cfg.Start.Equal(old.Start) || d.cfg.Burst != old.Burst || d.cfg.MaxActive != old.MaxActive ||
		d.cfg.NoShowWindow != old.NoShowWindow || d.cfg.AccessTTL != old.AccessTTL || d.cfg.MaxJoins != old.MaxJoins
}

func (c QueueConfig) withDefaults() QueueConfig {
	c.Burst = max(c.Burst, 1)
	if c.MaxJoins <= 0 {
		c.MaxJoins = DefaultMaxJoins
	}
	c.MaxJoins = min(c.MaxJoins, 1<<32-1)
	return c
}

// Delete implements Ledger.
func (l *MemLedger) Delete(ctx context.Context, drop string) error {
	l.mu.Lock()
	if _, ok := l.drops[drop]; !ok {
		l.mu.Unlock()
		return fmt.Errorf("delete %q: %w", drop, ErrUnknownDrop)
	}
	d := l.drops[drop]
	delete(l.drops, drop)
	d.mu.Lock()
	d.deleted = true
	upTo := l.logReset(drop)
	d.mu.Unlock()
	l.mu.Unlock()
	return l.sync(ctx, upTo)
}

// lock finds drop, locks it and brings it up to now. With a journal, a
// clock reading that moved the line (admitted, freed or drew anyone) is
// written, with the credit the call found, so a replay moves it alike.
func (l *MemLedger) lock(drop string, now time.Time) (*memDrop, time.Time, error) {
	l.mu.RLock()
	d, ok := l.drops[drop]
	l.mu.RUnlock()
	if !ok {
		return nil, now, fmt.Errorf("drop %q: %w", drop, ErrUnknownDrop)
	}
	d.mu.Lock()
	if now.Before(d.clock) {
		now = d.clock
	}
	d.clock = now
	if l.journal == nil {
		d.advance(now)
		return d, now, nil
	}
	before, bucket := d.mark(), d.bucket()
	d.advance(now)
	if d.mark() != before {
		e := record(recTick)
		e.nano(now)
		bucket.encode(&e)
		l.log(d, drop, e)
	}
	return d, now, nil
}

// unlock releases d and waits until every change of d's, and so every
// change the caller may have seen, is written: no answer rests on a
// change a crash could undo.
func (l *MemLedger) unlock(ctx context.Context, d *memDrop) error {
	upTo := d.logged
	d.mu.Unlock()
	return l.sync(ctx, upTo)
}

// logCall journals a call's own change (kind, and fields written by
// more) made at now, with the credit b the call found once it had
// brought the drop up to now, for the replay to start the change from.
func (l *MemLedger) logCall(d *memDrop, drop string, kind byte, now time.Time, b bucket, more func(e *encoder)) {
	if l.journal == nil {
		return
	}
	e := record(kind)
	e.nano(now)
	b.encode(&e)
	if more != nil {
		more(&e)
	}
	l.log(d, drop, e)
}

// Join implements Ledger.
func (l *MemLedger) Join(ctx context.Context, drop, visitor string, now time.Time) (Place, Counters, error) {
	d, now, err := l.lock(drop, now)
	if err != nil {
		return Place{}, Counters{}, err
	}
	b := d.bucket()
	p, c, err := d.join(visitor, now)
	if err != nil {
		err = fmt.Errorf("join %q: %w", drop, err)
	} else if !p.Existing {
		l.logCall(d, drop, recJoin, now, b, func(e *encoder) { e.str(visitor) })
	}
	if serr := l.unlock(ctx, d); serr != nil {
		return Place{}, Counters{}, serr
	}
	return p, c, err
}

func (d *memDrop) join(visitor string, now time.Time) (Place, Counters, error) {
	if seq, ok := d.visitors[visitor]; ok && d.seats[seq-1].released == relNone {
		p := d.place(uint64(seq))
		p.Existing = true
		return p, d.counters(), nil
	}
	if d.closed {
		return Place{}, d.counters(), ErrClosed
	}
	if len(d.seats) >= d.cfg.MaxJoins {
		return Place{}, d.counters(), ErrQueueFull
	}
	d.seats = append(d.seats, memSeat{})
	seq := uint64(len(d.seats))
	d.visitors[visitor] = uint32(seq)
	if !d.frozen {
		d.preQueue++
	}
	d.admit(now)
	return d.place(seq), d.counters(), nil
}

// Counters implements Ledger.
func (l *MemLedger) Counters(ctx context.Context, drop string, now time.Time) (Counters, error) {
	d, _, err := l.lock(drop, now)
	if err != nil {
		return Counters{}, err
	}
	c := d.counters()
	return c, l.unlock(ctx, d)
}

// SetFlow implements Ledger.
func (l *MemLedger) SetFlow(ctx context.Context, drop string, f Flow, now time.Time) (Counters, error) {
	d, now, err := l.lock(drop, now)
	if err != nil {
		return Counters{}, err
	}
	f = Flow{RatePerMinute: max(0, f.RatePerMinute), Paused: f.Paused}
	if f != d.flow {
		l.logCall(d, drop, recFlow, now, d.bucket(), func(e *encoder) {
			e.uvarint(math.Float64bits(f.RatePerMinute))
			e.flag(f.Paused)
		})
	}
	d.setFlow(f, now)
	c := d.counters()
	return c, l.unlock(ctx, d)
}

func (d *memDrop) setFlow(f Flow, now time.Time) {
	d.flow = f
	d.admit(now)
}

// Close implements Ledger.
func (l *MemLedger) Close(ctx context.Context, drop string, now time.Time) (Counters, error) {
	d, now, err := l.lock(drop, now)
	if err != nil {
		return Counters{}, err
	}
	if !d.closed {
		l.logCall(d, drop, recClose, now, d.bucket(), nil)
	}
	d.closed = true
	c := d.counters()
	return c, l.unlock(ctx, d)
}

// Position implements Ledger.
func (l *MemLedger) Position(ctx context.Context, drop string, seq uint64, now time.Time) (uint64, error) {
	d, _, err := l.lock(drop, now)
	if err != nil {
		return 0, err
	}
	if seq == 0 || seq > uint64(len(d.seats)) {
		d.mu.Unlock()
		return 0, fmt.Errorf("position of %d in %q: no such place", seq, drop)
	}
	p := d.position(seq)
	return p, l.unlock(ctx, d)
}

// Seat implements Ledger.
func (l *MemLedger) Seat(ctx context.Context, drop string, seq uint64, now time.Time) (Seat, error) {
	d, _, err := l.lock(drop, now)
	if err != nil {
		return Seat{}, err
	}
	if seq == 0 || seq > uint64(len(d.seats)) {
		d.mu.Unlock()
		return Seat{}, fmt.Errorf("seat %d in %q: no such place", seq, drop)
	}
	st := d.seat(seq)
	return st, l.unlock(ctx, d)
}

// Arrive implements Ledger.
func (l *MemLedger) Arrive(ctx context.Context, drop string, seq uint64, now time.Time) (Seat, error) {
	d, now, err := l.lock(drop, now)
	if err != nil {
		return Seat{}, err
	}
	if seq == 0 || seq > uint64(len(d.seats)) {
		d.mu.Unlock()
		return Seat{}, fmt.Errorf("arrive %d in %q: no such place", seq, drop)
	}
	if s := d.seats[seq-1]; s.admittedAt != 0 && s.released == relNone && !s.arrived {
		l.logCall(d, drop, recArrive, now, d.bucket(), func(e *encoder) { e.uvarint(seq) })
		d.arrive(seq)
	}
	st := d.seat(seq)
	return st, l.unlock(ctx, d)
}

func (d *memDrop) arrive(seq uint64) {
	s := &d.seats[seq-1]
	if s.admittedAt != 0 && s.released == relNone {
		s.arrived = true
	}
}

// Release implements Ledger.
func (l *MemLedger) Release(ctx context.Context, drop, visitor string, now time.Time) (bool, Counters, error) {
	d, now, err := l.lock(drop, now)
	if err != nil {
		return false, Counters{}, err
	}
	b := d.bucket()
	released := d.releaseVisitor(visitor, now)
	if released {
		l.logCall(d, drop, recRelease, now, b, func(e *encoder) { e.str(visitor) })
	}
	c := d.counters()
	return released, c, l.unlock(ctx, d)
}

func (d *memDrop) releaseVisitor(visitor string, now time.Time) bool {
	seq, ok := d.visitors[visitor]
	if !ok || d.seats[seq-1].released != relNone {
		return false
	}
	s := &d.seats[seq-1]
	if s.admittedAt != 0 {
		d.release(s, relDone)
	} else {
		s.released = relLeft
		d.left++
		d.leftWaiting++
	}
	d.admit(now)
	return true
}

// advance brings d up to now: draw the pre-queue at the start, reclaim
// no-shows and expired access, accrue admission credit and admit.
func (d *memDrop) advance(now time.Time) {
	if now.Before(d.cfg.Start) {
		return
	}
	if !d.frozen {
		d.draw()
	}
	d.sweep(now)
	if d.accrued.IsZero() {
		d.accrued = now
		if !d.cfg.Start.IsZero() {
			d.accrued = d.cfg.Start
		}
	}
	if dt := now.Sub(d.accrued); dt > 0 {
		d.credits += d.flow.RatePerMinute * dt.Minutes()
		d.accrued = now
	}
	d.admit(now)
}

// draw shuffles the pre-queue into positions 1..preQueue (Fisher-Yates
// with a ChaCha8 stream: every order equally likely).
func (d *memDrop) draw() {
	d.frozen = true
	n := int(d.preQueue)
	if n == 0 {
		return
	}
	d.posToSeq = make([]uint32, n)
	d.seqToPos = make([]uint32, n)
	for i := range d.posToSeq {
		d.posToSeq[i] = uint32(i + 1)
	}
	r := rand.New(rand.NewChaCha8(d.shuffle))
	r.Shuffle(n, func(i, j int) { d.posToSeq[i], d.posToSeq[j] = d.posToSeq[j], d.posToSeq[i] })
	for i, seq := range d.posToSeq {
		d.seqToPos[seq-1] = uint32(i + 1)
	}
}

// seqAt is the seq holding position pos (after the draw).
func (d *memDrop) seqAt(pos uint64) uint64 {
	if pos <= uint64(len(d.posToSeq)) {
		return uint64(d.posToSeq[pos-1])
	}
	return pos
}

// position is seq's position, 0 while not drawn.
func (d *memDrop) position(seq uint64) uint64 {
	if seq <= d.preQueue {
		if !d.frozen {
			return 0
		}
		return uint64(d.seqToPos[seq-1])
	}
	return seq
}

// sweep releases admitted visitors who did not arrive in time, and all
// whose access ran out. Positions are admitted in order and never with
// an earlier time than the one before, so each sweep is a cursor that
// stops at the first position not due yet: O(1) amortized.
func (d *memDrop) sweep(now time.Time) {
	t := now.UnixNano()
	if w := d.cfg.NoShowWindow; w > 0 {
		for d.noShowCur < d.frontier {
			s := &d.seats[d.seqAt(d.noShowCur+1)-1]
			if s.admittedAt != 0 && t-s.admittedAt < int64(w) {
				break
			}
			if s.admittedAt != 0 && !s.arrived && s.released == relNone {
				d.release(s, relNoShow)
			}
			d.noShowCur++
		}
	}
	if ttl := d.cfg.AccessTTL; ttl > 0 {
		for d.expireCur < d.frontier {
			s := &d.seats[d.seqAt(d.expireCur+1)-1]
			if s.admittedAt != 0 && t-s.admittedAt < int64(ttl) {
				break
			}
			if s.admittedAt != 0 && s.released == relNone {
				d.release(s, relExpired)
			}
			d.expireCur++
		}
	}
}

func (d *memDrop) release(s *memSeat, why uint8) {
	s.released = why
	d.active--
	switch why {
	case relDone:
		d.completed++
	case relNoShow:
		d.noShows++
	case relExpired:
		d.expired++
	}
}

// admit moves the frontier as far as credit, cap and line allow. Places
// given up before their turn are skipped for free. Saved credit never
// exceeds the burst, so admissions between two calls are at most
// burst + rate*elapsed.
func (d *memDrop) admit(now time.Time) {
	if now.Before(d.cfg.Start) || !d.frozen {
		return
	}
	burst := float64(d.cfg.Burst)
	for !d.closed && !d.flow.Paused && d.frontier < uint64(len(d.seats)) {
		s := &d.seats[d.seqAt(d.frontier+1)-1]
		if s.released != relNone { // left before their turn
			d.frontier++
			d.leftWaiting--
			continue
		}
		if d.credits < 1 || (d.cfg.MaxActive > 0 && d.active >= uint64(d.cfg.MaxActive)) {
			break
		}
		d.credits--
		d.frontier++
		d.active++
		d.admitted++
		s.admittedAt = now.UnixNano()
	}
	d.credits = min(d.credits, burst)
}

func (d *memDrop) place(seq uint64) Place {
	return Place{Seq: seq, Position: d.position(seq), PreQueue: seq <= d.preQueue}
}

func (d *memDrop) seat(seq uint64) Seat {
	s := d.seats[seq-1]
	out := Seat{Seq: seq, Position: d.position(seq), Arrived: s.arrived, Released: relNames[s.released]}
	if s.admittedAt != 0 {
		out.AdmittedAt = time.Unix(0, s.admittedAt)
	}
	return out
}

func (d *memDrop) counters() Counters {
	joined := uint64(len(d.seats))
	return Counters{
		Epoch:     d.epoch,
		Started:   d.frozen,
		PreQueue:  d.preQueue,
		Joined:    joined,
		Frontier:  d.frontier,
		Admitted:  d.admitted,
		Active:    d.active,
		Waiting:   joined - d.frontier - d.leftWaiting,
		Completed: d.completed,
		NoShows:   d.noShows,
		Expired:   d.expired,
		Left:      d.left,
		Flow:      d.flow,
		Closed:    d.closed,
	}
}
