package admission

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are created with the Admission and resolved per label up front,
// so the request path never looks a label up; Register only exposes them.
type metrics struct {
	collectors  []prometheus.Collector
	queueWait   [NumClasses]prometheus.Observer
	admitted    [NumClasses]prometheus.Counter
	shed        [NumClasses][len(reasons)]prometheus.Counter
	rateLimited [2]prometheus.Counter // by client, by session
	cheap       prometheus.Counter
	tooLarge    prometheus.Counter
}

func newMetrics(l *Limiter, cpu *cpuGuard) *metrics {
	queueWait := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "surge_admission_queue_wait_seconds",
		Help:    "Time admitted requests waited for a concurrency slot, by class.",
		Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
	}, []string{"class"})
	admitted := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "surge_admission_admitted_total",
		Help: "Requests admitted under the concurrency limit, by class.",
	}, []string{"class"})
	shed := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "surge_admission_shed_total",
		Help: "Requests refused with 503 (or abandoned by their client while queued), by class and reason.",
	}, []string{"class", "reason"})
	rateLimited := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "surge_admission_rate_limited_total",
		Help: "Requests refused with 429 by a per-client token bucket, by key (client address or session).",
	}, []string{"key"})
	m := &metrics{
		cheap: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "surge_admission_cheap_total",
			Help: "Requests served without taking a slot because they were answered from memory (page-cache hits).",
		}),
		tooLarge: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "surge_admission_body_too_large_total",
			Help: "Requests refused with 413 because their declared body exceeded the limit.",
		}),
	}
	for c := range NumClasses {
		name := Class(c).String()
		m.queueWait[c] = queueWait.WithLabelValues(name)
		m.admitted[c] = admitted.WithLabelValues(name)
		for i, r := range reasons {
			m.shed[c][i] = shed.WithLabelValues(name, string(r))
		}
	}
	m.rateLimited[0] = rateLimited.WithLabelValues("client")
	m.rateLimited[1] = rateLimited.WithLabelValues("session")
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	m.collectors = []prometheus.Collector{queueWait, admitted, shed, rateLimited, m.cheap, m.tooLarge,
		gauge("surge_admission_in_flight", "Requests admitted and not yet finished.", func() float64 { return float64(l.InFlight()) }),
		gauge("surge_admission_limit", "The adaptive concurrency limit in force.", func() float64 { return float64(l.Limit()) }),
		gauge("surge_admission_queued", "Requests waiting for a concurrency slot.", func() float64 { return float64(l.Queued()) }),
		gauge("surge_admission_min_rtt_seconds", "The latest no-load latency measurement the limit is steered by.", func() float64 { return l.MinRTT().Seconds() }),
		gauge("surge_admission_cpu_share", "Share of Browse requests the CPU guard admits (Background gets its square); 1 when the CPU keeps up.", cpu.Share),
		gauge("surge_admission_sched_delay_seconds", "90th percentile of the time goroutines waited for a CPU, in the CPU guard's last counted window.", func() float64 { return cpu.Delay().Seconds() }),
	}
	return m
}

func (m *metrics) register(reg prometheus.Registerer) error {
	for _, c := range m.collectors {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register admission metrics: %w", err)
		}
	}
	return nil
}
