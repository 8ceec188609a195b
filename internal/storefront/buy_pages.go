package storefront

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/surge-commerce/surge/internal/cart"
	"github.com/surge-commerce/surge/internal/checkout"
	"github.com/surge-commerce/surge/internal/customer"
	"github.com/surge-commerce/surge/internal/order"
)

// Buy-path pages are personal, so never cached, and they work without
// JavaScript: every action is a form post answered with a redirect
// (post/redirect/get) or the form again with an error.

// personalPage renders an uncached page for the visitor.
func (s *server) personalPage(w http.ResponseWriter, r *http.Request, status int, name string, data any) {
	s.personalPageRefresh(w, r, status, name, 0, data)
}

// personalPageRefresh is personalPage for a page that updates itself.
func (s *server) personalPageRefresh(w http.ResponseWriter, r *http.Request, status int, name string, refresh int, data any) {
	noStore(w)
	tree, _ := s.Catalog.Tree(r.Context())
	s.render(w, r, status, name, tree, pageData{Data: data, Refresh: refresh})
}

func redirect(w http.ResponseWriter, r *http.Request, to string) {
	noStore(w)
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// formError shows err on a page that cannot simply redirect: a 4xx with
// its message, a 5xx generic.
func (s *server) formError(w http.ResponseWriter, r *http.Request, err error) {
	noStore(w)
	tree, _ := s.Catalog.Tree(r.Context())
	s.pageError(w, r, tree, err)
}

// errBadForm wraps a form post that cannot be used as sent (expired,
// malformed).
var errBadForm = errors.New("invalid form")

// checkCSRF verifies the per-session token on forms rendered for that
// session (checkout, account). Cross-origin protection already guards
// every post; the token also covers browsers that send neither
// Sec-Fetch-Site nor Origin.
func checkCSRF(r *http.Request, v visitor) error {
	if !v.ok || !v.ValidCSRF(r.PostFormValue("csrf")) {
		return fmt.Errorf("%w: the form expired; reload the page and try again", errBadForm)
	}
	return nil
}

// visitorCart loads the request's session and its priced cart (empty
// without a session).
func (s *server) visitorCart(r *http.Request) (visitor, cart.Cart, error) {
	v, err := s.visitor(r)
	if err != nil {
		return v, cart.Cart{}, err
	}
	c, err := s.Carts.Get(r.Context(), v.CartID)
	return v, c, err
}

// formVisitor loads the session of a form post and checks its CSRF token.
func (s *server) formVisitor(r *http.Request) (visitor, error) {
	v, err := s.visitor(r)
	if err != nil {
		return v, err
	}
	return v, checkCSRF(r, v)
}

func (s *server) handleCartPage() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, c, err := s.visitorCart(r)
		if err != nil {
			s.formError(w, r, err)
			return
		}
		problem, dropLink := cartProblems[r.URL.Query().Get("problem")], ""
		if p, link := s.cartDropProblem(r); p != "" {
			problem, dropLink = p, link
		}
		s.personalPage(w, r, http.StatusOK, "cart", struct {
			Cart     cart.Cart
			Notice   string
			MaxQty   int
			Problem  string
			DropLink string
		}{c, r.URL.Query().Get("added"), cart.MaxQuantity, problem, dropLink})
	})
}

// cartProblems are the sentences the cart page shows for ?problem=<code>.
// A code is the kind of problem (see errorKinds) or one of the cart's
// own; the words are always the shop's, never the URL's, so a link
// cannot make the shop's page say what its sender wants. An unknown code
// shows nothing.
var cartProblems = map[string]string{
	"unknown-sku":        "That item is no longer for sale.",
	"insufficient-stock": "There is not enough stock for that quantity; the cart shows how many are left.",
	"quantity":           fmt.Sprintf("Choose an option and a quantity from 1 to %d.", cart.MaxQuantity),
	"over-limit":         "That is more than this drop allows per customer.",
	"no-access":          "That item is part of a drop: join the drop's line to buy it.",
	"sold-out":           "Sorry, that has sold out.",
	"not-open":           "That drop is not open right now.",
	"not-in-cart":        "That item is not in your cart any more.",
	"order-unavailable":  "Some items from your order are no longer available.",
	"cart":               "That change could not be made; please try again.",
}

// cartProblemURL is the cart page showing the sentence for err.
func cartProblemURL(err error) string {
	_, kind := classify(err)
	switch {
	case errors.Is(err, cart.ErrInvalid):
		kind = "quantity"
	case cartProblems[kind] == "":
		kind = "cart"
	}
	var dr *dropRefusal
	if errors.As(err, &dr) {
		// The cart page names the drop from the shop's own record of it.
		return "/cart?problem=" + kind + "&drop=" + url.QueryEscape(dr.drop.Slug)
	}
	return "/cart?problem=" + kind
}

