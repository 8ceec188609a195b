package shop

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"time"

	"github.com/surge-commerce/surge/internal/drop"
)

// warmDrops watches for drops about to start and, warmBefore ahead of each
// start, fills the page cache with the drop's pages and opens the
// database's read connections, so the first second of a drop finds
// nothing cold.
func (s *Shop) warmDrops(ctx context.Context, warmBefore time.Duration, log *slog.Logger) {
	every := min(5*time.Second, max(warmBefore/4, 100*time.Millisecond))
	warmed, started := map[string]bool{}, map[string]bool{}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		ds, err := s.Store.Drops(ctx)
		if err != nil && ctx.Err() == nil {
			log.Warn("drop warm-up: list drops", "err", err)
		}
		if err == nil {
			now := time.Now()
			for _, d := range ds {
				if !started[d.ID] && !now.Before(d.StartsAt) {
					// The cached drop page still shows the countdown.
					started[d.ID] = true
					if s.Cache != nil {
						s.Cache.PurgeTags("drop:" + d.ID)
					}
				}
				if warmed[d.ID] || d.StateAt(now) == drop.StateClosed || now.Before(d.StartsAt.Add(-warmBefore)) {
					continue
				}
				warmed[d.ID] = true
				if now.Before(d.StartsAt.Add(time.Minute)) {
					s.warmDrop(ctx, d, log)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// warmDrop renders a drop's pages into the cache and opens connections.
func (s *Shop) warmDrop(ctx context.Context, d drop.Drop, log *slog.Logger) {
	start := time.Now()
	paths := []string{"/", "/drops/" + d.Slug}
	skus := make([]string, len(d.Items))
	for i, it := range d.Items {
		skus[i] = it.SKU
	}
	if offers, err := s.Store.Offers(ctx, skus); err == nil {
		for _, o := range offers {
			paths = append(paths, "/products/"+o.ProductSlug, "/api/v1/products/"+o.ProductSlug)
		}
	}
	// Through the shop's own handler, as a visitor would: the page cache in
	// it stores what it renders.
	var warmErr error
	for _, p := range paths {
		r := httptest.NewRequestWithContext(ctx, http.MethodGet, p, nil)
		w := httptest.NewRecorder()
		s.Handler.ServeHTTP(w, r)
		if w.Code != http.StatusOK && warmErr == nil {
			warmErr = fmt.Errorf("warm %s: status %d", p, w.Code)
		}
	}
	// Hold several read connections at once so the pool opens them all now
	// rather than during the rush.
	var wg sync.WaitGroup
	for range 2*runtime.GOMAXPROCS(0) + 2 {
		wg.Go(func() { _ = s.Store.Ping(ctx) })
	}
	wg.Wait()
	log.Info("drop warmed", "drop", d.ID, "starts_at", d.StartsAt, "pages", len(paths), "took", time.Since(start).Round(time.Millisecond).String(), "err", warmErr)
	s.warmedMu.Lock()
	s.warmed = append(s.warmed, d.ID)
	s.warmedMu.Unlock()
}

// Warmed lists the drops warmed so far.
func (s *Shop) Warmed() []string {
	s.warmedMu.Lock()
	defer s.warmedMu.Unlock()
	return append([]string(nil), s.warmed...)
}
