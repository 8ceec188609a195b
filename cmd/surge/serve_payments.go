package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/surge-commerce/surge/internal/payment/stripe"
	"github.com/surge-commerce/surge/internal/shop"
)

// payFlags choose the payment provider. Stripe's secrets have no flag of
// their own, so they never appear on a command line (or in
// /debug/pprof/cmdline): each comes from a file named by a flag or from
// an environment variable.
type payFlags struct {
	Provider          string
	SecretKeyFile     string
	WebhookSecretFile string
	PublishableKey    string
	StripeAPIURL      string
	getenv            func(string) string
}

// The environment variables Stripe's secrets may come from.
const (
	envStripeSecretKey     = "SURGE_STRIPE_SECRET_KEY"
	envStripeWebhookSecret = "SURGE_STRIPE_WEBHOOK_SECRET"
)

func (p *payFlags) add(f *pflag.FlagSet, getenv func(string) string) {
	p.getenv = getenv
	f.StringVar(&p.Provider, "payment-provider", shop.Defaults().PaymentProvider, "payment provider: simulated (test cards, no money moves) or stripe")
	f.StringVar(&p.SecretKeyFile, "stripe-secret-key-file", "", "file holding the Stripe secret key (or set SURGE_STRIPE_SECRET_KEY)")
	f.StringVar(&p.WebhookSecretFile, "stripe-webhook-secret-file", "", "file holding the Stripe webhook signing secret, whsec_... (or set SURGE_STRIPE_WEBHOOK_SECRET)")
	f.StringVar(&p.PublishableKey, "stripe-publishable-key", "", "Stripe publishable key (pk_...), given to Stripe.js on the checkout page")
	f.StringVar(&p.StripeAPIURL, "stripe-api-url", "", "Stripe API base URL (default Stripe's; tests point it at stripe-mock)")
}

// secret reads one secret from its file or its environment variable.
func (p payFlags) secret(file, env, what string) (string, error) {
	fromEnv := ""
	if p.getenv != nil {
		fromEnv = p.getenv(env)
	}
	switch {
	case file != "" && fromEnv != "":
		return "", fmt.Errorf("%s: set the file flag or %s, not both", what, env)
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			// The path is not secret; the content never reaches an error.
			return "", fmt.Errorf("%s: %w", what, err)
		}
		return strings.TrimSpace(string(b)), nil
	case fromEnv != "":
		return strings.TrimSpace(fromEnv), nil
	}
	return "", fmt.Errorf("%s: required with --payment-provider stripe (a file flag or %s)", what, env)
}

// config returns the provider name and, for Stripe, its checked settings.
func (p payFlags) config() (string, stripe.Config, error) {
	switch p.Provider {
	case shop.ProviderSimulated:
		return p.Provider, stripe.Config{}, nil
	case shop.ProviderStripe:
	default:
		return "", stripe.Config{}, fmt.Errorf("--payment-provider %q: want %s or %s", p.Provider, shop.ProviderSimulated, shop.ProviderStripe)
	}
	var errs []error
	key, err := p.secret(p.SecretKeyFile, envStripeSecretKey, "--stripe-secret-key-file")
	errs = append(errs, err)
	hook, err := p.secret(p.WebhookSecretFile, envStripeWebhookSecret, "--stripe-webhook-secret-file")
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return "", stripe.Config{}, err
	}
	c := stripe.Config{SecretKey: key, WebhookSecret: hook, PublishableKey: p.PublishableKey, APIURL: p.StripeAPIURL}
	if err := c.Validate(); err != nil {
		return "", stripe.Config{}, err
	}
	return p.Provider, c, nil
}
