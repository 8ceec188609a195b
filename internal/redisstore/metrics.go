package redisstore

import (
	"github.com/prometheus/client_golang/prometheus"
)

var (
	redisConnsDesc = prometheus.NewDesc("surge_redis_pool_connections",
		"Connections in the Redis pool, by state: idle or in_use.", []string{"state"}, nil)
	redisWaitsDesc = prometheus.NewDesc("surge_redis_pool_waits_total",
		"Commands that waited for a free Redis connection.", nil, nil)
	redisWaitDesc = prometheus.NewDesc("surge_redis_pool_wait_seconds_total",
		"Time commands spent waiting for a free Redis connection.", nil, nil)
	redisTimeoutsDesc = prometheus.NewDesc("surge_redis_pool_timeouts_total",
		"Commands that gave up waiting for a free Redis connection.", nil, nil)
)

// poolCollector reports the client's connection pool at scrape time.
type poolCollector struct{ c *Client }

func (p poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{redisConnsDesc, redisWaitsDesc, redisWaitDesc, redisTimeoutsDesc} {
		ch <- d
	}
}

func (p poolCollector) Collect(ch chan<- prometheus.Metric) {
	st := p.c.rdb.PoolStats()
	ch <- prometheus.MustNewConstMetric(redisConnsDesc, prometheus.GaugeValue, float64(st.IdleConns), "idle")
	ch <- prometheus.MustNewConstMetric(redisConnsDesc, prometheus.GaugeValue, float64(st.TotalConns-min(st.IdleConns, st.TotalConns)), "in_use")
	ch <- prometheus.MustNewConstMetric(redisWaitsDesc, prometheus.CounterValue, float64(st.WaitCount))
	ch <- prometheus.MustNewConstMetric(redisWaitDesc, prometheus.CounterValue, float64(st.WaitDurationNs)/1e9)
	ch <- prometheus.MustNewConstMetric(redisTimeoutsDesc, prometheus.CounterValue, float64(st.Timeouts))
}

// Register exposes the connection pool's statistics on reg:
// surge_redis_pool_connections{state}, surge_redis_pool_waits_total,
// surge_redis_pool_wait_seconds_total and surge_redis_pool_timeouts_total.
func (c *Client) Register(reg prometheus.Registerer) error {
	return reg.Register(poolCollector{c})
}
