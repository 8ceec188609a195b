package storefront

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/surge-commerce/surge/internal/admission"
	"github.com/surge-commerce/surge/internal/checkout"
	"github.com/surge-commerce/surge/internal/drop"
	"github.com/surge-commerce/surge/internal/order"
	"github.com/surge-commerce/surge/internal/session"
	"github.com/surge-commerce/surge/internal/waitroom"
)

// visitorCookie names a guest in waiting rooms (accounts use their ID).
const visitorCookie = "surge_visitor"

func ticketCookie(dropID string) string { return "surge_wr_" + dropID }
func accessCookie(dropID string) string { return accessCookiePrefix + dropID }

// accessCookiePrefix starts every drop's access-token cookie.
const accessCookiePrefix = "surge_wa_"

// accessFor returns the waiting-room access token the request carries for
// a drop: the Surge-Access header (API clients) or the drop's cookie.
func accessFor(r *http.Request) func(dropID string) string {
	return func(dropID string) string {
		if h := r.Header.Get("Surge-Access"); h != "" {
			return h
		}
		if c, err := r.Cookie(accessCookie(dropID)); err == nil {
			return c.Value
		}
		return ""
	}
}

// byAccess sends requests carrying a validly signed waiting-room access
// token (header or any drop's cookie) to admitted, the rest to others.
func (s *server) byAccess(admitted, others http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h := r.Header.Get("Surge-Access"); h != "" && s.Room.SignedAccess(h) {
			admitted.ServeHTTP(w, r)
			return
		}
		for _, c := range r.Cookies() {
			if strings.HasPrefix(c.Name, accessCookiePrefix) && s.Room.SignedAccess(c.Value) {
				admitted.ServeHTTP(w, r)
				return
			}
		}
		others.ServeHTTP(w, r)
	})
}

// queueVisitor is who stands in a waiting-room line: the session an
// access token is bound to, and the waiting-room visitor.
type queueVisitor struct {
	session.Session
	visitor string
	// pending is set when the visitor had no session: Session is then a
	// prepared one, stored only once the line admits them (keepSession).
	pending *session.Pending
}

// queueIdentity returns the request's queueVisitor: the account when
// signed in (from the session, never from anything else the client
// sends), else the guest named by the signed visitor cookie, a new one
// (and its cookie) when it has none or one the waiting room did not sign.
// A visitor without a session gets a prepared one rather than a stored
// one: at a drop tens of thousands join and poll, and only the few
// admitted need a session (their access token is bound to it, and their
// cart lives in it), so the others cost no session write.
func (s *server) queueIdentity(w http.ResponseWriter, r *http.Request) (queueVisitor, error) {
	v, err := s.visitor(r)
	if err != nil {
		return queueVisitor{}, err
	}
	q := queueVisitor{Session: v.Session}
	if !v.ok {
		p, err := s.Sessions.Prepare(0, "")
		if err != nil {
			return queueVisitor{}, err
		}
		q.Session, q.pending = p.Session, &p
	}
	if q.CustomerID != 0 {
		q.visitor = waitroom.AccountVisitor(q.CustomerID)
		return q, nil
	}
	if c, err := r.Cookie(visitorCookie); err == nil {
		if q.visitor, err = s.Room.Guest(c.Value); err == nil {
			return q, nil
		}
	}
	visitor, token, err := s.Room.NewGuest()
	if err != nil {
		return queueVisitor{}, err
	}
	q.visitor = visitor
	http.SetCookie(w, &http.Cookie{Name: visitorCookie, Value: token, Path: "/", MaxAge: 365 * 24 * 3600, HttpOnly: true,
		Secure: s.Sessions.Secure, SameSite: http.SameSiteLaxMode})
	return q, nil
}

// keepSession stores the visitor's prepared session when st admits them
// (st carries an access token bound to it); otherwise it does nothing.
// Call it before the answer's headers are written: it sets the cookie.
func (s *server) keepSession(w http.ResponseWriter, r *http.Request, q *queueVisitor, st waitroom.Status) error {
	if q.pending == nil || st.AccessToken == "" {
		return nil
	}
	se, err := s.Sessions.Keep(w, r, *q.pending)
	if err != nil {
		return fmt.Errorf("start the admitted visitor's session: %w", err)
	}
	q.Session, q.pending = se, nil
	return nil
}

