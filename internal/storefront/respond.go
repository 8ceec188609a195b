package storefront

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/surge-commerce/surge/internal/admission"
	"github.com/surge-commerce/surge/internal/cart"
	"github.com/surge-commerce/surge/internal/catalog"
	"github.com/surge-commerce/surge/internal/checkout"
	"github.com/surge-commerce/surge/internal/customer"
	"github.com/surge-commerce/surge/internal/drop"
	"github.com/surge-commerce/surge/internal/jobs"
	"github.com/surge-commerce/surge/internal/notify"
	"github.com/surge-commerce/surge/internal/order"
	"github.com/surge-commerce/surge/internal/telemetry"
	"github.com/surge-commerce/surge/internal/waitroom"
)

// maxBodyBytes bounds every JSON request body the API reads.
const maxBodyBytes = 1 << 20

// encode writes v as JSON with status.
func encode(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // the client went away: nothing useful to do
}

// errBadBody wraps every request-body problem so it maps to 400.
var errBadBody = errors.New("bad request body")

// errUnsupportedMedia marks a body that is not JSON.
var errUnsupportedMedia = errors.New("unsupported media type")

// decode reads one JSON value from the request body into v, strictly:
// unknown fields, trailing data and oversized bodies are errors that say
// what is wrong.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return fmt.Errorf("%w: Content-Type %q: send application/json", errUnsupportedMedia, ct)
		}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		var tooBig *http.MaxBytesError
		switch {
		case errors.Is(err, io.EOF):
			return fmt.Errorf("%w: the body is empty; send a JSON object", errBadBody)
		case errors.As(err, &syn):
			return fmt.Errorf("%w: malformed JSON at byte %d", errBadBody, syn.Offset)
		case errors.Is(err, io.ErrUnexpectedEOF):
			return fmt.Errorf("%w: the JSON ends too early", errBadBody)
		case errors.As(err, &typ):
			return fmt.Errorf("%w: field %q: want %s, got JSON %s", errBadBody, typ.Field, typ.Type, typ.Value)
		case errors.As(err, &tooBig):
			return fmt.Errorf("%w: larger than %d bytes", errBadBody, tooBig.Limit)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return fmt.Errorf("%w: %s", errBadBody, strings.TrimPrefix(err.Error(), "json: "))
		default:
			return fmt.Errorf("%w: %v", errBadBody, err)
		}
	}
	if dec.More() {
		return fmt.Errorf("%w: unexpected data after the JSON value", errBadBody)
	}
	return nil
}

// Problem is an RFC 9457 problem details body.
type Problem struct {
	// Type names the kind of error as a URI (see ProblemType), one per
	// kind, so a client can tell them apart without reading Detail.
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail,omitempty"`
	Instance  string `json:"instance,omitempty"`
	RequestID string `json:"request_id,omitempty"`
	// Field names the request field an invalid-field problem is about,
	// as a JSON path ("price.amount", "variants[0].on_hand").
	Field string `json:"field,omitempty"`
	// SKUs names what is sold out, on a 409 from checkout.
	SKUs []string `json:"skus,omitempty"`
	// Drop names the drop a refused SKU belongs to, with its page (where
	// the line is), on a 403 no-access.
	Drop *ProblemDrop `json:"drop,omitempty"`
}

// ProblemDrop is the drop a problem is about.
type ProblemDrop struct {
	Slug     string    `json:"slug"`
	Name     string    `json:"name"`
	StartsAt time.Time `json:"starts_at"`
	URL      string    `json:"url"`
}

// ProblemTypeBase starts every problem type URI; the kind follows, and
// docs/problems.md has a section for each.
const ProblemTypeBase = admission.ProblemTypeBase

// ProblemType is the type URI of a kind of problem.
func ProblemType(kind string) string { return ProblemTypeBase + kind }

// Kinds of problem answered outside errorKinds.
const (
	kindNotFound    = "not-found"
	kindInternal    = "internal"
	kindCrossOrigin = "cross-origin"
	kindWaitingLine = "waiting-line"
	kindRateLimited = "rate-limited"
	kindInvalid     = "invalid-field"
)

// errorKind is how one class of domain error is answered.
type errorKind struct {
	is     func(error) bool
	status int
	kind   string
}

func is(target error) func(error) bool { return func(err error) bool { return errors.Is(err, target) } }

