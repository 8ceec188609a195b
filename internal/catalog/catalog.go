// Package catalog holds the shop's categories, products and variants, the
// rules that keep them valid, and the search query model. It knows nothing
// about storage engines: adapters implement Store.
package catalog

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/surge-commerce/surge/internal/money"
)

// Domain errors. The HTTP layer maps each to a status code in one place.
var (
	// ErrNotFound means the category, product or variant does not exist (or is
	// a draft seen from the storefront).
	ErrNotFound = errors.New("not found")
	// ErrConflict means a unique key (slug or SKU) is already taken.
	ErrConflict = errors.New("conflict")
	// ErrInvalid wraps a validation failure; its message says what is wrong.
	ErrInvalid = errors.New("invalid")
)

// Invalidf returns an error that is ErrInvalid with a message for people.
// The message stands alone (no "invalid:" prefix) because the API shows it
// as the problem detail.
func Invalidf(format string, args ...any) error {
	return invalidError(fmt.Sprintf(format, args...))
}

type invalidError string

func (e invalidError) Error() string        { return string(e) }
func (e invalidError) Is(target error) bool { return target == ErrInvalid }

// Status says whether a product is visible in the storefront.
type Status string

// Product statuses.
const (
	StatusDraft  Status = "draft"
	StatusActive Status = "active"
)

// Category is a node in the category tree.
type Category struct {
	ID          int64  `json:"id"`
	ParentID    int64  `json:"parent_id,omitempty"` // 0 for a root category
	Slug        string `json:"slug"`
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	Position    int    `json:"position"`
}

// Image is a product picture served by the shop itself.
type Image struct {
	URL string `json:"url"`
	Alt string `json:"alt"`
}

