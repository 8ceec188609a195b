package storefront

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/surge-commerce/surge/internal/admission"
)

// Default sign-in limits. An account takes 5 attempts at once and then one
// every 30 seconds, whoever makes them: a password guesser gets about
// 2,900 guesses a day at one account instead of 50 a second, and a
// shopper who mistypes five times waits half a minute. A client address
// takes 30 sign-ins and sign-ups at once and then one every 2 seconds,
// which a household or office behind one address does not reach, while a
// guesser spreading over many accounts from one address is held to that.
var (
	SignInPerAccount = admission.Rate{PerSecond: 1.0 / 30, Burst: 5}
	SignInPerClient  = admission.Rate{PerSecond: 0.5, Burst: 30}
)

// signInMaxKeys bounds the in-process buckets of each sign-in limit.
const signInMaxKeys = 100_000

// SignInLimits bound password attempts. Both count every attempt, right or
// wrong, and an unknown email exactly like a known one, so neither the
// answers nor their timing tell which emails have accounts.
type SignInLimits struct {
	// PerAccount counts sign-in attempts at one email address.
	PerAccount *admission.Buckets
	// PerClient counts sign-ins and sign-ups from one client address.
	PerClient *admission.Buckets
}

// NewSignInLimits returns in-process limits at the default rates on the
// clock now (nil: time.Now); a shop with Redis sets each one's Shared
// buckets so that every replica counts together.
func NewSignInLimits(now func() time.Time) *SignInLimits {
	return &SignInLimits{
		PerAccount: &admission.Buckets{Local: admission.NewRateLimiter(SignInPerAccount, signInMaxKeys, now)},
		PerClient:  &admission.Buckets{Local: admission.NewRateLimiter(SignInPerClient, signInMaxKeys, now)},
	}
}

// errThrottled marks a refused attempt (see throttled).
var errThrottled = errors.New("too many attempts")

// throttled is a refused sign-in or sign-up: too many attempts, try again
// after wait.
type throttled struct{ wait time.Duration }

func (e throttled) Error() string {
	return fmt.Sprintf("too many sign-in attempts; try again in %s", humanSeconds(e.wait))
}

func (e throttled) Is(target error) bool { return target == errThrottled }

// PageMessage is the sentence the sign-in page shows.
func (e throttled) PageMessage() string {
	return fmt.Sprintf("Too many sign-in attempts. Please wait %s and try again.", humanSeconds(e.wait))
}

// pageMessage is what a page shows for a refusal: the error's own
// sentence for people when it has one, else its message.
func pageMessage(err error) string {
	var pm interface{ PageMessage() string }
	if errors.As(err, &pm) {
		return pm.PageMessage()
	}
	return err.Error()
}

// RetryAfter is how long the client should wait.
func (e throttled) RetryAfter() time.Duration { return e.wait }

func humanSeconds(d time.Duration) string {
	s := retryAfterSeconds(d)
	if s == 1 {
		return "1 second"
	}
	return strconv.Itoa(s) + " seconds"
}

// retryAfterSeconds rounds d up to whole seconds, at least one.
func retryAfterSeconds(d time.Duration) int {
	return max(1, int((d+time.Second-1)/time.Second))
}

// setRetryAfter sets Retry-After when err says how long to wait.
func setRetryAfter(w http.ResponseWriter, err error) {
	var ra interface{ RetryAfter() time.Duration }
	if errors.As(err, &ra) && ra.RetryAfter() > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(ra.RetryAfter())))
	}
}

// allowClient takes a token from the request's client address.
func (s *server) allowClient(ctx context.Context, r *http.Request) error {
	ok, wait := s.SignIn.PerClient.Allow(ctx, "client:"+s.clientKey(r))
	if !ok {
		return throttled{wait}
	}
	return nil
}

// allowAccount takes a token from email's bucket. The key is a digest, so
// the shared store never holds addresses.
func (s *server) allowAccount(ctx context.Context, email string) error {
	sum := sha256.Sum256([]byte(email))
	ok, wait := s.SignIn.PerAccount.Allow(ctx, "account:"+hex.EncodeToString(sum[:16]))
	if !ok {
		return throttled{wait}
	}
	return nil
}

// clientKey is the rate-limit key of the request's client: its address,
// with IPv6 grouped by /64 as admission does.
func (s *server) clientKey(r *http.Request) string {
	var a netip.Addr
	if s.ClientAddr != nil {
		a, _ = netip.ParseAddr(s.ClientAddr(r))
	} else {
		a = admission.NewClientIP("", nil).Addr(r)
	}
	return admission.ClientKey(a)
}
