package storefront

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/surge-commerce/surge/internal/catalog"
	"github.com/surge-commerce/surge/internal/drop"
	"github.com/surge-commerce/surge/internal/money"
)

// Page-cache tags of the drop pages: the index, and each drop's page
// (which also tags the product pages of its SKUs).
const tagDrops = "drops"

func dropTag(id string) string { return "drop:" + id }

// dropClock is how a drop's start reads on a page: the absolute time in
// the shop's words ("Friday 4 December, 18:00 UTC"), never a raw
// timestamp. Pages are cached and shared by every visitor, so they hold
// no relative time; the page script adds the countdown and the
// visitor's local time.
func dropClock(t time.Time) string {
	return t.UTC().Format("Monday 2 January, 15:04 MST")
}

// dropShown is a drop as its pages show it.
type dropShown struct {
	drop.Drop
	State drop.State
	// SoldOut is set when a live drop has nothing left.
	SoldOut bool
	// Left is the units not yet sold nor held, while live.
	Left     int64
	Total    int64
	Starts   string
	Products []dropProduct
}

// dropProduct is one product of a drop with the sizes it drops in.
type dropProduct struct {
	Slug   string
	Name   string
	Images []catalog.Image
	Price  string // "€120.00", or "€95.00 – €120.00" when sizes differ
	Sizes  []dropSize
}

type dropSize struct {
	SKU     string
	Title   string
	SoldOut bool
}

// showDrop gathers what the drop pages show of d: its products with
// their pictures, price and sizes, and, while it is live, the units left.
func (s *server) showDrop(ctx context.Context, d drop.Drop, now time.Time) dropShown {
	v := dropShown{Drop: d, State: d.StateAt(now), Starts: dropClock(d.StartsAt)}
	skus := make([]string, len(d.Items))
	for i, it := range d.Items {
		skus[i] = it.SKU
		v.Total += it.Allocated
	}
	if v.State == drop.StateLive {
		if n, err := s.DropStore.Available(ctx, d.ID); err == nil {
			v.Left = max(0, n)
			v.SoldOut = n <= 0
		}
	}
	offers, err := s.Carts.Store.Offers(ctx, skus)
	if err != nil {
		return v
	}
	type prices struct{ lo, hi money.Money }
	byProduct := map[string]int{}
	var ranges []prices
	for _, sku := range skus {
		o, ok := offers[sku]
		if !ok {
			continue
		}
		i, seen := byProduct[o.ProductSlug]
		if !seen {
			p := dropProduct{Slug: o.ProductSlug, Name: o.ProductName}
			if full, err := s.Catalog.Product(ctx, o.ProductSlug); err == nil {
				p.Images = full.Images
			}
			i = len(v.Products)
			byProduct[o.ProductSlug] = i
			v.Products = append(v.Products, p)
			ranges = append(ranges, prices{o.Price, o.Price})
		}
		title := o.VariantTitle
		if title == "" {
			title = "One size"
		}
		v.Products[i].Sizes = append(v.Products[i].Sizes, dropSize{SKU: sku, Title: title, SoldOut: v.State == drop.StateLive && o.Available <= 0})
		if o.Price.Amount < ranges[i].lo.Amount {
			ranges[i].lo = o.Price
		}
		if o.Price.Amount > ranges[i].hi.Amount {
			ranges[i].hi = o.Price
		}
	}
	for i := range v.Products {
		v.Products[i].Price = ranges[i].lo.String()
		if ranges[i].hi.Amount != ranges[i].lo.Amount {
			v.Products[i].Price += " – " + ranges[i].hi.String()
		}
	}
	return v
}

// handleDropsIndex lists the drops: live now, coming up, and sold out or
// ended. It has nothing personal, so it is cached; a drop's creation,
// closing, start and stock purge it.
func (s *server) handleDropsIndex() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tree, _ := s.Catalog.Tree(r.Context())
		ds, err := s.DropStore.Drops(r.Context())
		if err != nil {
			s.pageError(w, r, tree, err)
			return
		}
		now := time.Now()
		var live, upcoming, past []dropShown
		tags := []string{tagDrops, catalog.TagCategories}
		for _, d := range ds {
			tags = append(tags, dropTag(d.ID))
			v := s.showDrop(r.Context(), d, now)
			switch {
			case v.State == drop.StateScheduled:
				upcoming = append(upcoming, v)
			case v.State == drop.StateLive && !v.SoldOut:
				live = append(live, v)
			default:
				past = append(past, v)
			}
		}
		// Soonest first; the most recent past drops first, a page's worth.
		slices.SortFunc(upcoming, func(a, b dropShown) int { return a.StartsAt.Compare(b.StartsAt) })
		slices.SortFunc(live, func(a, b dropShown) int { return a.StartsAt.Compare(b.StartsAt) })
		slices.SortFunc(past, func(a, b dropShown) int { return b.StartsAt.Compare(a.StartsAt) })
		if len(past) > 12 {
			past = past[:12]
		}
		tag(w, tags...)
		s.render(w, r, http.StatusOK, "drops", tree, pageData{
			Description: "Limited drops: what is on sale now, what is coming, and what has sold out.",
			Canonical:   "/drops",
			Data: struct {
				Live, Upcoming, Past []dropShown
			}{live, upcoming, past},
		})
	})
}

