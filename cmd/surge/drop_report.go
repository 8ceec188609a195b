package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/surge-commerce/surge/internal/dropreport"
	"github.com/surge-commerce/surge/internal/storefront"
)

// newDropReportCmd is `surge drop report`: what happened at a drop, as a
// table, JSON or CSV, from the shop's admin API.
func newDropReportCmd(c *adminClient, asJSON *bool, complete cobra.CompletionFunc, stdout io.Writer) *cobra.Command {
	var asCSV bool
	cmd := &cobra.Command{
		Use:   "report ID|SLUG",
		Short: "What happened at a drop: the funnel, time in line, time to sell out, orders per minute, bot pressure, limit hits",
		Long: `Report on a drop from the events the shop recorded while it ran: the funnel
(notified, joined before and after the start, admitted, no-shows, added, bought,
told sold out), time in line (p50, p99), time to sell out, orders per minute,
refused joins by reason (rate limit, proof of work, bad token) and the buyers
the per-customer limit held back. "Notified" says "not tracked" when nothing
counts the reminder mails. The same report is at /admin/drops/ID/report.`,
		Example: `  surge drop report court-classic
  surge drop report court-classic --csv > court-classic.csv`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: complete,
		RunE: func(cmd *cobra.Command, args []string) error {
			if *asJSON && asCSV {
				return fmt.Errorf("--json and --csv: choose one")
			}
			id, err := c.dropID(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			var rep dropreport.Report
			if err := c.call(cmd.Context(), "GET", "/api/v1/admin/drops/"+id+"/report", nil, &rep); err != nil {
				return err
			}
			switch {
			case *asJSON:
				enc := json.NewEncoder(stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			case asCSV:
				return writeReportCSV(stdout, rep)
			}
			return writeReportTable(stdout, rep)
		},
	}
	cmd.Flags().BoolVar(&asCSV, "csv", false, "print CSV (metric,value) instead of a table")
	return cmd
}

func writeReportTable(w io.Writer, rep dropreport.Report) error {
	fmt.Fprintf(w, "%s (%s), started %s, %d units, limit %d per customer\n", rep.Drop.Name, rep.Drop.Slug,
		rep.Drop.StartsAt.UTC().Format("Mon 2 Jan 2006 15:04 MST"), rep.Drop.Allocated, rep.Drop.Limit)
	funnel, timing, refused, limit := storefront.ReportRows(rep)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, part := range []struct {
		title string
		rows  [][3]string
	}{{"FUNNEL", funnel}, {"TIMING", timing}, {"REFUSED AT THE LINE", refused}, {"PER-CUSTOMER LIMIT", limit}} {
		fmt.Fprintf(tw, "\n%s\t\t\t\n", part.title)
		for _, r := range part.rows {
			fmt.Fprintf(tw, "%s\t%s\t  %s\t\n", r[0], r[1], r[2])
		}
	}
	return tw.Flush()
}

// writeReportCSV writes one metric a line, values as numbers (seconds
// for durations), empty where there is none, "not tracked" for the
// reminders when nothing counts them.
func writeReportCSV(w io.Writer, rep dropreport.Report) error {
	n := func(v int64) string { return strconv.FormatInt(v, 10) }
	secs := func(s *dropreport.Seconds) string {
		if s == nil {
			return ""
		}
		return strconv.FormatFloat(s.Duration().Seconds(), 'f', 3, 64)
	}
	f := rep.Funnel
	notified := "not tracked"
	if f.Notified != nil {
		notified = n(*f.Notified)
	}
	rows := [][]string{
		{"metric", "value"},
		{"drop_id", rep.Drop.ID}, {"drop_slug", rep.Drop.Slug}, {"allocated", n(rep.Drop.Allocated)},
		{"notified", notified},
		{"joined_before_start", n(f.JoinedBeforeStart)}, {"joined_after_start", n(f.JoinedAfterStart)},
		{"admitted", n(f.Admitted)}, {"no_shows", n(f.NoShows)}, {"added", n(f.Added)}, {"bought", n(f.Bought)},
		{"told_sold_out", n(f.ToldSoldOut)}, {"orders", n(rep.Orders)}, {"units_sold", n(rep.UnitsSold)},
		{"time_in_line_p50_seconds", secs(rep.TimeInLine.P50)}, {"time_in_line_p99_seconds", secs(rep.TimeInLine.P99)},
		{"sold_out_after_seconds", secs(rep.SoldOutAfter)},
		{"orders_per_minute", strconv.FormatFloat(rep.OrdersPerMinute, 'f', 1, 64)}, {"peak_orders_per_minute", n(rep.PeakOrdersPerMinute)},
	}
	for _, r := range rep.Refused {
		rows = append(rows, []string{"refused_" + r.Reason, n(r.Requests)})
	}
	rows = append(rows, []string{"limit_hits", n(rep.LimitHits)}, []string{"limit_requests", n(rep.LimitRequests)}, []string{"lost_events", n(rep.LostEvents)})
	cw := csv.NewWriter(w)
	if err := cw.WriteAll(rows); err != nil {
		return err
	}
	return cw.Error()
}
