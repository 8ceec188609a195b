package waitroom_test

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestUnitsAvailableMetric: the drop dashboard's units left come from the
// stock the room reads, refreshed by a scrape once stale.
func TestUnitsAvailableMetric(t *testing.T) {
	e := newEnv(t, nil)
	e.open(t, spec("d"))
	e.clock.Set(start)
	reg := prometheus.NewRegistry()
	if err := e.room.Register(reg); err != nil {
		t.Fatal(err)
	}
	want := func(n string) {
		t.Helper()
		exp := "# HELP surge_waitroom_units_available Units of the drop still to be had (not sold, not held by a live reservation), as the room last read them, by drop.\n" +
			"# TYPE surge_waitroom_units_available gauge\nsurge_waitroom_units_available{drop=\"d\"} " + n + "\n"
		if err := testutil.GatherAndCompare(reg, strings.NewReader(exp), "surge_waitroom_units_available"); err != nil {
			t.Error(err)
		}
	}
	want("1000")
	e.stock.Store(-3) // oversubscribed holds read as none left
	e.clock.Add(time.Minute)
	want("0")
}
