package natsbus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// TestRetireWorksOffBacklogThenDeletes: a consumer an older version ran
// is left on the server with messages it never handled; Retire hands
// each of them to the handler once and then deletes the consumer, so new
// events stop piling up on it.
func TestRetireWorksOffBacklogThenDeletes(t *testing.T) {
	b := mustOpen(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	old := Consumer{Name: "old-mail", Subject: "surge.order.paid", Handler: func(context.Context, Message) error { return nil }}
	old.setDefaults()
	// Created the way Consume creates it, then never run: its process
	// was upgraded away.
	if _, err := b.upsertConsumer(ctx, old); err != nil {
		t.Fatal(err)
	}
	const n = 25
	for i := range n {
		mustPublish(t, b, "surge.order.paid", fmt.Sprintf("p%d", i), "x")
	}

	var mu sync.Mutex
	seen := map[string]int{}
	old.Handler = func(_ context.Context, m Message) error {
		mu.Lock()
		defer mu.Unlock()
		seen[m.ID]++
		if m.ID == "p3" && seen[m.ID] == 1 {
			return errors.New("mail server busy") // retried, not lost
		}
		return nil
	}
	old.Backoff = []time.Duration{10 * time.Millisecond}
	if err := b.Retire(ctx, old, 50*time.Millisecond); err != nil {
		t.Fatalf("retire: %v", err)
	}
	mu.Lock()
	for i := range n {
		id := fmt.Sprintf("p%d", i)
		want := 1
		if id == "p3" {
			want = 2
		}
		if seen[id] != want {
			t.Errorf("%s handled %d times, want %d", id, seen[id], want)
		}
	}
	mu.Unlock()
	if _, err := b.js.Consumer(ctx, b.cfg.Stream, old.Name); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Fatalf("retired consumer still on the server: %v", err)
	}
}

// TestRetireNeverCreates: a consumer the server does not have is not
// created by Retire (which would deliver the whole stream to it).
func TestRetireNeverCreates(t *testing.T) {
	b := mustOpen(t, t.TempDir())
	mustPublish(t, b, "surge.order.paid", "p1", "x")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	handled := 0
	c := Consumer{Name: "never-ran", Subject: "surge.order.paid", Handler: func(context.Context, Message) error {
		handled++
		return nil
	}}
	if err := b.Retire(ctx, c, 50*time.Millisecond); err != nil {
		t.Fatalf("retire: %v", err)
	}
	if handled != 0 {
		t.Fatalf("handled %d messages", handled)
	}
	if _, err := b.js.Consumer(ctx, b.cfg.Stream, c.Name); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Fatalf("Retire created the consumer: %v", err)
	}
}
