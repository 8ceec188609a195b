package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/surge-commerce/surge/internal/loadtest"
	"github.com/surge-commerce/surge/internal/loadtest/report"
)

func newLoadCmd(getenv func(string) string, stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "load",
		Short: "Spike load tester: open-model arrival profiles, shop journeys, thresholds, HTML report",
		Long: `surge load rehearses a shop's worst day against any HTTP site.

  surge load run --target http://127.0.0.1:8080 --journey browse --spike base=100,x=15,at=30s,hold=60s
  surge load run --scenario shop.yaml --rate 200 --duration 1m --threshold 'p99<300ms'
  surge load agent --listen 10.0.0.5:7070      (then: surge load run --agents 10.0.0.5:7070,...)

See docs/loadtest.md.`,
	}
	cmd.AddCommand(newLoadRunCmd(getenv, stdout, stderr), newLoadAgentCmd(getenv, stdout, stderr))
	return cmd
}

// loadRunConfig is everything `surge load run` can be told.
type loadRunConfig struct {
	Target      string
	Scenario    string
	Journey     string
	Mix         string
	Rate        string
	Stages      string
	Spike       string
	Arrivals    string
	VUs         int
	Think       string
	Duration    time.Duration
	MaxInFlight int
	Connections int
	Timeout     time.Duration
	Grace       time.Duration
	Thresholds  []string
	SLOFile     string
	Out         string
	Report      string
	Agents      []string
	AgentToken  string
	Quiet       bool

	Drop         string // the drop journey's drop ID
	DropSKU      string
	DropQuantity int
	SourceIPs    string
}

// usesDrop reports whether the journeys include the drop buyer.
func (c loadRunConfig) usesDrop() bool {
	for _, part := range strings.Split(c.Journey+","+c.Mix, ",") {
		name, _, _ := strings.Cut(part, "=")
		if strings.TrimSpace(name) == "drop" {
			return true
		}
	}
	return false
}

// lookupDropSKU fills in the SKU of the drop journey from the drop itself
// when --drop-sku is left out.
func (c *loadRunConfig) lookupDropSKU(ctx context.Context) error {
	if !c.usesDrop() || c.Drop == "" || c.DropSKU != "" || c.Target == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	sku, err := loadtest.FetchDropSKU(ctx, &http.Client{}, c.Target, c.Drop)
	if err != nil {
		return fmt.Errorf("--drop: %w", err)
	}
	c.DropSKU = sku
	return nil
}

