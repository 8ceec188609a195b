package waitroom

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/surge-commerce/surge/internal/admission"
)

// Mode is how a drop's queue works.
type Mode int

const (
	// ModeScheduled is a drop at a set time: a randomized pre-queue
	// before Start, first come, first served after.
	ModeScheduled Mode = iota
	// ModeStandby protects paths during a spike: first come, first
	// served, and only while DropSpec.Standby is on.
	ModeStandby
)

// String names the mode as configuration spells it.
func (m Mode) String() string {
	if m == ModeStandby {
		return "standby"
	}
	return "scheduled"
}

// DropSpec configures one drop's waiting room. Zero fields take the
// defaults listed on each.
type DropSpec struct {
	// ID names the drop (see ValidDropID); "standby" by convention for
	// the standby queue.
	ID   string
	Mode Mode
	// Start is when admission begins and the pre-queue is drawn
	// (required for ModeScheduled, ignored for ModeStandby). End, if set,
	// is when joins stop and the waiting are told the drop closed;
	// admitted visitors keep their access until it expires.
	Start, End time.Time
	// PreQueueOpens is how long before Start joining opens; 0 means not
	// before Start.
	PreQueueOpens time.Duration
	// RatePerMinute is how many visitors are admitted per minute
	// (required; the starting point when Adaptive is set).
	RatePerMinute int
	// Burst is how many admissions may happen at once after a lull
	// (default: five seconds' worth of the rate, at least 1). At the
	// start a full burst goes in at once.
	Burst int
	// MaxActive caps admitted visitors whose slot is not freed yet;
	// 0 means no cap.
	MaxActive int
	// NoShowWindow frees the slot of an admitted visitor who has not
	// reached the cart or checkout (VerifyAccess) within it (default 2
	// minutes; negative disables).
	NoShowWindow time.Duration
	// AccessTTL is how long an admission lasts: the access token expires
	// and the slot is freed this long after the visitor's turn came
	// (default 15 minutes).
	AccessTTL time.Duration
	// TicketTTL is how long a ticket holds its place (default 12 hours;
	// it must outlast the longest wait).
	TicketTTL time.Duration
	// PoWDifficulty, when above 0, requires a proof of work with that
	// many leading zero bits to join (at most 32; 16 to 20 costs a
	// browser well under a second to a few seconds).
	PoWDifficulty int
	// Adaptive, when set, steers the rate from checkout latency and
	// errors.
	Adaptive *AdaptiveTargets
	// Standby is the trigger of a ModeStandby drop (required there).
	Standby *Standby
	// MaxJoins bounds the places handed out (default 2,000,000).
	MaxJoins int
}

func (s DropSpec) withDefaults() DropSpec {
	if s.Burst <= 0 {
		s.Burst = max(1, s.RatePerMinute/12)
	}
	if s.NoShowWindow == 0 {
		s.NoShowWindow = 2 * time.Minute
	}
	if s.AccessTTL <= 0 {
		s.AccessTTL = 15 * time.Minute
	}
	if s.TicketTTL <= 0 {
		s.TicketTTL = 12 * time.Hour
	}
	if s.Mode == ModeStandby {
		s.Start, s.PreQueueOpens = time.Time{}, 0
	}
	return s
}

// Validate reports whether Open accepts spec (zero fields taking their
// defaults); the error wraps ErrInvalid and says which setting is wrong.
func (s DropSpec) Validate() error { return s.withDefaults().validate() }

func (s DropSpec) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: drop %q: %s", ErrInvalid, s.ID, fmt.Sprintf(format, args...))
	}
	switch {
	case !ValidDropID(s.ID):
		return bad("ID must be 1 to 64 of A-Z a-z 0-9 - _")
	case s.Mode != ModeScheduled && s.Mode != ModeStandby:
		return bad("unknown mode %d", s.Mode)
	case s.Mode == ModeScheduled && s.Start.IsZero():
		return bad("Start is required")
	case s.Mode == ModeStandby && s.Standby == nil:
		return bad("Standby is required in standby mode")
	case !s.End.IsZero() && !s.End.After(s.Start):
		return bad("End must be after Start")
	case s.PreQueueOpens < 0:
		return bad("PreQueueOpens must not be negative")
	case s.RatePerMinute <= 0:
		return bad("RatePerMinute must be above 0")
	case s.MaxActive < 0:
		return bad("MaxActive must not be negative")
	case s.NoShowWindow > s.AccessTTL:
		return bad("NoShowWindow must not exceed AccessTTL")
	case s.PoWDifficulty < 0 || s.PoWDifficulty > maxPoWDifficulty:
		return bad("PoWDifficulty must be in [0, %d]", maxPoWDifficulty)
	}
	if s.Adaptive != nil {
		if err := s.Adaptive.withDefaults(s.RatePerMinute).validate(); err != nil {
			return fmt.Errorf("drop %q: %w", s.ID, err)
		}
	}
	return nil
}

// opens is when joining opens.
func (s DropSpec) opens() time.Time { return s.Start.Add(-s.PreQueueOpens) }

