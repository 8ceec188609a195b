package shop

import (
	"log/slog"
	"net/url"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/surge-commerce/surge/internal/jobs"
	"github.com/surge-commerce/surge/internal/mail"
)

// openJobs builds the mail job runner of a process that runs the worker
// role. An API process never gets one: a bulk mailing on the API's
// machine is what took the chat SaaS of Surge's cases down.
func (s *Shop) openJobs(cfg Config, log *slog.Logger, reg prometheus.Registerer) error {
	if cfg.JobsOff || cfg.Role == RoleAPI {
		return nil
	}
	jc := cfg.Jobs
	jc.ShopName, jc.PublicURL, jc.Log = cfg.ShopName, cfg.PublicURL, log
	if jc.MessageDomain == "" {
		if u, err := url.Parse(cfg.PublicURL); err == nil && u.Hostname() != "" {
			jc.MessageDomain = u.Hostname()
		}
	}
	if len(cfg.JobsPressureURLs) > 0 {
		jc.Pressure = &jobs.MetricsPressure{URLs: cfg.JobsPressureURLs, Log: log}
	}
	var dial jobs.Dialer = jobs.SenderDialer{Sender: s.mail}
	if smtp, ok := s.mail.(*mail.SMTPSender); ok {
		// One connection carries a whole batch.
		dial = jobs.SMTPDialer{Sender: smtp}
	}
	s.jobs = jobs.NewRunner(s.Store, dial, jc)
	return s.jobs.Metrics().Register(reg)
}
