package storefront_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
var nextField = regexp.MustCompile(`name="next" value="([^"]*)"`)

// formCSRF opens page with c and returns the CSRF token of its form.
func formCSRF(t *testing.T, c *jarClient, page string) string {
	t.Helper()
	st, body := c.do("GET", page, "")
	m := csrfField.FindStringSubmatch(body)
	if st != 200 || m == nil {
		t.Fatalf("GET %s: %d, no CSRF field", page, st)
	}
	return m[1]
}

// postForm posts form fields with c and returns the status and Location.
func postForm(c *jarClient, path string, form url.Values) (int, string) {
	r := send(c, "POST", path, form.Encode(), "Content-Type", "application/x-www-form-urlencoded")
	return r.Code, r.Header().Get("Location")
}

// TestNextStaysOnSite: a next parameter that a browser would read as
// another site (tab or line break inside "//", a backslash) is replaced by
// a page of the shop, on the standby line's redirect, on sign-in and
// sign-up, and in the hidden field the sign-in page echoes.
func TestNextStaysOnSite(t *testing.T) {
	sh := openShop(t, 0, apiTestToken)
	evil := []string{"/\t/evil.example", "/\n/evil.example", "/\r/evil.example", "/\\evil.example", "\\\\evil.example",
		"//evil.example", " //evil.example", "https://evil.example/"}

	for _, next := range evil {
		r := serveReq(sh.Handler, "GET", "/queue?next="+url.QueryEscape(next), "")
		if loc := r.Header().Get("Location"); r.Code != 303 || loc != "/" {
			t.Errorf("GET /queue?next=%q: %d Location %q, want 303 to /", next, r.Code, loc)
		}
		c := &jarClient{h: sh.Handler, cookies: map[string]string{}}
		st, body := c.do("GET", "/account/signin?next="+url.QueryEscape(next), "")
		if m := nextField.FindStringSubmatch(body); st != 200 || m == nil || m[1] != "/account" {
			t.Errorf("GET /account/signin?next=%q: %d, hidden next %q, want /account", next, st, m)
		}
	}
	if r := serveReq(sh.Handler, "GET", "/queue?next=%2Fproducts%2Fx%3Fsku%3DA", ""); r.Header().Get("Location") != "/products/x?sku=A" {
		t.Errorf("a page of the shop as next: Location %q, want /products/x?sku=A", r.Header().Get("Location"))
	}

	for i, next := range evil {
		c := &jarClient{h: sh.Handler, cookies: map[string]string{}}
		email := "next" + string(rune('a'+i)) + "@example.com"
		st, loc := postForm(c, "/account/signup", url.Values{"csrf": {formCSRF(t, c, "/account/signup")}, "email": {email},
			"password": {"correct horse battery"}, "name": {"N"}, "next": {next}})
		if st != 303 || loc != "/account" {
			t.Errorf("sign-up with next %q: %d Location %q, want 303 to /account", next, st, loc)
		}
		c = &jarClient{h: sh.Handler, cookies: map[string]string{}}
		st, loc = postForm(c, "/account/signin", url.Values{"csrf": {formCSRF(t, c, "/account/signin")}, "email": {email},
			"password": {"correct horse battery"}, "next": {next}})
		if st != 303 || loc != "/account" {
			t.Errorf("sign-in with next %q: %d Location %q, want 303 to /account", next, st, loc)
		}
	}
	c := &jarClient{h: sh.Handler, cookies: map[string]string{}}
	if st, loc := postForm(c, "/account/signin", url.Values{"csrf": {formCSRF(t, c, "/account/signin")}, "email": {"nexta@example.com"},
		"password": {"correct horse battery"}, "next": {"/cart"}}); st != 303 || loc != "/cart" {
		t.Errorf("sign-in with next /cart: %d Location %q", st, loc)
	}
}

// send serves one request with c's cookies, keeps the cookies the
// answer sets and returns the whole answer.
func send(c *jarClient, method, target, body string, hdr ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	for k, v := range c.cookies {
		r.AddCookie(&http.Cookie{Name: k, Value: v})
	}
	if c.addr != "" {
		r.RemoteAddr = c.addr
	}
	w := httptest.NewRecorder()
	c.h.ServeHTTP(w, r)
	for _, ck := range w.Result().Cookies() {
		if ck.MaxAge < 0 {
			delete(c.cookies, ck.Name)
		} else {
			c.cookies[ck.Name] = ck.Value
		}
	}
	return w
}
