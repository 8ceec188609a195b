package loadtest

import (
	"fmt"
	"net/netip"
	"strings"
)

// maxSourceAddrs bounds the local addresses a run spreads over: each has
// its own connection pool.
const maxSourceAddrs = 4096

// ParseSourceIPs parses local addresses to send from: a comma-separated
// list of addresses (127.0.0.2), ranges (127.0.0.1-127.0.0.200) and
// prefixes (127.0.1.0/24; IPv4 network and broadcast addresses are left
// out). Sessions take the addresses in turn, so a target that limits
// each client address (a drop's joins: one a second, bursts of 20) sees
// many clients, as it would on the day. An empty s is none.
func ParseSourceIPs(s string) ([]netip.Addr, error) {
	var out []netip.Addr
	add := func(a netip.Addr) error {
		if len(out) >= maxSourceAddrs {
			return fmt.Errorf("source addresses %q: more than %d", s, maxSourceAddrs)
		}
		out = append(out, a)
		return nil
	}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		bad := fmt.Errorf("source address %q: want an address (127.0.0.2), a range (127.0.0.1-127.0.0.200) or a prefix (127.0.1.0/24)", part)
		var lo, hi netip.Addr
		switch {
		case strings.Contains(part, "/"):
			p, err := netip.ParsePrefix(part)
			if err != nil {
				return nil, bad
			}
			p = p.Masked()
			lo = p.Addr()
			hi = lastAddr(p)
			if lo.Is4() && p.Bits() < 31 {
				lo, hi = lo.Next(), hi.Prev()
			}
		case strings.Contains(part, "-"):
			a, b, _ := strings.Cut(part, "-")
			var err1, err2 error
			lo, err1 = netip.ParseAddr(strings.TrimSpace(a))
			hi, err2 = netip.ParseAddr(strings.TrimSpace(b))
			if err1 != nil || err2 != nil || lo.BitLen() != hi.BitLen() || hi.Less(lo) {
				return nil, bad
			}
		default:
			a, err := netip.ParseAddr(part)
			if err != nil {
				return nil, bad
			}
			lo, hi = a, a
		}
		for a := lo; a.IsValid() && !hi.Less(a); a = a.Next() {
			if err := add(a.Unmap()); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// lastAddr is the highest address of p (which is masked).
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}
