package storefront

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/surge-commerce/surge/internal/telemetry"
	"github.com/surge-commerce/surge/internal/tracing"
)

// statusWriter remembers the status and size of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush passes through for streaming responses.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Hijack passes through for protocol upgrades.
func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if h, ok := w.ResponseWriter.(http.Hijacker); ok {
		return h.Hijack()
	}
	return nil, nil, errors.New("hijack not supported")
}

// observe is the outermost middleware: request ID, panic recovery, access
// log and metrics, in one wrapper so a request pays for one allocation of
// bookkeeping rather than four.
func observe(log *slog.Logger, metrics *telemetry.HTTPMetrics, accessLog bool, tracer *tracing.Tracer, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get("X-Request-Id")
		if id == "" || len(id) > 64 {
			id = telemetry.NewRequestID()
		}
		w.Header().Set("X-Request-Id", id)
		ctx, span := tracer.StartServer(telemetry.WithRequestID(r.Context(), id), w, r)
		r = r.WithContext(ctx)
		sw := &statusWriter{ResponseWriter: w}
		active := metrics.Active(r.Method)
		active.Inc()
		defer func() {
			active.Dec()
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler { //nolint:errorlint // sentinel compared by identity, as net/http does
					panic(v)
				}
				log.ErrorContext(r.Context(), "panic serving request", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				if sw.status == 0 {
					writeProblem(sw, Problem{Type: ProblemType(kindInternal), Title: "Internal Server Error", Status: 500,
						Detail: "an internal error occurred; quote the request ID when reporting it", RequestID: id})
				}
			}
			route := r.Pattern
			if route == "" {
				route = "unmatched"
			}
			if sw.status == 0 {
				sw.status = http.StatusOK
			}
			d := time.Since(start)
			scheme := "http"
			if r.TLS != nil {
				scheme = "https"
			}
			metrics.Observe(r.Method, route, scheme, sw.status, d)
			if tracer != nil {
				tracing.EndServer(span, r, telemetry.RouteTemplate(route), sw.status)
			}
			if accessLog {
				log.LogAttrs(r.Context(), slog.LevelInfo, "request",
					slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.String("route", route),
					slog.Int("status", sw.status), slog.Int64("bytes", sw.bytes),
					slog.Float64("duration_ms", float64(d.Microseconds())/1000), slog.String("cache", sw.Header().Get("X-Cache")),
					slog.String("remote", r.RemoteAddr))
			}
		}()
		next.ServeHTTP(sw, r)
	})
}

// ContentSecurityPolicy is sent with every response. Pages load only the
// shop's own script, styles, images and connections: no inline script or
// style (the templates have none; app.js is a file), no plugins, no
// framing by any site (clickjacking of checkout or account), forms posting
// only here, no <base> rewriting. API responses carry it too, where
// "default-src 'none'" leaves a JSON body nothing to run.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; manifest-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// The security headers, allocated once and shared by every response.
var (
	hdrCSP            = []string{ContentSecurityPolicy}
	hdrNosniff        = []string{"nosniff"}
	hdrFrameDeny      = []string{"DENY"}
	hdrReferrer       = []string{"same-origin"}
	hdrCrossOriginOpn = []string{"same-origin"}
)

// securityHeaders sets the headers that keep browsers strict with the
// shop's responses: the CSP above, X-Frame-Options for browsers that
// predate frame-ancestors, no MIME sniffing, no referrer sent to other
// sites (a search query or an order ID in a URL stays here), and a
// browsing context of its own.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["Content-Security-Policy"] = hdrCSP
		h["X-Content-Type-Options"] = hdrNosniff
		h["X-Frame-Options"] = hdrFrameDeny
		h["Referrer-Policy"] = hdrReferrer
		h["Cross-Origin-Opener-Policy"] = hdrCrossOriginOpn
		next.ServeHTTP(w, r)
	})
}

// SecurityHeaders returns a copy of the headers securityHeaders sets on
// every response, for responses written without the handler chain (the
// page cache's fast path).
func SecurityHeaders() http.Header {
	return http.Header{
		"Content-Security-Policy":    hdrCSP,
		"X-Content-Type-Options":     hdrNosniff,
		"X-Frame-Options":            hdrFrameDeny,
		"Referrer-Policy":            hdrReferrer,
		"Cross-Origin-Opener-Policy": hdrCrossOriginOpn,
	}.Clone()
}
