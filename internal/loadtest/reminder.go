package loadtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"time"
)

// ReminderSetup is a mail job a rehearsal runs next to its load, as a
// shop runs one on its day: a drop of its own a week away, with
// Subscribers confirmed "notify me" subscribers added through the admin
// API before the run, whose reminder the rehearsal sends at a moment of
// the run (POST /api/v1/admin/drops/{id}/reminder, a hook named
// "drop reminder"). After the run it checks that the job mailed every
// subscriber exactly once (see CreatedReminder.Check).
type ReminderSetup struct {
	Subscribers int `json:"subscribers"`
}

// ImportChunk is how many addresses one import request carries: the
// shop's limit (notify.MaxImport).
const ImportChunk = 1000

// MaxReminderSubscribers bounds a scenario's subscribers.
const MaxReminderSubscribers = 1_000_000

// ScaleReminder scales the subscribers, at least one.
func (r ReminderSetup) ScaleReminder(scale float64) ReminderSetup {
	return ReminderSetup{Subscribers: max(1, int(math.Round(float64(r.Subscribers)*scale)))}
}

// CreatedReminder is the drop Create made and what the workers had
// counted before the run.
type CreatedReminder struct {
	DropID, Slug string
	Subscribers  int
	// Scrape are the metrics URLs of the shop's processes (--scrape);
	// before holds their mail counters when the drop was made.
	Scrape []string
	before MailCounts
	err    error // reading the counters before the run
}

// MailCounts are surge_jobs_mails_total{kind="drop-reminder"} by
// outcome, summed over processes.
type MailCounts struct {
	Sent   float64 `json:"sent"`
	Failed float64 `json:"failed"`
	Retry  float64 `json:"retry"`
}

// reminderKind is the job kind of a drop reminder (jobs.KindReminder).
const reminderKind = "drop-reminder"

