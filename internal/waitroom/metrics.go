package waitroom

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Join results, the values of the result label of
// surge_waitroom_joins_total.
const (
	joinOK = iota
	joinRejoin
	joinPassed
	joinRateLimited
	joinPoWRequired
	joinBadPoW
	joinBadVisitor
	joinSoldOut
	joinClosed
	joinNotOpen
	joinFull
	joinError
	numJoinResults
)

var joinResultNames = [numJoinResults]string{
	joinOK: "ok", joinRejoin: "rejoin", joinPassed: "passed", joinRateLimited: "rate_limited",
	joinPoWRequired: "pow_required", joinBadPoW: "bad_pow", joinBadVisitor: "bad_visitor",
	joinSoldOut: "sold_out", joinClosed: "closed", joinNotOpen: "not_open", joinFull: "full",
	joinError: "error",
}

// joinCounters are one drop's join counters, resolved when it opens so a
// join never looks a label up.
type joinCounters [numJoinResults]prometheus.Counter

func (j *joinCounters) inc(result int) { j[result].Inc() }

// metrics are created with the Room; Register only exposes them. The
// drop label takes the configured drops' IDs, a small set.
type metrics struct {
	room     *Room
	joins    *prometheus.CounterVec
	waiting  *prometheus.Desc
	admitted *prometheus.Desc
	active   *prometheus.Desc
	rate     *prometheus.Desc
	units    *prometheus.Desc
}

func newMetrics(r *Room) *metrics {
	return &metrics{
		room: r,
		joins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "surge_waitroom_joins_total",
			Help: "Attempts to join a drop's waiting room, by drop and result.",
		}, []string{"drop", "result"}),
		waiting: prometheus.NewDesc("surge_waitroom_waiting",
			"Visitors in line (pre-queue included) whose turn has not come, by drop.", []string{"drop"}, nil),
		admitted: prometheus.NewDesc("surge_waitroom_admitted_total",
			"Visitors admitted since the drop's queue was created, by drop.", []string{"drop"}, nil),
		active: prometheus.NewDesc("surge_waitroom_active",
			"Admitted visitors whose slot is not freed yet, by drop.", []string{"drop"}, nil),
		rate: prometheus.NewDesc("surge_waitroom_admit_rate",
			"Admission rate in force, visitors per minute (0 while paused), by drop.", []string{"drop"}, nil),
		units: prometheus.NewDesc("surge_waitroom_units_available",
			"Units of the drop still to be had (not sold, not held by a live reservation), as the room last read them, by drop.", []string{"drop"}, nil),
	}
}

func (m *metrics) joinCounters(drop string) joinCounters {
	var j joinCounters
	for i, name := range joinResultNames {
		j[i] = m.joins.WithLabelValues(drop, name)
	}
	return j
}

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.waiting
	ch <- m.admitted
	ch <- m.active
	ch <- m.rate
	ch <- m.units
}

// Collect implements prometheus.Collector: the counters of every open
// drop, from the cached snapshot (refreshed if stale, so the queue moves
// on a scrape too).
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	drops := *m.room.drops.Load()
	ids := make([]string, 0, len(drops))
	for id := range drops {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	now := m.room.now()
	for _, id := range ids {
		c, err := m.room.counters(ctx, drops[id], now)
		if err != nil {
			continue
		}
		rate := c.Flow.RatePerMinute
		if c.Flow.Paused || c.Closed {
			rate = 0
		}
		ch <- prometheus.MustNewConstMetric(m.waiting, prometheus.GaugeValue, float64(c.Waiting), id)
		ch <- prometheus.MustNewConstMetric(m.admitted, prometheus.CounterValue, float64(c.Admitted), id)
		ch <- prometheus.MustNewConstMetric(m.active, prometheus.GaugeValue, float64(c.Active), id)
		ch <- prometheus.MustNewConstMetric(m.rate, prometheus.GaugeValue, rate, id)
		m.room.soldOut(ctx, drops[id], now) // reads the stock again once its reading is stale
		if s, ok := drops[id].stock.peek(); ok && s.known {
			ch <- prometheus.MustNewConstMetric(m.units, prometheus.GaugeValue, float64(max(s.available, 0)), id)
		}
	}
}

// Register exposes the room's metrics on reg:
// surge_waitroom_joins_total{drop,result}, surge_waitroom_waiting{drop},
// surge_waitroom_admitted_total{drop}, surge_waitroom_active{drop} and
// surge_waitroom_admit_rate{drop}.
func (r *Room) Register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{r.metrics.joins, r.metrics} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register waitroom metrics: %w", err)
		}
	}
	return nil
}
