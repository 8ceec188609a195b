package storefront

import (
	"net/url"
	"strings"
)

// maxNextLen bounds a redirect target taken from a request.
const maxNextLen = 2048

// localPath returns next when it is a path on this site, and fallback
// otherwise. next comes from the request (a ?next= parameter, a hidden
// form field), so it is checked as a browser would read it: browsers drop
// tabs and line breaks anywhere in a URL, trim leading control characters
// and spaces, and read a backslash as a slash, so "/\t/evil.example" and
// "/\\evil.example" both lead to //evil.example, another site. Rather than
// imitate that normalisation, anything it would change is refused: no
// control characters, no spaces at the start, no backslashes. What is left
// must be an absolute path that does not start with "//" (a
// scheme-relative URL), and it is sent out as Go re-encodes it, so what
// the browser is told is exactly what was checked.
func localPath(next, fallback string) string {
	if next == "" || len(next) > maxNextLen || next[0] != '/' {
		return fallback
	}
	for i := 0; i < len(next); i++ {
		if c := next[i]; c < 0x20 || c == 0x7f || c == '\\' {
			return fallback
		}
	}
	if len(next) > 1 && next[1] == '/' {
		return fallback
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Opaque != "" || u.User != nil || u.Host != "" || !strings.HasPrefix(u.Path, "/") {
		return fallback
	}
	out := u.EscapedPath()
	if strings.HasPrefix(out, "//") || strings.ContainsRune(out, '\\') {
		return fallback
	}
	if u.RawQuery != "" {
		// Controls are refused above; a space is the one character left
		// that a browser would trim from the end.
		out += "?" + strings.ReplaceAll(u.RawQuery, " ", "%20")
	}
	return out
}
