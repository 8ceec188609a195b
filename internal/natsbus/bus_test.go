package natsbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// mustOpen opens a bus on an embedded server storing in dir, closed when
// the test ends.
func mustOpen(tb testing.TB, dir string) *Bus {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := Open(ctx, Config{StoreDir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		tb.Fatalf("open bus: %v", err)
	}
	tb.Cleanup(func() { b.Close() })
	return b
}

func mustPublish(tb testing.TB, b *Bus, subject, id, data string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Publish(ctx, subject, id, []byte(data)); err != nil {
		tb.Fatalf("publish %s: %v", id, err)
	}
}

func mustConsume(tb testing.TB, b *Bus, c Consumer) (stop func()) {
	tb.Helper()
	stop, err := b.Consume(context.Background(), c)
	if err != nil {
		tb.Fatalf("consume: %v", err)
	}
	tb.Cleanup(stop)
	return stop
}

// recv waits for the next value on ch or fails the test after 10s.
func recv[T any](tb testing.TB, ch <-chan T) T {
	tb.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		tb.Fatal("timed out waiting for a message")
		panic("unreachable")
	}
}

// eventually polls cond until it holds or 10s pass.
func eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			tb.Fatalf("timed out waiting for %s", what)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	b := mustOpen(t, t.TempDir())
	got := make(chan Message, 1)
	mustConsume(t, b, Consumer{Name: "rt", Subject: "surge.order.created", Handler: func(ctx context.Context, m Message) error {
		got <- m
		return nil
	}})
	mustPublish(t, b, "surge.order.created", "ord-1", `{"id":"1"}`)
	m := recv(t, got)
	if m.Subject != "surge.order.created" || m.ID != "ord-1" || string(m.Data) != `{"id":"1"}` || m.Attempt != 1 {
		t.Fatalf("got %+v", m)
	}
	if err := b.Ping(context.Background()); err != nil {
		t.Fatalf("ping: %v", err)
	}
}

func TestPublishDeduplicatesByMessageID(t *testing.T) {
	b := mustOpen(t, t.TempDir())
	mustPublish(t, b, "surge.order.created", "same", "first")
	mustPublish(t, b, "surge.order.created", "same", "second")
	mustPublish(t, b, "surge.order.created", "sentinel", "last")

	got := make(chan Message, 10)
	mustConsume(t, b, Consumer{Name: "dedup", Subject: "surge.order.created", Concurrency: 1, Handler: func(ctx context.Context, m Message) error {
		got <- m
		return nil
	}})
	// The stream is ordered and the consumer single-threaded: once the
	// sentinel arrives, every earlier message has too.
	var ids []string
	for {
		m := recv(t, got)
		ids = append(ids, m.ID+"="+string(m.Data))
		if m.ID == "sentinel" {
			break
		}
	}
	if want := []string{"same=first", "sentinel=last"}; fmt.Sprint(ids) != fmt.Sprint(want) {
		t.Fatalf("consumed %v, want %v", ids, want)
	}
}

func TestRetryThenSuccess(t *testing.T) {
	b := mustOpen(t, t.TempDir())
	attempts := make(chan int, 10)
	mustConsume(t, b, Consumer{
		Name: "flaky", Subject: "surge.payment.>", Backoff: []time.Duration{10 * time.Millisecond},
		Handler: func(ctx context.Context, m Message) error {
			attempts <- m.Attempt
			if m.Attempt < 3 {
				return errors.New("psp timeout")
			}
			return nil
		},
	})
	mustPublish(t, b, "surge.payment.capture", "cap-1", "x")
	for want := 1; want <= 3; want++ {
		if got := recv(t, attempts); got != want {
			t.Fatalf("attempt %d, want %d", got, want)
		}
	}
	eventually(t, "ok counted", func() bool {
		return testutil.ToFloat64(b.metrics.processed.WithLabelValues("flaky", "ok")) == 1
	})
	if got := testutil.ToFloat64(b.metrics.processed.WithLabelValues("flaky", "retry")); got != 2 {
		t.Fatalf("retries counted %v, want 2", got)
	}
}

