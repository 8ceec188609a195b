// Package customer holds shop accounts: the sign-up and sign-in use-cases
// (Accounts), their rules and limits, and password hashing.
package customer

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/mail"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/argon2"
)

// Domain errors.
var (
	// ErrNotFound means no account has that email or ID.
	ErrNotFound = errors.New("customer not found")
	// ErrEmailTaken means an account with the email exists already.
	ErrEmailTaken = errors.New("an account with this email already exists")
	// ErrBadCredentials means the email or password is wrong; which one is
	// deliberately not said.
	ErrBadCredentials = errors.New("email or password is wrong")
)

// Customer is a shop account.
type Customer struct {
	ID           int64     `json:"id"`
	Email        string    `json:"email"`
	Name         string    `json:"name"`
	PasswordHash string    `json:"-"`
	CreatedAt    time.Time `json:"created_at"`
}

// NormalizeEmail validates an address and lower-cases it, so one person
// cannot hold two accounts that differ only in case.
func NormalizeEmail(s string) (string, error) {
	s = strings.TrimSpace(s)
	if len(s) > 254 {
		return "", errors.New("email: at most 254 characters")
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || !strings.Contains(s, "@") || strings.ContainsAny(s, " \r\n") {
		return "", fmt.Errorf("email %q: not a valid address", s)
	}
	return strings.ToLower(s), nil
}

// CheckPassword enforces the password policy: 8 to 128 characters (NIST
// 800-63B: length, not composition rules).
func CheckPassword(pw string) error {
	n := len([]rune(pw))
	if n < 8 {
		return errors.New("password: at least 8 characters")
	}
	if n > 128 {
		return errors.New("password: at most 128 characters")
	}
	return nil
}

// Argon2id parameters (OWASP's first recommendation: 19 MiB, 2 passes, 1
// lane). Memory is per concurrent hash, so it is kept modest: a spike of
// sign-ins must not exhaust the server.
const (
	argonMemory  = 19 * 1024
	argonTime    = 2
	argonThreads = 1
	argonKeyLen  = 32
	argonSaltLen = 16
)

// HashPassword returns an argon2id hash in the PHC string format.
func HashPassword(pw string) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	key := argon2.IDKey([]byte(pw), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// VerifyPassword reports whether pw matches a hash made by HashPassword
// (with whatever parameters it was made with), in constant time.
func VerifyPassword(hash, pw string) bool {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false
	}
	var v int
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return false
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || m == 0 || m > 1<<20 || t == 0 || t > 16 || p == 0 {
		return false
	}
	b64 := base64.RawStdEncoding
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return false
	}
	want, err := b64.DecodeString(parts[5])
	if err != nil || len(want) == 0 || len(want) > 128 {
		return false
	}
	got := argon2.IDKey([]byte(pw), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

// Passwords hashes and verifies passwords with at most a fixed number of
// argon2id computations at once. Each one holds argonMemory (19 MiB)
// while it runs, so a burst of sign-ins, honest or not, would otherwise
// take memory in proportion to the burst; and each is CPU-bound, so more
// of them at once than there are CPUs finish no sooner. The rest wait
// their turn, as long as their context lets them.
type Passwords struct {
	slots   chan struct{}
	hashes  atomic.Uint64 // argon2id computations done
	waiting atomic.Int64  // checks waiting for a slot
}

// NewPasswords returns a Passwords running at most concurrent hashes at
// once; 0 means one per CPU (GOMAXPROCS).
func NewPasswords(concurrent int) *Passwords {
	if concurrent <= 0 {
		concurrent = runtime.GOMAXPROCS(0)
	}
	return &Passwords{slots: make(chan struct{}, concurrent)}
}

// Concurrent is how many hashes may run at once.
func (p *Passwords) Concurrent() int { return cap(p.slots) }

func (p *Passwords) acquire(ctx context.Context) error {
	select {
	case p.slots <- struct{}{}:
		return nil
	default:
	}
	p.waiting.Add(1)
	defer p.waiting.Add(-1)
	select {
	case p.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting to check a password: %w", ctx.Err())
	}
}

func (p *Passwords) release() {
	p.hashes.Add(1)
	<-p.slots
}

// Register adds the password metrics to reg: hashes done, running and
// waiting.
func (p *Passwords) Register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "surge_password_hashes_total",
			Help: "argon2id computations done (sign-up hashes and sign-in checks, an unknown email's included)."},
			func() float64 { return float64(p.hashes.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "surge_password_hashes_running", Help: "argon2id computations running now."},
			func() float64 { return float64(len(p.slots)) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "surge_password_hashes_waiting", Help: "Password checks waiting for a free slot."},
			func() float64 { return float64(p.waiting.Load()) }),
	} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register password metrics: %w", err)
		}
	}
	return nil
}

// Hash is HashPassword in a slot.
func (p *Passwords) Hash(ctx context.Context, pw string) (string, error) {
	if err := p.acquire(ctx); err != nil {
		return "", err
	}
	defer p.release()
	return HashPassword(pw)
}

// Verify is VerifyPassword in a slot. It returns an error only when ctx
// ended before a slot was free.
func (p *Passwords) Verify(ctx context.Context, hash, pw string) (bool, error) {
	if err := p.acquire(ctx); err != nil {
		return false, err
	}
	defer p.release()
	return VerifyPassword(hash, pw), nil
}
