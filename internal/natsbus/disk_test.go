package natsbus

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/surge-commerce/surge/internal/enginetest"
)

// TestEmbeddedServerRecoversFromFullDisk fills the real filesystem under
// the embedded server's store until a publish fails, frees it, and checks
// that the bus works again without a process restart: readiness reports
// the fault meanwhile, every event published before, during (once
// retried) and after the outage reaches the consumer.
func TestEmbeddedServerRecoversFromFullDisk(t *testing.T) {
	disk := enginetest.NewSmallDisk(t, 24<<20)
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	b, err := Open(ctx, Config{StoreDir: filepath.Join(disk.Dir, "nats"), Logger: log, RecoverEvery: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	got := make(chan string, 1000)
	mustConsume(t, b, Consumer{Name: "full-disk", Subject: "surge.order.>", AckWait: 2 * time.Second,
		Handler: func(ctx context.Context, m Message) error {
			got <- m.ID
			return nil
		}})
	want := map[string]bool{}
	publish := func(id string) error {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		return b.Publish(pctx, "surge.order.created", id, []byte(strings.Repeat("x", 16<<10)))
	}
	if err := publish("before"); err != nil {
		t.Fatal(err)
	}
	want["before"] = true

	t.Logf("filled the disk with %d bytes", disk.Fill(t))
	// Publish until the store fails a write; what fails stays to be
	// published again, as the outbox relay would.
	var failed []string
	for i := 0; len(failed) == 0; i++ {
		if i == 2000 {
			t.Fatal("2000 publishes of 16 KiB on a full disk all succeeded")
		}
		id := fmt.Sprintf("during-%d", i)
		want[id] = true
		if err := publish(id); err != nil {
			t.Logf("publish %s on the full disk: %v", id, err)
			failed = append(failed, id)
		}
	}
	eventually(t, "readiness to report the storage fault", func() bool { return b.Ping(ctx) != nil })
	t.Logf("while full: %v", b.Ping(ctx))

	disk.Free(t)
	freed := time.Now()
	// The same event is retried until it gets through, as the relay does.
	deadline := time.Now().Add(30 * time.Second)
	for len(failed) > 0 {
		if err := publish(failed[0]); err == nil {
			failed = failed[1:]
			continue
		} else if time.Now().After(deadline) {
			t.Fatalf("publish %s still failing 30s after the disk was freed: %v", failed[0], err)
		}
	}
	t.Logf("publishing again %v after the disk was freed", time.Since(freed).Round(time.Millisecond))
	if err := publish("after"); err != nil {
		t.Fatal(err)
	}
	want["after"] = true
	if err := b.Ping(ctx); err != nil {
		t.Errorf("ping after recovery: %v", err)
	}
	seen := map[string]bool{}
	for len(seen) < len(want) {
		id := recv(t, got)
		if !want[id] {
			t.Fatalf("received %s, never published", id)
		}
		seen[id] = true
	}
}
