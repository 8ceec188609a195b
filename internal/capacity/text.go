package capacity

import (
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"time"
)

// Text writes the plan for people: phases, the drop's line, the
// timeline, and what the HPA alone would have done.
func (pl *Plan) Text(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "plan: %s, starting %s\n", pl.Event, pl.Start.Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "profile: %s\n%s; target utilisation %.0f%%\n", pl.ProfileOf, pl.SLONote, 100*pl.TargetUtil)
	fmt.Fprintf(&b, "a session costs %s of CPU (API %s, worker %s, database %s, NATS %s, Redis %s); one API pod (%g CPU) takes %s sessions/s\n\n",
		cpuStr(pl.SessionCPU.Total()), cpuStr(pl.SessionCPU.API), cpuStr(pl.SessionCPU.Worker), cpuStr(pl.SessionCPU.Database),
		cpuStr(pl.SessionCPU.NATS), cpuStr(pl.SessionCPU.Redis), pl.Cluster.APICPU, fmtRate(pl.ReplicaCapacity))
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\tfrom\tsessions/s\trequests/s\tAPI pods\tCPU use\tworkers\tDB vCPU\tDB max_conn\tRedis ops/s\tNATS msg/s\tp99 (worst)\tSLO\t")
	for _, pp := range pl.Phases {
		var reqs float64
		for _, r := range pp.Requests {
			reqs += r
		}
		worst, wc := 0.0, ""
		for c, v := range pp.P99 {
			if v > worst {
				worst, wc = v, c
			}
		}
		p99 := fmt.Sprintf("%s %s", msStr(worst), wc)
		verdict := "holds"
		if pp.Breach {
			verdict = "BREACH"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%.0f%%\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t\n", pp.Name, relStr(pp.From), fmtRate(pp.Sessions), fmtRate(reqs),
			pp.APIReplicas, 100*pp.Utilization, pp.WorkerReplicas, pp.DB.VCPUs, pp.DB.MaxConnections, fmtRate(pp.RedisOps), fmtRate(pp.NATSMsgs), p99, verdict)
	}
	tw.Flush()
	for _, pp := range pl.Phases {
		if pp.Breach {
			fmt.Fprintf(&b, "  %s: %s; admit at most %s sessions/s (standby line) to hold the SLO\n", pp.Name, pp.BreachWhy, fmtRate(pp.AdmitSessions))
		}
	}
	for _, d := range pl.Drops {
		sell := "not within the phase"
		if d.SellOut >= 0 {
			sell = relStr(d.SellOut) + " after the start"
		}
		fmt.Fprintf(&b, "\ndrop in %s: %d buyers for %d units on %d API pods\n", d.Phase, d.Buyers, d.Units, d.APIReplicas)
		fmt.Fprintf(&b, "  waiting room: rate_per_minute %d, max_active %.0f (keeps checkout within %s at %.0f%% CPU)\n",
			d.AdmitPerMinute, d.ActiveCap, pl.SLO.CheckoutP99.D(), 100*pl.TargetUtil)
		fmt.Fprintf(&b, "  sold out %s; %s admitted, %s told sold out in line; time in line: median %s, longest %s; at most %s waiting\n",
			sell, fmtRate(d.Admitted), fmtRate(d.ToldSoldOut), relStr(d.WaitMedian), relStr(d.WaitMax), fmtRate(d.PeakWaiting))
	}
	b.WriteString("\ntimeline:\n")
	for _, m := range pl.Timeline {
		fmt.Fprintf(&b, "  %s  (%s)  %s\n", m.At.Format("Jan 2 15:04"), relSigned(m.Rel), m.What)
	}
	b.WriteString("\nautoscaling:\n")
	for _, r := range []SimResult{pl.Reactive, pl.PreScaled} {
		fmt.Fprintf(&b, "  %-24s %s under capacity, %s requests shed without a line (a standby line would hold %s sessions, longest wait %s); peak %d pods\n",
			r.Strategy+":", relStr(r.UnderCapacity), fmtRate(r.Shed), fmtRate(r.Queued), relStr(r.LongestWait), r.PeakPods)
		if pl.Cluster.Fixed {
			break
		}
	}
	for _, w := range pl.Warnings {
		fmt.Fprintf(&b, "warning: %s\n", w)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func cpuStr(s float64) string {
	switch {
	case s >= 1:
		return fmt.Sprintf("%.2fs", s)
	case s >= 1e-3:
		return fmt.Sprintf("%.2fms", s*1e3)
	}
	return fmt.Sprintf("%.0fµs", s*1e6)
}

func msStr(ms float64) string {
	if math.IsInf(ms, 1) {
		return "past knee"
	}
	if ms >= 1000 {
		return fmt.Sprintf("%.2fs", ms/1000)
	}
	return fmt.Sprintf("%.0fms", ms)
}

func relStr(s float64) string {
	return (time.Duration(s) * time.Second).String()
}

func relSigned(s float64) string {
	if s < 0 {
		return "T-" + relStr(-s)
	}
	return "T+" + relStr(s)
}
