// Package cart holds shopping carts and the pricing rules that total them.
package cart

import (
	"context"
	"errors"
	"fmt"

	"github.com/surge-commerce/surge/internal/catalog"
	"github.com/surge-commerce/surge/internal/money"
)

// Limits that keep one cart from becoming a denial of service.
const (
	MaxQuantity = 99 // per line
	MaxLines    = 50
)

// Domain errors.
var (
	// ErrUnknownSKU means no variant has the SKU (or its product is a draft).
	ErrUnknownSKU = errors.New("unknown sku")
	// ErrInvalid wraps a bad quantity or a full cart; the message says which.
	ErrInvalid = errors.New("invalid cart change")
	// ErrNotInCart means the SKU is not in the cart.
	ErrNotInCart = errors.New("sku not in cart")
	// ErrInsufficientStock means fewer units are available than asked for.
	ErrInsufficientStock = errors.New("not enough stock")
	// ErrTooLarge means a total would not fit the money type. Bounded
	// prices and quantities keep it from happening; it is a refusal the
	// shopper can act on (remove items), not a fault.
	ErrTooLarge = errors.New("cart total too large")
)

// forSale reports whether an offer can be priced into a cart: active, and
// priced within what the catalog accepts. A price beyond catalog.MaxPrice
// can only be a row stored before that bound or written around the
// catalog's checks; such an offer is not for sale, like a withdrawn
// product, so that one bad row cannot break every cart that holds it.
func forSale(o Offer) bool {
	return o.Active && o.Price.Amount >= 0 && o.Price.Amount <= catalog.MaxPrice
}

// Line is a cart line as stored: a SKU and a quantity.
type Line struct {
	SKU      string
	Quantity int64
}

// Offer is what the catalog says about a SKU right now: price, stock and
// the names to show.
type Offer struct {
	SKU          string
	ProductSlug  string
	ProductName  string
	VariantTitle string
	Price        money.Money
	Available    int64
	Active       bool
}

// Item is a priced cart line.
type Item struct {
	SKU          string      `json:"sku"`
	ProductSlug  string      `json:"product_slug"`
	ProductName  string      `json:"product_name"`
	VariantTitle string      `json:"variant_title"`
	Quantity     int64       `json:"quantity"`
	UnitPrice    money.Money `json:"unit_price"`
	LineTotal    money.Money `json:"line_total"`
	Available    int64       `json:"available"`
}

// Totals sums a cart.
type Totals struct {
	ItemCount int64       `json:"item_count"`
	Subtotal  money.Money `json:"subtotal"`
	Tax       money.Money `json:"tax"`
	Shipping  money.Money `json:"shipping"`
	Total     money.Money `json:"total"`
}

// Cart is a priced cart.
type Cart struct {
	ID     string `json:"id"`
	Items  []Item `json:"items"`
	Totals Totals `json:"totals"`
}

// Pricing holds the shop's tax and shipping rules.
type Pricing struct {
	Currency string
	// TaxBasisPoints is the tax rate in hundredths of a percent: 825 is 8.25%.
	TaxBasisPoints int64
	// ShippingFlat is charged per order, in minor units.
	ShippingFlat int64
	// FreeShippingOver waives shipping when the subtotal reaches it; 0
	// means shipping is never free.
	FreeShippingOver int64
}

// Validate checks the rules.
func (p Pricing) Validate() error {
	if !money.ValidCurrency(p.Currency) {
		return fmt.Errorf("pricing currency %q: not an ISO 4217 code", p.Currency)
	}
	if p.TaxBasisPoints < 0 || p.TaxBasisPoints > 10000 {
		return fmt.Errorf("tax rate %d basis points: must be 0 to 10000", p.TaxBasisPoints)
	}
	if p.ShippingFlat < 0 || p.FreeShippingOver < 0 {
		return errors.New("shipping amounts must not be negative")
	}
	return nil
}

// Price turns stored lines into priced items using current offers, and
// totals them. Lines whose SKU has no offer for sale are dropped (the
// product was withdrawn); the caller may tell the shopper. Every sum is
// overflow-checked; a total that would not fit is ErrTooLarge.
func (p Pricing) Price(lines []Line, offers map[string]Offer) ([]Item, Totals, error) {
	zero := money.Money{Currency: p.Currency}
	t := Totals{Subtotal: zero, Tax: zero, Shipping: zero, Total: zero}
	items := make([]Item, 0, len(lines))
	for _, l := range lines {
		o, ok := offers[l.SKU]
		if !ok || !forSale(o) {
			continue
		}
		if o.Price.Currency != p.Currency {
			return nil, Totals{}, fmt.Errorf("price %s: currency %s is not the shop's %s", l.SKU, o.Price.Currency, p.Currency)
		}
		lt, err := o.Price.Mul(l.Quantity)
		if err != nil {
			return nil, Totals{}, tooLarge("price "+l.SKU, err)
		}
		if t.Subtotal, err = t.Subtotal.Add(lt); err != nil {
			return nil, Totals{}, tooLarge("subtotal", err)
		}
		t.ItemCount += l.Quantity
		items = append(items, Item{SKU: l.SKU, ProductSlug: o.ProductSlug, ProductName: o.ProductName, VariantTitle: o.VariantTitle,
			Quantity: l.Quantity, UnitPrice: o.Price, LineTotal: lt, Available: o.Available})
	}
	var err error
	if t.Tax, err = t.Subtotal.Percent(p.TaxBasisPoints); err != nil {
		return nil, Totals{}, tooLarge("tax", err)
	}
	if t.ItemCount > 0 && (p.FreeShippingOver == 0 || t.Subtotal.Amount < p.FreeShippingOver) {
		t.Shipping = money.Money{Amount: p.ShippingFlat, Currency: p.Currency}
	}
	if t.Total, err = t.Subtotal.Add(t.Tax); err != nil {
		return nil, Totals{}, tooLarge("total", err)
	}
	if t.Total, err = t.Total.Add(t.Shipping); err != nil {
		return nil, Totals{}, tooLarge("total", err)
	}
	return items, t, nil
}

