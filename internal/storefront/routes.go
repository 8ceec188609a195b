package storefront

import (
	"net/http"
	"net/url"
)

// routes lists every public route. Cacheable routes go through the page
// cache; a handler opts a response into it by tagging it (see tag).
func (s *server) routes(mux handlerMux) {
	// cached keeps only the query parameters a route reads before the page
	// cache sees the URL, so junk parameters cannot mint new cache entries.
	cached := func(h http.Handler, params ...string) http.Handler { return onlyParams(params, s.PageCache(h)) }
	listing := []string{"q", "category", "min_price", "max_price", "in_stock", "sort", "cursor", "limit"}
	pageListing := append([]string{"min", "max"}, listing...)
	admin := s.requireAdmin

	// Storefront pages.
	mux.Handle("GET /{$}", cached(s.handleHome()))
	mux.Handle("GET /categories/{slug}", cached(s.handleCategoryPage(), pageListing...))
	mux.Handle("GET /products/{slug}", cached(s.handleProductPage(), "sku"))
	mux.Handle("GET /search", cached(s.handleSearchPage(), pageListing...))
	mux.Handle("GET /images/products/{slug}/{file}", cached(s.handleProductImage()))
	mux.Handle("GET /static/{file}", s.handleStatic())
	mux.Handle("GET /robots.txt", s.handleRobots())
	mux.Handle("GET /favicon.ico", s.handleFavicon())

	// Public catalog API.
	mux.Handle("GET /api/v1/categories", cached(s.handleListCategories()))
	mux.Handle("GET /api/v1/products", cached(s.handleListProducts(), listing...))
	mux.Handle("GET /api/v1/products/{slug}", cached(s.handleGetProduct()))

	// Buy path: personal, never cached.
	mux.Handle("GET /api/v1/me", s.handleMe())
	mux.Handle("GET /api/v1/cart", s.handleGetCart())
	mux.Handle("POST /api/v1/cart/items", s.handleAddCartItem())
	mux.Handle("PATCH /api/v1/cart/items/{sku}", s.handleUpdateCartItem(false))
	mux.Handle("DELETE /api/v1/cart/items/{sku}", s.handleUpdateCartItem(true))
	mux.Handle("POST /api/v1/checkout", s.handleCheckout())
	mux.Handle("GET /api/v1/orders/{id}", s.handleGetOrder())
	mux.Handle("POST /api/v1/customers", s.handleSignUp())
	mux.Handle("POST /api/v1/sessions", s.handleSignIn())
	mux.Handle("DELETE /api/v1/sessions/current", s.handleSignOut())
	mux.Handle("GET /cart", s.handleCartPage())
	mux.Handle("POST /cart/items", s.handleCartAddForm())
	mux.Handle("POST /cart/items/{sku}", s.handleCartUpdateForm())
	mux.Handle("GET /checkout", s.handleCheckoutPage())
	mux.Handle("POST /checkout", s.handleCheckoutForm())
	mux.Handle("GET /orders/{id}", s.handleOrderPage())
	mux.Handle("GET /account", s.handleAccountPage())
	mux.Handle("GET /account/signin", s.accountPage("signin"))
	mux.Handle("POST /account/signin", s.handleAccountForm(false))
	mux.Handle("GET /account/signup", s.accountPage("signup"))
	mux.Handle("POST /account/signup", s.handleAccountForm(true))
	mux.Handle("POST /account/signout", s.handleSignOutForm())

	// Admin API: bearer token, never cached.
	mux.Handle("GET /api/v1/admin/products", admin(s.handleAdminListProducts()))
	mux.Handle("POST /api/v1/admin/products", admin(s.handleAdminCreateProduct()))
	mux.Handle("GET /api/v1/admin/products/{slug}", admin(s.handleAdminGetProduct()))
	mux.Handle("PATCH /api/v1/admin/products/{slug}", admin(s.handleAdminUpdateProduct()))
	mux.Handle("POST /api/v1/admin/products/{slug}/variants", admin(s.handleAdminCreateVariant()))
	mux.Handle("PATCH /api/v1/admin/variants/{sku}", admin(s.handleAdminUpdateVariant()))
	mux.Handle("PUT /api/v1/admin/variants/{sku}/stock", admin(s.handleAdminSetStock()))
	mux.Handle("POST /api/v1/admin/categories", admin(s.handleAdminCreateCategory()))
	mux.Handle("POST /api/v1/admin/cache/purge", admin(s.handleAdminPurge()))

	// Anything else under the API is a JSON 404, not the HTML page.
	mux.Handle("/api/", s.handleAPINotFound())
	mux.Handle("/", cached(s.handleNotFoundPage()))
}

// onlyParams drops query parameters not in keep (all of them when keep is
// empty) before calling next.
func onlyParams(keep []string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.RawQuery == "" {
			next.ServeHTTP(w, r)
			return
		}
		in, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			// Left as is for the handler to reject with a 400 that says why.
			next.ServeHTTP(w, r)
			return
		}
		out := url.Values{}
		for _, k := range keep {
			if v, ok := in[k]; ok {
				out[k] = v[:1]
			}
		}
		r2 := new(http.Request)
		*r2 = *r
		u := *r.URL
		u.RawQuery = out.Encode()
		r2.URL = &u
		next.ServeHTTP(w, r2)
	})
}

// handlerMux is the part of http.ServeMux routes needs; tests record
// routes through it.
type handlerMux interface {
	Handle(pattern string, h http.Handler)
}

// routeRecorder collects the patterns routes registers.
type routeRecorder struct{ patterns []string }

func (r *routeRecorder) Handle(p string, _ http.Handler) { r.patterns = append(r.patterns, p) }

// RoutePatterns lists every route pattern the server registers, in order;
// tests check it against the OpenAPI document.
func RoutePatterns() []string {
	rec := &routeRecorder{}
	(&server{Deps: Deps{PageCache: func(h http.Handler) http.Handler { return h }}}).routes(rec)
	return rec.patterns
}