// errorKinds is the one place domain errors become HTTP statuses and
// problem types; the first that matches wins.
var errorKinds = []errorKind{
	{func(err error) bool { var e *checkout.SoldOutError; return errors.As(err, &e) }, http.StatusConflict, "sold-out"},
	{is(waitroom.ErrSoldOut), http.StatusConflict, "sold-out"},
	{is(cart.ErrInsufficientStock), http.StatusConflict, "insufficient-stock"},
	{is(customer.ErrEmailTaken), http.StatusConflict, "email-taken"},
	{is(catalog.ErrNotFound), http.StatusNotFound, kindNotFound},
	{is(order.ErrNotFound), http.StatusNotFound, kindNotFound},
	{is(cart.ErrNotInCart), http.StatusNotFound, "not-in-cart"},
	{is(checkout.ErrIdempotencyMismatch), http.StatusUnprocessableEntity, "idempotency-key-reused"},
	{is(checkout.ErrEmptyCart), http.StatusUnprocessableEntity, "empty-cart"},
	{is(cart.ErrUnknownSKU), http.StatusUnprocessableEntity, "unknown-sku"},
	{is(drop.ErrOverLimit), http.StatusUnprocessableEntity, "over-limit"},
	{is(drop.ErrNoAccess), http.StatusForbidden, "no-access"},
	{is(waitroom.ErrBadAccess), http.StatusForbidden, "no-access"},
	{is(waitroom.ErrUnknownDrop), http.StatusNotFound, kindNotFound},
	{is(waitroom.ErrBadVisitor), http.StatusBadRequest, "bad-visitor"},
	{is(waitroom.ErrBadPoW), http.StatusBadRequest, "bad-proof-of-work"},
	{is(waitroom.ErrPoWRequired), http.StatusPreconditionRequired, "proof-of-work-required"},
	{is(waitroom.ErrNotOpen), http.StatusConflict, "not-open"},
	{is(waitroom.ErrRateLimited), http.StatusTooManyRequests, kindRateLimited},
	{is(customer.ErrThrottled), http.StatusTooManyRequests, kindRateLimited},
	{is(errNotifyThrottled), http.StatusTooManyRequests, kindRateLimited},
	{is(waitroom.ErrBadTicket), http.StatusUnauthorized, "bad-ticket"},
	{is(waitroom.ErrQueueFull), http.StatusServiceUnavailable, "queue-full"},
	{is(drop.ErrNotFound), http.StatusNotFound, kindNotFound},
	{is(notify.ErrNotFound), http.StatusNotFound, kindNotFound},
	{is(errNotifyOff), http.StatusNotFound, kindNotFound},
	{is(errStandbyOff), http.StatusNotFound, kindNotFound},
	{is(notify.ErrNotOpen), http.StatusConflict, "not-open"},
	{is(notify.ErrInvalid), http.StatusUnprocessableEntity, kindInvalid},
	{is(jobs.ErrNotFound), http.StatusNotFound, kindNotFound},
	{is(jobs.ErrStarted), http.StatusConflict, "conflict"},
	{is(drop.ErrInvalid), http.StatusUnprocessableEntity, kindInvalid},
	{is(drop.ErrConflict), http.StatusConflict, "conflict"},
	{is(customer.ErrBadCredentials), http.StatusUnauthorized, "bad-credentials"},
	{func(err error) bool { var e *catalog.FieldError; return errors.As(err, &e) }, http.StatusUnprocessableEntity, kindInvalid},
	{is(cart.ErrTooLarge), http.StatusUnprocessableEntity, "cart-too-large"},
	{is(errBadBody), http.StatusBadRequest, "malformed-body"},
	{is(catalog.ErrInvalid), http.StatusBadRequest, "invalid-request"},
	{is(cart.ErrInvalid), http.StatusBadRequest, "invalid-request"},
	{is(checkout.ErrInvalid), http.StatusBadRequest, "invalid-request"},
	{is(checkout.ErrNoKey), http.StatusBadRequest, "invalid-request"},
	{is(customer.ErrInvalid), http.StatusBadRequest, "invalid-request"},
	{is(errBadForm), http.StatusBadRequest, "invalid-request"},
	{is(errUnsupportedMedia), http.StatusUnsupportedMediaType, "unsupported-media-type"},
	{is(catalog.ErrConflict), http.StatusConflict, "conflict"},
	{is(errUnauthorized), http.StatusUnauthorized, "unauthorized"},
	{is(errForbidden), http.StatusForbidden, "forbidden"},
	{func(err error) bool {
		return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || isUnavailable(err)
	}, http.StatusServiceUnavailable, "unavailable"},
}

