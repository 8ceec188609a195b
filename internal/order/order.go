// Package order holds orders, their lines and the state machine every
// order moves through.
package order

import (
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/surge-commerce/surge/internal/money"
)

// Status is where an order stands.
type Status string

// Order statuses. pending_payment -> paid -> fulfilled is the happy path;
// payment_failed, cancelled and expired end an order and return its stock.
const (
	StatusPendingPayment Status = "pending_payment"
	StatusPaid           Status = "paid"
	StatusFulfilled      Status = "fulfilled"
	StatusPaymentFailed  Status = "payment_failed"
	StatusCancelled      Status = "cancelled"
	StatusExpired        Status = "expired"
)

// transitions lists every allowed move. Anything else is refused, so a
// redelivered or late event can never move an order backwards.
var transitions = map[Status][]Status{
	StatusPendingPayment: {StatusPaid, StatusPaymentFailed, StatusCancelled, StatusExpired},
	StatusPaid:           {StatusFulfilled, StatusCancelled},
}

// ErrTransition means the move is not allowed from the current status.
var ErrTransition = errors.New("order status transition not allowed")

// ErrNotFound means no such order (or not the caller's).
var ErrNotFound = errors.New("order not found")

// CanTransition reports whether an order may move from one status to another.
func CanTransition(from, to Status) bool {
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// Final reports whether no further transition is possible.
func (s Status) Final() bool { return len(transitions[s]) == 0 }

// HoldsStock reports whether an order in this status still holds reserved
// stock (reservations are released when an order ends unpaid).
func (s Status) HoldsStock() bool { return s == StatusPendingPayment }

// Valid reports whether s is a known status.
func (s Status) Valid() bool {
	switch s {
	case StatusPendingPayment, StatusPaid, StatusFulfilled, StatusPaymentFailed, StatusCancelled, StatusExpired:
		return true
	}
	return false
}

// Address is a shipping address.
type Address struct {
	Name       string `json:"name"`
	Line1      string `json:"line1"`
	Line2      string `json:"line2,omitempty"`
	City       string `json:"city"`
	Region     string `json:"region,omitempty"`
	PostalCode string `json:"postal_code"`
	Country    string `json:"country"` // ISO 3166-1 alpha-2
}

// Validate says which field is missing or malformed.
func (a Address) Validate() error {
	req := []struct{ name, v string }{{"name", a.Name}, {"line1", a.Line1}, {"city", a.City}, {"postal_code", a.PostalCode}, {"country", a.Country}}
	for _, f := range req {
		if strings.TrimSpace(f.v) == "" {
			return fmt.Errorf("shipping_address.%s: required", f.name)
		}
	}
	for _, f := range append(req, struct{ name, v string }{"line2", a.Line2}, struct{ name, v string }{"region", a.Region}) {
		if utf8.RuneCountInString(f.v) > 200 || !utf8.ValidString(f.v) || strings.ContainsAny(f.v, "\x00\r\n") {
			return fmt.Errorf("shipping_address.%s: at most 200 characters on one line", f.name)
		}
	}
	if len(a.Country) != 2 || strings.ToUpper(a.Country) != a.Country || a.Country[0] < 'A' || a.Country[0] > 'Z' || a.Country[1] < 'A' || a.Country[1] > 'Z' {
		return fmt.Errorf("shipping_address.country %q: use a two-letter ISO 3166 code such as US", a.Country)
	}
	return nil
}

// Line is one SKU on an order, priced when the order was placed.
type Line struct {
	SKU          string      `json:"sku"`
	ProductName  string      `json:"product_name"`
	VariantTitle string      `json:"variant_title"`
	Quantity     int64       `json:"quantity"`
	UnitPrice    money.Money `json:"unit_price"`
	LineTotal    money.Money `json:"line_total"`
}

// Transition is one recorded status change.
type Transition struct {
	From   Status    `json:"from"`
	To     Status    `json:"to"`
	Reason string    `json:"reason,omitempty"`
	At     time.Time `json:"at"`
}

// Order is a placed order.
type Order struct {
	ID              string       `json:"id"`
	Number          int64        `json:"number"`
	CustomerID      int64        `json:"customer_id,omitempty"`
	Email           string       `json:"email"`
	Status          Status       `json:"status"`
	Lines           []Line       `json:"lines"`
	Subtotal        money.Money  `json:"subtotal"`
	Tax             money.Money  `json:"tax"`
	Shipping        money.Money  `json:"shipping"`
	Total           money.Money  `json:"total"`
	ShippingAddress Address      `json:"shipping_address"`
	CardLast4       string       `json:"card_last4,omitempty"`
	PaymentMethod   string       `json:"-"`
	ReservedUntil   time.Time    `json:"reserved_until"`
	History         []Transition `json:"history,omitempty"`
	CreatedAt       time.Time    `json:"created_at"`
	UpdatedAt       time.Time    `json:"updated_at"`
	// AccessToken opens the order to whoever holds it, with or without a
	// session (see OpensWith): the order link in the confirmation page and
	// mail carries it, so a guest's access to their own order never
	// depends on a session store that may lose their session. Orders
	// placed before tokens existed have none.
	AccessToken string `json:"access_token,omitempty"`
}

// NewAccessToken returns an unguessable order access token: 128 random
// bits and more, in base32 (26 characters, safe in a URL).
func NewAccessToken() string { return rand.Text() }

// maxAccessToken bounds the token a request may present; real ones are 26
// characters.
const maxAccessToken = 64

// OpensWith reports whether token opens o: it equals o's access token,
// compared in constant time. An order without a token opens with none.
func (o Order) OpensWith(token string) bool {
	if o.AccessToken == "" || token == "" || len(token) > maxAccessToken {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(token), []byte(o.AccessToken)) == 1
}

// Event subjects published through the outbox.
const (
	SubjectCreated   = "surge.order.created"
	SubjectPaid      = "surge.order.paid"
	SubjectFailed    = "surge.order.payment_failed"
	SubjectExpired   = "surge.order.expired"
	SubjectCancelled = "surge.order.cancelled"
)

// Event is the payload of an order event: small, enough for a consumer to
// load the order and act idempotently.
type Event struct {
	OrderID string `json:"order_id"`
	Status  Status `json:"status"`
	At      int64  `json:"at"` // Unix nanoseconds
}
