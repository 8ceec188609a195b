package storefront

import (
	"context"
	"net/http"
	"time"

	"github.com/surge-commerce/surge/internal/drop"
)

// dropView adds what a client wants to know right now.
type dropView struct {
	drop.Drop
	State     drop.State `json:"state"`
	Available int64      `json:"available"`
}

func (s *server) viewDrop(ctx context.Context, d drop.Drop) dropView {
	n, _ := s.DropStore.Available(ctx, d.ID)
	return dropView{Drop: d, State: d.StateAt(time.Now()), Available: n}
}

func (s *server) handleAdminCreateDrop() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var d drop.Drop
		if err := decode(w, r, &d); err != nil {
			problem(w, r, s.Logger, err)
			return
		}
		d.Defaults()
		d, err := s.DropStore.CreateDrop(r.Context(), d)
		if err != nil {
			problem(w, r, s.Logger, err)
			return
		}
		if s.OnDropChange != nil {
			s.OnDropChange(d)
		}
		s.purgeDropPages(r.Context(), d)
		w.Header().Set("Location", "/api/v1/admin/drops/"+d.ID)
		encode(w, http.StatusCreated, s.viewDrop(r.Context(), d))
	})
}

func (s *server) handleAdminListDrops() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ds, err := s.DropStore.Drops(r.Context())
		if err != nil {
			problem(w, r, s.Logger, err)
			return
		}
		out := make([]dropView, 0, len(ds))
		for _, d := range ds {
			out = append(out, s.viewDrop(r.Context(), d))
		}
		encode(w, http.StatusOK, struct {
			Items []dropView `json:"items"`
		}{out})
	})
}

func (s *server) handleAdminGetDrop() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, err := s.DropStore.DropByID(r.Context(), r.PathValue("id"))
		if err != nil {
			problem(w, r, s.Logger, err)
			return
		}
		encode(w, http.StatusOK, s.viewDrop(r.Context(), d))
	})
}

func (s *server) handleAdminCloseDrop() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, err := s.DropStore.CloseDrop(r.Context(), r.PathValue("id"))
		if err != nil {
			problem(w, r, s.Logger, err)
			return
		}
		if s.OnDropChange != nil {
			s.OnDropChange(d)
		}
		s.purgeDropPages(r.Context(), d)
		encode(w, http.StatusOK, s.viewDrop(r.Context(), d))
	})
}
