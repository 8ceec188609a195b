package storefront

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/surge-commerce/surge/internal/checkout"
	"github.com/surge-commerce/surge/internal/customer"
	"github.com/surge-commerce/surge/internal/drop"
	"github.com/surge-commerce/surge/internal/dropreport"
	"github.com/surge-commerce/surge/internal/session"
	"github.com/surge-commerce/surge/internal/waitroom"
)

// noteDropAdd records an admitted buyer's add of a drop SKU (p is what
// the gate let through; nil for other SKUs), or the limit it hit.
func (s *server) noteDropAdd(p *checkout.DropPurchase, qty int64, err error) {
	if p == nil || s.DropEvents == nil {
		return
	}
	switch {
	case err == nil:
		s.DropEvents(dropreport.Event{Drop: p.DropID, Kind: dropreport.KindAdded, Visitor: p.Buyer, Quantity: qty, At: time.Now()})
	case errors.Is(err, drop.ErrOverLimit):
		s.DropEvents(dropreport.Event{Drop: p.DropID, Kind: dropreport.KindLimit, Visitor: p.Buyer, At: time.Now()})
	}
}

// noteDropLimit records a buyer asking for more of sku than its drop's
// per-customer limit in one go (the gate refused it before naming the
// buyer's place, so the buyer is the session's waiting-room visitor).
func (s *server) noteDropLimit(ctx context.Context, r *http.Request, se session.Session, sku string) {
	if s.DropEvents == nil {
		return
	}
	finder, ok := s.DropStore.(skuDrops)
	if !ok {
		return
	}
	d, found, err := finder.OpenDropForSKUs(ctx, []string{sku})
	if err != nil || !found {
		return
	}
	visitor := ""
	if se.CustomerID != 0 {
		visitor = waitroom.AccountVisitor(se.CustomerID)
	} else if c, err := r.Cookie(visitorCookie); err == nil {
		visitor, _ = s.Room.Guest(c.Value)
	}
	s.DropEvents(dropreport.Event{Drop: d.ID, Kind: dropreport.KindLimit, Visitor: visitor, At: time.Now()})
}

// errNoReport answers the report routes of a shop that cannot make one.
var errNoReport = fmt.Errorf("%w: drop reports are not available in this process", errUnavailable)

// errUnavailable marks a passing inability: 503.
var errUnavailable = notAvailable{}

type notAvailable struct{}

func (notAvailable) Error() string     { return "unavailable" }
func (notAvailable) Unavailable() bool { return true }

// dropReport finds the drop named by the path's id (an ID or a slug) and
// makes its report.
func (s *server) dropReport(r *http.Request) (dropreport.Report, error) {
	if s.DropReport == nil {
		return dropreport.Report{}, errNoReport
	}
	ref := r.PathValue("id")
	d, err := s.DropStore.DropByID(r.Context(), ref)
	if errors.Is(err, drop.ErrNotFound) {
		d, err = s.DropStore.DropBySlug(r.Context(), ref)
	}
	if err != nil {
		return dropreport.Report{}, err
	}
	return s.DropReport(r.Context(), d)
}

// handleAdminDropReport answers a drop's report as JSON.
func (s *server) handleAdminDropReport() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rep, err := s.dropReport(r)
		if err != nil {
			problem(w, r, s.Logger, err)
			return
		}
		encode(w, http.StatusOK, rep)
	})
}

// adminCookie holds a browser's admin sign-in: an expiry and its MAC
// under the admin token, so it proves the token was given without being
// the token, and changing the token signs every browser out.
const adminCookie = "surge_admin"

const adminCookieTTL = 8 * time.Hour

func (s *server) adminMAC(expires string) string {
	m := hmac.New(sha256.New, []byte(s.AdminToken))
	m.Write([]byte("surge admin page\x00" + expires))
	return hex.EncodeToString(m.Sum(nil))
}