// ended reports whether End has passed.
func (s DropSpec) ended(now time.Time) bool { return !s.End.IsZero() && !now.Before(s.End) }

// Config configures a Room. Keys is required; zero fields take the
// defaults listed on each.
type Config struct {
	// Keys signs and verifies tickets, access tokens and challenges.
	// Every replica needs the same keys.
	Keys *Keyring
	// Ledger holds the shared queue state (default: a new MemLedger,
	// right for one process).
	Ledger Ledger
	// Stock returns how many units of the drop are still available (not
	// sold nor held by a live reservation). 0 or less means sold out:
	// the waiting are told so, joins are refused and admission pauses
	// until it is above 0 again. Nil means unlimited. When it fails the
	// last answer stands (none yet: not sold out); checkout's
	// reservation is what prevents overselling, this only informs.
	Stock func(ctx context.Context, dropID string) (available int64, err error)
	// StockTTL is how long a Stock answer is reused (default 250ms).
	StockTTL time.Duration
	// SnapshotTTL is how long the shared counters are reused for status
	// checks (default 250ms). Each replica reads the ledger at most once
	// per SnapshotTTL per drop for status checks.
	SnapshotTTL time.Duration
	// JoinRate is the token bucket per client address for joins
	// (default 1 a second, bursts of 20, kind to shoppers behind one
	// NAT); a negative PerSecond disables it.
	JoinRate admission.Rate
	// SharedJoinRate, when set, keeps the JoinRate buckets where every
	// replica shares them (built for JoinRate); each replica counts alone
	// while it fails.
	SharedJoinRate admission.SharedBuckets
	// JoinRateKeys bounds the addresses remembered (default 100,000).
	JoinRateKeys int
	// MinPoll and MaxPoll bound Status.PollAfter (defaults 2s and 30s).
	MinPoll, MaxPoll time.Duration
	// Discover, when set, is asked for a drop this room does not know
	// (another replica's admin API created it a moment ago): found means
	// it exists and is open, and the room opens it. At most ten lookups
	// a second, bursts of 20, since the IDs come from clients.
	Discover func(ctx context.Context, dropID string) (spec DropSpec, found bool, err error)
	// StartPollRate is the status polls a second the room aims for when
	// the start comes and the whole pre-queue wants its place at once
	// (default 2,000, for the whole shop: every replica computes the same
	// window from the shared pre-queue count; raise it with replicas): pre-queue
	// visitors are told to come back at the start plus a delay spread
	// evenly over PreQueue/StartPollRate seconds (at most half the
	// drop's no-show window, at least a second), fixed per ticket. Who
	// comes back when does not change anyone's place: positions are
	// drawn at the start, and an admitted seat waits the no-show window.
	StartPollRate float64
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger gets stock and ledger failures; nil discards them.
	Logger *slog.Logger
	// OnEvent, when set, is told of admissions, sold-out notices and
	// refused requests, for the drop's report. It must not block.
	OnEvent func(Event)
}

// DefaultJoinRate is Config.JoinRate when zero: one join a second per
// client address, bursts of 20, kind to shoppers behind one NAT.
func DefaultJoinRate() admission.Rate { return admission.Rate{PerSecond: 1, Burst: 20} }

// Room is the waiting room for any number of drops in one process. Every
// replica runs one, sharing the Ledger and the Keys. It needs no
// background goroutine: the queue moves whenever anybody asks.
type Room struct {
	keys     *Keyring
	ledger   Ledger
	stockFn  func(ctx context.Context, dropID string) (int64, error)
	stockTTL time.Duration
	snapTTL  time.Duration
	limiter  *admission.Buckets
	minPoll  time.Duration
	maxPoll  time.Duration
	// startPollRate spreads the pre-queue's first polls after the start.
	startPollRate float64
	discover      func(ctx context.Context, dropID string) (DropSpec, bool, error)
	discoverLimit *admission.RateLimiter
	now           func() time.Time
	log           *slog.Logger
	onEvent       func(Event)
	metrics       *metrics
	writeMu       sync.Mutex // serializes changes to drops
	drops         atomic.Pointer[map[string]*dropRun]
}

// dropRun is one open drop in this process.
type dropRun struct {
	spec   DropSpec
	snap   cached[Counters]
	stock  cached[stockLevel]
	adapt  *adaptive
	joins  joinCounters
	flowMu sync.Mutex
	sent   *Flow // last flow written to the ledger by this process

	rateMu       sync.Mutex
	rateAt       time.Time
	rateAdmitted uint64
	measured     atomic.Uint64 // float64 bits: measured admissions per minute

	resetMu sync.Mutex
	episode atomic.Uint64 // standby episode the queue belongs to
}

type stockLevel struct {
	available int64
	known     bool
}

