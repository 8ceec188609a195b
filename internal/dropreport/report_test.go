package dropreport_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/surge-commerce/surge/internal/drop"
	"github.com/surge-commerce/surge/internal/dropreport"
	"github.com/surge-commerce/surge/internal/sqlitestore"
)

var start = time.Date(2026, 12, 4, 18, 0, 0, 0, time.UTC)

func testDrop() drop.Drop {
	return drop.Drop{ID: "drop_x", Slug: "x", Name: "X", StartsAt: start, PerCustomerLimit: 2,
		Items: []drop.Item{{SKU: "A", Allocated: 4}, {SKU: "B", Allocated: 2}}}
}

// TestComputeFunnel: every figure of the report from an activity whose
// answers are known.
func TestComputeFunnel(t *testing.T) {
	a := dropreport.Activity{
		HasLine: true,
		Line:    dropreport.Line{At: start.Add(time.Hour), PreQueue: 30, Joined: 50, Admitted: 12, NoShows: 3},
		Tallies: []dropreport.Tally{
			{Kind: dropreport.KindAdded, Events: 9, Visitors: 7, Quantity: 11},
			{Kind: dropreport.KindToldSoldOut, Events: 38, Visitors: 38},
			{Kind: dropreport.KindLimit, Events: 5, Visitors: 2},
			{Kind: dropreport.KindRefused, Reason: dropreport.ReasonRateLimit, Events: 100, Visitors: 4},
			{Kind: dropreport.KindRefused, Reason: dropreport.ReasonBadToken, Events: 3, Visitors: 3},
			{Kind: dropreport.KindLost, Events: 1, Quantity: 17},
		},
		Waits: []time.Duration{4 * time.Second, time.Second, 2 * time.Second, 3 * time.Second},
		Purchases: []dropreport.Purchase{
			{Order: "o1", Buyer: "v1", Quantity: 2, At: start.Add(10 * time.Second)},
			{Order: "o2", Buyer: "v2", Quantity: 1, At: start.Add(30 * time.Second)},
			{Order: "o3", Buyer: "v1", Quantity: 1, At: start.Add(70 * time.Second)},
			{Order: "o4", Buyer: "v3", Quantity: 2, At: start.Add(90 * time.Second)},  // the last of 6 units
			{Order: "o5", Buyer: "v4", Quantity: 1, At: start.Add(200 * time.Second)}, // stock came back
		},
	}
	notified := int64(400)
	r := dropreport.Compute(testDrop(), a, &notified)
	f := r.Funnel
	if *f.Notified != 400 || f.JoinedBeforeStart != 30 || f.JoinedAfterStart != 20 || f.Admitted != 12 || f.NoShows != 3 ||
		f.Added != 7 || f.Bought != 4 || f.ToldSoldOut != 38 {
		t.Errorf("funnel = %+v", f)
	}
	if r.Drop.Allocated != 6 || r.UnitsSold != 7 || r.Orders != 5 {
		t.Errorf("allocated %d sold %d orders %d, want 6, 7, 5", r.Drop.Allocated, r.UnitsSold, r.Orders)
	}
	if r.SoldOutAfter == nil || r.SoldOutAfter.Duration() != 90*time.Second {
		t.Errorf("sold out after %v, want 90s (the order that took the sixth unit)", r.SoldOutAfter)
	}
	// 4 orders up to the sell-out at 90s: 4 / 1.5 minutes.
	if r.OrdersPerMinute != 2.7 || r.PeakOrdersPerMinute != 2 {
		t.Errorf("orders per minute %v peak %d, want 2.7 and 2", r.OrdersPerMinute, r.PeakOrdersPerMinute)
	}
	if r.TimeInLine.Samples != 4 || r.TimeInLine.P50.Duration() != 2*time.Second || r.TimeInLine.P99.Duration() != 4*time.Second {
		t.Errorf("time in line %+v", r.TimeInLine)
	}
	want := []dropreport.Refusal{{"rate_limit", 100, 4}, {"proof_of_work", 0, 0}, {"bad_token", 3, 3}}
	if fmt.Sprint(r.Refused) != fmt.Sprint(want) {
		t.Errorf("refused = %v, want %v", r.Refused, want)
	}
	if r.LimitHits != 2 || r.LimitRequests != 5 || r.LostEvents != 17 {
		t.Errorf("limit hits %d requests %d lost %d", r.LimitHits, r.LimitRequests, r.LostEvents)
	}

	// Nothing counts the reminders: not tracked, which is not zero.
	if r := dropreport.Compute(testDrop(), dropreport.Activity{}, nil); r.Funnel.Notified != nil || r.SoldOutAfter != nil || r.LineAt != nil {
		t.Errorf("an empty drop: %+v", r)
	}
}

