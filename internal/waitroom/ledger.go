package waitroom

import (
	"context"
	"time"
)

// Ledger holds the queue state every replica shares: who has which place,
// the pre-queue shuffle, how far admission has got, and who is active. It
// is the only part of the waiting room with storage; tickets and access
// tokens are checked without it.
//
// Every method takes the caller's clock reading; the ledger never reads
// a clock. Before acting, each call brings the drop up to now: the
// pre-queue is shuffled once now reaches QueueConfig.Start, admitted
// visitors who did not arrive within NoShowWindow and those whose
// AccessTTL ran out are released, and the admission frontier moves on as
// far as the token bucket (Flow.RatePerMinute, QueueConfig.Burst), the
// active cap (MaxActive) and the waiting line allow. A clock reading
// older than one already seen counts as that one, so time never runs
// backwards for a drop.
//
// Invariants every implementation keeps, and ledgertest.LedgerSuite
// checks:
//   - one place per visitor: Join by a visitor holding a live place
//     returns that place;
//   - pre-queue places are drawn into a uniformly random order of
//     positions 1..PreQueue at the start, later places keep join order;
//   - positions are admitted in order, with admissions between any two
//     calls at t1 <= t2 at most Burst + rate*(t2-t1), and never more than
//     MaxActive admitted visitors unreleased at once;
//   - a place given up before its turn is skipped without using any of
//     the rate or the cap;
//   - while Flow.Paused or closed, nobody new is admitted.
//
// Errors: ErrUnknownDrop for a drop never created (or deleted), ErrClosed
// for a Join on a closed drop, ErrQueueFull past MaxJoins.
type Ledger interface {
	// Create sets up drop's queue if it does not exist and returns its
	// epoch (a random non-zero number naming this incarnation of the
	// queue). For an existing queue it applies cfg and returns the
	// existing epoch, so every replica can call it at startup.
	Create(ctx context.Context, drop string, cfg QueueConfig) (epoch uint64, err error)
	// Delete forgets drop's queue; a later Create starts a new one with a
	// new epoch.
	Delete(ctx context.Context, drop string) error
	// Join gives visitor a place, or returns the live place they hold.
	// A visitor whose place was released gets a new one at the back.
	Join(ctx context.Context, drop, visitor string, now time.Time) (Place, Counters, error)
	// Counters returns drop's counters.
	Counters(ctx context.Context, drop string, now time.Time) (Counters, error)
	// SetFlow changes the admission rate and pause flag (from then on).
	SetFlow(ctx context.Context, drop string, f Flow, now time.Time) (Counters, error)
	// Close stops admissions and joins for good.
	Close(ctx context.Context, drop string, now time.Time) (Counters, error)
	// Position returns seq's position, or 0 while it is not drawn yet.
	Position(ctx context.Context, drop string, seq uint64, now time.Time) (uint64, error)
	// Seat returns seq's admission state.
	Seat(ctx context.Context, drop string, seq uint64, now time.Time) (Seat, error)
	// Arrive records that seq's visitor showed up after admission, which
	// keeps the no-show reclaim away; it returns the seat as it is after.
	Arrive(ctx context.Context, drop string, seq uint64, now time.Time) (Seat, error)
	// Release gives up visitor's live place: it frees an admitted slot at
	// once (checkout completed or abandoned), or leaves the line. It
	// reports whether there was a live place.
	Release(ctx context.Context, drop, visitor string, now time.Time) (bool, Counters, error)
}

// QueueConfig is the part of a drop the ledger enforces.
type QueueConfig struct {
	// Start is when the pre-queue is drawn and admission begins. Zero
	// means it has already started (standby queues).
	Start time.Time
	// Burst is how many admissions the token bucket saves up (at least 1).
	Burst int
	// MaxActive caps admitted, unreleased visitors; 0 means no cap.
	MaxActive int
	// NoShowWindow releases an admitted visitor who did not arrive within
	// it; 0 disables the reclaim.
	NoShowWindow time.Duration
	// AccessTTL releases every admitted visitor this long after admission.
	AccessTTL time.Duration
	// MaxJoins bounds the places handed out (memory); 0 means 2,000,000.
	MaxJoins int
}

// DefaultMaxJoins is QueueConfig.MaxJoins when zero.
const DefaultMaxJoins = 2_000_000

// Flow is the admission rate in force and whether admission is paused
// (sold out, ended).
type Flow struct {
	RatePerMinute float64
	Paused        bool
}

// Place is a visitor's place in line.
type Place struct {
	Seq uint64
	// Position is 0 while not drawn yet (pre-queue before the start).
	Position uint64
	PreQueue bool
	// Existing says the visitor already held this place.
	Existing bool
}

// Counters are a drop's shared numbers at one instant.
type Counters struct {
	Epoch uint64
	// Started says the start has passed and the pre-queue is drawn.
	Started bool
	// PreQueue is how many joined before the start.
	PreQueue uint64
	// Joined is how many places were handed out (the highest seq).
	Joined uint64
	// Frontier is how many positions have had their turn: positions
	// 1..Frontier are admitted or were skipped.
	Frontier uint64
	// Admitted is how many visitors were admitted, ever.
	Admitted uint64
	// Active is admitted visitors not yet released.
	Active uint64
	// Waiting is places not yet admitted nor given up.
	Waiting uint64
	// Released admitted visitors, by reason.
	Completed, NoShows, Expired uint64
	// Left is places given up before their turn.
	Left   uint64
	Flow   Flow
	Closed bool
}

// Release reasons for a Seat.
const (
	ReleasedNone    = ""
	ReleasedDone    = "done"    // checkout completed or abandoned (Release)
	ReleasedNoShow  = "no_show" // did not arrive within NoShowWindow
	ReleasedExpired = "expired" // AccessTTL after admission ran out
	ReleasedLeft    = "left"    // gave up the place before their turn
)

// Seat is one place's admission state.
type Seat struct {
	Seq      uint64
	Position uint64 // 0 while not drawn yet
	// AdmittedAt is when the place's turn came; zero while waiting.
	AdmittedAt time.Time
	Arrived    bool
	// Released is why the place was given up (one of the Released*
	// constants), or "" while it is live.
	Released string
}

// Admitted reports whether the seat's turn has come.
func (s Seat) Admitted() bool { return !s.AdmittedAt.IsZero() }

// Live reports whether the seat is still held.
func (s Seat) Live() bool { return s.Released == ReleasedNone }
