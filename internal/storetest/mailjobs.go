package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/surge-commerce/surge/internal/catalog"
	"github.com/surge-commerce/surge/internal/drop"
	"github.com/surge-commerce/surge/internal/jobs"
	"github.com/surge-commerce/surge/internal/notify"
)

// MailStore is what the mail suite needs: a shop's store with the "notify
// me" list and the job ledger.
type MailStore interface {
	Store
	notify.Store
	jobs.Store
}

// RunMail runs the conformance tests of "notify me" subscriptions and the
// mail job ledger, each on a fresh store from newStore that takes its time
// from now.
func RunMail(t *testing.T, newStore func(t *testing.T, now func() time.Time) MailStore) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s MailStore, c *Clock)
	}{
		{"Subscriptions", testSubscriptions},
		{"SubscribeConcurrently", testSubscribeConcurrently},
		{"JobLedger", testJobLedger},
		{"JobLeaseTakeover", testJobLeaseTakeover},
		{"JobSharedByWorkers", testJobSharedByWorkers},
		{"JobStartsAfterEveryConfirmation", testJobStartsAfterEveryConfirmation},
		{"ImportSubscribers", testImportSubscribers},
		{"ScheduleJob", testScheduleJob},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := NewClock(time.Now().UTC().Truncate(time.Microsecond))
			tt.fn(t, newStore(t, c.Now), c)
		})
	}
}

