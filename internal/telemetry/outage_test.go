package telemetry_test

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/surge-commerce/surge/internal/telemetry"
)

// TestOutageLogsStateChangesOnly: thousands of failed calls, with
// successes in between while the dependency flaps, make one line when the
// outage begins and one, with the count, when it has ended; a later
// outage is logged again.
func TestOutageLogsStateChangesOnly(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	o := telemetry.NewOutageClock(slog.New(slog.NewTextHandler(&buf, nil)), "redis", time.Second, clock)
	down := errors.New("connection refused")

	o.Succeeded()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 250 {
				o.Failed(down)
				o.Succeeded() // a flapping pool: answered now and then
			}
		})
	}
	wg.Wait()
	if !o.Down() {
		t.Fatal("not down after 2,000 failures")
	}
	advance(999 * time.Millisecond)
	o.Succeeded() // too soon after the last failure
	advance(2 * time.Millisecond)
	o.Succeeded()
	o.Succeeded()
	if o.Down() {
		t.Fatal("still down after a quiet second and a success")
	}
	advance(time.Minute)
	o.Failed(down)
	advance(5 * time.Second)
	o.Succeeded()

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d log lines, want 4 (two outages, begin and end):\n%s", len(lines), buf.String())
	}
	for i, want := range []string{"level=ERROR", "failures=2000 down_for=1.001s", "level=ERROR", "failures=1 down_for=5s"} {
		if !strings.Contains(lines[i], want) || !strings.Contains(lines[i], "dependency=redis") {
			t.Errorf("line %d = %s; want %q", i+1, lines[i], want)
		}
	}
}
