// Package jobs runs the shop's bulk mail on the worker role: a reminder
// to a drop's confirmed "notify me" subscribers a set time before the
// drop starts, and a "sold out / next drop" mail after it. It never runs
// in an API process (the chat-SaaS lesson: a 30,000-mail job on the API's
// server took the API down).
//
// Exactly once per recipient, as far as SMTP allows: a job's recipients
// are split into batches of subscription IDs; a worker leases one batch
// at a time in the job ledger (the store), renews the lease while it
// sends, and records each recipient as delivered right after the mail
// server's 250 reply. A worker that dies mid-batch leaves its lease to
// run out; the next worker to lease the batch skips the recipients
// recorded as delivered. The one window left is a crash (or a lost
// connection) between the server's 250 and the record: that recipient is
// mailed again, with the same Message-ID, so receiving systems can drop
// the repeat. Several workers share a job through the batch leases.
package jobs

import (
	"context"
	"errors"
	"time"
)

// Kind is what a job sends.
type Kind string

// Job kinds.
const (
	// KindReminder tells a drop's subscribers it starts soon.
	KindReminder Kind = "drop-reminder"
	// KindSoldOut tells them it sold out (or closed), and names the next
	// scheduled drop if there is one.
	KindSoldOut Kind = "drop-sold-out"
)

// Kinds lists every kind.
var Kinds = []Kind{KindReminder, KindSoldOut}

// State is where a job is.
type State string

// Job states, derived from the ledger.
const (
	StateScheduled State = "scheduled" // due at RunAt
	StateRunning   State = "running"
	StatePaused    State = "paused"
	StateDone      State = "done"
)

// Errors of the ledger.
var (
	ErrNotFound = errors.New("job not found")
	// ErrNoBatch means every batch of the job is leased by a worker; try
	// again later.
	ErrNoBatch = errors.New("no batch free")
	// ErrFinished means the job has nothing left to send.
	ErrFinished = errors.New("job finished")
	// ErrPaused means an operator paused the job.
	ErrPaused = errors.New("job paused")
	// ErrLeaseLost means another worker holds the batch now: the lease
	// ran out. Stop sending it.
	ErrLeaseLost = errors.New("batch lease lost")
	// ErrStarted means the job has started (or finished): its moment
	// cannot move any more.
	ErrStarted = errors.New("job already started")
	// ErrInvalid wraps a job that cannot be stored.
	ErrInvalid = errors.New("invalid job")
)

// Job is one bulk mailing, as the ledger records it.
type Job struct {
	ID     int64     `json:"id"`
	Kind   Kind      `json:"kind"`
	DropID string    `json:"drop_id"`
	RunAt  time.Time `json:"run_at"`
	State  State     `json:"state"`
	Paused bool      `json:"paused"`
	// StartedAt is when the first worker fixed the recipients: those
	// confirmed by then, with subscription IDs up to LastID.
	StartedAt  *time.Time `json:"started_at,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	Recipients int64      `json:"recipients"` // confirmed subscribers when it started
	Sent       int64      `json:"sent"`
	Failed     int64      `json:"failed"` // refused for good by the mail server
	// ReadPosition is where a database replica must have replayed to
	// serve the recipient list (see notify.RecipientQuery).
	ReadPosition string    `json:"-"`
	LastID       int64     `json:"-"`
	CreatedAt    time.Time `json:"created_at"`
}

// Remaining is how many recipients are neither sent nor failed.
func (j Job) Remaining() int64 { return max(0, j.Recipients-j.Sent-j.Failed) }

// Batch is a range of subscription IDs [FromID, ToID) of one job, leased
// by Owner until LeaseUntil.
type Batch struct {
	JobID        int64
	FromID, ToID int64
	Owner        string
	LeaseUntil   time.Time
}

// Outcome is what happened to one recipient.
type Outcome string

// Outcomes.
const (
	Sent   Outcome = "sent"
	Failed Outcome = "failed"
)

// Store is the job ledger. Both store adapters implement it and pass
// storetest.RunJobs.
type Store interface {
	// EnsureJob creates the job of (kind, dropID) due at runAt unless one
	// exists, and returns it either way.
	EnsureJob(ctx context.Context, kind Kind, dropID string, runAt time.Time) (Job, error)
	// ScheduleJob makes the job of (kind, dropID) due at runAt: it
	// creates it, or moves it if it has not started. A job that has
	// started or finished is returned with ErrStarted.
	ScheduleJob(ctx context.Context, kind Kind, dropID string, runAt time.Time) (Job, error)
	Jobs(ctx context.Context) ([]Job, error)
	JobByID(ctx context.Context, id int64) (Job, error)
	// DueJobs lists unfinished, unpaused jobs due by now.
	DueJobs(ctx context.Context, now time.Time) ([]Job, error)
	// SetJobPaused pauses or resumes a job.
	SetJobPaused(ctx context.Context, id int64, paused bool) (Job, error)
	// StartJob fixes the recipients of a job not yet started (those
	// confirmed now) and returns it; a started job is returned as it is.
	StartJob(ctx context.Context, id int64) (Job, error)
	// FinishJob marks a job finished without sending anything more (the
	// drop it was for has gone).
	FinishJob(ctx context.Context, id int64) error
	// ClaimBatch leases owner a batch of up to size subscriptions for
	// lease: one whose lease ran out, else the next range. It returns
	// ErrNoBatch when all left are leased, ErrFinished when none are left
	// (and marks the job finished), ErrPaused when the job is paused.
	ClaimBatch(ctx context.Context, jobID int64, owner string, size int, lease time.Duration) (Batch, error)
	// RenewBatch extends b's lease; ErrLeaseLost if b is no longer
	// owner's, ErrPaused if the job was paused.
	RenewBatch(ctx context.Context, b Batch, lease time.Duration) (Batch, error)
	// ReleaseBatch gives b up unfinished, for another lease at once.
	ReleaseBatch(ctx context.Context, b Batch) error
	// FinishBatch marks b sent; ErrLeaseLost if it is not owner's.
	FinishBatch(ctx context.Context, b Batch) error
	// Delivered lists the subscriptions of b already recorded.
	Delivered(ctx context.Context, b Batch) (map[int64]bool, error)
	// RecordDelivery records what happened to a recipient of job; a
	// second record of the same recipient changes nothing.
	RecordDelivery(ctx context.Context, jobID, subscriptionID int64, o Outcome) error
}
