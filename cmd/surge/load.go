package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
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

	// Rehearsals: how much of the scenario's traffic and time to run, the
	// server's metrics and health endpoints to watch, and the admin token
	// that creates a drop and sends admin hooks.
	Scale        float64
	TimeScale    float64
	Scrape       []string
	Probes       []string
	ProbeTimeout time.Duration
	AdminToken   string

	changed  func(name string) bool // whether a flag was set (flags, env or --config)
	file     *loadtest.File         // the scenario file, read by readFile
	dropInfo *loadtest.DropInfo     // the drop --drop names, as the shop describes it
}

// readFile reads and parses --scenario once.
func (c *loadRunConfig) readFile() error {
	if c.Scenario == "" || c.file != nil {
		return nil
	}
	src, err := os.ReadFile(c.Scenario)
	if err != nil {
		return fmt.Errorf("--scenario: %w", err)
	}
	f, err := loadtest.ParseFile(filepath.Base(c.Scenario), src)
	if err != nil {
		return err
	}
	c.file = f
	return nil
}

// dropSetup is the drop the scenario puts on sale before the run, scaled;
// nil when it has none or --drop names a drop of the user's own.
func (c loadRunConfig) dropSetup() *loadtest.DropSetup {
	if c.file == nil || c.file.Drop == nil || c.Drop != "" {
		return nil
	}
	d := c.file.Drop.ScaleDrop(c.Scale, c.TimeScale)
	return &d
}

// probeURLs are the health endpoints to ask every second: --probe, and
// the scenario's probes on the listener of every --scrape URL.
func (c loadRunConfig) probeURLs() []string {
	out := append([]string(nil), c.Probes...)
	if c.file == nil {
		return out
	}
	for _, s := range c.Scrape {
		u, err := url.Parse(s)
		if err != nil {
			continue
		}
		for _, p := range c.file.Probes {
			out = append(out, u.Scheme+"://"+u.Host+p)
		}
	}
	return out
}

// reminderSetup is the mail job the scenario runs next to its load,
// scaled; nil if it has none.
func (c loadRunConfig) reminderSetup() *loadtest.ReminderSetup {
	if c.file == nil || c.file.Reminder == nil {
		return nil
	}
	r := c.file.Reminder.ScaleReminder(c.Scale)
	return &r
}

// usesDrop reports whether the journeys include the drop buyer.
func (c loadRunConfig) usesDrop() bool {
	if c.file != nil {
		return c.file.UsesDrop()
	}
	for _, part := range strings.Split(c.Journey+","+c.Mix, ",") {
		name, _, _ := strings.Cut(part, "=")
		if strings.TrimSpace(name) == "drop" {
			return true
		}
	}
	return false
}

