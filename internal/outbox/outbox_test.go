package outbox_test

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	_ "modernc.org/sqlite"

	"github.com/surge-commerce/surge/internal/natsbus"
	"github.com/surge-commerce/surge/internal/outbox"
)

// sqliteOutbox is the Source the package doc describes, over a real SQLite
// table: the shape sqlitestore implements.
type sqliteOutbox struct {
	db   *sql.DB
	skew atomic.Int64 // how far the source's clock runs ahead, for leases
}

func openOutbox(tb testing.TB) *sqliteOutbox {
	tb.Helper()
	v := url.Values{}
	v.Add("_pragma", "busy_timeout(5000)")
	v.Add("_pragma", "journal_mode(WAL)")
	v.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", filepath.Join(tb.TempDir(), "outbox.db")+"?"+v.Encode())
	if err != nil {
		tb.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	tb.Cleanup(func() { db.Close() })
	if _, err := db.Exec(`
		CREATE TABLE outbox (
			seq           INTEGER PRIMARY KEY,
			id            TEXT NOT NULL UNIQUE,
			subject       TEXT NOT NULL,
			data          BLOB NOT NULL,
			created_at    INTEGER NOT NULL,
			published_at  INTEGER,
			claimed_by    TEXT,
			claimed_until INTEGER
		);
		CREATE INDEX outbox_pending ON outbox (published_at, seq);`); err != nil {
		tb.Fatal(err)
	}
	return &sqliteOutbox{db: db}
}

// add commits an event the way a domain transaction would.
func (o *sqliteOutbox) add(tb testing.TB, id, subject, data string) {
	tb.Helper()
	if _, err := o.db.Exec(`INSERT INTO outbox (id, subject, data, created_at) VALUES (?, ?, ?, ?)`,
		id, subject, []byte(data), time.Now().UnixNano()); err != nil {
		tb.Fatal(err)
	}
}

func (o *sqliteOutbox) unpublished(tb testing.TB) int {
	tb.Helper()
	var n int
	if err := o.db.QueryRow(`SELECT count(*) FROM outbox WHERE published_at IS NULL`).Scan(&n); err != nil {
		tb.Fatal(err)
	}
	return n
}

func (o *sqliteOutbox) Claim(ctx context.Context, owner string, limit int, lease time.Duration) ([]outbox.Event, error) {
	now := time.Now().Add(time.Duration(o.skew.Load()))
	rows, err := o.db.QueryContext(ctx, `UPDATE outbox SET claimed_by = ?1, claimed_until = ?2
		WHERE seq IN (SELECT seq FROM outbox WHERE published_at IS NULL
			AND (claimed_until IS NULL OR claimed_until <= ?3 OR claimed_by = ?1) ORDER BY seq LIMIT ?4)
		RETURNING seq, id, subject, data, created_at`, owner, now.Add(lease).UnixNano(), now.UnixNano(), limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	type claimed struct {
		seq int64
		ev  outbox.Event
	}
	var got []claimed
	for rows.Next() {
		var c claimed
		var created int64
		if err := rows.Scan(&c.seq, &c.ev.ID, &c.ev.Subject, &c.ev.Data, &created); err != nil {
			return nil, err
		}
		c.ev.CreatedAt = time.Unix(0, created)
		got = append(got, c)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	slices.SortFunc(got, func(a, b claimed) int { return cmp.Compare(a.seq, b.seq) })
	evs := make([]outbox.Event, len(got))
	for i, c := range got {
		evs[i] = c.ev
	}
	return evs, nil
}

func (o *sqliteOutbox) Release(ctx context.Context, owner string, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	args := []any{owner}
	for _, id := range ids {
		args = append(args, id)
	}
	_, err := o.db.ExecContext(ctx, `UPDATE outbox SET claimed_by = NULL, claimed_until = NULL
		WHERE published_at IS NULL AND claimed_by = ? AND id IN (?`+strings.Repeat(",?", len(ids)-1)+`)`, args...)
	return err
}

func (o *sqliteOutbox) Oldest(ctx context.Context) (time.Time, error) {
	var created int64
	err := o.db.QueryRowContext(ctx, `SELECT created_at FROM outbox WHERE published_at IS NULL ORDER BY seq LIMIT 1`).Scan(&created)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, err
	}
	return time.Unix(0, created), nil
}

func (o *sqliteOutbox) MarkPublished(ctx context.Context, ids []string) error {
	args := []any{time.Now().UnixNano()}
	for _, id := range ids {
		args = append(args, id)
	}
	_, err := o.db.ExecContext(ctx, `UPDATE outbox SET published_at = ? WHERE id IN (?`+
		strings.Repeat(",?", len(ids)-1)+`)`, args...)
	return err
}

func openBus(tb testing.TB) *natsbus.Bus {
	tb.Helper()
	b, err := natsbus.Open(context.Background(), natsbus.Config{StoreDir: tb.TempDir()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { b.Close() })
	return b
}

// collector records what a consumer sees, in order.
type collector struct {
	mu   sync.Mutex
	ids  []string
	seen chan string
}

func consume(tb testing.TB, b *natsbus.Bus, subject string) *collector {
	tb.Helper()
	c := &collector{seen: make(chan string, 1000)}
	stop, err := b.Consume(context.Background(), natsbus.Consumer{
		Name: "test", Subject: subject, Concurrency: 1,
		Handler: func(ctx context.Context, m natsbus.Message) error {
			c.mu.Lock()
			c.ids = append(c.ids, m.ID)
			c.mu.Unlock()
			c.seen <- m.ID
			return nil
		},
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(stop)
	return c
}

// waitFor waits until the consumer has seen id.
func (c *collector) waitFor(tb testing.TB, id string) {
	tb.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case got := <-c.seen:
			if got == id {
				return
			}
		case <-timeout:
			tb.Fatalf("timed out waiting for %s; seen %d", id, len(c.snapshot()))
		}
	}
}

func (c *collector) snapshot() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.ids...)
}

func runRelay(tb testing.TB, r *outbox.Relay) (stop func()) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	stop = sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("relay returned %v", err)
		}
	})
	tb.Cleanup(stop)
	return stop
}

