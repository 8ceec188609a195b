package natsbus

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/surge-commerce/surge/internal/enginetest"
)

// publishRetrying publishes like the outbox relay does: an attempt that
// fails or gets no answer is repeated with the same message id, although
// the first one may have been stored. Only de-duplication keeps the stream
// from holding the event twice.
func publishRetrying(ctx context.Context, b *Bus, subject, id string, data []byte) error {
	for {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := b.Publish(actx, subject, id, data)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("publish %s: %w (last error: %w)", id, ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TestClusterLosesNoEventWhenANodeDies runs order events through a
// three-node cluster with replicated streams and consumers, kills the
// stream's leader in the middle of publishing and consuming, restarts it,
// then publishes every event again. Every event must be handled, and the
// stream must hold each message id once: retried and repeated publishes
// are de-duplicated across the leader change.
func TestClusterLosesNoEventWhenANodeDies(t *testing.T) {
	cluster := enginetest.NATSChaos(t)
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()

	b, err := Open(ctx, Config{URL: strings.Join(cluster.URLs, ","), Replicas: cluster.Nodes(),
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	const events = 300
	var mu sync.Mutex
	handled := make(map[string]int)
	allHandled := make(chan struct{})
	mustConsume(t, b, Consumer{Name: "capture", Subject: "surge.order.>", AckWait: 2 * time.Second,
		Handler: func(ctx context.Context, m Message) error {
			mu.Lock()
			defer mu.Unlock()
			handled[m.ID]++
			if len(handled) == events && handled[m.ID] == 1 {
				close(allHandled)
			}
			return nil
		}})

	id := func(i int) string { return fmt.Sprintf("order-%03d", i) }
	published := make(chan int, events)
	pubErr := make(chan error, 1)
	go func() {
		defer close(published)
		for i := range events {
			if err := publishRetrying(ctx, b, "surge.order.created", id(i), []byte(id(i))); err != nil {
				pubErr <- err
				return
			}
			published <- i
		}
	}()
	waitPublished := func(n int) {
		t.Helper()
		for i := range published {
			if i+1 >= n {
				return
			}
		}
		select {
		case err := <-pubErr:
			t.Fatal(err)
		default:
		}
	}

	waitPublished(events / 3)
	s, err := b.js.Stream(ctx, b.cfg.Stream)
	if err != nil {
		t.Fatal(err)
	}
	leader := s.CachedInfo().Cluster.Leader
	node := cluster.NodeNamed(t, leader)
	t.Logf("killing node %d (%s), the stream leader", node, leader)
	cluster.StopNode(t, node)
	waitPublished(2 * events / 3)
	cluster.StartNode(t, node)
	waitPublished(events)

	// Everything again, as a relay would after losing its "published"
	// marks in a crash.
	for i := range events {
		if err := publishRetrying(ctx, b, "surge.order.created", id(i), []byte("again")); err != nil {
			t.Fatal(err)
		}
	}

	select {
	case <-allHandled:
	case <-ctx.Done():
		mu.Lock()
		t.Fatalf("only %d of %d events handled", len(handled), events)
	}

	// The stream must hold each id exactly once, with its first payload.
	s, err = b.js.Stream(ctx, b.cfg.Stream)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().State.Msgs; got != events {
		t.Errorf("stream holds %d messages, want %d", got, events)
	}
	seen := make(map[string]bool)
	for seq := uint64(1); seq <= s.CachedInfo().State.LastSeq; seq++ {
		raw, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("get message %d: %v", seq, err)
		}
		mid := raw.Header.Get(jetstream.MsgIDHeader)
		if seen[mid] {
			t.Errorf("message id %s stored twice", mid)
		}
		seen[mid] = true
		if string(raw.Data) != mid {
			t.Errorf("message %s holds %q: a repeat publish replaced it", mid, raw.Data)
		}
	}
	if got := testutil.ToFloat64(b.metrics.duplicates.WithLabelValues("surge.order.created")); got < events {
		t.Errorf("%v publishes reported as duplicates, want at least %d", got, events)
	}

	// Delivery is at least once: an ack lost with the dead leader brings a
	// message back, and handlers are idempotent for that. Nothing may be
	// missing, and repeats should stay rare.
	mu.Lock()
	defer mu.Unlock()
	repeats := 0
	for i := range events {
		switch n := handled[id(i)]; {
		case n == 0:
			t.Errorf("%s never handled", id(i))
		case n > 1:
			repeats += n - 1
		}
	}
	t.Logf("%d events handled, %d redeliveries", len(handled), repeats)
}
