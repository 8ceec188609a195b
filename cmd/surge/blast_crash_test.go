package main

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/surge-commerce/surge/internal/catalog"
	"github.com/surge-commerce/surge/internal/drop"
	"github.com/surge-commerce/surge/internal/money"
	"github.com/surge-commerce/surge/internal/notify"
	"github.com/surge-commerce/surge/internal/smtpsink"
	"github.com/surge-commerce/surge/internal/sqlitestore"
)

// seedBlast makes the shop in dataDir: a drop starting in 30 minutes with
// n confirmed "notify me" subscribers, so its reminder (an hour before
// the start) is due at once.
func seedBlast(t testing.TB, dataDir string, n int) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(dataDir, "surge.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	cat, err := st.CreateCategory(ctx, catalog.Category{Slug: "drops", Name: "Drops"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateProduct(ctx, catalog.Product{Slug: "blast", Name: "Blast", Status: catalog.StatusActive, CategoryID: cat.ID,
		Variants: []catalog.Variant{{SKU: "BLAST", Price: money.Money{Amount: 100, Currency: "USD"}, OnHand: 100}}}); err != nil {
		t.Fatal(err)
	}
	in := drop.Drop{Slug: "blast", Name: "Blast drop", StartsAt: time.Now().Add(30 * time.Minute).UTC(), Items: []drop.Item{{SKU: "BLAST", Allocated: 100}}}
	in.Defaults()
	d, err := st.CreateDrop(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	// Subscribers who confirmed, written in one transaction: the double
	// opt-in itself is the storefront tests' business.
	tx, err := st.Writer().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	ins, err := tx.Prepare(`INSERT INTO notify_subscriptions (drop_id, email, state, confirm_sent_at, unsubscribe_token, created_at, confirmed_at)
		VALUES (?, ?, 'confirmed', ?, ?, ?, ?)`)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(-time.Minute).UnixNano()
	for i := range n {
		if _, err := ins.Exec(d.ID, fmt.Sprintf("fan%d@example.com", i), at, notify.NewToken(), at, at); err != nil {
			t.Fatal(err)
		}
	}
	ins.Close()
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// TestBlastSurvivesKill9: a 30,000-recipient reminder with the worker
// killed (SIGKILL) a third of the way through. The restarted worker
// resumes from the ledger: every subscriber gets the reminder, under one
// Message-ID each. The only repeats allowed are the messages in flight at
// the kill, at most one per SMTP connection (the server's 250 came, the
// ledger record did not), sent again with the same Message-ID.
//
// The lease is short so the restarted worker takes the dead one's batches
// soon, but not so short that a busy machine's second-long stall makes a
// live worker lose its batch (renewed at half the lease): that is the
// stalled-worker case docs/operations.md describes, not a kill.
func TestBlastSurvivesKill9(t *testing.T) {
	const n, senders = 30_000, 4
	dataDir := t.TempDir()
	surgeBinary(t) // built before the clock starts
	began := time.Now()
	seedBlast(t, dataDir, n)
	t.Logf("seeded %d subscribers in %s", n, time.Since(began).Round(time.Millisecond))
	sink, err := smtpsink.Start("", smtpsink.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	args := []string{"worker", "--data-dir", dataDir, "--admin-addr", "127.0.0.1:0", "--log-level", "warn",
		"--smtp-addr", sink.Addr(), "--smtp-from", "shop@shop.example", "--public-url", "https://shop.example",
		"--jobs-mail-rate", "1000000", "--jobs-senders", fmt.Sprint(senders), "--jobs-batch", "500",
		"--jobs-lease", "6s", "--jobs-poll", "100ms"}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	w := startProc(t, args...)
	if _, err := sink.Wait(ctx, func(s smtpsink.Stats) bool { return s.Distinct >= n/3 }); err != nil {
		t.Fatalf("first worker: %+v: %v", sink.Stats(), err)
	}
	w.kill()
	atKill := sink.Stats()
	t.Logf("killed the worker at %s: %+v", time.Since(began).Round(time.Millisecond), atKill)
	if atKill.Distinct >= n {
		t.Fatalf("the blast finished before the kill (%+v); the test proves nothing", atKill)
	}

	startProc(t, args...)
	st, err := sink.Wait(ctx, func(s smtpsink.Stats) bool { return s.Distinct >= n })
	if err != nil {
		t.Fatalf("after the restart: %+v: %v", st, err)
	}
	// The job ends in the ledger with every recipient recorded once.
	db := openDB(t, dataDir)
	var sent, finished int
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for finished == 0 {
		_ = db.QueryRow(`SELECT (SELECT count(*) FROM mail_job_deliveries WHERE outcome = 'sent'),
			(SELECT count(*) FROM mail_jobs WHERE finished_at IS NOT NULL)`).Scan(&sent, &finished)
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("the job never finished: %d recorded sent", sent)
		}
	}
	st = sink.Stats()
	t.Logf("done at %s: %+v", time.Since(began).Round(time.Millisecond), st)
	if st.Distinct != n || st.Recipients != n || sent != n {
		t.Fatalf("%d distinct messages to %d recipients, %d recorded; want exactly %d", st.Distinct, st.Recipients, sent, n)
	}
	if st.Repeats > senders {
		t.Errorf("%d messages delivered twice; at most %d (one in flight per connection at the kill) may be", st.Repeats, senders)
	}
}
