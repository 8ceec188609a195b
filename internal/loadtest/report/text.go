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
		if line := sellOutLine(d); line != "" {
			fmt.Fprintln(&b, line)
		}
		if d.Fairness != nil {
			fmt.Fprintln(&b, d.Fairness)
		}
	}
	if l := r.Line; l != nil {
		fmt.Fprintln(&b, l)
		if l.SentBack > 0 {
			fmt.Fprintf(&b, "WARNING: %d admitted sessions were sent back to the waiting line or refused for it\n", l.SentBack)
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
	if srv := r.Server; srv != nil {
		fmt.Fprintln(&b, serverLine(r))
		if srv.ScrapeErrors > 0 {
			fmt.Fprintf(&b, "WARNING: %d scrapes failed, the last: %s\n", srv.ScrapeErrors, srv.LastError)
		}
	}
	verdicts := func(title string, lines []fmt.Stringer) {
		if len(lines) == 0 {
			return
		}
		fmt.Fprintln(&b, title)
		for _, l := range lines {
			fmt.Fprintf(&b, "  %s\n", l)
		}
	}
	verdicts("probes:", stringers(r.Probes))
	verdicts("hooks:", stringers(r.Hooks))
	verdicts("checks:", stringers(r.Checks))
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

func stringers[T fmt.Stringer](xs []T) []fmt.Stringer {
	out := make([]fmt.Stringer, len(xs))
	for i, x := range xs {
		out[i] = x
	}
	return out
}

// sellOutLine says how fast a drop sold out, from its start (or its
// first admission when the run did not create the drop).
func sellOutLine(d *loadtest.DropResult) string {
	if d.Bought == 0 {
		return ""
	}
	from := "the drop's start"
	if d.StartS == 0 {
		from = "the first admission"
	}
	s := fmt.Sprintf("last sale %s after %s", secsString(d.SellOutS()), from)
	if d.FirstSoldOutS > 0 {
		s = fmt.Sprintf("sold out: %s; first buyer told \"sold out\" %s into the run", s, secsString(d.FirstSoldOutS))
	} else {
		s = "not sold out: " + s
	}
	return s
}

func secsString(s float64) string {
	return (time.Duration(s * float64(time.Second))).Round(10 * time.Millisecond).String()
}

// serverLine sums up what the server's own metrics said.
func serverLine(r *loadtest.Result) string {
	srv := r.Server
	var parts []string
	span := max(r.Duration, r.Elapsed)
	cpu := fmt.Sprintf("CPU %.1f s", srv.CPUSeconds)
	if span > 0 {
		cpu += fmt.Sprintf(" (%.2f cores on average)", srv.CPUSeconds/span)
	}
	parts = append(parts, cpu)
	if srv.PageCache >= 0 {
		parts = append(parts, fmt.Sprintf("page cache hit ratio %s", ratioString(srv.PageCache)))
	}
	if srv.ObjectCache >= 0 {
		parts = append(parts, fmt.Sprintf("object cache hit ratio %s", ratioString(srv.ObjectCache)))
	}
	if len(srv.Shed) == 0 {
		parts = append(parts, "nothing shed")
	} else {
		var shed []string
		for _, class := range []string{"critical", "high", "browse", "background"} {
			if n := srv.Shed[class]; n > 0 {
				shed = append(shed, fmt.Sprintf("%s %.0f", class, n))
			}
		}
		parts = append(parts, "shed "+strings.Join(shed, ", "))
	}
	peak := 0.0
	for _, p := range srv.Timeline {
		peak = max(peak, p.Line)
	}
	if peak > 0 {
		parts = append(parts, fmt.Sprintf("longest line %.0f", peak))
	}
	n := len(srv.Targets)
	what := "1 target"
	if n != 1 {
		what = fmt.Sprintf("%d targets", n)
	}
	return fmt.Sprintf("server (%s): %s", what, strings.Join(parts, "; "))
}

func ratioString(v float64) string { return strconv.FormatFloat(100*v, 'f', 1, 64) + "%" }