// handleCartAddForm serves the product page's add-to-cart form.
func (s *server) handleCartAddForm() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			s.formError(w, r, fmt.Errorf("%w: %v", errBadForm, err))
			return
		}
		sku := r.PostFormValue("sku")
		qty, err := strconv.ParseInt(strings.TrimSpace(r.PostFormValue("quantity")), 10, 64)
		if r.PostFormValue("quantity") == "" {
			qty, err = 1, nil
		}
		if err != nil || sku == "" {
			s.formError(w, r, fmt.Errorf("%w: choose an option and a quantity", cart.ErrInvalid))
			return
		}
		se, err := s.ensureCart(w, r)
		if err != nil {
			s.formError(w, r, err)
			return
		}
		dp, err := s.checkDropAdd(r.Context(), r, se, sku, qty)
		if err == nil {
			err = s.Carts.Add(r.Context(), se.CartID, sku, qty)
			s.noteDropAdd(dp, qty, err)
		}
		err = s.explainDropRefusal(r.Context(), sku, err)
		if err != nil {
			if errorStatus(err) < 500 {
				redirect(w, r, cartProblemURL(err))
				return
			}
			s.formError(w, r, err)
			return
		}
		redirect(w, r, "/cart?added="+url.QueryEscape(sku))
	})
}

// handleCartUpdateForm changes or removes a line from the cart page.
func (s *server) handleCartUpdateForm() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, err := s.visitor(r)
		if err != nil {
			s.formError(w, r, err)
			return
		}
		qty, err := strconv.ParseInt(strings.TrimSpace(r.PostFormValue("quantity")), 10, 64)
		if r.PostFormValue("remove") != "" {
			qty, err = 0, nil
		}
		if err != nil {
			redirect(w, r, "/cart?problem=quantity")
			return
		}
		err = s.checkDropRaise(r.Context(), r, v.Session, r.PathValue("sku"), qty)
		if err == nil {
			err = s.Carts.Set(r.Context(), v.CartID, r.PathValue("sku"), qty)
		}
		if err != nil {
			if errorStatus(err) < 500 {
				redirect(w, r, cartProblemURL(err))
				return
			}
			s.formError(w, r, err)
			return
		}
		redirect(w, r, "/cart")
	})
}

type checkoutForm struct {
	// StripeKey, when set, puts Stripe Elements where the test-card field
	// is: the card goes from the browser to Stripe, never to the shop.
	StripeKey string
	Cart      cart.Cart
	CSRF      string
	Key       string
	Req       checkout.Request
	Problem   string
	SoldOut   []string
}

func newIdempotencyKey() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (s *server) handleCheckoutPage() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, c, err := s.visitorCart(r)
		if err != nil {
			s.formError(w, r, err)
			return
		}
		if len(c.Items) == 0 {
			redirect(w, r, "/cart")
			return
		}
		f := checkoutForm{StripeKey: s.StripeKey, Cart: c, CSRF: v.CSRF, Key: newIdempotencyKey()}
		f.Req.ShippingAddress.Country = "US"
		if v.CustomerID != 0 {
			if cu, err := s.Accounts.CustomerByID(r.Context(), v.CustomerID); err == nil {
				f.Req.Email, f.Req.ShippingAddress.Name = cu.Email, cu.Name
			}
		}
		s.checkoutPage(w, r, http.StatusOK, f)
	})
}

// handleCheckoutForm places the order from the checkout page. The form
// carries an idempotency key minted when it was rendered, so a double
// click or a resubmitted form places one order.
func (s *server) handleCheckoutForm() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, err := s.formVisitor(r)
		if err != nil {
			s.formError(w, r, err)
			return
		}
		var req checkout.Request
		req.Email = r.PostFormValue("email")
		req.ShippingAddress = order.Address{Name: r.PostFormValue("name"), Line1: r.PostFormValue("line1"), Line2: r.PostFormValue("line2"),
			City: r.PostFormValue("city"), Region: r.PostFormValue("region"), PostalCode: r.PostFormValue("postal_code"),
			Country: strings.ToUpper(strings.TrimSpace(r.PostFormValue("country")))}
		req.Payment.CardNumber = strings.ReplaceAll(r.PostFormValue("card_number"), " ", "")
		req.Payment.PaymentMethod = r.PostFormValue("payment_method")
		key := r.PostFormValue("idempotency_key")
		res, err := s.Checkout.Checkout(r.Context(), checkout.Input{Owner: v.ID, Key: key, CartID: v.CartID, CustomerID: v.CustomerID, Request: req, Access: accessFor(r)})
		if err == nil {
			// The confirmation page's address carries the order's link
			// token: bookmarked, it opens the order with no session.
			redirect(w, r, orderPath("/orders/", res.Order))
			return
		}
		status := errorStatus(err)
		if status >= 500 {
			s.formError(w, r, err)
			return
		}
		c, cerr := s.Carts.Get(r.Context(), v.CartID)
		if cerr != nil {
			s.formError(w, r, cerr)
			return
		}
		if errors.Is(err, checkout.ErrEmptyCart) {
			redirect(w, r, "/cart")
			return
		}
		f := checkoutForm{StripeKey: s.StripeKey, Cart: c, CSRF: v.CSRF, Key: key, Req: req, Problem: err.Error()}
		f.Req.Payment.CardNumber, f.Req.Payment.PaymentMethod = "", ""
		var so *checkout.SoldOutError
		if errors.As(err, &so) {
			f.SoldOut = so.SKUs
			f.Problem = "Sorry, some items sold out while you were checking out. Remove them from your cart and try again."
			f.Key = newIdempotencyKey()
		}
		s.checkoutPage(w, r, status, f)
	})
}

