package storefront

import (
	"net/http"
	"strings"
)

// Stripe's origins: Stripe.js and the Elements iframes load from
// js.stripe.com, the iframes talk to api.stripe.com, and 3-D Secure
// frames come from hooks.stripe.com.
const (
	stripeJS    = "https://js.stripe.com"
	stripeAPI   = "https://api.stripe.com"
	stripeHooks = "https://hooks.stripe.com"
)

// allowStripe widens the page's Content-Security-Policy, if one was set
// before the handler ran, just enough for Stripe Elements: scripts and
// frames from js.stripe.com, frames from hooks.stripe.com and requests to
// api.stripe.com. Only the checkout page calls it, and only when Stripe
// is the provider; every other page keeps the policy as it is. Each
// directive it touches that the policy leaves to default-src starts from
// default-src's sources.
func allowStripe(h http.Header) {
	const name = "Content-Security-Policy"
	policy := h.Get(name)
	if policy == "" {
		return
	}
	add := map[string][]string{
		"script-src":  {stripeJS},
		"frame-src":   {stripeJS, stripeHooks},
		"connect-src": {stripeAPI},
	}
	var dirs []string
	var defaults []string
	for _, d := range strings.Split(policy, ";") {
		if f := strings.Fields(d); len(f) > 0 && strings.EqualFold(f[0], "default-src") {
			defaults = f[1:]
		}
	}
	for _, d := range strings.Split(policy, ";") {
		f := strings.Fields(d)
		if len(f) == 0 {
			continue
		}
		name := strings.ToLower(f[0])
		if extra, ok := add[name]; ok {
			f = appendSources(f, extra)
			delete(add, name)
		}
		dirs = append(dirs, strings.Join(f, " "))
	}
	for _, name := range []string{"script-src", "frame-src", "connect-src"} {
		if extra, ok := add[name]; ok {
			f := append([]string{name}, defaults...)
			if len(defaults) == 0 {
				f = append(f, "'self'")
			}
			dirs = append(dirs, strings.Join(appendSources(f, extra), " "))
		}
	}
	h.Set(name, strings.Join(dirs, "; "))
}

// appendSources adds sources to a directive (name first), dropping 'none',
// which cannot stand with any source.
func appendSources(f []string, extra []string) []string {
	out := f[:1:1]
	for _, s := range f[1:] {
		if s != "'none'" {
			out = append(out, s)
		}
	}
	return append(out, extra...)
}

// handlePaymentWebhook passes the payment provider's webhook calls to its
// handler, which verifies them.
func (s *server) handlePaymentWebhook() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.PaymentWebhook == nil {
			writeProblem(w, Problem{Type: ProblemType(kindNotFound), Title: "Not Found", Status: http.StatusNotFound,
				Detail: "this shop does not take payments with Stripe (--payment-provider stripe)", Instance: r.URL.Path})
			return
		}
		s.PaymentWebhook.ServeHTTP(w, r)
	})
}
