package enginetest

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func connectJS(tb testing.TB, urls []string) jetstream.JetStream {
	tb.Helper()
	nc, err := nats.Connect(strings.Join(urls, ","), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatal(err)
	}
	return js
}

func TestNATSGivesEachTestItsOwnAccount(t *testing.T) {
	var mine []string
	t.Run("use", func(t *testing.T) {
		mine = NATS(t)
		other := NATS(t)
		// The same stream name and subjects in both: only separate
		// accounts let that work.
		for _, urls := range [][]string{mine, other} {
			js := connectJS(t, urls)
			if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "SURGE", Subjects: []string{"surge.>"}, Replicas: 3}); err != nil {
				t.Fatalf("create stream with %s: %v", urls[0], err)
			}
		}
	})
	if mine == nil {
		t.Skip("no NATS")
	}
	locks := os.Getenv("SURGE_TEST_NATS_LOCKS")
	if locks == "" {
		return
	}
	u, err := url.Parse(mine[0])
	if err != nil {
		t.Fatal(err)
	}
	// Hold the account so no other test creates streams in it meanwhile.
	n := strings.TrimPrefix(u.User.Username(), "t")
	f, err := tryLock(filepath.Join(locks, "account-"+n+".lock"), syscall.LOCK_EX, time.Minute)
	if err != nil {
		t.Fatalf("account not released after cleanup: %v", err)
	}
	defer f.Close()
	names := connectJS(t, mine).StreamNames(t.Context())
	for name := range names.Name() {
		t.Errorf("stream %s left after cleanup", name)
	}
	if err := names.Err(); err != nil {
		t.Fatal(err)
	}
}

func TestNATSChaosStopsAndRestartsANode(t *testing.T) {
	c := NATSChaos(t)
	js := connectJS(t, c.URLs)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "CHAOS", Subjects: []string{"chaos.>"}, Replicas: c.Nodes()}); err != nil {
		t.Fatal(err)
	}
	publish := func(id string) {
		t.Helper()
		// A publish may fail, or get no answer at all, while the stream
		// elects a new leader: each attempt gets its own deadline.
		for {
			actx, cancel := context.WithTimeout(ctx, 2*time.Second)
			_, err := js.Publish(actx, "chaos.x", []byte(id), jetstream.WithMsgID(id))
			cancel()
			if err == nil {
				return
			}
			if ctx.Err() != nil {
				t.Fatalf("publish %s: %v", id, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	publish("before")
	c.StopNode(t, 0)
	publish("during")
	c.StartNode(t, 0)
	publish("after")
	s, err := js.Stream(ctx, "CHAOS")
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().State.Msgs; got != 3 {
		t.Fatalf("stream holds %d messages, want 3", got)
	}
}
