// Package session keeps server-side sessions behind an opaque cookie. The
// cookie holds a random token; the store keys the session by the token's
// SHA-256, so neither a database copy nor a log line can replay a session.
package session

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// ErrNotFound means no live session has that ID.
var ErrNotFound = errors.New("session not found")

// Session is what the server remembers about a visitor.
type Session struct {
	ID         string // SHA-256 of the cookie token, hex
	CustomerID int64  // 0 for a guest
	CartID     string
	CSRF       string // per-session token for form posts
	CreatedAt  time.Time
	ExpiresAt  time.Time
}

// Store keeps sessions. The embedded default is SQLite; Redis comes later
// behind the same interface.
type Store interface {
	CreateSession(ctx context.Context, s Session) error
	Session(ctx context.Context, id string) (Session, error) // ErrNotFound when missing or expired
	UpdateSession(ctx context.Context, s Session) error
	DeleteSession(ctx context.Context, id string) error
}

// Manager reads and writes the session cookie.
type Manager struct {
	Store Store
	// CookieName defaults to "surge_session".
	CookieName string
	// Secure sets the cookie's Secure flag; turn it on behind HTTPS.
	Secure bool
	// TTL is how long a session lives; 0 means 30 days.
	TTL time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (m *Manager) name() string {
	if m.CookieName == "" {
		return "surge_session"
	}
	return m.CookieName
}

func (m *Manager) now() time.Time {
	if m.Now == nil {
		return time.Now()
	}
	return m.Now()
}

func (m *Manager) ttl() time.Duration {
	if m.TTL <= 0 {
		return 30 * 24 * time.Hour
	}
	return m.TTL
}

// HashToken turns a cookie token into the stored session ID.
func HashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

func randomToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("session token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// Load returns the request's session, or ErrNotFound when it has none (or
// an unknown, expired or malformed cookie).
func (m *Manager) Load(r *http.Request) (Session, error) {
	c, err := r.Cookie(m.name())
	if err != nil || len(c.Value) != 43 {
		return Session{}, ErrNotFound
	}
	s, err := m.Store.Session(r.Context(), HashToken(c.Value))
	if err != nil {
		return Session{}, err
	}
	if !s.ExpiresAt.After(m.now()) {
		return Session{}, ErrNotFound
	}
	return s, nil
}

// Start creates a new session and sets its cookie. Use it for a visitor
// without one, and at sign-in and sign-out (a fresh ID at every privilege
// change stops session fixation).
func (m *Manager) Start(w http.ResponseWriter, r *http.Request, customerID int64, cartID string) (Session, error) {
	p, err := m.Prepare(customerID, cartID)
	if err != nil {
		return Session{}, err
	}
	return m.Keep(w, r, p)
}

// Pending is a session made but not stored: its ID is known, so something
// can be bound to it, but it costs no write until Keep. A waiting room
// prepares one for each of the many visitors in line and keeps only those
// it admits.
type Pending struct {
	Session
	token string
}

// Prepare makes a new session without storing it or setting its cookie.
func (m *Manager) Prepare(customerID int64, cartID string) (Pending, error) {
	token, err := randomToken()
	if err != nil {
		return Pending{}, err
	}
	csrf, err := randomToken()
	if err != nil {
		return Pending{}, err
	}
	now := m.now()
	return Pending{Session: Session{ID: HashToken(token), CustomerID: customerID, CartID: cartID, CSRF: csrf,
		CreatedAt: now, ExpiresAt: now.Add(m.ttl())}, token: token}, nil
}

// Keep stores a prepared session and sets its cookie.
func (m *Manager) Keep(w http.ResponseWriter, r *http.Request, p Pending) (Session, error) {
	if p.token == "" {
		return Session{}, errors.New("keep session: not prepared by Prepare")
	}
	if err := m.Store.CreateSession(r.Context(), p.Session); err != nil {
		return Session{}, err
	}
	http.SetCookie(w, &http.Cookie{Name: m.name(), Value: p.token, Path: "/", Expires: p.ExpiresAt, MaxAge: int(m.ttl().Seconds()),
		HttpOnly: true, Secure: m.Secure, SameSite: http.SameSiteLaxMode})
	return p.Session, nil
}

// End deletes the session and clears the cookie.
func (m *Manager) End(w http.ResponseWriter, r *http.Request, s Session) error {
	http.SetCookie(w, &http.Cookie{Name: m.name(), Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: m.Secure, SameSite: http.SameSiteLaxMode})
	return m.Store.DeleteSession(r.Context(), s.ID)
}

// ValidCSRF reports whether token matches the session's CSRF token, in
// constant time.
func (s Session) ValidCSRF(token string) bool {
	return s.CSRF != "" && subtle.ConstantTimeCompare([]byte(s.CSRF), []byte(token)) == 1
}
