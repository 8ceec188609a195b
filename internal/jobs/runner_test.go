package jobs_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/surge-commerce/surge/internal/catalog"
	"github.com/surge-commerce/surge/internal/drop"
	"github.com/surge-commerce/surge/internal/jobs"
	"github.com/surge-commerce/surge/internal/mail"
	"github.com/surge-commerce/surge/internal/money"
	"github.com/surge-commerce/surge/internal/notify"
	"github.com/surge-commerce/surge/internal/smtpsink"
	"github.com/surge-commerce/surge/internal/sqlitestore"
)

type fixture struct {
	st    *sqlitestore.Store
	drop  drop.Drop
	sink  *smtpsink.Sink
	smtp  *mail.SMTPSender
	subs  []notify.Subscription // confirmed
	other []string              // pending and unsubscribed addresses
}

// newFixture makes a store with a drop starting in 30 minutes that n
// confirmed subscribers (and some pending and unsubscribed ones) wait
// for, and an SMTP sink.
func newFixture(t *testing.T, n int, o smtpsink.Options) *fixture {
	t.Helper()
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, t.TempDir()+"/surge.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	cat, err := st.CreateCategory(ctx, catalog.Category{Slug: "drops", Name: "Drops"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateProduct(ctx, catalog.Product{Slug: "hot", Name: "Hot", Status: catalog.StatusActive, CategoryID: cat.ID,
		Variants: []catalog.Variant{{SKU: "HOT", Price: money.Money{Amount: 100, Currency: "USD"}, OnHand: 10}}}); err != nil {
		t.Fatal(err)
	}
	in := drop.Drop{Slug: "friday", Name: "Friday drop", StartsAt: time.Now().Add(30 * time.Minute).UTC(),
		Items: []drop.Item{{SKU: "HOT", Allocated: 10}}}
	in.Defaults()
	d, err := st.CreateDrop(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{st: st, drop: d}
	f.subs = make([]notify.Subscription, n)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				tok := notify.NewToken()
				if _, err := st.SaveSubscription(ctx, d.ID, fmt.Sprintf("r%d@example.com", i), notify.HashToken(tok), notify.NewToken()); err != nil {
					errs <- err
					return
				}
				sub, err := st.ConfirmSubscription(ctx, notify.HashToken(tok), time.Time{})
				if err != nil {
					errs <- err
					return
				}
				f.subs[i] = sub
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i := range n / 10 {
		pending := fmt.Sprintf("pending%d@example.com", i)
		if _, err := st.SaveSubscription(ctx, d.ID, pending, notify.HashToken(notify.NewToken()), notify.NewToken()); err != nil {
			t.Fatal(err)
		}
		f.other = append(f.other, pending)
	}
	gone := f.subs[0]
	if _, err := st.Unsubscribe(ctx, gone.UnsubscribeToken); err != nil {
		t.Fatal(err)
	}
	f.subs = f.subs[1:]
	f.other = append(f.other, gone.Email)

	f.sink, err = smtpsink.Start("", o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.sink.Close() })
	f.smtp, err = mail.NewSMTPSender(mail.SMTPConfig{Addr: f.sink.Addr(), From: "Shop <shop@shop.example>"})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) config(owner string) jobs.Config {
	return jobs.Config{MailsPerSecond: 1e6, Senders: 2, BatchSize: 50, Lease: 10 * time.Second, Poll: 20 * time.Millisecond,
		ReminderBefore: time.Hour, BackoffBase: time.Millisecond, BackoffMax: 5 * time.Millisecond,
		ShopName: "Shop", PublicURL: "https://shop.example", MessageDomain: "shop.example", Owner: owner}
}

// start runs a runner until the test ends or stop is called.
func start(t *testing.T, r *jobs.Runner) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = r.Run(ctx)
	}()
	stop = func() {
		cancel()
		<-done
	}
	t.Cleanup(stop)
	return stop
}

// waitFor checks cond every few milliseconds until it holds or 30s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

