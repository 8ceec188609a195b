package pgstore

import (
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// poolCollector reports the primary's pgx pool under the go_sql_* names
// the SQLite store's database/sql pools use, db_name "primary", so one
// dashboard shows either store's pools.
type poolCollector struct {
	pool                                       *pgxpool.Pool
	maxOpen, open, inUse, idle, waits, waitDur *prometheus.Desc
}

func newPoolCollector(p *pgxpool.Pool) *poolCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, nil, prometheus.Labels{"db_name": "primary"})
	}
	return &poolCollector{pool: p,
		maxOpen: d("go_sql_max_open_connections", "Maximum number of open connections to the database."),
		open:    d("go_sql_open_connections", "The number of established connections both in use and idle."),
		inUse:   d("go_sql_in_use_connections", "The number of connections currently in use."),
		idle:    d("go_sql_idle_connections", "The number of idle connections."),
		waits:   d("go_sql_wait_count_total", "The total number of connections waited for."),
		waitDur: d("go_sql_wait_duration_seconds_total", "The total time blocked waiting for a new connection."),
	}
}

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.maxOpen, c.open, c.inUse, c.idle, c.waits, c.waitDur} {
		ch <- d
	}
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.pool.Stat()
	ch <- prometheus.MustNewConstMetric(c.maxOpen, prometheus.GaugeValue, float64(st.MaxConns()))
	ch <- prometheus.MustNewConstMetric(c.open, prometheus.GaugeValue, float64(st.TotalConns()))
	ch <- prometheus.MustNewConstMetric(c.inUse, prometheus.GaugeValue, float64(st.AcquiredConns()))
	ch <- prometheus.MustNewConstMetric(c.idle, prometheus.GaugeValue, float64(st.IdleConns()))
	ch <- prometheus.MustNewConstMetric(c.waits, prometheus.CounterValue, float64(st.EmptyAcquireCount()))
	ch <- prometheus.MustNewConstMetric(c.waitDur, prometheus.CounterValue, st.EmptyAcquireWaitTime().Seconds())
}
