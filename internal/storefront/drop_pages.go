package storefront

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/surge-commerce/surge/internal/cart"
	"github.com/surge-commerce/surge/internal/drop"
	"github.com/surge-commerce/surge/internal/waitroom"
)

// dropItems prices a drop's SKUs for display.
func (s *server) dropItems(r *http.Request, d drop.Drop) []cart.Offer {
	skus := make([]string, len(d.Items))
	for i, it := range d.Items {
		skus[i] = it.SKU
	}
	offers, err := s.Carts.Store.Offers(r.Context(), skus)
	if err != nil {
		return nil
	}
	out := make([]cart.Offer, 0, len(skus))
	for _, sku := range skus {
		if o, ok := offers[sku]; ok {
			out = append(out, o)
		}
	}
	return out
}

// handleDropPage is the public drop page: what is dropping, when, and the
// button to join the line. It has nothing personal, so it is cached.
func (s *server) handleDropPage() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tree, _ := s.Catalog.Tree(r.Context())
		d, err := s.DropStore.DropBySlug(r.Context(), r.PathValue("slug"))
		if err != nil {
			s.pageError(w, r, tree, err)
			return
		}
		tag(w, dropTag(d.ID), tagDrops, "categories")
		v := s.showDrop(r.Context(), d, time.Now())
		s.render(w, r, http.StatusOK, "drop", tree, pageData{Description: d.Description, Canonical: "/drops/" + d.Slug, Data: struct {
			Drop    drop.Drop
			State   drop.State
			Shown   dropShown
			OpensIn string
		}{d, v.State, v, humanWait(time.Duration(d.Room.PreQueueOpens))}})
	})
}

// handleQueueJoinForm joins from the drop page without JavaScript.
func (s *server) handleQueueJoinForm() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, err := s.DropStore.DropBySlug(r.Context(), r.PathValue("slug"))
		if err != nil {
			s.formError(w, r, err)
			return
		}
		q, err := s.queueIdentity(w, r)
		if err != nil {
			s.formError(w, r, err)
			return
		}
		ticket, st, err := s.Room.Join(r.Context(), waitroom.JoinRequest{Drop: d.ID, Visitor: q.visitor, Session: q.ID,
			ClientAddr: s.clientAddr(r), PoW: r.PostFormValue("pow")})
		if err == nil {
			err = s.keepSession(w, r, &q, st)
		}
		if err != nil && !errors.Is(err, waitroom.ErrSoldOut) && !errors.Is(err, waitroom.ErrClosed) {
			if errors.Is(err, waitroom.ErrPoWRequired) {
				// The page's script solves the puzzle; without it there is
				// no way in, which is the point of the puzzle.
				redirect(w, r, "/drops/"+d.Slug+"/queue")
				return
			}
			s.formError(w, r, err)
			return
		}
		s.setQueueCookies(w, d.ID, ticket, st)
		redirect(w, r, "/drops/"+d.Slug+"/queue")
	})
}

// handleQueuePage shows where the visitor stands, refreshing itself.
func (s *server) handleQueuePage() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, err := s.DropStore.DropBySlug(r.Context(), r.PathValue("slug"))
		if err != nil {
			s.formError(w, r, err)
			return
		}
		var st waitroom.Status
		if _, err := r.Cookie(ticketCookie(d.ID)); err == nil {
			st, err = s.queueStatus(w, r, d.ID)
			switch {
			case errors.Is(err, waitroom.ErrBadTicket):
				st = waitroom.Status{} // show the join button again
			case err != nil && !errors.Is(err, waitroom.ErrSoldOut) && !errors.Is(err, waitroom.ErrClosed):
				s.formError(w, r, err)
				return
			}
			s.setQueueCookies(w, d.ID, "", st)
		}
		refresh := 0
		if st.PollAfter > 0 {
			refresh = max(1, int(st.PollAfter/time.Second))
		}
		// How far the line has moved towards this visitor since the start.
		progress := 0
		if st.Position > 0 && st.Ahead < st.Position {
			progress = int(100 * float64(st.Position-1-st.Ahead) / float64(st.Position))
		}
		spec, _ := s.Room.Spec(d.ID)
		s.personalPageRefresh(w, r, http.StatusOK, "queue", refresh, struct {
			Drop     drop.Drop
			Status   waitroom.Status
			Items    []cart.Offer
			Wait     string
			Until    string
			Progress int
			PoW      int
		}{d, st, s.dropItems(r, d), humanWait(st.EstimatedWait), humanWait(time.Duration(d.Room.AccessTTL)), progress, spec.PoWDifficulty})
	})
}

func humanWait(d time.Duration) string {
	switch {
	case d <= 0:
		return "any moment now"
	case d < time.Minute:
		return plural(int(d.Seconds()+0.5), "second")
	case d < time.Hour:
		return plural(int(d.Minutes()+0.5), "minute")
	}
	return fmt.Sprintf("%.1f hours", d.Hours())
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}
