package redisstore_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/surge-commerce/surge/internal/enginetest"
	"github.com/surge-commerce/surge/internal/redisstore"
)

// purges collects what a Subscribe callback receives.
type purges struct {
	ch chan []string
}

func newPurges() *purges { return &purges{ch: make(chan []string, 100)} }

func (p *purges) fn(tags []string) { p.ch <- tags }

// next returns the next call's tags, failing the test after a few seconds.
func (p *purges) next(t *testing.T) []string {
	t.Helper()
	select {
	case tags := <-p.ch:
		return tags
	case <-time.After(5 * time.Second):
		t.Fatal("no purge arrived")
		return nil
	}
}

// none checks nothing arrives within a short while.
func (p *purges) none(t *testing.T) {
	t.Helper()
	select {
	case tags := <-p.ch:
		t.Fatalf("unexpected purge %q", tags)
	case <-time.After(100 * time.Millisecond):
	}
}

// subscribe runs p.Subscribe until the test ends and waits for the
// subscription to start (its purge-everything call).
func subscribe(t *testing.T, p *redisstore.Purger) *purges {
	t.Helper()
	got := newPurges()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.Subscribe(ctx, got.fn)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	if tags := got.next(t); tags != nil {
		t.Fatalf("first call = %q; want nil (purge everything) when the subscription starts", tags)
	}
	return got
}

func TestPurgerTwoReplicas(t *testing.T) {
	ctx := context.Background()
	url, prefix := enginetest.Redis(t)
	a := redisstore.NewPurger(mustClient(t, redisstore.Config{URL: url, Prefix: prefix}))
	b := redisstore.NewPurger(mustClient(t, redisstore.Config{URL: url, Prefix: prefix}))
	if a.ID() == b.ID() {
		t.Fatalf("two purgers share the ID %q", a.ID())
	}
	gotA, gotB := subscribe(t, a), subscribe(t, b)

	if err := a.Publish(ctx, "product:1", "home"); err != nil {
		t.Fatal(err)
	}
	if tags := gotB.next(t); !slices.Equal(tags, []string{"product:1", "home"}) {
		t.Errorf("b got %q; want a's tags", tags)
	}
	if err := b.PublishAll(ctx); err != nil {
		t.Fatal(err)
	}
	if tags := gotA.next(t); tags != nil {
		t.Errorf("a got %q after PublishAll; want nil", tags)
	}
	if err := a.Publish(ctx); err != nil {
		t.Errorf("Publish of no tags: %v", err)
	}
	// Each replica purged locally before publishing: no echo.
	gotA.none(t)
	gotB.none(t)

	// Another shop on the same Redis has a channel of its own.
	other := redisstore.NewPurger(mustClient(t, redisstore.Config{URL: url, Prefix: prefix + "other:"}))
	if err := other.Publish(ctx, "product:1"); err != nil {
		t.Fatal(err)
	}
	gotA.none(t)
}

// TestPurgerResubscribes cuts the subscriber off Redis, publishes while it
// is away, and checks it comes back and purges everything, since the
// message it missed cannot be replayed.
func TestPurgerResubscribes(t *testing.T) {
	ctx := context.Background()
	url, prefix := enginetest.Redis(t)
	px := enginetest.NewProxy(t, url)
	sub := redisstore.NewPurger(mustClient(t, redisstore.Config{URL: px.URL, Prefix: prefix, Timeout: 200 * time.Millisecond}))
	sub.CheckEvery = 100 * time.Millisecond
	pub := redisstore.NewPurger(mustClient(t, redisstore.Config{URL: url, Prefix: prefix}))
	got := subscribe(t, sub)

	t.Run("restart", func(t *testing.T) {
		px.Cut() // as Redis going down: connections reset, new ones refused
		if err := pub.Publish(ctx, "missed"); err != nil {
			t.Fatal(err)
		}
		px.Heal()
		if tags := got.next(t); tags != nil {
			t.Fatalf("after reconnecting: %q; want nil (purge everything)", tags)
		}
		if err := pub.Publish(ctx, "after"); err != nil {
			t.Fatal(err)
		}
		if tags := got.next(t); !slices.Equal(tags, []string{"after"}) {
			t.Errorf("after reconnecting: %q; want the next purge delivered", tags)
		}
	})

	t.Run("half-open", func(t *testing.T) {
		px.Freeze() // as a partition: the connection stays open, nothing arrives
		if err := pub.Publish(ctx, "lost"); err != nil {
			t.Fatal(err)
		}
		// The purger notices only by its own pings going unanswered.
		px.Heal()
		if tags := got.next(t); tags != nil {
			t.Fatalf("after the partition: %q; want nil (purge everything)", tags)
		}
		if err := pub.Publish(ctx, "after"); err != nil {
			t.Fatal(err)
		}
		if tags := got.next(t); !slices.Equal(tags, []string{"after"}) {
			t.Errorf("after the partition: %q; want the next purge delivered", tags)
		}
	})
}
