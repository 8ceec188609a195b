package stripe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	stripego "github.com/stripe/stripe-go/v82"
	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/surge-commerce/surge/internal/money"
	"github.com/surge-commerce/surge/internal/payment"
)

// maxWebhookBytes bounds an event body; Stripe's are a few KiB.
const maxWebhookBytes = 1 << 20

// eventRetention is how long event IDs are remembered: longer than the
// three days Stripe keeps retrying an event.
const eventRetention = 7 * 24 * time.Hour

// WebhookHandler verifies and applies Stripe's webhook calls. Each
// verified event Surge understands becomes a payment.Event handed to
// apply; a nil error from apply acknowledges it (200) and records its ID,
// so a delivery of the same event again (Stripe retries, or a replayed
// request) is acknowledged without being applied twice. An error answers
// 500, and Stripe delivers it again later.
//
// Refused with 400: a body that is not signed with the endpoint's secret,
// a signature older than the tolerance (a replay of a captured request),
// or a payload that is not an event.
func (p *Provider) WebhookHandler(apply func(context.Context, payment.Event) error, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxWebhookBytes))
		if err != nil {
			webhookProblem(w, http.StatusBadRequest, "the body could not be read or is larger than 1 MiB")
			return
		}
		ev, err := webhook.ConstructEventWithOptions(body, r.Header.Get("Stripe-Signature"), p.cfg.WebhookSecret,
			webhook.ConstructEventOptions{Tolerance: p.cfg.WebhookTolerance, IgnoreAPIVersionMismatch: true})
		switch {
		case errors.Is(err, webhook.ErrTooOld):
			webhookProblem(w, http.StatusBadRequest, "the signature is older than the tolerance: refused as a possible replay")
			return
		case errors.Is(err, webhook.ErrNotSigned), errors.Is(err, webhook.ErrInvalidHeader):
			webhookProblem(w, http.StatusBadRequest, "missing or malformed Stripe-Signature header")
			return
		case errors.Is(err, webhook.ErrNoValidSignature):
			webhookProblem(w, http.StatusBadRequest, "no signature matches the endpoint's secret")
			return
		case err != nil:
			webhookProblem(w, http.StatusBadRequest, "not a Stripe event")
			return
		}
		if ev.ID == "" || len(ev.ID) > 255 {
			webhookProblem(w, http.StatusBadRequest, "the event has no usable id")
			return
		}
		seen, err := p.seen(r.Context(), ev.ID)
		if err != nil {
			log.ErrorContext(r.Context(), "stripe webhook: event ledger", "err", err)
			webhookProblem(w, http.StatusInternalServerError, "try again later")
			return
		}
		if seen {
			w.WriteHeader(http.StatusOK)
			fmt.Fprintln(w, "already processed")
			return
		}
		e, ok, err := eventOf(ev)
		if err != nil {
			webhookProblem(w, http.StatusBadRequest, err.Error())
			return
		}
		if ok {
			if err := apply(r.Context(), e); err != nil {
				log.WarnContext(r.Context(), "stripe webhook: applying event failed; Stripe will deliver it again",
					"event", ev.ID, "type", ev.Type, "order", e.OrderID, "err", err)
				webhookProblem(w, http.StatusInternalServerError, "the event could not be applied yet; deliver it again")
				return
			}
		}
		if err := p.remember(r.Context(), ev); err != nil {
			// Applied but not remembered: a redelivery applies it again,
			// which the order's status guards make harmless.
			log.WarnContext(r.Context(), "stripe webhook: remember event", "event", ev.ID, "err", err)
		}
		w.WriteHeader(http.StatusOK)
		fmt.Fprintln(w, "ok")
	})
}

func webhookProblem(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"type": "about:blank", "title": http.StatusText(status), "status": status, "detail": detail})
}

func (p *Provider) seen(ctx context.Context, id string) (bool, error) {
	var n int
	err := p.db.QueryRowContext(ctx, `SELECT count(*) FROM stripe_webhook_events WHERE event_id = $1`, id).Scan(&n)
	return n > 0, err
}

func (p *Provider) remember(ctx context.Context, ev stripego.Event) error {
	now := time.Now()
	if _, err := p.db.ExecContext(ctx, `INSERT INTO stripe_webhook_events (event_id, type, received_at) VALUES ($1, $2, $3)
		ON CONFLICT (event_id) DO NOTHING`, ev.ID, string(ev.Type), now.UnixNano()); err != nil {
		return err
	}
	_, err := p.db.ExecContext(ctx, `DELETE FROM stripe_webhook_events WHERE received_at < $1`, now.Add(-eventRetention).UnixNano())
	return err
}

// eventOf turns a Stripe event into the payment.Event the simulated
// provider would report for the same change; ok is false for event types
// Surge does not act on.
func eventOf(ev stripego.Event) (payment.Event, bool, error) {
	at := time.Unix(ev.Created, 0).UTC()
	if ev.Data == nil {
		return payment.Event{}, false, errors.New("the event has no data")
	}
	switch ev.Type {
	case stripego.EventTypePaymentIntentSucceeded, stripego.EventTypePaymentIntentPaymentFailed, stripego.EventTypePaymentIntentCanceled:
		var pi stripego.PaymentIntent
		if err := json.Unmarshal(ev.Data.Raw, &pi); err != nil {
			return payment.Event{}, false, fmt.Errorf("%s: data is not a payment intent", ev.Type)
		}
		orderID := pi.Metadata["order_id"]
		if orderID == "" {
			return payment.Event{}, false, nil // not one of Surge's intents
		}
		e := payment.Event{ID: ev.ID, AuthorizationID: pi.ID, OrderID: orderID, At: at}
		switch ev.Type {
		case stripego.EventTypePaymentIntentSucceeded:
			e.Type, e.CaptureID = payment.EventCaptured, pi.ID
			e.Amount = amountOf(pi.AmountReceived, pi.Currency)
		case stripego.EventTypePaymentIntentPaymentFailed:
			e.Type, e.DeclineCode = payment.EventFailed, declineCode(pi.LastPaymentError)
			e.Amount = amountOf(pi.Amount, pi.Currency)
		default:
			e.Type = payment.EventVoided
			e.Amount = amountOf(pi.Amount, pi.Currency)
		}
		return e, true, nil
	case stripego.EventTypeRefundCreated:
		var re stripego.Refund
		if err := json.Unmarshal(ev.Data.Raw, &re); err != nil {
			return payment.Event{}, false, fmt.Errorf("%s: data is not a refund", ev.Type)
		}
		orderID := re.Metadata["order_id"]
		intent := ""
		if re.PaymentIntent != nil {
			intent = re.PaymentIntent.ID
		}
		if orderID == "" {
			return payment.Event{}, false, nil
		}
		return payment.Event{ID: ev.ID, Type: payment.EventRefunded, AuthorizationID: intent, CaptureID: intent, RefundID: re.ID,
			OrderID: orderID, Amount: amountOf(re.Amount, re.Currency), At: at}, true, nil
	}
	return payment.Event{}, false, nil
}

func amountOf(minor int64, cur stripego.Currency) money.Money {
	return money.Money{Amount: minor, Currency: strings.ToUpper(string(cur))}
}