// Create makes a category, a product and a drop starting in a week, adds
// the subscribers (fan-TAG-N@example.com: example.com is reserved for
// examples, RFC 2606, so no real person is mailed even through a real
// relay) and reads the workers' mail counters at scrape.
func (r ReminderSetup) Create(ctx context.Context, a Admin, scrape []string) (CreatedReminder, error) {
	if r.Subscribers < 1 || r.Subscribers > MaxReminderSubscribers {
		return CreatedReminder{}, fmt.Errorf("reminder: subscribers must be 1 to %d", MaxReminderSubscribers)
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	tag := hex.EncodeToString(rnd[:])
	slug := "rehearsal-reminder-" + tag
	var cat struct {
		ID int64 `json:"id"`
	}
	if _, err := a.do(ctx, http.MethodPost, "/api/v1/admin/categories", map[string]any{"name": "Rehearsal " + tag, "slug": slug}, &cat); err != nil {
		return CreatedReminder{}, fmt.Errorf("reminder: %w", err)
	}
	sku := "REM-" + strings.ToUpper(tag)
	product := map[string]any{"name": "Rehearsal Reminder " + tag, "slug": slug, "status": "active", "category_id": cat.ID,
		"variants": []map[string]any{{"sku": sku, "price": map[string]any{"amount": 9900, "currency": "USD"}, "on_hand": 1}}}
	if _, err := a.do(ctx, http.MethodPost, "/api/v1/admin/products", product, nil); err != nil {
		return CreatedReminder{}, fmt.Errorf("reminder: %w", err)
	}
	// A week away: the shop's own schedule (an hour before the start,
	// by default) never sends the reminder during the run; the
	// rehearsal's call does.
	body := map[string]any{"name": "Rehearsal reminder drop " + tag, "slug": slug,
		"starts_at": time.Now().Add(7 * 24 * time.Hour).UTC().Format(time.RFC3339), "per_customer_limit": 1,
		"items": []map[string]any{{"sku": sku, "allocated": 1}}}
	var created struct {
		ID string `json:"id"`
	}
	if _, err := a.do(ctx, http.MethodPost, "/api/v1/admin/drops", body, &created); err != nil {
		return CreatedReminder{}, fmt.Errorf("reminder: %w", err)
	}
	out := CreatedReminder{DropID: created.ID, Slug: slug, Scrape: scrape}
	for from := 0; from < r.Subscribers; from += ImportChunk {
		emails := make([]string, 0, ImportChunk)
		for i := from; i < min(from+ImportChunk, r.Subscribers); i++ {
			emails = append(emails, fmt.Sprintf("fan-%s-%d@example.com", tag, i))
		}
		var res struct {
			Added int `json:"added"`
		}
		if _, err := a.do(ctx, http.MethodPost, "/api/v1/admin/drops/"+created.ID+"/subscribers", map[string]any{"emails": emails}, &res); err != nil {
			return out, fmt.Errorf("reminder: subscribers: %w", err)
		}
		out.Subscribers += res.Added
	}
	if out.Subscribers != r.Subscribers {
		return out, fmt.Errorf("reminder: the shop added %d of %d subscribers", out.Subscribers, r.Subscribers)
	}
	out.before, out.err = mailCounts(ctx, a.Client, scrape)
	return out, nil
}

// Hook is the request that sends the reminder at at.
func (c CreatedReminder) Hook(at time.Duration) Hook {
	return Hook{Name: "drop reminder", At: at, Method: http.MethodPost, URL: "/api/v1/admin/drops/" + c.DropID + "/reminder", Admin: true}
}

// MailJobResult is how a rehearsal's mail job went, from the shop's job
// ledger and the workers' own counters.
type MailJobResult struct {
	DropID      string `json:"drop_id"`
	JobID       int64  `json:"job_id,omitempty"`
	State       string `json:"state,omitempty"`
	Subscribers int    `json:"subscribers"` // confirmed subscribers the rehearsal added
	// Recipients, Sent and Failed are the ledger's: the subscribers the
	// job fixed when it started, those the mail server accepted and
	// those it refused for good.
	Recipients int64 `json:"recipients"`
	Sent       int64 `json:"sent"`
	Failed     int64 `json:"failed"`
	// Counted is what the workers' surge_jobs_mails_total counted from
	// before the run to the check (nil without --scrape): a mail sent
	// twice counts twice.
	Counted *MailCounts `json:"counted,omitempty"`
	// StartS and EndS are when the job started and finished on the run's
	// time axis (-1: it did not).
	StartS float64 `json:"start_s"`
	EndS   float64 `json:"end_s"`
}

// ReminderCheck shapes Check: how often to ask the shop, and how long
// the job may go without sending a mail before the check stops waiting.
type ReminderCheck struct {
	Poll  time.Duration // default 500ms
	Stall time.Duration // default 1m
	Max   time.Duration // default 1h
}

// Check waits for the reminder job to finish (while it keeps sending),
// then checks it mailed every subscriber exactly once: the ledger's
// recipients and sent are the subscribers added, none failed, and, with
// --scrape, the workers counted as many mails sent and none failed. The
// job must have started before the run's end (runEnd after start):
// a job that never ran beside the load proves nothing.
func (c CreatedReminder) Check(ctx context.Context, a Admin, start time.Time, runEnd float64, o ReminderCheck) (CheckResult, MailJobResult) {
	if o.Poll <= 0 {
		o.Poll = 500 * time.Millisecond
	}
	if o.Stall <= 0 {
		o.Stall = time.Minute
	}
	if o.Max <= 0 {
		o.Max = time.Hour
	}
	res := CheckResult{Name: "mail job"}
	mj := MailJobResult{DropID: c.DropID, Subscribers: c.Subscribers, StartS: -1, EndS: -1}
	job, err := c.job(ctx, a)
	if err != nil {
		res.Detail = err.Error()
		return res, mj
	}
	deadline := time.Now().Add(o.Max)
	progress, lastAt := job.Sent+job.Failed, time.Now()
	for job.State != "done" && time.Now().Before(deadline) && time.Since(lastAt) < o.Stall {
		select {
		case <-ctx.Done():
			res.Detail = ctx.Err().Error()
			return res, mj
		case <-time.After(o.Poll):
		}
		if _, err := a.do(ctx, http.MethodGet, fmt.Sprintf("/api/v1/admin/jobs/%d", job.ID), nil, &job); err != nil {
			res.Detail = err.Error()
			return res, mj
		}
		if p := job.Sent + job.Failed; p != progress {
			progress, lastAt = p, time.Now()
		}
	}
	mj.JobID, mj.State, mj.Recipients, mj.Sent, mj.Failed = job.ID, job.State, job.Recipients, job.Sent, job.Failed
	if job.StartedAt != nil {
		mj.StartS = round(job.StartedAt.Sub(start).Seconds(), 1)
	}
	if job.FinishedAt != nil {
		mj.EndS = round(job.FinishedAt.Sub(start).Seconds(), 1)
	}
	var problems []string
	n := int64(c.Subscribers)
	switch {
	case job.StartedAt == nil:
		problems = append(problems, "the job never started")
	case mj.StartS > runEnd:
		problems = append(problems, fmt.Sprintf("the job started %.1fs into the run, after the load ended (%.1fs)", mj.StartS, runEnd))
	}
	if job.State != "done" {
		problems = append(problems, fmt.Sprintf("the job is still %s, %d of %d sent, after %s without progress", job.State, job.Sent, job.Recipients, o.Stall))
	}
	if job.Recipients != n {
		problems = append(problems, fmt.Sprintf("the job fixed %d recipients, not the %d subscribers", job.Recipients, n))
	}
	if job.Sent != n || job.Failed != 0 {
		problems = append(problems, fmt.Sprintf("the ledger records %d sent and %d failed of %d", job.Sent, job.Failed, n))
	}
	counted := "not counted (no --scrape)"
	if len(c.Scrape) > 0 {
		after, err := mailCounts(ctx, a.Client, c.Scrape)
		if err == nil {
			err = c.err
		}
		if err != nil {
			problems = append(problems, "the workers' counters: "+err.Error())
			counted = "the workers' counters unread"
		} else {
			d := MailCounts{Sent: after.Sent - c.before.Sent, Failed: after.Failed - c.before.Failed, Retry: after.Retry - c.before.Retry}
			mj.Counted = &d
			counted = fmt.Sprintf("the workers counted %.0f sent, %.0f failed, %.0f retried", d.Sent, d.Failed, d.Retry)
			if d.Sent != float64(n) || d.Failed != 0 {
				p := fmt.Sprintf("the workers counted %.0f mails sent and %.0f failed for %d subscribers", d.Sent, d.Failed, n)
				if d.Sent > float64(n) {
					p += ": more sent than subscribers, someone was mailed twice"
				}
				problems = append(problems, p)
			}
		}
	}
	res.Detail = fmt.Sprintf("%d confirmed subscribers: job %d fixed %d recipients, the ledger records %d sent, %d failed; %s; it ran from %s to %s of the run",
		n, job.ID, job.Recipients, job.Sent, job.Failed, counted, secondsOrNot(mj.StartS), secondsOrNot(mj.EndS))
	if len(problems) > 0 {
		res.Detail += " (" + strings.Join(problems, "; ") + ")"
	}
	res.Pass = len(problems) == 0
	return res, mj
}

func secondsOrNot(s float64) string {
	if s < 0 {
		return "-"
	}
	return fmt.Sprintf("%.1fs", s)
}

// shopJob is a job as the admin API shows it.
type shopJob struct {
	ID         int64      `json:"id"`
	Kind       string     `json:"kind"`
	DropID     string     `json:"drop_id"`
	State      string     `json:"state"`
	StartedAt  *time.Time `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
	Recipients int64      `json:"recipients"`
	Sent       int64      `json:"sent"`
	Failed     int64      `json:"failed"`
}

// job finds the drop's reminder job.
func (c CreatedReminder) job(ctx context.Context, a Admin) (shopJob, error) {
	var list struct {
		Jobs []shopJob `json:"jobs"`
	}
	if _, err := a.do(ctx, http.MethodGet, "/api/v1/admin/jobs", nil, &list); err != nil {
		return shopJob{}, err
	}
	for _, j := range list.Jobs {
		if j.Kind == reminderKind && j.DropID == c.DropID {
			return j, nil
		}
	}
	return shopJob{}, fmt.Errorf("the shop has no reminder job for drop %s: was the reminder sent (the hook), and does a worker run the mail jobs?", c.DropID)
}

// mailCounts reads surge_jobs_mails_total{kind="drop-reminder"} at every
// URL and sums it by outcome.
func mailCounts(ctx context.Context, client *http.Client, urls []string) (MailCounts, error) {
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	var out MailCounts
	var errs []error
	for _, u := range urls {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		resp, err := client.Do(req)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s, err := parseScrape(io.LimitReader(resp.Body, 32<<20))
		resp.Body.Close()
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("%s answered %s", u, resp.Status)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, c := range s.counters {
			if c.name != "surge_jobs_mails_total" || c.labels["kind"] != reminderKind {
				continue
			}
			switch c.labels["outcome"] {
			case "sent":
				out.Sent += c.v
			case "failed":
				out.Failed += c.v
			case "retry":
				out.Retry += c.v
			}
		}
	}
	return out, errors.Join(errs...)
}
