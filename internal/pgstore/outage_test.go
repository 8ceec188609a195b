package pgstore_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/surge-commerce/surge/internal/enginetest"
	"github.com/surge-commerce/surge/internal/pgstore"
)

// syncBuffer is a bytes.Buffer safe for the store's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestPrimaryOutageLoggedOncePerStateChange: while the primary cannot be
// reached every call fails, but the store logs the outage once when it
// begins and once, with the count of failed calls, when the primary
// answers again.
func TestPrimaryOutageLoggedOncePerStateChange(t *testing.T) {
	primary, _ := enginetest.Postgres(t)
	proxy := enginetest.NewProxy(t, primary)
	var logs syncBuffer
	s := newTestStore(t, false, func(c *pgstore.Config) {
		c.URL = proxy.URL
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	ctx := context.Background()
	if _, err := s.CountProducts(ctx); err != nil {
		t.Fatal(err)
	}
	proxy.Cut()
	const calls = 50
	for i := range calls {
		if _, err := s.CountProducts(ctx); err == nil {
			t.Fatalf("call %d succeeded with the primary cut off", i)
		}
	}
	proxy.Heal()
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !strings.Contains(logs.String(), "dependency available again") {
		_, _ = s.CountProducts(ctx)
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("10s after the primary came back no line said so:\n%s", logs.String())
		}
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "level=ERROR") || !strings.Contains(lines[0], `dependency="postgres primary"`) ||
		!strings.Contains(lines[1], "failures=") {
		t.Fatalf("want one ERROR line when the outage began and one with the count when it ended, got:\n%s", logs.String())
	}
	var failures int
	for _, f := range strings.Fields(lines[1]) {
		if v, ok := strings.CutPrefix(f, "failures="); ok {
			for _, c := range v {
				failures = failures*10 + int(c-'0')
			}
		}
	}
	if failures < calls {
		t.Errorf("the outage counted %d failed calls; %d failed", failures, calls)
	}
	t.Log(logs.String())
}
