package pagecache

import "bytes"

// fastRequest is a request the fast path may answer.
type fastRequest struct {
	n    int      // bytes of the request: request line to blank line
	head bool     // HEAD, else GET
	key  []byte   // cache key: the target, a path plus a canonical query
	inm  []string // If-None-Match values
	id   string   // the client's X-Request-Id to echo, as the middleware does
}

// parseFast results.
const (
	parseMore = iota // incomplete, nothing refused so far: read more
	parseOK          // a complete request the fast path may answer
	parseNo          // net/http must read this request
)

// parseFast reads the request at the start of b. It accepts only what it
// reads exactly as net/http would and what makes no difference to a cache
// hit: a GET or HEAD in origin form of HTTP/1.1, with CRLF line ends, one
// Host, no body, no cookie, no credentials, no upgrade, and a target that is
// its own cache key (path of unreserved characters and '/', query canonical
// as appendKey would make it). Everything else is parseNo, for net/http to
// answer, or refuse with 400.
func parseFast(b []byte, req *fastRequest) int {
	var rest []byte
	switch {
	case bytes.HasPrefix(b, []byte("GET ")):
		rest = b[4:]
	case bytes.HasPrefix(b, []byte("HEAD ")):
		rest = b[5:]
		req.head = true
	case len(b) < 5 && (bytes.HasPrefix([]byte("GET "), b) || bytes.HasPrefix([]byte("HEAD "), b)):
		return parseMore
	default:
		return parseNo
	}
	sp := bytes.IndexByte(rest, ' ')
	if sp < 0 {
		if !targetPrefixOK(rest) {
			return parseNo
		}
		return parseMore
	}
	target := rest[:sp]
	if !targetOK(target) {
		return parseNo
	}
	rest = rest[sp+1:]
	const version = "HTTP/1.1\r\n"
	if len(rest) < len(version) {
		if !bytes.HasPrefix([]byte(version), rest) {
			return parseNo
		}
		return parseMore
	}
	if string(rest[:len(version)]) != version {
		return parseNo
	}
	rest = rest[len(version):]
	hosts := 0
	idSeen := false
	for {
		eol := bytes.IndexByte(rest, '\n')
		if eol < 0 {
			if bytes.IndexByte(rest, '\r') >= 0 && rest[len(rest)-1] != '\r' {
				return parseNo // CR not followed by LF
			}
			return parseMore
		}
		if eol == 0 || rest[eol-1] != '\r' {
			return parseNo // bare LF
		}
		line := rest[:eol-1]
		rest = rest[eol+1:]
		if len(line) == 0 {
			break
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return parseNo
		}
		name := line[:colon]
		for _, c := range name {
			if !tokenByte(c) {
				return parseNo
			}
		}
		value := trimOWS(line[colon+1:])
		for _, c := range value {
			if c != '\t' && (c < 0x20 || c == 0x7f) {
				return parseNo
			}
		}
		switch {
		case eqFold(name, "host"):
			hosts++
			if !hostOK(value) {
				return parseNo
			}
		case eqFold(name, "connection"):
			if !eqFold(value, "keep-alive") {
				return parseNo
			}
		case eqFold(name, "if-none-match"):
			req.inm = append(req.inm, string(value))
		case eqFold(name, "x-request-id"):
			// The middleware echoes the first one when it is 1 to 64 bytes.
			if !idSeen {
				idSeen = true
				if len(value) > 0 && len(value) <= 64 {
					req.id = string(value)
				}
			}
		case eqFold(name, "cookie"), eqFold(name, "authorization"), eqFold(name, "proxy-authorization"),
			eqFold(name, "content-length"), eqFold(name, "transfer-encoding"), eqFold(name, "expect"),
			eqFold(name, "upgrade"), eqFold(name, "http2-settings"), eqFold(name, "te"), eqFold(name, "trailer"):
			// Personal, a body, or a protocol change: net/http's.
			return parseNo
		}
	}
	if hosts != 1 {
		return parseNo
	}
	req.n = len(b) - len(rest)
	req.key = target
	return parseOK
}

// targetOK reports whether t is its own cache key: '/' then path bytes that
// URL.EscapedPath keeps as they are, and at most a non-empty canonical
// query.
func targetOK(t []byte) bool {
	if len(t) == 0 || t[0] != '/' {
		return false
	}
	path, query, hasQuery := bytes.Cut(t, []byte("?"))
	for _, c := range path {
		if c != '/' && !unreserved(c) {
			return false
		}
	}
	if !hasQuery {
		return true
	}
	return len(query) > 0 && canonicalQuery(string(query))
}

// targetPrefixOK reports whether t may be the start of a target targetOK
// accepts, so that an incomplete request line is refused early.
func targetPrefixOK(t []byte) bool {
	if len(t) == 0 {
		return true
	}
	if t[0] != '/' {
		return false
	}
	for _, c := range t {
		if c != '/' && c != '?' && c != '=' && c != '&' && !unreserved(c) {
			return false
		}
	}
	return true
}

// hostOK accepts a host name or address with an optional port; anything
// else goes to net/http, which checks Host fully.
func hostOK(v []byte) bool {
	if len(v) == 0 {
		return false
	}
	for _, c := range v {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == ':' || c == '[' || c == ']') {
			return false
		}
	}
	return true
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// eqFold reports whether b equals the lower-case ASCII s, ignoring case.
func eqFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}