// job validates the settings and turns them into a loadtest.Job, with the
// thresholds of the command line and of the scenario file.
func (c loadRunConfig) job() (loadtest.Job, []loadtest.Threshold, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	j := loadtest.Job{Target: c.Target, Duration: c.Duration, MaxInFlight: c.MaxInFlight, Connections: c.Connections,
		Timeout: c.Timeout, Grace: c.Grace, VUs: c.VUs,
		Drop: loadtest.DropOptions{ID: c.Drop, SKU: c.DropSKU, Quantity: c.DropQuantity}}
	if (c.Drop != "" || c.DropSKU != "") && !c.usesDrop() {
		bad("--drop and --drop-sku: only for the drop journey (--journey drop)")
	}
	if c.DropQuantity < 1 {
		bad("--drop-quantity: must be at least 1")
	}
	if c.SourceIPs != "" {
		addrs, err := loadtest.ParseSourceIPs(c.SourceIPs)
		switch {
		case err != nil:
			bad("--source-ips: %w", err)
		case len(c.Agents) > 0:
			bad("--source-ips: addresses of this machine; not with --agents")
		case c.Connections > 0:
			bad("--source-ips and --connections: pick one")
		}
		for _, a := range addrs {
			j.SourceIPs = append(j.SourceIPs, a.String())
		}
	}

	switch {
	case c.Scenario != "" && (c.Journey != "" || c.Mix != ""):
		bad("--scenario and --journey/--mix: pick one")
	case c.Journey != "" && c.Mix != "":
		bad("--journey and --mix: pick one (a mix of one journey is --journey)")
	case c.Scenario != "":
		src, err := os.ReadFile(c.Scenario)
		if err != nil {
			bad("--scenario: %w", err)
			break
		}
		j.Scenario, j.ScenarioName = src, filepath.Base(c.Scenario)
	case c.Journey != "":
		j.Mix = c.Journey
		if strings.ContainsAny(c.Journey, ",=") {
			bad("--journey %q: one journey name; use --mix for several", c.Journey)
		}
	default:
		j.Mix = c.Mix // empty: the single GET of --target
	}
	think, err := loadtest.ParseThink(c.Think)
	if err != nil {
		bad("--think: %w", err)
	}
	j.Think = think
	if c.Think != "" && j.Scenario == nil {
		j.StepThink = &think // built-in journeys pause --think between steps
	}

	profiles := 0
	for _, p := range []string{c.Rate, c.Stages, c.Spike, c.Arrivals} {
		if p != "" {
			profiles++
		}
	}
	if c.VUs > 0 {
		profiles++
	}
	if profiles != 1 {
		bad("want exactly one load profile: --rate, --stages, --spike, --arrivals or --vus")
	}
	var plan loadtest.Plan
	switch {
	case c.Rate != "":
		r, err := loadtest.ParseRate(c.Rate)
		if err != nil {
			bad("--rate: %w", err)
		}
		if c.Duration <= 0 {
			bad("--duration: required with --rate")
		}
		plan = loadtest.ConstantPlan(r, c.Duration)
		j.Profile = fmt.Sprintf("rate %s/s for %s", trimFloat(r), c.Duration)
	case c.Stages != "":
		if plan, err = loadtest.ParseStages(c.Stages); err != nil {
			bad("--stages: %w", err)
		}
		j.Profile = "stages " + c.Stages
	case c.Spike != "":
		if plan, err = loadtest.ParseSpike(c.Spike, c.Duration); err != nil {
			bad("--spike: %w", err)
		}
		j.Profile = "spike " + c.Spike
	case c.Arrivals != "":
		if plan, err = loadtest.ParseArrivals(c.Arrivals); err != nil {
			bad("--arrivals: %w", err)
		}
		j.Profile = "arrivals " + c.Arrivals
	case c.VUs > 0:
		if c.Duration <= 0 {
			bad("--duration: required with --vus")
		}
		j.Profile = fmt.Sprintf("%d users, think %s, for %s", c.VUs, think, c.Duration)
	}
	if c.VUs < 0 {
		bad("--vus: must be positive")
	}
	if len(plan) > 0 {
		j.Plan = plan
		if c.Duration > 0 && c.Duration != plan.Duration() && c.Spike == "" {
			bad("--duration %s: the profile already lasts %s; leave --duration out", c.Duration, plan.Duration())
		}
		j.Duration = plan.Duration()
	}
	if c.Target != "" && !strings.HasPrefix(c.Target, "http://") && !strings.HasPrefix(c.Target, "https://") {
		bad("--target %q: want an http:// or https:// URL", c.Target)
	}
	if c.MaxInFlight < 1 {
		bad("--max-in-flight: must be at least 1")
	}
	if c.Connections < 0 {
		bad("--connections: must be 0 (no cap) or more")
	}
	if c.Timeout <= 0 {
		bad("--timeout: must be positive")
	}
	for _, a := range c.Agents {
		if _, _, err := net.SplitHostPort(strings.TrimPrefix(strings.TrimPrefix(a, "http://"), "https://")); err != nil {
			bad("--agents %q: want host:port", a)
		}
	}
	if len(errs) > 0 {
		return j, nil, errors.Join(errs...)
	}
	if _, err := j.Config(); err != nil {
		return j, nil, err
	}
	exprs := append(j.Thresholds(), c.Thresholds...)
	ths, err := loadtest.ParseThresholds(exprs)
	if err != nil {
		return j, nil, fmt.Errorf("--threshold: %w", err)
	}
	return j, ths, nil
}

