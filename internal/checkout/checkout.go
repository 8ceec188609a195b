// Package checkout turns a cart into an order: it validates the request,
// makes retries safe with idempotency keys, and has the store reserve stock
// and record the order and its outbox event in one transaction.
package checkout

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/surge-commerce/surge/internal/cart"
	"github.com/surge-commerce/surge/internal/customer"
	"github.com/surge-commerce/surge/internal/order"
	"github.com/surge-commerce/surge/internal/payment"
)

// Domain errors; the HTTP layer maps them to statuses in one place.
var (
	// ErrInvalid wraps a malformed request; the message names the field.
	ErrInvalid = errors.New("invalid checkout request")
	// ErrEmptyCart means there is nothing to buy.
	ErrEmptyCart = errors.New("the cart is empty")
	// ErrIdempotencyMismatch means the key was used before with another body.
	ErrIdempotencyMismatch = errors.New("idempotency key reused with a different request")
	// ErrNoKey means the Idempotency-Key header is missing or malformed.
	ErrNoKey = errors.New("idempotency key missing or malformed")
)

// SoldOutError names the SKUs that could not be reserved.
type SoldOutError struct {
	SKUs []string
}

func (e *SoldOutError) Error() string {
	return "sold out: " + strings.Join(e.SKUs, ", ")
}

// Request is the checkout body.
type Request struct {
	Email           string        `json:"email"`
	ShippingAddress order.Address `json:"shipping_address"`
	Payment         struct {
		// CardNumber is a test card for the simulated provider.
		CardNumber string `json:"card_number"`
		// PaymentMethod is a token the provider's own client library made
		// from the card in the browser (Stripe.js: pm_...), for providers
		// that never let a card number reach the shop. Omitted when empty,
		// so requests without it hash as they always did.
		PaymentMethod string `json:"payment_method,omitempty"`
	} `json:"payment"`
}

// Tokenizer turns what the buyer gave for payment (a card number for the
// simulated provider, a provider token for a real one) into the token
// the order keeps; a card number itself is never stored. Anything the
// provider cannot take is an error wrapping payment.ErrInvalidCard.
type Tokenizer interface {
	Tokenize(card string) (token, last4 string, err error)
}

// Placement is everything the store needs to place an order atomically.
type Placement struct {
	Owner       string // who the idempotency key belongs to (the session)
	Key         string
	RequestHash string
	CartID      string // emptied in the same transaction
	Order       order.Order
	// Drop, when the order buys drop SKUs, is checked against the buyer's
	// per-customer limit and recorded in the same transaction.
	Drop *DropPurchase
}

// DropPurchase is what an order takes from a drop, for whom.
type DropPurchase struct {
	DropID   string
	Buyer    string // the waiting-room visitor (account or guest cookie)
	Quantity int64
	Limit    int64
}

// DropGate decides whether an order's lines may be bought now: lines of an
// open drop need a valid waiting-room access token for this session. It
// returns the purchase to record, or nil when no line is in a drop.
type DropGate interface {
	Gate(ctx context.Context, session string, access func(dropID string) string, lines []order.Line) (*DropPurchase, error)
	// Done tells the waiting room the buyer finished, freeing their slot.
	Done(ctx context.Context, p *DropPurchase)
	// Observe reports how a drop checkout went, for adaptive admission;
	// err is set only for failures on the shop's side.
	Observe(dropID string, latency time.Duration, err error)
}

// Store places orders. PlaceOrder must, in one transaction: find an
// existing order for (Owner, Key) and return it (replayed=true) or
// ErrIdempotencyMismatch; otherwise reserve every line (returning a
// *SoldOutError naming every short SKU and changing nothing), assign the
// order number, insert the order, lines, reservations, first transition
// and the order-created outbox event, record the key, and empty the cart.
type Store interface {
	IdempotentOrder(ctx context.Context, owner, key string) (orderID, requestHash string, err error)
	PlaceOrder(ctx context.Context, p Placement) (o order.Order, replayed bool, err error)
	Order(ctx context.Context, id string) (order.Order, error)
}

// Service runs checkouts.
type Service struct {
	Store    Store
	Carts    *cart.Service
	Payments Tokenizer
	// ReservationTTL is how long stock is held for an unpaid order; 0
	// means 10 minutes.
	ReservationTTL time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// OnPlaced is called after an order is committed (not on replays), to
	// wake the outbox relay. Nil means nothing.
	OnPlaced func()
	// Drops gates drop SKUs; nil means the shop has no drops.
	Drops DropGate
}

// Input is one checkout attempt.
type Input struct {
	// Access returns the waiting-room access token the buyer holds for a
	// drop, needed for drop SKUs; nil when there is none.
	Access     func(dropID string) string
	Owner      string
	Key        string
	CartID     string
	CustomerID int64
	Request    Request
}

// Result is a placed (or replayed) order.
type Result struct {
	Order    order.Order
	Replayed bool
}