// lookupDropSKU asks the shop about the drop --drop names: the SKU of
// the drop journey when --drop-sku is left out, and the drop's units and
// start, so that a rehearsal of a drop of the user's own can say how much
// of it sold, and how fast.
func (c *loadRunConfig) lookupDropSKU(ctx context.Context) error {
	if !c.usesDrop() || c.Drop == "" || c.Target == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	info, err := loadtest.FetchDrop(ctx, &http.Client{}, c.Target, c.Drop)
	if err != nil {
		if c.DropSKU != "" {
			return nil // the units and start stay unknown
		}
		return fmt.Errorf("--drop: %w", err)
	}
	if c.DropSKU == "" {
		c.DropSKU = info.SKU
	}
	if info.SKU == c.DropSKU {
		c.dropInfo = &info
	}
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
		if err := c.readFile(); err != nil {
			bad("%w", err)
			break
		}
		j.Scenario, j.ScenarioName = c.file.Source, filepath.Base(c.Scenario)
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
	if c.Think != "" && j.Scenario == nil {
		j.StepThink = &think // built-in journeys pause --think between steps
	}
	if c.Scale <= 0 || c.TimeScale <= 0 {
		bad("--scale and --time-scale: want positive factors (0.01 runs a hundredth of the traffic)")
	}

	// The profile: the flags', else the scenario file's load section.
	spec := loadtest.LoadSpec{Rate: c.Rate, Stages: c.Stages, Spike: c.Spike, Arrivals: c.Arrivals, VUs: c.VUs, Duration: c.Duration}
	if c.VUs > 0 {
		spec.Think = c.Think
	}
	fromFlags := c.Rate != "" || c.Stages != "" || c.Spike != "" || c.Arrivals != "" || c.VUs != 0
	if !fromFlags && c.file != nil && c.file.Load != nil {
		spec = *c.file.Load
		if c.Duration > 0 {
			spec.Duration = c.Duration
		}
	}
	for _, o := range []struct {
		flag string
		to   *int
		from int
	}{{"max-in-flight", &j.MaxInFlight, spec.MaxInFlight}} {
		if !c.isSet(o.flag) && o.from > 0 {
			*o.to = o.from
		}
	}
	if !c.isSet("timeout") && spec.Timeout > 0 {
		j.Timeout = spec.Timeout
	}
	if !c.isSet("grace") && spec.Grace > 0 {
		j.Grace = spec.Grace
	}
	if c.VUs < 0 {
		bad("--vus: must be positive")
	}
	if c.Duration <= 0 && (c.Rate != "" || c.VUs > 0) {
		bad("--duration: required with --rate and --vus")
	}
	var built loadtest.Built
	if c.Scale > 0 && c.TimeScale > 0 && (c.Duration > 0 || (c.Rate == "" && c.VUs <= 0)) {
		built, err = spec.Build(c.Scale, c.TimeScale)
		switch {
		case err != nil && !fromFlags && c.file != nil && c.file.Load == nil:
			bad("want exactly one load profile: --rate, --stages, --spike, --arrivals or --vus (the scenario file has no load section)")
		case err != nil && strings.HasPrefix(err.Error(), "want exactly one"):
			bad("want exactly one load profile: --rate, --stages, --spike, --arrivals or --vus")
		case err != nil && c.Rate != "":
			bad("--rate: %w", err)
		case err != nil && c.Stages != "":
			bad("--stages: %w", err)
		case err != nil && c.Spike != "":
			bad("--spike: %w", err)
		case err != nil && c.Arrivals != "":
			bad("--arrivals: %w", err)
		case err != nil && c.VUs > 0:
			bad("--vus: %w", err)
		case err != nil:
			bad("load: %w", err)
		}
	}
	if fromFlags && c.Duration > 0 && (c.Stages != "" || c.Arrivals != "") && err == nil {
		bad("--duration %s: the profile already lasts %s; leave --duration out", c.Duration, built.Duration)
	}
	j.Plan, j.VUs, j.Duration, j.Profile = built.Plan, built.VUs, built.Duration, built.Profile
	if built.VUs > 0 {
		j.Think = built.Think
	} else {
		j.Think = think
	}
	if c.Scale != 1 || c.TimeScale != 1 {
		j.Profile += fmt.Sprintf(" (scale %s, time scale %s)", trimFloat(c.Scale), trimFloat(c.TimeScale))
	}
	if c.file != nil && c.file.Name != "" && c.file.Load != nil && !fromFlags {
		j.Profile = c.file.Name + ": " + j.Profile
	}
	for _, u := range append(append([]string(nil), c.Scrape...), c.Probes...) {
		if pu, err := url.Parse(u); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			bad("--scrape and --probe %q: want an http:// URL, like http://127.0.0.1:9090/metrics", u)
		}
	}
	if c.ProbeTimeout <= 0 {
		bad("--probe-timeout: must be positive")
	}
	if c.dropSetup() != nil {
		if c.AdminToken == "" {
			bad("the scenario puts a drop on sale through the admin API: pass --admin-token (or --drop ID to rehearse a drop of your own)")
		}
		if c.Target == "" {
			bad("the scenario puts a drop on sale: pass --target")
		}
		// The drop is created just before the run; until then the
		// buyers are checked against a stand-in.
		j.Drop.ID, j.Drop.SKU = "pending", "pending"
		if q := c.file.Drop.Quantity; q > 0 && !c.isSet("drop-quantity") {
			j.Drop.Quantity = q
		}
	}
	if c.reminderSetup() != nil && (c.AdminToken == "" || c.Target == "") {
		bad("the scenario mails a drop's reminder to subscribers it adds through the admin API: pass --target and --admin-token")
	}
	if c.file != nil {
		for _, h := range c.file.Hooks {
			if h.Admin && c.AdminToken == "" {
				bad("hook %s sends the admin token: pass --admin-token", h.Name)
			}
		}
	}
	if j.Duration > 10*time.Minute {
		j.Interval = (j.Duration / 600).Round(time.Second)
	} else {
		j.Interval = time.Second
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
	if j.Drop.ID == "pending" {
		j.Drop.ID, j.Drop.SKU = "", ""
	}
	exprs := append(j.Thresholds(), c.Thresholds...)
	ths, err := loadtest.ParseThresholds(exprs)
	if err != nil {
		return j, nil, fmt.Errorf("--threshold: %w", err)
	}
	return j, ths, nil
}

