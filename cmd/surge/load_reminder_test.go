package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/surge-commerce/surge/internal/loadtest"
	"github.com/surge-commerce/surge/internal/smtpsink"
)

// reminderShop is a shop (--role all, so its worker part runs the mail
// jobs) that mails an SMTP sink, looking for due jobs every 100 ms.
func reminderShop(t *testing.T) (*runningShop, *smtpsink.Sink) {
	t.Helper()
	sink, err := smtpsink.Start("", smtpsink.Options{IDPrefix: "<job-"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	shop := startServe(t, "--admin-token", testToken, "--data-dir", t.TempDir(), "--smtp-addr", sink.Addr(),
		"--smtp-from", "shop@shop.example", "--jobs-poll", "100ms", "--jobs-mail-rate", "2000")
	return shop, sink
}

// A scenario's reminder section, as a user runs it: surge load adds the
// subscribers through the admin API, sends the reminder at its moment,
// and after the run checks the job mailed each once, by the ledger and
// by the worker's counter; the mail server got one message each.
func TestLoadReminder(t *testing.T) {
	shop, sink := reminderShop(t)
	dir := t.TempDir()
	scenario := filepath.Join(dir, "mail.yaml")
	if err := os.WriteFile(scenario, []byte(`name: mail
description: A reminder beside a little load.
load: {rate: 5, duration: 3s, timeout: 5s}
reminder: {subscribers: 2500, at: 30%}
thresholds:
  - delta(surge_jobs_mails_total{kind="drop-reminder",outcome="sent"})>0
  - delta(surge_jobs_mails_total{kind="drop-reminder",outcome="failed"})<1
journeys:
  - use: get
`), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "r.json")
	var stdout strings.Builder
	err := run(context.Background(), []string{"load", "run", "--scenario", scenario, "--target", shop.URL, "--admin-token", testToken,
		"--scrape", shop.AdminURL + "/metrics", "--out", out, "--quiet"}, noEnv, &stdout, io.Discard)
	if err != nil {
		t.Fatalf("surge load: %v\n%s", err, stdout.String())
	}
	r := readResult(t, out)
	mj := r.MailJob
	if mj == nil || mj.Subscribers != 2500 || mj.Recipients != 2500 || mj.Sent != 2500 || mj.Failed != 0 || mj.State != "done" ||
		mj.Counted == nil || mj.Counted.Sent != 2500 || mj.StartS < 0.5 || mj.StartS > 3 {
		t.Fatalf("mail job %+v", mj)
	}
	if len(r.Hooks) != 1 || !r.Hooks[0].Pass || len(r.Checks) != 1 || !r.Checks[0].Pass {
		t.Errorf("hooks %+v, checks %+v", r.Hooks, r.Checks)
	}
	if st := sink.Stats(); st.Messages != 2500 || st.Distinct != 2500 || st.Recipients != 2500 {
		t.Errorf("sink %+v: want 2500 messages to 2500 people", st)
	}
}

// The check fails when the workers sent more mail than the drop has
// subscribers (someone mailed twice), or the job never ran.
func TestReminderCheckFails(t *testing.T) {
	shop, _ := reminderShop(t)
	ctx := context.Background()
	admin := loadtest.Admin{Target: shop.URL, Token: testToken, Client: &http.Client{Timeout: 10 * time.Second}}
	scrape := []string{shop.AdminURL + "/metrics"}
	setup := loadtest.ReminderSetup{Subscribers: 40}
	first, err := setup.Create(ctx, admin, scrape)
	if err != nil {
		t.Fatal(err)
	}
	// Made before the first job sends: its count of the workers' mail
	// starts from the same zero.
	second, err := setup.Create(ctx, admin, scrape)
	if err != nil {
		t.Fatal(err)
	}
	quick := loadtest.ReminderCheck{Poll: 50 * time.Millisecond, Stall: 5 * time.Second}

	// The worker's own schedule may have made the job (due an hour before
	// the drop, a week away) by now, or not yet.
	notSent, _ := second.Check(ctx, admin, time.Now(), 60, quick)
	if notSent.Pass || !strings.Contains(notSent.Detail, "no reminder job") && !strings.Contains(notSent.Detail, "the job never started") {
		t.Errorf("a reminder never sent: %+v", notSent)
	}
	for _, h := range loadtest.RunHooks(ctx, admin, time.Now(), []loadtest.Hook{first.Hook(0)}) {
		if !h.Pass {
			t.Fatalf("reminder: %+v", h)
		}
	}
	start := time.Now()
	ok, mj := first.Check(ctx, admin, start, 60, quick)
	if !ok.Pass || mj.Sent != 40 || mj.Counted == nil || mj.Counted.Sent != 40 {
		t.Fatalf("first job: %+v %+v", ok, mj)
	}
	loadtest.RunHooks(ctx, admin, time.Now(), []loadtest.Hook{second.Hook(0)})
	twice, mj := second.Check(ctx, admin, start, 60, quick)
	if twice.Pass || mj.Sent != 40 || mj.Counted == nil || mj.Counted.Sent != 80 || !strings.Contains(twice.Detail, "mailed twice") {
		t.Errorf("80 mails counted for 40 subscribers passed: %+v %+v", twice, mj)
	}
	// A job that started after the load had ended proves nothing.
	late, _ := first.Check(ctx, admin, start, -1, quick)
	if late.Pass || !strings.Contains(late.Detail, "after the load ended") {
		t.Errorf("a job after the run: %+v", late)
	}
	b, _ := json.Marshal(mj)
	t.Logf("%s", b)
}

// A scenario with a reminder needs the admin API: without a token surge
// load says so before sending anything.
func TestLoadReminderNeedsAdminToken(t *testing.T) {
	err := run(context.Background(), []string{"load", "run", "--scenario", "../../rehearsals/bulk-jobs.yaml", "--target", "http://127.0.0.1:1"},
		noEnv, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--admin-token") {
		t.Fatalf("err = %v; want one asking for --admin-token", err)
	}
}
