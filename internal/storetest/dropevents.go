package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/surge-commerce/surge/internal/checkout"
	"github.com/surge-commerce/surge/internal/drop"
	"github.com/surge-commerce/surge/internal/dropreport"
)

// testDropEvents: a drop's events, line counters and purchases come back
// as recorded: tallies by kind and reason with distinct visitors, one
// wait per admitted visitor, the newest line copy (an older or smaller
// one never replaces it), purchases in the order placed, without the one
// whose order failed; events recorded by many writers at once are all
// kept, none twice.
func testDropEvents(t *testing.T, s Store) {
	ctx := context.Background()
	newShop(t, s, 100)
	d, err := s.CreateDrop(ctx, drop.Drop{Slug: "reported", Name: "Reported", StartsAt: time.Now().Add(-time.Minute), PerCustomerLimit: 5,
		Items: []drop.Item{{SKU: "HOT", Allocated: 10}},
		Room:  drop.Room{RatePerMinute: 60, MaxActive: 10, NoShowWindow: drop.Duration(time.Minute), AccessTTL: drop.Duration(time.Minute)}})
	if err != nil {
		t.Fatal(err)
	}
	if a, err := s.DropActivity(ctx, d.ID); err != nil || a.HasLine || len(a.Tallies) != 0 || len(a.Purchases) != 0 {
		t.Fatalf("a drop without events: %+v, %v", a, err)
	}
	at := time.Now().UTC().Truncate(time.Millisecond)
	ev := func(kind dropreport.Kind, visitor, reason string, qty int64, wait time.Duration) dropreport.Event {
		return dropreport.Event{Drop: d.ID, Kind: kind, Visitor: visitor, Reason: reason, Quantity: qty, Wait: wait, At: at}
	}
	err = s.RecordDropEvents(ctx, []dropreport.Event{
		ev(dropreport.KindAdmitted, "v1", "", 0, 3*time.Second),
		ev(dropreport.KindAdmitted, "v1", "", 0, 9*time.Second), // a second replica's copy: the first counts
		ev(dropreport.KindAdmitted, "v2", "", 0, 5*time.Second),
		ev(dropreport.KindAdded, "v1", "", 2, 0),
		ev(dropreport.KindAdded, "v1", "", 1, 0),
		ev(dropreport.KindRefused, "bot", dropreport.ReasonRateLimit, 0, 0),
		ev(dropreport.KindRefused, "bot", dropreport.ReasonRateLimit, 0, 0),
		ev(dropreport.KindRefused, "bot2", dropreport.ReasonProofOfWork, 0, 0),
		{Drop: "drop_other", Kind: dropreport.KindAdded, Visitor: "v9", Quantity: 1, At: at},
	})
	if err != nil {
		t.Fatal(err)
	}
	// Many replicas flushing at once: every event kept exactly once.
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			batch := make([]dropreport.Event, 25)
			for i := range batch {
				batch[i] = ev(dropreport.KindToldSoldOut, fmt.Sprintf("w%d-%d", w, i), "", 0, 0)
			}
			if err := s.RecordDropEvents(ctx, batch); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()

	first := dropreport.Line{At: at, PreQueue: 4, Joined: 9, Admitted: 6, NoShows: 1}
	if err := s.SaveDropLine(ctx, d.ID, first); err != nil {
		t.Fatal(err)
	}
	older := dropreport.Line{At: at.Add(-time.Second), PreQueue: 4, Joined: 12, Admitted: 8}
	smaller := dropreport.Line{At: at.Add(time.Second), PreQueue: 1, Joined: 2}
	for _, l := range []dropreport.Line{older, smaller} {
		if err := s.SaveDropLine(ctx, d.ID, l); err != nil {
			t.Fatal(err)
		}
	}
	newer := dropreport.Line{At: at.Add(2 * time.Second), PreQueue: 4, Joined: 11, Admitted: 7, NoShows: 2}
	if err := s.SaveDropLine(ctx, d.ID, newer); err != nil {
		t.Fatal(err)
	}

	buy := func(buyer, key string, qty int64, created time.Time) string {
		p := placement(buyer, key, later(), line("HOT", qty))
		p.Order.CreatedAt = created
		p.Drop = &checkout.DropPurchase{DropID: d.ID, Buyer: buyer, Quantity: qty, Limit: d.PerCustomerLimit}
		return mustPlace(t, s, p).ID
	}
	o1 := buy("v1", "1", 2, at.Add(time.Second))
	o2 := buy("v2", "1", 1, at.Add(2*time.Second))
	o3 := buy("v3", "1", 1, at.Add(3*time.Second))
	if err := s.MarkPaymentFailed(ctx, o2, "declined"); err != nil {
		t.Fatal(err)
	}

	a, err := s.DropActivity(ctx, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !a.HasLine || !a.Line.At.Equal(newer.At) || a.Line.PreQueue != 4 || a.Line.Joined != 11 || a.Line.Admitted != 7 || a.Line.NoShows != 2 {
		t.Errorf("line = %+v (has %v), want the newest copy %+v", a.Line, a.HasLine, newer)
	}
	want := map[string]dropreport.Tally{
		"added/":                {Kind: dropreport.KindAdded, Events: 2, Visitors: 1, Quantity: 3},
		"admitted/":             {Kind: dropreport.KindAdmitted, Events: 3, Visitors: 2},
		"refused/rate_limit":    {Kind: dropreport.KindRefused, Reason: dropreport.ReasonRateLimit, Events: 2, Visitors: 1},
		"refused/proof_of_work": {Kind: dropreport.KindRefused, Reason: dropreport.ReasonProofOfWork, Events: 1, Visitors: 1},
		"told_sold_out/":        {Kind: dropreport.KindToldSoldOut, Events: 200, Visitors: 200},
	}
	if len(a.Tallies) != len(want) {
		t.Errorf("tallies = %+v, want %d of them", a.Tallies, len(want))
	}
	for _, got := range a.Tallies {
		k := string(got.Kind) + "/" + got.Reason
		if w, ok := want[k]; !ok || got != w {
			t.Errorf("tally %s = %+v, want %+v", k, got, w)
		}
	}
	if len(a.Waits) != 2 || a.Waits[0]+a.Waits[1] != 8*time.Second {
		t.Errorf("waits = %v, want one per visitor, the first recorded (3s and 5s)", a.Waits)
	}
	if len(a.Purchases) != 2 || a.Purchases[0].Order != o1 || a.Purchases[1].Order != o3 ||
		a.Purchases[0].Buyer != "v1" || a.Purchases[0].Quantity != 2 || !a.Purchases[0].At.Equal(at.Add(time.Second)) {
		t.Errorf("purchases = %+v, want %s (v1, 2) then %s, without the failed %s", a.Purchases, o1, o3, o2)
	}
}
