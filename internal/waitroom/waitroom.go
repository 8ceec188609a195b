// Package waitroom is the virtual waiting room in front of drops (limited
// releases at a set time) and, in standby mode, in front of the whole shop
// during a spike.
//
// A visitor joins and gets a signed ticket holding their place. Before a
// drop starts everybody who joins is in the pre-queue, and at the start
// the pre-queue is shuffled into a uniformly random order, so arriving
// early or on a faster connection buys nothing; after the start places are
// handed out first come, first served. The queue admits visitors at a rate
// (with a burst) and never lets more than a cap of them be active at once;
// an admitted visitor gets a short-lived access token, bound to their
// session, for the drop's cart and checkout routes, and frees their slot
// when they finish or abandon checkout, fail to show up in time, or run
// out of access time. When the drop's stock is gone everyone waiting is
// told so, and joining is refused; if stock comes back the queue resumes.
//
// Tickets and access tokens are HMAC-SHA256 signed (see Keyring), so any
// replica verifies them without a storage hit; the shared queue state is
// a handful of counters behind Ledger (MemLedger in process, Redis later),
// and a status check costs a signature check and a cached snapshot of
// those counters. See docs/waitroom.md for the design and the wiring.
package waitroom

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Errors. The HTTP layer maps them to responses in one place (see
// docs/waitroom.md for the suggested statuses).
var (
	// ErrUnknownDrop means no drop with that ID is open in the room.
	ErrUnknownDrop = errors.New("unknown drop")
	// ErrNotOpen means the pre-queue has not opened yet.
	ErrNotOpen = errors.New("waiting room not open yet")
	// ErrClosed means the drop has ended or was closed.
	ErrClosed = errors.New("drop closed")
	// ErrSoldOut means the drop's stock is gone (sold or held).
	ErrSoldOut = errors.New("drop sold out")
	// ErrRateLimited means the client address joined too often; see
	// RetryAfter.
	ErrRateLimited = errors.New("too many joins from this address")
	// ErrPoWRequired means the drop asks for a proof of work and none
	// was given; get one from Room.Challenge.
	ErrPoWRequired = errors.New("proof of work required")
	// ErrBadPoW means the proof of work is malformed, forged, expired,
	// for another drop or visitor, or too weak.
	ErrBadPoW = errors.New("invalid proof of work")
	// ErrBadTicket means the ticket is malformed, forged, expired, for
	// another drop, visitor or incarnation of the drop.
	ErrBadTicket = errors.New("invalid ticket")
	// ErrBadAccess means the access token is malformed, forged, expired,
	// for another drop or session, or its slot has been given up.
	ErrBadAccess = errors.New("invalid access token")
	// ErrBadVisitor means the visitor ID is empty, too long or not
	// printable ASCII.
	ErrBadVisitor = errors.New("invalid visitor id")
	// ErrQueueFull means the drop's queue reached QueueConfig.MaxJoins.
	ErrQueueFull = errors.New("queue full")
	// ErrInvalid wraps a configuration error; the message names the field.
	ErrInvalid = errors.New("invalid waiting room configuration")
)

// RateLimitError is returned by Room.Join when the client address is
// over its join rate; errors.Is(err, ErrRateLimited) holds.
type RateLimitError struct {
	RetryAfter time.Duration
}

// Error says how long to wait.
func (e *RateLimitError) Error() string {
	return fmt.Sprintf("%v: retry after %v", ErrRateLimited, e.RetryAfter)
}

// Is makes errors.Is(err, ErrRateLimited) true.
func (e *RateLimitError) Is(target error) bool { return target == ErrRateLimited }

// RetryAfter is how long a rate-limited client should wait (from a
// *RateLimitError anywhere in err's chain), or 0.
func RetryAfter(err error) time.Duration {
	var rl *RateLimitError
	if errors.As(err, &rl) {
		return rl.RetryAfter
	}
	return 0
}

// State is where a visitor stands.
type State string

// The states a Status reports.
const (
	// StatePreQueue: joined before the start; the position is drawn at
	// the start.
	StatePreQueue State = "pre_queue"
	// StateWaiting: in line after the start.
	StateWaiting State = "waiting"
	// StateAdmitted: it is the visitor's turn; Status.AccessToken opens
	// the drop's cart and checkout. For a standby queue that is not in
	// force it means "go ahead", without a token.
	StateAdmitted State = "admitted"
	// StateSoldOut: the stock is gone; keep polling slowly, it may come
	// back when reservations expire.
	StateSoldOut State = "sold_out"
	// StateClosed: the drop ended or was closed; stop polling.
	StateClosed State = "closed"
	// StateExpired: the visitor's turn came and went (checkout completed
	// or abandoned, did not show up in time, or the access time ran out).
	// Joining again queues them at the back.
	StateExpired State = "expired"
)

// Status is what a visitor's waiting page shows. It is computed from the
// ticket and a snapshot of the shared counters, so it may be cached for a
// second or two.
type Status struct {
	State State
	// Position is the 1-based place in line; 0 while in the pre-queue.
	Position uint64
	// Ahead is how many people in front have not had their turn yet.
	Ahead uint64
	// EstimatedWait is until the start for the pre-queue, else until the
	// visitor's turn at the current admission rate.
	EstimatedWait time.Duration
	// PollAfter is when to ask again; 0 means no need to (admitted,
	// closed, expired).
	PollAfter time.Duration
	// AccessToken is set when admitted and a session was given: it
	// opens the drop's cart and checkout routes for that session.
	AccessToken string
	// Ticket, when set, replaces the visitor's ticket (it now holds the
	// position drawn at the start). Store it where the old one was.
	Ticket string
}

// MarshalJSON writes the durations in seconds: {"state", "position",
// "ahead", "estimated_wait_seconds", "poll_after_seconds",
// "access_token", "ticket"}, the last two only when set.
func (s Status) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		State         State   `json:"state"`
		Position      uint64  `json:"position"`
		Ahead         uint64  `json:"ahead"`
		EstimatedWait float64 `json:"estimated_wait_seconds"`
		PollAfter     float64 `json:"poll_after_seconds"`
		AccessToken   string  `json:"access_token,omitempty"`
		Ticket        string  `json:"ticket,omitempty"`
	}{s.State, s.Position, s.Ahead, math.Ceil(s.EstimatedWait.Seconds()), s.PollAfter.Seconds(), s.AccessToken, s.Ticket})
}

