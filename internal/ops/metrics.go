package ops

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
)

// readyStates are the values of surge_ready's state label, as /readyz
// reports them.
var readyStates = [...]string{"ready", "degraded", "not_ready"}

var readyDesc = prometheus.NewDesc("surge_ready",
	"Readiness as /readyz answers it, 1 for the state it is in: ready, degraded (serving with an optional dependency down) or not_ready (starting, draining, or a required dependency down).",
	[]string{"state"}, nil)

// readiness reports surge_ready from the same checks /readyz runs, taken at
// scrape time, so an alert sees what a load balancer's probe would see
// even where no probe is configured.
type readiness struct{ h *Health }

func (r readiness) Describe(ch chan<- *prometheus.Desc) { ch <- readyDesc }

func (r readiness) Collect(ch chan<- prometheus.Metric) {
	ok, _, degraded := r.h.Ready(context.Background())
	state := "ready"
	switch {
	case !ok:
		state = "not_ready"
	case len(degraded) > 0:
		state = "degraded"
	}
	for _, s := range readyStates {
		v := 0.0
		if s == state {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(readyDesc, prometheus.GaugeValue, v, s)
	}
}

// Register exposes the readiness gauge surge_ready{state} on reg.
func (h *Health) Register(reg prometheus.Registerer) error {
	return reg.Register(readiness{h})
}
