// Package payment is the boundary between Surge and a payment service
// provider (PSP). Provider is shaped like real PSP APIs: an authorization
// reserves money on the buyer's payment method, a capture takes it (once),
// a void releases an uncaptured authorization and refunds return captured
// money. Every call carries an idempotency key the provider honours, which
// is what lets the order pipeline capture exactly once per order even when a
// worker crashes and its message is redelivered.
package payment

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/surge-commerce/surge/internal/money"
)

// Provider is a payment service provider.
//
// Idempotency: a call whose IdempotencyKey was seen before with the same
// request returns the first call's result (or its error) and has no second
// effect; the same key with a different request fails with
// ErrIdempotencyMismatch. Transient failures (IsTransient) have no effect
// and are not remembered, so retrying with the same key is always safe.
type Provider interface {
	// Authorize reserves req.Amount on the payment method.
	Authorize(ctx context.Context, req AuthorizeRequest) (Authorization, error)
	// Capture takes money reserved by an authorization. An authorization
	// is captured at most once, for at most its amount; the rest is
	// released.
	Capture(ctx context.Context, req CaptureRequest) (Capture, error)
	// Void releases an authorization that has not been captured.
	Void(ctx context.Context, req VoidRequest) error
	// Refund returns part or all of a capture; refunds of one capture never
	// add up to more than it.
	Refund(ctx context.Context, req RefundRequest) (Refund, error)
}

// AuthorizeRequest asks to reserve money for an order.
type AuthorizeRequest struct {
	// IdempotencyKey identifies this request across retries, such as
	// "authorize:<order id>".
	IdempotencyKey string
	OrderID        string
	Amount         money.Money
	// PaymentMethod is the provider's opaque token for the buyer's card or
	// wallet; Surge never sees card numbers.
	PaymentMethod string
}

// Authorization is money reserved on a payment method.
type Authorization struct {
	ID      string
	OrderID string
	Amount  money.Money
	// Last4 is the last four digits of the card, for receipts.
	Last4     string
	CreatedAt time.Time
}

// CaptureRequest asks to take authorized money.
type CaptureRequest struct {
	// IdempotencyKey identifies this capture across retries; the order
	// pipeline uses one per order ("capture:<order id>").
	IdempotencyKey  string
	AuthorizationID string
	OrderID         string
	// Amount to capture: positive, same currency, at most the authorized
	// amount.
	Amount money.Money
}

// Capture is money taken from the buyer.
type Capture struct {
	ID              string
	AuthorizationID string
	OrderID         string
	Amount          money.Money
	CreatedAt       time.Time
}

// VoidRequest asks to release an uncaptured authorization.
type VoidRequest struct {
	IdempotencyKey  string
	AuthorizationID string
	OrderID         string
}

// RefundRequest asks to return captured money.
type RefundRequest struct {
	IdempotencyKey string
	CaptureID      string
	OrderID        string
	// Amount to refund: positive, same currency, at most what is left of
	// the capture after earlier refunds.
	Amount money.Money
	// Reason is free text for the provider's records.
	Reason string
}

// Refund is money returned to the buyer.
type Refund struct {
	ID        string
	CaptureID string
	OrderID   string
	Amount    money.Money
	CreatedAt time.Time
}

// Event types a provider reports asynchronously, like a PSP's webhooks.
const (
	EventCaptured = "payment.captured"
	EventVoided   = "payment.voided"
	EventRefunded = "payment.refunded"
	// EventFailed reports a declined authorization or capture.
	EventFailed = "payment.failed"
)

// Event is an asynchronous confirmation from the provider. Providers may
// deliver an event more than once; ID tells copies apart from new events.
type Event struct {
	ID              string
	Type            string
	AuthorizationID string
	CaptureID       string // for payment.captured and payment.refunded
	RefundID        string // for payment.refunded
	OrderID         string
	Amount          money.Money
	// DeclineCode is set for payment.failed.
	DeclineCode string
	At          time.Time
}

// Errors a Provider returns; test them with errors.Is.
var (
	// ErrDeclined means the issuer refused; the buyer should try another
	// payment method. A *DeclineError says why.
	ErrDeclined = errors.New("payment declined")
	// ErrIdempotencyMismatch means the idempotency key was used before
	// with a different request: a bug in the caller, never retried.
	ErrIdempotencyMismatch = errors.New("idempotency key reused with a different request")
	// ErrNotFound means the authorization, capture or payment method does
	// not exist.
	ErrNotFound = errors.New("payment not found")
	// ErrInvalidState means the operation does not fit where the payment
	// is: capturing a voided authorization, voiding a captured one,
	// capturing twice.
	ErrInvalidState = errors.New("payment in wrong state for this operation")
	// ErrInvalidCard means a card number is malformed (length, characters,
	// check digit): the buyer mistyped it.
	ErrInvalidCard = errors.New("invalid card number")
	// ErrAmount means the amount is not positive, has the wrong currency,
	// or exceeds what is authorized or left to refund.
	ErrAmount = errors.New("payment amount not allowed")
)

// Decline codes, as PSPs report them.
const (
	DeclineGeneric           = "card_declined"
	DeclineInsufficientFunds = "insufficient_funds"
	DeclineExpiredCard       = "expired_card"
)

// DeclineError is a refusal by the issuer with its reason code. It matches
// ErrDeclined in errors.Is.
type DeclineError struct {
	Code string
}

func (e *DeclineError) Error() string { return "payment declined: " + e.Code }

// Is makes errors.Is(err, ErrDeclined) hold for a *DeclineError.
func (e *DeclineError) Is(target error) bool { return target == ErrDeclined }

// transientError marks a failure worth retrying: a timeout, a 5xx, a
// processing error. The provider did nothing.
type transientError struct{ err error }

func (e *transientError) Error() string { return "transient: " + e.err.Error() }
func (e *transientError) Unwrap() error { return e.err }

// Transient wraps err to say it is a retryable provider failure.
func Transient(err error) error {
	if err == nil {
		return nil
	}
	return &transientError{err}
}

// IsTransient reports whether err, or an error it wraps, is a retryable
// provider failure. Callers retry those with the same idempotency key.
func IsTransient(err error) bool {
	_, ok := errors.AsType[*transientError](err)
	return ok
}

// ValidateAmount checks that m is a positive amount in a valid currency.
func ValidateAmount(m money.Money) error {
	if !money.ValidCurrency(m.Currency) || m.Amount <= 0 {
		return fmt.Errorf("amount %d %q: want a positive amount in an ISO 4217 currency: %w", m.Amount, m.Currency, ErrAmount)
	}
	return nil
}
