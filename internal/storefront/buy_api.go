package storefront

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/surge-commerce/surge/internal/cart"
	"github.com/surge-commerce/surge/internal/checkout"
	"github.com/surge-commerce/surge/internal/customer"
	"github.com/surge-commerce/surge/internal/order"
	"github.com/surge-commerce/surge/internal/session"
)

// Accounts is what the buy path's HTTP layer reads beyond the cart,
// checkout and account services: accounts, new carts and orders.
type Accounts interface {
	CustomerByID(ctx context.Context, id int64) (customer.Customer, error)
	CreateCart(ctx context.Context, customerID int64) (string, error)
	Order(ctx context.Context, id string) (order.Order, error)
	OrdersByCustomer(ctx context.Context, customerID int64, limit int) ([]order.Order, error)
	OrderPlacedInSession(ctx context.Context, orderID, sessionID string) (bool, error)
}

// visitor is the session of a request, if any.
type visitor struct {
	session.Session
	ok bool
}

func (s *server) visitor(r *http.Request) (visitor, error) {
	se, err := s.Sessions.Load(r)
	if errors.Is(err, session.ErrNotFound) {
		return visitor{}, nil
	}
	if err != nil {
		return visitor{}, err
	}
	return visitor{se, true}, nil
}

// ensureCart returns the visitor's session with a cart, starting a guest
// session and creating a cart as needed.
func (s *server) ensureCart(w http.ResponseWriter, r *http.Request) (session.Session, error) {
	v, err := s.visitor(r)
	if err != nil {
		return session.Session{}, err
	}
	if v.ok && v.CartID != "" {
		return v.Session, nil
	}
	cartID, err := s.Accounts.CreateCart(r.Context(), v.CustomerID)
	if err != nil {
		return session.Session{}, err
	}
	if !v.ok {
		return s.Sessions.Start(w, r, 0, cartID)
	}
	v.CartID = cartID
	return v.Session, s.Sessions.Store.UpdateSession(r.Context(), v.Session)
}

func noStore(w http.ResponseWriter) { w.Header().Set("Cache-Control", "no-store") }

