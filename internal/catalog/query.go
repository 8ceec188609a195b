package catalog

import (
	"encoding/base64"
	"encoding/json"
	"math"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Sort orders a product listing.
type Sort string

// Sort orders. Relevance needs a search text; without one it falls back to
// newest.
const (
	SortRelevance Sort = "relevance"
	SortPriceAsc  Sort = "price_asc"
	SortPriceDesc Sort = "price_desc"
	SortNewest    Sort = "newest"
)

// Listing limits.
const (
	DefaultLimit = 24
	MaxLimit     = 100
	maxQueryLen  = 200
)

// Query selects a page of active products. The zero value lists the newest.
type Query struct {
	Text       string // full-text words, matched against name, description, category
	CategoryID int64  // 0 for all; includes the category's descendants
	MinPrice   int64  // minor units, inclusive; 0 for no lower bound
	MaxPrice   int64  // minor units, inclusive; 0 for no upper bound
	InStock    bool
	Sort       Sort
	Limit      int
	After      *Cursor // nil for the first page
	// IncludeDrafts lets the admin API list draft products too.
	IncludeDrafts bool
}

// Page is one page of a listing. NextCursor is empty on the last page.
type Page struct {
	Items      []Product `json:"items"`
	NextCursor string    `json:"next_cursor"`
}

// Cursor is the keyset position after the last item of a page: the sort key
// of that item and its ID as a tie-breaker. It travels as an opaque string.
type Cursor struct {
	Sort  Sort    `json:"s"`
	Price int64   `json:"p,omitempty"`
	Rank  float64 `json:"r,omitempty"`
	Time  int64   `json:"t,omitempty"` // created_at in Unix nanoseconds
	ID    int64   `json:"i"`
}

// Encode renders the cursor as URL-safe base64 JSON.
func (c Cursor) Encode() string {
	b, _ := json.Marshal(c) // only numbers and a known string: cannot fail
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeCursor parses a cursor produced by Encode for a listing sorted by
// sort. Anything else is ErrInvalid, never a panic.
func DecodeCursor(s string, sort Sort) (*Cursor, error) {
	if len(s) > 256 {
		return nil, Invalidf("cursor: too long")
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, Invalidf("cursor: not a cursor returned by this API")
	}
	var c Cursor
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil || dec.More() {
		return nil, Invalidf("cursor: not a cursor returned by this API")
	}
	if c.Sort != sort {
		return nil, Invalidf("cursor: belongs to sort %q, not %q", c.Sort, sort)
	}
	if c.ID <= 0 || c.Price < 0 || math.IsNaN(c.Rank) || math.IsInf(c.Rank, 0) {
		return nil, Invalidf("cursor: not a cursor returned by this API")
	}
	return &c, nil
}

// ParseRawQuery parses a raw URL query string strictly (a malformed one is
// ErrInvalid rather than silently dropped) and then as ParseQuery.
func ParseRawQuery(raw string) (Query, url.Values, error) {
	v, err := url.ParseQuery(raw)
	if err != nil {
		return Query{}, v, Invalidf("query string: %v", err)
	}
	q, err := ParseQuery(v)
	return q, v, err
}

// ParseQuery reads listing parameters as the API and pages take them:
// q, category (resolved by the caller, so here it is ignored), min_price,
// max_price, in_stock, sort, cursor, limit. Bad values are ErrInvalid with a
// message naming the parameter.
func ParseQuery(v url.Values) (Query, error) {
	var q Query
	q.Text = strings.TrimSpace(v.Get("q"))
	if !utf8.ValidString(q.Text) {
		return q, Invalidf("q: must be valid UTF-8")
	}
	if utf8.RuneCountInString(q.Text) > maxQueryLen {
		return q, Invalidf("q: at most %d characters", maxQueryLen)
	}
	var err error
	if q.MinPrice, err = parseNonNegative(v, "min_price"); err != nil {
		return q, err
	}
	if q.MaxPrice, err = parseNonNegative(v, "max_price"); err != nil {
		return q, err
	}
	if q.MaxPrice > 0 && q.MinPrice > q.MaxPrice {
		return q, Invalidf("min_price: %d is above max_price %d", q.MinPrice, q.MaxPrice)
	}
	switch s := v.Get("in_stock"); s {
	case "", "false", "0":
	case "true", "1":
		q.InStock = true
	default:
		return q, Invalidf("in_stock: want true or false, got %q", s)
	}
	switch s := Sort(v.Get("sort")); s {
	case "":
		q.Sort = SortNewest
		if q.Text != "" {
			q.Sort = SortRelevance
		}
	case SortRelevance, SortPriceAsc, SortPriceDesc, SortNewest:
		q.Sort = s
	default:
		return q, Invalidf("sort: want one of relevance, price_asc, price_desc, newest; got %q", s)
	}
	if q.Sort == SortRelevance && q.Text == "" {
		q.Sort = SortNewest
	}
	q.Limit = DefaultLimit
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxLimit {
			return q, Invalidf("limit: want a whole number from 1 to %d, got %q", MaxLimit, s)
		}
		q.Limit = n
	}
	if s := v.Get("cursor"); s != "" {
		if q.After, err = DecodeCursor(s, q.Sort); err != nil {
			return q, err
		}
	}
	return q, nil
}

func parseNonNegative(v url.Values, name string) (int64, error) {
	s := v.Get(name)
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, Invalidf("%s: want a non-negative whole number of minor units (cents), got %q", name, s)
	}
	return n, nil
}

// Values renders the query back into URL parameters (without the cursor),
// for links to other pages and sorts.
func (q Query) Values() url.Values {
	v := url.Values{}
	if q.Text != "" {
		v.Set("q", q.Text)
	}
	if q.MinPrice > 0 {
		v.Set("min_price", strconv.FormatInt(q.MinPrice, 10))
	}
	if q.MaxPrice > 0 {
		v.Set("max_price", strconv.FormatInt(q.MaxPrice, 10))
	}
	if q.InStock {
		v.Set("in_stock", "true")
	}
	if q.Sort != "" && !(q.Sort == SortNewest && q.Text == "") && !(q.Sort == SortRelevance && q.Text != "") {
		v.Set("sort", string(q.Sort))
	}
	if q.Limit != 0 && q.Limit != DefaultLimit {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	return v
}

// Plan returns the sort and page size a store runs q with: relevance by
// default, newest when there is no text to rank by (as ParseQuery does),
// and the limit bounded by MaxLimit. A cursor from another sort is
// ErrInvalid.
func (q Query) Plan() (Sort, int, error) {
	sort := q.Sort
	switch sort {
	case "":
		sort = SortRelevance
	case SortRelevance, SortPriceAsc, SortPriceDesc, SortNewest:
	default:
		return "", 0, Invalidf("sort %q: unknown", sort)
	}
	if sort == SortRelevance && strings.TrimSpace(q.Text) == "" {
		sort = SortNewest
	}
	if q.After != nil && q.After.Sort != sort && q.After.Sort != q.Sort {
		return "", 0, Invalidf("cursor: belongs to sort %q, not %q", q.After.Sort, sort)
	}
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	return sort, min(limit, MaxLimit), nil
}
