package pgstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/surge-commerce/surge/internal/catalog"
	"github.com/surge-commerce/surge/internal/drop"
	"github.com/surge-commerce/surge/internal/jobs"
	"github.com/surge-commerce/surge/internal/money"
	"github.com/surge-commerce/surge/internal/notify"
	"github.com/surge-commerce/surge/internal/pgstore"
	"github.com/surge-commerce/surge/internal/storetest"
)

func TestMailConformance(t *testing.T) {
	storetest.RunMail(t, func(t *testing.T, now func() time.Time) storetest.MailStore {
		return newTestStore(t, false, func(c *pgstore.Config) { c.Now = now })
	})
}

// A mail job's recipient list comes from a read replica once it has
// replayed up to the job's start, and from the primary before that, so a
// lagging replica never hides a subscriber.
func TestRecipientsFromReplica(t *testing.T) {
	s := newTestStore(t, true)
	reg := prometheus.NewRegistry()
	if err := s.Register(reg); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cat, err := s.CreateCategory(ctx, catalog.Category{Slug: "drops", Name: "Drops"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateProduct(ctx, catalog.Product{Slug: "hot", Name: "Hot", Status: catalog.StatusActive, CategoryID: cat.ID,
		Variants: []catalog.Variant{{SKU: "HOT", Price: money.Money{Amount: 100, Currency: "USD"}, OnHand: 1}}}); err != nil {
		t.Fatal(err)
	}
	in := drop.Drop{Slug: "soon", Name: "Soon", StartsAt: time.Now().Add(time.Hour), Items: []drop.Item{{SKU: "HOT", Allocated: 1}}}
	in.Defaults()
	d, err := s.CreateDrop(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	const n = 50
	for i := range n {
		tok := notify.NewToken()
		if _, err := s.SaveSubscription(ctx, d.ID, fmt.Sprintf("f%d@example.com", i), notify.HashToken(tok), notify.NewToken()); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ConfirmSubscription(ctx, notify.HashToken(tok), time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	j, err := s.EnsureJob(ctx, jobs.KindReminder, d.ID, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if j, err = s.StartJob(ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	pos, err := pgstore.ParseLSN(j.ReadPosition)
	if err != nil || pos == 0 {
		t.Fatalf("job read position %q: %v", j.ReadPosition, err)
	}
	q := notify.RecipientQuery{DropID: d.ID, FromID: 0, ToID: 1 << 62, ConfirmedBy: *j.StartedAt, ReadPosition: j.ReadPosition}
	// Whichever serves it, the list is whole.
	if rs, err := s.Recipients(ctx, q); err != nil || len(rs) != n {
		t.Fatalf("Recipients = %d, %v; want %d", len(rs), err, n)
	}
	waitReplayed(t, s, pos)
	before, _ := replicaReads(t, reg)
	if rs, err := s.Recipients(ctx, q); err != nil || len(rs) != n {
		t.Fatalf("Recipients from the replica = %d, %v; want %d", len(rs), err, n)
	}
	if after, _ := replicaReads(t, reg); after != before+1 {
		t.Errorf("replica reads %v -> %v; want the recipient list read on the replica", before, after)
	}
	if _, err := s.Recipients(ctx, notify.RecipientQuery{DropID: d.ID, ReadPosition: "junk"}); err == nil {
		t.Error("a malformed read position was accepted")
	}
}
