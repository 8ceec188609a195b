package customer

import (
	"strings"
	"testing"
)

func TestPasswordHash(t *testing.T) {
	h, err := HashPassword("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash format %q", h)
	}
	if !VerifyPassword(h, "correct horse battery") {
		t.Fatal("right password refused")
	}
	for _, bad := range []string{"", "correct horse batter", "Correct horse battery"} {
		if VerifyPassword(h, bad) {
			t.Errorf("wrong password %q accepted", bad)
		}
	}
	h2, _ := HashPassword("correct horse battery")
	if h == h2 {
		t.Fatal("two hashes of one password are equal: salt not random")
	}
	for _, junk := range []string{"", "$argon2id$", "$argon2i$v=19$m=1,t=1,p=1$AAAA$AAAA", "$argon2id$v=19$m=99999999,t=1,p=1$AAAA$AAAA", h[:len(h)-3] + "!!!"} {
		if VerifyPassword(junk, "x") {
			t.Errorf("junk hash %q verified", junk)
		}
	}
}

func TestEmailAndPasswordRules(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"Ann@Example.com", "ann@example.com", true},
		{" bob@example.org ", "bob@example.org", true},
		{"not-an-email", "", false},
		{"Ann <ann@example.com>", "", false},
		{"a@b\r\nBcc: x@y", "", false},
		{strings.Repeat("a", 250) + "@x.io", "", false},
	}
	for _, tt := range tests {
		got, err := NormalizeEmail(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("NormalizeEmail(%q) = %q, %v", tt.in, got, err)
		}
	}
	for pw, ok := range map[string]bool{"short": false, "eight888": true, strings.Repeat("x", 129): false, "ünïcødé!": true} {
		if err := CheckPassword(pw); (err == nil) != ok {
			t.Errorf("CheckPassword(%q) = %v", pw, err)
		}
	}
}
