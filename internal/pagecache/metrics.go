package pagecache

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Register adds the cache's metrics to reg. They read the cache's own atomic
// counters at scrape time, so the request path never touches Prometheus.
func (c *Cache) Register(reg prometheus.Registerer) error {
	counter := func(name, help string, labels prometheus.Labels, f func() uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: name, Help: help, ConstLabels: labels,
		}, func() float64 { return float64(f()) })
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	const reqName = "surge_page_cache_requests_total"
	const reqHelp = "Page cache lookups by result: hit, miss, stale or bypass."
	collectors := []prometheus.Collector{
		counter(reqName, reqHelp, prometheus.Labels{"result": "hit"}, func() uint64 { return c.Stats().Hits }),
		counter(reqName, reqHelp, prometheus.Labels{"result": "miss"}, c.misses.Load),
		counter(reqName, reqHelp, prometheus.Labels{"result": "stale"}, func() uint64 { return c.Stats().Stale }),
		counter(reqName, reqHelp, prometheus.Labels{"result": "bypass"}, c.bypassed.Load),
		counter("surge_page_cache_fast_hits_total", "Hits answered by the fast path before net/http (counted in the hit requests too).", nil, c.fastHits.Load),
		counter("surge_page_cache_evictions_total", "Entries evicted to stay within the byte bound.", nil, c.evictions.Load),
		counter("surge_page_cache_purged_entries_total", "Entries removed by tag purges and purge-all.", nil, c.purged.Load),
		counter("surge_page_cache_fills_total", "Renders of the wrapped handler started by the cache.", nil, c.fills.Load),
		gauge("surge_page_cache_entries", "Entries currently stored.", func() float64 { return float64(c.entriesN.Load()) }),
		gauge("surge_page_cache_bytes", "Bytes currently accounted to stored entries.", func() float64 { return float64(c.bytesN.Load()) }),
	}
	var errs []error
	for _, col := range collectors {
		if err := reg.Register(col); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