// tooLarge turns an overflow in money arithmetic into ErrTooLarge; any
// other error (mixed currencies) stays what it is.
func tooLarge(what string, err error) error {
	if errors.Is(err, money.ErrOverflow) {
		return fmt.Errorf("%s: %w: remove some items", what, ErrTooLarge)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// Store keeps carts. Every change is atomic per call.
type Store interface {
	// CreateCart makes an empty cart for customerID (0 for a guest).
	CreateCart(ctx context.Context, customerID int64) (string, error)
	// CartLines returns the lines of a cart, oldest first.
	CartLines(ctx context.Context, cartID string) ([]Line, error)
	// AddCartItem adds qty of sku, capped per line and per cart by the
	// limits above (ErrInvalid beyond them), and returns the new quantity.
	// When sku is sold by an open drop, the cart may hold no more of the
	// drop's SKUs together than its per-customer limit
	// (drop.ErrOverLimit beyond it), even under concurrent changes.
	AddCartItem(ctx context.Context, cartID, sku string, qty int64) (int64, error)
	// SetCartItem sets the quantity of a line already in the cart; 0
	// removes it. ErrNotInCart if it is not there. Raising a line obeys
	// the drop limit as AddCartItem does; lowering one always works.
	SetCartItem(ctx context.Context, cartID, sku string, qty int64) error
	// MergeCarts moves every line of from into into (adding quantities,
	// capped, and lowering the newest lines of a drop's SKUs to what its
	// per-customer limit leaves) and deletes from, for sign-in.
	MergeCarts(ctx context.Context, from, into string) error
	// CustomerCart returns the newest cart of a customer, "" if none.
	CustomerCart(ctx context.Context, customerID int64) (string, error)
	// Offers returns current offers for skus; unknown SKUs are absent.
	Offers(ctx context.Context, skus []string) (map[string]Offer, error)
}

// Service prices and changes carts.
type Service struct {
	Store   Store
	Pricing Pricing
}

// Get returns the priced cart; an empty ID is an empty cart.
func (s *Service) Get(ctx context.Context, cartID string) (Cart, error) {
	c := Cart{ID: cartID, Items: []Item{}}
	var lines []Line
	if cartID != "" {
		var err error
		if lines, err = s.Store.CartLines(ctx, cartID); err != nil {
			return Cart{}, err
		}
	}
	skus := make([]string, len(lines))
	for i, l := range lines {
		skus[i] = l.SKU
	}
	offers, err := s.Store.Offers(ctx, skus)
	if err != nil {
		return Cart{}, err
	}
	items, totals, err := s.Pricing.Price(lines, offers)
	if err != nil {
		return Cart{}, err
	}
	c.Items, c.Totals = items, totals
	return c, nil
}

// Add puts qty of sku in the cart, checking the SKU is for sale and that
// the new line quantity is not more than is available now (the final check
// is the reservation at checkout).
func (s *Service) Add(ctx context.Context, cartID, sku string, qty int64) error {
	if qty < 1 || qty > MaxQuantity {
		return fmt.Errorf("%w: quantity must be 1 to %d", ErrInvalid, MaxQuantity)
	}
	offers, err := s.Store.Offers(ctx, []string{sku})
	if err != nil {
		return err
	}
	o, ok := offers[sku]
	if !ok || !forSale(o) {
		return fmt.Errorf("add %q: %w", sku, ErrUnknownSKU)
	}
	if o.Available < qty {
		return fmt.Errorf("add %s: %w: %d available", sku, ErrInsufficientStock, o.Available)
	}
	_, err = s.Store.AddCartItem(ctx, cartID, sku, qty)
	return err
}

// Set changes the quantity of a line; 0 removes it.
func (s *Service) Set(ctx context.Context, cartID, sku string, qty int64) error {
	if qty < 0 || qty > MaxQuantity {
		return fmt.Errorf("%w: quantity must be 0 to %d", ErrInvalid, MaxQuantity)
	}
	if cartID == "" {
		return fmt.Errorf("set %s: %w", sku, ErrNotInCart)
	}
	return s.Store.SetCartItem(ctx, cartID, sku, qty)
}
