package jobs

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the runner's Prometheus metrics.
type Metrics struct {
	mails          *prometheus.CounterVec
	batches        *prometheus.CounterVec
	remaining      *prometheus.GaugeVec
	sendSeconds    prometheus.Histogram
	connections    prometheus.Counter
	backoffs       prometheus.Counter
	backoffSeconds prometheus.Counter
	pressure       prometheus.Gauge
}

// NewMetrics makes the metrics, unregistered.
func NewMetrics() *Metrics {
	m := &Metrics{
		mails: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "surge_jobs_mails_total",
			Help: "Mail job messages by kind and outcome: sent (the server took it), failed (refused for good), retry (not delivered now; the batch is tried again)."},
			[]string{"kind", "outcome"}),
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "surge_jobs_batches_total",
			Help: "Mail job batches by how they ended: done, released (given up for later: an error or a pause), lost (the lease ran out)."},
			[]string{"result"}),
		remaining: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "surge_jobs_remaining",
			Help: "Recipients of due mail jobs not yet sent, by kind, as of the last scheduling pass."}, []string{"kind"}),
		sendSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "surge_jobs_send_seconds",
			Help: "Time to hand one message to the SMTP server, to its reply.", Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9)}),
		connections: prometheus.NewCounter(prometheus.CounterOpts{Name: "surge_jobs_smtp_connections_total",
			Help: "SMTP connections opened by the mail job senders (each sends many messages)."}),
		backoffs: prometheus.NewCounter(prometheus.CounterOpts{Name: "surge_jobs_backoffs_total",
			Help: "Times the mail jobs held off because the shop reported pressure."}),
		backoffSeconds: prometheus.NewCounter(prometheus.CounterOpts{Name: "surge_jobs_backoff_seconds_total",
			Help: "Time the mail jobs spent holding off for the shop's pressure."}),
		pressure: prometheus.NewGauge(prometheus.GaugeOpts{Name: "surge_jobs_pressure",
			Help: "1 while the shop reports pressure and the mail jobs hold off."}),
	}
	// Every kind and outcome is exported from the start, at 0: a query
	// or a rehearsal's threshold on failed mail then reads 0 rather than
	// finding no series.
	for _, k := range Kinds {
		for _, o := range mailOutcomes {
			m.mails.WithLabelValues(string(k), o)
		}
		m.remaining.WithLabelValues(string(k))
	}
	return m
}

// mailOutcomes lists what surge_jobs_mails_total counts, "retry" included.
var mailOutcomes = []string{string(Sent), string(Failed), "retry"}

// Register adds the metrics to reg.
func (m *Metrics) Register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.mails, m.batches, m.remaining, m.sendSeconds, m.connections, m.backoffs, m.backoffSeconds, m.pressure} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// MailsCounter is surge_jobs_mails_total for kind and outcome, for tests
// and reports.
func (m *Metrics) MailsCounter(kind, outcome string) prometheus.Counter {
	return m.mails.WithLabelValues(kind, outcome)
}

// BackoffsCounter is surge_jobs_backoffs_total.
func (m *Metrics) BackoffsCounter() prometheus.Counter { return m.backoffs }
