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
	"github.com/surge-commerce/surge/internal/dropreport"
	"github.com/surge-commerce/surge/internal/notify"
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
	// Sessions, Carts, Checkout, Customers (signing up and in) and
	// Accounts make up the buy path.
	Sessions  *session.Manager
	Carts     *cart.Service
	Checkout  *checkout.Service
	Customers *customer.Accounts
	Accounts  Accounts
	// DropStore keeps drops; OnDropChange tells the waiting room about a
	// created or closed drop.
	DropStore    drop.Store
	OnDropChange func(drop.Drop)
	// Room is the waiting room; DropGate holds the purchase rules of drop
	// SKUs (the same gate checkout asks).
	Room     *waitroom.Room
	DropGate *drop.Gate
	// Standby, when set, holds visitors in a FIFO line while it is on.
	Standby *waitroom.Standby
	// Notify takes "notify me" requests (nil: those routes answer 404);
	// NotifyLimits bound them (nil: in-process defaults).
	Notify       *notify.Service
	NotifyLimits *NotifyLimits
	// JobAdmin lets the admin API list, pause and resume mail jobs (nil:
	// those routes answer 404).
	JobAdmin JobAdmin
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
	// DropEvents, when set, records what buyers do with a drop's SKUs
	// (adds, limit hits) for its report. It must not block.
	DropEvents func(dropreport.Event)
	// DropReport makes a drop's report; nil answers the report routes
	// with 503.
	DropReport func(ctx context.Context, d drop.Drop) (dropreport.Report, error)
}

// NewServer returns the public handler.
func NewServer(d Deps) (http.Handler, error) {
	if d.Catalog == nil || d.Logger == nil || d.Metrics == nil || d.Sessions == nil || d.Carts == nil || d.Checkout == nil || d.Customers == nil || d.Accounts == nil || d.DropStore == nil || d.Room == nil || d.DropGate == nil {
		return nil, errors.New("storefront: Catalog, Logger, Metrics, Sessions, Carts, Checkout, Customers, Accounts, DropStore, Room and DropGate are required")
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
	if d.NotifyLimits == nil {
		d.NotifyLimits = NewNotifyLimits(nil)
	}
	pages, err := parsePages()
	if err != nil {
		return nil, fmt.Errorf("storefront templates: %w", err)
	}
	s := &server{Deps: d, pages: pages}
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
	h := observe(d.Logger, d.Metrics, d.AccessLog, d.Tracer, securityHeaders(cop.Handler(s.standbyGate(mux))))
	if d.Standby != nil {
		h = trackLoad(d.Standby, h)
	}
	return h, nil
}

type server struct {
	Deps
	pages map[string]*template.Template
}

var (
	errUnauthorized = errors.New("unauthorized")
	errForbidden    = errors.New("forbidden")
)
