package shop_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/surge-commerce/surge/internal/catalog"
	"github.com/surge-commerce/surge/internal/drop"
	"github.com/surge-commerce/surge/internal/jobs"
	"github.com/surge-commerce/surge/internal/mail"
	"github.com/surge-commerce/surge/internal/money"
	"github.com/surge-commerce/surge/internal/notify"
	"github.com/surge-commerce/surge/internal/shop"
	"github.com/surge-commerce/surge/internal/smtpsink"
	"github.com/surge-commerce/surge/internal/telemetry"
)

// Mail jobs run where the worker role runs, and never in an API process:
// the API's registry has none of their metrics, and a worker sends a due
// reminder.
func TestMailJobsRunOnWorkersOnly(t *testing.T) {
	sink, err := smtpsink.Start("", smtpsink.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	open := func(role shop.Role) (*shop.Shop, bool) {
		cfg := shop.Defaults()
		cfg.Role = role
		cfg.DataDir = t.TempDir()
		cfg.Admission = false
		cfg.PublicURL = "https://shop.example"
		cfg.SMTP = mail.SMTPConfig{Addr: sink.Addr(), From: "shop@shop.example"}
		cfg.Jobs = jobs.Config{Poll: 20 * time.Millisecond, MailsPerSecond: 1000}
		reg := telemetry.NewRegistry()
		sh, err := shop.Open(t.Context(), cfg, slog.New(slog.DiscardHandler), reg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sh.Close() })
		fams, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fams {
			if f.GetName() == "surge_jobs_backoffs_total" {
				return sh, true
			}
		}
		return sh, false
	}
	if _, has := open(shop.RoleAPI); has {
		t.Fatal("an API process has a mail job runner")
	}
	sh, has := open(shop.RoleWorker)
	if !has {
		t.Fatal("a worker has no mail job runner")
	}
	ctx := context.Background()
	cat, err := sh.Store.CreateCategory(ctx, catalog.Category{Slug: "drops", Name: "Drops"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sh.Store.CreateProduct(ctx, catalog.Product{Slug: "hot", Name: "Hot", Status: catalog.StatusActive, CategoryID: cat.ID,
		Variants: []catalog.Variant{{SKU: "HOT", Price: money.Money{Amount: 100, Currency: "USD"}, OnHand: 1}}}); err != nil {
		t.Fatal(err)
	}
	in := drop.Drop{Slug: "soon", Name: "Soon", StartsAt: time.Now().Add(10 * time.Minute).UTC(), Items: []drop.Item{{SKU: "HOT", Allocated: 1}}}
	in.Defaults()
	d, err := sh.Store.CreateDrop(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	tok := notify.NewToken()
	if _, err := sh.Store.SaveSubscription(ctx, d.ID, "fan@example.com", notify.HashToken(tok), notify.NewToken()); err != nil {
		t.Fatal(err)
	}
	if _, err := sh.Store.ConfirmSubscription(ctx, notify.HashToken(tok), time.Time{}); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sh.Run(runCtx, shop.RoleWorker) }()
	defer func() {
		stop()
		<-done
	}()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if st, err := sink.Wait(wctx, func(s smtpsink.Stats) bool { return s.Messages >= 1 }); err != nil {
		t.Fatalf("the worker sent no reminder: %+v, %v", st, err)
	}
	// The drop report's "notified" is what the job ledger recorded as
	// sent, which follows the mail server's answer.
	for {
		rep, err := sh.DropReport(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		if n := rep.Funnel.Notified; n != nil && *n == 1 {
			break
		} else if n != nil && *n > 1 {
			t.Fatalf("report: %d notified, one reminder sent", *n)
		}
		select {
		case <-wctx.Done():
			t.Fatalf("the report never counted the reminder: %+v", rep.Funnel)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