// poll checks cond every 10ms until it holds, failing the test after 10s.
func poll(tb testing.TB, what string, cond func() bool) {
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

// value gathers reg and returns the single sample of the named metric.
func value(tb testing.TB, reg *prometheus.Registry, name string) float64 {
	tb.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name || len(mf.Metric) != 1 {
			continue
		}
		m := mf.Metric[0]
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		}
	}
	tb.Fatalf("metric %s not found", name)
	return 0
}

func TestRelayPublishesInOrderAndMarks(t *testing.T) {
	src := openOutbox(t)
	b := openBus(t)
	c := consume(t, b, "surge.order.>")
	const n = 250 // several batches
	var want []string
	for i := range n {
		id := fmt.Sprintf("evt-%03d", i)
		src.add(t, id, "surge.order.created", "{}")
		want = append(want, id)
	}
	r := outbox.NewRelay(src, b, outbox.RelayOptions{Batch: 100, Interval: time.Hour})
	reg := prometheus.NewRegistry()
	if err := r.Register(reg); err != nil {
		t.Fatal(err)
	}
	runRelay(t, r) // the first round runs at once, without Notify
	c.waitFor(t, want[n-1])
	if got := c.snapshot(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("consumed out of order or with gaps: %v", got)
	}

	// With an hour-long interval, only Notify can deliver this one quickly.
	src.add(t, "late", "surge.order.paid", "{}")
	r.Notify()
	c.waitFor(t, "late")
	// Marking happens right after publishing; poll for it.
	poll(t, "events marked published and counted", func() bool {
		return src.unpublished(t) == 0 && value(t, reg, "surge_outbox_relayed_total") == n+1
	})
}

// crashingSource simulates a process dying between publishing a batch and
// marking it: MarkPublished fails and the relay's ctx is cancelled.
type crashingSource struct {
	*sqliteOutbox
	crash context.CancelFunc
}

func (s crashingSource) MarkPublished(ctx context.Context, ids []string) error {
	s.crash()
	return errors.New("killed")
}