// ValidKey reports whether k is an acceptable idempotency key: 1 to 255
// visible ASCII characters (UUIDs are typical).
func ValidKey(k string) bool {
	if len(k) == 0 || len(k) > 255 {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// Validate checks the request and normalizes the email.
func (r *Request) Validate() error {
	email, err := customer.NormalizeEmail(r.Email)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	r.Email = email
	if err := r.ShippingAddress.Validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	switch {
	case r.Payment.CardNumber == "" && r.Payment.PaymentMethod == "":
		return fmt.Errorf("%w: payment.card_number (a test card) or payment.payment_method (a token from the payment provider's client library): required", ErrInvalid)
	case r.Payment.CardNumber != "" && r.Payment.PaymentMethod != "":
		return fmt.Errorf("%w: payment: send card_number or payment_method, not both", ErrInvalid)
	case len(r.Payment.PaymentMethod) > 255:
		return fmt.Errorf("%w: payment.payment_method: at most 255 characters", ErrInvalid)
	}
	return nil
}

// Hash fingerprints a request so a retry (same body) can be told from a
// misuse of the key (another body). It hashes the decoded request, so
// whitespace and key order do not matter.
func (r Request) Hash() string {
	b, _ := json.Marshal(r) // plain strings only: cannot fail
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// replay answers a checkout whose key already placed an order.
func (s *Service) replay(ctx context.Context, in Input, hash string) (Result, bool, error) {
	id, h, err := s.Store.IdempotentOrder(ctx, in.Owner, in.Key)
	if errors.Is(err, order.ErrNotFound) {
		return Result{}, false, nil
	}
	if err != nil {
		return Result{}, false, fmt.Errorf("idempotency lookup: %w", err)
	}
	if h != hash {
		return Result{}, false, ErrIdempotencyMismatch
	}
	o, err := s.Store.Order(ctx, id)
	if err != nil {
		return Result{}, false, fmt.Errorf("replay %s: %w", id, err)
	}
	return Result{Order: o, Replayed: true}, true, nil
}

func newOrderID() (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("order id: %w", err)
	}
	return "ord_" + hex.EncodeToString(b), nil
}

// Checkout places an order for the cart, or returns the order an earlier
// request with the same key placed.
func (s *Service) Checkout(ctx context.Context, in Input) (Result, error) {
	if !ValidKey(in.Key) {
		return Result{}, fmt.Errorf("%w: send an Idempotency-Key header of 1-255 visible characters, e.g. a UUID", ErrNoKey)
	}
	req := in.Request
	if err := req.Validate(); err != nil {
		return Result{}, err
	}
	hash := req.Hash()

	// A retry of a finished checkout is answered from the record, before
	// the cart (emptied by the first attempt) is looked at.
	if res, ok, err := s.replay(ctx, in, hash); ok || err != nil {
		return res, err
	}
	c, err := s.Carts.Get(ctx, in.CartID)
	if err != nil {
		return Result{}, fmt.Errorf("checkout cart: %w", err)
	}
	if len(c.Items) == 0 {
		// A concurrent duplicate may have placed the order and emptied the
		// cart between the look-up above and this read.
		if res, ok, err := s.replay(ctx, in, hash); ok || err != nil {
			return res, err
		}
		return Result{}, ErrEmptyCart
	}
	field, method := "payment.card_number", req.Payment.CardNumber
	if req.Payment.PaymentMethod != "" {
		field, method = "payment.payment_method", req.Payment.PaymentMethod
	}
	token, last4, err := s.Payments.Tokenize(method)
	if errors.Is(err, payment.ErrInvalidCard) {
		return Result{}, fmt.Errorf("%w: %s: %v", ErrInvalid, field, err)
	}
	if err != nil {
		return Result{}, fmt.Errorf("tokenize card: %w", err)
	}
	id, err := newOrderID()
	if err != nil {
		return Result{}, err
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	ttl := s.ReservationTTL
	if ttl <= 0 {
		ttl = 10 * time.Minute
	}
	t := now().UTC()
	o := order.Order{ID: id, CustomerID: in.CustomerID, Email: req.Email, Status: order.StatusPendingPayment,
		Subtotal: c.Totals.Subtotal, Tax: c.Totals.Tax, Shipping: c.Totals.Shipping, Total: c.Totals.Total,
		ShippingAddress: req.ShippingAddress, CardLast4: last4, PaymentMethod: token,
		ReservedUntil: t.Add(ttl), CreatedAt: t, UpdatedAt: t, AccessToken: order.NewAccessToken()}
	for _, it := range c.Items {
		o.Lines = append(o.Lines, order.Line{SKU: it.SKU, ProductName: it.ProductName, VariantTitle: it.VariantTitle,
			Quantity: it.Quantity, UnitPrice: it.UnitPrice, LineTotal: it.LineTotal})
	}
	var dp *DropPurchase
	started := time.Now()
	if s.Drops != nil {
		if dp, err = s.Drops.Gate(ctx, in.Owner, in.Access, o.Lines); err != nil {
			return Result{}, err
		}
	}
	placed, replayed, err := s.Store.PlaceOrder(ctx, Placement{Owner: in.Owner, Key: in.Key, RequestHash: hash, CartID: in.CartID, Order: o, Drop: dp})
	var soldOut *SoldOutError
	if dp != nil {
		var serverErr error
		if err != nil && !errors.As(err, &soldOut) && !errors.Is(err, ErrIdempotencyMismatch) && !errors.Is(err, ErrInvalid) {
			serverErr = err
		}
		s.Drops.Observe(dp.DropID, time.Since(started), serverErr)
		if err == nil || soldOut != nil {
			// Bought, or nothing left to buy: either way this buyer is
			// done and their waiting-room slot goes to the next.
			s.Drops.Done(ctx, dp)
		}
	}
	if err != nil {
		return Result{}, err
	}
	if !replayed && s.OnPlaced != nil {
		s.OnPlaced()
	}
	return Result{Order: placed, Replayed: replayed}, nil
}