// setQueueCookies stores a new ticket or access token from a status.
func (s *server) setQueueCookies(w http.ResponseWriter, dropID, ticket string, st waitroom.Status) {
	if ticket == "" {
		ticket = st.Ticket
	}
	if ticket != "" {
		http.SetCookie(w, &http.Cookie{Name: ticketCookie(dropID), Value: ticket, Path: "/", MaxAge: 12 * 3600, HttpOnly: true,
			Secure: s.Sessions.Secure, SameSite: http.SameSiteLaxMode})
	}
	if st.AccessToken != "" {
		http.SetCookie(w, &http.Cookie{Name: accessCookie(dropID), Value: st.AccessToken, Path: "/", MaxAge: 3600, HttpOnly: true,
			Secure: s.Sessions.Secure, SameSite: http.SameSiteLaxMode})
	}
}

// checkDropSKU asks the drop gate whether qty of sku may go in the
// session's cart (drop.Gate.MayAdd).
func (s *server) checkDropSKU(ctx context.Context, r *http.Request, se session.Session, sku string, qty int64) error {
	_, err := s.checkDropAdd(ctx, r, se, sku, qty)
	return err
}

// checkDropAdd is checkDropSKU returning what the add takes from a drop
// (nil for a SKU no drop sells), for noteDropAdd.
func (s *server) checkDropAdd(ctx context.Context, r *http.Request, se session.Session, sku string, qty int64) (*checkout.DropPurchase, error) {
	p, err := s.DropGate.Gate(ctx, se.ID, accessFor(r), []order.Line{{SKU: sku, Quantity: qty}})
	if errors.Is(err, drop.ErrOverLimit) {
		s.noteDropLimit(ctx, r, se, sku)
	}
	return p, err
}

// checkDropRaise asks the drop gate whether the session's cart line of
// sku may be set to qty (drop.Gate.MaySet). A line not in the cart is
// the cart's to refuse.
func (s *server) checkDropRaise(ctx context.Context, r *http.Request, se session.Session, sku string, qty int64) error {
	if se.CartID == "" || qty <= 0 {
		return nil
	}
	lines, err := s.Carts.Store.CartLines(ctx, se.CartID)
	if err != nil {
		return err
	}
	for _, l := range lines {
		if l.SKU == sku {
			return s.DropGate.MaySet(ctx, se.ID, accessFor(r), sku, l.Quantity, qty)
		}
	}
	return nil
}

// joinResult answers a join or status: 200 with the status for
// sold-out and closed (the page shows them), errors otherwise.
func (s *server) queueAnswer(w http.ResponseWriter, r *http.Request, dropID, ticket string, st waitroom.Status, err error) {
	if err != nil && !errors.Is(err, waitroom.ErrSoldOut) && !errors.Is(err, waitroom.ErrClosed) {
		if d := waitroom.RetryAfter(err); d > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int((d+time.Second-1)/time.Second)))
		}
		problem(w, r, s.Logger, err)
		return
	}
	s.setQueueCookies(w, dropID, ticket, st)
	w.Header().Set("Cache-Control", "private, max-age=1")
	encode(w, http.StatusOK, st)
}

func (s *server) handleDropInfo() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, err := s.DropStore.DropByID(r.Context(), r.PathValue("id"))
		if err != nil {
			problem(w, r, s.Logger, err)
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=1")
		encode(w, http.StatusOK, s.viewDrop(r.Context(), d))
	})
}

func (s *server) handleQueueChallenge() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		noStore(w)
		q, err := s.queueIdentity(w, r)
		if err != nil {
			problem(w, r, s.Logger, err)
			return
		}
		ch, diff, err := s.Room.Challenge(r.PathValue("id"), q.visitor)
		if err != nil {
			problem(w, r, s.Logger, err)
			return
		}
		encode(w, http.StatusOK, struct {
			Challenge  string `json:"challenge"`
			Difficulty int    `json:"difficulty"`
		}{ch, diff})
	})
}

func (s *server) handleQueueJoin() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		noStore(w)
		var in struct {
			PoW string `json:"pow"`
		}
		if r.ContentLength != 0 {
			if err := decode(w, r, &in); err != nil {
				problem(w, r, s.Logger, err)
				return
			}
		}
		q, err := s.queueIdentity(w, r)
		if err != nil {
			problem(w, r, s.Logger, err)
			return
		}
		id := r.PathValue("id")
		ticket, st, err := s.Room.Join(r.Context(), waitroom.JoinRequest{Drop: id, Visitor: q.visitor, Session: q.ID,
			ClientAddr: s.clientAddr(r), PoW: in.PoW})
		if err == nil {
			err = s.keepSession(w, r, &q, st)
		}
		s.queueAnswer(w, r, id, ticket, st, err)
	})
}