// New returns a Room.
func New(cfg Config) (*Room, error) {
	if cfg.Keys == nil {
		return nil, fmt.Errorf("%w: Keys is required", ErrInvalid)
	}
	if cfg.Ledger == nil {
		cfg.Ledger = NewMemLedger()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.StockTTL <= 0 {
		cfg.StockTTL = 250 * time.Millisecond
	}
	if cfg.SnapshotTTL <= 0 {
		cfg.SnapshotTTL = 250 * time.Millisecond
	}
	if cfg.JoinRate.PerSecond == 0 {
		cfg.JoinRate = DefaultJoinRate()
	}
	if cfg.JoinRateKeys <= 0 {
		cfg.JoinRateKeys = 100_000
	}
	if cfg.MinPoll <= 0 {
		cfg.MinPoll = defaultMinPoll
	}
	if cfg.MaxPoll <= 0 {
		cfg.MaxPoll = defaultMaxPoll
	}
	if cfg.StartPollRate <= 0 {
		cfg.StartPollRate = 2000
	}
	if cfg.MaxPoll < cfg.MinPoll {
		return nil, fmt.Errorf("%w: MaxPoll below MinPoll", ErrInvalid)
	}
	r := &Room{
		keys: cfg.Keys, ledger: cfg.Ledger, stockFn: cfg.Stock,
		stockTTL: cfg.StockTTL, snapTTL: cfg.SnapshotTTL,
		minPoll: cfg.MinPoll, maxPoll: cfg.MaxPoll, startPollRate: cfg.StartPollRate,
		discover:      cfg.Discover,
		discoverLimit: admission.NewRateLimiter(admission.Rate{PerSecond: 10, Burst: 20}, 1, cfg.Now),
		now:           cfg.Now, log: cfg.Logger, onEvent: cfg.OnEvent,
	}
	if cfg.JoinRate.PerSecond > 0 {
		r.limiter = &admission.Buckets{Local: admission.NewRateLimiter(cfg.JoinRate, cfg.JoinRateKeys, cfg.Now), Shared: cfg.SharedJoinRate}
	}
	r.drops.Store(&map[string]*dropRun{})
	r.metrics = newMetrics(r)
	return r, nil
}

// Open starts (or, for an ID already open, reconfigures) a drop's waiting
// room. Every replica calls it with the same spec; the queue itself lives
// in the ledger, so reopening keeps everybody's place.
func (r *Room) Open(ctx context.Context, spec DropSpec) error {
	spec = spec.withDefaults()
	if err := spec.validate(); err != nil {
		return err
	}
	now := r.now()
	d := &dropRun{spec: spec, joins: r.metrics.joinCounters(spec.ID)}
	if spec.Adaptive != nil {
		d.adapt = newAdaptive(*spec.Adaptive, spec.RatePerMinute, now)
	}
	if spec.Mode == ModeStandby {
		d.episode.Store(spec.Standby.Episode())
	}
	if _, err := r.ledger.Create(ctx, spec.ID, spec.queueConfig()); err != nil {
		return fmt.Errorf("open drop %q: %w", spec.ID, err)
	}
	c, err := r.refresh(ctx, d, now)
	if err != nil {
		return fmt.Errorf("open drop %q: %w", spec.ID, err)
	}
	d.snap.set(c, now)
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	m := r.cloneDrops()
	m[spec.ID] = d
	r.drops.Store(&m)
	return nil
}

func (s DropSpec) queueConfig() QueueConfig {
	noShow := s.NoShowWindow
	if noShow < 0 {
		noShow = 0
	}
	return QueueConfig{
		Start: s.Start, Burst: s.Burst, MaxActive: s.MaxActive,
		NoShowWindow: noShow, AccessTTL: s.AccessTTL, MaxJoins: s.MaxJoins,
	}
}

func (r *Room) cloneDrops() map[string]*dropRun {
	old := *r.drops.Load()
	m := make(map[string]*dropRun, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	return m
}

// Close ends a drop's queue for good: joins are refused, nobody new is
// admitted, the waiting see closed. Admitted visitors keep their access
// until it expires, so checkouts under way can finish.
func (r *Room) Close(ctx context.Context, dropID string) error {
	d, err := r.lookup(dropID)
	if err != nil {
		return err
	}
	now := r.now()
	c, err := r.ledger.Close(ctx, dropID, now)
	if err != nil {
		return fmt.Errorf("close drop %q: %w", dropID, err)
	}
	d.snap.set(c, now)
	return nil
}

// Remove forgets a drop, here and in the ledger (run it on one replica
// once the drop is over; the others then answer ErrUnknownDrop only
// after their own Remove).
func (r *Room) Remove(ctx context.Context, dropID string) error {
	if _, err := r.lookup(dropID); err != nil {
		return err
	}
	r.writeMu.Lock()
	m := r.cloneDrops()
	delete(m, dropID)
	r.drops.Store(&m)
	r.writeMu.Unlock()
	for _, name := range joinResultNames {
		r.metrics.joins.DeleteLabelValues(dropID, name)
	}
	if err := r.ledger.Delete(ctx, dropID); err != nil && !errors.Is(err, ErrUnknownDrop) {
		return fmt.Errorf("remove drop %q: %w", dropID, err)
	}
	return nil
}

// Spec returns an open drop's spec, defaults filled in.
func (r *Room) Spec(dropID string) (DropSpec, error) {
	d, err := r.lookup(dropID)
	if err != nil {
		return DropSpec{}, err
	}
	return d.spec, nil
}

// Counters returns a drop's shared counters (cached like status checks),
// for operations pages and the CLI.
func (r *Room) Counters(ctx context.Context, dropID string) (Counters, error) {
	d, err := r.lookup(dropID)
	if err != nil {
		return Counters{}, err
	}
	return r.counters(ctx, d, r.now())
}

func (r *Room) lookup(dropID string) (*dropRun, error) {
	d, ok := (*r.drops.Load())[dropID]
	if ok {
		return d, nil
	}
	if r.discover != nil {
		if ok, _ := r.discoverLimit.Allow(discoverKey); ok {
			// Another replica may have created the drop a moment ago.
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			spec, found, err := r.discover(ctx, dropID)
			if err != nil && r.log != nil {
				r.log.Warn("waiting room: discover drop", "drop", dropID, "err", err)
			}
			if err == nil && found && spec.ID == dropID && r.Open(ctx, spec) == nil {
				if d, ok := (*r.drops.Load())[dropID]; ok {
					return d, nil
				}
			}
		}
	}
	return nil, fmt.Errorf("drop %q: %w", dropID, ErrUnknownDrop)
}

// discoverKey is the one bucket of Config.Discover's rate limit: unknown
// drop IDs come from clients, so they must not become database queries
// at the clients' rate.
const discoverKey = "discover"

// Challenge returns a proof-of-work challenge for visitor to join dropID,
// and its difficulty; it is valid for five minutes. When the drop needs
// no proof it returns "", 0.
func (r *Room) Challenge(dropID, visitor string) (challengeToken string, difficulty int, err error) {
	d, err := r.lookup(dropID)
	if err != nil {
		return "", 0, err
	}
	if d.spec.PoWDifficulty == 0 {
		return "", 0, nil
	}
	if !validVisitor(visitor) {
		return "", 0, fmt.Errorf("challenge for %q: %w", dropID, ErrBadVisitor)
	}
	c := challenge{Drop: dropID, Visitor: visitor, Difficulty: d.spec.PoWDifficulty, Expires: r.now().Add(challengeTTL)}
	if _, err := rand.Read(c.Nonce[:]); err != nil {
		return "", 0, fmt.Errorf("challenge for %q: %w", dropID, err)
	}
	return r.keys.sign(encodeChallenge(c)), c.Difficulty, nil
}

// NewGuest returns a fresh guest visitor and the signed token to keep in
// the guest's cookie (see Keyring.NewGuest).
func (r *Room) NewGuest() (visitor, token string, err error) { return r.keys.NewGuest() }

// Guest returns the visitor a guest cookie's token names, or
// ErrBadVisitor when this room's keys did not sign it.
func (r *Room) Guest(token string) (string, error) { return r.keys.Guest(token) }

// JoinRequest is one attempt to join a drop's queue.
type JoinRequest struct {
	Drop string
	// Visitor is who holds the place: AccountVisitor for a signed-in
	// customer, the visitor of a guest's signed cookie (Room.Guest)
	// otherwise.
	Visitor string
	// Session, if set, binds an access token in the returned Status when
	// the visitor is admitted at once (empty queue).
	Session string
	// ClientAddr is the client's address, for the per-address join
	// rate (admission.ClientIP gives it).
	ClientAddr string
	// PoW is the solved challenge (challenge + ":" + nonce) when the drop
	// requires a proof of work.
	PoW string
}

// Join gives the visitor a place in the drop's queue and returns the
// signed ticket that holds it, with the visitor's status. Joining again
// returns the same place (one place per visitor); a visitor whose turn
// came and went is queued again at the back. For a standby queue that is
// not in force it returns no ticket and StateAdmitted: go ahead.
//
// Errors: ErrUnknownDrop, ErrBadVisitor, ErrNotOpen, ErrClosed,
// ErrRateLimited (a *RateLimitError), ErrPoWRequired, ErrBadPoW,
// ErrSoldOut (with a StateSoldOut status), ErrQueueFull.
func (r *Room) Join(ctx context.Context, req JoinRequest) (ticket string, st Status, err error) {
	d, err := r.lookup(req.Drop)
	if err != nil {
		return "", Status{}, err
	}
	if !validVisitor(req.Visitor) {
		d.joins.inc(joinBadVisitor)
		return "", Status{}, fmt.Errorf("join %q: %w", req.Drop, ErrBadVisitor)
	}
	now := r.now()
	if d.standbyOff() {
		d.joins.inc(joinPassed)
		return "", Status{State: StateAdmitted}, nil
	}
	if err := r.syncStandby(ctx, d, now); err != nil {
		d.joins.inc(joinError)
		return "", Status{}, err
	}
	switch {
	case now.Before(d.spec.opens()):
		d.joins.inc(joinNotOpen)
		return "", Status{}, fmt.Errorf("join %q: %w (opens %s)", req.Drop, ErrNotOpen, d.spec.opens().Format(time.RFC3339))
	case d.spec.ended(now):
		d.joins.inc(joinClosed)
		return "", Status{State: StateClosed}, fmt.Errorf("join %q: %w", req.Drop, ErrClosed)
	}
	if r.limiter != nil {
		if ok, wait := r.limiter.Allow(ctx, req.ClientAddr); !ok {
			d.joins.inc(joinRateLimited)
			r.refused(req.Drop, req.Visitor, RefusedRateLimit, now)
			return "", Status{}, fmt.Errorf("join %q: %w", req.Drop, &RateLimitError{RetryAfter: wait})
		}
	}
	if d.spec.PoWDifficulty > 0 {
		if req.PoW == "" {
			d.joins.inc(joinPoWRequired)
			r.refused(req.Drop, req.Visitor, RefusedProofOfWork, now)
			return "", Status{}, fmt.Errorf("join %q: %w", req.Drop, ErrPoWRequired)
		}
		if err := r.keys.verifyPoW(req.PoW, req.Drop, req.Visitor, d.spec.PoWDifficulty, now); err != nil {
			d.joins.inc(joinBadPoW)
			r.refused(req.Drop, req.Visitor, RefusedProofOfWork, now)
			return "", Status{}, fmt.Errorf("join %q: %w", req.Drop, err)
		}
	}
	if r.soldOut(ctx, d, now) {
		d.joins.inc(joinSoldOut)
		r.event(Event{Drop: req.Drop, Visitor: req.Visitor, Kind: EventToldSoldOut, At: now})
		return "", Status{State: StateSoldOut, PollAfter: r.maxPoll}, fmt.Errorf("join %q: %w", req.Drop, ErrSoldOut)
	}
	place, c, err := r.ledger.Join(ctx, req.Drop, req.Visitor, now)
	switch {
	case errors.Is(err, ErrClosed):
		d.snap.set(c, now)
		d.joins.inc(joinClosed)
		return "", Status{State: StateClosed}, fmt.Errorf("join %q: %w", req.Drop, ErrClosed)
	case errors.Is(err, ErrQueueFull):
		d.joins.inc(joinFull)
		return "", Status{}, fmt.Errorf("join %q: %w", req.Drop, err)
	case err != nil:
		d.joins.inc(joinError)
		return "", Status{}, fmt.Errorf("join %q: %w", req.Drop, err)
	}
	d.snap.set(c, now)
	if place.Existing {
		d.joins.inc(joinRejoin)
	} else {
		d.joins.inc(joinOK)
	}
	t := Ticket{
		Drop: req.Drop, Epoch: c.Epoch, Visitor: req.Visitor,
		Seq: place.Seq, Position: place.Position, PreQueue: place.PreQueue,
		Issued: now, Expires: now.Add(d.spec.TicketTTL),
	}
	ticket = r.keys.SignTicket(t)
	st, err = r.statusFor(ctx, d, t, c, now, req.Session)
	if err != nil {
		return "", Status{}, err
	}
	if st.Ticket != "" {
		ticket, st.Ticket = st.Ticket, ""
	}
	return ticket, st, nil
}

// StatusRequest is one status check.
type StatusRequest struct {
	Drop string
	// Ticket is the token Join returned (or a Status.Ticket since).
	Ticket string
	// Visitor must be the visitor the ticket was issued to.
	Visitor string
	// Session, if set, binds the access token of an admitted visitor.
	Session string
}

// Status checks the visitor's ticket and says where they stand. It costs
// a signature check and a cached look at the shared counters, plus one
// ledger read the first time after the start for a pre-queue ticket and
// whenever the visitor's turn has come. When admitted, the status carries
// an access token bound to req.Session.
//
// Errors: ErrUnknownDrop; ErrBadTicket for a forged, tampered, expired,
// cross-drop, someone else's or earlier-incarnation ticket.
func (r *Room) Status(ctx context.Context, req StatusRequest) (Status, error) {
	d, err := r.lookup(req.Drop)
	if err != nil {
		return Status{}, err
	}
	now := r.now()
	if d.standbyOff() {
		return Status{State: StateAdmitted}, nil
	}
	if err := r.syncStandby(ctx, d, now); err != nil {
		return Status{}, err
	}
	t, err := r.keys.ParseTicket(req.Ticket)
	if err != nil {
		r.refused(req.Drop, req.Visitor, RefusedBadToken, now)
		return Status{}, fmt.Errorf("status of %q: %w", req.Drop, err)
	}
	if t.Drop != req.Drop || t.Visitor != req.Visitor || !now.Before(t.Expires) || t.Seq == 0 {
		r.refused(req.Drop, req.Visitor, RefusedBadToken, now)
	}
	switch {
	case t.Drop != req.Drop:
		return Status{}, fmt.Errorf("status of %q: %w: ticket for another drop", req.Drop, ErrBadTicket)
	case t.Visitor != req.Visitor:
		return Status{}, fmt.Errorf("status of %q: %w: ticket of another visitor", req.Drop, ErrBadTicket)
	case !now.Before(t.Expires):
		return Status{}, fmt.Errorf("status of %q: %w: ticket expired", req.Drop, ErrBadTicket)
	case t.Seq == 0:
		return Status{}, fmt.Errorf("status of %q: %w: no place", req.Drop, ErrBadTicket)
	}
	c, err := r.counters(ctx, d, now)
	if err != nil {
		return Status{}, err
	}
	if t.Epoch != c.Epoch {
		r.refused(req.Drop, req.Visitor, RefusedBadToken, now)
		return Status{}, fmt.Errorf("status of %q: %w: ticket from an earlier queue", req.Drop, ErrBadTicket)
	}
	return r.statusFor(ctx, d, t, c, now, req.Session)
}

// statusFor computes t's status from the counters c.
func (r *Room) statusFor(ctx context.Context, d *dropRun, t Ticket, c Counters, now time.Time, session string) (Status, error) {
	var st Status
	pos := t.Position
	if pos == 0 && c.Started {
		p, err := r.ledger.Position(ctx, t.Drop, t.Seq, now)
		if err != nil {
			return Status{}, fmt.Errorf("status of %q: %w", t.Drop, err)
		}
		if p != 0 {
			pos, t.Position = p, p
			st.Ticket = r.keys.SignTicket(t)
		}
	}
	st.Position = pos
	if pos != 0 && pos <= c.Frontier {
		seat, err := r.ledger.Seat(ctx, t.Drop, t.Seq, now)
		if err != nil {
			return Status{}, fmt.Errorf("status of %q: %w", t.Drop, err)
		}
		if !seat.Admitted() || !seat.Live() {
			st.State = StateExpired
			return st, nil
		}
		st.State = StateAdmitted
		from := t.Issued
		if from.Before(d.spec.Start) {
			from = d.spec.Start
		}
		r.event(Event{Drop: t.Drop, Visitor: t.Visitor, Kind: EventAdmitted, Wait: max(0, seat.AdmittedAt.Sub(from)), At: now})
		if session != "" {
			st.AccessToken = r.keys.signAccess(accessClaims{
				Drop: t.Drop, Epoch: t.Epoch, Visitor: t.Visitor, SessionHash: sessionHash(session),
				Seq: t.Seq, Position: pos, Expires: seat.AdmittedAt.Add(d.spec.AccessTTL),
			})
		}
		return st, nil
	}
	// Spread pollers (above all at the start) by up to a second, fixed per
	// ticket so the answer stays cacheable.
	jitter := time.Duration(t.Seq*0x9E3779B97F4A7C15>>54) * time.Millisecond
	switch {
	case c.Closed || d.spec.ended(now):
		st.State = StateClosed
	case r.soldOut(ctx, d, now):
		st.State = StateSoldOut
		st.PollAfter = r.maxPoll
		r.event(Event{Drop: t.Drop, Visitor: t.Visitor, Kind: EventToldSoldOut, At: now})
	case pos == 0:
		st.State = StatePreQueue
		st.EstimatedWait = max(0, d.spec.Start.Sub(now))
		st.PollAfter = r.clampPoll(d, st.EstimatedWait+r.startSpread(d, c, t.Seq))
	default:
		st.State = StateWaiting
		st.Ahead = pos - c.Frontier - 1
		if rate := d.estimatedRate(c); rate > 0 {
			st.EstimatedWait = time.Duration(float64(st.Ahead+1) / rate * float64(time.Minute))
		}
		st.PollAfter = r.clampPoll(d, st.EstimatedWait/waitPollShare+jitter)
	}
	return st, nil
}

// startSpread is how long after the start the pre-queue visitor holding
// seq should first poll: a fixed fraction of a window that grows with the
// pre-queue, so that its polls arrive at about startPollRate a second
// instead of all within the first second (the thundering herd that would
// otherwise meet the drop's first buyers at their cart).
func (r *Room) startSpread(d *dropRun, c Counters, seq uint64) time.Duration {
	window := time.Duration(float64(c.Joined) / r.startPollRate * float64(time.Second))
	if w := d.spec.NoShowWindow; w > 0 {
		window = min(window, w/2)
	}
	window = max(window, time.Second)
	// The same multiplicative hash as the other jitter: spread evenly and
	// the same on every poll of this ticket.
	frac := float64(seq*0x9E3779B97F4A7C15>>11) / (1 << 53)
	return time.Duration(frac * float64(window))
}

// clampPoll keeps a poll interval within [MinPoll, MaxPoll], and short
// enough that an admitted visitor notices well within the no-show window.
func (r *Room) clampPoll(d *dropRun, p time.Duration) time.Duration {
	p = min(max(p, r.minPoll), r.maxPoll)
	if w := d.spec.NoShowWindow; w > 0 {
		p = min(p, max(w/4, time.Second))
	}
	return p
}

// SignedAccess reports whether token is an access token this shop's keys
// signed and not yet expired, without asking the ledger whether its seat
// is still held: a cheap check for deciding how urgent a request is,
// never for letting it buy (VerifyAccess does that).
func (r *Room) SignedAccess(token string) bool {
	a, err := r.keys.parseAccess(token)
	return err == nil && r.now().Before(a.Expires)
}

// VerifyAccess checks an access token for dropID's cart and checkout
// routes: signed by us, for that drop and its current queue, bound to
// session, unexpired, and its slot still held. The first success counts
// as the visitor's arrival (no-show reclaim no longer applies).
//
// Errors: ErrUnknownDrop, ErrBadAccess, and ErrSoldOut for a slot given
// up while the drop's stock is gone.
func (r *Room) VerifyAccess(ctx context.Context, token, dropID, session string) (Access, error) {
	d, err := r.lookup(dropID)
	if err != nil {
		return Access{}, err
	}
	a, err := r.keys.parseAccess(token)
	now := r.now()
	if err != nil {
		if token != "" {
			// No token at all is a buyer who never queued, not a bad one.
			r.refused(dropID, "", RefusedBadToken, now)
		}
		return Access{}, fmt.Errorf("access to %q: %w", dropID, err)
	}
	h := sessionHash(session)
	if a.Drop != dropID || session == "" || subtle.ConstantTimeCompare(a.SessionHash[:], h[:]) != 1 || !now.Before(a.Expires) {
		r.refused(dropID, a.Visitor, RefusedBadToken, now)
	}
	switch {
	case a.Drop != dropID:
		return Access{}, fmt.Errorf("access to %q: %w: token for another drop", dropID, ErrBadAccess)
	case session == "" || subtle.ConstantTimeCompare(a.SessionHash[:], h[:]) != 1:
		return Access{}, fmt.Errorf("access to %q: %w: token of another session", dropID, ErrBadAccess)
	case !now.Before(a.Expires):
		return Access{}, fmt.Errorf("access to %q: %w: token expired", dropID, ErrBadAccess)
	}
	if err := r.syncStandby(ctx, d, now); err != nil {
		return Access{}, err
	}
	c, err := r.counters(ctx, d, now)
	if err != nil {
		return Access{}, err
	}
	if a.Epoch != c.Epoch && d.spec.Mode == ModeStandby {
		// Let in by the standby line in an earlier episode: a new spike
		// starts a fresh queue, but must not send the shoppers it let in
		// back to it. Their token still binds the session and expires;
		// their place belonged to the old queue, so there is no seat to
		// check.
		return Access{Drop: a.Drop, Epoch: a.Epoch, Visitor: a.Visitor, Session: session,
			Seq: a.Seq, Position: a.Position, Expires: a.Expires}, nil
	}
	if a.Epoch != c.Epoch {
		r.refused(dropID, a.Visitor, RefusedBadToken, now)
		return Access{}, fmt.Errorf("access to %q: %w: token from an earlier queue", dropID, ErrBadAccess)
	}
	seat, err := r.ledger.Arrive(ctx, dropID, a.Seq, now)
	if err != nil {
		return Access{}, fmt.Errorf("access to %q: %w", dropID, err)
	}
	if !seat.Admitted() || !seat.Live() {
		if r.soldOut(ctx, d, now) {
			// Sold out is the truer answer, and the one a buyer retrying
			// a checkout whose sold-out answer was lost must get again.
			return Access{}, fmt.Errorf("access to %q: %w", dropID, ErrSoldOut)
		}
		return Access{}, fmt.Errorf("access to %q: %w: slot given up (%s)", dropID, ErrBadAccess, seat.Released)
	}
	return Access{
		Drop: a.Drop, Epoch: a.Epoch, Visitor: a.Visitor, Session: session,
		Seq: a.Seq, Position: a.Position, Expires: a.Expires,
	}, nil
}

// Done frees the visitor's slot at once: call it when they complete or
// abandon checkout (or leave the line). Their access tokens stop working.
// It is idempotent: no live place is not an error.
func (r *Room) Done(ctx context.Context, dropID, visitor string) error {
	d, err := r.lookup(dropID)
	if err != nil {
		return err
	}
	now := r.now()
	// The buyer may just have taken the last unit: read the stock afresh
	// so a sell-out pauses the line before the freed slot is handed on,
	// rather than admitting the next person to nothing.
	d.stock.clear()
	if _, err := r.refresh(ctx, d, now); err != nil {
		return fmt.Errorf("done with %q: %w", dropID, err)
	}
	_, c, err := r.ledger.Release(ctx, dropID, visitor, now)
	if err != nil {
		return fmt.Errorf("done with %q: %w", dropID, err)
	}
	d.snap.set(c, now)
	return nil
}

// ObserveCheckout reports one checkout of dropID (its latency and whether
// it failed on the shop's side: count 5xx and timeouts, not sold-out or
// invalid input) for the adaptive rate. Without Adaptive it does nothing.
func (r *Room) ObserveCheckout(dropID string, latency time.Duration, err error) {
	d, lerr := r.lookup(dropID)
	if lerr != nil || d.adapt == nil {
		return
	}
	d.adapt.observe(r.now(), latency, err != nil)
}

// counters returns d's counters, from the snapshot when fresh.
func (r *Room) counters(ctx context.Context, d *dropRun, now time.Time) (Counters, error) {
	c, err := d.snap.get(now, r.snapTTL, func() (Counters, error) { return r.refresh(ctx, d, now) })
	if err != nil {
		if _, ok := d.snap.peek(); ok {
			r.log.Warn("waitroom: ledger read failed, using stale counters", "drop", d.spec.ID, "err", err)
			return c, nil
		}
		return Counters{}, fmt.Errorf("counters of %q: %w", d.spec.ID, err)
	}
	return c, nil
}

// refresh reads the counters from the ledger, first writing the flow
// (rate, pause) when it changed here.
func (r *Room) refresh(ctx context.Context, d *dropRun, now time.Time) (Counters, error) {
	rate := float64(d.spec.RatePerMinute)
	if d.adapt != nil {
		rate = d.adapt.current(now)
	}
	f := Flow{RatePerMinute: rate, Paused: d.spec.ended(now) || r.soldOut(ctx, d, now)}
	d.flowMu.Lock()
	defer d.flowMu.Unlock()
	var c Counters
	var err error
	if d.sent == nil || *d.sent != f {
		c, err = r.ledger.SetFlow(ctx, d.spec.ID, f, now)
		if err == nil {
			d.sent = &f
		}
	} else {
		c, err = r.ledger.Counters(ctx, d.spec.ID, now)
	}
	if err != nil {
		return Counters{}, err
	}
	d.measure(c, now)
	return c, nil
}

// soldOut reports whether the drop's stock is gone, asking Stock at most
// once per StockTTL.
func (r *Room) soldOut(ctx context.Context, d *dropRun, now time.Time) bool {
	if r.stockFn == nil || d.spec.Mode == ModeStandby {
		return false
	}
	s, _ := d.stock.get(now, r.stockTTL, func() (stockLevel, error) {
		n, err := r.stockFn(ctx, d.spec.ID)
		if err != nil {
			r.log.Warn("waitroom: stock check failed, keeping the last answer", "drop", d.spec.ID, "err", err)
			old, _ := d.stock.peek()
			return old, nil // cached too, so a failing database is not asked by every poll
		}
		return stockLevel{available: n, known: true}, nil
	})
	return s.known && s.available <= 0
}

// syncStandby starts a fresh queue when a new standby episode began.
func (r *Room) syncStandby(ctx context.Context, d *dropRun, now time.Time) error {
	if d.spec.Mode != ModeStandby {
		return nil
	}
	ep := d.spec.Standby.Episode()
	if d.episode.Load() == ep {
		return nil
	}
	d.resetMu.Lock()
	defer d.resetMu.Unlock()
	if d.episode.Load() == ep {
		return nil
	}
	if err := r.ledger.Delete(ctx, d.spec.ID); err != nil && !errors.Is(err, ErrUnknownDrop) {
		return fmt.Errorf("standby %q: new episode: %w", d.spec.ID, err)
	}
	if _, err := r.ledger.Create(ctx, d.spec.ID, d.spec.queueConfig()); err != nil {
		return fmt.Errorf("standby %q: new episode: %w", d.spec.ID, err)
	}
	d.flowMu.Lock()
	d.sent = nil
	d.flowMu.Unlock()
	d.snap.clear()
	if _, err := r.counters(ctx, d, now); err != nil {
		return fmt.Errorf("standby %q: new episode: %w", d.spec.ID, err)
	}
	d.episode.Store(ep)
	return nil
}

// standbyOff reports whether d is a standby queue not in force.
func (d *dropRun) standbyOff() bool {
	return d.spec.Mode == ModeStandby && !d.spec.Standby.Active()
}

// measure keeps a moving average of the admission rate actually
// achieved, over windows of at least ten seconds.
func (d *dropRun) measure(c Counters, now time.Time) {
	d.rateMu.Lock()
	defer d.rateMu.Unlock()
	if d.rateAt.IsZero() || c.Admitted < d.rateAdmitted {
		d.rateAt, d.rateAdmitted = now, c.Admitted
		return
	}
	dt := now.Sub(d.rateAt)
	if dt < 10*time.Second {
		return
	}
	inst := float64(c.Admitted-d.rateAdmitted) / dt.Minutes()
	old := math.Float64frombits(d.measured.Load())
	if old > 0 {
		inst = 0.5*old + 0.5*inst
	}
	d.measured.Store(math.Float64bits(inst))
	d.rateAt, d.rateAdmitted = now, c.Admitted
}

// estimatedRate is the admissions per minute to expect: the rate in
// force, or what was achieved when the active cap holds it back.
func (d *dropRun) estimatedRate(c Counters) float64 {
	rate := c.Flow.RatePerMinute
	if d.spec.MaxActive > 0 && c.Active >= uint64(d.spec.MaxActive) {
		if m := math.Float64frombits(d.measured.Load()); m > 0 && m < rate {
			rate = m
		}
	}
	return rate
}
