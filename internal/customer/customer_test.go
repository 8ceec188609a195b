package customer

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
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

// TestPasswordsBoundConcurrentHashes: with every slot taken, a check
// waits (it does not hash alongside), goes ahead once a slot frees, and
// gives up when its context ends first.
func TestPasswordsBoundConcurrentHashes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := NewPasswords(2)
		hash, err := p.Hash(t.Context(), "correct horse")
		if err != nil {
			t.Fatal(err)
		}
		for range p.Concurrent() {
			if err := p.acquire(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
		var done atomic.Bool
		var ok bool
		go func() {
			ok, _ = p.Verify(context.Background(), hash, "correct horse")
			done.Store(true)
		}()
		synctest.Wait()
		if done.Load() {
			t.Fatal("a password was checked while every slot was taken")
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		if _, err := p.Verify(ctx, hash, "correct horse"); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("waiting past the deadline: %v, want DeadlineExceeded", err)
		}
		p.release()
		synctest.Wait()
		if !done.Load() || !ok {
			t.Errorf("after a slot freed: done %v, verified %v", done.Load(), ok)
		}
		p.release()
	})
	if n := NewPasswords(0).Concurrent(); n < 1 {
		t.Errorf("default concurrency %d", n)
	}
}
