// Package dropreport tells what happened at a drop, after the fact: the
// funnel from the line to the order, time in line, how fast it sold out,
// the bot pressure on the line and the buyers held back by the limit.
//
// It is built from what the shop records while the drop runs: events the
// waiting room and the storefront hand to a Recorder (which writes them to
// the store in batches, never on the buyer's path), the line's counters
// copied from the waiting room's ledger, and the drop's purchases the
// store keeps with every order. Never from logs.
package dropreport

import (
	"context"
	"strings"
	"time"
	"unicode/utf8"
)

// Kind is what an Event records.
type Kind string

// The kinds of event a drop records.
const (
	// KindAdmitted: a visitor learnt their turn had come. Wait is their
	// time in line (from joining, or from the start for those who joined
	// before it, to admission).
	KindAdmitted Kind = "admitted"
	// KindToldSoldOut: a visitor in line (or joining) was told the drop
	// sold out.
	KindToldSoldOut Kind = "told_sold_out"
	// KindRefused: a join or a status check was refused; Reason says why
	// (one of the Reason constants).
	KindRefused Kind = "refused"
	// KindAdded: an admitted buyer put Quantity units of the drop in
	// their cart.
	KindAdded Kind = "added"
	// KindLimit: a buyer asked for more than the per-customer limit.
	KindLimit Kind = "limit"
	// KindLost: Quantity events of this drop could not be recorded (the
	// store did not take them in time); the report says so.
	KindLost Kind = "lost"
)

// Reasons a join or status check is refused: the bot pressure on a line.
const (
	ReasonRateLimit   = "rate_limit"    // too many joins from one address
	ReasonProofOfWork = "proof_of_work" // no or an invalid proof of work
	ReasonBadToken    = "bad_token"     // a forged, expired or someone else's ticket or access token
)

// Event is one thing that happened at a drop.
type Event struct {
	Drop     string
	Kind     Kind
	Visitor  string // the waiting-room visitor (an account or a signed guest cookie)
	Reason   string
	Quantity int64
	Wait     time.Duration
	At       time.Time
}

// maxVisitorLen bounds what is stored of a visitor: the waiting room's
// visitors are far shorter.
const maxVisitorLen = 100

// valid reports whether e may be stored: a known kind, a known reason, a
// drop ID and a visitor of sane length, non-negative numbers.
func (e Event) valid() bool {
	switch e.Kind {
	case KindAdmitted, KindToldSoldOut, KindAdded, KindLimit, KindLost:
		if e.Reason != "" {
			return false
		}
	case KindRefused:
		if e.Reason != ReasonRateLimit && e.Reason != ReasonProofOfWork && e.Reason != ReasonBadToken {
			return false
		}
	default:
		return false
	}
	text := func(s string) bool {
		return len(s) <= maxVisitorLen && utf8.ValidString(s) && !strings.ContainsRune(s, 0)
	}
	return e.Drop != "" && text(e.Drop) && text(e.Visitor) &&
		e.Quantity >= 0 && e.Wait >= 0 && !e.At.IsZero()
}

// Line is the waiting room's own count of a drop's line at one instant,
// copied from its shared ledger (every replica sees the same numbers).
type Line struct {
	At time.Time
	// PreQueue places were handed out before the start, Joined in all
	// (a visitor whose turn came and went and who joins again takes a
	// new place).
	PreQueue, Joined uint64
	// Admitted visitors had their turn; NoShows of them did not come
	// within the no-show window.
	Admitted, NoShows uint64
}

// Tally counts one kind (and reason) of event of a drop.
type Tally struct {
	Kind     Kind
	Reason   string
	Events   int64 // how many were recorded
	Visitors int64 // how many distinct visitors they came from
	Quantity int64 // the sum of their quantities
}

// Purchase is what one order took from a drop: it stands while the order
// is pending or paid (a failed or expired order gives it back).
type Purchase struct {
	Order    string
	Buyer    string
	Quantity int64
	At       time.Time
}

// Activity is everything the store holds about a drop's run.
type Activity struct {
	// Line is the last copy of the line's counters; HasLine is false when
	// none was ever taken.
	Line    Line
	HasLine bool
	Tallies []Tally
	// Waits holds each admitted visitor's time in line, once per visitor
	// (the first recorded).
	Waits []time.Duration
	// Purchases are in the order they were placed.
	Purchases []Purchase
}

// Store keeps drop events; both store adapters implement it and pass
// storetest's conformance suite.
type Store interface {
	// RecordDropEvents stores events in one write.
	RecordDropEvents(ctx context.Context, events []Event) error
	// SaveDropLine keeps l as the drop's line counters unless a copy
	// taken later, or counting more joins, is already there.
	SaveDropLine(ctx context.Context, dropID string, l Line) error
	// DropActivity reads what the store holds about the drop's run.
	DropActivity(ctx context.Context, dropID string) (Activity, error)
}

// NotifiedCounter tells how many people were mailed that a drop was
// coming. The mail jobs provide it; without one the report says
// "not tracked" rather than zero.
type NotifiedCounter interface {
	DropNotified(ctx context.Context, dropID string) (int64, error)
}
