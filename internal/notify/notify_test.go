package notify_test

import (
	"errors"
	"net/mail"
	"strings"
	"testing"

	"github.com/surge-commerce/surge/internal/notify"
)

func TestNormalizeEmail(t *testing.T) {
	for _, tt := range []struct {
		in, want string
		ok       bool
	}{
		{"ada@example.com", "ada@example.com", true},
		{"  Ada.Lovelace+drops@Example.COM ", "ada.lovelace+drops@example.com", true},
		{"", "", false},
		{"ada", "", false},
		{"ada@localhost", "", false},
		{"ada@example.", "", false},
		{"Ada <ada@example.com>", "", false},
		{"ada@example.com, bob@example.com", "", false},
		{"ada@example.com\r\nBcc: eve@example.com", "", false},
		{"ada@exa\x00mple.com", "", false},
		{"\xff@example.com", "", false},
		{strings.Repeat("a", 243) + "@example.com", "", false},
		{strings.Repeat("a", 64) + "@" + strings.Repeat("b", 170) + ".com", strings.Repeat("a", 64) + "@" + strings.Repeat("b", 170) + ".com", true},
	} {
		got, err := notify.NormalizeEmail(tt.in)
		if tt.ok != (err == nil) || got != tt.want {
			t.Errorf("NormalizeEmail(%q) = %q, %v; want %q ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
		if err != nil && !errors.Is(err, notify.ErrInvalid) {
			t.Errorf("NormalizeEmail(%q) error %v is not ErrInvalid", tt.in, err)
		}
	}
}

func TestTokens(t *testing.T) {
	a, b := notify.NewToken(), notify.NewToken()
	if a == b || !notify.ValidToken(a) || !notify.ValidToken(b) {
		t.Fatalf("NewToken gave %q and %q", a, b)
	}
	for _, bad := range []string{"", a[:25], a + "A", strings.ToLower(a), a[:25] + "1", a[:25] + "="} {
		if notify.ValidToken(bad) {
			t.Errorf("ValidToken(%q) = true", bad)
		}
	}
	if string(notify.HashToken(a)) == string(notify.HashToken(b)) || len(notify.HashToken(a)) != 32 {
		t.Error("HashToken does not tell tokens apart")
	}
}

// FuzzNormalizeEmail: whatever comes in, an accepted address is one plain
// address a mail header can carry, and normalising it again changes
// nothing.
func FuzzNormalizeEmail(f *testing.F) {
	for _, s := range []string{"ada@example.com", "A@B.CO", "a <b@c.de>", "a@b.c\r\n", "\"q\"@x.io", "a@[1.2.3.4]", "ü@ü.de"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := notify.NormalizeEmail(s)
		if err != nil {
			return
		}
		if len(got) > notify.MaxEmailLen || strings.ContainsAny(got, "\r\n<>, ") || got != strings.ToLower(got) {
			t.Fatalf("NormalizeEmail(%q) = %q", s, got)
		}
		if a, err := mail.ParseAddress(got); err != nil || a.Address != got {
			t.Fatalf("NormalizeEmail(%q) = %q, which mail.ParseAddress reads as %v, %v", s, got, a, err)
		}
		if again, err := notify.NormalizeEmail(got); err != nil || again != got {
			t.Fatalf("NormalizeEmail(%q) = %q, then %q, %v", s, got, again, err)
		}
	})
}