func trimFloat(f float64) string {
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.3f", f), "0"), ".")
}

func newLoadRunCmd(getenv func(string) string, stdout, stderr io.Writer) *cobra.Command {
	var c loadRunConfig
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run a load test; exit status 0 when every threshold holds",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := bindConfig(cmd.Flags(), getenv); err != nil {
				return err
			}
			if err := c.lookupDropSKU(cmd.Context()); err != nil {
				return err
			}
			job, ths, err := c.job()
			if err != nil {
				return err
			}
			var slos []loadtest.SLO
			if c.SLOFile != "" {
				if slos, err = loadSLOs(c.SLOFile); err != nil {
					return fmt.Errorf("--slo: %w", err)
				}
			}
			return runLoad(cmd, c, job, ths, slos, stdout, stderr)
		},
	}
	f := cmd.Flags()
	f.String("config", "", "YAML file of settings named like the flags")
	f.StringVar(&c.Target, "target", "", "base URL of the site under test, e.g. http://127.0.0.1:8080")
	f.StringVar(&c.Scenario, "scenario", "", "scenario file (YAML) to run; see docs/loadtest.md")
	f.StringVar(&c.Journey, "journey", "", "built-in journey: browse, buy, drop or get (default get: one GET of --target)")
	f.StringVar(&c.Mix, "mix", "", "built-in journeys with weights, e.g. browse=80,buy=20")
	f.StringVar(&c.Rate, "rate", "", "open model: constant arrivals per second (200, 12000/m)")
	f.StringVar(&c.Stages, "stages", "", "open model: rate ramps, duration:rate,... e.g. 10s:100,30s:1000")
	f.StringVar(&c.Spike, "spike", "", "open model: base=100,x=15,at=30s,hold=60s[,after=30s]")
	f.StringVar(&c.Arrivals, "arrivals", "", "open model: n=10000,within=60s[,shape=uniform|front]")
	f.IntVar(&c.VUs, "vus", 0, "closed model: number of virtual users")
	f.StringVar(&c.Think, "think", "", "pause between a user's visits (closed model) and between steps of built-in journeys: 2s or 1s-3s")
	f.DurationVar(&c.Duration, "duration", 0, "how long sessions keep starting (--rate, --vus; --spike: sets the tail)")
	f.IntVar(&c.MaxInFlight, "max-in-flight", 10000, "cap on requests in flight; arrivals wait (and the report says so) when it is hit")
	f.IntVar(&c.Connections, "connections", 0, "cap on TCP connections to the target, like wrk -c (0: no cap)")
	f.DurationVar(&c.Timeout, "timeout", 30*time.Second, "per request")
	f.DurationVar(&c.Grace, "grace", 0, "time for started sessions to finish after --duration (default: --timeout)")
	f.StringArrayVar(&c.Thresholds, "threshold", nil, "pass/fail condition, repeatable: 'p99<300ms', 'errors<0.1%', 'checkout:p95<800ms'")
	f.StringVar(&c.SLOFile, "slo", "", "SLO file (deploy/slo/surge.yaml): judge the run by its objectives, one verdict line each")
	f.StringVar(&c.Out, "out", "", "write the result as JSON to this file")
	f.StringVar(&c.Report, "report", "", "write the self-contained HTML report to this file")
	f.StringSliceVar(&c.Agents, "agents", nil, "run on these agents (host:port,...) instead of here, splitting the load")
	f.StringVar(&c.AgentToken, "agent-token", "", "shared secret the agents were started with")
	f.BoolVar(&c.Quiet, "quiet", false, "no live progress")
	f.StringVar(&c.Drop, "drop", "", "drop journey: ID of the drop the buyers queue for")
	f.StringVar(&c.DropSKU, "drop-sku", "", "drop journey: SKU to buy (default: the drop's first item)")
	f.IntVar(&c.DropQuantity, "drop-quantity", 1, "drop journey: units each buyer orders")
	f.StringVar(&c.SourceIPs, "source-ips", "", "local addresses to spread users over, e.g. 127.0.1.0/24 or 10.0.0.5-10.0.0.20 (the target limits some things per client address)")
	return cmd
}