// classify finds how err is answered: a status and a problem kind.
func classify(err error) (status int, kind string) {
	for _, k := range errorKinds {
		if k.is(err) {
			return k.status, k.kind
		}
	}
	return http.StatusInternalServerError, kindInternal
}

// errorStatus is the HTTP status of err (see errorKinds).
func errorStatus(err error) int {
	status, _ := classify(err)
	return status
}

// ProblemKinds lists every problem kind the storefront answers with;
// tests check each is documented.
func ProblemKinds() []string {
	seen := map[string]bool{}
	var out []string
	add := func(k string) {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	for _, k := range errorKinds {
		add(k.kind)
	}
	for _, k := range []string{kindNotFound, kindInternal, kindCrossOrigin, kindWaitingLine, kindRateLimited, kindInvalid} {
		add(k)
	}
	return out
}

// isUnavailable reports whether err says a shared dependency could not be
// reached: worth a retry in a moment, not a fault of the shop's. An
// adapter marks such errors with Unavailable() bool; a database driver's
// failure to reach its server is one too, whichever store raised it and
// whether or not it marked it (see connectionFailure).
func isUnavailable(err error) bool {
	var u interface{ Unavailable() bool }
	if errors.As(err, &u) {
		return u.Unavailable()
	}
	return connectionFailure(err)
}

// connectionFailure reports whether err is a connection to a server
// failing rather than the server's answer: refused, reset or cut off
// mid-answer, a connection the driver had already closed (drivers mark
// errors raised before anything was sent as SafeToRetry), or the server
// ending the session because it is shutting down, crashing or starting
// up (SQLSTATE class 08 and 57P01 to 57P03). It names no driver: the
// interfaces it looks for are what the drivers' errors have in common.
func connectionFailure(err error) bool {
	var state interface{ SQLState() string }
	if errors.As(err, &state) {
		code := state.SQLState()
		return strings.HasPrefix(code, "08") || code == "57P01" || code == "57P02" || code == "57P03"
	}
	var ne net.Error
	var retry interface{ SafeToRetry() bool }
	return errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.As(err, &retry) && retry.SafeToRetry()
}

// problem writes err as application/problem+json. Internal errors are
// logged and their text withheld from the client.
func problem(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	status, kind := classify(err)
	p := Problem{Type: ProblemType(kind), Title: http.StatusText(status), Status: status, Detail: err.Error(),
		Instance: r.URL.Path, RequestID: telemetry.RequestID(r.Context())}
	var soldOut *checkout.SoldOutError
	if errors.As(err, &soldOut) {
		p.SKUs = soldOut.SKUs
	}
	var field *catalog.FieldError
	if errors.As(err, &field) {
		p.Field = field.Field
	}
	var dr *dropRefusal
	if errors.As(err, &dr) {
		p.Drop = &ProblemDrop{Slug: dr.drop.Slug, Name: dr.drop.Name, StartsAt: dr.drop.StartsAt, URL: dr.link()}
	}

	switch {
	case status >= 500:
		switch {
		case r.Context().Err() != nil:
			// The client went away and took the request with it: nothing
			// failed on our side.
			log.DebugContext(r.Context(), "request abandoned by the client", "err", err, "path", r.URL.Path)
		case isUnavailable(err):
			// A dependency is down: the adapter that lost it logs the
			// outage when it begins and when it ends, with a count. A
			// line per request would bury the log while it lasts.
			log.DebugContext(r.Context(), "request failed: dependency unavailable", "err", err, "path", r.URL.Path)
		default:
			log.ErrorContext(r.Context(), "request failed", "err", err, "path", r.URL.Path)
		}
		p.Detail = "an internal error occurred; quote the request ID when reporting it"
		if status == http.StatusServiceUnavailable {
			p.Detail = "the request was cancelled or ran out of time; try again"
			if isUnavailable(err) {
				p.Detail = "a service the shop depends on is unreachable right now; try again in a moment"
			}
			w.Header().Set("Retry-After", "1")
		}
	case status == http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="surge-admin"`)
	}
	setRetryAfter(w, err)
	// Errors are never cached: a passing failure must not stick.
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Del("Surrogate-Key")
	writeProblem(w, p)
}

// writeProblem writes p as is; callers decide cacheability.
func writeProblem(w http.ResponseWriter, p Problem) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

// tag marks a response cacheable by the page cache and a CDN under tags.
func tag(w http.ResponseWriter, tags ...string) {
	w.Header().Set("Surrogate-Key", strings.Join(tags, " "))
}

// mustJSON renders v for an event stream; the values are our own structs.
func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