// productDrop is what a product page says of a drop selling its SKUs.
type productDrop struct {
	Slug   string
	Name   string
	State  drop.State
	Starts string
	At     time.Time
}

// skuDrops finds the open drop selling any of skus, if one does.
type skuDrops interface {
	OpenDropForSKUs(ctx context.Context, skus []string) (drop.Drop, bool, error)
}

// productDropOf returns the drop selling p's variants, if one is open:
// the product page then sends buyers to the line instead of the cart.
func (s *server) productDropOf(ctx context.Context, p catalog.Product) (*productDrop, string) {
	finder, ok := s.DropStore.(skuDrops)
	if !ok || len(p.Variants) == 0 {
		return nil, ""
	}
	skus := make([]string, len(p.Variants))
	for i, v := range p.Variants {
		skus[i] = v.SKU
	}
	d, found, err := finder.OpenDropForSKUs(ctx, skus)
	if err != nil || !found {
		return nil, ""
	}
	st := d.StateAt(time.Now())
	if st == drop.StateClosed {
		return nil, ""
	}
	return &productDrop{Slug: d.Slug, Name: d.Name, State: st, Starts: dropClock(d.StartsAt), At: d.StartsAt}, dropTag(d.ID)
}

// dropRefusal is a drop SKU refused outside the line, in the shop's
// words: what the drop is, when it starts, and that the line is the way
// in. It wraps the refusal (ErrNoAccess), which sets the status.
type dropRefusal struct {
	err   error
	item  string // the product's name, or "This item"
	drop  drop.Drop
	state drop.State
}

func (e *dropRefusal) Unwrap() error { return e.err }

func (e *dropRefusal) Error() string {
	switch e.state {
	case drop.StateScheduled:
		return fmt.Sprintf("%s is part of the %s drop, which starts %s. Join the line on the drop's page to buy it.",
			e.item, e.drop.Name, dropClock(e.drop.StartsAt))
	case drop.StateClosed:
		return fmt.Sprintf("%s was part of the %s drop, which has ended.", e.item, e.drop.Name)
	}
	return fmt.Sprintf("%s is part of the %s drop, which is on sale now through its line. Join the line on the drop's page; when your turn comes you can add it to your cart.",
		e.item, e.drop.Name)
}

// link is the drop's page.
func (e *dropRefusal) link() string { return "/drops/" + e.drop.Slug }

// explainDropRefusal turns a drop SKU refused for want of a place in the
// line (drop.ErrNoAccess) into a dropRefusal naming the drop; any other
// error is returned as it is.
func (s *server) explainDropRefusal(ctx context.Context, sku string, err error) error {
	if !errors.Is(err, drop.ErrNoAccess) {
		return err
	}
	finder, ok := s.DropStore.(skuDrops)
	if !ok {
		return err
	}
	d, found, ferr := finder.OpenDropForSKUs(ctx, []string{sku})
	if ferr != nil || !found {
		return err
	}
	item := "This item"
	if offers, oerr := s.Carts.Store.Offers(ctx, []string{sku}); oerr == nil {
		if o, ok := offers[sku]; ok {
			item = o.ProductName
			if o.VariantTitle != "" {
				item += " (" + o.VariantTitle + ")"
			}
		}
	}
	return &dropRefusal{err: err, item: item, drop: d, state: d.StateAt(time.Now())}
}

// purgeDropPages empties the cached pages that show drop d: its page,
// the drops index, and the pages of the products it sells (a product
// page says "drops Friday" instead of "in stock").
func (s *server) purgeDropPages(ctx context.Context, d drop.Drop) {
	if s.PurgeCache == nil {
		return
	}
	tags := []string{dropTag(d.ID), tagDrops}
	skus := make([]string, len(d.Items))
	for i, it := range d.Items {
		skus[i] = it.SKU
	}
	if offers, err := s.Carts.Store.Offers(ctx, skus); err == nil {
		seen := map[string]bool{}
		for _, o := range offers {
			if seen[o.ProductSlug] {
				continue
			}
			seen[o.ProductSlug] = true
			if p, err := s.Catalog.Product(ctx, o.ProductSlug); err == nil {
				tags = append(tags, catalog.ProductTag(p.ID))
			}
		}
	}
	s.PurgeCache(false, tags...)
}

// cartDropProblem is the cart page's sentence, and the drop's page, for
// an add refused outside a drop's line (?problem=no-access&drop=slug):
// the words are the shop's, from its own record of the drop, so a link
// cannot make the page say anything else. Empty when the URL names no
// drop the shop has.
func (s *server) cartDropProblem(r *http.Request) (sentence, link string) {
	q := r.URL.Query()
	slug := q.Get("drop")
	if q.Get("problem") != "no-access" || !catalog.ValidSlug(slug) {
		return "", ""
	}
	d, err := s.DropStore.DropBySlug(r.Context(), slug)
	if err != nil {
		return "", ""
	}
	e := &dropRefusal{err: drop.ErrNoAccess, item: "That item", drop: d, state: d.StateAt(time.Now())}
	return e.Error(), e.link()
}