// isSet reports whether a flag was given (on the command line, in the
// environment or in --config).
func (c loadRunConfig) isSet(flag string) bool { return c.changed != nil && c.changed(flag) }

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
			c.changed = cmd.Flags().Changed
			if err := c.readFile(); err != nil {
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
	f.Float64Var(&c.Scale, "scale", 1, "multiply the traffic of the profile (rates, users, arrivals, a drop's units): 0.01 runs a hundredth")
	f.Float64Var(&c.TimeScale, "time-scale", 1, "multiply the durations of the profile (a spike's step and hold, stages, windows, a drop's start)")
	f.StringArrayVar(&c.Scrape, "scrape", nil, "the server's metrics to read every interval and chart with the run, repeatable: http://ADMIN/metrics")
	f.StringArrayVar(&c.Probes, "probe", nil, "a health endpoint to ask every second, which must answer 200, repeatable (a scenario's probes go to every --scrape listener)")
	f.DurationVar(&c.ProbeTimeout, "probe-timeout", 2*time.Second, "how long a probe may take, as a Kubernetes probe's timeoutSeconds")
	f.StringVar(&c.AdminToken, "admin-token", "", "the shop's admin token: a scenario's drop is put on sale, and its admin hooks sent, with it")
	return cmd
}

func runLoad(cmd *cobra.Command, c loadRunConfig, job loadtest.Job, ths []loadtest.Threshold, slos []loadtest.SLO, stdout, stderr io.Writer) error {
	ctx := cmd.Context()
	terminal := isTerminal(stderr)
	admin := loadtest.Admin{Target: c.Target, Token: c.AdminToken, Client: &http.Client{Timeout: 30 * time.Second}}

	// The mail job's drop and its subscribers come first: adding tens of
	// thousands takes a few seconds.
	var reminder *loadtest.CreatedReminder
	if setup := c.reminderSetup(); setup != nil {
		r, err := setup.Create(ctx, admin, c.Scrape)
		if err != nil {
			return err
		}
		reminder = &r
		fmt.Fprintf(stderr, "load: drop %s with %d confirmed subscribers; its reminder goes out %s into the run\n", r.DropID, r.Subscribers,
			c.file.Reminder.At.At(job.Duration, c.TimeScale).Round(time.Second))
	}
	// The run starts a moment from now, so that the drop the scenario
	// puts on sale, the server's metrics and the probes all count from
	// the same instant as the load.
	lead := 500 * time.Millisecond
	if len(c.Agents) > 0 {
		lead = 2 * time.Second // the agents check in and get their share first
	}
	start := time.Now().Add(lead)
	var drop *loadtest.CreatedDrop
	if setup := c.dropSetup(); setup != nil {
		d, err := setup.Create(ctx, admin, start)
		if err != nil {
			return err
		}
		drop = &d
		job.Drop.ID, job.Drop.SKU = d.ID, d.SKU
		fmt.Fprintf(stderr, "load: drop %s of %d units of %s, starting %s after the run\n", d.ID, d.Units, d.SKU, setup.Starts)
		if time.Until(start) < 100*time.Millisecond {
			start = time.Now().Add(100 * time.Millisecond)
		}
	}
	job.StartAt = start
	mon := loadtest.StartMonitor(ctx, loadtest.MonitorConfig{Scrape: c.Scrape, Probes: c.probeURLs(),
		Interval: job.Interval, ProbeTimeout: c.ProbeTimeout, Start: start})
	var hooks []loadtest.Hook
	if c.file != nil {
		for _, h := range c.file.Hooks {
			hk := h.Hook
			hk.At = h.When.At(job.Duration, c.TimeScale)
			hooks = append(hooks, hk)
		}
		if reminder != nil {
			hooks = append(hooks, reminder.Hook(c.file.Reminder.At.At(job.Duration, c.TimeScale)))
		}
	}
	hookCtx, stopHooks := context.WithCancel(ctx)
	defer stopHooks()
	hooksDone := make(chan []loadtest.HookResult, 1)
	go func() { hooksDone <- loadtest.RunHooks(hookCtx, admin, start, hooks) }()

	var res *loadtest.Result
	var runErr error
	if len(c.Agents) > 0 {
		fmt.Fprintf(stderr, "load: %s on %d agents\n", job.Profile, len(c.Agents))
		res, runErr = loadtest.RunAgents(ctx, c.Agents, c.AgentToken, job)
	} else {
		cfg, err := job.Config()
		if err != nil {
			mon.Stop()
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
	}
	stopHooks()
	res2, probes := mon.Stop()
	hookResults := <-hooksDone
	if res == nil {
		return runErr
	}
	res.Server, res.Probes, res.Hooks = res2, probes, hookResults
	res.Scale, res.TimeScale = c.Scale, c.TimeScale
	if c.file != nil {
		res.Name, res.Description = c.file.Name, c.file.Description
		for _, p := range c.file.Phases {
			res.Phases = append(res.Phases, loadtest.Phase{Name: p.Name,
				From: p.From.At(job.Duration, c.TimeScale).Seconds(), To: p.To.At(job.Duration, c.TimeScale).Seconds()})
		}
	}
	if res.Drop != nil {
		switch {
		case drop != nil:
			res.Drop.Allocated = drop.Units
			res.Drop.StartS = drop.StartsAt.Sub(start).Seconds()
			res.Checks = append(res.Checks, drop.CheckSold(ctx, admin, res.Drop.Units, false, time.Minute))
		case c.dropInfo != nil:
			res.Drop.Allocated = c.dropInfo.Allocated
			res.Drop.StartS = c.dropInfo.StartsAt.Sub(start).Seconds()
		}
		res.Drop.ComputeFairness()
	}
	if reminder != nil {
		fmt.Fprintln(stderr, "load: waiting for the mail job to finish")
		check, mj := reminder.Check(ctx, admin, start, job.Duration.Seconds(), loadtest.ReminderCheck{})
		res.Checks = append(res.Checks, check)
		res.MailJob = &mj
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
		failed, total := res.Verdicts()
		return &loadtest.ThresholdError{Failed: failed, Total: total}
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
	var listen, token, sourceIPs string
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
			var sources []string
			if sourceIPs != "" {
				addrs, err := loadtest.ParseSourceIPs(sourceIPs)
				if err != nil {
					return fmt.Errorf("--source-ips: %w", err)
				}
				for _, a := range addrs {
					sources = append(sources, a.String())
				}
			}
			srv := &http.Server{Handler: loadtest.AgentHandler(token, sources, logf), ReadHeaderTimeout: 10 * time.Second}
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
	f.StringVar(&sourceIPs, "source-ips", "", "this machine's addresses to send from, e.g. 10.0.1.0/24: jobs without --connections spread their users over them")
	return cmd
}
