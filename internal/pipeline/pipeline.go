// Package pipeline holds the order workers: the consumers of order events
// that take payment, commit stock and confirm orders, and the sweep that
// expires unpaid reservations. Handlers take the raw event bytes and are
// idempotent, so the bus may deliver a message any number of times; they
// know nothing of the bus itself.
package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/surge-commerce/surge/internal/order"
	"github.com/surge-commerce/surge/internal/payment"
)

// ErrPoison marks a message no retry can fix (it cannot be decoded, or
// names an order that does not exist); the bus dead-letters it at once.
var ErrPoison = errors.New("poison message")

// Store is what the workers need from storage. Every method is idempotent
// and guarded by the order's current status.
type Store interface {
	ClaimPayment(ctx context.Context, id string) (order.Order, bool, error)
	MarkPaid(ctx context.Context, id, reason string) error
	MarkPaymentFailed(ctx context.Context, id, reason string) error
	CommitStock(ctx context.Context, id string) (int, error)
	ExpireDue(ctx context.Context, limit int, claimLease time.Duration) ([]string, error)
	ConfirmationSent(ctx context.Context, id string) (bool, error)
	MarkConfirmationSent(ctx context.Context, id string) (bool, error)
	Order(ctx context.Context, id string) (order.Order, error)
}

// Mailer sends one plain-text mail.
type Mailer interface {
	Send(ctx context.Context, to, subject, body string) error
}

// Workers runs the order pipeline.
type Workers struct {
	Store    Store
	Payments payment.Provider
	Mail     Mailer
	Log      *slog.Logger
	// ShopName signs the confirmation mail.
	ShopName string
	// ShopURL is where shoppers reach the shop (scheme and host, such as
	// https://shop.example.com); the confirmation mail links to the order
	// there, with its access token, so the link opens it without a
	// session. Empty leaves the link out.
	ShopURL string
	// ClaimLease is how long a payment attempt keeps an order from expiring
	// (default 2 minutes: longer than any provider call may take).
	ClaimLease time.Duration

	captured, declined, expired, refunded prometheus.Counter
	// events counts the provider's own reports (webhooks) by type.
	events *prometheus.CounterVec
	// toPaid is the order pipeline's freshness: how long after its
	// checkout an order was paid.
	toPaid prometheus.Histogram
}

// New returns Workers with their metrics registered on reg.
func New(st Store, pay payment.Provider, mail Mailer, log *slog.Logger, shopName string, reg prometheus.Registerer) (*Workers, error) {
	w := &Workers{Store: st, Payments: pay, Mail: mail, Log: log, ShopName: shopName,
		captured: prometheus.NewCounter(prometheus.CounterOpts{Name: "surge_payments_captured_total", Help: "Orders whose payment was captured."}),
		declined: prometheus.NewCounter(prometheus.CounterOpts{Name: "surge_payments_declined_total", Help: "Orders whose payment was declined."}),
		expired:  prometheus.NewCounter(prometheus.CounterOpts{Name: "surge_orders_expired_total", Help: "Unpaid orders expired and their stock released."}),
		refunded: prometheus.NewCounter(prometheus.CounterOpts{Name: "surge_payments_refunded_total", Help: "Captures refunded because their order had expired meanwhile."}),
		toPaid: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "surge_order_checkout_to_paid_seconds",
			Help: "Time from an order's checkout to its payment, as the worker's clock reads the order's creation time.",
			// The freshness SLO counts orders paid within 30 s; a bound
			// must be a bucket edge for the SLO to read it.
			Buckets: []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800}}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "surge_payment_events_total",
			Help: "Events the payment provider reported on its own (webhooks), by type; redeliveries it was told about already are not counted."}, []string{"type"}),
		ClaimLease: 2 * time.Minute,
	}
	for _, c := range []prometheus.Collector{w.captured, w.declined, w.expired, w.refunded, w.toPaid, w.events} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register pipeline metrics: %w", err)
		}
	}
	return w, nil
}

// Handler is one consumer: its durable name, the subject it reads and the
// function that handles a message.
type Handler struct {
	Name    string
	Subject string
	Handle  func(ctx context.Context, data []byte) error
}

// Handlers lists the consumers to run: one per event an order goes
// through. Each consumer costs the bus a pull, a delivery and an ack per
// event, every one of them replicated on a cluster, so the paid event's
// two jobs share one consumer (Paid) rather than each having its own.
func (w *Workers) Handlers() []Handler {
	return []Handler{
		{Name: "payment-capture", Subject: order.SubjectCreated, Handle: w.Capture},
		{Name: "stock-commit", Subject: order.SubjectPaid, Handle: w.Paid},
	}
}

