package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	promodel "github.com/prometheus/common/model"
)

// MetricsPressure learns whether the shop is under pressure from the
// metrics its API replicas already publish on their operations listener
// (/metrics, never shed, so it answers under load): a replica is under
// pressure when its admission control shed requests since the last look
// (surge_admission_shed_total grew), has requests queued for a
// concurrency slot (surge_admission_queued), or its CPU guard is turning
// browse requests away (surge_admission_cpu_share below 1). Any replica
// under pressure holds the mail off. The worker needs no new endpoint and
// no connection to the API's database or Redis; a replica that does not
// answer counts as not under pressure (the shop may be down for other
// reasons, and mail must not stop for a replica that is gone), and is
// logged.
type MetricsPressure struct {
	// URLs are the API replicas' metrics URLs
	// (http://api-1:9090/metrics).
	URLs []string
	// Every is the least time between looks (default 1s); answers in
	// between are the last look's.
	Every  time.Duration
	Client *http.Client
	Log    *slog.Logger

	mu      sync.Mutex
	checked time.Time
	last    bool
	shed    map[string]float64 // per URL, the shed counter last seen
}

// Pressured reports whether any replica is under pressure.
func (p *MetricsPressure) Pressured(ctx context.Context) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	every := p.Every
	if every <= 0 {
		every = time.Second
	}
	if time.Since(p.checked) < every {
		return p.last
	}
	if p.shed == nil {
		p.shed = map[string]float64{}
	}
	p.last = false
	for _, u := range p.URLs {
		s, err := p.scrape(ctx, u)
		if err != nil {
			if p.Log != nil {
				p.Log.Debug("mail jobs: pressure signal unreadable", "url", u, "err", err)
			}
			continue
		}
		prev, seen := p.shed[u]
		p.shed[u] = s.shed
		if (seen && s.shed > prev) || s.queued > 0 || s.cpuShare < 1 {
			p.last = true
		}
	}
	p.checked = time.Now()
	return p.last
}

// signal is what one scrape found.
type signal struct {
	shed, queued, cpuShare float64
}

func (p *MetricsPressure) scrape(ctx context.Context, url string) (signal, error) {
	client := p.Client
	if client == nil {
		client = &http.Client{Timeout: 2 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return signal{}, err
	}
	// The text format: what expfmt parses.
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	resp, err := client.Do(req)
	if err != nil {
		return signal{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return signal{}, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return parseSignal(resp.Body)
}

// parseSignal reads the admission metrics from a text exposition.
func parseSignal(r interface{ Read([]byte) (int, error) }) (signal, error) {
	parser := expfmt.NewTextParser(promodel.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(r)
	if err != nil {
		return signal{}, fmt.Errorf("metrics: %w", err)
	}
	s := signal{cpuShare: 1}
	sum := func(name string) (float64, bool) {
		f, ok := fams[name]
		if !ok {
			return 0, false
		}
		var total float64
		for _, m := range f.GetMetric() {
			total += value(m)
		}
		return total, true
	}
	s.shed, _ = sum("surge_admission_shed_total")
	s.queued, _ = sum("surge_admission_queued")
	if v, ok := sum("surge_admission_cpu_share"); ok {
		s.cpuShare = v
	}
	return s, nil
}

func value(m *dto.Metric) float64 {
	switch {
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	case m.GetUntyped() != nil:
		return m.GetUntyped().GetValue()
	}
	return 0
}