func TestCrashBetweenPublishAndMarkIsDeduplicated(t *testing.T) {
	src := openOutbox(t)
	b := openBus(t)
	busReg := prometheus.NewRegistry()
	if err := b.Register(busReg); err != nil {
		t.Fatal(err)
	}
	c := consume(t, b, "surge.order.>")
	for i := range 5 {
		src.add(t, fmt.Sprintf("evt-%d", i), "surge.order.created", "{}")
	}

	// First life: publishes all five, dies before marking them.
	ctx, crash := context.WithCancel(context.Background())
	first := outbox.NewRelay(crashingSource{src, crash}, b, outbox.RelayOptions{Interval: time.Hour})
	if err := first.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if got := src.unpublished(t); got != 5 {
		t.Fatalf("%d unpublished after the crash, want 5", got)
	}

	// Second life, once the dead relay's lease has run out: republishes
	// them; JetStream drops the copies.
	src.skew.Store(int64(time.Minute))
	second := outbox.NewRelay(src, b, outbox.RelayOptions{Interval: time.Hour})
	runRelay(t, second)
	src.add(t, "sentinel", "surge.order.created", "{}")
	second.Notify()
	c.waitFor(t, "sentinel")
	// Everything before the sentinel was delivered before it (one ordered
	// stream, one handler at a time).
	want := []string{"evt-0", "evt-1", "evt-2", "evt-3", "evt-4", "sentinel"}
	if got := c.snapshot(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("consumer saw %v, want each once: %v", got, want)
	}
	// The relay counts an acknowledgement when it waits for it, which,
	// with a batch sent ahead, can be after the consumer saw a later
	// event of the same batch.
	poll(t, "the five copies counted as duplicates", func() bool {
		return testutil.GatherAndCompare(busReg, strings.NewReader(`
# HELP surge_events_duplicates_total Publishes the event stream discarded as duplicates of an earlier message id, by subject.
# TYPE surge_events_duplicates_total counter
surge_events_duplicates_total{subject="surge.order.created"} 5
`), "surge_events_duplicates_total") == nil
	})
}

// flakyPublisher fails its first n publishes, like a bus that is down.
type flakyPublisher struct {
	outbox.Publisher
	failures atomic.Int32
}

func (p *flakyPublisher) Publish(ctx context.Context, subject, msgID string, data []byte) error {
	if p.failures.Add(-1) >= 0 {
		return errors.New("nats: no responders available for request")
	}
	return p.Publisher.Publish(ctx, subject, msgID, data)
}

func TestPublishFailuresAreRetriedNotDropped(t *testing.T) {
	src := openOutbox(t)
	b := openBus(t)
	c := consume(t, b, "surge.order.>")
	pub := &flakyPublisher{Publisher: b}
	pub.failures.Store(4)
	for i := range 3 {
		src.add(t, fmt.Sprintf("evt-%d", i), "surge.order.created", "{}")
	}
	past := time.Now().Add(-time.Minute)
	r := outbox.NewRelay(src, pub, outbox.RelayOptions{
		Interval: time.Hour, MaxBackoff: 20 * time.Millisecond,
		Now: func() time.Time { return past.Add(2 * time.Minute) },
	})
	reg := prometheus.NewRegistry()
	if err := r.Register(reg); err != nil {
		t.Fatal(err)
	}
	runRelay(t, r)
	c.waitFor(t, "evt-2")
	if got := c.snapshot(); fmt.Sprint(got) != "[evt-0 evt-1 evt-2]" {
		t.Fatalf("consumed %v", got)
	}
	if got := value(t, reg, "surge_outbox_errors_total"); got != 4 {
		t.Errorf("errors %v, want 4", got)
	}
	poll(t, "lag back to 0", func() bool { return value(t, reg, "surge_outbox_lag_seconds") == 0 })
}

func TestLagReportsOldestPending(t *testing.T) {
	src := openOutbox(t)
	created := time.Now()
	src.add(t, "stuck", "surge.order.created", "{}")
	pub := &flakyPublisher{Publisher: openBus(t)}
	pub.failures.Store(1 << 30) // the bus never comes back
	r := outbox.NewRelay(src, pub, outbox.RelayOptions{
		Interval: time.Hour, MaxBackoff: 10 * time.Millisecond,
		Now: func() time.Time { return created.Add(90 * time.Second) },
	})
	reg := prometheus.NewRegistry()
	if err := r.Register(reg); err != nil {
		t.Fatal(err)
	}
	runRelay(t, r)
	poll(t, "lag of about 90s", func() bool {
		lag := value(t, reg, "surge_outbox_lag_seconds")
		return lag > 89 && lag < 91
	})
	if src.unpublished(t) != 1 {
		t.Fatal("a failing event was marked published")
	}
}