func TestPoisonMessageIsDeadLettered(t *testing.T) {
	b := mustOpen(t, t.TempDir())
	var mu sync.Mutex
	calls := map[string]int{}
	mustConsume(t, b, Consumer{
		Name: "mailer", Subject: "surge.order.>", MaxDeliver: 3, Backoff: []time.Duration{5 * time.Millisecond},
		Handler: func(ctx context.Context, m Message) error {
			mu.Lock()
			calls[m.ID]++
			mu.Unlock()
			if m.ID == "bad-json" {
				return Permanent(errors.New("decode order: unexpected EOF"))
			}
			return fmt.Errorf("smtp down\r\nInjected: header (attempt %d)", m.Attempt)
		},
	})
	mustPublish(t, b, "surge.order.created", "always-fails", "a")
	mustPublish(t, b, "surge.order.paid", "bad-json", "{")

	var dead []DeadLetter
	eventually(t, "two dead letters", func() bool {
		var err error
		dead, err = b.DeadLetters(context.Background(), "mailer", 1, 10)
		if err != nil {
			t.Fatalf("dead letters: %v", err)
		}
		return len(dead) == 2
	})
	byID := map[string]DeadLetter{}
	for _, d := range dead {
		byID[d.ID] = d
	}
	fails := byID["always-fails"]
	if fails.Subject != "surge.order.created" || fails.Consumer != "mailer" || fails.Attempts != 3 ||
		fails.Permanent || string(fails.Data) != "a" || !strings.Contains(fails.Error, "smtp down") ||
		strings.ContainsAny(fails.Error, "\r\n") {
		t.Errorf("always-fails dead letter: %+v", fails)
	}
	poison := byID["bad-json"]
	if poison.Subject != "surge.order.paid" || poison.Attempts != 1 || !poison.Permanent ||
		!strings.Contains(poison.Error, "unexpected EOF") || string(poison.Data) != "{" {
		t.Errorf("bad-json dead letter: %+v", poison)
	}

	// Nothing stays pending: both originals were terminated.
	eventually(t, "empty backlog", func() bool {
		n, err := b.Pending(context.Background(), "mailer")
		return err == nil && n == 0
	})
	mu.Lock()
	defer mu.Unlock()
	if calls["always-fails"] != 3 || calls["bad-json"] != 1 {
		t.Errorf("handler calls %v, want always-fails=3 bad-json=1", calls)
	}
	if got := testutil.ToFloat64(b.metrics.deadLettered.WithLabelValues("mailer")); got != 2 {
		t.Errorf("dead-lettered counter %v, want 2", got)
	}
}

func TestUnackedMessageSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()

	b1, err := Open(ctx, Config{StoreDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := b1.Publish(ctx, "surge.stock.commit", "commit-1", []byte("c1")); err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	if _, err := b1.Consume(ctx, Consumer{Name: "stock", Subject: "surge.stock.>", AckWait: time.Second,
		Handler: func(ctx context.Context, m Message) error {
			close(started)
			<-ctx.Done() // the worker is killed mid-way
			return ctx.Err()
		}}); err != nil {
		t.Fatal(err)
	}
	<-started
	if err := b1.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}

	b2 := mustOpen(t, dir)
	got := make(chan Message, 1)
	mustConsume(t, b2, Consumer{Name: "stock", Subject: "surge.stock.>", AckWait: time.Second,
		Handler: func(ctx context.Context, m Message) error {
			got <- m
			return nil
		}})
	m := recv(t, got)
	if m.ID != "commit-1" || string(m.Data) != "c1" || m.Attempt < 2 {
		t.Fatalf("after restart got %+v, want commit-1 redelivered", m)
	}
}

func TestStoppedConsumerResumes(t *testing.T) {
	b := mustOpen(t, t.TempDir())
	const n = 30
	for i := range n {
		mustPublish(t, b, "surge.reservation.expired", fmt.Sprintf("r%d", i), "x")
	}

	var mu sync.Mutex
	done := map[string]bool{}
	five := make(chan struct{})
	handler := func(ctx context.Context, m Message) error {
		mu.Lock()
		done[m.ID] = true
		if len(done) == 5 {
			close(five)
		}
		mu.Unlock()
		return nil
	}
	// AckWait is short so that a message in flight when the consumer
	// stopped (neither handled nor handed back) returns quickly.
	c := Consumer{Name: "expiry", Subject: "surge.reservation.expired", Concurrency: 3, AckWait: time.Second, Handler: handler}
	stop := mustConsume(t, b, c)
	<-five
	stop()
	stop() // idempotent

	mustConsume(t, b, c)
	eventually(t, "all messages handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(done) == n
	})
}

func TestStopCancelsHandlerContext(t *testing.T) {
	b := mustOpen(t, t.TempDir())
	started := make(chan struct{})
	cancelled := make(chan error, 1)
	stop := mustConsume(t, b, Consumer{Name: "slow", Subject: "surge.slow", Handler: func(ctx context.Context, m Message) error {
		close(started)
		<-ctx.Done()
		cancelled <- ctx.Err()
		return ctx.Err()
	}})
	mustPublish(t, b, "surge.slow", "s1", "x")
	<-started
	stop()
	if err := recv(t, cancelled); !errors.Is(err, context.Canceled) {
		t.Fatalf("handler ctx ended with %v", err)
	}
	// Stopping is not the message's fault: no retry counted, nothing parked.
	if got := testutil.ToFloat64(b.metrics.processed.WithLabelValues("slow", "dead")); got != 0 {
		t.Fatalf("dead %v", got)
	}
}

