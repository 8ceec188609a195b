package customer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/surge-commerce/surge/internal/admission"
)

// ErrInvalid wraps account details that break a rule (the email, the
// password policy, the name); the message says which.
var ErrInvalid = errors.New("invalid account details")

// Store keeps accounts and their carts.
type Store interface {
	CreateCustomer(ctx context.Context, c Customer) (Customer, error)
	CustomerByEmail(ctx context.Context, email string) (Customer, error)
	// CustomerCart is the customer's cart, "" for none.
	CustomerCart(ctx context.Context, customerID int64) (string, error)
	AssignCart(ctx context.Context, cartID string, customerID int64) error
	MergeCarts(ctx context.Context, from, into string) error
}

// Sessions ends the guest session a sign-in replaces.
type Sessions interface {
	DeleteSession(ctx context.Context, id string) error
}

// Accounts are the account use-cases: signing up and signing in, each
// ending with the customer's cart and the guest session put away. The
// caller starts the new session (with a fresh ID, which stops session
// fixation) on the cart they return.
type Accounts struct {
	Store    Store
	Sessions Sessions
	// Passwords runs the password hashes; nil runs one per CPU at once.
	Passwords *Passwords
	// Limits bounds the attempts; nil counts in process at the default
	// rates.
	Limits *Limits

	once  sync.Once
	dummy string // hash verified for an unknown email
	err   error
}

// Attempt is a sign-up or sign-in: the details given, who made it and the
// guest session they made it from.
type Attempt struct {
	Email, Password string
	// Name is the new account's name (sign-up only).
	Name string
	// Client names the client the attempt came from (its address), for
	// the per-client limit.
	Client string
	// Guest is the session the attempt came from, its zero value for none.
	Guest Guest
}

// Guest is a visitor's session before they sign in.
type Guest struct {
	Session string // its ID, "" for none
	Cart    string // its cart, "" for none
}

// SignedIn is a customer signed in, with the cart their new session
// holds ("" for none).
type SignedIn struct {
	Customer Customer
	CartID   string
}

func (a *Accounts) init() error {
	a.once.Do(func() {
		if a.Passwords == nil {
			a.Passwords = NewPasswords(0)
		}
		if a.Limits == nil {
			a.Limits = NewLimits(nil)
		}
		// Verified against when a sign-in names an unknown email, so
		// the time taken does not reveal which emails have accounts.
		a.dummy, a.err = HashPassword("no account has this password")
	})
	return a.err
}

