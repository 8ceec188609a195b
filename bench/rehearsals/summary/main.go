// Command summary reads a `surge load run --out` result and prints what a
// rehearsal reached as key=value pairs on one line, for
// bench/rehearsals/run:
//
//	summary [-phase NAME] result.json
//
// requests, rps (answered or not), server_errors (5xx or no answer, % of
// requests), p99_ms; failed (the verdicts that failed: SLOs by name,
// thresholds by expression, probes, checks; "none"); with -phase, the
// requests per second in that phase, those answered without a server
// error (good_rps) and the server errors' share there; with server
// metrics, cpu_cores (mean), page_cache_hit, shed by class; with a drop,
// buyers, answered, sold, allocated, sell_out_s and the draw's rho; with
// a mail job, the p99 of each phase (p99_NAME_ms), the subscribers, the
// mails the ledger records sent and failed, those the workers counted
// (mails_counted) and when the job ran (job_s=START-END); with
// a waiting line followed, line_sessions (sent to it), line_waited,
// line_admitted, line_gave_up, line_unfinished, line_wait_p50_s,
// line_wait_p99_s, line_wait_max_s, line_sent_back and line_finished.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/surge-commerce/surge/internal/loadtest"
)

func main() {
	phase := flag.String("phase", "", "also sum up this phase of the run")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: summary [-phase NAME] result.json")
		os.Exit(2)
	}
	b, err := os.ReadFile(flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var r loadtest.Result
	if err := json.Unmarshal(b, &r); err != nil {
		fmt.Fprintln(os.Stderr, "summary:", err)
		os.Exit(1)
	}
	fmt.Println(strings.Join(summarize(&r, *phase), " "))
}

func f(v float64, digits int) string { return strconv.FormatFloat(v, 'f', digits, 64) }

func summarize(r *loadtest.Result, phase string) []string {
	var out []string
	add := func(k, v string) { out = append(out, k+"="+v) }
	span := max(r.Duration, r.Elapsed)
	add("requests", strconv.FormatInt(r.Total.Requests, 10))
	add("rps", f(float64(r.Total.Requests)/max(span, 1e-9), 1))
	add("server_errors", f(pct(r.Total.ServerErrors(), r.Total.Requests), 3)+"%")
	add("p99_ms", f(r.Total.Latency.P99, 1))
	var failed []string
	for _, s := range r.SLOs {
		if s.Verdict == loadtest.SLOFail {
			failed = append(failed, s.Name)
		}
	}
	for _, t := range r.Thresholds {
		if !t.Pass {
			failed = append(failed, strings.ReplaceAll(t.Expr, " ", ""))
		}
	}
	for _, p := range r.Probes {
		if p.Failures > 0 || p.Checks == 0 {
			failed = append(failed, "probe:"+p.URL)
		}
	}
	for _, c := range r.Checks {
		if !c.Pass {
			failed = append(failed, "check:"+strings.ReplaceAll(c.Name, " ", "-"))
		}
	}
	if len(failed) == 0 {
		failed = []string{"none"}
	}
	add("failed", strings.Join(failed, ","))
	if phase != "" {
		for _, p := range r.Phases {
			if p.Name != phase {
				continue
			}
			var req, bad int64
			for _, pt := range r.Timeline {
				if pt.T+1e-9 >= p.From && pt.T < p.To-1e-9 {
					req += pt.Requests
					bad += pt.ServerErrors
				}
			}
			d := max(p.To-p.From, 1e-9)
			add(phase+"_rps", f(float64(req)/d, 1))
			add(phase+"_good_rps", f(float64(req-bad)/d, 1))
			add(phase+"_server_errors", f(pct(bad, req), 3)+"%")
		}
	}
	if r.Model == "closed" {
		users := int64(0)
		for _, p := range r.Timeline {
			users = max(users, p.Users)
		}
		add("users", strconv.FormatInt(users, 10))
	}
	if s := r.Server; s != nil {
		add("cpu_cores", f(s.CPUSeconds/max(span, 1e-9), 2))
		if s.PageCache >= 0 {
			add("page_cache_hit", f(100*s.PageCache, 1)+"%")
		}
		for _, c := range []string{"browse", "high", "critical"} {
			if n := s.Shed[c]; n > 0 {
				add("shed_"+c, f(n, 0))
			}
		}
	}
	if d := r.Drop; d != nil {
		add("buyers", strconv.FormatInt(d.Buyers, 10))
		add("answered", strconv.FormatInt(d.FinalAnswers, 10))
		add("sold", strconv.FormatInt(d.Units, 10))
		if d.Allocated > 0 {
			add("allocated", strconv.FormatInt(d.Allocated, 10))
		}
		add("sell_out_s", f(d.SellOutS(), 2))
		if fr := d.Fairness; fr != nil && fr.PreQueue > 0 {
			add("draw_rho", f(fr.DrawRho, 3)+"±"+f(fr.DrawBound, 3))
		}
	}
	if m := r.MailJob; m != nil {
		for _, p := range r.Phases {
			if st, ok := r.PhaseStats(p.Name); ok {
				add("p99_"+strings.ReplaceAll(p.Name, "-", "_")+"_ms", f(st.Latency.P99, 1))
			}
		}
		add("subscribers", strconv.Itoa(m.Subscribers))
		add("mails_sent", strconv.FormatInt(m.Sent, 10))
		add("mails_failed", strconv.FormatInt(m.Failed, 10))
		if m.Counted != nil {
			add("mails_counted", f(m.Counted.Sent, 0))
		}
		add("job_s", f(m.StartS, 1)+"-"+f(m.EndS, 1))
	}
	if l := r.Line; l != nil {
		for _, kv := range []struct {
			k string
			v int64
		}{{"sessions", l.Sessions}, {"waited", l.Waited}, {"admitted", l.Admitted}, {"gave_up", l.GaveUp}, {"unfinished", l.Unfinished}} {
			add("line_"+kv.k, strconv.FormatInt(kv.v, 10))
		}
		add("line_wait_p50_s", f(l.Wait.P50/1000, 1))
		add("line_wait_p99_s", f(l.Wait.P99/1000, 1))
		add("line_wait_max_s", f(l.Wait.Max/1000, 1))
		add("line_sent_back", strconv.FormatInt(l.SentBack, 10))
		add("line_finished", strconv.FormatInt(l.Finished, 10))
	}
	if len(r.Agents) > 0 {
		add("agents", strconv.Itoa(len(r.Agents)))
	}
	return out
}

func pct(n, of int64) float64 {
	if of == 0 {
		return 0
	}
	return 100 * float64(n) / float64(of)
}
