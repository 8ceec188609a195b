package storefront

import (
	"testing"
	"time"

	"github.com/surge-commerce/surge/internal/session"
)

// TestShoppingBeforeLine: a cart started in the half hour before the line
// turned on is a shopper on their way; an older cart, a session with no
// cart, or one that began after, waits.
func TestShoppingBeforeLine(t *testing.T) {
	on := time.Date(2026, 12, 6, 20, 15, 0, 0, time.UTC)
	for _, tc := range []struct {
		name    string
		created time.Time
		cart    string
		since   time.Time
		want    bool
	}{
		{"cart a minute before", on.Add(-time.Minute), "c1", on, true},
		{"cart just inside the window", on.Add(-standbyShopping), "c1", on, true},
		{"cart from yesterday", on.Add(-24 * time.Hour), "c1", on, false},
		{"no cart", on.Add(-time.Minute), "", on, false},
		{"session after the line turned on", on.Add(time.Second), "c1", on, false},
		{"line off", on.Add(-time.Minute), "c1", time.Time{}, false},
	} {
		if got := shoppingBeforeLine(session.Session{CartID: tc.cart, CreatedAt: tc.created}, tc.since); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
