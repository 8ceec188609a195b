package storefront

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/surge-commerce/surge/internal/catalog"
	"github.com/surge-commerce/surge/internal/drop"
	"github.com/surge-commerce/surge/internal/jobs"
	"github.com/surge-commerce/surge/internal/notify"
)

// JobAdmin is what the admin API needs of the mail job ledger.
type JobAdmin interface {
	Jobs(ctx context.Context) ([]jobs.Job, error)
	JobByID(ctx context.Context, id int64) (jobs.Job, error)
	SetJobPaused(ctx context.Context, id int64, paused bool) (jobs.Job, error)
	ScheduleJob(ctx context.Context, kind jobs.Kind, dropID string, runAt time.Time) (jobs.Job, error)
}

// errNoJobs answers the job routes of a shop assembled without a ledger.
var errNoJobs = &jobsOff{}

type jobsOff struct{}

func (*jobsOff) Error() string        { return "mail jobs are not available in this shop" }
func (*jobsOff) Is(target error) bool { return target == jobs.ErrNotFound }

func jobID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, catalog.Invalidf("job id %q: want a positive number", r.PathValue("id"))
	}
	return id, nil
}

func (s *server) handleAdminListJobs() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.JobAdmin == nil {
			problem(w, r, s.Logger, errNoJobs)
			return
		}
		list, err := s.JobAdmin.Jobs(r.Context())
		if err != nil {
			problem(w, r, s.Logger, err)
			return
		}
		if list == nil {
			list = []jobs.Job{}
		}
		noStore(w)
		encode(w, http.StatusOK, map[string]any{"jobs": list})
	})
}

func (s *server) handleAdminGetJob() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.JobAdmin == nil {
			problem(w, r, s.Logger, errNoJobs)
			return
		}
		id, err := jobID(r)
		if err == nil {
			var j jobs.Job
			if j, err = s.JobAdmin.JobByID(r.Context(), id); err == nil {
				noStore(w)
				encode(w, http.StatusOK, j)
				return
			}
		}
		problem(w, r, s.Logger, err)
	})
}

// handleAdminPauseJob pauses (or resumes) a job: workers stop sending it
// at their next lease renewal, within a couple of seconds.
func (s *server) handleAdminPauseJob(paused bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.JobAdmin == nil {
			problem(w, r, s.Logger, errNoJobs)
			return
		}
		id, err := jobID(r)
		if err == nil {
			if _, err = s.JobAdmin.JobByID(r.Context(), id); err == nil {
				var j jobs.Job
				if j, err = s.JobAdmin.SetJobPaused(r.Context(), id, paused); err == nil {
					noStore(w)
					encode(w, http.StatusOK, j)
					return
				}
			}
		}
		problem(w, r, s.Logger, err)
	})
}

// handleAdminRemindNow makes a drop's reminder due now: a worker starts
// it at its next look for due jobs (--jobs-poll), mailing the drop's
// confirmed subscribers then. It takes no body. A reminder already
// started or sent is a 409, and so is a drop that has ended.
func (s *server) handleAdminRemindNow() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.JobAdmin == nil {
			problem(w, r, s.Logger, errNoJobs)
			return
		}
		d, err := s.DropStore.DropByID(r.Context(), r.PathValue("id"))
		if err != nil {
			problem(w, r, s.Logger, err)
			return
		}
		now := time.Now()
		if d.StateAt(now) == drop.StateClosed {
			problem(w, r, s.Logger, fmt.Errorf("%w: %s has ended; its reminder is no longer sent", notify.ErrNotOpen, d.Name))
			return
		}
		j, err := s.JobAdmin.ScheduleJob(r.Context(), jobs.KindReminder, d.ID, now)
		if err != nil {
			problem(w, r, s.Logger, err)
			return
		}
		noStore(w)
		encode(w, http.StatusOK, j)
	})
}