func newStore(t *testing.T) *sqlitestore.Store {
	t.Helper()
	s, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "surge.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestRecorderKeepsEveryEventOnce: events recorded from many goroutines
// reach the store once each (an admission a visitor polls again is one
// event), junk is refused, the line counters are copied, and what the
// store refused is kept and written when it takes writes again.
func TestRecorderKeepsEveryEventOnce(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	flaky := &failingStore{Store: s}
	lines := dropreport.Line{At: start, PreQueue: 3, Joined: 5, Admitted: 2}
	rec := dropreport.NewRecorder(dropreport.RecorderConfig{Store: flaky, MaxBatch: 7, FlushEvery: time.Hour, LineEvery: time.Hour,
		Lines: func(context.Context) (map[string]dropreport.Line, error) {
			return map[string]dropreport.Line{"drop_x": lines}, nil
		}})
	var wg sync.WaitGroup
	for w := range 10 {
		wg.Go(func() {
			for i := range 20 {
				v := fmt.Sprintf("v%d-%d", w, i)
				rec.Record(dropreport.Event{Drop: "drop_x", Kind: dropreport.KindAdded, Visitor: v, Quantity: 1})
				for range 3 { // polled three times: recorded once
					rec.Record(dropreport.Event{Drop: "drop_x", Kind: dropreport.KindAdmitted, Visitor: v, Wait: time.Second})
				}
			}
		})
	}
	rec.Record(dropreport.Event{Drop: "drop_x", Kind: "bogus", Visitor: "v"})
	rec.Record(dropreport.Event{Drop: "drop_x", Kind: dropreport.KindRefused, Reason: "because", Visitor: "v"})
	wg.Wait()
	flaky.fail(true)
	if err := rec.Flush(ctx); err == nil {
		t.Fatal("flush into a failing store: no error")
	}
	flaky.fail(false)
	if err := rec.Close(ctx); err != nil {
		t.Fatal(err)
	}
	a, err := s.DropActivity(ctx, "drop_x")
	if err != nil {
		t.Fatal(err)
	}
	got := map[dropreport.Kind]dropreport.Tally{}
	for _, tl := range a.Tallies {
		got[tl.Kind] = tl
	}
	if len(a.Tallies) != 2 || got[dropreport.KindAdded].Events != 200 || got[dropreport.KindAdded].Quantity != 200 ||
		got[dropreport.KindAdmitted].Events != 200 || got[dropreport.KindAdmitted].Visitors != 200 {
		t.Errorf("tallies %+v: want 200 adds and 200 admissions, once each, nothing else", a.Tallies)
	}
	if !a.HasLine || a.Line.Joined != 5 || a.Line.PreQueue != 3 {
		t.Errorf("line %+v (%v), want the copied counters", a.Line, a.HasLine)
	}
}

// TestRecorderCountsWhatItCannotKeep: past MaxPending events are not
// held but counted, and the count is recorded as lost, so the report
// never passes a partial count off as whole.
func TestRecorderCountsWhatItCannotKeep(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	flaky := &failingStore{Store: s}
	flaky.fail(true)
	rec := dropreport.NewRecorder(dropreport.RecorderConfig{Store: flaky, MaxPending: 10, FlushEvery: time.Hour})
	for i := range 25 {
		rec.Record(dropreport.Event{Drop: "drop_x", Kind: dropreport.KindAdded, Visitor: fmt.Sprint(i), Quantity: 1})
	}
	flaky.fail(false)
	if err := rec.Close(ctx); err != nil {
		t.Fatal(err)
	}
	a, err := s.DropActivity(ctx, "drop_x")
	if err != nil {
		t.Fatal(err)
	}
	r := dropreport.Compute(testDrop(), a, nil)
	if r.LostEvents != 15 || r.Funnel.Added != 10 {
		t.Errorf("lost %d added %d, want 15 lost and 10 kept", r.LostEvents, r.Funnel.Added)
	}
}

// failingStore refuses writes while told to.
type failingStore struct {
	*sqlitestore.Store
	mu      sync.Mutex
	failing bool
}

func (f *failingStore) fail(on bool) { f.mu.Lock(); f.failing = on; f.mu.Unlock() }

func (f *failingStore) RecordDropEvents(ctx context.Context, evs []dropreport.Event) error {
	f.mu.Lock()
	failing := f.failing
	f.mu.Unlock()
	if failing {
		return errors.New("store down")
	}
	return f.Store.RecordDropEvents(ctx, evs)
}