// SignUp creates an account from at (ErrInvalid when its details break
// the rules, ErrEmailTaken) and signs it in, keeping the guest's cart.
func (a *Accounts) SignUp(ctx context.Context, at Attempt) (SignedIn, error) {
	if err := a.init(); err != nil {
		return SignedIn{}, err
	}
	email, err := NormalizeEmail(at.Email)
	if err != nil {
		return SignedIn{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if err := CheckPassword(at.Password); err != nil {
		return SignedIn{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if len(at.Name) > 200 {
		return SignedIn{}, fmt.Errorf("%w: name: at most 200 characters", ErrInvalid)
	}
	if err := a.Limits.allowClient(ctx, at.Client); err != nil {
		return SignedIn{}, err
	}
	hash, err := a.Passwords.Hash(ctx, at.Password)
	if err != nil {
		return SignedIn{}, err
	}
	c, err := a.Store.CreateCustomer(ctx, Customer{Email: email, Name: at.Name, PasswordHash: hash})
	if err != nil {
		return SignedIn{}, err
	}
	return a.signIn(ctx, c, at.Guest)
}

// SignIn checks at's credentials (ErrBadCredentials) and signs the
// customer in, merging the guest's cart into theirs. Attempts are limited
// per client and per account (see Limits), counted before any password is
// hashed, and an unknown email goes through the same steps as a known one:
// the same limits, one hash (against a dummy), the same answer.
func (a *Accounts) SignIn(ctx context.Context, at Attempt) (SignedIn, error) {
	if err := a.init(); err != nil {
		return SignedIn{}, err
	}
	if err := a.Limits.allowClient(ctx, at.Client); err != nil {
		return SignedIn{}, err
	}
	email, err := NormalizeEmail(at.Email)
	if err != nil {
		return SignedIn{}, ErrBadCredentials
	}
	if err := a.Limits.allowAccount(ctx, email); err != nil {
		return SignedIn{}, err
	}
	c, err := a.Store.CustomerByEmail(ctx, email)
	hash := c.PasswordHash
	switch {
	case errors.Is(err, ErrNotFound):
		hash = a.dummy
	case err != nil:
		return SignedIn{}, err
	}
	ok, err := a.Passwords.Verify(ctx, hash, at.Password)
	if err != nil {
		return SignedIn{}, err
	}
	if !ok || hash == a.dummy {
		return SignedIn{}, ErrBadCredentials
	}
	return a.signIn(ctx, c, at.Guest)
}

// signIn carries the guest's cart over to c (merged into theirs, or
// becoming theirs) and ends the guest session.
func (a *Accounts) signIn(ctx context.Context, c Customer, g Guest) (SignedIn, error) {
	cartID, err := a.Store.CustomerCart(ctx, c.ID)
	if err != nil {
		return SignedIn{}, err
	}
	switch {
	case g.Cart != "" && cartID != "" && g.Cart != cartID:
		if err := a.Store.MergeCarts(ctx, g.Cart, cartID); err != nil {
			return SignedIn{}, err
		}
	case g.Cart != "" && cartID == "":
		if err := a.Store.AssignCart(ctx, g.Cart, c.ID); err != nil {
			return SignedIn{}, err
		}
		cartID = g.Cart
	}
	if g.Session != "" {
		if err := a.Sessions.DeleteSession(ctx, g.Session); err != nil {
			return SignedIn{}, err
		}
	}
	return SignedIn{Customer: c, CartID: cartID}, nil
}

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

// Limits bound password attempts. Both count every attempt, right or
// wrong, and an unknown email exactly like a known one, so neither the
// answers nor their timing tell which emails have accounts.
type Limits struct {
	// PerAccount counts sign-in attempts at one email address.
	PerAccount *admission.Buckets
	// PerClient counts sign-ins and sign-ups from one client.
	PerClient *admission.Buckets
}

// NewLimits returns in-process limits at the default rates on the clock
// now (nil: time.Now); a shop with Redis sets each one's Shared buckets so
// that every replica counts together.
func NewLimits(now func() time.Time) *Limits {
	return &Limits{
		PerAccount: &admission.Buckets{Local: admission.NewRateLimiter(SignInPerAccount, signInMaxKeys, now)},
		PerClient:  &admission.Buckets{Local: admission.NewRateLimiter(SignInPerClient, signInMaxKeys, now)},
	}
}

// allowClient takes a token from client's bucket.
func (l *Limits) allowClient(ctx context.Context, client string) error {
	ok, wait := l.PerClient.Allow(ctx, "client:"+client)
	if !ok {
		return Throttled{wait}
	}
	return nil
}

// allowAccount takes a token from email's bucket. The key is a digest, so
// the shared store never holds addresses.
func (l *Limits) allowAccount(ctx context.Context, email string) error {
	sum := sha256.Sum256([]byte(email))
	ok, wait := l.PerAccount.Allow(ctx, "account:"+hex.EncodeToString(sum[:16]))
	if !ok {
		return Throttled{wait}
	}
	return nil
}

// ErrThrottled marks a refused attempt (see Throttled).
var ErrThrottled = errors.New("too many attempts")

// Throttled is a refused sign-in or sign-up: too many attempts, try again
// after Wait.
type Throttled struct{ Wait time.Duration }

func (e Throttled) Error() string {
	return fmt.Sprintf("too many sign-in attempts; try again in %s", humanSeconds(e.Wait))
}

// Is makes a Throttled error ErrThrottled.
func (e Throttled) Is(target error) bool { return target == ErrThrottled }

// PageMessage is the sentence the sign-in page shows.
func (e Throttled) PageMessage() string {
	return fmt.Sprintf("Too many sign-in attempts. Please wait %s and try again.", humanSeconds(e.Wait))
}

// RetryAfter is how long the client should wait.
func (e Throttled) RetryAfter() time.Duration { return e.Wait }

// humanSeconds says d in whole seconds, rounded up, at least one.
func humanSeconds(d time.Duration) string {
	s := max(1, int((d+time.Second-1)/time.Second))
	if s == 1 {
		return "1 second"
	}
	return strconv.Itoa(s) + " seconds"
}