func (f *fixture) waitDelivered(t *testing.T, n int) smtpsink.Stats {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := f.sink.Wait(ctx, func(st smtpsink.Stats) bool { return st.Distinct >= n })
	if err != nil {
		t.Fatalf("sink has %+v; want %d distinct: %v", st, n, err)
	}
	return st
}

func (f *fixture) job(t *testing.T, kind jobs.Kind) jobs.Job {
	t.Helper()
	list, err := f.st.Jobs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range list {
		if j.Kind == kind && j.DropID == f.drop.ID {
			return j
		}
	}
	return jobs.Job{}
}

func (f *fixture) waitJobDone(t *testing.T, kind jobs.Kind) jobs.Job {
	t.Helper()
	var j jobs.Job
	waitFor(t, string(kind)+" job done", func() bool {
		j = f.job(t, kind)
		return j.State == jobs.StateDone
	})
	return j
}

// The reminder reaches every confirmed subscriber once, and nobody else,
// over reused connections, each message with its unsubscribe link.
func TestReminderReachesConfirmedSubscribersOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 150, smtpsink.Options{Keep: 1000})
	r := jobs.NewRunner(f.st, jobs.SMTPDialer{Sender: f.smtp}, f.config("w1"))
	reg := prometheus.NewRegistry()
	if err := r.Metrics().Register(reg); err != nil {
		t.Fatal(err)
	}
	start(t, r)
	st := f.waitDelivered(t, len(f.subs))
	j := f.waitJobDone(t, jobs.KindReminder)
	st = f.sink.Stats()
	if st.Distinct != len(f.subs) || st.Messages != len(f.subs) || st.Recipients != len(f.subs) {
		t.Errorf("sink %+v; want %d messages to %d people, no repeats", st, len(f.subs), len(f.subs))
	}
	if j.Sent != int64(len(f.subs)) || j.Recipients != int64(len(f.subs)) || j.Failed != 0 {
		t.Errorf("job %+v; want %d sent", j, len(f.subs))
	}
	// A handful of connections for 150 messages, not one each.
	if st.Connections > 10 {
		t.Errorf("%d SMTP connections for %d messages; want them reused", st.Connections, st.Messages)
	}
	kept := f.sink.Kept()
	to := map[string]bool{}
	for _, m := range kept {
		to[strings.Trim(m.To[0], "<>")] = true
		if !strings.HasPrefix(m.Header.Get("List-Unsubscribe"), "<https://shop.example/notify/unsubscribe?token=") ||
			m.Header.Get("List-Unsubscribe-Post") != "List-Unsubscribe=One-Click" || !strings.Contains(m.Body, "/notify/unsubscribe?token=") {
			t.Fatalf("message without one-click unsubscribe: %v", m.Header)
		}
		if !strings.HasPrefix(m.Header.Get("Message-Id"), fmt.Sprintf("<job-%d.sub-", j.ID)) {
			t.Fatalf("Message-Id %q", m.Header.Get("Message-Id"))
		}
	}
	for _, o := range f.other {
		if to[o] {
			t.Errorf("%s (pending or unsubscribed) was mailed", o)
		}
	}
	if got := testutil.ToFloat64(r.Metrics().MailsCounter("drop-reminder", "sent")); got != float64(len(f.subs)) {
		t.Errorf("surge_jobs_mails_total{sent} = %v", got)
	}
}

// Three workers share one job through batch leases: everyone once.
func TestWorkersShareAJob(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 240, smtpsink.Options{})
	var sent [3]*jobs.Runner
	for i := range sent {
		cfg := f.config(fmt.Sprintf("w%d", i))
		cfg.BatchSize = 20
		cfg.MailsPerSecond = 1000 // slow enough that every worker gets batches
		sent[i] = jobs.NewRunner(f.st, jobs.SMTPDialer{Sender: f.smtp}, cfg)
		start(t, sent[i])
	}
	f.waitDelivered(t, len(f.subs))
	f.waitJobDone(t, jobs.KindReminder)
	st := f.sink.Stats()
	if st.Messages != len(f.subs) || st.Repeats != 0 {
		t.Errorf("sink %+v; want exactly %d messages", st, len(f.subs))
	}
	busy := 0
	for _, r := range sent {
		if testutil.ToFloat64(r.Metrics().MailsCounter("drop-reminder", "sent")) > 0 {
			busy++
		}
	}
	if busy < 2 {
		t.Errorf("only %d of 3 workers sent anything; want the job shared", busy)
	}
}

