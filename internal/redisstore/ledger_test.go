package redisstore_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/surge-commerce/surge/internal/enginetest"
	"github.com/surge-commerce/surge/internal/redisstore"
	"github.com/surge-commerce/surge/internal/waitroom"
	"github.com/surge-commerce/surge/internal/waitroom/ledgertest"
)

// newClient returns a client on the test Redis under a prefix of the
// test's own, closed at cleanup.
func newClient(t *testing.T) *redisstore.Client {
	t.Helper()
	url, prefix := enginetest.Redis(t)
	return mustClient(t, redisstore.Config{URL: url, Prefix: prefix})
}

func mustClient(t *testing.T, cfg redisstore.Config) *redisstore.Client {
	t.Helper()
	c, err := redisstore.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestLedgerConformance(t *testing.T) {
	ledgertest.LedgerSuite(t, func(t *testing.T) waitroom.Ledger { return redisstore.NewLedger(newClient(t)) })
}

// t0 is the tests' drop start.
var t0 = time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)

// twoReplicas returns two ledgers on separate connection pools sharing one
// prefix, as two API replicas would have.
func twoReplicas(t *testing.T) (*redisstore.Ledger, *redisstore.Ledger, *redisstore.Client) {
	t.Helper()
	url, prefix := enginetest.Redis(t)
	a := mustClient(t, redisstore.Config{URL: url, Prefix: prefix})
	b := mustClient(t, redisstore.Config{URL: url, Prefix: prefix})
	return redisstore.NewLedger(a), redisstore.NewLedger(b), a
}

