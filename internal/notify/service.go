package notify

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/surge-commerce/surge/internal/drop"
	"github.com/surge-commerce/surge/internal/mail"
)

// Mailer sends one message.
type Mailer interface {
	Send(ctx context.Context, m mail.Message) error
}

// Service takes "notify me" requests, confirms and ends subscriptions.
type Service struct {
	Store Store
	Mail  Mailer
	// ShopName signs the mail; PublicURL (https://shop.example.com) is
	// where its links point.
	ShopName  string
	PublicURL string
	// ConfirmTTL is how long a confirmation link works (default 7 days).
	ConfirmTTL time.Duration
	// MailTimeout bounds sending the confirmation (default 10s).
	MailTimeout time.Duration
	Now         func() time.Time
}

// ErrMailUnavailable means the confirmation could not be sent; the request
// was recorded and asking again sends a new link.
type ErrMailUnavailable struct{ Err error }

func (e *ErrMailUnavailable) Error() string {
	return "the confirmation mail could not be sent right now; try again in a moment"
}

func (e *ErrMailUnavailable) Unwrap() error { return e.Err }

// Unavailable marks the error as a dependency being down (a 503).
func (e *ErrMailUnavailable) Unavailable() bool { return true }

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Service) confirmTTL() time.Duration {
	if s.ConfirmTTL > 0 {
		return s.ConfirmTTL
	}
	return 7 * 24 * time.Hour
}

// Subscribe records email for d and mails it a confirmation link. The
// answer is the same whether the address was new, pending or already
// confirmed (a confirmed one is not mailed again), so the form does not
// tell anyone who is on the list.
func (s *Service) Subscribe(ctx context.Context, d drop.Drop, email string) error {
	email, err := NormalizeEmail(email)
	if err != nil {
		return err
	}
	if d.StateAt(s.now()) == drop.StateClosed {
		return fmt.Errorf("%w: %s has ended", ErrNotOpen, d.Name)
	}
	token := NewToken()
	sub, err := s.Store.SaveSubscription(ctx, d.ID, email, HashToken(token), NewToken())
	if err != nil {
		return err
	}
	if sub.State == StateConfirmed {
		return nil
	}
	timeout := s.MailTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	mctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	confirm := s.PublicURL + "/notify/confirm?token=" + url.QueryEscape(token)
	unsub := UnsubscribeURL(s.PublicURL, sub.UnsubscribeToken)
	text := fmt.Sprintf(`Hello,

someone (we hope you) asked %s to tell this address when %q opens.

To confirm, open this link (it works for %d days):
%s

If it was not you, ignore this mail: you will hear nothing more from us.
To stop any mail about this drop: %s

%s
`, s.ShopName, d.Name, int(s.confirmTTL().Hours()/24), confirm, unsub, s.ShopName)
	m := mail.Message{To: email, Subject: "Confirm: tell me when " + d.Name + " opens", Text: text}
	if s.PublicURL != "" {
		// The header needs an absolute URL; a shop without a public URL
		// (an embedded test shop) has only relative links.
		m.Unsubscribe = unsub
	}
	if err := s.Mail.Send(mctx, m); err != nil {
		if errors.Is(err, mail.ErrInvalidMessage) {
			return fmt.Errorf("notify: confirmation mail: %w", err)
		}
		return &ErrMailUnavailable{Err: err}
	}
	return nil
}

// ImportResult is what an import did.
type ImportResult struct {
	Added    int `json:"added"`    // new confirmed subscriptions
	Existing int `json:"existing"` // addresses already on the list, left as they were
}

// Import adds emails (normalized with NormalizeEmail, none repeated, at
// most MaxImport) to d's list as confirmed subscriptions, without mailing
// them: the operator vouches that each already opted in, on another
// list or another shop. It exists to move such a list to Surge, and to
// rehearse a drop's reminder with its real number of recipients (see
// docs/rehearsals.md). An address already on the list keeps its state,
// so an import never brings back someone who unsubscribed.
func (s *Service) Import(ctx context.Context, d drop.Drop, emails []string) (ImportResult, error) {
	if len(emails) == 0 || len(emails) > MaxImport {
		return ImportResult{}, fmt.Errorf("%w: emails: give 1 to %d addresses", ErrInvalid, MaxImport)
	}
	if d.StateAt(s.now()) == drop.StateClosed {
		return ImportResult{}, fmt.Errorf("%w: %s has ended", ErrNotOpen, d.Name)
	}
	subs := make([]Import, len(emails))
	seen := make(map[string]bool, len(emails))
	for i, e := range emails {
		norm, err := NormalizeEmail(e)
		if err != nil || norm != e || seen[e] {
			return ImportResult{}, fmt.Errorf("%w: emails[%d]: not a normalized address, or a repeat", ErrInvalid, i)
		}
		seen[e] = true
		subs[i] = Import{Email: e, UnsubscribeToken: NewToken()}
	}
	n, err := s.Store.ImportSubscribers(ctx, d.ID, subs)
	if err != nil {
		return ImportResult{}, fmt.Errorf("import subscribers: %w", err)
	}
	return ImportResult{Added: n, Existing: len(emails) - n}, nil
}

// Confirm confirms the subscription of a confirmation link.
func (s *Service) Confirm(ctx context.Context, token string) (Subscription, error) {
	if !ValidToken(token) {
		return Subscription{}, fmt.Errorf("%w: the link is incomplete or expired", ErrNotFound)
	}
	sub, err := s.Store.ConfirmSubscription(ctx, HashToken(token), s.now().Add(-s.confirmTTL()))
	if err != nil {
		return Subscription{}, fmt.Errorf("the link is unknown or expired: %w", err)
	}
	return sub, nil
}

// Unsubscribe ends the subscription of an unsubscribe link.
func (s *Service) Unsubscribe(ctx context.Context, token string) (Subscription, error) {
	if !ValidToken(token) {
		return Subscription{}, fmt.Errorf("%w: the link is incomplete", ErrNotFound)
	}
	sub, err := s.Store.Unsubscribe(ctx, token)
	if err != nil {
		return Subscription{}, fmt.Errorf("the link is unknown: %w", err)
	}
	return sub, nil
}

// UnsubscribeURL is the one-click unsubscribe link of token.
func UnsubscribeURL(publicURL, token string) string {
	return publicURL + "/notify/unsubscribe?token=" + url.QueryEscape(token)
}