// TestRelaysShareTheOutbox runs three relays, as three API replicas do, on
// one outbox: each event is published once, by one of them, rather than
// by all three with the bus discarding the copies.
func TestRelaysShareTheOutbox(t *testing.T) {
	src := openOutbox(t)
	b := openBus(t)
	busReg := prometheus.NewRegistry()
	if err := b.Register(busReg); err != nil {
		t.Fatal(err)
	}
	c := consume(t, b, "surge.order.>")
	const n = 300
	for i := range n {
		src.add(t, fmt.Sprintf("evt-%03d", i), "surge.order.created", "{}")
	}
	regs := make([]*prometheus.Registry, 3)
	var relays []*outbox.Relay
	for i := range regs {
		r := outbox.NewRelay(src, b, outbox.RelayOptions{Batch: 20, Interval: 10 * time.Millisecond})
		regs[i] = prometheus.NewRegistry()
		if err := r.Register(regs[i]); err != nil {
			t.Fatal(err)
		}
		relays = append(relays, r)
	}
	for _, r := range relays {
		runRelay(t, r)
	}
	c.waitFor(t, fmt.Sprintf("evt-%03d", n-1))
	poll(t, "every event marked", func() bool { return src.unpublished(t) == 0 })
	var relayed float64
	for _, reg := range regs {
		relayed += value(t, reg, "surge_outbox_relayed_total")
	}
	if relayed != n {
		t.Errorf("the relays published %v events between them, want each of %d once", relayed, n)
	}
	if got := duplicates(t, busReg); got != 0 {
		t.Errorf("the bus discarded %v duplicate publishes; relays repeated each other's work", got)
	}
	seen := map[string]int{}
	for _, id := range c.snapshot() {
		seen[id]++
	}
	if len(seen) != n {
		t.Errorf("consumed %d distinct events, want %d", len(seen), n)
	}
}

// duplicates returns how many publishes the bus discarded as copies.
func duplicates(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var total float64
	for _, mf := range mfs {
		if mf.GetName() == "surge_events_duplicates_total" {
			for _, m := range mf.Metric {
				total += m.GetCounter().GetValue()
			}
		}
	}
	return total
}

// syncingBus is the real bus, noting which events Sync covered; its
// first failSyncs syncs fail, like a disk that refuses a flush.
type syncingBus struct {
	*natsbus.Bus
	failSyncs atomic.Int32

	mu        sync.Mutex
	published []string
	synced    map[string]bool
}

func (b *syncingBus) Publish(ctx context.Context, subject, msgID string, data []byte) error {
	if err := b.Bus.Publish(ctx, subject, msgID, data); err != nil {
		return err
	}
	b.mu.Lock()
	b.published = append(b.published, msgID)
	b.mu.Unlock()
	return nil
}

func (b *syncingBus) PublishAsync(ctx context.Context, subject, msgID string, data []byte) (func(context.Context) error, error) {
	wait, err := b.Bus.PublishAsync(ctx, subject, msgID, data)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) error {
		if err := wait(ctx); err != nil {
			return err
		}
		b.mu.Lock()
		b.published = append(b.published, msgID)
		b.mu.Unlock()
		return nil
	}, nil
}

func (b *syncingBus) Sync(ctx context.Context) error {
	if b.failSyncs.Add(-1) >= 0 {
		return errors.New("fsync: input/output error")
	}
	if err := b.Bus.Sync(ctx); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, id := range b.published {
		b.synced[id] = true
	}
	return nil
}

// syncCheckingSource fails the test when an event is marked published
// before the bus synced it.
type syncCheckingSource struct {
	*sqliteOutbox
	bus *syncingBus
	t   *testing.T
}

func (s syncCheckingSource) MarkPublished(ctx context.Context, ids []string) error {
	s.bus.mu.Lock()
	for _, id := range ids {
		if !s.bus.synced[id] {
			s.t.Errorf("event %s marked published before the bus synced it to disk", id)
		}
	}
	s.bus.mu.Unlock()
	return s.sqliteOutbox.MarkPublished(ctx, ids)
}