// Attribute is a descriptive name/value pair such as material: cotton.
type Attribute struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Option is one axis a variant differs on, such as size: M.
type Option struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Product is what a shopper browses; it is bought through its variants.
type Product struct {
	ID          int64       `json:"id"`
	Slug        string      `json:"slug"`
	Name        string      `json:"name"`
	Description string      `json:"description"`
	Status      Status      `json:"status"`
	CategoryID  int64       `json:"category_id"`
	Images      []Image     `json:"images"`
	Attributes  []Attribute `json:"attributes"`
	Variants    []Variant   `json:"variants,omitempty"`
	// PriceFrom is the lowest variant price, kept by the store so listings
	// can sort and filter by price without loading variants.
	PriceFrom money.Money `json:"price_from"`
	// InStock is true when any variant has stock available.
	InStock   bool      `json:"in_stock"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Variant is a sellable unit with its own SKU, price and stock.
type Variant struct {
	ID        int64       `json:"id"`
	ProductID int64       `json:"product_id"`
	SKU       string      `json:"sku"`
	Options   []Option    `json:"options"`
	Price     money.Money `json:"price"`
	OnHand    int64       `json:"on_hand"`
	Reserved  int64       `json:"reserved"`
	Sold      int64       `json:"sold"`
	Position  int         `json:"position"`
}

// Available is what can still be sold: on hand minus reserved minus sold.
// The stores keep sold + reserved <= on hand, so it is never negative.
func (v Variant) Available() int64 {
	a := v.OnHand - v.Reserved - v.Sold
	if a < 0 {
		return 0
	}
	return a
}

// Title joins the option values for display: "M / Black".
func (v Variant) Title() string {
	vals := make([]string, len(v.Options))
	for i, o := range v.Options {
		vals[i] = o.Value
	}
	return strings.Join(vals, " / ")
}

var slugRE = regexp.MustCompile(`^[a-z0-9]+(?:-[a-z0-9]+)*$`)
var skuRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ValidSlug reports whether s is lower-case words joined by single hyphens,
// at most 120 characters.
func ValidSlug(s string) bool { return len(s) <= 120 && slugRE.MatchString(s) }

// ValidSKU reports whether s is 1-64 letters, digits, dots, hyphens or
// underscores, starting with a letter or digit.
func ValidSKU(s string) bool { return skuRE.MatchString(s) }

// Slugify turns a name into a slug: "Linen Shirt #2" -> "linen-shirt-2".
func Slugify(name string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
			dash = false
		default:
			if b.Len() > 0 && !dash {
				b.WriteByte('-')
				dash = true
			}
		}
	}
	s := strings.TrimSuffix(b.String(), "-")
	if len(s) > 120 {
		s = strings.TrimSuffix(s[:120], "-")
	}
	return s
}

// Bounds of what the catalog stores. Every number an admin sends is
// bounded before it is stored, so no stored value can overflow what is
// computed from it: a cart holds at most cart.MaxLines lines of at most
// cart.MaxQuantity units, and even MaxLines x MaxQuantity x MaxPrice,
// taxed at 100%, fits an int64 of minor units many times over.
const (
	// MaxPrice is the highest variant price in minor units (100,000,000.00
	// in a two-decimal currency).
	MaxPrice = 10_000_000_000
	// MaxOnHand is the most units of one variant a shop may hold.
	MaxOnHand = 1_000_000_000
	// MaxPosition bounds the sort positions of categories and variants.
	MaxPosition = 1_000_000
	// MaxOptions, MaxImages and MaxAttributes bound the lists on a
	// variant and a product.
	MaxOptions    = 10
	MaxImages     = 20
	MaxAttributes = 50
	// MaxVariants bounds the variants created with one product.
	MaxVariants = 200
)

// FieldError says a field of a catalog write holds a value the shop does
// not accept (out of bounds, empty, malformed): the request was well
// formed, the value is not. It is ErrInvalid too. The HTTP layer answers
// it 422 and names Field.
type FieldError struct {
	// Field is the JSON path of the value: "price.amount",
	// "variants[2].on_hand".
	Field  string
	Reason string
}

func (e *FieldError) Error() string        { return e.Field + ": " + e.Reason }
func (e *FieldError) Is(target error) bool { return target == ErrInvalid }

// FieldErrorf returns a *FieldError for field.
func FieldErrorf(field, format string, args ...any) error {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// CheckOnHand checks a stock count against the bounds (field names it).
func CheckOnHand(field string, n int64) error {
	if n < 0 || n > MaxOnHand {
		return FieldErrorf(field, "%d: must be 0 to %d", n, MaxOnHand)
	}
	return nil
}

// CheckPrice checks a price against the bounds (field names it).
func CheckPrice(field string, m money.Money) error {
	if !money.ValidCurrency(m.Currency) {
		return FieldErrorf(field+".currency", "%q: must be a three-letter ISO 4217 code", m.Currency)
	}
	if m.Amount < 0 || m.Amount > MaxPrice {
		return FieldErrorf(field+".amount", "%d: must be 0 to %d minor units", m.Amount, MaxPrice)
	}
	return nil
}

func checkPosition(field string, n int) error {
	if n < 0 || n > MaxPosition {
		return FieldErrorf(field, "%d: must be 0 to %d", n, MaxPosition)
	}
	return nil
}

func checkText(field, s string, minLen, maxLen int) error {
	n := len(strings.TrimSpace(s))
	switch {
	case n < minLen && minLen == 1:
		return FieldErrorf(field, "required")
	case n < minLen || len(s) > maxLen:
		return FieldErrorf(field, "must be %d to %d characters", minLen, maxLen)
	}
	return nil
}

// Validate checks a category before it is stored.
func (c Category) Validate() error {
	if !ValidSlug(c.Slug) {
		return FieldErrorf("slug", "%q: use lower-case letters, digits and single hyphens, at most 120 characters", c.Slug)
	}
	if err := checkText("name", c.Name, 1, 200); err != nil {
		return err
	}
	if len(c.Description) > 2000 {
		return FieldErrorf("description", "at most 2000 characters")
	}
	if c.ParentID < 0 {
		return FieldErrorf("parent_id", "must not be negative")
	}
	return checkPosition("position", c.Position)
}

// Validate checks a product, and its variants if any, before it is stored.
func (p Product) Validate() error {
	if err := checkText("name", p.Name, 1, 300); err != nil {
		return err
	}
	if !ValidSlug(p.Slug) {
		return FieldErrorf("slug", "%q: use lower-case letters, digits and single hyphens, at most 120 characters", p.Slug)
	}
	if len(p.Description) > 20000 {
		return FieldErrorf("description", "at most 20000 characters")
	}
	if p.Status != StatusDraft && p.Status != StatusActive {
		return FieldErrorf("status", "%q: must be %q or %q", p.Status, StatusDraft, StatusActive)
	}
	if p.CategoryID <= 0 {
		return FieldErrorf("category_id", "required")
	}
	if len(p.Images) > MaxImages {
		return FieldErrorf("images", "at most %d", MaxImages)
	}
	for i, im := range p.Images {
		f := fmt.Sprintf("images[%d]", i)
		if err := checkText(f+".url", im.URL, 1, 2048); err != nil {
			return err
		}
		if len(im.Alt) > 300 {
			return FieldErrorf(f+".alt", "at most 300 characters")
		}
	}
	if len(p.Attributes) > MaxAttributes {
		return FieldErrorf("attributes", "at most %d", MaxAttributes)
	}
	for i, a := range p.Attributes {
		f := fmt.Sprintf("attributes[%d]", i)
		if err := checkText(f+".name", a.Name, 1, 100); err != nil {
			return err
		}
		if err := checkText(f+".value", a.Value, 1, 1000); err != nil {
			return err
		}
	}
	if len(p.Variants) > MaxVariants {
		return FieldErrorf("variants", "at most %d", MaxVariants)
	}
	seen := make(map[string]bool, len(p.Variants))
	for i, v := range p.Variants {
		f := fmt.Sprintf("variants[%d].", i)
		if err := v.validate(f); err != nil {
			return err
		}
		if seen[v.SKU] {
			return FieldErrorf(f+"sku", "%q: listed twice", v.SKU)
		}
		seen[v.SKU] = true
	}
	return nil
}

// Validate checks a variant before it is stored.
func (v Variant) Validate() error { return v.validate("") }

// validate is Validate with field names under prefix.
func (v Variant) validate(prefix string) error {
	if !ValidSKU(v.SKU) {
		return FieldErrorf(prefix+"sku", "%q: use 1-64 letters, digits, '.', '-' or '_'", v.SKU)
	}
	if err := CheckPrice(prefix+"price", v.Price); err != nil {
		return err
	}
	if err := CheckOnHand(prefix+"on_hand", v.OnHand); err != nil {
		return err
	}
	if err := checkPosition(prefix+"position", v.Position); err != nil {
		return err
	}
	if len(v.Options) > MaxOptions {
		return FieldErrorf(prefix+"options", "at most %d", MaxOptions)
	}
	for i, o := range v.Options {
		f := fmt.Sprintf("%soptions[%d]", prefix, i)
		if err := checkText(f+".name", o.Name, 1, 100); err != nil {
			return err
		}
		if err := checkText(f+".value", o.Value, 1, 200); err != nil {
			return err
		}
	}
	return nil
}

// ValidateImport checks what a store's ImportCatalog takes before it
// starts a transaction, so bad input holds no locks: every category and
// product is valid, a category's ParentID refers to one listed earlier and
// a product's CategoryID to one listed at all (both as positions+1).
func ValidateImport(cats []Category, products []Product) error {
	for i, c := range cats {
		if err := c.Validate(); err != nil {
			return fmt.Errorf("import category %d: %w", i+1, err)
		}
		if c.ParentID > int64(i) {
			return fmt.Errorf("import category %d: %w", i+1,
				Invalidf("parent_id %d must refer to a category listed earlier", c.ParentID))
		}
	}
	for i := range products {
		p := &products[i]
		if err := p.Validate(); err != nil {
			return fmt.Errorf("import product %d: %w", i+1, err)
		}
		if p.CategoryID > int64(len(cats)) {
			return fmt.Errorf("import product %d: %w", i+1,
				Invalidf("category_id %d: only %d categories given", p.CategoryID, len(cats)))
		}
	}
	return nil
}