// RetiredHandlers lists consumers that earlier versions ran and Handlers
// no longer does, with what their messages still need. A bus may hold
// such a consumer with a backlog from before an upgrade (the
// confirmation mails of orders whose stock an older stock-commit had
// committed already): the worker works it off and then deletes it.
func (w *Workers) RetiredHandlers() []Handler {
	return []Handler{
		{Name: "order-confirmation", Subject: order.SubjectPaid, Handle: w.Confirm},
	}
}

// Paid does what a paid order needs: its stock committed, then its
// confirmation mailed. Both steps are idempotent, so a redelivery after
// a failed mail finds the stock committed and only mails.
func (w *Workers) Paid(ctx context.Context, data []byte) error {
	if err := w.CommitStock(ctx, data); err != nil {
		return err
	}
	return w.Confirm(ctx, data)
}

func decode(data []byte) (order.Event, error) {
	var ev order.Event
	if err := json.Unmarshal(data, &ev); err != nil || ev.OrderID == "" {
		return ev, fmt.Errorf("%w: not an order event: %q", ErrPoison, truncate(string(data), 80))
	}
	return ev, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func notFoundIsPoison(err error) error {
	if errors.Is(err, order.ErrNotFound) {
		return fmt.Errorf("%w: %v", ErrPoison, err)
	}
	return err
}

// Capture takes payment for a new order: authorize, then capture, each
// with a provider idempotency key derived from the order, so a crash or a
// redelivery at any point leads to exactly one capture.
func (w *Workers) Capture(ctx context.Context, data []byte) error {
	ev, err := decode(data)
	if err != nil {
		return err
	}
	o, pending, err := w.Store.ClaimPayment(ctx, ev.OrderID)
	if err != nil {
		return notFoundIsPoison(err)
	}
	if !pending {
		return nil // paid, failed or expired already: a redelivery
	}
	if o.Total.Amount == 0 {
		if err := w.Store.MarkPaid(ctx, o.ID, "nothing to pay"); err != nil {
			return err
		}
		w.paid(o)
		return nil
	}
	auth, err := w.Payments.Authorize(ctx, payment.AuthorizeRequest{IdempotencyKey: "authorize:" + o.ID, OrderID: o.ID,
		Amount: o.Total, PaymentMethod: o.PaymentMethod})
	if err != nil {
		return w.paymentError(ctx, o, "authorize", err)
	}
	capt, err := w.Payments.Capture(ctx, payment.CaptureRequest{IdempotencyKey: "capture:" + o.ID, AuthorizationID: auth.ID,
		OrderID: o.ID, Amount: o.Total})
	if errors.Is(err, payment.ErrDeclined) {
		// Release the held money before failing the order.
		if verr := w.Payments.Void(ctx, payment.VoidRequest{IdempotencyKey: "void:" + o.ID, AuthorizationID: auth.ID, OrderID: o.ID}); verr != nil && !errors.Is(verr, payment.ErrInvalidState) {
			return fmt.Errorf("void authorization %s of order %s: %w", auth.ID, o.ID, verr)
		}
	}
	if err != nil {
		return w.paymentError(ctx, o, "capture", err)
	}
	err = w.Store.MarkPaid(ctx, o.ID, "captured "+capt.ID)
	if errors.Is(err, order.ErrTransition) {
		// The order expired while the provider was failing and its claim
		// had lapsed: its stock may be sold to someone else already, so
		// the money goes back rather than the order coming back.
		if _, rerr := w.Payments.Refund(ctx, payment.RefundRequest{IdempotencyKey: "refund:" + o.ID, CaptureID: capt.ID,
			OrderID: o.ID, Amount: capt.Amount, Reason: "order expired before payment completed"}); rerr != nil {
			return fmt.Errorf("refund capture %s of expired order %s: %w", capt.ID, o.ID, rerr)
		}
		w.refunded.Inc()
		w.Log.WarnContext(ctx, "capture refunded: order expired first", "order", o.ID, "capture", capt.ID)
		return nil
	}
	if err != nil {
		return err
	}
	w.captured.Inc()
	w.paid(o)
	return nil
}

// PaymentEvent applies an event the payment provider reported on its own,
// as a PSP's webhook does: a capture pays the order, a failure fails it.
// Both are guarded by the order's status, so an event for an order the
// worker has moved already, or one delivered twice, changes nothing; an
// order that ended meanwhile (expired) is left to the capture worker,
// which refunds. Voids and refunds change no order; they are counted.
func (w *Workers) PaymentEvent(ctx context.Context, e payment.Event) error {
	var err error
	switch e.Type {
	case payment.EventCaptured:
		err = w.Store.MarkPaid(ctx, e.OrderID, "captured "+e.CaptureID+" (provider event "+e.ID+")")
	case payment.EventFailed:
		err = w.Store.MarkPaymentFailed(ctx, e.OrderID, "payment failed: "+e.DeclineCode+" (provider event "+e.ID+")")
	case payment.EventVoided, payment.EventRefunded:
	default:
		return nil
	}
	switch {
	case errors.Is(err, order.ErrTransition):
		w.Log.WarnContext(ctx, "payment event does not fit the order's status; left as it is", "order", e.OrderID, "event", e.Type, "id", e.ID)
	case errors.Is(err, order.ErrNotFound):
		w.Log.WarnContext(ctx, "payment event for an unknown order", "order", e.OrderID, "event", e.Type, "id", e.ID)
	case err != nil:
		return fmt.Errorf("apply %s for order %s: %w", e.Type, e.OrderID, err)
	}
	w.events.WithLabelValues(e.Type).Inc()
	return nil
}

// paid records how long the order took from checkout to paid. A
// redelivery of a paid order returns before this, so each order counts
// once per process that paid it.
func (w *Workers) paid(o order.Order) {
	if !o.CreatedAt.IsZero() {
		w.toPaid.Observe(max(time.Since(o.CreatedAt), 0).Seconds())
	}
}

// paymentError decides what a provider error means for the order: a
// decline ends it (and releases its stock); anything else is retried by
// the bus, or dead-lettered when it can never succeed.
func (w *Workers) paymentError(ctx context.Context, o order.Order, step string, err error) error {
	switch {
	case errors.Is(err, payment.ErrDeclined):
		if ferr := w.Store.MarkPaymentFailed(ctx, o.ID, step+": "+err.Error()); ferr != nil {
			return ferr
		}
		w.declined.Inc()
		w.Log.InfoContext(ctx, "payment declined", "order", o.ID, "step", step, "reason", err.Error())
		return nil
	case payment.IsTransient(err), errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return fmt.Errorf("%s order %s: %w", step, o.ID, err)
	default:
		// Mismatched keys, bad amounts, unknown payment methods: a bug or
		// bad data that retries cannot fix. The order keeps its stock and
		// its claim until someone looks at the dead letter.
		return fmt.Errorf("%w: %s order %s: %v", ErrPoison, step, o.ID, err)
	}
}

// CommitStock turns a paid order's reservations into sold units.
func (w *Workers) CommitStock(ctx context.Context, data []byte) error {
	ev, err := decode(data)
	if err != nil {
		return err
	}
	_, err = w.Store.CommitStock(ctx, ev.OrderID)
	return notFoundIsPoison(err)
}

// Confirm mails the order confirmation once. A crash between sending and
// recording may send it twice; that is the at-least-once side of mail.
func (w *Workers) Confirm(ctx context.Context, data []byte) error {
	ev, err := decode(data)
	if err != nil {
		return err
	}
	sent, err := w.Store.ConfirmationSent(ctx, ev.OrderID)
	if err != nil || sent {
		return notFoundIsPoison(err)
	}
	o, err := w.Store.Order(ctx, ev.OrderID)
	if err != nil {
		return notFoundIsPoison(err)
	}
	if err := w.Mail.Send(ctx, o.Email, fmt.Sprintf("Order #%d confirmed", o.Number), confirmation(o, w.ShopName, w.ShopURL)); err != nil {
		return fmt.Errorf("confirmation mail for %s: %w", o.ID, err)
	}
	_, err = w.Store.MarkConfirmationSent(ctx, o.ID)
	return err
}

func confirmation(o order.Order, shop, shopURL string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Thank you for your order #%d.\n\n", o.Number)
	if shopURL != "" && o.AccessToken != "" {
		fmt.Fprintf(&b, "See your order at any time, signed in or not:\n%s/orders/%s?token=%s\n\n",
			strings.TrimRight(shopURL, "/"), url.PathEscape(o.ID), url.QueryEscape(o.AccessToken))
	}
	for _, l := range o.Lines {
		fmt.Fprintf(&b, "  %d x %s", l.Quantity, l.ProductName)
		if l.VariantTitle != "" {
			fmt.Fprintf(&b, " (%s)", l.VariantTitle)
		}
		fmt.Fprintf(&b, "  %s\n", l.LineTotal)
	}
	fmt.Fprintf(&b, "\nSubtotal %s\nTax %s\nShipping %s\nTotal %s\n\n", o.Subtotal, o.Tax, o.Shipping, o.Total)
	a := o.ShippingAddress
	fmt.Fprintf(&b, "Shipping to:\n  %s\n  %s\n  %s %s\n  %s\n\n%s\n", a.Name, a.Line1, a.City, a.PostalCode, a.Country, shop)
	return b.String()
}

// SweepExpired expires unpaid orders whose reservations ran out, every
// interval, until ctx ends. Several workers may sweep at once: each order
// moves once, guarded by its status.
func (w *Workers) SweepExpired(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		for {
			ids, err := w.Store.ExpireDue(ctx, 500, w.ClaimLease)
			if err != nil {
				if ctx.Err() == nil {
					w.Log.WarnContext(ctx, "expiry sweep failed", "err", err)
				}
				break
			}
			w.expired.Add(float64(len(ids)))
			if len(ids) < 500 {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
