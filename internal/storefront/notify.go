package storefront

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/surge-commerce/surge/internal/admission"
	"github.com/surge-commerce/surge/internal/catalog"
	"github.com/surge-commerce/surge/internal/drop"
	"github.com/surge-commerce/surge/internal/notify"
)

// "Notify me": a visitor leaves an email for a drop. The form sits on the
// drop page, which is cached and shared, so it carries no per-session
// token: like the line's join form it is guarded by the cross-origin
// protection every unsafe request passes (see NewServer). The links in
// the mail carry tokens the shop issued; the confirmation link only shows
// a button (a mail scanner opening links must not confirm anybody), and
// the unsubscribe link takes one POST, the one-click unsubscribe of RFC
// 8058 that mail clients send themselves.

// Notify-me request limits: per client address, and per email address so
// that nobody can flood one inbox with confirmation mail.
var (
	NotifyPerClient = admission.Rate{PerSecond: 1.0 / 12, Burst: 10}  // 5 a minute, 10 at once
	NotifyPerEmail  = admission.Rate{PerSecond: 1.0 / 1200, Burst: 3} // 3 an hour
)

// NotifyLimits bound notify-me requests.
type NotifyLimits struct {
	PerClient *admission.Buckets
	PerEmail  *admission.Buckets
}

// NewNotifyLimits returns in-process limits at the default rates; a shop
// with Redis sets their Shared buckets.
func NewNotifyLimits(now func() time.Time) *NotifyLimits {
	return &NotifyLimits{
		PerClient: &admission.Buckets{Local: admission.NewRateLimiter(NotifyPerClient, notifyMaxKeys, now)},
		PerEmail:  &admission.Buckets{Local: admission.NewRateLimiter(NotifyPerEmail, notifyMaxKeys, now)},
	}
}

// notifyMaxKeys bounds the in-process buckets of each notify-me limit.
const notifyMaxKeys = 100_000

// errNotifyThrottled marks a refused notify-me request (a 429).
var errNotifyThrottled = errors.New("too many notify-me requests")

// notifyThrottled is a refused notify-me request.
type notifyThrottled struct{ wait time.Duration }

func (e notifyThrottled) Error() string {
	return "too many notify-me requests; try again in " + seconds(e.wait)
}
func (e notifyThrottled) Is(target error) bool      { return target == errNotifyThrottled }
func (e notifyThrottled) RetryAfter() time.Duration { return e.wait }
func (e notifyThrottled) PageMessage() string {
	return "Too many requests. Please wait " + seconds(e.wait) + " and try again."
}

// seconds says d in whole seconds, rounded up, at least one.
func seconds(d time.Duration) string {
	if n := retryAfterSeconds(d); n != 1 {
		return strconv.Itoa(n) + " seconds"
	}
	return "1 second"
}

// errNotifyOff answers notify-me routes in a shop assembled without it.
var errNotifyOff = errors.New("notify-me is not available in this shop")

func (s *server) notifyOff() error { return errNotifyOff }

// subscribe checks the limits, then asks the service.
func (s *server) subscribe(ctx context.Context, r *http.Request, d drop.Drop, email string) error {
	if s.Notify == nil {
		return s.notifyOff()
	}
	if ok, wait := s.NotifyLimits.PerClient.Allow(ctx, "notify-client:"+s.clientKey(r)); !ok {
		return notifyThrottled{wait}
	}
	norm, err := notify.NormalizeEmail(email)
	if err != nil {
		return catalog.FieldErrorf("email", "enter one email address, such as name@example.com, of at most %d characters", notify.MaxEmailLen)
	}
	// A digest: the shared buckets never hold addresses.
	sum := sha256.Sum256([]byte(norm))
	if ok, wait := s.NotifyLimits.PerEmail.Allow(ctx, "notify-email:"+hex.EncodeToString(sum[:16])); !ok {
		return notifyThrottled{wait}
	}
	return s.Notify.Subscribe(ctx, d, norm)
}