func mailDrop(t *testing.T, s MailStore, slug string) drop.Drop {
	t.Helper()
	ctx := context.Background()
	cat, err := s.CategoryBySlug(ctx, "drops")
	if err != nil {
		cat = mustCategory(t, s, catalog.Category{Slug: "drops", Name: "Drops"})
	}
	sku := "SKU-" + slug
	mustProduct(t, s, product("p-"+slug, cat.ID, variant(sku, 1000, 5)))
	in := drop.Drop{Slug: slug, Name: "Drop " + slug, StartsAt: time.Now().Add(time.Hour).UTC(),
		Items: []drop.Item{{SKU: sku, Allocated: 1}}}
	in.Defaults()
	d, err := s.CreateDrop(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// subscribe saves and confirms email on d, returning the subscription.
func subscribe(t *testing.T, s MailStore, d drop.Drop, email string, confirm bool) notify.Subscription {
	t.Helper()
	ctx := context.Background()
	tok := notify.NewToken()
	sub, err := s.SaveSubscription(ctx, d.ID, email, notify.HashToken(tok), notify.NewToken())
	if err != nil {
		t.Fatal(err)
	}
	if confirm {
		if sub, err = s.ConfirmSubscription(ctx, notify.HashToken(tok), time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	return sub
}

func testSubscriptions(t *testing.T, s MailStore, c *Clock) {
	ctx := context.Background()
	d := mailDrop(t, s, "notify")
	other := mailDrop(t, s, "other")

	first, second := notify.NewToken(), notify.NewToken()
	unsub := notify.NewToken()
	sub, err := s.SaveSubscription(ctx, d.ID, "ada@example.com", notify.HashToken(first), unsub)
	if err != nil {
		t.Fatal(err)
	}
	if sub.ID <= 0 || sub.State != notify.StatePending || sub.DropID != d.ID || sub.Email != "ada@example.com" ||
		sub.UnsubscribeToken != unsub || !sameInstant(sub.ConfirmSentAt, c.Now()) {
		t.Fatalf("SaveSubscription = %+v", sub)
	}
	c.Advance(time.Minute)
	// Asking again re-issues the link: the newest one works, the old
	// does not; still one subscription.
	again, err := s.SaveSubscription(ctx, d.ID, "ada@example.com", notify.HashToken(second), notify.NewToken())
	if err != nil || again.ID != sub.ID || again.State != notify.StatePending || again.UnsubscribeToken != unsub {
		t.Fatalf("SaveSubscription again = %+v, %v; want the same pending subscription", again, err)
	}
	_, err = s.ConfirmSubscription(ctx, notify.HashToken(first), time.Time{})
	wantErr(t, "confirm with the replaced link", err, notify.ErrNotFound)
	_, err = s.ConfirmSubscription(ctx, notify.HashToken(notify.NewToken()), time.Time{})
	wantErr(t, "confirm with an unknown link", err, notify.ErrNotFound)
	_, err = s.ConfirmSubscription(ctx, notify.HashToken(second), c.Now())
	wantErr(t, "confirm with an expired link", err, notify.ErrNotFound)

	// Unconfirmed subscribers are never recipients.
	q := notify.RecipientQuery{DropID: d.ID, FromID: 0, ToID: 1 << 62, ConfirmedBy: c.Now().Add(time.Hour)}
	if rs, err := s.Recipients(ctx, q); err != nil || len(rs) != 0 {
		t.Fatalf("Recipients before confirming = %v, %v; want none", rs, err)
	}
	conf, err := s.ConfirmSubscription(ctx, notify.HashToken(second), c.Now().Add(-time.Hour))
	if err != nil || conf.ID != sub.ID || conf.State != notify.StateConfirmed || !sameInstant(conf.ConfirmedAt, c.Now()) {
		t.Fatalf("ConfirmSubscription = %+v, %v", conf, err)
	}
	if twice, err := s.ConfirmSubscription(ctx, notify.HashToken(second), time.Time{}); err != nil || twice.State != notify.StateConfirmed {
		t.Fatalf("confirming twice = %+v, %v; want it confirmed", twice, err)
	}
	// Subscribing again once confirmed changes nothing.
	if same, err := s.SaveSubscription(ctx, d.ID, "ada@example.com", notify.HashToken(notify.NewToken()), notify.NewToken()); err != nil ||
		same.State != notify.StateConfirmed || same.ID != sub.ID {
		t.Fatalf("SaveSubscription when confirmed = %+v, %v", same, err)
	}
	rs, err := s.Recipients(ctx, q)
	if err != nil || len(rs) != 1 || rs[0] != (notify.Recipient{SubscriptionID: sub.ID, Email: "ada@example.com", UnsubscribeToken: unsub}) {
		t.Fatalf("Recipients = %+v, %v", rs, err)
	}
	// Confirmed after the cut-off, or outside the ID range: not listed.
	for _, q2 := range []notify.RecipientQuery{
		{DropID: d.ID, FromID: 0, ToID: 1 << 62, ConfirmedBy: c.Now().Add(-time.Second)},
		{DropID: d.ID, FromID: sub.ID + 1, ToID: 1 << 62, ConfirmedBy: c.Now()},
		{DropID: d.ID, FromID: 0, ToID: sub.ID, ConfirmedBy: c.Now()},
		{DropID: other.ID, FromID: 0, ToID: 1 << 62, ConfirmedBy: c.Now()},
	} {
		if rs, err := s.Recipients(ctx, q2); err != nil || len(rs) != 0 {
			t.Errorf("Recipients(%+v) = %v, %v; want none", q2, rs, err)
		}
	}

	// The same address on another drop is another subscription.
	if o := subscribe(t, s, other, "ada@example.com", false); o.ID == sub.ID {
		t.Errorf("the same email on another drop got the same subscription")
	}
	_, err = s.SaveSubscription(ctx, "drop_nosuch", "ada@example.com", notify.HashToken(first), notify.NewToken())
	wantErr(t, "subscribe to an unknown drop", err, drop.ErrNotFound)

	gone, err := s.Unsubscribe(ctx, unsub)
	if err != nil || gone.ID != sub.ID || gone.State != notify.StateUnsubscribed {
		t.Fatalf("Unsubscribe = %+v, %v", gone, err)
	}
	if _, err := s.Unsubscribe(ctx, unsub); err != nil {
		t.Errorf("unsubscribing twice: %v", err)
	}
	_, err = s.Unsubscribe(ctx, notify.NewToken())
	wantErr(t, "unsubscribe with an unknown token", err, notify.ErrNotFound)
	if rs, err := s.Recipients(ctx, q); err != nil || len(rs) != 0 {
		t.Fatalf("Recipients after unsubscribing = %v, %v; want none", rs, err)
	}
	_, err = s.ConfirmSubscription(ctx, notify.HashToken(second), time.Time{})
	wantErr(t, "the confirmation link after unsubscribing", err, notify.ErrNotFound)
	// Signing up again needs a new confirmation.
	third := notify.NewToken()
	back, err := s.SaveSubscription(ctx, d.ID, "ada@example.com", notify.HashToken(third), notify.NewToken())
	if err != nil || back.ID != sub.ID || back.State != notify.StatePending {
		t.Fatalf("SaveSubscription after unsubscribing = %+v, %v; want pending again", back, err)
	}
	if conf, err := s.ConfirmSubscription(ctx, notify.HashToken(third), time.Time{}); err != nil || conf.State != notify.StateConfirmed {
		t.Fatalf("confirm after resubscribing = %+v, %v", conf, err)
	}
}

func testSubscribeConcurrently(t *testing.T, s MailStore, _ *Clock) {
	d := mailDrop(t, s, "rush")
	var wg sync.WaitGroup
	ids := make([]int64, 20)
	errs := make([]error, 20)
	for i := range ids {
		wg.Go(func() {
			sub, err := s.SaveSubscription(context.Background(), d.ID, "same@example.com", notify.HashToken(notify.NewToken()), notify.NewToken())
			ids[i], errs[i] = sub.ID, err
		})
	}
	wg.Wait()
	for i := range ids {
		if errs[i] != nil {
			t.Fatalf("SaveSubscription %d: %v", i, errs[i])
		}
		if ids[i] != ids[0] {
			t.Fatalf("concurrent SaveSubscription made subscriptions %d and %d for one (email, drop)", ids[0], ids[i])
		}
	}
}

// jobFixture makes a drop with confirmed confirmed subscribers and a few
// pending and unsubscribed ones between them.
func jobFixture(t *testing.T, s MailStore, confirmed int) (drop.Drop, map[int64]bool) {
	t.Helper()
	d := mailDrop(t, s, "blast")
	want := map[int64]bool{}
	for i := range confirmed {
		sub := subscribe(t, s, d, fmt.Sprintf("r%d@example.com", i), true)
		want[sub.ID] = true
		if i%7 == 0 {
			subscribe(t, s, d, fmt.Sprintf("pending%d@example.com", i), false)
		}
		if i%11 == 0 {
			gone := subscribe(t, s, d, fmt.Sprintf("gone%d@example.com", i), true)
			if _, err := s.Unsubscribe(context.Background(), gone.UnsubscribeToken); err != nil {
				t.Fatal(err)
			}
		}
	}
	return d, want
}

func testJobLedger(t *testing.T, s MailStore, c *Clock) {
	ctx := context.Background()
	d, want := jobFixture(t, s, 25)
	runAt := c.Now().Add(time.Minute)
	j, err := s.EnsureJob(ctx, jobs.KindReminder, d.ID, runAt)
	if err != nil || j.ID <= 0 || j.State != jobs.StateScheduled || !sameInstant(j.RunAt, runAt) || j.DropID != d.ID || j.Kind != jobs.KindReminder {
		t.Fatalf("EnsureJob = %+v, %v", j, err)
	}
	if again, err := s.EnsureJob(ctx, jobs.KindReminder, d.ID, runAt.Add(time.Hour)); err != nil || again.ID != j.ID || !sameInstant(again.RunAt, runAt) {
		t.Fatalf("EnsureJob again = %+v, %v; want the first", again, err)
	}
	if _, err := s.EnsureJob(ctx, jobs.KindReminder, "drop_nosuch", runAt); !errors.Is(err, drop.ErrNotFound) {
		t.Errorf("EnsureJob for an unknown drop: %v", err)
	}
	if due, err := s.DueJobs(ctx, c.Now()); err != nil || len(due) != 0 {
		t.Fatalf("DueJobs before run_at = %v, %v", due, err)
	}
	c.Advance(time.Minute)
	if due, err := s.DueJobs(ctx, c.Now()); err != nil || len(due) != 1 || due[0].ID != j.ID {
		t.Fatalf("DueJobs at run_at = %v, %v", due, err)
	}
	if _, err := s.ClaimBatch(ctx, j.ID, "w1", 10, time.Minute); !errors.Is(err, jobs.ErrNoBatch) {
		t.Errorf("ClaimBatch before StartJob: %v; want ErrNoBatch", err)
	}
	j, err = s.StartJob(ctx, j.ID)
	if err != nil || j.StartedAt == nil || j.Recipients != 25 || j.State != jobs.StateRunning {
		t.Fatalf("StartJob = %+v, %v; want 25 recipients", j, err)
	}
	// A subscriber confirmed after the start is not one of this job's.
	c.Advance(time.Second)
	late := subscribe(t, s, d, "late@example.com", true)

	if _, err := s.SetJobPaused(ctx, j.ID, true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ClaimBatch(ctx, j.ID, "w1", 10, time.Minute); !errors.Is(err, jobs.ErrPaused) {
		t.Errorf("ClaimBatch of a paused job: %v", err)
	}
	if due, _ := s.DueJobs(ctx, c.Now()); len(due) != 0 {
		t.Errorf("a paused job is due: %v", due)
	}
	if j, err := s.SetJobPaused(ctx, j.ID, false); err != nil || j.State != jobs.StateRunning {
		t.Fatalf("resume = %+v, %v", j, err)
	}

	got := map[int64]bool{}
	batches := 0
	for {
		b, err := s.ClaimBatch(ctx, j.ID, "w1", 10, time.Minute)
		if errors.Is(err, jobs.ErrFinished) {
			break
		}
		if err != nil {
			t.Fatalf("ClaimBatch: %v", err)
		}
		batches++
		rs, err := s.Recipients(ctx, notify.RecipientQuery{DropID: d.ID, FromID: b.FromID, ToID: b.ToID, ConfirmedBy: *j.StartedAt, ReadPosition: j.ReadPosition})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if got[r.SubscriptionID] {
				t.Fatalf("subscription %d in two batches", r.SubscriptionID)
			}
			got[r.SubscriptionID] = true
			if err := s.RecordDelivery(ctx, j.ID, r.SubscriptionID, jobs.Sent); err != nil {
				t.Fatal(err)
			}
			// Recording twice (a resumed worker) counts once.
			if err := s.RecordDelivery(ctx, j.ID, r.SubscriptionID, jobs.Failed); err != nil {
				t.Fatal(err)
			}
		}
		done, err := s.Delivered(ctx, b)
		if err != nil || len(done) != len(rs) {
			t.Fatalf("Delivered = %v, %v; want the %d recorded", done, err, len(rs))
		}
		if _, err := s.RenewBatch(ctx, b, time.Minute); err != nil {
			t.Fatalf("RenewBatch: %v", err)
		}
		if err := s.FinishBatch(ctx, b); err != nil {
			t.Fatal(err)
		}
		if batches > 20 {
			t.Fatal("ClaimBatch never finishes")
		}
	}
	if got[late.ID] || len(got) != len(want) {
		t.Errorf("the job's batches held %d recipients (late one: %v); want the %d confirmed at the start", len(got), got[late.ID], len(want))
	}
	for id := range want {
		if !got[id] {
			t.Errorf("subscription %d never in a batch", id)
		}
	}
	j, err = s.JobByID(ctx, j.ID)
	if err != nil || j.State != jobs.StateDone || j.Sent != 25 || j.Failed != 0 || j.Remaining() != 0 {
		t.Fatalf("finished job = %+v, %v", j, err)
	}
	if _, err := s.ClaimBatch(ctx, j.ID, "w2", 10, time.Minute); !errors.Is(err, jobs.ErrFinished) {
		t.Errorf("ClaimBatch after the end: %v", err)
	}
	if list, err := s.Jobs(ctx); err != nil || len(list) != 1 || list[0].ID != j.ID || list[0].Sent != 25 {
		t.Errorf("Jobs = %+v, %v", list, err)
	}
	if _, err := s.JobByID(ctx, j.ID+100); !errors.Is(err, jobs.ErrNotFound) {
		t.Errorf("JobByID(unknown): %v", err)
	}
	// A job for a drop with nobody subscribed finishes at once.
	empty := mailDrop(t, s, "empty")
	ej, _ := s.EnsureJob(ctx, jobs.KindSoldOut, empty.ID, c.Now())
	if _, err := s.StartJob(ctx, ej.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ClaimBatch(ctx, ej.ID, "w1", 10, time.Minute); !errors.Is(err, jobs.ErrFinished) {
		t.Errorf("ClaimBatch of a job without recipients: %v", err)
	}
	// FinishJob ends a job that never ran.
	fj, _ := s.EnsureJob(ctx, jobs.KindReminder, empty.ID, c.Now())
	if err := s.FinishJob(ctx, fj.ID); err != nil {
		t.Fatal(err)
	}
	if fj, _ := s.JobByID(ctx, fj.ID); fj.State != jobs.StateDone {
		t.Errorf("after FinishJob: %+v", fj)
	}
}

// A worker that stops renewing loses its batch to the next one, and can
// neither renew nor finish it afterwards.
func testJobLeaseTakeover(t *testing.T, s MailStore, c *Clock) {
	ctx := context.Background()
	d, _ := jobFixture(t, s, 12)
	j, _ := s.EnsureJob(ctx, jobs.KindReminder, d.ID, c.Now())
	if _, err := s.StartJob(ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	b1, err := s.ClaimBatch(ctx, j.ID, "w1", 100, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ClaimBatch(ctx, j.ID, "w2", 100, 30*time.Second); !errors.Is(err, jobs.ErrNoBatch) {
		t.Fatalf("second worker while the only batch is leased: %v; want ErrNoBatch", err)
	}
	if err := s.ReleaseBatch(ctx, jobs.Batch{JobID: j.ID, FromID: b1.FromID, Owner: "w2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ClaimBatch(ctx, j.ID, "w2", 100, 30*time.Second); !errors.Is(err, jobs.ErrNoBatch) {
		t.Fatalf("another worker's release freed w1's batch: %v", err)
	}
	c.Advance(31 * time.Second)
	b2, err := s.ClaimBatch(ctx, j.ID, "w2", 100, 30*time.Second)
	if err != nil || b2.FromID != b1.FromID || b2.ToID != b1.ToID || b2.Owner != "w2" {
		t.Fatalf("takeover = %+v, %v; want w1's batch %+v", b2, err, b1)
	}
	if _, err := s.RenewBatch(ctx, b1, time.Minute); !errors.Is(err, jobs.ErrLeaseLost) {
		t.Errorf("old owner renews: %v; want ErrLeaseLost", err)
	}
	if err := s.FinishBatch(ctx, b1); !errors.Is(err, jobs.ErrLeaseLost) {
		t.Errorf("old owner finishes: %v; want ErrLeaseLost", err)
	}
	// A lease that ran out cannot be renewed even before anyone takes it.
	c.Advance(31 * time.Second)
	if _, err := s.RenewBatch(ctx, b2, time.Minute); !errors.Is(err, jobs.ErrLeaseLost) {
		t.Errorf("renewing an expired lease: %v; want ErrLeaseLost", err)
	}
	b3, err := s.ClaimBatch(ctx, j.ID, "w3", 100, 30*time.Second)
	if err != nil || b3.FromID != b1.FromID {
		t.Fatalf("claim after expiry = %+v, %v", b3, err)
	}
	if _, err := s.SetJobPaused(ctx, j.ID, true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RenewBatch(ctx, b3, time.Minute); !errors.Is(err, jobs.ErrPaused) {
		t.Errorf("renewing in a paused job: %v; want ErrPaused", err)
	}
	if err := s.ReleaseBatch(ctx, b3); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetJobPaused(ctx, j.ID, false); err != nil {
		t.Fatal(err)
	}
	// Released: free at once.
	if b4, err := s.ClaimBatch(ctx, j.ID, "w4", 100, 30*time.Second); err != nil || b4.FromID != b1.FromID {
		t.Fatalf("claim after release = %+v, %v", b4, err)
	}
}

// Workers claiming at once get disjoint batches that cover every
// recipient once.
func testJobSharedByWorkers(t *testing.T, s MailStore, c *Clock) {
	ctx := context.Background()
	d, want := jobFixture(t, s, 60)
	j, _ := s.EnsureJob(ctx, jobs.KindSoldOut, d.ID, c.Now())
	j, err := s.StartJob(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[int64]int{}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := range 4 {
		wg.Go(func() {
			owner := fmt.Sprintf("w%d", w)
			for {
				b, err := s.ClaimBatch(ctx, j.ID, owner, 7, time.Minute)
				if errors.Is(err, jobs.ErrFinished) {
					return
				}
				if errors.Is(err, jobs.ErrNoBatch) {
					// Others hold the last batches; wait for them to end.
					continue
				}
				if err != nil {
					errs <- err
					return
				}
				rs, err := s.Recipients(ctx, notify.RecipientQuery{DropID: d.ID, FromID: b.FromID, ToID: b.ToID, ConfirmedBy: *j.StartedAt})
				if err != nil {
					errs <- err
					return
				}
				for _, r := range rs {
					mu.Lock()
					seen[r.SubscriptionID]++
					mu.Unlock()
					if err := s.RecordDelivery(ctx, j.ID, r.SubscriptionID, jobs.Sent); err != nil {
						errs <- err
						return
					}
				}
				if err := s.FinishBatch(ctx, b); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for id := range want {
		if seen[id] != 1 {
			t.Errorf("subscription %d handed out %d times; want once", id, seen[id])
		}
	}
	if len(seen) != len(want) {
		t.Errorf("%d recipients handed out; want %d", len(seen), len(want))
	}
	if j, _ := s.JobByID(ctx, j.ID); j.Sent != int64(len(want)) || j.State != jobs.StateDone {
		t.Errorf("job after the workers = %+v", j)
	}
}

// A confirmation stamped by a clock ahead of the one starting the job (an
// API replica's against a worker's) is still one of the job's recipients,
// counted and listed.
func testJobStartsAfterEveryConfirmation(t *testing.T, s MailStore, c *Clock) {
	ctx := context.Background()
	d := mailDrop(t, s, "skew")
	subscribe(t, s, d, "early@example.com", true)
	c.Advance(10 * time.Second)
	ahead := subscribe(t, s, d, "ahead@example.com", true)
	c.Advance(-20 * time.Second)
	j, err := s.EnsureJob(ctx, jobs.KindReminder, d.ID, c.Now())
	if err != nil {
		t.Fatal(err)
	}
	if j, err = s.StartJob(ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	if j.Recipients != 2 || j.StartedAt.Before(ahead.ConfirmedAt) {
		t.Fatalf("started job %+v; want 2 recipients and a cut-off at or after %v", j, ahead.ConfirmedAt)
	}
	rs, err := s.Recipients(ctx, notify.RecipientQuery{DropID: d.ID, ToID: 1 << 62, ConfirmedBy: *j.StartedAt, ReadPosition: j.ReadPosition})
	if err != nil || len(rs) != 2 {
		t.Fatalf("Recipients = %v, %v; want both", rs, err)
	}
}

// An import adds confirmed subscribers, in the list's order, and leaves
// every address already on the list as it was: an unsubscribed one stays
// unsubscribed.
func testImportSubscribers(t *testing.T, s MailStore, c *Clock) {
	ctx := context.Background()
	d := mailDrop(t, s, "import")
	pending := subscribe(t, s, d, "pending@example.com", false)
	confirmed := subscribe(t, s, d, "confirmed@example.com", true)
	gone := subscribe(t, s, d, "gone@example.com", true)
	if _, err := s.Unsubscribe(ctx, gone.UnsubscribeToken); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Second)
	var subs []notify.Import
	for i := range 300 {
		subs = append(subs, notify.Import{Email: fmt.Sprintf("fan%03d@example.com", i), UnsubscribeToken: notify.NewToken()})
	}
	subs = append(subs, notify.Import{Email: "pending@example.com", UnsubscribeToken: notify.NewToken()},
		notify.Import{Email: "confirmed@example.com", UnsubscribeToken: notify.NewToken()},
		notify.Import{Email: "gone@example.com", UnsubscribeToken: notify.NewToken()})
	n, err := s.ImportSubscribers(ctx, d.ID, subs)
	if err != nil || n != 300 {
		t.Fatalf("ImportSubscribers = %d, %v; want 300 added", n, err)
	}
	// Again: nothing new.
	if n, err := s.ImportSubscribers(ctx, d.ID, subs[:10]); err != nil || n != 0 {
		t.Fatalf("ImportSubscribers again = %d, %v; want 0 added", n, err)
	}
	_, err = s.ImportSubscribers(ctx, "drop_nosuch", subs[:1])
	wantErr(t, "import to an unknown drop", err, drop.ErrNotFound)

	rs, err := s.Recipients(ctx, notify.RecipientQuery{DropID: d.ID, ToID: 1 << 62, ConfirmedBy: c.Now()})
	if err != nil || len(rs) != 301 {
		t.Fatalf("Recipients = %d, %v; want the 300 imported and the one confirmed before", len(rs), err)
	}
	if rs[0].SubscriptionID != confirmed.ID || rs[1].Email != "fan000@example.com" || rs[300].Email != "fan299@example.com" ||
		rs[1].UnsubscribeToken != subs[0].UnsubscribeToken {
		t.Errorf("Recipients %+v ... %+v: want the confirmed one, then the import in its order with its tokens", rs[:2], rs[300])
	}
	for _, r := range rs {
		if r.SubscriptionID == pending.ID || r.SubscriptionID == gone.ID {
			t.Errorf("%s became a recipient by import", r.Email)
		}
	}
	// The imported confirm now: a job started now mails them.
	j, err := s.EnsureJob(ctx, jobs.KindReminder, d.ID, c.Now())
	if err != nil {
		t.Fatal(err)
	}
	if j, err = s.StartJob(ctx, j.ID); err != nil || j.Recipients != 301 {
		t.Fatalf("StartJob = %+v, %v; want 301 recipients", j, err)
	}
}

// ScheduleJob creates a job due at a moment, or moves one not yet
// started; a started job stays where it is.
func testScheduleJob(t *testing.T, s MailStore, c *Clock) {
	ctx := context.Background()
	d, _ := jobFixture(t, s, 3)
	later := c.Now().Add(time.Hour)
	j, err := s.EnsureJob(ctx, jobs.KindReminder, d.ID, later)
	if err != nil {
		t.Fatal(err)
	}
	moved, err := s.ScheduleJob(ctx, jobs.KindReminder, d.ID, c.Now())
	if err != nil || moved.ID != j.ID || !sameInstant(moved.RunAt, c.Now()) || moved.State != jobs.StateScheduled {
		t.Fatalf("ScheduleJob = %+v, %v; want job %d due now", moved, err, j.ID)
	}
	if due, err := s.DueJobs(ctx, c.Now()); err != nil || len(due) != 1 || due[0].ID != j.ID {
		t.Fatalf("DueJobs after ScheduleJob = %v, %v", due, err)
	}
	// A kind with no job yet is created.
	sold, err := s.ScheduleJob(ctx, jobs.KindSoldOut, d.ID, later)
	if err != nil || sold.ID == j.ID || sold.Kind != jobs.KindSoldOut || !sameInstant(sold.RunAt, later) {
		t.Fatalf("ScheduleJob of a new kind = %+v, %v", sold, err)
	}
	if _, err := s.StartJob(ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	got, err := s.ScheduleJob(ctx, jobs.KindReminder, d.ID, later)
	wantErr(t, "move a started job", err, jobs.ErrStarted)
	if got.ID != j.ID || !sameInstant(got.RunAt, c.Now()) {
		t.Errorf("a started job moved: %+v", got)
	}
	_, err = s.ScheduleJob(ctx, jobs.KindReminder, "drop_nosuch", later)
	wantErr(t, "schedule for an unknown drop", err, drop.ErrNotFound)
}
