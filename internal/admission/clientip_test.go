package admission

import (
	"fmt"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

func mustPrefixes(tb testing.TB, s ...string) []netip.Prefix {
	tb.Helper()
	p, err := ParseTrustedProxies(s)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

func TestClientIP(t *testing.T) {
	proxies := mustPrefixes(t, "10.0.0.0/8", "2001:db8:ffff::/48", "192.0.2.9")
	for _, tc := range []struct {
		name    string
		header  string // configured header; "" = none
		trusted []netip.Prefix
		remote  string
		values  []string
		want    string
	}{
		{"no header configured: peer", "", proxies, "10.1.1.1:5000", []string{"203.0.113.7"}, "10.1.1.1"},
		{"no trusted proxies: peer", "X-Forwarded-For", nil, "10.1.1.1:5000", []string{"203.0.113.7"}, "10.1.1.1"},
		{"untrusted peer: header ignored", "X-Forwarded-For", proxies, "198.51.100.4:5000", []string{"203.0.113.7"}, "198.51.100.4"},
		{"trusted peer, one hop", "X-Forwarded-For", proxies, "10.1.1.1:5000", []string{"203.0.113.7"}, "203.0.113.7"},
		{"rightmost untrusted wins over a forged left", "X-Forwarded-For", proxies, "10.1.1.1:5000",
			[]string{"1.2.3.4, 203.0.113.7, 10.2.2.2"}, "203.0.113.7"},
		{"several header lines", "X-Forwarded-For", proxies, "10.1.1.1:5000",
			[]string{"1.2.3.4", "203.0.113.7", "10.2.2.2, 192.0.2.9"}, "203.0.113.7"},
		{"all hops trusted: leftmost", "X-Forwarded-For", proxies, "10.1.1.1:5000", []string{"10.3.3.3, 10.2.2.2"}, "10.3.3.3"},
		{"garbage from a trusted proxy stops the walk", "X-Forwarded-For", proxies, "10.1.1.1:5000",
			[]string{"203.0.113.7, not-an-ip, 10.2.2.2"}, "10.2.2.2"},
		{"garbage left of the client is never reached", "X-Forwarded-For", proxies, "10.1.1.1:5000",
			[]string{"<script>, 203.0.113.7"}, "203.0.113.7"},
		{"empty elements skipped", "X-Forwarded-For", proxies, "10.1.1.1:5000", []string{" , 203.0.113.7 ,, "}, "203.0.113.7"},
		{"empty header: peer", "X-Forwarded-For", proxies, "10.1.1.1:5000", nil, "10.1.1.1"},
		{"ports and brackets", "X-Forwarded-For", proxies, "10.1.1.1:5000", []string{"[2001:db8::1]:443, 203.0.113.7:80"}, "203.0.113.7"},
		{"bracketed v6 without port", "X-Forwarded-For", proxies, "10.1.1.1:5000", []string{"[2001:db8::1]"}, "2001:db8::1"},
		{"v6 proxy", "X-Forwarded-For", proxies, "[2001:db8:ffff::5]:5000", []string{"2001:db8:1::1"}, "2001:db8:1::1"},
		{"v4-mapped v6 is v4", "X-Forwarded-For", proxies, "[::ffff:10.1.1.1]:5000", []string{"::ffff:203.0.113.7"}, "203.0.113.7"},
		{"single-address header", "X-Real-IP", proxies, "10.1.1.1:5000", []string{"203.0.113.7"}, "203.0.113.7"},
		{"unparseable peer", "X-Forwarded-For", proxies, "pipe", []string{"203.0.113.7"}, "invalid IP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.remote
			for _, v := range tc.values {
				r.Header.Add(tc.header, v)
				if tc.header == "" {
					r.Header.Add("X-Forwarded-For", v)
				}
			}
			got := NewClientIP(tc.header, tc.trusted).Addr(r)
			if got.String() != tc.want {
				t.Fatalf("client = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestParseTrustedProxies(t *testing.T) {
	got, err := ParseTrustedProxies([]string{"10.0.0.0/8", " 192.0.2.7 ", "", "2001:db8::/32", "10.1.2.3/8"})
	if err != nil {
		t.Fatal(err)
	}
	want := "[10.0.0.0/8 192.0.2.7/32 2001:db8::/32 10.0.0.0/8]"
	if s := fmt.Sprint(got); s != want {
		t.Fatalf("got %s, want %s", s, want)
	}
	if _, err := ParseTrustedProxies([]string{"proxy.local"}); err == nil {
		t.Fatal("accepted a host name")
	}
}

func TestClientKeyGroupsIPv6By64(t *testing.T) {
	a := ClientKey(netip.MustParseAddr("2001:db8:1:2:aaaa::1"))
	b := ClientKey(netip.MustParseAddr("2001:db8:1:2:bbbb::2"))
	c := ClientKey(netip.MustParseAddr("2001:db8:1:3::1"))
	if a != b || a == c {
		t.Fatalf("keys %q %q %q: want the first two equal and the third different", a, b, c)
	}
	if k := ClientKey(netip.MustParseAddr("203.0.113.7")); k != "203.0.113.7" {
		t.Fatalf("v4 key %q", k)
	}
}

// FuzzClientAddr checks the invariants of the header walk on any input:
// it never panics; an untrusted peer is always the answer; any other answer
// is an address that appears in the header; and it is never a trusted proxy
// unless every hop is one.
func FuzzClientAddr(f *testing.F) {
	f.Add("10.1.1.1:5000", "1.2.3.4, 203.0.113.7, 10.2.2.2", "")
	f.Add("10.1.1.1:5000", "[2001:db8::1]:443,,", "203.0.113.7:80")
	f.Add("198.51.100.4:1", "203.0.113.7", "")
	f.Add("[::ffff:10.0.0.1]:1", "::ffff:1.2.3.4%eth0", "[fe80::1%25en0]")
	f.Add("10.0.0.1:1", "10.0.0.2,10.0.0.3", "garbage")
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8:ffff::/48")}
	f.Fuzz(func(t *testing.T, remote, line1, line2 string) {
		values := []string{line1, line2}
		got := clientAddr(remote, values, trusted)
		peer := parseHop(remote)
		if got == peer {
			return
		}
		if !peer.IsValid() || !isTrusted(peer, trusted) {
			t.Fatalf("untrusted peer %v, but the answer is %v", peer, got)
		}
		if !got.IsValid() {
			t.Fatalf("invalid answer %v from a trusted peer", got)
		}
		found, allTrusted := false, true
		for _, v := range values {
			for _, hop := range strings.Split(v, ",") {
				a := parseHop(hop)
				if a == got {
					found = true
				}
				if strings.TrimSpace(hop) != "" && (!a.IsValid() || !isTrusted(a, trusted)) {
					allTrusted = false
				}
			}
		}
		if !found {
			t.Fatalf("answer %v is not in the header %q", got, values)
		}
		if isTrusted(got, trusted) && !allTrusted && !hasInvalid(values) {
			t.Fatalf("answer %v is a trusted proxy though %q has an untrusted hop", got, values)
		}
	})
}

func hasInvalid(values []string) bool {
	for _, v := range values {
		for _, hop := range strings.Split(v, ",") {
			if strings.TrimSpace(hop) != "" && !parseHop(hop).IsValid() {
				return true
			}
		}
	}
	return false
}