// notifyPage is the data of the notify page.
type notifyPage struct {
	Drop    drop.Drop
	Mode    string // form, sent, confirm, confirmed, unsubscribe, unsubscribed
	Token   string
	Email   string
	Problem string
}

func (s *server) renderNotify(w http.ResponseWriter, r *http.Request, status int, p notifyPage) {
	s.personalPage(w, r, status, "notify", p)
}

// handleNotifyPage shows the notify-me form of a drop, or after a post
// (?sent=1) the "check your inbox" note.
func (s *server) handleNotifyPage() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, err := s.DropStore.DropBySlug(r.Context(), r.PathValue("slug"))
		if err != nil {
			s.formError(w, r, err)
			return
		}
		mode := "form"
		if r.URL.Query().Get("sent") == "1" {
			mode = "sent"
		}
		s.renderNotify(w, r, http.StatusOK, notifyPage{Drop: d, Mode: mode})
	})
}

// handleNotifyForm takes the form post: on success it redirects to the
// "check your inbox" page; a problem shows the form again with it.
func (s *server) handleNotifyForm() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, err := s.DropStore.DropBySlug(r.Context(), r.PathValue("slug"))
		if err != nil {
			s.formError(w, r, err)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
		email := r.PostFormValue("email")
		if err := s.subscribe(r.Context(), r, d, email); err != nil {
			status := errorStatus(err)
			if status >= 500 {
				s.formError(w, r, err)
				return
			}
			setRetryAfter(w, err)
			if len(email) > notify.MaxEmailLen {
				email = ""
			}
			s.renderNotify(w, r, status, notifyPage{Drop: d, Mode: "form", Email: email, Problem: pageMessage(err)})
			return
		}
		redirect(w, r, "/drops/"+d.Slug+"/notify?sent=1")
	})
}

// handleNotifyAPI is the JSON equivalent: {"email": "..."} answered 202
// once the confirmation mail is sent.
func (s *server) handleNotifyAPI() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, err := s.dropByRef(r.Context(), r.PathValue("id"))
		if err != nil {
			problem(w, r, s.Logger, err)
			return
		}
		var in struct {
			Email string `json:"email"`
		}
		if err := decode(w, r, &in); err != nil {
			problem(w, r, s.Logger, err)
			return
		}
		if err := s.subscribe(r.Context(), r, d, in.Email); err != nil {
			problem(w, r, s.Logger, err)
			return
		}
		noStore(w)
		encode(w, http.StatusAccepted, map[string]string{"status": "confirmation-sent", "drop": d.ID,
			"detail": "if the address is not on the list yet, a confirmation link is on its way to it"})
	})
}

// dropByRef finds a drop by ID or slug.
func (s *server) dropByRef(ctx context.Context, ref string) (drop.Drop, error) {
	d, err := s.DropStore.DropByID(ctx, ref)
	if errors.Is(err, drop.ErrNotFound) {
		d, err = s.DropStore.DropBySlug(ctx, ref)
	}
	return d, err
}

// notifyToken reads the link's token from the query or the form.
func notifyToken(r *http.Request) string {
	t := r.URL.Query().Get("token")
	if t == "" && r.Method == http.MethodPost {
		t = r.PostFormValue("token")
	}
	return strings.TrimSpace(t)
}

// handleNotifyConfirmPage shows the confirm button of a link.
func (s *server) handleNotifyConfirmPage() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := notifyToken(r)
		if !notify.ValidToken(tok) {
			s.formError(w, r, notifyLinkError())
			return
		}
		s.renderNotify(w, r, http.StatusOK, notifyPage{Mode: "confirm", Token: tok})
	})
}

func notifyLinkError() error {
	return &linkError{"That link is incomplete or has expired. Ask for a new one on the drop's page."}
}

// linkError is a mailed link that leads nowhere (a 404), in words for
// people.
type linkError struct{ msg string }

func (e *linkError) Error() string        { return e.msg }
func (e *linkError) Is(target error) bool { return target == notify.ErrNotFound }