// TestLedgerReplicasJoinAtOnce drives one drop from two replicas with
// many goroutines each: before the start, at the start (when both race
// to draw the pre-queue) and while admission runs.
func TestLedgerReplicasJoinAtOnce(t *testing.T) {
	ctx := context.Background()
	l1, l2, _ := twoReplicas(t)
	replicas := []*redisstore.Ledger{l1, l2}
	const maxActive = 40
	cfg := waitroom.QueueConfig{Start: t0, Burst: 100, MaxActive: maxActive, AccessTTL: time.Hour}
	e1, err := l1.Create(ctx, "d", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if e2, err := l2.Create(ctx, "d", cfg); err != nil || e2 != e1 {
		t.Fatalf("second replica's Create = %d, %v; want epoch %d", e2, err, e1)
	}
	if _, err := l2.SetFlow(ctx, "d", waitroom.Flow{RatePerMinute: 600}, t0.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}

	// Before the start: every visitor joins from both replicas at once.
	const workers, pre = 8, 300
	var mu sync.Mutex
	seqs := make(map[string]uint64)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			l := replicas[w%2]
			for i := w / 2; i < pre; i += workers / 2 {
				v := fmt.Sprintf("v:%d", i)
				p, _, err := l.Join(ctx, "d", v, t0.Add(-time.Minute))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if old, ok := seqs[v]; ok && old != p.Seq {
					t.Errorf("%s got places %d and %d", v, old, p.Seq)
				}
				seqs[v] = p.Seq
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	if got := sortedValues(seqs); !isOneToN(got) {
		t.Fatalf("pre-queue seqs are not 1..%d: %v", pre, got)
	}

	// At the start: both replicas find the draw missing at once.
	positions := make([][]uint64, 2)
	for r := range positions {
		positions[r] = make([]uint64, pre+1)
	}
	for w := range workers {
		wg.Go(func() {
			r := w % 2
			for seq := uint64(w/2 + 1); seq <= pre; seq += workers / 2 {
				pos, err := replicas[r].Position(ctx, "d", seq, t0)
				if err != nil {
					t.Error(err)
					return
				}
				positions[r][seq] = pos
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for seq := uint64(1); seq <= pre; seq++ {
		for r := range positions {
			if positions[r][seq] == 0 {
				// Each replica asked about half the seqs; fill in the rest.
				pos, err := replicas[r].Position(ctx, "d", seq, t0)
				if err != nil {
					t.Fatal(err)
				}
				positions[r][seq] = pos
			}
		}
		if positions[0][seq] != positions[1][seq] {
			t.Fatalf("seq %d: position %d on one replica, %d on the other", seq, positions[0][seq], positions[1][seq])
		}
	}
	if got := slices.Sorted(slices.Values(positions[0][1:])); !isOneToN(got) {
		t.Fatalf("pre-queue positions are not a permutation of 1..%d: %v", pre, got)
	}

	// While admission runs: late joins, status polls and releases from
	// both replicas, with clocks moving on.
	const late = 200
	var finished atomic.Int64
	for w := range workers {
		wg.Go(func() {
			l := replicas[w%2]
			for i := w; i < late; i += workers {
				now := t0.Add(time.Duration(i) * 50 * time.Millisecond)
				p, c, err := l.Join(ctx, "d", fmt.Sprintf("late:%d", i), now)
				if err != nil {
					t.Error(err)
					return
				}
				if p.Position != p.Seq || p.PreQueue {
					t.Errorf("late join %d = %+v; want position = seq", i, p)
				}
				checkActive(t, c, maxActive)
				if c, err = l.Counters(ctx, "d", now); err != nil {
					t.Error(err)
					return
				}
				checkActive(t, c, maxActive)
				// Some of the first admitted finish their checkout.
				if i%4 == 0 {
					ok, c, err := l.Release(ctx, "d", fmt.Sprintf("v:%d", i), now)
					if err != nil {
						t.Error(err)
						return
					}
					if ok {
						finished.Add(1)
					}
					checkActive(t, c, maxActive)
				}
			}
		})
	}
	wg.Wait()
	c, err := l1.Counters(ctx, "d", t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	checkActive(t, c, maxActive)
	if c.Joined != pre+late || c.PreQueue != pre {
		t.Errorf("joined %d, pre-queue %d; want %d, %d", c.Joined, c.PreQueue, pre+late, pre)
	}
	if c.Active != maxActive {
		t.Errorf("active %d with hundreds waiting; want the cap %d filled", c.Active, maxActive)
	}
	if released := c.Completed + c.Left; released != uint64(finished.Load()) {
		t.Errorf("completed %d + left %d; want the %d releases that reported a live place", c.Completed, c.Left, finished.Load())
	}
}

func checkActive(t *testing.T, c waitroom.Counters, maxActive uint64) {
	t.Helper()
	if c.Active > maxActive {
		t.Errorf("%d active; want at most %d", c.Active, maxActive)
	}
	if c.Admitted-c.Completed-c.NoShows-c.Expired != c.Active {
		t.Errorf("admitted %d - released %d != active %d", c.Admitted, c.Completed+c.NoShows+c.Expired, c.Active)
	}
}

func sortedValues(m map[string]uint64) []uint64 {
	return slices.Sorted(maps.Values(m))
}

// isOneToN reports whether sorted is 1, 2, ..., len(sorted).
func isOneToN(sorted []uint64) bool {
	for i, v := range sorted {
		if v != uint64(i+1) {
			return false
		}
	}
	return true
}

// TestLedgerAdmittedAtKeepsNanoseconds checks the clock survives the trip
// through Lua numbers to the nanosecond, far from 1970.
func TestLedgerAdmittedAtKeepsNanoseconds(t *testing.T) {
	ctx := context.Background()
	l := redisstore.NewLedger(newClient(t))
	if _, err := l.Create(ctx, "d", waitroom.QueueConfig{Start: t0, Burst: 1, AccessTTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	now := t0.Add(90*24*time.Hour + 123456789)
	p, _, err := l.Join(ctx, "d", "a", now)
	if err != nil {
		t.Fatal(err)
	}
	s, err := l.Seat(ctx, "d", p.Seq, now.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if !s.AdmittedAt.Equal(now) {
		t.Errorf("AdmittedAt = %v; want %v", s.AdmittedAt, now)
	}
}

// TestLedgerKeysShareOneHashTag checks a drop's keys all sit under the
// prefix and one hash tag, so the scripts work on Redis Cluster.
func TestLedgerKeysShareOneHashTag(t *testing.T) {
	ctx := context.Background()
	url, prefix := enginetest.Redis(t)
	l := redisstore.NewLedger(mustClient(t, redisstore.Config{URL: url, Prefix: prefix}))
	if _, err := l.Create(ctx, "spring-drop", waitroom.QueueConfig{Start: t0, Burst: 1}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, _, err := l.Join(ctx, "spring-drop", fmt.Sprint(i), t0.Add(-time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.Counters(ctx, "spring-drop", t0); err != nil {
		t.Fatal(err)
	}
	keys := scanKeys(t, url, prefix)
	if len(keys) != 5 {
		t.Errorf("keys %v; want the drop's five", keys)
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, prefix+"wr:{spring-drop}:") {
			t.Errorf("key %q is not under %q", k, prefix+"wr:{spring-drop}:")
		}
	}
	if err := l.Delete(ctx, "spring-drop"); err != nil {
		t.Fatal(err)
	}
	if keys := scanKeys(t, url, prefix); len(keys) != 0 {
		t.Errorf("after Delete: keys %v left", keys)
	}
}

// scanKeys lists the keys under prefix with a plain go-redis client.
func scanKeys(t *testing.T, url, prefix string) []string {
	t.Helper()
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	var keys []string
	iter := rdb.Scan(context.Background(), 0, prefix+"*", 100).Iterator()
	for iter.Next(context.Background()) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	return keys
}
