// Package report presents load test results to people: the live progress
// line, the summary table printed at the end, and the self-contained HTML
// report.
package report

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/surge-commerce/surge/internal/loadtest"
)

// Progress returns a callback that shows a run's progress on w. On a
// terminal it keeps rewriting one line; elsewhere (CI logs, files) it
// prints a plain line per call, so callers should call it less often.
func Progress(w io.Writer, terminal bool) func(loadtest.Progress) {
	var mu sync.Mutex
	return func(p loadtest.Progress) {
		mu.Lock()
		defer mu.Unlock()
		line := progressLine(p)
		switch {
		case terminal && p.Done:
			fmt.Fprintf(w, "\r\033[K%s\n", line)
		case terminal:
			fmt.Fprintf(w, "\r\033[K%s", line)
		default:
			fmt.Fprintln(w, line)
		}
	}
}

func progressLine(p loadtest.Progress) string {
	errPct := 0.0
	if p.Requests > 0 {
		errPct = 100 * float64(p.Errors) / float64(p.Requests)
	}
	rateLabel := "req/s"
	if p.Done {
		rateLabel = "req/s avg"
	}
	s := fmt.Sprintf("%5s/%s  %8.0f %s  in-flight %-5d users %-6d p50 %-7s p99 %-7s errors %.2f%% (%d)",
		round(p.Elapsed), round(p.Duration), p.Rate, rateLabel, p.InFlight, p.Users,
		fmtMS(p.Recent.P50), fmtMS(p.Recent.P99), errPct, p.Errors)
	if p.CapHits > 0 {
		s += fmt.Sprintf("  MAX IN-FLIGHT HIT x%d", p.CapHits)
	}
	return s
}

func round(d time.Duration) string {
	if d < time.Minute {
		return strconv.Itoa(int(d.Seconds())) + "s"
	}
	return d.Truncate(time.Second).String()
}

// fmtMS shows milliseconds with sensible precision.
func fmtMS(ms float64) string {
	switch {
	case ms <= 0:
		return "-"
	case ms < 1:
		return strconv.FormatFloat(ms*1000, 'f', 0, 64) + "µs"
	case ms < 10:
		return strconv.FormatFloat(ms, 'f', 2, 64) + "ms"
	case ms < 1000:
		return strconv.FormatFloat(ms, 'f', 0, 64) + "ms"
	default:
		return strconv.FormatFloat(ms/1000, 'f', 2, 64) + "s"
	}
}

func pct(n, of int64) string {
	if of == 0 {
		return "-"
	}
	return strconv.FormatFloat(100*float64(n)/float64(of), 'f', 2, 64) + "%"
}

// Summary writes the end-of-run table: one row per step and the total,
// then what else the run saw, then the thresholds.
func Summary(w io.Writer, r *loadtest.Result) error {
	var b strings.Builder
	fmt.Fprintf(&b, "\n%s model, %s, against %s\n", r.Model, r.Profile, r.Target)
	dur := max(r.Duration, r.Elapsed)
	tw := tabwriter.NewWriter(&b, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "step\trequests\terrors\terror %\treq/s\tp50\tp90\tp99\tp99.9\tmax\t")
	row := func(s *loadtest.Stats) {
		l := s.Latency
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%.1f\t%s\t%s\t%s\t%s\t%s\t\n", s.Name, s.Requests, s.Errors, pct(s.Errors, s.Requests),
			float64(s.Requests)/dur, fmtMS(l.P50), fmtMS(l.P90), fmtMS(l.P99), fmtMS(l.P999), fmtMS(l.Max))
	}
	if len(r.Steps) > 1 {
		for _, s := range r.Steps {
			row(s)
		}
	}
	row(r.Total)
	tw.Flush()
	fmt.Fprintln(&b, "latency is measured from each request's intended send time (no coordinated omission)")
	fmt.Fprintf(&b, "service time (from the actual send) p99 %s; generator send lag p99 %s, max %s\n",
		fmtMS(r.Service.P99), fmtMS(r.SendLag.P99), fmtMS(r.SendLag.Max))
	fmt.Fprintf(&b, "sessions started %d, completed %d; in-flight peak %d (cap %d)", r.Sessions, r.Completed, r.PeakFlight, r.MaxInFlight)
	if r.Planned > 0 {
		fmt.Fprintf(&b, "; %d arrivals planned", r.Planned)
	}
	fmt.Fprintln(&b)
	if d := r.Drop; d != nil {
		fmt.Fprintf(&b, "drop: %d buyers, %d final answers: bought %d (%d units), sold out %d, closed %d, expired %d, over limit %d; errors %d, unfinished %d\n",
			d.Buyers, d.FinalAnswers, d.Bought, d.Units, d.SoldOut, d.Closed, d.Expired, d.OverLimit, d.Errors, d.Unfinished)
		if n := d.Unanswered(); n > 0 {
			fmt.Fprintf(&b, "WARNING: %d buyers got no final answer (%d stopped by errors, %d still in line at the end; raise --grace if the line outlasted the run)\n",
				n, d.Errors, d.Unfinished)
		} else {
			fmt.Fprintln(&b, "every buyer got a final answer")
		}
	}
	if r.Resent > 0 {
		fmt.Fprintf(&b, "resent %d requests whose kept-alive connection the target had closed before answering (as browsers do)\n", r.Resent)
	}
	if r.CapHits > 0 || r.Dropped > 0 {
		fmt.Fprintf(&b, "WARNING: the max in-flight cap was reached %d times (%d arrivals never sent); raise --max-in-flight or the target is overloaded\n", r.CapHits, r.Dropped)
	}
	if len(r.Total.Statuses) > 0 {
		var parts []string
		for _, k := range loadtest.SortedKeys(r.Total.Statuses) {
			parts = append(parts, fmt.Sprintf("%s x%d", k, r.Total.Statuses[k]))
		}
		fmt.Fprintf(&b, "statuses: %s\n", strings.Join(parts, ", "))
	}
	if len(r.Total.Failures) > 0 {
		var parts []string
		for _, k := range loadtest.SortedKeys(r.Total.Failures) {
			parts = append(parts, fmt.Sprintf("%s x%d", k, r.Total.Failures[k]))
		}
		fmt.Fprintf(&b, "failures: %s\n", strings.Join(parts, ", "))
	}
	for _, a := range r.Agents {
		if a.Error != "" {
			fmt.Fprintf(&b, "agent %s: FAILED: %s\n", a.Addr, a.Error)
		} else {
			fmt.Fprintf(&b, "agent %s: %d requests, %d errors\n", a.Addr, a.Requests, a.Errors)
		}
	}
	if len(r.Thresholds) > 0 {
		fmt.Fprintln(&b, "thresholds:")
		for _, t := range r.Thresholds {
			fmt.Fprintf(&b, "  %s\n", t)
		}
	}
	if len(r.SLOs) > 0 {
		fmt.Fprintln(&b, "slos:")
		for _, s := range r.SLOs {
			fmt.Fprintf(&b, "  %s\n", s)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