// adminPageAllowed reports whether the request carries the admin token
// (header) or a valid, unexpired admin sign-in cookie.
func (s *server) adminPageAllowed(r *http.Request) bool {
	if s.AdminToken == "" {
		return false
	}
	if got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return subtle.ConstantTimeCompare([]byte(got), []byte(s.AdminToken)) == 1
	}
	c, err := r.Cookie(adminCookie)
	if err != nil {
		return false
	}
	exp, mac, ok := strings.Cut(c.Value, ".")
	if !ok {
		return false
	}
	unix, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || time.Now().Unix() >= unix {
		return false
	}
	return hmac.Equal([]byte(mac), []byte(s.adminMAC(exp)))
}

// handleAdminDropReportPage shows a drop's report to an operator signed
// in with the admin token; others are sent to the sign-in form.
func (s *server) handleAdminDropReportPage() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		noStore(w)
		if !s.adminPageAllowed(r) {
			redirect(w, r, "/admin/signin?next="+url.QueryEscape(r.URL.Path))
			return
		}
		rep, err := s.dropReport(r)
		if err != nil {
			s.formError(w, r, err)
			return
		}
		tree, _ := s.Catalog.Tree(r.Context())
		s.render(w, r, http.StatusOK, "drop-report", tree, pageData{Data: reportView(rep)})
	})
}

// adminNext keeps a sign-in's destination to the admin pages.
func adminNext(next string) string {
	if !strings.HasPrefix(next, "/admin/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return "/admin/drops"
	}
	return next
}

func (s *server) handleAdminSignInPage() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		noStore(w)
		tree, _ := s.Catalog.Tree(r.Context())
		s.render(w, r, http.StatusOK, "admin-signin", tree, pageData{Data: struct{ Next, Problem string }{adminNext(r.URL.Query().Get("next")), ""}})
	})
}

func (s *server) handleAdminSignIn() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		noStore(w)
		next := adminNext(r.PostFormValue("next"))
		token := r.PostFormValue("token")
		// The sign-in shares the password sign-in's per-address limit.
		if l := s.Customers.Limits; l != nil {
			if ok, wait := l.PerClient.Allow(r.Context(), "admin:"+s.clientAddr(r)); !ok {
				s.formError(w, r, customer.Throttled{Wait: wait})
				return
			}
		}
		if s.AdminToken == "" || subtle.ConstantTimeCompare([]byte(token), []byte(s.AdminToken)) != 1 {
			tree, _ := s.Catalog.Tree(r.Context())
			s.render(w, r, http.StatusUnauthorized, "admin-signin", tree, pageData{Data: struct{ Next, Problem string }{next,
				"That is not the admin token. It is in the data directory's admin-token file of a demo shop, or wherever the shop's operator keeps it."}})
			return
		}
		exp := strconv.FormatInt(time.Now().Add(adminCookieTTL).Unix(), 10)
		http.SetCookie(w, &http.Cookie{Name: adminCookie, Value: exp + "." + s.adminMAC(exp), Path: "/admin/", MaxAge: int(adminCookieTTL / time.Second),
			HttpOnly: true, Secure: s.Sessions.Secure, SameSite: http.SameSiteStrictMode})
		redirect(w, r, next)
	})
}

// handleAdminDropsPage lists the drops, each linking to its report.
func (s *server) handleAdminDropsPage() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		noStore(w)
		if !s.adminPageAllowed(r) {
			redirect(w, r, "/admin/signin?next="+url.QueryEscape(r.URL.Path))
			return
		}
		ds, err := s.DropStore.Drops(r.Context())
		if err != nil {
			s.formError(w, r, err)
			return
		}
		type row struct {
			drop.Drop
			State  drop.State
			Starts string
		}
		rows := make([]row, len(ds))
		now := time.Now()
		for i, d := range ds {
			rows[i] = row{d, d.StateAt(now), dropClock(d.StartsAt)}
		}
		tree, _ := s.Catalog.Tree(r.Context())
		s.render(w, r, http.StatusOK, "admin-drops", tree, pageData{Data: rows})
	})
}

// reportRow is one line of a report table: a figure and what it means.
type reportRow struct {
	Label, Value, Note string
}

// reportShown is a report as its page shows it.
type reportShown struct {
	Report  dropreport.Report
	Starts  string
	Funnel  []reportRow
	Timing  []reportRow
	Refused []reportRow
	Limit   []reportRow
}

