package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/surge-commerce/surge/internal/capacity"
)

func newPlanCmd(getenv func(string) string, stdout, stderr io.Writer) *cobra.Command {
	var profile, event, k8sDir, sloFile, outDir, base string
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Capacity planner: replicas per phase, pre-scaling timeline, HPA simulation, manifests",
		Long: `surge plan turns a measured capacity profile and an event file into a plan.

  surge plan calibrate --target http://127.0.0.1:8080 --admin http://127.0.0.1:9090 --out profile.yaml
  surge plan --profile profile.yaml --event friday.yaml --out-dir plan/

See docs/capacity.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := bindConfig(cmd.Flags(), getenv); err != nil {
				return err
			}
			if profile == "" || event == "" {
				return errors.New("--profile and --event are required (make a profile with surge plan calibrate)")
			}
			p, err := capacity.ReadProfile(profile)
			if err != nil {
				return fmt.Errorf("--profile: %w", err)
			}
			e, err := capacity.ReadEvent(event)
			if err != nil {
				return fmt.Errorf("--event: %w", err)
			}
			note := e.ApplySLOFile(sloFile)
			c, err := capacity.ReadCluster(k8sDir)
			if err != nil {
				return fmt.Errorf("--k8s %s: %w", k8sDir, err)
			}
			pl, err := capacity.Make(p, e, c)
			if err != nil {
				return err
			}
			pl.SLONote = note
			if err := pl.Text(stdout); err != nil {
				return err
			}
			if outDir == "" {
				return nil
			}
			if err := os.MkdirAll(filepath.Join(outDir, "manifests"), 0o755); err != nil {
				return err
			}
			ms := pl.BuildManifests(e, base)
			for _, name := range ms.Names() {
				if err := os.WriteFile(filepath.Join(outDir, "manifests", name), []byte(ms[name]), 0o644); err != nil {
					return err
				}
			}
			js, err := json.MarshalIndent(pl, "", "  ")
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(outDir, "plan.json"), append(js, '\n'), 0o644); err != nil {
				return err
			}
			if err := writeLoadFile(filepath.Join(outDir, "plan.html"), func(w io.Writer) error { return pl.HTML(w, ms) }); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "\nwrote %s: plan.json, plan.html, manifests/ (%s)\n", outDir, strings.Join(ms.Names(), ", "))
			return nil
		},
	}
	f := cmd.Flags()
	f.String("config", "", "YAML file of settings named like the flags")
	f.StringVar(&profile, "profile", "", "capacity profile from surge plan calibrate")
	f.StringVar(&event, "event", "", "event file: arrivals, journeys, SLOs, pods (see docs/capacity.md)")
	f.StringVar(&k8sDir, "k8s", "deploy/k8s/base", "kustomize directory whose HPA and Deployments the plan reads")
	f.StringVar(&sloFile, "slo", "deploy/slo/surge.yaml", "SLO file (Sloth prometheus/v1) whose latency objectives apply, if present")
	f.StringVar(&outDir, "out-dir", "", "write plan.json, plan.html and manifests/ here")
	f.StringVar(&base, "kustomize-base", "../../deploy/k8s/base", "the base as the overlay in --out-dir/manifests should name it")
	cmd.AddCommand(newPlanCalibrateCmd(getenv, stdout, stderr))
	return cmd
}

func newPlanCalibrateCmd(getenv func(string) string, stdout, stderr io.Writer) *cobra.Command {
	var c capacity.CalibrateConfig
	var out, classes, pids string
	var pageSLO, checkoutSLO, queueSLO time.Duration
	cmd := &cobra.Command{
		Use:   "calibrate",
		Short: "Measure what each request class costs one running replica; write a capacity profile",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := bindConfig(cmd.Flags(), getenv); err != nil {
				return err
			}
			if c.Target == "" || c.Admin == "" || out == "" {
				return errors.New("--target, --admin and --out are required")
			}
			for _, u := range []string{c.Target, c.Admin, c.WorkerAdmin} {
				if u != "" && !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
					return fmt.Errorf("%q: want an http:// or https:// URL", u)
				}
			}
			if c.Step < time.Second || c.Step > 5*time.Minute {
				return errors.New("--step: want 1s to 5m")
			}
			if c.MaxSteps < 1 || c.MaxSteps > 50 {
				return errors.New("--max-steps: want 1 to 50")
			}
			if c.RetryWait < time.Second || c.RetryWait > 10*time.Minute {
				return errors.New("--retry-wait: want 1s to 10m")
			}
			if classes != "" {
				for _, cl := range strings.Split(classes, ",") {
					cl = strings.TrimSpace(cl)
					ok := false
					for _, k := range capacity.Classes {
						ok = ok || k == cl
					}
					if !ok {
						return fmt.Errorf("--classes: %q: want some of %s", cl, strings.Join(capacity.Classes, ","))
					}
					c.Classes = append(c.Classes, cl)
				}
			}
			c.PIDs = map[string]int{}
			if pids != "" {
				for _, kv := range strings.Split(pids, ",") {
					k, v, ok := strings.Cut(kv, "=")
					n, err := strconv.Atoi(v)
					if !ok || err != nil || n <= 1 || (k != "database" && k != "nats" && k != "redis") {
						return fmt.Errorf("--pid %q: want database=PID, nats=PID or redis=PID", kv)
					}
					c.PIDs[k] = n
				}
			}
			c.SLO = map[string]time.Duration{
				capacity.CachedPage: pageSLO, capacity.UncachedPage: pageSLO, capacity.Search: pageSLO,
				capacity.AddToCart: checkoutSLO, capacity.Checkout: checkoutSLO,
				capacity.DropJoin: queueSLO, capacity.DropStatus: queueSLO,
			}
			c.Version, c.Log = version, stderr
			p, err := capacity.Calibrate(cmd.Context(), c)
			if err != nil {
				return err
			}
			if err := p.Write(out); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "profile: %s (%d classes measured", out, len(p.Classes))
			if len(p.Notes) > 0 {
				fmt.Fprintf(stdout, "; notes: %s", strings.Join(p.Notes, "; "))
			}
			fmt.Fprintln(stdout, ")")
			return nil
		},
	}
	f := cmd.Flags()
	f.String("config", "", "YAML file of settings named like the flags")
	f.StringVar(&c.Target, "target", "", "the replica's shop URL, e.g. http://127.0.0.1:8080 (load goes here: only a shop you run)")
	f.StringVar(&c.Admin, "admin", "", "the replica's operations listener, e.g. http://127.0.0.1:9090 (/metrics, /debug/pprof)")
	f.StringVar(&c.WorkerAdmin, "worker-admin", "", "a separate surge worker's operations listener, when the pipeline does not run in the replica")
	f.StringVar(&c.AdminToken, "admin-token", "", "admin API token: needed for checkout (raises one SKU's stock) and the drop classes (creates a drop)")
	f.StringVar(&c.DBURL, "db-url", "", "PostgreSQL the replica uses, to read its CPU (the server must run on this machine)")
	f.StringVar(&c.RedisURL, "redis-url", "", "Redis the replica uses, to read its CPU and commands per request")
	f.StringVar(&pids, "pid", "", "engine processes on this machine to read CPU from: nats=PID,redis=PID,database=PID")
	f.StringVar(&classes, "classes", "", "classes to measure (default all): "+strings.Join(capacity.Classes, ","))
	f.DurationVar(&c.Step, "step", 5*time.Second, "length of each step of load")
	f.StringVar(&c.SourceIPs, "source-ips", "", "local addresses for the drop classes' buyers, e.g. 127.0.1.0/20 (the shop limits joins per address)")
	f.Float64Var(&c.MaxRate, "max-rate", 20000, "highest requests per second any step sends")
	f.IntVar(&c.MaxSteps, "max-steps", 10, "most steps of load per class after the probe")
	f.DurationVar(&c.RetryWait, "retry-wait", 30*time.Second, "how long one setup call or scrape waits on 503/429 answers (as their Retry-After asks) before the class is reported unmeasured")
	f.DurationVar(&pageSLO, "page-p99", 500*time.Millisecond, "p99 objective of pages and search, for the knee")
	f.DurationVar(&checkoutSLO, "checkout-p99", time.Second, "p99 objective of add to cart and checkout")
	f.DurationVar(&queueSLO, "queue-p99", 500*time.Millisecond, "p99 objective of the drop's join and status")
	f.StringVar(&out, "out", "", "write the profile (YAML) here")
	return cmd
}
