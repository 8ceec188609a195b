package storefront_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// formPost posts a same-origin form to h with the client's cookies.
func formPost(c *jarClient, path string, form url.Values) *httptest.ResponseRecorder {
	r := httptest.NewRequest("POST", path, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	for k, v := range c.cookies {
		r.AddCookie(&http.Cookie{Name: k, Value: v})
	}
	w := httptest.NewRecorder()
	c.h.ServeHTTP(w, r)
	for _, ck := range w.Result().Cookies() {
		c.cookies[ck.Name] = ck.Value
	}
	return w
}

// TestOperatorReportPages: the drop report pages open only with the
// admin token, given once in the sign-in form (a cookie MACed with the
// token, for the admin pages only) or as a bearer token; a wrong token, a
// forged cookie and a sign-in sending the browser off the admin pages
// are refused.
func TestOperatorReportPages(t *testing.T) {
	clock := &dropClock{t: time.Now()}
	sh := scriptedShop(t, clock)
	admin := &jarClient{h: sh.Handler, cookies: map[string]string{}}
	d := createRunnerDrop(t, admin, "runner-report", time.Now().Add(-time.Minute))

	op := &jarClient{h: sh.Handler, cookies: map[string]string{}}
	w := serveReq(sh.Handler, "GET", "/admin/drops/"+d.ID+"/report", "")
	if w.Code != 303 || w.Header().Get("Location") != "/admin/signin?next="+url.QueryEscape("/admin/drops/"+d.ID+"/report") {
		t.Fatalf("report page without sign-in: %d to %q", w.Code, w.Header().Get("Location"))
	}
	if w := formPost(op, "/admin/signin", url.Values{"token": {"not-the-token-at-all"}, "next": {"/admin/drops"}}); w.Code != 401 ||
		!strings.Contains(w.Body.String(), "not the admin token") || op.cookies["surge_admin"] != "" {
		t.Fatalf("wrong token: %d, cookie %q", w.Code, op.cookies["surge_admin"])
	}
	// A forged cookie: a far expiry with a made-up MAC.
	forged := &jarClient{h: sh.Handler, cookies: map[string]string{"surge_admin": "9999999999.deadbeef"}}
	if st, _ := forged.do("GET", "/admin/drops", ""); st != 303 {
		t.Errorf("forged admin cookie: %d, want the sign-in", st)
	}
	// Signing in sends the browser back, but only to an admin page.
	w = formPost(op, "/admin/signin", url.Values{"token": {apiTestToken}, "next": {"//evil.example/admin/"}})
	if w.Code != 303 || w.Header().Get("Location") != "/admin/drops" {
		t.Fatalf("sign-in: %d to %q, want /admin/drops", w.Code, w.Header().Get("Location"))
	}
	var ck *http.Cookie
	for _, c := range w.Result().Cookies() {
		if c.Name == "surge_admin" {
			ck = c
		}
	}
	if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/admin/" || strings.Contains(ck.Value, apiTestToken) {
		t.Fatalf("admin cookie %+v", ck)
	}
	st, page := op.do("GET", "/admin/drops", "")
	if st != 200 || !strings.Contains(page, `href="/admin/drops/`+d.ID+`/report"`) {
		t.Fatalf("drops page signed in: %d", st)
	}
	st, page = op.do("GET", "/admin/drops/runner-report/report", "")
	text := visibleText(page)
	for _, want := range []string{"Runner One drop: what happened", "Notified 0", "Joined before the start", "Time to sell out not sold out", "Rate limit 0"} {
		if !strings.Contains(text, want) {
			t.Errorf("report page does not show %q", want)
		}
	}
	if st != 200 {
		t.Errorf("report page: %d", st)
	}
	if w := serveReq(sh.Handler, "GET", "/admin/drops/"+d.ID+"/report", "", "Authorization", "Bearer "+apiTestToken); w.Code != 200 || w.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("report page with the bearer token: %d, Cache-Control %q", w.Code, w.Header().Get("Cache-Control"))
	}
	if w := serveReq(sh.Handler, "GET", "/admin/drops", "", "Authorization", "Bearer "+apiTestToken); w.Code != 200 {
		t.Errorf("drops page with the bearer token: %d", w.Code)
	}
	if w := serveReq(sh.Handler, "GET", "/api/v1/admin/drops/nope/report", "", "Authorization", "Bearer "+apiTestToken); w.Code != 404 {
		t.Errorf("report of an unknown drop: %d", w.Code)
	}
}

// FuzzAdminCookie: no cookie value a client makes up opens the admin
// pages, and none makes the shop fail.
func FuzzAdminCookie(f *testing.F) {
	clock := &dropClock{t: time.Now()}
	sh := scriptedShop(f, clock)
	for _, s := range []string{"", ".", "9999999999.", "9999999999.00", "1.x", strings.Repeat("9", 40) + ".ab"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		r := httptest.NewRequest("GET", "/admin/drops", nil)
		r.Header.Set("Cookie", "surge_admin="+v)
		w := httptest.NewRecorder()
		sh.Handler.ServeHTTP(w, r)
		if w.Code != 303 {
			t.Fatalf("cookie %q: %d, want the sign-in redirect", v, w.Code)
		}
	})
}