// ReportRows gives a report's figures as rows of label, value and note,
// in the order the admin page and `surge drop report` show them.
func ReportRows(rep dropreport.Report) (funnel, timing, refused, limit [][3]string) {
	v := reportView(rep)
	flat := func(rs []reportRow) [][3]string {
		out := make([][3]string, len(rs))
		for i, r := range rs {
			out[i] = [3]string{r.Label, r.Value, r.Note}
		}
		return out
	}
	return flat(v.Funnel), flat(v.Timing), flat(v.Refused), flat(v.Limit)
}

func reportView(rep dropreport.Report) reportShown {
	n := func(v int64) string { return strconv.FormatInt(v, 10) }
	secs := func(s *dropreport.Seconds) string {
		if s == nil {
			return "–"
		}
		return humanDuration(s.Duration())
	}
	f := rep.Funnel
	notified, notifiedNote := "not tracked", "no reminder mail counts for this shop"
	if f.Notified != nil {
		notified, notifiedNote = n(*f.Notified), "reminders sent"
	}
	lineNote := "from the waiting room's own counters"
	if rep.LineAt == nil {
		lineNote = "not counted: the line's counters were never copied"
	}
	v := reportShown{Report: rep, Starts: dropClock(rep.Drop.StartsAt)}
	v.Funnel = []reportRow{
		{"Notified", notified, notifiedNote},
		{"Joined before the start", n(f.JoinedBeforeStart), lineNote},
		{"Joined after the start", n(f.JoinedAfterStart), "places handed out after the start"},
		{"Admitted", n(f.Admitted), "had their turn"},
		{"No-shows", n(f.NoShows), "admitted, did not come within the no-show window"},
		{"Added to cart", n(f.Added), "buyers who put the drop in their cart"},
		{"Bought", n(f.Bought), fmt.Sprintf("buyers; %d orders, %d of %d units", rep.Orders, rep.UnitsSold, rep.Drop.Allocated)},
		{"Told sold out", n(f.ToldSoldOut), "people in line told the stock was gone"},
	}
	soldOut := "not sold out"
	if rep.SoldOutAfter != nil {
		soldOut = humanDuration(rep.SoldOutAfter.Duration())
	}
	v.Timing = []reportRow{
		{"Time in line, median", secs(rep.TimeInLine.P50), fmt.Sprintf("over %d admitted visitors", rep.TimeInLine.Samples)},
		{"Time in line, p99", secs(rep.TimeInLine.P99), ""},
		{"Time to sell out", soldOut, "from the start to the order that took the last unit"},
		{"Orders per minute", strconv.FormatFloat(rep.OrdersPerMinute, 'f', 1, 64), "from the start to the sell-out (or the last order)"},
		{"Busiest minute", n(rep.PeakOrdersPerMinute), "orders"},
	}
	words := map[string]string{
		dropreport.ReasonRateLimit:   "Rate limit",
		dropreport.ReasonProofOfWork: "Proof of work",
		dropreport.ReasonBadToken:    "Bad ticket or token",
	}
	for _, rf := range rep.Refused {
		v.Refused = append(v.Refused, reportRow{words[rf.Reason], n(rf.Requests), fmt.Sprintf("requests, from %d visitors", rf.Visitors)})
	}
	v.Limit = []reportRow{{"Buyers held back by the limit", n(rep.LimitHits), fmt.Sprintf("%d requests over %d per customer", rep.LimitRequests, rep.Drop.Limit)}}
	if rep.LostEvents > 0 {
		v.Limit = append(v.Limit, reportRow{"Events not recorded", n(rep.LostEvents), "the counts from events are lower bounds"})
	}
	return v
}

// humanDuration says a duration the way a person would: "42 s",
// "3 min 5 s", "1 h 20 min".
func humanDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	case d < time.Minute:
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + " s"
	case d < time.Hour:
		return fmt.Sprintf("%d min %d s", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%d h %d min", int(d.Hours()), int(d.Minutes())%60)
}
