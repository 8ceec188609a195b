package customer_test

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/surge-commerce/surge/internal/catalog"
	"github.com/surge-commerce/surge/internal/customer"
	"github.com/surge-commerce/surge/internal/money"
	"github.com/surge-commerce/surge/internal/session"
	"github.com/surge-commerce/surge/internal/sqlitestore"
)

// TestAccounts: signing up keeps the guest's cart, signing in merges the
// guest's cart into the customer's, and either ends the guest session;
// wrong credentials and an unknown email get the same answer, and
// attempts beyond the per-account limit are refused before any hash.
func TestAccounts(t *testing.T) {
	ctx := t.Context()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "surge.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := st.CreateCategory(ctx, catalog.Category{Slug: "shoes", Name: "Shoes"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateProduct(ctx, catalog.Product{Slug: "pair", Name: "Pair", Status: catalog.StatusActive, CategoryID: c.ID,
		Variants: []catalog.Variant{{SKU: "A", Price: money.Money{Amount: 100, Currency: "USD"}, OnHand: 10}}}); err != nil {
		t.Fatal(err)
	}
	frozen := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	a := &customer.Accounts{Store: st, Sessions: st, Passwords: customer.NewPasswords(1),
		Limits: customer.NewLimits(func() time.Time { return frozen })}
	// guest is a guest session holding n of A.
	guest := func(id string, n int64) customer.Guest {
		t.Helper()
		cart, err := st.CreateCart(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.AddCartItem(ctx, cart, "A", n); err != nil {
			t.Fatal(err)
		}
		if err := st.CreateSession(ctx, session.Session{ID: id, CartID: cart, CSRF: "x", ExpiresAt: frozen.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		return customer.Guest{Session: id, Cart: cart}
	}
	held := func(cart string) int64 {
		t.Helper()
		ls, err := st.CartLines(ctx, cart)
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		for _, l := range ls {
			n += l.Quantity
		}
		return n
	}
	gone := func(id string) {
		t.Helper()
		if _, err := st.Session(ctx, id); !errors.Is(err, session.ErrNotFound) {
			t.Errorf("guest session %s: %v; want it ended", id, err)
		}
	}

	if _, err := a.SignUp(ctx, customer.Attempt{Email: "ann@example.com", Password: "short", Client: "c1"}); !errors.Is(err, customer.ErrInvalid) {
		t.Fatalf("sign-up with a short password: %v; want ErrInvalid", err)
	}
	g1 := guest("s1", 2)
	up, err := a.SignUp(ctx, customer.Attempt{Email: "Ann@Example.com", Password: "correct horse", Name: "Ann", Client: "c1", Guest: g1})
	if err != nil {
		t.Fatal(err)
	}
	if up.Customer.Email != "ann@example.com" || up.CartID != g1.Cart {
		t.Fatalf("signed up %+v; want the email lower-cased and the guest's cart kept", up)
	}
	gone("s1")

	g2 := guest("s2", 1)
	in, err := a.SignIn(ctx, customer.Attempt{Email: "ann@example.com", Password: "correct horse", Client: "c1", Guest: g2})
	if err != nil {
		t.Fatal(err)
	}
	if in.Customer.ID != up.Customer.ID || in.CartID != up.CartID || held(in.CartID) != 3 {
		t.Fatalf("signed in %+v holding %d; want the guest's 1 merged into the customer's 2", in, held(in.CartID))
	}
	gone("s2")

	wrong, wErr := a.SignIn(ctx, customer.Attempt{Email: "ann@example.com", Password: "wrong horse", Client: "c1"})
	_, uErr := a.SignIn(ctx, customer.Attempt{Email: "nobody@example.com", Password: "correct horse", Client: "c1"})
	if !errors.Is(wErr, customer.ErrBadCredentials) || !errors.Is(uErr, customer.ErrBadCredentials) || wErr.Error() != uErr.Error() || wrong.Customer.ID != 0 {
		t.Fatalf("wrong password: %v; unknown email: %v; want the same ErrBadCredentials", wErr, uErr)
	}
	for range customer.SignInPerAccount.Burst {
		_, err = a.SignIn(ctx, customer.Attempt{Email: "ann@example.com", Password: "wrong horse", Client: "c2"})
	}
	var th customer.Throttled
	if !errors.As(err, &th) || !errors.Is(err, customer.ErrThrottled) || th.RetryAfter() <= 0 {
		t.Fatalf("attempt past the per-account limit: %v; want Throttled", err)
	}
}
