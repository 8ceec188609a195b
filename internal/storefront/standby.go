package storefront

import (
	"net/http"
	"net/url"
	"strings"

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

// standbyGate holds visitors in the standby line while it is on: pages
// redirect to /queue, API calls get 503 with Retry-After. A visitor the
// line has admitted (access cookie for this session) goes through.
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
		next := r.URL.RequestURI()
		http.Redirect(w, r, "/queue?next="+url.QueryEscape(next), http.StatusSeeOther)
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