// TestEventsMarkedPublishedOnlyOnceSynced: an outbox row says published
// only after the bus has the event on disk, so an OS crash cannot lose an
// event whose row the relay let go of; a failed sync leaves the batch
// unpublished, and it goes out again (de-duplicated by the bus).
func TestEventsMarkedPublishedOnlyOnceSynced(t *testing.T) {
	out := openOutbox(t)
	bus := &syncingBus{Bus: openBus(t), synced: map[string]bool{}}
	bus.failSyncs.Store(2)
	src := syncCheckingSource{sqliteOutbox: out, bus: bus, t: t}
	c := consume(t, bus.Bus, "surge.order.>")
	for i := range 5 {
		out.add(t, fmt.Sprintf("evt-%d", i), "surge.order.created", "{}")
	}
	r := outbox.NewRelay(src, bus, outbox.RelayOptions{Batch: 2, Interval: time.Hour, MaxBackoff: 10 * time.Millisecond})
	reg := prometheus.NewRegistry()
	if err := r.Register(reg); err != nil {
		t.Fatal(err)
	}
	runRelay(t, r)
	c.waitFor(t, "evt-4")
	poll(t, "every event marked published", func() bool { return out.unpublished(t) == 0 })
	if got := c.snapshot(); fmt.Sprint(got) != "[evt-0 evt-1 evt-2 evt-3 evt-4]" {
		t.Errorf("consumed %v, want each event once, in order", got)
	}
	if got := value(t, reg, "surge_outbox_errors_total"); got != 2 {
		t.Errorf("errors %v, want the 2 failed syncs", got)
	}
}

// pipeliningBus is the real bus's PublishAsync, counting how many events
// the relay has in flight at once, and refusing the event named refuse
// once (it never reaches the stream) while the ones after it go through.
type pipeliningBus struct {
	*natsbus.Bus
	refuse   string
	refused  atomic.Bool
	inFlight atomic.Int32
	most     atomic.Int32
}

func (p *pipeliningBus) PublishAsync(ctx context.Context, subject, msgID string, data []byte) (func(context.Context) error, error) {
	if msgID == p.refuse && p.refused.CompareAndSwap(false, true) {
		return func(context.Context) error { return errors.New("nats: timeout") }, nil
	}
	wait, err := p.Bus.PublishAsync(ctx, subject, msgID, data)
	if err != nil {
		return nil, err
	}
	n := p.inFlight.Add(1)
	for m := p.most.Load(); n > m && !p.most.CompareAndSwap(m, n); m = p.most.Load() {
	}
	return func(ctx context.Context) error {
		defer p.inFlight.Add(-1)
		return wait(ctx)
	}, nil
}

// TestRelayPipelinesBatches: with a bus that takes events without
// waiting, the relay sends a claimed batch before waiting for the
// acknowledgements, rather than one round trip per event, and still
// delivers every event in order and marks it.
func TestRelayPipelinesBatches(t *testing.T) {
	src := openOutbox(t)
	b := openBus(t)
	c := consume(t, b, "surge.order.>")
	pub := &pipeliningBus{Bus: b}
	const n = 250
	var want []string
	for i := range n {
		id := fmt.Sprintf("evt-%03d", i)
		src.add(t, id, "surge.order.created", "{}")
		want = append(want, id)
	}
	runRelay(t, outbox.NewRelay(src, pub, outbox.RelayOptions{Batch: 100, Interval: time.Hour}))
	c.waitFor(t, want[n-1])
	if got := c.snapshot(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("consumed out of order or with gaps: %v", got)
	}
	poll(t, "events marked published", func() bool { return src.unpublished(t) == 0 })
	if most := pub.most.Load(); most < 50 {
		t.Fatalf("at most %d events in flight at once; want the batch sent before waiting", most)
	}
}

// TestRelayPipelineFailureLosesNothing: the bus refuses one event of a
// batch sent ahead while the later ones are stored. The relay marks only
// what came before it, sends the rest again, and the bus drops the second
// copies: every event reaches the consumer exactly once.
func TestRelayPipelineFailureLosesNothing(t *testing.T) {
	src := openOutbox(t)
	b := openBus(t)
	c := consume(t, b, "surge.order.>")
	pub := &pipeliningBus{Bus: b, refuse: "evt-04"}
	const n = 10
	for i := range n {
		src.add(t, fmt.Sprintf("evt-%02d", i), "surge.order.created", "{}")
	}
	runRelay(t, outbox.NewRelay(src, pub, outbox.RelayOptions{Interval: time.Hour, MaxBackoff: 20 * time.Millisecond}))
	poll(t, "every event consumed and marked", func() bool { return len(c.snapshot()) >= n && src.unpublished(t) == 0 })
	got := c.snapshot()
	slices.Sort(got)
	if len(got) != n || len(slices.Compact(got)) != n {
		t.Fatalf("consumed %v, want each of %d once", c.snapshot(), n)
	}
	if !pub.refused.Load() {
		t.Fatal("the refusal never happened")
	}
}
