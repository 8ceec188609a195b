package storefront

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// browserReads is what a browser makes of a URL before it resolves it
// (the WHATWG URL parser): leading and trailing C0 controls and spaces
// trimmed, tabs and line breaks removed anywhere, and, for http(s), a
// backslash read as a slash.
func browserReads(s string) string {
	s = strings.TrimFunc(s, func(r rune) bool { return r <= 0x20 })
	s = strings.Map(func(r rune) rune {
		switch r {
		case '\t', '\n', '\r':
			return -1
		case '\\':
			return '/'
		}
		return r
	}, s)
	return s
}

// leavesSite reports whether a browser at https://shop.example/ sent to
// location would go to another host: after its normalisation, anything
// but a path that starts with a single slash names a scheme or a host
// (a relative path without a leading slash stays here too, but the
// shop never sends one).
func leavesSite(location string) bool {
	s := browserReads(location)
	return !strings.HasPrefix(s, "/") || strings.HasPrefix(s, "//")
}

func TestLocalPath(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/account", "/account"},
		{"/products/linen-shirt?sku=A-1", "/products/linen-shirt?sku=A-1"},
		{"/search?q=a+b&sort=newest", "/search?q=a+b&sort=newest"},
		{"/cart#top", "/cart"},
		{"/%2F%2Fevil.example", "/%2F%2Fevil.example"},
		{"", "/fallback"},
		{"account", "/fallback"},
		{"//evil.example", "/fallback"},
		{"/\t/evil.example", "/fallback"},
		{"/\n/evil.example", "/fallback"},
		{"/\r\n/evil.example", "/fallback"},
		{"/\\evil.example", "/fallback"},
		{"\\/evil.example", "/fallback"},
		{" //evil.example", "/fallback"},
		{"\x00//evil.example", "/fallback"},
		{"https://evil.example/", "/fallback"},
		{"javascript:alert(1)", "/fallback"},
		{"/" + strings.Repeat("a", maxNextLen), "/fallback"},
	} {
		if got := localPath(tc.in, "/fallback"); got != tc.want {
			t.Errorf("localPath(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// FuzzLocalPath: whatever a request carries as next, the Location the
// shop answers with keeps a browser on this site, and a browser reads it
// as it was sent.
func FuzzLocalPath(f *testing.F) {
	for _, s := range []string{"/account", "/\t/evil.example", "/\\evil.example", "//evil.example", "/%2F/x",
		"/a/../..//evil.example", "/./\t/x", " /x", "/x?next=//evil", "/\u3002evil", "https:evil.example"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, next string) {
		to := localPath(next, "/account")
		w := httptest.NewRecorder()
		redirect(w, httptest.NewRequest("POST", "/account/signin", nil), to)
		loc := w.Header().Get("Location")
		if leavesSite(loc) {
			t.Fatalf("next %q: Location %q leaves the site (a browser reads %q)", next, loc, browserReads(loc))
		}
		if browserReads(loc) != loc {
			t.Fatalf("next %q: Location %q is read by a browser as %q", next, loc, browserReads(loc))
		}
		if w.Code != http.StatusSeeOther {
			t.Fatalf("next %q: status %d", next, w.Code)
		}
	})
}
