package waitroom

import "time"

// EventKind is what a line's Event says happened.
type EventKind string

// What a line tells its observer (Config.OnEvent), for the drop's report.
const (
	// EventAdmitted: a visitor learnt their turn had come (each time they
	// are told; the observer keeps one per visitor).
	EventAdmitted EventKind = "admitted"
	// EventToldSoldOut: a visitor joining or in line was told the stock
	// is gone.
	EventToldSoldOut EventKind = "told_sold_out"
	// EventRefused: a join, status check or access check was turned
	// away; Reason says why.
	EventRefused EventKind = "refused"
)

// Reasons of an EventRefused.
const (
	RefusedRateLimit   = "rate_limit"    // the address joined too often
	RefusedProofOfWork = "proof_of_work" // no or an invalid proof of work
	RefusedBadToken    = "bad_token"     // a forged, expired, earlier-queue or someone else's ticket or access token
)

// Event is one thing that happened in a drop's line.
type Event struct {
	Drop    string
	Visitor string
	Kind    EventKind
	Reason  string
	// Wait is an admitted visitor's time in line: from joining, or from
	// the start for a place taken before it, to admission.
	Wait time.Duration
	At   time.Time
}

// event hands e to the observer, if there is one. The observer must not
// block: it runs on the request's path (see dropreport.Recorder).
func (r *Room) event(e Event) {
	if r.onEvent != nil {
		r.onEvent(e)
	}
}

func (r *Room) refused(drop, visitor, reason string, now time.Time) {
	r.event(Event{Drop: drop, Visitor: visitor, Kind: EventRefused, Reason: reason, At: now})
}