func runLoad(cmd *cobra.Command, c loadRunConfig, job loadtest.Job, ths []loadtest.Threshold, slos []loadtest.SLO, stdout, stderr io.Writer) error {
	ctx := cmd.Context()
	terminal := isTerminal(stderr)
	var res *loadtest.Result
	var runErr error
	if len(c.Agents) > 0 {
		fmt.Fprintf(stderr, "load: %s on %d agents\n", job.Profile, len(c.Agents))
		res, runErr = loadtest.RunAgents(ctx, c.Agents, c.AgentToken, job)
		if res == nil {
			return runErr
		}
	} else {
		cfg, err := job.Config()
		if err != nil {
			return err
		}
		if !c.Quiet {
			cfg.Progress = report.Progress(stderr, terminal)
			if !terminal {
				cfg.ProgressEvery = 5 * time.Second
				if job.Duration > 5*time.Minute {
					cfg.ProgressEvery = 30 * time.Second
				}
			}
		}
		res, runErr = loadtest.Run(ctx, cfg)
		if res == nil {
			return runErr
		}
	}
	loadtest.Evaluate(res, ths)
	if len(slos) > 0 {
		cfg, err := job.Config()
		if err != nil {
			return err
		}
		cfg.EvaluateSLOs(res, slos)
	}
	if err := report.Summary(stdout, res); err != nil {
		return err
	}
	if c.Out != "" {
		if err := writeLoadFile(c.Out, func(w io.Writer) error {
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			return enc.Encode(res)
		}); err != nil {
			return fmt.Errorf("--out: %w", err)
		}
		fmt.Fprintf(stdout, "result: %s\n", c.Out)
	}
	if c.Report != "" {
		if err := writeLoadFile(c.Report, func(w io.Writer) error { return report.HTML(w, res) }); err != nil {
			return fmt.Errorf("--report: %w", err)
		}
		fmt.Fprintf(stdout, "report: %s\n", c.Report)
	}
	if runErr != nil {
		return runErr
	}
	if !res.Passed() {
		failed := 0
		for _, t := range res.Thresholds {
			if !t.Pass {
				failed++
			}
		}
		for _, s := range res.SLOs {
			if s.Verdict == loadtest.SLOFail {
				failed++
			}
		}
		return &loadtest.ThresholdError{Failed: failed, Total: len(res.Thresholds) + len(res.SLOs)}
	}
	return nil
}

func writeLoadFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func newLoadAgentCmd(getenv func(string) string, stdout, stderr io.Writer) *cobra.Command {
	var listen, token string
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Serve as a load source for a controller's `surge load run --agents`",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := bindConfig(cmd.Flags(), getenv); err != nil {
				return err
			}
			if _, _, err := net.SplitHostPort(listen); err != nil {
				return fmt.Errorf("--listen %q: %w", listen, err)
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return err
			}
			logf := func(format string, args ...any) { fmt.Fprintf(stderr, format+"\n", args...) }
			srv := &http.Server{Handler: loadtest.AgentHandler(token, logf), ReadHeaderTimeout: 10 * time.Second}
			fmt.Fprintf(stdout, "agent: %s\n", ln.Addr())
			done := make(chan error, 1)
			go func() { done <- srv.Serve(ln) }()
			select {
			case err := <-done:
				return err
			case <-cmd.Context().Done():
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				srv.Shutdown(ctx)
				return nil
			}
		},
	}
	f := cmd.Flags()
	f.String("config", "", "YAML file of settings named like the flags")
	f.StringVar(&listen, "listen", "127.0.0.1:7070", "address to accept jobs on; keep it on a private network")
	f.StringVar(&token, "token", "", "shared secret the controller must send (--agent-token)")
	return cmd
}
