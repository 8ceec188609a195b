// Package notify keeps the "notify me" list of a drop: visitors who left
// an email to hear when a drop opens. A subscription is double opt-in: it
// starts pending, and only the holder of the confirmation link the shop
// mailed can confirm it, so nobody can sign someone else up; only
// confirmed subscriptions are ever mailed, and every mail carries a
// one-click unsubscribe link.
package notify

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"
)

// Domain errors.
var (
	// ErrNotFound means no subscription matches: an unknown, expired or
	// already used token.
	ErrNotFound = errors.New("subscription not found")
	// ErrInvalid wraps input that cannot be stored; the message says why.
	ErrInvalid = errors.New("invalid subscription")
	// ErrNotOpen means the drop takes no more subscriptions: it has
	// started or closed.
	ErrNotOpen = errors.New("drop not taking subscriptions")
)

// State is where a subscription is.
type State string

// Subscription states.
const (
	StatePending      State = "pending"   // mailed a confirmation link, never mailed anything else
	StateConfirmed    State = "confirmed" // receives the drop's mail
	StateUnsubscribed State = "unsubscribed"
)

// Subscription is one email address on one drop's list; the store keeps
// at most one per (drop, email).
type Subscription struct {
	ID     int64
	DropID string
	Email  string
	State  State
	// UnsubscribeToken authorises removing this subscription and nothing
	// else; it goes in every mail (see Recipient).
	UnsubscribeToken string
	CreatedAt        time.Time
	// ConfirmSentAt is when the current confirmation link was issued.
	ConfirmSentAt time.Time
	ConfirmedAt   time.Time // zero unless confirmed
}

// Recipient is a confirmed subscription as a mailing job needs it.
type Recipient struct {
	SubscriptionID   int64
	Email            string
	UnsubscribeToken string
}

// RecipientQuery selects the confirmed subscribers of a drop with IDs in
// [FromID, ToID) confirmed at or before ConfirmedBy.
type RecipientQuery struct {
	DropID       string
	FromID, ToID int64
	ConfirmedBy  time.Time
	// ReadPosition, when the store has read replicas, is a position a
	// replica must have replayed to serve the read (else the primary
	// does): the position the job recorded when it fixed its recipients.
	ReadPosition string
}

// Store keeps subscriptions. Both store adapters implement it and pass
// storetest.RunNotify.
type Store interface {
	// SaveSubscription records a subscription request for (dropID,
	// email) and returns the stored subscription. A new one is pending
	// with confirmHash as its confirmation; a pending one gets the new
	// confirmHash (the newest link works); an unsubscribed one becomes
	// pending again; a confirmed one is returned unchanged.
	SaveSubscription(ctx context.Context, dropID, email string, confirmHash []byte, unsubscribeToken string) (Subscription, error)
	// ConfirmSubscription confirms the pending subscription whose link
	// hashes to confirmHash, if that link was issued after issuedAfter;
	// ErrNotFound otherwise. Confirming twice returns the confirmed
	// subscription.
	ConfirmSubscription(ctx context.Context, confirmHash []byte, issuedAfter time.Time) (Subscription, error)
	// Unsubscribe ends the subscription holding token; ErrNotFound if none
	// does. Doing it twice is not an error.
	Unsubscribe(ctx context.Context, token string) (Subscription, error)
	// Recipients lists q's confirmed subscribers by ID; it may read a
	// replica (see RecipientQuery.ReadPosition).
	Recipients(ctx context.Context, q RecipientQuery) ([]Recipient, error)
	// ImportSubscribers adds subs to dropID's list as confirmed
	// subscriptions, confirmed now; an address already on the list
	// (pending, confirmed or unsubscribed) is left as it is. It returns
	// how many it added.
	ImportSubscribers(ctx context.Context, dropID string, subs []Import) (int, error)
}

// Import is one address an operator adds to a drop's list, with the
// unsubscribe token its mail will carry.
type Import struct {
	Email            string
	UnsubscribeToken string
}

// MaxImport is the most addresses one import takes: a list of 30,000 is
// thirty requests, each a short transaction the shop's other writes do
// not wait long behind.
const MaxImport = 1000

// MaxEmailLen is the longest address accepted (RFC 5321's path limit).
const MaxEmailLen = 254

// NormalizeEmail checks s is one bare address (no display name, no line
// breaks, at most MaxEmailLen bytes) and returns it with the domain in
// lower case and the local part in lower case too: a list that holds
// Ada@x and ada@x as two people would mail one of them twice.
func NormalizeEmail(s string) (string, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return "", fmt.Errorf("%w: email: required", ErrInvalid)
	case len(s) > MaxEmailLen:
		return "", fmt.Errorf("%w: email: longer than %d characters", ErrInvalid, MaxEmailLen)
	case !utf8.ValidString(s) || strings.ContainsAny(s, "\r\n\x00<>,;\" "):
		return "", fmt.Errorf("%w: email: not a plain address like name@example.com", ErrInvalid)
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || a.Name != "" {
		return "", fmt.Errorf("%w: email: not a plain address like name@example.com", ErrInvalid)
	}
	local, domain, ok := strings.Cut(s, "@")
	if !ok || local == "" || !strings.Contains(domain, ".") || strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") {
		return "", fmt.Errorf("%w: email: not a plain address like name@example.com", ErrInvalid)
	}
	return strings.ToLower(s), nil
}

// NewToken returns a fresh random token for a link: 26 base32 characters,
// 128 bits, safe in a URL as it is.
func NewToken() string { return rand.Text() }

// HashToken is what the store keeps of a confirmation token: whoever reads
// the database cannot confirm subscriptions with it.
func HashToken(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}

// ValidToken reports whether s has the form NewToken makes, so junk is
// refused before any lookup.
func ValidToken(s string) bool {
	if len(s) != 26 {
		return false
	}
	for _, c := range s {
		if !(c >= 'A' && c <= 'Z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}
