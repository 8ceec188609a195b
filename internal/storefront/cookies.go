package storefront

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/surge-commerce/surge/internal/admission"
)

// CookieSecure says when the cookies Surge sets carry the Secure
// attribute, which keeps a browser from ever sending them over plain HTTP.
type CookieSecure string

// CookieSecure modes.
const (
	// CookieSecureAuto marks cookies Secure on requests that came over
	// HTTPS: TLS to Surge itself, or X-Forwarded-Proto: https from a
	// trusted proxy that ended TLS. Plain HTTP (a laptop, a test) keeps
	// working, since browsers drop Secure cookies set over HTTP.
	CookieSecureAuto CookieSecure = "auto"
	// CookieSecureAlways marks every cookie Secure (a shop served only
	// over HTTPS, whatever its proxy says).
	CookieSecureAlways CookieSecure = "always"
	// CookieSecureNever never does.
	CookieSecureNever CookieSecure = "never"
)

// CookieSecureModes lists the modes, for flag help and completion.
var CookieSecureModes = []string{string(CookieSecureAuto), string(CookieSecureAlways), string(CookieSecureNever)}

// ParseCookieSecure reads a mode ("" is auto).
func ParseCookieSecure(s string) (CookieSecure, error) {
	switch m := CookieSecure(strings.ToLower(strings.TrimSpace(s))); m {
	case "":
		return CookieSecureAuto, nil
	case CookieSecureAuto, CookieSecureAlways, CookieSecureNever:
		return m, nil
	}
	return "", fmt.Errorf("cookie-secure %q: want auto, always or never", s)
}

// SecureCookies returns middleware that adds the Secure attribute to every
// cookie a response sets, as mode says (see CookieSecure). It works on the
// Set-Cookie headers themselves, so no handler that sets a cookie (the
// session, the waiting room's tickets and tokens, the replica-read marker)
// can forget it. X-Forwarded-Proto is believed only from trusted proxies:
// anyone else could send it.
func SecureCookies(mode CookieSecure, trusted []netip.Prefix) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		if mode == CookieSecureNever {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if mode != CookieSecureAlways && !overHTTPS(r, trusted) {
				next.ServeHTTP(w, r)
				return
			}
			sw := &secureCookieWriter{ResponseWriter: w}
			next.ServeHTTP(sw, r)
			// A handler that wrote nothing has its headers sent after it
			// returns.
			sw.secure()
		})
	}
}

// overHTTPS reports whether r reached the shop over HTTPS: TLS on this
// connection, or a trusted proxy saying it ended TLS.
func overHTTPS(r *http.Request, trusted []netip.Prefix) bool {
	if r.TLS != nil {
		return true
	}
	proto := r.Header.Get("X-Forwarded-Proto")
	if proto == "" || !admission.PeerTrusted(r.RemoteAddr, trusted) {
		return false
	}
	// A chain of proxies may list one scheme per hop; the nearest is last.
	if i := strings.LastIndexByte(proto, ','); i >= 0 {
		proto = proto[i+1:]
	}
	return strings.EqualFold(strings.TrimSpace(proto), "https")
}

// secureCookieWriter adds Secure to the Set-Cookie headers before they are
// sent.
type secureCookieWriter struct {
	http.ResponseWriter
	sent bool
}

func (w *secureCookieWriter) secure() {
	if w.sent {
		return
	}
	w.sent = true
	cookies := w.Header()["Set-Cookie"]
	for i, c := range cookies {
		if !hasSecure(c) {
			cookies[i] = c + "; Secure"
		}
	}
}

// hasSecure reports whether a Set-Cookie value has the Secure attribute.
func hasSecure(setCookie string) bool {
	_, attrs, _ := strings.Cut(setCookie, ";")
	for attrs != "" {
		var a string
		a, attrs, _ = strings.Cut(attrs, ";")
		if strings.EqualFold(strings.TrimSpace(a), "secure") {
			return true
		}
	}
	return false
}

func (w *secureCookieWriter) WriteHeader(code int) {
	if code >= 200 {
		w.secure()
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *secureCookieWriter) Write(b []byte) (int, error) {
	w.secure()
	return w.ResponseWriter.Write(b)
}

// Flush passes through for streaming responses.
func (w *secureCookieWriter) Flush() {
	w.secure()
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Hijack passes through for protocol upgrades.
func (w *secureCookieWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if h, ok := w.ResponseWriter.(http.Hijacker); ok {
		return h.Hijack()
	}
	return nil, nil, errors.New("hijack not supported")
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *secureCookieWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
