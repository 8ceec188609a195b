// Package storefront is the shop's public HTTP face: the JSON API under
// /api/v1, the admin API under /api/v1/admin, and the server-rendered
// pages. Every route is listed in routes.go.
package storefront

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"

	"github.com/surge-commerce/surge/internal/admission"
	"github.com/surge-commerce/surge/internal/cart"
	"github.com/surge-commerce/surge/internal/catalog"
	"github.com/surge-commerce/surge/internal/checkout"
	"github.com/surge-commerce/surge/internal/customer"
	"github.com/surge-commerce/surge/internal/drop"
	"github.com/surge-commerce/surge/internal/order"
	"github.com/surge-commerce/surge/internal/session"
	"github.com/surge-commerce/surge/internal/telemetry"
	"github.com/surge-commerce/surge/internal/tracing"
	"github.com/surge-commerce/surge/internal/waitroom"
)

// Deps is what the storefront needs; main wires it.
type Deps struct {
	Catalog *catalog.Service
	Logger  *slog.Logger
	Metrics *telemetry.HTTPMetrics
	// PageCache wraps the cacheable routes (anonymous pages, public catalog
	// API, images). Nil serves them uncached.
	PageCache func(http.Handler) http.Handler
	// Admit wraps a route in admission control for its priority class. Nil
	// admits everything.
	Admit func(admission.Class, http.Handler) http.Handler
	// PurgeCache is called by the admin purge endpoint; nil disables it.
	PurgeCache func(all bool, tags ...string) int
	// AdminToken is the bearer token for /api/v1/admin. Empty disables the
	// admin API: it is never served unauthenticated.
	AdminToken string
	// Sessions, Carts, Checkout and Accounts make up the buy path.
	Sessions *session.Manager
	Carts    *cart.Service
	Checkout *checkout.Service
	Accounts Accounts
	// DropStore keeps drops; OnDropChange tells the waiting room about a
	// created or closed drop.
	DropStore    Drops
	OnDropChange func(drop.Drop)
	// Room is the waiting room; DropGate checks access to drop SKUs.
	Room     *waitroom.Room
	DropGate DropGate
	// Standby, when set, holds visitors in a FIFO line while it is on.
	Standby *waitroom.Standby
	// SignIn limits password attempts per account and per client
	// address; nil limits them in process at the default rates.
	SignIn *SignInLimits
	// Passwords runs the password hashes, a bounded number at once; nil
	// runs one per CPU at a time.
	Passwords *customer.Passwords
	// ClientAddr gives a request's client address (trusted-proxy aware);
	// nil uses the connection's peer.
	ClientAddr func(*http.Request) string
	// ShopName appears in page titles and the header.
	ShopName string
	// AccessLog logs one line per request when true.
	AccessLog bool
	// StripeKey, when set, is the Stripe publishable key: the checkout
	// page takes the card in Stripe Elements instead of the simulated
	// provider's test-card field. PaymentWebhook handles Stripe's
	// webhook calls (nil: none are expected).
	StripeKey      string
	PaymentWebhook http.Handler
	// Tracer, when not nil, runs every request in a server span that
	// continues the trace of its traceparent header.
	Tracer *tracing.Tracer
}

// NewServer returns the public handler.
func NewServer(d Deps) (http.Handler, error) {
	if d.Catalog == nil || d.Logger == nil || d.Metrics == nil || d.Sessions == nil || d.Carts == nil || d.Checkout == nil || d.Accounts == nil || d.DropStore == nil || d.Room == nil || d.DropGate == nil {
		return nil, errors.New("storefront: Catalog, Logger, Metrics, Sessions, Carts, Checkout, Accounts, DropStore, Room and DropGate are required")
	}
	if d.PageCache == nil {
		d.PageCache = passThrough
	}
	if d.Admit == nil {
		d.Admit = noAdmission
	}
	if d.ShopName == "" {
		d.ShopName = "Surge Demo Shop"
	}
	if d.SignIn == nil {
		d.SignIn = NewSignInLimits(nil)
	}
	if d.Passwords == nil {
		d.Passwords = customer.NewPasswords(0)
	}
	pages, err := parsePages()
	if err != nil {
		return nil, fmt.Errorf("storefront templates: %w", err)
	}
	// Verified against when a sign-in names an unknown email, so the time
	// taken does not reveal which emails have accounts.
	dummy, err := customer.HashPassword("no account has this password")
	if err != nil {
		return nil, err
	}
	s := &server{Deps: d, pages: pages, dummyHash: dummy}
	mux := http.NewServeMux()
	s.routes(mux)
	// Cross-origin protection covers every unsafe request, including form
	// posts from cached pages that cannot carry a per-session token: the
	// browser's Sec-Fetch-Site or Origin header must say same origin.
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, Problem{Type: ProblemType(kindCrossOrigin), Title: "Forbidden", Status: http.StatusForbidden,
			Detail: "cross-origin request refused (CSRF protection)", Instance: r.URL.Path})
	}))
	return observe(d.Logger, d.Metrics, d.AccessLog, d.Tracer, securityHeaders(cop.Handler(s.standbyGate(mux)))), nil
}

type server struct {
	Deps
	pages     map[string]*template.Template
	dummyHash string
}

// DropGate decides whether drop SKUs may go in a cart now.
type DropGate interface {
	Gate(ctx context.Context, session string, access func(dropID string) string, lines []order.Line) (*checkout.DropPurchase, error)
}

var (
	errUnauthorized = errors.New("unauthorized")
	errForbidden    = errors.New("forbidden")
)
