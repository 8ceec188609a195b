package shop

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/surge-commerce/surge/internal/payment"
	"github.com/surge-commerce/surge/internal/payment/simulated"
	"github.com/surge-commerce/surge/internal/payment/stripe"
)

// Payment providers a shop can take payments with.
const (
	ProviderSimulated = "simulated"
	ProviderStripe    = "stripe"
)

// openPayments connects the payment provider cfg names: the simulated one
// (the default, with its test cards) or Stripe.
func (s *Shop) openPayments(ctx context.Context, cfg Config, log *slog.Logger) (payment.Provider, error) {
	switch cfg.PaymentProvider {
	case "", ProviderSimulated:
		opts := simulated.Options{Latency: cfg.PaymentLatency, Jitter: cfg.PaymentLatency / 2, FailureRate: cfg.PaymentFailureRate}
		if gc, ok := s.Store.(interface {
			WriteTx(context.Context, func(*sql.Tx) error) error
		}); ok {
			// The embedded store: the ledger's writes join its group commit.
			opts.Transact = gc.WriteTx
		}
		pay, err := simulated.New(s.Store.Writer(), opts)
		if err != nil {
			return nil, fmt.Errorf("simulated payments: %w", err)
		}
		s.Payments, s.tokens = pay, pay
		s.closers = append(s.closers, pay.Close)
		return pay, nil
	case ProviderStripe:
		sc := cfg.Stripe
		sc.DB = s.Store.Writer()
		pay, err := stripe.New(ctx, sc)
		if err != nil {
			return nil, fmt.Errorf("stripe payments: %w", err)
		}
		s.Stripe, s.tokens = pay, pay
		return pay, nil
	}
	return nil, fmt.Errorf("payment provider %q: want %s or %s", cfg.PaymentProvider, ProviderSimulated, ProviderStripe)
}

// paymentWebhook is the handler for the provider's webhook calls, or nil
// when the provider reports nothing over HTTP.
func (s *Shop) paymentWebhook(log *slog.Logger) http.Handler {
	if s.Stripe == nil {
		return nil
	}
	return s.Stripe.WebhookHandler(s.workers.PaymentEvent, log)
}

// stripeKey is the publishable key the checkout page gives Stripe.js;
// empty keeps the simulated provider's test-card form.
func (s *Shop) stripeKey() string {
	if s.Stripe == nil {
		return ""
	}
	return s.Stripe.PublishableKey()
}
