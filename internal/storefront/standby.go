package storefront

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/surge-commerce/surge/internal/session"
	"github.com/surge-commerce/surge/internal/waitroom"
)

// StandbyExempt lists the path prefixes the standby line never holds
// back: the line itself, drops (which have their own), assets, the admin
// API and payment webhooks.
func StandbyExempt() []string {
	return []string{"/queue", "/drops/", "/api/v1/drops/", "/api/v1/admin/", "/api/v1/payments/", "/static/", "/favicon.ico", "/robots.txt"}
}

// trackLoad counts every request on the standby switch (Begin and End),
// whose load turns the line on and off.
func trackLoad(sb *waitroom.Standby, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := sb.Begin()
		defer sb.End(start)
		next.ServeHTTP(w, r)
	})
}

// standbyShopping is how long before the standby line turned on a cart
// may have been started for its shopper to count as shopping already:
// as long as the line lets an admitted visitor shop.
const standbyShopping = 30 * time.Minute

// shoppingBeforeLine reports whether the visitor of se was already
// shopping when the standby line turned on (at since): their session,
// with a cart, began within standbyShopping before. The line is for
// visitors arriving in the spike; cutting off someone on their way to
// paying (a checkout form, or an app's API calls) would lose the sale
// the line is there to save. A returning visitor with an older cart
// waits like anyone else.
func shoppingBeforeLine(se session.Session, since time.Time) bool {
	return !since.IsZero() && se.CartID != "" && se.CreatedAt.Before(since) && !se.CreatedAt.Before(since.Add(-standbyShopping))
}

// standbyGate holds visitors in the standby line while it is on: pages
// redirect to /queue, API calls get 503 with Retry-After. A visitor the
// line has admitted (access cookie for this session), or one already
// shopping when it turned on, goes through.
func (s *server) standbyGate(next http.Handler) http.Handler {
	if s.Standby == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.Standby.Active() || !s.Standby.Protects(r.URL.Path) {
			next.ServeHTTP(w, r)
			return
		}
		if v, err := s.visitor(r); err == nil && v.ok {
			if shoppingBeforeLine(v.Session, s.Standby.Since()) {
				next.ServeHTTP(w, r)
				return
			}
			if _, err := s.Room.VerifyAccess(r.Context(), accessFor(r)(waitroom.StandbyDrop), waitroom.StandbyDrop, v.ID); err == nil {
				next.ServeHTTP(w, r)
				return
			}
		}
		w.Header().Set("Cache-Control", "no-store")
		if strings.HasPrefix(r.URL.Path, "/api/") {
			w.Header().Set("Retry-After", "5")
			writeProblem(w, Problem{Type: ProblemType(kindWaitingLine), Title: "Service Unavailable", Status: http.StatusServiceUnavailable,
				Detail:   "the shop is very busy and has a waiting line: open /queue in a browser, or retry after the time in Retry-After",
				Instance: r.URL.Path})
			return
		}
		http.Redirect(w, r, "/queue?next="+url.QueryEscape(heldReturn(r)), http.StatusSeeOther)
	})
}

// heldReturn is where the line sends a held visitor once admitted: the
// page they asked for, or, for a form post (which a redirect cannot
// carry), the page of the form on this shop, where they send it again.
func heldReturn(r *http.Request) string {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return r.URL.RequestURI()
	}
	ref, err := url.Parse(r.Referer())
	if err != nil || ref.Host != r.Host {
		return "/"
	}
	return localPath(ref.RequestURI(), "/")
}

// errStandbyOff answers the standby switch of a shop without the line.
var errStandbyOff = errors.New("this shop has no standby line: start surge serve with --standby")

// standbyState is the standby line's switch as the admin API shows it.
type standbyState struct {
	Mode     waitroom.StandbyMode `json:"mode"`
	On       bool                 `json:"on"`
	Since    *time.Time           `json:"since,omitempty"`
	Episodes uint64               `json:"episodes"`
}

// handleAdminStandby shows (GET) or sets (PUT {"mode": "on"|"off"|"auto"})
// the standby line's switch: an operator who knows the spike is coming
// (an ad at 20:15) turns the line on before it, or holds it off.
func (s *server) handleAdminStandby() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.Standby == nil {
			problem(w, r, s.Logger, errStandbyOff)
			return
		}
		if r.Method == http.MethodPut {
			var in struct {
				Mode waitroom.StandbyMode `json:"mode"`
			}
			if err := decode(w, r, &in); err != nil {
				problem(w, r, s.Logger, err)
				return
			}
			switch in.Mode {
			case waitroom.StandbyAuto, waitroom.StandbyOn, waitroom.StandbyOff:
			default:
				problem(w, r, s.Logger, fmt.Errorf("%w: mode %.40q: want auto, on or off", errBadBody, in.Mode))
				return
			}
			if err := s.Standby.SetMode(in.Mode); err != nil {
				problem(w, r, s.Logger, err)
				return
			}
			s.Logger.Warn("standby line switched by hand", "mode", string(in.Mode), "on", s.Standby.Active())
		}
		st := standbyState{Mode: s.Standby.Mode(), On: s.Standby.Active(), Episodes: s.Standby.Episode()}
		if since := s.Standby.Since(); !since.IsZero() {
			st.Since = &since
		}
		noStore(w)
		encode(w, http.StatusOK, st)
	})
}

// handleStandbyPage is the standby line: it joins the visitor, shows
// where they stand, and sends them on when admitted or when the line
// has gone.
func (s *server) handleStandbyPage() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next := localPath(r.URL.Query().Get("next"), "/")
		if s.Standby == nil || !s.Standby.Active() {
			redirect(w, r, next)
			return
		}
		q, err := s.queueIdentity(w, r)
		if err != nil {
			s.formError(w, r, err)
			return
		}
		var st waitroom.Status
		ticket := ""
		if c, err := r.Cookie(ticketCookie(waitroom.StandbyDrop)); err == nil {
			ticket = c.Value
		}
		if ticket != "" {
			st, err = s.Room.Status(r.Context(), waitroom.StatusRequest{Drop: waitroom.StandbyDrop, Ticket: ticket, Visitor: q.visitor, Session: q.ID})
		}
		if ticket == "" || err != nil {
			ticket, st, err = s.Room.Join(r.Context(), waitroom.JoinRequest{Drop: waitroom.StandbyDrop, Visitor: q.visitor, Session: q.ID, ClientAddr: s.clientAddr(r)})
			if err != nil {
				s.formError(w, r, err)
				return
			}
		}
		if err := s.keepSession(w, r, &q, st); err != nil {
			s.formError(w, r, err)
			return
		}
		s.setQueueCookies(w, waitroom.StandbyDrop, ticket, st)
		if st.State == waitroom.StateAdmitted {
			redirect(w, r, next)
			return
		}
		refresh := 5
		if st.PollAfter > 0 {
			refresh = max(1, int(st.PollAfter.Seconds()))
		}
		s.personalPageRefresh(w, r, http.StatusOK, "standby", refresh, struct {
			Status waitroom.Status
			Wait   string
		}{st, humanWait(st.EstimatedWait)})
	})
}
