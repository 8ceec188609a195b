package waitroom

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
	"time"
)

func testKeyring(t testing.TB) *Keyring {
	t.Helper()
	kr, err := NewKeyring(Key{ID: "k1", Secret: bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

var tokenTime = time.UnixMilli(1_900_000_000_123)

func sampleTicket() Ticket {
	return Ticket{Drop: "sneaker-drop", Epoch: 1<<63 + 5, Visitor: "c:42", Seq: 1234, Position: 99, PreQueue: true,
		Issued: tokenTime, Expires: tokenTime.Add(12 * time.Hour)}
}

func sampleAccess() accessClaims {
	return accessClaims{Drop: "sneaker-drop", Epoch: 17, Visitor: "v:abc", SessionHash: sessionHash("s"), Seq: 1, Position: 300000, Expires: tokenTime}
}

func TestTokenRoundTrip(t *testing.T) {
	kr := testKeyring(t)
	tk := sampleTicket()
	got, err := kr.ParseTicket(kr.SignTicket(tk))
	if err != nil || got != tk {
		t.Fatalf("ticket round trip = %+v, %v; want %+v", got, err, tk)
	}
	a := sampleAccess()
	gotA, err := kr.parseAccess(kr.signAccess(a))
	if err != nil || gotA != a {
		t.Fatalf("access round trip = %+v, %v; want %+v", gotA, err, a)
	}
	c := challenge{Drop: "d", Visitor: "v:x", Difficulty: 18, Nonce: [8]byte{1, 2, 3}, Expires: tokenTime}
	gotC, err := decodeChallenge(encodeChallenge(c))
	if err != nil || gotC != c {
		t.Fatalf("challenge round trip = %+v, %v; want %+v", gotC, err, c)
	}
	if n := len(kr.SignTicket(tk)); n > 160 {
		t.Errorf("ticket is %d bytes; want it small enough for a cookie at a glance (<= 160)", n)
	}
}

func TestTokenKindsDoNotMix(t *testing.T) {
	kr := testKeyring(t)
	ticket := kr.SignTicket(sampleTicket())
	access := kr.signAccess(sampleAccess())
	chal := kr.sign(encodeChallenge(challenge{Drop: "d", Visitor: "v", Expires: tokenTime}))
	if _, err := kr.parseAccess(ticket); !errors.Is(err, ErrBadAccess) {
		t.Errorf("ticket as access: %v", err)
	}
	if _, err := kr.ParseTicket(access); !errors.Is(err, ErrBadTicket) {
		t.Errorf("access as ticket: %v", err)
	}
	if _, err := kr.ParseTicket(chal); !errors.Is(err, ErrBadTicket) {
		t.Errorf("challenge as ticket: %v", err)
	}
	if err := kr.verifyPoW(SolvePoW(ticket, 1), "d", "v", 0, tokenTime.Add(-time.Hour)); !errors.Is(err, ErrBadPoW) {
		t.Errorf("ticket as challenge: %v", err)
	}
}

// TestGuestVisitor: the guest cookie names only the visitor the room
// made; anything else a client sends (a customer's "c:" ID, another
// kind of token, a tampered or foreign-key token) names nobody.
func TestGuestVisitor(t *testing.T) {
	kr := testKeyring(t)
	v, tok, err := kr.NewGuest()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(v, "v:") || !validVisitor(v) {
		t.Fatalf("guest visitor %q", v)
	}
	if got, err := kr.Guest(tok); err != nil || got != v {
		t.Fatalf("Guest(own token) = %q, %v; want %q", got, err, v)
	}
	if v2, _, _ := kr.NewGuest(); v2 == v {
		t.Fatal("two guests got the same visitor")
	}
	other, err := NewKeyring(Key{ID: "k1", Secret: bytes.Repeat([]byte{8}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	_, foreign, _ := other.NewGuest()
	tampered := tok[:len(tok)-1] + "A"
	if tampered == tok {
		tampered = tok[:len(tok)-1] + "B"
	}
	for name, bad := range map[string]string{
		"customer id": "c:51", "guest id": v, "empty": "", "ticket": kr.SignTicket(sampleTicket()),
		"access": kr.signAccess(sampleAccess()), "tampered": tampered, "other key": foreign,
		"guest payload with a ticket kind": kr.sign(append([]byte{payloadVersion, kindTicket}, make([]byte, guestIDLen)...)),
		"short":                            kr.sign([]byte{payloadVersion, kindGuest, 1}),
	} {
		if got, err := kr.Guest(bad); !errors.Is(err, ErrBadVisitor) {
			t.Errorf("Guest(%s) = %q, %v; want ErrBadVisitor", name, got, err)
		}
	}
}

func TestTokenTampering(t *testing.T) {
	kr := testKeyring(t)
	tok := kr.SignTicket(sampleTicket())
	// Every single-character change is refused.
	const alphabet = "ABCabc019-_.:"
	for i := range len(tok) {
		for _, c := range []byte(alphabet) {
			if tok[i] == c {
				continue
			}
			bad := tok[:i] + string(c) + tok[i+1:]
			if _, err := kr.ParseTicket(bad); err == nil {
				t.Fatalf("changed byte %d to %q: accepted", i, c)
			}
		}
	}
	for _, bad := range []string{"", ".", "..", "k1..", "k1.e30." + strings.Repeat("A", 43), tok + ".", "k2" + tok[2:], strings.Repeat("A", 2000)} {
		if _, err := kr.ParseTicket(bad); !errors.Is(err, ErrBadTicket) {
			t.Errorf("ParseTicket(%.40q) = %v; want ErrBadTicket", bad, err)
		}
	}
}

func TestPoWVerify(t *testing.T) {
	kr := testKeyring(t)
	now := tokenTime
	mk := func(drop, visitor string, diff int, expires time.Time) string {
		return kr.sign(encodeChallenge(challenge{Drop: drop, Visitor: visitor, Difficulty: diff, Expires: expires}))
	}
	chal := mk("d", "v:a", 10, now.Add(time.Minute))
	sol := SolvePoW(chal, 10)
	h := sha256.Sum256([]byte(sol))
	if leadingZeroBits(h) < 10 {
		t.Fatalf("SolvePoW gave %q with %d zero bits", sol, leadingZeroBits(h))
	}
	var weak string
	for n := 0; ; n++ {
		weak = chal + ":w" + string(rune('a'+n%26)) + strings.Repeat("x", n/26)
		if leadingZeroBits(sha256.Sum256([]byte(weak))) < 10 {
			break
		}
	}
	for _, tc := range []struct {
		name, sol, drop, visitor string
		need                     int
		at                       time.Time
		ok                       bool
	}{
		{"valid", sol, "d", "v:a", 10, now, true},
		{"valid, drop asks less", sol, "d", "v:a", 4, now, true},
		{"drop now asks more than the challenge", sol, "d", "v:a", 12, now, false},
		{"weak nonce", weak, "d", "v:a", 10, now, false},
		{"other drop", sol, "e", "v:a", 10, now, false},
		{"other visitor", sol, "d", "v:b", 10, now, false},
		{"expired", sol, "d", "v:a", 10, now.Add(time.Minute), false},
		{"no separator", strings.ReplaceAll(sol, ":", ""), "d", "v:a", 10, now, false},
		{"empty nonce", chal + ":", "d", "v:a", 10, now, false},
		{"long nonce", chal + ":" + strings.Repeat("0", maxNonceLen+1), "d", "v:a", 10, now, false},
		{"forged challenge", SolvePoW(mk("d", "v:a", 0, now.Add(time.Minute))[:3]+"AAAA", 0), "d", "v:a", 0, now, false},
		{"empty", "", "d", "v:a", 1, now, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := kr.verifyPoW(tc.sol, tc.drop, tc.visitor, tc.need, tc.at)
			if tc.ok != (err == nil) || err != nil && !errors.Is(err, ErrBadPoW) {
				t.Errorf("verifyPoW = %v; want ok=%v", err, tc.ok)
			}
		})
	}
	for _, tc := range []struct {
		hash [32]byte
		want int
	}{
		{[32]byte{0x80}, 0}, {[32]byte{0x01}, 7}, {[32]byte{0, 0x40}, 9}, {[32]byte{}, 256}, {[32]byte{0, 0, 0xff}, 16},
	} {
		if got := leadingZeroBits(tc.hash); got != tc.want {
			t.Errorf("leadingZeroBits(%x...) = %d; want %d", tc.hash[:3], got, tc.want)
		}
	}
}

// FuzzParseToken feeds arbitrary text to every token parser: none may
// panic, and anything accepted must be what we signed.
func FuzzParseToken(f *testing.F) {
	kr := testKeyring(f)
	f.Add(kr.SignTicket(sampleTicket()))
	f.Add(kr.signAccess(sampleAccess()))
	f.Add(SolvePoW(kr.sign(encodeChallenge(challenge{Drop: "d", Visitor: "v:a", Expires: tokenTime})), 0))
	_, guest, _ := kr.NewGuest()
	f.Add(guest)
	f.Add("k1.AQE.")
	f.Add("..")
	f.Fuzz(func(t *testing.T, s string) {
		if tk, err := kr.ParseTicket(s); err == nil {
			if again := kr.SignTicket(tk); again != s {
				t.Fatalf("accepted %q, which is not what we sign for %+v (%q)", s, tk, again)
			}
		}
		if a, err := kr.parseAccess(s); err == nil {
			if again := kr.signAccess(a); again != s {
				t.Fatalf("accepted access %q, not what we sign (%q)", s, again)
			}
		}
		_ = kr.verifyPoW(s, "d", "v:a", 0, tokenTime.Add(-time.Hour))
		if v, err := kr.Guest(s); err == nil && !strings.HasPrefix(v, "v:") {
			t.Fatalf("accepted guest %q naming %q", s, v)
		}
	})
}

// FuzzDecodePayload feeds arbitrary bytes to the payload decoders (as if
// signed): none may panic, and a decoded value has exactly one encoding.
func FuzzDecodePayload(f *testing.F) {
	f.Add(encodeTicket(sampleTicket()))
	f.Add(encodeAccess(sampleAccess()))
	f.Add(encodeChallenge(challenge{Drop: "d", Visitor: "v", Difficulty: 3, Expires: tokenTime}))
	f.Add(encodeGuest([guestIDLen]byte{1, 2}))
	f.Add([]byte{1, 1, 0x80, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		if tk, err := decodeTicket(b); err == nil && !bytes.Equal(encodeTicket(tk), b) {
			t.Fatalf("ticket %x decodes to %+v which encodes as %x", b, tk, encodeTicket(tk))
		}
		if a, err := decodeAccess(b); err == nil && !bytes.Equal(encodeAccess(a), b) {
			t.Fatalf("access %x decodes to %+v which encodes as %x", b, a, encodeAccess(a))
		}
		if c, err := decodeChallenge(b); err == nil && !bytes.Equal(encodeChallenge(c), b) {
			t.Fatalf("challenge %x decodes to %+v which encodes as %x", b, c, encodeChallenge(c))
		}
		if id, err := decodeGuest(b); err == nil && !bytes.Equal(encodeGuest(id), b) {
			t.Fatalf("guest %x decodes to %x which encodes as %x", b, id, encodeGuest(id))
		}
	})
}