// checkoutPage renders the checkout form; with Stripe, the page's
// Content-Security-Policy lets Stripe Elements load.
func (s *server) checkoutPage(w http.ResponseWriter, r *http.Request, status int, f checkoutForm) {
	if f.StripeKey != "" {
		allowStripe(w.Header())
	}
	s.personalPage(w, r, status, "checkout", f)
}

func (s *server) handleOrderPage() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o, err := s.loadVisibleOrder(r)
		if err != nil {
			s.formError(w, r, err)
			return
		}
		if o.Status == order.StatusPendingPayment {
			// Payment is confirmed by the workers within moments; a refresh
			// shows the outcome without JavaScript.
			w.Header().Set("Refresh", "2")
		}
		s.personalPage(w, r, http.StatusOK, "order", o)
	})
}

type accountForm struct {
	CSRF    string
	Email   string
	Name    string
	Problem string
	Next    string
}

// accountNext is where a sign-in or sign-up form sends the visitor
// afterwards: the page they came from when it is on this site (see
// localPath), else their account.
func accountNext(next string) string { return localPath(next, "/account") }

func (s *server) accountPage(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, err := s.visitor(r)
		if err != nil {
			s.formError(w, r, err)
			return
		}
		if !v.ok {
			// A session gives the form its CSRF token.
			se, err := s.Sessions.Start(w, r, 0, "")
			if err != nil {
				s.formError(w, r, err)
				return
			}
			v = visitor{se, true}
		}
		s.personalPage(w, r, http.StatusOK, name, accountForm{CSRF: v.CSRF, Next: accountNext(r.URL.Query().Get("next"))})
	})
}

func (s *server) handleAccountForm(signUp bool) http.Handler {
	name := "signin"
	if signUp {
		name = "signup"
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, err := s.formVisitor(r)
		if err != nil {
			s.formError(w, r, err)
			return
		}
		in := credentials{Email: r.PostFormValue("email"), Password: r.PostFormValue("password"), Name: r.PostFormValue("name")}
		_, err = s.account(w, r, in, signUp)
		if err == nil {
			redirect(w, r, accountNext(r.PostFormValue("next")))
			return
		}
		status := errorStatus(err)
		if status >= 500 {
			s.formError(w, r, err)
			return
		}
		setRetryAfter(w, err)
		s.personalPage(w, r, status, name, accountForm{CSRF: v.CSRF, Email: in.Email, Name: in.Name, Problem: pageMessage(err), Next: accountNext(r.PostFormValue("next"))})
	})
}

func (s *server) handleSignOutForm() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, err := s.visitor(r)
		if err != nil {
			s.formError(w, r, err)
			return
		}
		if v.ok {
			if err := checkCSRF(r, v); err != nil {
				s.formError(w, r, err)
				return
			}
			if err := s.Sessions.End(w, r, v.Session); err != nil {
				s.formError(w, r, err)
				return
			}
		}
		redirect(w, r, "/")
	})
}

func (s *server) handleAccountPage() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, err := s.visitor(r)
		if err != nil {
			s.formError(w, r, err)
			return
		}
		if !v.ok || v.CustomerID == 0 {
			redirect(w, r, "/account/signin?next=/account")
			return
		}
		c, err := s.Accounts.CustomerByID(r.Context(), v.CustomerID)
		if err != nil {
			s.formError(w, r, err)
			return
		}
		orders, err := s.Accounts.OrdersByCustomer(r.Context(), c.ID, 50)
		if err != nil {
			s.formError(w, r, err)
			return
		}
		s.personalPage(w, r, http.StatusOK, "account", struct {
			Customer customer.Customer
			Orders   []order.Order
			CSRF     string
		}{c, orders, v.CSRF})
	})
}

// handleOrderRetry puts the lines of a failed order back in the cart, as
// far as stock allows, so "try another card" does not start from nothing.
func (s *server) handleOrderRetry() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o, err := s.loadVisibleOrder(r)
		if err != nil {
			s.formError(w, r, err)
			return
		}
		if o.Status != order.StatusPaymentFailed {
			redirect(w, r, orderPath("/orders/", o))
			return
		}
		se, err := s.ensureCart(w, r)
		if err != nil {
			s.formError(w, r, err)
			return
		}
		missing := 0
		for _, l := range o.Lines {
			if err := s.checkDropSKU(r.Context(), r, se, l.SKU, l.Quantity); err != nil {
				missing++
				continue
			}
			if err := s.Carts.Add(r.Context(), se.CartID, l.SKU, l.Quantity); err != nil {
				if errorStatus(err) >= 500 {
					s.formError(w, r, err)
					return
				}
				missing++
			}
		}
		if missing > 0 {
			redirect(w, r, "/cart?problem=order-unavailable")
			return
		}
		redirect(w, r, "/checkout")
	})
}
