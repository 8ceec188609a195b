package natsbus

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	published    *prometheus.CounterVec
	duplicates   *prometheus.CounterVec
	processed    *prometheus.CounterVec
	deadLettered *prometheus.CounterVec
}

func newMetrics() metrics {
	return metrics{
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "surge_events_published_total",
			Help: "Events stored in the event stream, by subject (re-publishes de-duplicated by message id are not counted).",
		}, []string{"subject"}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "surge_events_duplicates_total",
			Help: "Publishes the event stream discarded as duplicates of an earlier message id, by subject.",
		}, []string{"subject"}),
		processed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "surge_events_processed_total",
			Help: "Handler outcomes by consumer: ok (acknowledged), retry (redelivery scheduled), dead (dead-lettered).",
		}, []string{"consumer", "result"}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "surge_events_dead_lettered_total",
			Help: "Messages parked in the dead-letter stream, by consumer.",
		}, []string{"consumer"}),
	}
}

// pendingTTL is how long a consumer's backlog reading is reused, so that
// frequent scrapes do not each cost a round trip per consumer.
const pendingTTL = 2 * time.Second

var pendingDesc = prometheus.NewDesc("surge_events_pending",
	"Messages a consumer has not finished: not yet delivered plus delivered and awaiting acknowledgement.",
	[]string{"consumer"}, nil)

// pendingCollector reports surge_events_pending for the consumers running
// in this process.
type pendingCollector struct {
	bus *Bus

	mu    sync.Mutex
	cache map[string]pendingReading
}

type pendingReading struct {
	value float64
	at    time.Time
}

func (p *pendingCollector) Describe(ch chan<- *prometheus.Desc) { ch <- pendingDesc }

func (p *pendingCollector) Collect(ch chan<- prometheus.Metric) {
	p.bus.mu.Lock()
	names := make([]string, 0, len(p.bus.consumers))
	for name := range p.bus.consumers {
		names = append(names, name)
	}
	p.bus.mu.Unlock()

	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cache == nil {
		p.cache = make(map[string]pendingReading)
	}
	now := time.Now()
	for _, name := range names {
		r, ok := p.cache[name]
		if !ok || now.Sub(r.at) > pendingTTL {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			n, err := p.bus.Pending(ctx, name)
			cancel()
			if err != nil {
				p.bus.log.Debug("read consumer backlog", "consumer", name, "err", err)
				if !ok {
					continue // nothing to report rather than a made-up zero
				}
			} else {
				r = pendingReading{value: float64(n), at: now}
				p.cache[name] = r
			}
		}
		ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, r.value, name)
	}
}

// Pending returns how many messages the named durable consumer has not
// finished: those not yet delivered plus those awaiting acknowledgement
// (including ones waiting for a delayed redelivery).
func (b *Bus) Pending(ctx context.Context, consumer string) (int, error) {
	c, err := b.js.Consumer(ctx, b.cfg.Stream, consumer)
	if err != nil {
		return 0, fmt.Errorf("consumer %s: %w", consumer, err)
	}
	info := c.CachedInfo() // fetched just now by Consumer
	return int(info.NumPending) + info.NumAckPending, nil
}
