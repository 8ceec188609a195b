package natsbus

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// TestBacklogIsPulledInBatches: with messages waiting, a consumer asks
// for several per pull request rather than one each time a handler
// finishes. A pull request is replicated when it arrives and again when
// it is done on a clustered consumer, so one per message doubled what the
// bus carried per delivery.
func TestBacklogIsPulledInBatches(t *testing.T) {
	b := mustOpen(t, t.TempDir())
	const n = 60
	for i := range n {
		mustPublish(t, b, "surge.order.created", fmt.Sprintf("m%d", i), "x")
	}
	// The pull requests, as the server sees them (the bus's connection
	// echoes its own publishes to its own subscriptions).
	var pulls atomic.Int32
	sub, err := b.nc.Subscribe("$JS.API.CONSUMER.MSG.NEXT."+b.cfg.Stream+".pulls", func(*nats.Msg) { pulls.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := b.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	var handled atomic.Int32
	all := make(chan struct{})
	mustConsume(t, b, Consumer{Name: "pulls", Subject: "surge.order.created", Concurrency: 8,
		Handler: func(ctx context.Context, m Message) error {
			// Some work, so handlers finish one after another rather
			// than all at once.
			time.Sleep(time.Millisecond)
			if handled.Add(1) == n {
				close(all)
			}
			return nil
		}})
	recv(t, all)
	if err := b.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	per := float64(n) / float64(pulls.Load())
	t.Logf("%d messages in %d pull requests (%.1f each)", n, pulls.Load(), per)
	if per < 4 {
		t.Fatalf("%.1f messages per pull request with a backlog; want most of the handler slots (8)", per)
	}
}