// A worker that died mid-batch (its lease left to run out, half its
// recipients recorded) is followed by one that sends only the rest.
func TestResumeAfterDeadWorker(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 120, smtpsink.Options{})
	ctx := context.Background()
	j, err := f.st.EnsureJob(ctx, jobs.KindReminder, f.drop.ID, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if j, err = f.st.StartJob(ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	b, err := f.st.ClaimBatch(ctx, j.ID, "dead", 1000, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := f.st.Recipients(ctx, notify.RecipientQuery{DropID: f.drop.ID, FromID: b.FromID, ToID: b.ToID, ConfirmedBy: *j.StartedAt})
	if err != nil {
		t.Fatal(err)
	}
	half := len(rs) / 2
	for _, rc := range rs[:half] {
		if err := f.st.RecordDelivery(ctx, j.ID, rc.SubscriptionID, jobs.Sent); err != nil {
			t.Fatal(err)
		}
	}
	r := jobs.NewRunner(f.st, jobs.SMTPDialer{Sender: f.smtp}, f.config("next"))
	start(t, r)
	f.waitDelivered(t, len(rs)-half)
	j = f.waitJobDone(t, jobs.KindReminder)
	if st := f.sink.Stats(); st.Messages != len(rs)-half || st.Repeats != 0 {
		t.Errorf("sink %+v; want the %d not recorded, once each", st, len(rs)-half)
	}
	if j.Sent != int64(len(rs)) {
		t.Errorf("job sent %d; want %d", j.Sent, len(rs))
	}
}

// A paused job sends nothing until resumed.
func TestPausedJobWaits(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 50, smtpsink.Options{})
	ctx := context.Background()
	j, err := f.st.EnsureJob(ctx, jobs.KindReminder, f.drop.ID, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.SetJobPaused(ctx, j.ID, true); err != nil {
		t.Fatal(err)
	}
	r := jobs.NewRunner(f.st, jobs.SMTPDialer{Sender: f.smtp}, f.config("w"))
	start(t, r)
	// Wait for a scheduling pass that saw the job: the sold-out job does
	// not exist yet, so the reminder is the only one, and its remaining
	// count is published when a pass ends. Paused, it is not due.
	for range 5 {
		if err := r.Schedule(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if st := f.sink.Stats(); st.Messages != 0 {
		t.Fatalf("paused job sent %d", st.Messages)
	}
	if _, err := f.st.SetJobPaused(ctx, j.ID, false); err != nil {
		t.Fatal(err)
	}
	f.waitDelivered(t, len(f.subs))
	f.waitJobDone(t, jobs.KindReminder)
}

// Refused recipients are recorded failed and not retried.
func TestRefusedRecipientsFail(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 30, smtpsink.Options{Reject: []string{"r5@example.com", "r6@example.com"}})
	r := jobs.NewRunner(f.st, jobs.SMTPDialer{Sender: f.smtp}, f.config("w"))
	start(t, r)
	j := f.waitJobDone(t, jobs.KindReminder)
	if j.Failed != 2 || j.Sent != int64(len(f.subs)-2) {
		t.Errorf("job %+v; want 2 failed", j)
	}
	if st := f.sink.Stats(); st.Messages != len(f.subs)-2 {
		t.Errorf("sink %+v", st)
	}
}

type pressure struct{ left atomic.Int32 }

func (p *pressure) Pressured(context.Context) bool { return p.left.Add(-1) >= 0 }

// While the shop reports pressure the runner holds off.
func TestPressureHoldsOff(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 20, smtpsink.Options{})
	p := &pressure{}
	p.left.Store(4)
	cfg := f.config("w")
	cfg.Senders = 1
	cfg.Pressure = p
	r := jobs.NewRunner(f.st, jobs.SMTPDialer{Sender: f.smtp}, cfg)
	start(t, r)
	f.waitDelivered(t, len(f.subs))
	if got := testutil.ToFloat64(r.Metrics().BackoffsCounter()); got != 4 {
		t.Errorf("surge_jobs_backoffs_total = %v; want 4", got)
	}
}

// The sold-out mail goes out once the drop closes, naming the next drop;
// a reminder not yet sent for a drop that is over is dropped.
func TestSoldOutMailAfterClose(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 10, smtpsink.Options{Keep: 100})
	ctx := context.Background()
	// The next drop, a week on.
	if _, err := f.st.CreateProduct(ctx, catalog.Product{Slug: "next", Name: "Next", Status: catalog.StatusActive, CategoryID: 1,
		Variants: []catalog.Variant{{SKU: "NEXT", Price: money.Money{Amount: 100, Currency: "USD"}, OnHand: 10}}}); err != nil {
		t.Fatal(err)
	}
	next := drop.Drop{Slug: "next-week", Name: "Next week", StartsAt: time.Now().Add(7 * 24 * time.Hour).UTC(), Items: []drop.Item{{SKU: "NEXT", Allocated: 1}}}
	next.Defaults()
	if _, err := f.st.CreateDrop(ctx, next); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.CloseDrop(ctx, f.drop.ID); err != nil {
		t.Fatal(err)
	}
	r := jobs.NewRunner(f.st, jobs.SMTPDialer{Sender: f.smtp}, f.config("w"))
	start(t, r)
	f.waitDelivered(t, len(f.subs))
	f.waitJobDone(t, jobs.KindSoldOut)
	for _, m := range f.sink.Kept() {
		if !strings.Contains(m.Header.Get("Subject"), "sold out") || !strings.Contains(m.Body, "/drops/next-week") {
			t.Fatalf("sold-out mail: %v\n%s", m.Header, m.Body)
		}
	}
	if j := f.job(t, jobs.KindReminder); j.ID != 0 {
		t.Errorf("a reminder job for a closed drop: %+v", j)
	}
}

// A mail server answering "try again later" delays the batch, which is
// handed back and sent again: everyone gets the mail once, and the
// retries are counted.
func TestTemporaryRefusalsRetried(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 40, smtpsink.Options{Defer: 5})
	cfg := f.config("w")
	cfg.Senders = 1
	r := jobs.NewRunner(f.st, jobs.SMTPDialer{Sender: f.smtp}, cfg)
	start(t, r)
	f.waitDelivered(t, len(f.subs))
	j := f.waitJobDone(t, jobs.KindReminder)
	st := f.sink.Stats()
	if st.Messages != len(f.subs) || st.Repeats != 0 || st.Deferred != 5 || j.Sent != int64(len(f.subs)) || j.Failed != 0 {
		t.Errorf("sink %+v, job %+v; want %d sent once after 5 deferrals", st, j, len(f.subs))
	}
	if got := testutil.ToFloat64(r.Metrics().MailsCounter("drop-reminder", "retry")); got < 1 {
		t.Errorf("surge_jobs_mails_total{retry} = %v; want the deferrals counted", got)
	}
}

// The mail counter exports every kind and outcome before any mail, so a
// threshold such as delta(surge_jobs_mails_total{outcome="failed"})<1
// reads 0 on a quiet worker instead of finding no series.
func TestMetricsExportEveryOutcomeFromTheStart(t *testing.T) {
	reg := prometheus.NewRegistry()
	if err := jobs.NewMetrics().Register(reg); err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	want.WriteString("# HELP surge_jobs_mails_total Mail job messages by kind and outcome: sent (the server took it), failed (refused for good), retry (not delivered now; the batch is tried again).\n# TYPE surge_jobs_mails_total counter\n")
	for _, k := range []string{"drop-reminder", "drop-sold-out"} {
		for _, o := range []string{"failed", "retry", "sent"} {
			fmt.Fprintf(&want, "surge_jobs_mails_total{kind=%q,outcome=%q} 0\n", k, o)
		}
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want.String()), "surge_jobs_mails_total"); err != nil {
		t.Error(err)
	}
}