func (s *server) handleMe() http.Handler {
	type me struct {
		Customer *customer.Customer `json:"customer"`
		Cart     struct {
			ItemCount int64 `json:"item_count"`
		} `json:"cart"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		noStore(w)
		v, err := s.visitor(r)
		if err != nil {
			problem(w, r, s.Logger, err)
			return
		}
		var out me
		if v.ok && v.CustomerID != 0 {
			c, err := s.Accounts.CustomerByID(r.Context(), v.CustomerID)
			if err == nil {
				out.Customer = &c
			}
		}
		if v.ok && v.CartID != "" {
			c, err := s.Carts.Get(r.Context(), v.CartID)
			if err != nil {
				problem(w, r, s.Logger, err)
				return
			}
			out.Cart.ItemCount = c.Totals.ItemCount
		}
		encode(w, http.StatusOK, out)
	})
}

func (s *server) handleGetCart() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		noStore(w)
		_, c, err := s.visitorCart(r)
		if err != nil {
			problem(w, r, s.Logger, err)
			return
		}
		encode(w, http.StatusOK, c)
	})
}

type cartItemInput struct {
	SKU      string `json:"sku"`
	Quantity *int64 `json:"quantity"`
}

func (s *server) handleAddCartItem() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		noStore(w)
		var in cartItemInput
		if err := decode(w, r, &in); err != nil {
			problem(w, r, s.Logger, err)
			return
		}
		qty := int64(1)
		if in.Quantity != nil {
			qty = *in.Quantity
		}
		if in.SKU == "" {
			problem(w, r, s.Logger, fmt.Errorf("%w: sku: required", cart.ErrInvalid))
			return
		}
		se, err := s.ensureCart(w, r)
		if err != nil {
			problem(w, r, s.Logger, err)
			return
		}
		dp, err := s.checkDropAdd(r.Context(), r, se, in.SKU, qty)
		if err != nil {
			problem(w, r, s.Logger, s.explainDropRefusal(r.Context(), in.SKU, err))
			return
		}
		err = s.Carts.Add(r.Context(), se.CartID, in.SKU, qty)
		s.noteDropAdd(dp, qty, err)
		if err != nil {
			problem(w, r, s.Logger, err)
			return
		}
		c, err := s.Carts.Get(r.Context(), se.CartID)
		if err != nil {
			problem(w, r, s.Logger, err)
			return
		}
		encode(w, http.StatusCreated, c)
	})
}

func (s *server) handleUpdateCartItem(remove bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		noStore(w)
		var qty int64
		if !remove {
			var in struct {
				Quantity *int64 `json:"quantity"`
			}
			if err := decode(w, r, &in); err != nil {
				problem(w, r, s.Logger, err)
				return
			}
			if in.Quantity == nil {
				problem(w, r, s.Logger, fmt.Errorf("%w: quantity: required", cart.ErrInvalid))
				return
			}
			qty = *in.Quantity
		}
		v, err := s.visitor(r)
		if err != nil {
			problem(w, r, s.Logger, err)
			return
		}
		if err := s.checkDropRaise(r.Context(), r, v.Session, r.PathValue("sku"), qty); err != nil {
			problem(w, r, s.Logger, err)
			return
		}
		if err := s.Carts.Set(r.Context(), v.CartID, r.PathValue("sku"), qty); err != nil {
			problem(w, r, s.Logger, err)
			return
		}
		c, err := s.Carts.Get(r.Context(), v.CartID)
		if err != nil {
			problem(w, r, s.Logger, err)
			return
		}
		encode(w, http.StatusOK, c)
	})
}

func (s *server) handleCheckout() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		noStore(w)
		var req checkout.Request
		if err := decode(w, r, &req); err != nil {
			problem(w, r, s.Logger, err)
			return
		}
		v, err := s.visitor(r)
		if err != nil {
			problem(w, r, s.Logger, err)
			return
		}
		if !v.ok {
			problem(w, r, s.Logger, checkout.ErrEmptyCart)
			return
		}
		res, err := s.Checkout.Checkout(r.Context(), checkout.Input{Owner: v.ID, Key: r.Header.Get("Idempotency-Key"),
			CartID: v.CartID, CustomerID: v.CustomerID, Request: req, Access: accessFor(r)})
		if err != nil {
			problem(w, r, s.Logger, err)
			return
		}
		status := http.StatusCreated
		if res.Replayed {
			w.Header().Set("Idempotent-Replayed", "true")
		}
		w.Header().Set("Location", orderPath("/api/v1/orders/", res.Order))
		encode(w, status, res.Order)
	})
}

// orderPath is the path of order o under prefix with its link token, so
// that it opens without a session.
func orderPath(prefix string, o order.Order) string {
	p := prefix + url.PathEscape(o.ID)
	if o.AccessToken != "" {
		p += "?token=" + url.QueryEscape(o.AccessToken)
	}
	return p
}

// canSee reports whether the visitor may see order o: its customer, or the
// session that placed it.
func (s *server) canSee(ctx context.Context, v visitor, o order.Order) bool {
	if !v.ok {
		return false
	}
	if v.CustomerID != 0 && o.CustomerID == v.CustomerID {
		return true
	}
	mine, err := s.Accounts.OrderPlacedInSession(ctx, o.ID, v.ID)
	return err == nil && mine
}

// loadVisibleOrder loads the order of the request's path if the visitor
// may see it: with its link token (?token=), or as its customer or the
// session that placed it.
func (s *server) loadVisibleOrder(r *http.Request) (order.Order, error) {
	o, err := s.Accounts.Order(r.Context(), r.PathValue("id"))
	if err != nil {
		return order.Order{}, err
	}
	// The link token opens the order by itself, before any session is
	// looked up: a session store that lost its sessions (a Redis restart)
	// or does not answer costs nobody access to their order.
	if o.OpensWith(r.URL.Query().Get("token")) {
		return o, nil
	}
	v, err := s.visitor(r)
	if err != nil {
		return order.Order{}, err
	}
	if !s.canSee(r.Context(), v, o) {
		// Not found rather than forbidden: order IDs are not to be probed.
		return order.Order{}, fmt.Errorf("order %s: %w", o.ID, order.ErrNotFound)
	}
	return o, nil
}

func (s *server) handleGetOrder() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		noStore(w)
		o, err := s.loadVisibleOrder(r)
		if err != nil {
			problem(w, r, s.Logger, err)
			return
		}
		encode(w, http.StatusOK, o)
	})
}

type credentials struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	Name     string `json:"name"`
}

// account signs up (signUp true) or signs in with in, from the request's
// client and guest session, and starts the customer's session: the one
// flow of the JSON API and the forms.
func (s *server) account(w http.ResponseWriter, r *http.Request, in credentials, signUp bool) (customer.Customer, error) {
	v, err := s.visitor(r)
	if err != nil {
		return customer.Customer{}, err
	}
	at := customer.Attempt{Email: in.Email, Password: in.Password, Name: in.Name, Client: s.clientKey(r)}
	if v.ok {
		at.Guest = customer.Guest{Session: v.ID, Cart: v.CartID}
	}
	act := s.Customers.SignIn
	if signUp {
		act = s.Customers.SignUp
	}
	signed, err := act(r.Context(), at)
	if err != nil {
		return customer.Customer{}, err
	}
	_, err = s.Sessions.Start(w, r, signed.Customer.ID, signed.CartID)
	return signed.Customer, err
}

// handleAccountAPI serves sign-up (signUp true, 201) and sign-in (200):
// the same body, a new session either way.
func (s *server) handleAccountAPI(signUp bool) http.Handler {
	status := http.StatusOK
	if signUp {
		status = http.StatusCreated
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		noStore(w)
		var in credentials
		if err := decode(w, r, &in); err != nil {
			problem(w, r, s.Logger, err)
			return
		}
		c, err := s.account(w, r, in, signUp)
		if err != nil {
			problem(w, r, s.Logger, err)
			return
		}
		encode(w, status, c)
	})
}

func (s *server) handleSignOut() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		noStore(w)
		v, err := s.visitor(r)
		if err != nil {
			problem(w, r, s.Logger, err)
			return
		}
		if v.ok {
			if err := s.Sessions.End(w, r, v.Session); err != nil {
				problem(w, r, s.Logger, err)
				return
			}
		}
		w.WriteHeader(http.StatusNoContent)
	})
}