func TestMetrics(t *testing.T) {
	b := mustOpen(t, t.TempDir())
	reg := prometheus.NewRegistry()
	if err := b.Register(reg); err != nil {
		t.Fatal(err)
	}
	block := make(chan struct{})
	t.Cleanup(func() { close(block) })
	got := make(chan string, 10)
	mustConsume(t, b, Consumer{Name: "capture", Subject: "surge.order.created", Concurrency: 1, Handler: func(ctx context.Context, m Message) error {
		got <- m.ID
		if m.ID == "o2" {
			select { // hold o2 so that it and o3 stay pending
			case <-block:
			case <-ctx.Done():
			}
			return ctx.Err()
		}
		return nil
	}})
	mustPublish(t, b, "surge.order.created", "o1", "x")
	mustPublish(t, b, "surge.order.created", "o1", "x") // duplicate
	mustPublish(t, b, "surge.order.created", "o2", "x")
	mustPublish(t, b, "surge.order.created", "o3", "x")
	if id := recv(t, got); id != "o1" {
		t.Fatalf("first %s", id)
	}
	if id := recv(t, got); id != "o2" {
		t.Fatalf("second %s", id)
	}
	if got := testutil.ToFloat64(b.metrics.published.WithLabelValues("surge.order.created")); got != 3 {
		t.Errorf("published %v, want 3", got)
	}
	if got := testutil.ToFloat64(b.metrics.duplicates.WithLabelValues("surge.order.created")); got != 1 {
		t.Errorf("duplicates %v, want 1", got)
	}
	eventually(t, "o1 counted", func() bool {
		return testutil.ToFloat64(b.metrics.processed.WithLabelValues("capture", "ok")) == 1
	})
	const want = `
# HELP surge_events_pending Messages a consumer has not finished: not yet delivered plus delivered and awaiting acknowledgement.
# TYPE surge_events_pending gauge
surge_events_pending{consumer="capture"} 2
`
	// The gauge comes from the consumer's state on the server, which
	// follows the ack of o1 a moment later.
	eventually(t, "o2 and o3 pending", func() bool {
		return testutil.GatherAndCompare(reg, strings.NewReader(want), "surge_events_pending") == nil
	})
	n, err := testutil.GatherAndCount(reg)
	if err != nil || n < 4 {
		t.Errorf("gathered %d series, err %v", n, err)
	}
}

func TestConfigValidation(t *testing.T) {
	ctx := context.Background()
	for name, cfg := range map[string]Config{
		"no store dir":        {},
		"replicas embedded":   {StoreDir: t.TempDir(), Replicas: 3},
		"listen with url":     {URL: "nats://127.0.0.1:4222", Listen: "127.0.0.1:0"},
		"same stream names":   {StoreDir: t.TempDir(), Stream: "X", DeadLetterStream: "X"},
		"window over max age": {StoreDir: t.TempDir(), MaxAge: time.Minute, DuplicateWindow: time.Hour},
	} {
		if b, err := Open(ctx, cfg); err == nil {
			b.Close()
			t.Errorf("%s: opened", name)
		}
	}
	b := mustOpen(t, t.TempDir())
	for name, c := range map[string]Consumer{
		"dotted name":   {Name: "a.b", Subject: "surge.x", Handler: func(context.Context, Message) error { return nil }},
		"wrong subject": {Name: "a", Subject: "other.x", Handler: func(context.Context, Message) error { return nil }},
		"no handler":    {Name: "a", Subject: "surge.x"},
	} {
		if stop, err := b.Consume(ctx, c); err == nil {
			stop()
			t.Errorf("%s: consumed", name)
		}
	}
}

func TestListenForOtherProcesses(t *testing.T) {
	ctx := context.Background()
	b, err := Open(ctx, Config{StoreDir: t.TempDir(), Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	url := b.ClientURL()
	if !strings.HasPrefix(url, "nats://127.0.0.1:") {
		t.Fatalf("client url %q", url)
	}
	// A second process (here: a second Bus) joins through the URL.
	worker, err := Open(ctx, Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer worker.Close()
	got := make(chan Message, 1)
	stop, err := worker.Consume(ctx, Consumer{Name: "remote", Subject: "surge.remote", Handler: func(ctx context.Context, m Message) error {
		got <- m
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	mustPublish(t, b, "surge.remote", "m1", "hi")
	if m := recv(t, got); m.ID != "m1" {
		t.Fatalf("got %+v", m)
	}
}