// handleNotifyConfirm confirms a subscription.
func (s *server) handleNotifyConfirm() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.Notify == nil {
			s.formError(w, r, s.notifyOff())
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
		sub, err := s.Notify.Confirm(r.Context(), notifyToken(r))
		if err != nil {
			if errors.Is(err, notify.ErrNotFound) {
				err = notifyLinkError()
			}
			s.formError(w, r, err)
			return
		}
		d, _ := s.DropStore.DropByID(r.Context(), sub.DropID)
		s.renderNotify(w, r, http.StatusOK, notifyPage{Drop: d, Mode: "confirmed", Email: sub.Email})
	})
}

// handleNotifyUnsubscribePage shows the unsubscribe button of a link.
func (s *server) handleNotifyUnsubscribePage() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := notifyToken(r)
		if !notify.ValidToken(tok) {
			s.formError(w, r, notifyLinkError())
			return
		}
		s.renderNotify(w, r, http.StatusOK, notifyPage{Mode: "unsubscribe", Token: tok})
	})
}

// handleNotifyUnsubscribe ends a subscription: the page's button, or a
// mail client's one-click POST (body List-Unsubscribe=One-Click, token in
// the URL), which gets a short plain answer.
func (s *server) handleNotifyUnsubscribe() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.Notify == nil {
			s.formError(w, r, s.notifyOff())
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
		oneClick := r.PostFormValue("List-Unsubscribe") == "One-Click"
		sub, err := s.Notify.Unsubscribe(r.Context(), notifyToken(r))
		if err != nil {
			if errors.Is(err, notify.ErrNotFound) {
				err = notifyLinkError()
			}
			if oneClick {
				problem(w, r, s.Logger, err)
				return
			}
			s.formError(w, r, err)
			return
		}
		if oneClick {
			noStore(w)
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Write([]byte("unsubscribed\n"))
			return
		}
		d, _ := s.DropStore.DropByID(r.Context(), sub.DropID)
		s.renderNotify(w, r, http.StatusOK, notifyPage{Drop: d, Mode: "unsubscribed", Email: sub.Email})
	})
}

// importRequest is the body of an import: addresses that already opted
// in elsewhere.
type importRequest struct {
	Emails []string `json:"emails"`
}

// handleAdminImportSubscribers adds up to notify.MaxImport addresses to a
// drop's list as confirmed subscribers (see notify.Service.Import): each
// is checked and normalized, a repeat within the request is refused, and
// an address already on the list is left as it is.
func (s *server) handleAdminImportSubscribers() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.Notify == nil {
			problem(w, r, s.Logger, s.notifyOff())
			return
		}
		var req importRequest
		if err := decode(w, r, &req); err != nil {
			problem(w, r, s.Logger, err)
			return
		}
		if len(req.Emails) == 0 || len(req.Emails) > notify.MaxImport {
			problem(w, r, s.Logger, catalog.FieldErrorf("emails", "give 1 to %d addresses (got %d); send a longer list in several requests", notify.MaxImport, len(req.Emails)))
			return
		}
		emails := make([]string, len(req.Emails))
		seen := make(map[string]int, len(req.Emails))
		for i, e := range req.Emails {
			norm, err := notify.NormalizeEmail(e)
			if err != nil {
				problem(w, r, s.Logger, catalog.FieldErrorf("emails["+strconv.Itoa(i)+"]",
					"not one plain address such as name@example.com of at most %d characters", notify.MaxEmailLen))
				return
			}
			if j, dup := seen[norm]; dup {
				problem(w, r, s.Logger, catalog.FieldErrorf("emails["+strconv.Itoa(i)+"]", "the same address as emails[%d]", j))
				return
			}
			seen[norm] = i
			emails[i] = norm
		}
		d, err := s.DropStore.DropByID(r.Context(), r.PathValue("id"))
		if err != nil {
			problem(w, r, s.Logger, err)
			return
		}
		res, err := s.Notify.Import(r.Context(), d, emails)
		if err != nil {
			problem(w, r, s.Logger, err)
			return
		}
		noStore(w)
		encode(w, http.StatusOK, res)
	})
}
