package admission

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// ClientIP finds a request's client address. By default it is the peer
// address of the connection. Only when a header is configured and the peer
// is a trusted proxy does it read the header, and then it takes the
// rightmost address that is not itself a trusted proxy: everything left of
// that was written by the client and can be forged, everything right of it
// was appended by proxies we trust.
type ClientIP struct {
	header  string
	trusted []netip.Prefix
}

// NewClientIP returns a ClientIP reading header (such as X-Forwarded-For,
// or a single-address header such as X-Real-IP) from the trusted proxies.
// With an empty header or no trusted proxies it always uses the peer.
func NewClientIP(header string, trusted []netip.Prefix) *ClientIP {
	return &ClientIP{header: http.CanonicalHeaderKey(header), trusted: trusted}
}

// Addr returns r's client address; it is invalid when even the peer
// address cannot be parsed.
func (c *ClientIP) Addr(r *http.Request) netip.Addr {
	var values []string
	if c.header != "" && len(c.trusted) > 0 {
		values = r.Header[c.header]
	}
	return clientAddr(r.RemoteAddr, values, c.trusted)
}

// clientAddr is ClientIP.Addr on plain values: the peer's "host:port" and
// the header's lines in arrival order.
func clientAddr(remote string, values []string, trusted []netip.Prefix) netip.Addr {
	peer := parseHop(remote)
	if !peer.IsValid() || !isTrusted(peer, trusted) {
		return peer
	}
	// Walk right to left over every hop of every line; the last line was
	// added by the proxy nearest to us.
	client := peer
	for i := len(values) - 1; i >= 0; i-- {
		rest := values[i]
		for rest != "" {
			var hop string
			if j := strings.LastIndexByte(rest, ','); j >= 0 {
				hop, rest = rest[j+1:], rest[:j]
			} else {
				hop, rest = rest, ""
			}
			if strings.TrimSpace(hop) == "" {
				continue
			}
			a := parseHop(hop)
			if !a.IsValid() {
				// A trusted proxy wrote something we cannot read: stop at
				// the last hop we could, rather than trust what lies beyond.
				return client
			}
			client = a
			if !isTrusted(a, trusted) {
				return a
			}
		}
	}
	// Every hop was a trusted proxy: the leftmost is as far as we can see.
	return client
}

// parseHop reads one address as proxies write them: "192.0.2.1",
// "192.0.2.1:4711", "2001:db8::1", "[2001:db8::1]:4711" or "[2001:db8::1]".
// IPv4-mapped IPv6 addresses become IPv4, and zones are dropped.
func parseHop(s string) netip.Addr {
	s = strings.TrimSpace(s)
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, err2 := netip.ParseAddrPort(s)
		switch {
		case err2 == nil:
			a = ap.Addr()
		case len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']':
			if a, err = netip.ParseAddr(s[1 : len(s)-1]); err != nil {
				return netip.Addr{}
			}
		default:
			return netip.Addr{}
		}
	}
	return a.Unmap().WithZone("")
}

// PeerTrusted reports whether a connection's peer ("host:port", as in
// http.Request.RemoteAddr) is one of the trusted proxies, whose
// forwarding headers may be believed.
func PeerTrusted(remote string, trusted []netip.Prefix) bool {
	a := parseHop(remote)
	return a.IsValid() && isTrusted(a, trusted)
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ParseTrustedProxies parses CIDR prefixes ("10.0.0.0/8") and single
// addresses ("192.0.2.7", taken as /32 or /128), as given to a flag.
func ParseTrustedProxies(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("admission: trusted proxy %q: want an address or CIDR prefix", s)
		}
		a = a.Unmap().WithZone("")
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// ClientKey is the rate-limit key for a client address. IPv6 clients are
// grouped by /64, the block one subscriber usually gets, so rotating
// through addresses inside it buys nothing.
func ClientKey(a netip.Addr) string {
	if !a.IsValid() {
		return "unknown"
	}
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}
