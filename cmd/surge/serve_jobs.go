package main

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/spf13/pflag"

	"github.com/surge-commerce/surge/internal/shop"
)

// jobsFlagNames are the flags of the mail job runner (drop reminders and
// sold-out mail to "notify me" subscribers); a worker takes them too.
var jobsFlagNames = []string{"jobs", "jobs-mail-rate", "jobs-senders", "jobs-batch", "jobs-lease", "jobs-poll",
	"jobs-reminder-before", "jobs-pressure-url"}

// addJobsFlags binds the mail job flags to c (and --jobs to on), showing
// the defaults d.
func addJobsFlags(f *pflag.FlagSet, c *shop.Config, on *bool, d shop.Config) {
	f.BoolVar(on, "jobs", !d.JobsOff, "run the mail jobs (drop reminders, sold-out mail) in a worker process (--role worker or all; never in --role api)")
	f.Float64Var(&c.Jobs.MailsPerSecond, "jobs-mail-rate", d.Jobs.MailsPerSecond, "mails per second a worker's jobs send at most, over all its connections")
	f.IntVar(&c.Jobs.Senders, "jobs-senders", d.Jobs.Senders, "SMTP connections a worker's jobs keep open at once (each sends many messages)")
	f.IntVar(&c.Jobs.BatchSize, "jobs-batch", d.Jobs.BatchSize, "subscribers per leased batch of a mail job")
	f.DurationVar(&c.Jobs.Lease, "jobs-lease", d.Jobs.Lease, "how long a worker holds a batch without renewing; a dead worker's batch waits this long for another")
	f.DurationVar(&c.Jobs.Poll, "jobs-poll", d.Jobs.Poll, "how often a worker looks for drops and due mail jobs")
	f.DurationVar(&c.Jobs.ReminderBefore, "jobs-reminder-before", d.Jobs.ReminderBefore, "how long before a drop's start its reminder mail goes out")
	f.StringSliceVar(&c.JobsPressureURLs, "jobs-pressure-url", d.JobsPressureURLs,
		"metrics URL of an API replica's operations listener, e.g. http://api-1:9090/metrics (repeatable): mail holds off while any sheds or queues requests")
}

// validateJobs checks the mail job flags.
func validateJobs(c shop.Config) error {
	var errs []error
	j := c.Jobs
	if j.MailsPerSecond <= 0 || j.MailsPerSecond > 1e6 {
		errs = append(errs, errors.New("--jobs-mail-rate: must be above 0 and at most 1000000"))
	}
	if j.Senders < 1 || j.Senders > 64 {
		errs = append(errs, errors.New("--jobs-senders: 1 to 64"))
	}
	if j.BatchSize < 1 || j.BatchSize > 100_000 {
		errs = append(errs, errors.New("--jobs-batch: 1 to 100000"))
	}
	if j.Lease < time.Second || j.Poll <= 0 || j.ReminderBefore <= 0 {
		errs = append(errs, errors.New("--jobs-lease must be at least 1s, --jobs-poll and --jobs-reminder-before positive"))
	}
	for _, u := range c.JobsPressureURLs {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			errs = append(errs, fmt.Errorf("--jobs-pressure-url %q: want an http(s) URL such as http://api-1:9090/metrics", u))
		}
	}
	return errors.Join(errs...)
}