// AccountVisitor is the visitor ID of a signed-in customer: one place per
// account, whatever the browser. Only the server's session may name it:
// it must never be taken from anything the client sends.
func AccountVisitor(customerID int64) string {
	return "c:" + strconv.FormatInt(customerID, 10)
}

// guestIDLen is the random part of a guest visitor ID, in bytes.
const guestIDLen = 16

// NewGuest returns a fresh random visitor ID for a guest ("v:" and 22
// characters) and the signed token naming it, to keep in a long-lived
// cookie: one place per cookie. Only Guest turns the token back into the
// visitor, so a client cannot name a visitor it was not given (least of
// all a customer's AccountVisitor).
func (kr *Keyring) NewGuest() (visitor, token string, err error) {
	var id [guestIDLen]byte
	if _, err := rand.Read(id[:]); err != nil {
		return "", "", fmt.Errorf("new guest visitor: %w", err)
	}
	return guestVisitor(id), kr.sign(encodeGuest(id)), nil
}

// Guest returns the visitor a token from NewGuest names; ErrBadVisitor
// when the token is malformed, forged, or signed by a key no longer in
// the ring.
func (kr *Keyring) Guest(token string) (string, error) {
	p, err := kr.open(token)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadVisitor, err)
	}
	id, err := decodeGuest(p)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadVisitor, err)
	}
	return guestVisitor(id), nil
}

func guestVisitor(id [guestIDLen]byte) string {
	return "v:" + base64.RawURLEncoding.EncodeToString(id[:])
}

// maxVisitorLen bounds visitor IDs, which travel inside every ticket.
const maxVisitorLen = 128

func validVisitor(v string) bool {
	if len(v) == 0 || len(v) > maxVisitorLen {
		return false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 0x21 || v[i] > 0x7e {
			return false
		}
	}
	return true
}

// maxDropIDLen bounds drop IDs, which name cookies and metric labels.
const maxDropIDLen = 64

// ValidDropID reports whether id can name a drop: 1 to 64 of A-Z a-z 0-9
// '-' '_', so it is safe in a cookie name, a URL path and a metric label.
func ValidDropID(id string) bool {
	if len(id) == 0 || len(id) > maxDropIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
