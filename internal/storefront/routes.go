package storefront

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/surge-commerce/surge/internal/admission"
	"github.com/surge-commerce/surge/internal/catalog"
)

func passThrough(h http.Handler) http.Handler { return h }

func noAdmission(_ admission.Class, h http.Handler) http.Handler { return h }

// routes lists every public route. Cacheable routes go through the page
// cache; a handler opts a response into it by tagging it (see tag).
func (s *server) routes(mux handlerMux) {
	// Every route declares its priority class here: under overload the
	// lowest classes are shed first (see internal/admission).
	admit := s.Admit
	// cached keeps only the query parameters a route reads before the page
	// cache sees the URL, so junk parameters cannot mint new cache entries.
	// Admission sits between the two so that cache hits skip the limiter.
	// Each list names exactly what its handler reads: a parameter listed
	// but not read would still make a new cache entry per value.
	cached := func(c admission.Class, h http.Handler, params ...string) http.Handler {
		return s.onlyParams(params, admit(c, s.PageCache(h)))
	}
	// The API listing resolves category to a slug; the pages take prices
	// in currency units (min, max) as well as minor units.
	listing := []string{"q", "category", "min_price", "max_price", "in_stock", "sort", "cursor", "limit"}
	browsing := []string{"min", "max", "min_price", "max_price", "in_stock", "sort", "cursor", "limit"}
	// A category page browses its category (no q, no other category);
	// the search page searches the whole shop (no category).
	searching := append([]string{"q"}, browsing...)
	adminAPI := func(h http.Handler) http.Handler { return admit(admission.High, s.requireAdmin(h)) }
	const (
		critical   = admission.Critical   // checkout and payment
		high       = admission.High       // cart and account
		browse     = admission.Browse     // pages, catalog and search
		background = admission.Background // prefetch, images, not-found
	)

	// Storefront pages.
	mux.Handle("GET /{$}", cached(browse, s.handleHome()))
	mux.Handle("GET /categories/{slug}", cached(browse, s.handleCategoryPage(), browsing...))
	mux.Handle("GET /products/{slug}", cached(browse, s.handleProductPage(), "sku"))
	mux.Handle("GET /search", cached(browse, s.handleSearchPage(), searching...))
	mux.Handle("GET /images/products/{slug}/{file}", cached(background, s.handleProductImage()))
	// Embedded assets cost nothing to serve: never shed.
	mux.Handle("GET /static/{file}", s.handleStatic())
	mux.Handle("GET /robots.txt", s.handleRobots())
	mux.Handle("GET /favicon.ico", s.handleFavicon())

	// Public catalog API.
	mux.Handle("GET /api/v1/categories", cached(browse, s.handleListCategories()))
	mux.Handle("GET /api/v1/products", cached(browse, s.handleListProducts(), listing...))
	mux.Handle("GET /api/v1/products/{slug}", cached(browse, s.handleGetProduct()))

	// Buy path: personal, never cached.
	mux.Handle("GET /api/v1/me", admit(background, s.handleMe()))
	mux.Handle("GET /api/v1/cart", admit(high, s.handleGetCart()))
	// An admitted drop buyer's cart add is as urgent as a checkout: the
	// waiting room already metered them, and shedding it wastes their turn.
	mux.Handle("POST /api/v1/cart/items", s.byAccess(admit(critical, s.handleAddCartItem()), admit(high, s.handleAddCartItem())))
	mux.Handle("PATCH /api/v1/cart/items/{sku}", admit(high, s.handleUpdateCartItem(false)))
	mux.Handle("DELETE /api/v1/cart/items/{sku}", admit(high, s.handleUpdateCartItem(true)))
	mux.Handle("POST /api/v1/checkout", admit(critical, s.handleCheckout()))
	mux.Handle("GET /api/v1/orders/{id}", admit(high, s.handleGetOrder()))
	mux.Handle("POST /api/v1/customers", admit(high, s.handleAccountAPI(true)))
	mux.Handle("POST /api/v1/sessions", admit(high, s.handleAccountAPI(false)))
	mux.Handle("DELETE /api/v1/sessions/current", admit(high, s.handleSignOut()))
	mux.Handle("GET /cart", admit(high, s.handleCartPage()))
	mux.Handle("POST /cart/items", s.byAccess(admit(critical, s.handleCartAddForm()), admit(high, s.handleCartAddForm())))
	mux.Handle("POST /cart/items/{sku}", admit(high, s.handleCartUpdateForm()))
	mux.Handle("GET /checkout", admit(critical, s.handleCheckoutPage()))
	mux.Handle("POST /checkout", admit(critical, s.handleCheckoutForm()))
	mux.Handle("GET /orders/{id}", admit(high, s.handleOrderPage()))
	// The payment provider confirming payments: as urgent as checkout.
	mux.Handle("POST /api/v1/payments/stripe/webhook", admit(critical, s.handlePaymentWebhook()))
	mux.Handle("POST /orders/{id}/retry", admit(high, s.handleOrderRetry()))
	mux.Handle("GET /account", admit(high, s.handleAccountPage()))
	mux.Handle("GET /account/signin", admit(high, s.accountPage("signin")))
	mux.Handle("POST /account/signin", admit(high, s.handleAccountForm(false)))
	mux.Handle("GET /account/signup", admit(high, s.accountPage("signup")))
	mux.Handle("POST /account/signup", admit(high, s.handleAccountForm(true)))
	mux.Handle("POST /account/signout", admit(high, s.handleSignOutForm()))

	// Drops and their waiting rooms. The queue status is polled by
	// everyone waiting, so it is cheap by design (a signature check and
	// shared counters) and, like static assets, never shed: a refused poll
	// only brings the poller back sooner, and at a drop's start everyone in
	// the pre-queue polls at once.
	mux.Handle("GET /queue", admit(critical, s.handleStandbyPage()))
	mux.Handle("GET /drops", cached(browse, s.handleDropsIndex()))
	mux.Handle("GET /drops/{slug}", cached(browse, s.handleDropPage()))
	mux.Handle("POST /drops/{slug}/queue", admit(high, s.handleQueueJoinForm()))
	mux.Handle("GET /drops/{slug}/queue", admit(critical, s.handleQueuePage()))
	mux.Handle("GET /api/v1/drops/{id}", admit(browse, s.handleDropInfo()))
	mux.Handle("POST /api/v1/drops/{id}/queue/challenge", admit(high, s.handleQueueChallenge()))
	// Joining the line is never shed either: the line is a drop's overload
	// protection, and a 503 at the moment a drop opens is what the waiting
	// room exists to prevent. A join is cheap (a signature and a counter,
	// no database write) and guarded by its own means: a rate limit per
	// client address and proof of work on demand. Behind the concurrency
	// limit, joins queued for the few slots left when a spike on a busy
	// machine shrank the limit, and at 100,000 buyers a minute the queue
	// overflowed into 503s.
	mux.Handle("POST /api/v1/drops/{id}/queue/join", s.handleQueueJoin())
	mux.Handle("GET /api/v1/drops/{id}/queue", s.handleQueueStatus())
	mux.Handle("GET /api/v1/drops/{id}/queue/stream", s.handleQueueStream())
	mux.Handle("DELETE /api/v1/drops/{id}/queue", admit(high, s.handleQueueLeave()))

	// "Notify me" (see notify.go): never cached, rate limited per client
	// and per email address.
	mux.Handle("GET /drops/{slug}/notify", admit(high, s.handleNotifyPage()))
	mux.Handle("POST /drops/{slug}/notify", admit(high, s.handleNotifyForm()))
	mux.Handle("POST /api/v1/drops/{id}/notify", admit(high, s.handleNotifyAPI()))
	mux.Handle("GET /notify/confirm", admit(high, s.handleNotifyConfirmPage()))
	mux.Handle("POST /notify/confirm", admit(high, s.handleNotifyConfirm()))
	mux.Handle("GET /notify/unsubscribe", admit(high, s.handleNotifyUnsubscribePage()))
	mux.Handle("POST /notify/unsubscribe", admit(high, s.handleNotifyUnsubscribe()))

	// Admin API: bearer token, never cached.
	mux.Handle("GET /api/v1/admin/products", adminAPI(s.handleAdminListProducts()))
	mux.Handle("POST /api/v1/admin/products", adminAPI(s.handleAdminCreateProduct()))
	mux.Handle("GET /api/v1/admin/products/{slug}", adminAPI(s.handleAdminGetProduct()))
	mux.Handle("PATCH /api/v1/admin/products/{slug}", adminAPI(s.handleAdminUpdateProduct()))
	mux.Handle("POST /api/v1/admin/products/{slug}/variants", adminAPI(s.handleAdminCreateVariant()))
	mux.Handle("PATCH /api/v1/admin/variants/{sku}", adminAPI(s.handleAdminUpdateVariant()))
	mux.Handle("PUT /api/v1/admin/variants/{sku}/stock", adminAPI(s.handleAdminSetStock()))
	mux.Handle("POST /api/v1/admin/categories", adminAPI(s.handleAdminCreateCategory()))
	mux.Handle("POST /api/v1/admin/cache/purge", adminAPI(s.handleAdminPurge()))
	mux.Handle("GET /api/v1/admin/standby", adminAPI(s.handleAdminStandby()))
	mux.Handle("PUT /api/v1/admin/standby", adminAPI(s.handleAdminStandby()))
	mux.Handle("GET /api/v1/admin/drops", adminAPI(s.handleAdminListDrops()))
	mux.Handle("POST /api/v1/admin/drops", adminAPI(s.handleAdminCreateDrop()))
	mux.Handle("GET /api/v1/admin/drops/{id}", adminAPI(s.handleAdminGetDrop()))
	mux.Handle("POST /api/v1/admin/drops/{id}/close", adminAPI(s.handleAdminCloseDrop()))
	mux.Handle("GET /api/v1/admin/drops/{id}/report", adminAPI(s.handleAdminDropReport()))
	mux.Handle("POST /api/v1/admin/drops/{id}/subscribers", adminAPI(s.handleAdminImportSubscribers()))
	mux.Handle("POST /api/v1/admin/drops/{id}/reminder", adminAPI(s.handleAdminRemindNow()))

	// Operator pages: the admin token, given once in a form, or as a
	// bearer token; never cached.
	mux.Handle("GET /admin/signin", admit(high, s.handleAdminSignInPage()))
	mux.Handle("POST /admin/signin", admit(high, s.handleAdminSignIn()))
	mux.Handle("GET /admin/drops", admit(high, s.handleAdminDropsPage()))
	mux.Handle("GET /admin/drops/{id}/report", admit(high, s.handleAdminDropReportPage()))
	mux.Handle("GET /api/v1/admin/jobs", adminAPI(s.handleAdminListJobs()))
	mux.Handle("GET /api/v1/admin/jobs/{id}", adminAPI(s.handleAdminGetJob()))
	mux.Handle("POST /api/v1/admin/jobs/{id}/pause", adminAPI(s.handleAdminPauseJob(true)))
	mux.Handle("POST /api/v1/admin/jobs/{id}/resume", adminAPI(s.handleAdminPauseJob(false)))

	// Anything else under the API is a JSON 404, not the HTML page.
	mux.Handle("/api/", admit(background, s.handleAPINotFound()))
	mux.Handle("/", cached(background, s.handleNotFoundPage()))
}

// onlyParams drops query parameters not in keep (all of them when keep is
// empty) before calling next, so the page cache keys on nothing else. A
// malformed query string ("%zz", a ";") is answered 400 here, before the
// cache: passed on as it is, each one would be a new entry.
func (s *server) onlyParams(keep []string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.RawQuery == "" {
			next.ServeHTTP(w, r)
			return
		}
		in, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			s.badQuery(w, r, catalog.Invalidf("query string: %v", err))
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

// badQuery answers a request whose query string cannot be read: a problem
// for the API, the error page for a page; never cached.
func (s *server) badQuery(w http.ResponseWriter, r *http.Request, err error) {
	if strings.HasPrefix(r.URL.Path, "/api/") {
		problem(w, r, s.Logger, err)
		return
	}
	s.formError(w, r, err)
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
	(&server{Deps: Deps{PageCache: passThrough, Admit: noAdmission}}).routes(rec)
	return rec.patterns
}
