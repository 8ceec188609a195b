package sqlitestore

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Register exposes the connection pools' statistics on reg as the
// go_sql_* metrics of client_golang's DB stats collector, db_name
// "writer" (the one writer connection) and "reader": a writer pool whose
// go_sql_wait_duration_seconds_total climbs is the queue every write of
// the shop stands in.
func (s *Store) Register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{collectors.NewDBStatsCollector(s.writer, "writer"), collectors.NewDBStatsCollector(s.reader, "reader")} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register sqlite pool metrics: %w", err)
		}
	}
	return nil
}