func (s *server) clientAddr(r *http.Request) string {
	if s.ClientAddr != nil {
		return s.ClientAddr(r)
	}
	return admission.NewClientIP("", nil).Addr(r).String()
}

// queueStatus answers the request's status in drop id's line, keeping
// the visitor's session if it admits them.
func (s *server) queueStatus(w http.ResponseWriter, r *http.Request, id string) (waitroom.Status, error) {
	q, err := s.queueIdentity(w, r)
	if err != nil {
		return waitroom.Status{}, err
	}
	return s.queueStatusOf(w, r, id, &q)
}

// queueTicket is the ticket the request carries for drop id: its cookie,
// or the Surge-Ticket header (API clients).
func queueTicket(r *http.Request, id string) string {
	if c, err := r.Cookie(ticketCookie(id)); err == nil {
		return c.Value
	}
	return r.Header.Get("Surge-Ticket")
}

func (s *server) queueStatusOf(w http.ResponseWriter, r *http.Request, id string, q *queueVisitor) (waitroom.Status, error) {
	ticket := queueTicket(r, id)
	if ticket == "" {
		return waitroom.Status{}, fmt.Errorf("%w: join the queue first", waitroom.ErrBadTicket)
	}
	st, err := s.Room.Status(r.Context(), waitroom.StatusRequest{Drop: id, Ticket: ticket, Visitor: q.visitor, Session: q.ID})
	if err != nil {
		return st, err
	}
	return st, s.keepSession(w, r, q, st)
}

func (s *server) handleQueueStatus() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		st, err := s.queueStatus(w, r, id)
		s.queueAnswer(w, r, id, "", st, err)
	})
}

// handleQueueStream sends the status as server-sent events, each when the
// previous status said to poll again, until a final state.
//
// It stores nothing for a visitor without a session: a stream cannot set a
// cookie once it has begun, so a session kept for it would be one write
// per stream opened, by anyone holding a ticket. The first status keeps
// the session when it admits the visitor (its cookie goes out with the
// headers), as the status route does; a visitor without a session who is
// admitted later in the stream gets "admitted" without an access token,
// and fetches it (and the session) from the status route.
func (s *server) handleQueueStream() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		q, err := s.queueIdentity(w, r)
		if err != nil {
			problem(w, r, s.Logger, err)
			return
		}
		st, err := s.queueStatusOf(w, r, id, &q)
		if err != nil && !errors.Is(err, waitroom.ErrSoldOut) && !errors.Is(err, waitroom.ErrClosed) {
			problem(w, r, s.Logger, err)
			return
		}
		sessionID := q.ID
		if q.pending != nil {
			sessionID = ""
		}
		s.setQueueCookies(w, id, "", st)
		ticket := queueTicket(r, id)
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-store")
		rc := http.NewResponseController(w)
		for i := 0; i < 720; i++ { // a stream lasts at most an hour or so; the page reconnects
			if _, err := fmt.Fprintf(w, "event: status\ndata: %s\n\n", mustJSON(st)); err != nil {
				return
			}
			if rc.Flush() != nil || st.PollAfter <= 0 {
				return
			}
			select {
			case <-r.Context().Done():
				return
			case <-time.After(st.PollAfter):
			}
			if st.Ticket != "" {
				ticket = st.Ticket
			}
			st, err = s.Room.Status(r.Context(), waitroom.StatusRequest{Drop: id, Ticket: ticket, Visitor: q.visitor, Session: sessionID})
			if err != nil && !errors.Is(err, waitroom.ErrSoldOut) && !errors.Is(err, waitroom.ErrClosed) {
				return
			}
		}
	})
}

func (s *server) handleQueueLeave() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		noStore(w)
		q, err := s.queueIdentity(w, r)
		if err != nil {
			problem(w, r, s.Logger, err)
			return
		}
		if err := s.Room.Done(r.Context(), r.PathValue("id"), q.visitor); err != nil {
			problem(w, r, s.Logger, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}
