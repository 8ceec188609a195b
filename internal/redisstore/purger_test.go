package redisstore_test

import (
	"context"
	"errors"
	"net"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
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
	px := newProxy(t, url)
	sub := redisstore.NewPurger(mustClient(t, redisstore.Config{URL: px.url, Prefix: prefix, Timeout: 200 * time.Millisecond}))
	sub.CheckEvery = 100 * time.Millisecond
	pub := redisstore.NewPurger(mustClient(t, redisstore.Config{URL: url, Prefix: prefix}))
	got := subscribe(t, sub)

	t.Run("restart", func(t *testing.T) {
		px.cut() // as Redis going down: connections reset, new ones refused
		if err := pub.Publish(ctx, "missed"); err != nil {
			t.Fatal(err)
		}
		px.heal()
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
		px.freeze() // as a partition: the connection stays open, nothing arrives
		if err := pub.Publish(ctx, "lost"); err != nil {
			t.Fatal(err)
		}
		// The purger notices only by its own pings going unanswered.
		px.heal()
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

// proxy forwards TCP connections to Redis and can fail them on demand, as
// a Redis restart or a network partition would.
type proxy struct {
	url    string
	target string
	ln     net.Listener

	mu     sync.Mutex
	conns  []*link
	refuse bool
}

// link is one proxied connection. Once dead it throws away whatever it
// reads, like a connection whose peer vanished without a word.
type link struct {
	client, server net.Conn
	dead           atomic.Bool
}

func (l *link) close() {
	l.client.Close()
	l.server.Close()
}

func newProxy(t *testing.T, redisURL string) *proxy {
	t.Helper()
	u, err := url.Parse(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{target: u.Host, ln: ln}
	u.Host = ln.Addr().String()
	p.url = u.String()
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.cut()
	})
	return p
}

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue
		}
		p.mu.Lock()
		refuse := p.refuse
		p.mu.Unlock()
		if refuse {
			c.Close()
			continue
		}
		r, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		l := &link{client: c, server: r}
		p.mu.Lock()
		p.conns = append(p.conns, l)
		p.mu.Unlock()
		go l.pipe(c, r)
		go l.pipe(r, c)
	}
}

func (l *link) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !l.dead.Load() {
			if _, err := dst.Write(buf[:n]); err != nil {
				l.close()
				return
			}
		}
		if err != nil {
			l.close()
			return
		}
	}
}

// cut closes every connection and refuses new ones until heal.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refuse = true
	for _, l := range p.conns {
		l.close()
	}
	p.conns = nil
}

// freeze makes every open connection silent for good, without closing
// it, and refuses new ones until heal.
func (p *proxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refuse = true
	for _, l := range p.conns {
		l.dead.Store(true)
	}
}

func (p *proxy) heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refuse = false
}
