package drop

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/surge-commerce/surge/internal/checkout"
	"github.com/surge-commerce/surge/internal/order"
	"github.com/surge-commerce/surge/internal/waitroom"
)

// Gate holds the purchase rules of drops: a drop's SKUs are bought only
// while it is live, by a buyer whose session holds a waiting-room access
// token for it, and no more of them at once than its per-customer limit.
// It is checkout's DropGate, and the cart asks it before a drop SKU goes
// in. The limit over everything a buyer holds (their cart, their orders)
// is kept by the store, in the transaction that adds or orders.
type Gate struct {
	Store Store
	Room  *waitroom.Room
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

var _ checkout.DropGate = (*Gate)(nil)

func (g *Gate) now() time.Time {
	if g.Now == nil {
		return time.Now()
	}
	return g.Now()
}

// Gate returns the purchase lines make from an open drop, for the buyer
// session holds access for, or nil when no line is in a drop. access
// returns the access token the buyer carries for a drop ("" for none);
// nil means none at all.
//
// Errors: ErrNoAccess (the drop is not on sale now, or the buyer has no
// valid access), ErrOverLimit, waitroom.ErrSoldOut for a buyer whose slot
// went with the stock, and an error with Unavailable() true when the
// waiting room could not check the token (worth a retry, never a
// refusal).
func (g *Gate) Gate(ctx context.Context, session string, access func(dropID string) string, lines []order.Line) (*checkout.DropPurchase, error) {
	skus := make([]string, len(lines))
	for i, l := range lines {
		skus[i] = l.SKU
	}
	d, ok, err := g.Store.OpenDropForSKUs(ctx, skus)
	if err != nil || !ok {
		return nil, err
	}
	if err := d.Validate(); err != nil {
		// Its line never opens, so nobody gets access: say so rather
		// than have buyers retry an unavailable room forever.
		return nil, fmt.Errorf("%w: %q is not on sale (%v)", ErrNoAccess, d.Name, err)
	}
	switch d.StateAt(g.now()) {
	case StateScheduled:
		return nil, fmt.Errorf("%w: %q starts at %s; join the queue at /drops/%s", ErrNoAccess, d.Name, d.StartsAt.Format(time.RFC3339), d.Slug)
	case StateClosed:
		return nil, fmt.Errorf("%w: %q is closed", ErrNoAccess, d.Name)
	}
	token := ""
	if access != nil {
		token = access(d.ID)
	}
	a, err := g.Room.VerifyAccess(ctx, token, d.ID, session)
	if errors.Is(err, waitroom.ErrSoldOut) {
		return nil, fmt.Errorf("%q: %w", d.Name, err)
	}
	if errors.Is(err, waitroom.ErrBadAccess) {
		return nil, fmt.Errorf("%w: wait for your turn at /drops/%s/queue (%v)", ErrNoAccess, d.Slug, err)
	}
	if errors.Is(err, waitroom.ErrUnknownDrop) {
		// The store has the drop open but this replica's room has not
		// picked it up yet: a moment's wait, not a missing drop.
		err = notReady{err}
	}
	if err != nil {
		// The room could not check the token (its shared state did not
		// answer): that says nothing about the buyer's access, so it
		// must not be refused as if it did. It stays an error the
		// buyer retries.
		return nil, fmt.Errorf("drop %q: %w", d.Name, err)
	}
	p := &checkout.DropPurchase{DropID: d.ID, Buyer: a.Visitor, Limit: d.PerCustomerLimit}
	for _, l := range lines {
		if d.HasSKU(l.SKU) {
			p.Quantity += l.Quantity
		}
	}
	if p.Quantity > p.Limit {
		return nil, fmt.Errorf("%w: %d per customer", ErrOverLimit, p.Limit)
	}
	return p, nil
}

// MayAdd refuses to add qty of sku to the cart of session without access
// to its drop, or beyond the drop's per-customer limit on its own (the
// store refuses a cart holding more than the limit in all: an add sent
// twice, a retry after a lost answer, must not put the buyer over the
// limit they would only meet at checkout). A SKU in no drop may always
// be added.
func (g *Gate) MayAdd(ctx context.Context, session string, access func(dropID string) string, sku string, qty int64) error {
	_, err := g.Gate(ctx, session, access, []order.Line{{SKU: sku, Quantity: qty}})
	return err
}

// MaySet refuses to set a cart line of sku from held to qty when that
// raises it and the session has no access: raising a line is adding to
// it. Lowering or removing a line needs no access.
func (g *Gate) MaySet(ctx context.Context, session string, access func(dropID string) string, sku string, held, qty int64) error {
	if qty <= held {
		return nil
	}
	return g.MayAdd(ctx, session, access, sku, qty-held)
}

// Done tells the waiting room the buyer finished (bought, or met a
// sell-out), so their slot goes to the next in line.
func (g *Gate) Done(ctx context.Context, p *checkout.DropPurchase) {
	_ = g.Room.Done(ctx, p.DropID, p.Buyer)
}

// Observe reports how a drop's checkout went, for the adaptive rate.
func (g *Gate) Observe(dropID string, latency time.Duration, err error) {
	g.Room.ObserveCheckout(dropID, latency, err)
}

// notReady marks an error as passing: the HTTP layer answers it 503 with
// Retry-After. It hides what it wraps on purpose, so that the unknown
// drop it stands for is not answered 404.
type notReady struct{ error }

// Unavailable marks the error as worth a retry in a moment.
func (e notReady) Unavailable() bool { return true }
