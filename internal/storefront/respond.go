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

	"github.com/surge-commerce/surge/internal/cart"
	"github.com/surge-commerce/surge/internal/catalog"
	"github.com/surge-commerce/surge/internal/checkout"
	"github.com/surge-commerce/surge/internal/customer"
	"github.com/surge-commerce/surge/internal/drop"
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
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail,omitempty"`
	Instance  string `json:"instance,omitempty"`
	RequestID string `json:"request_id,omitempty"`
	// SKUs names what is sold out, on a 409 from checkout.
	SKUs []string `json:"skus,omitempty"`
}

// errorStatus is the one place domain errors become HTTP statuses.
func errorStatus(err error) int {
	var soldOut *checkout.SoldOutError
	switch {
	case errors.As(err, &soldOut), errors.Is(err, cart.ErrInsufficientStock), errors.Is(err, customer.ErrEmailTaken),
		errors.Is(err, waitroom.ErrSoldOut):
		return http.StatusConflict
	case errors.Is(err, catalog.ErrNotFound), errors.Is(err, order.ErrNotFound), errors.Is(err, cart.ErrNotInCart):
		return http.StatusNotFound
	case errors.Is(err, checkout.ErrIdempotencyMismatch), errors.Is(err, checkout.ErrEmptyCart), errors.Is(err, cart.ErrUnknownSKU),
		errors.Is(err, drop.ErrOverLimit), errors.Is(err, drop.ErrInvalid):
		return http.StatusUnprocessableEntity
	case errors.Is(err, drop.ErrNoAccess), errors.Is(err, waitroom.ErrBadAccess):
		return http.StatusForbidden
	case errors.Is(err, waitroom.ErrUnknownDrop):
		return http.StatusNotFound
	case errors.Is(err, waitroom.ErrBadVisitor), errors.Is(err, waitroom.ErrBadPoW):
		return http.StatusBadRequest
	case errors.Is(err, waitroom.ErrPoWRequired):
		return http.StatusPreconditionRequired
	case errors.Is(err, waitroom.ErrNotOpen):
		return http.StatusConflict
	case errors.Is(err, waitroom.ErrRateLimited):
		return http.StatusTooManyRequests
	case errors.Is(err, waitroom.ErrBadTicket):
		return http.StatusUnauthorized
	case errors.Is(err, waitroom.ErrQueueFull):
		return http.StatusServiceUnavailable
	case errors.Is(err, drop.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, drop.ErrConflict):
		return http.StatusConflict
	case errors.Is(err, customer.ErrBadCredentials):
		return http.StatusUnauthorized
	case errors.Is(err, catalog.ErrInvalid), errors.Is(err, errBadBody), errors.Is(err, cart.ErrInvalid),
		errors.Is(err, checkout.ErrInvalid), errors.Is(err, checkout.ErrNoKey), errors.Is(err, errBadAccount):
		return http.StatusBadRequest
	case errors.Is(err, errUnsupportedMedia):
		return http.StatusUnsupportedMediaType
	case errors.Is(err, catalog.ErrConflict):
		return http.StatusConflict
	case errors.Is(err, errUnauthorized):
		return http.StatusUnauthorized
	case errors.Is(err, errForbidden):
		return http.StatusForbidden
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled), isUnavailable(err):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
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
	status := errorStatus(err)
	p := Problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: err.Error(),
		Instance: r.URL.Path, RequestID: telemetry.RequestID(r.Context())}
	var soldOut *checkout.SoldOutError
	if errors.As(err, &soldOut) {
		p.SKUs = soldOut.SKUs
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
