package main

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/surge-commerce/surge/internal/loadtest"
	"github.com/surge-commerce/surge/internal/smtpsink"
)

// rehearsal is how CI runs one of rehearsals/*.yaml: a small share of its
// traffic (scale) over a tenth of its time, against a shop of its own.
type rehearsal struct {
	name             string
	scale, timeScale float64
	agents           int    // load from this many `surge load agent`s, each from addresses of its own
	sources          string // else: addresses this process sends from
	// serve are flags of its shop beyond the common ones.
	serve []string
	// pending, when it returns a reason, skips the rehearsal: a part of
	// the shop it needs is not built yet.
	pending func() string
	// worker splits the shop as operations.md says to run mail jobs:
	// `surge serve --role api` and a `surge worker` on its data, mailing
	// an SMTP sink this test counts at mailRate a second, holding off
	// while the API sheds (--jobs-pressure-url).
	worker   bool
	mailRate int
	check    func(t *testing.T, r *loadtest.Result, sink *smtpsink.Sink)
}

// rehearsals are the cases Surge was built for (rehearsals/*.yaml), each
// at a scale a busy two-core machine runs under the race detector next
// to the rest of the suite; bench/rehearsals/run runs them at full scale.
var rehearsals = []rehearsal{
	// The standby line admits 8 visitors a second (a burst of 40 first):
	// about half the spike's, so that some wait a few seconds.
	{name: "tv-spike", scale: 0.05, timeScale: 0.1, agents: 2, serve: []string{"--standby", "--standby-rate", "480", "--standby-max-active", "5000"},
		check: func(t *testing.T, r *loadtest.Result, _ *smtpsink.Sink) {
			// 1/s, a step to 15/s for 18 s, from two agents; the line held
			// on from the step on.
			if len(r.Agents) != 2 || r.Agents[0].Requests == 0 || r.Agents[1].Requests == 0 {
				t.Errorf("agents %+v: want two, both sending", r.Agents)
			}
			st, _ := r.Step("checkout")
			if st == nil || st.Requests == 0 {
				t.Error("no checkout during the spike: the criterion 'checkout never shed' saw nothing")
			} else {
				// A checkout cut off by the end of the run is not the
				// shop's, and one told 409 lost the race for the last unit
				// of its SKU (the demo's stock is small): an answer, not
				// a failure. Anything else is.
				for why, n := range st.Failures {
					if why != "interrupted" && why != "status 409" {
						t.Errorf("checkouts failed: %d %s (all: %v)", n, why, st.Failures)
					}
				}
			}
			// The line engaged, shoppers waited in it and were let in, the
			// buyers among them checked out, and none was sent back.
			l := r.Line
			t.Logf("%v", l)
			if l == nil || l.Waited == 0 || l.Admitted == 0 || l.FinishedBy["buy"] == 0 || l.SentBack != 0 {
				t.Errorf("standby line %v: want shoppers who waited, were admitted and bought, none sent back", l)
			}
			if len(r.Hooks) != 2 || !r.Hooks[0].Pass {
				t.Errorf("hooks %+v: want the line switched on and back to auto", r.Hooks)
			}
		}},
	{name: "drop", scale: 0.005, timeScale: 0.1, sources: "127.0.4.0/24", check: func(t *testing.T, r *loadtest.Result, _ *smtpsink.Sink) {
		// 500 buyers within 12 s for 5 units, the drop starting 3 s in.
		d := r.Drop
		if d == nil || d.Buyers != 500 || d.Allocated != 5 || d.Units != 5 || d.Fairness == nil || d.SellOutS() <= 0 {
			t.Fatalf("drop %+v", d)
		}
		if d.Fairness.PreQueue == 0 {
			t.Errorf("no buyer joined the pre-queue: the draw was not rehearsed (%s)", d.Fairness)
		}
		if len(r.Checks) != 1 || !r.Checks[0].Pass {
			t.Errorf("the shop's stock was not checked: %+v", r.Checks)
		}
	}},
	{name: "fashion", scale: 0.005, timeScale: 0.1, check: func(t *testing.T, r *loadtest.Result, _ *smtpsink.Sink) {
		// 50 users for 30 s, closed model.
		if r.Model != "closed" || r.Server == nil || r.Server.PageCache < 0 {
			t.Errorf("model %s, server %+v: want a closed model and the page cache's hit ratio", r.Model, r.Server)
		}
		if st, _ := r.Step("checkout"); st == nil || st.Requests == 0 {
			t.Error("nobody checked out: the 99.9% criterion saw nothing")
		}
	}},
	{name: "black-friday", scale: 0.2, timeScale: 0.1, check: func(t *testing.T, r *loadtest.Result, _ *smtpsink.Sink) {
		// 4/s for 6 s, a ramp over 3 s, 20/s for 60 s: one minute of 5x,
		// enough checkouts (about 190) for the 99% latency objective to
		// have a budget of a request, so it is judged rather than skipped.
		if len(r.Phases) != 2 || r.Phases[1].To-r.Phases[1].From < 59 {
			t.Errorf("phases %+v: want a minute of 5x", r.Phases)
		}
		for _, s := range r.SLOs {
			if s.Name == "checkout-latency" && s.Verdict != loadtest.SLOPass {
				t.Errorf("checkout latency not judged: %s", s)
			}
		}
	}},
	{name: "bulk-jobs", scale: 0.1, timeScale: 0.2, worker: true, mailRate: 100, check: func(t *testing.T, r *loadtest.Result, sink *smtpsink.Sink) {
		// 3 visits/s for 72 s; 3,000 confirmed subscribers, their
		// reminder sent 36 s in, at 100 mails/s: the job runs through
		// the with-job phase (40-72 s).
		mj := r.MailJob
		if mj == nil || mj.Subscribers != 3000 || mj.Sent != 3000 || mj.Counted == nil || mj.Counted.Sent != 3000 {
			t.Fatalf("mail job %+v: want 3000 subscribers, each mailed once", mj)
		}
		if mj.StartS < 30 || mj.StartS > 45 || mj.EndS < 50 {
			t.Errorf("the job ran from %.1fs to %.1fs: want it started by the reminder at 36s and running into the with-job phase", mj.StartS, mj.EndS)
		}
		// What the mail server got, counted apart from the shop.
		if st := sink.Stats(); st.Messages != 3000 || st.Distinct != 3000 || st.Recipients != 3000 || st.Repeats != 0 {
			t.Errorf("the sink got %+v: want 3000 messages to 3000 recipients, none repeated", st)
		}
		if len(r.Phases) != 2 || len(r.Checks) != 1 || !r.Checks[0].Pass {
			t.Errorf("phases %+v, checks %+v", r.Phases, r.Checks)
		}
		for _, th := range r.Thresholds {
			if strings.HasPrefix(th.Expr, "p99@with-job") {
				t.Logf("%s", th)
			}
		}
	}},
}

// TestRehearsals runs every rehearsal on the embedded default, at small
// scale, through `surge serve` and `surge load` as a user runs them: each
// against a shop of its own, judged by the SLO file, its own thresholds,
// probes and checks. A rehearsal that fails fails the suite.
//
// They run side by side, all at once, so the whole set takes about as
// long as the longest (a minute of black-friday's 5x). The test starts
// the processes itself rather than through parallel subtests: those run
// at most -parallel (GOMAXPROCS, two here) at a time, which made the set
// take the sum of its pairs, over two minutes.
//
// The shop, the agents and the generator are the built binary, not this
// test process: under the race detector a shop is several times slower,
// and a rehearsal judges latency objectives, which a race-instrumented
// shop says nothing about (as TestScaleOutDropThroughHAProxy runs its load).
func TestRehearsals(t *testing.T) {
	files, err := filepath.Glob("../../rehearsals/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no rehearsals: %v", err)
	}
	known := map[string]bool{}
	for _, r := range rehearsals {
		known[r.name] = true
	}
	for _, f := range files {
		if name := strings.TrimSuffix(filepath.Base(f), ".yaml"); !known[name] {
			t.Errorf("rehearsals/%s.yaml has no case here: every rehearsal runs in CI", name)
		}
	}
	bin := surgeBinary(t)
	type outcome struct {
		pending string // why it did not run
		dir     string // its result and report
		out     []byte // what surge load printed
		err     error
		took    time.Duration
		sink    *smtpsink.Sink // the mail server of a shop with a worker
	}
	outcomes := make([]outcome, len(rehearsals))
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	for i, rh := range rehearsals {
		o := &outcomes[i]
		if rh.pending != nil {
			if o.pending = rh.pending(); o.pending != "" {
				continue
			}
		}
		data := t.TempDir()
		serve := []string{"serve", "--addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--data-dir", data,
			"--demo", "--demo-products", "300", "--admin-token", testToken, "--access-log=false", "--log-level", "warn"}
		serve = append(serve, rh.serve...)
		scrape := []string{}
		if rh.worker {
			sink, err := smtpsink.Start("", smtpsink.Options{IDPrefix: "<job-"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { sink.Close() })
			o.sink = sink
			serve = append(serve, "--role", "api", "--nats-listen", "127.0.0.1:0")
		}
		shop := startProc(t, serve...)
		scrape = append(scrape, "--scrape", shop.AdminURL+"/metrics")
		if rh.worker {
			w := startProc(t, "worker", "--data-dir", data, "--nats-url", shop.NATS, "--admin-addr", "127.0.0.1:0", "--log-level", "warn",
				"--smtp-addr", o.sink.Addr(), "--smtp-from", "shop@shop.example", "--public-url", shop.URL,
				"--jobs-mail-rate", strconv.Itoa(rh.mailRate), "--jobs-poll", "1s", "--jobs-pressure-url", shop.AdminURL+"/metrics")
			scrape = append(scrape, "--scrape", w.AdminURL+"/metrics")
		}
		o.dir = t.TempDir()
		args := []string{"load", "run", "--scenario", "../../rehearsals/" + rh.name + ".yaml", "--target", shop.URL,
			"--scale", strconv.FormatFloat(rh.scale, 'f', -1, 64), "--time-scale", strconv.FormatFloat(rh.timeScale, 'f', -1, 64),
			"--slo", "../../deploy/slo/surge.yaml", "--admin-token", testToken,
			"--out", filepath.Join(o.dir, "r.json"), "--report", filepath.Join(o.dir, "r.html"), "--quiet"}
		args = append(args, scrape...)
		if rh.sources != "" {
			args = append(args, "--source-ips", rh.sources)
		}
		var agents []string
		for a := range rh.agents {
			// Each agent sends from 16 loopback addresses of its own.
			agents = append(agents, startAgentProc(t, "127.0."+strconv.Itoa(2+a)+".0/28"))
		}
		if len(agents) > 0 {
			args = append(args, "--agents", strings.Join(agents, ","))
		}
		wg.Go(func() {
			started := time.Now()
			o.out, o.err = exec.CommandContext(ctx, bin, args...).CombinedOutput()
			o.took = time.Since(started)
		})
	}
	wg.Wait()
	for i, rh := range rehearsals {
		o := outcomes[i]
		t.Run(rh.name, func(t *testing.T) {
			if o.pending != "" {
				t.Skip(o.pending)
			}
			t.Logf("%s in %v", rh.name, o.took.Round(time.Second))
			if o.err != nil {
				t.Fatalf("rehearsal %s failed: %v\n%s", rh.name, o.err, o.out)
			}
			r := readResult(t, filepath.Join(o.dir, "r.json"))
			// A rehearsal that judged nothing proves nothing.
			judged := 0
			for _, s := range r.SLOs {
				if s.Verdict == loadtest.SLOPass {
					judged++
				}
			}
			if judged == 0 || r.Server == nil || len(r.Server.Timeline) == 0 || r.Total.Requests == 0 {
				t.Errorf("%d SLOs judged, server metrics %v, %d requests\n%s", judged, r.Server != nil, r.Total.Requests, o.out)
			}
			for _, p := range r.Probes {
				if p.Checks < 5 {
					t.Errorf("probe %s asked %d times", p.URL, p.Checks)
				}
			}
			if rh.check != nil {
				rh.check(t, r, o.sink)
			}
			if html, err := os.ReadFile(filepath.Join(o.dir, "r.html")); err != nil || !strings.Contains(string(html), "Rehearsal: "+rh.name) {
				t.Errorf("report: %v", err)
			}
		})
	}
}

// startAgentProc runs `surge load agent` (the built binary) on a loopback
// port, sending from sources, and returns its address.
func startAgentProc(t *testing.T, sources string) string {
	t.Helper()
	cmd := exec.Command(surgeBinary(t), "load", "agent", "--listen", "127.0.0.1:0", "--source-ips", sources)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "agent: "); ok {
				addr <- a
			}
		}
	}()
	select {
	case a := <-addr:
		return a
	case <-exited:
		t.Fatal("agent exited while starting")
	case <-time.After(30 * time.Second):
		t.Fatal("agent did not print its address")
	}
	return ""
}

// startAgentFrom runs `surge load agent` through run on a loopback port,
// sending from sources (if any), and returns its address.
func startAgentFrom(t *testing.T, sources string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	args := []string{"load", "agent", "--listen", "127.0.0.1:0"}
	if sources != "" {
		args = append(args, "--source-ips", sources)
	}
	go func() {
		done <- run(ctx, args, noEnv, pw, io.Discard)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("agent did not stop")
		}
	})
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "agent: "); ok {
				addr <- a
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	select {
	case a := <-addr:
		return a
	case err := <-done:
		t.Fatalf("agent exited: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("agent did not print its address")
	}
	return ""
}

// TestRehearsalFilesParse reads every rehearsal file as surge load does,
// pending ones included: a rehearsal CI skips must still be a scenario
// surge load accepts, with thresholds it can judge.
func TestRehearsalFilesParse(t *testing.T) {
	files, err := filepath.Glob("../../rehearsals/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no rehearsals: %v", err)
	}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sc, err := loadtest.ParseFile(filepath.Base(f), src)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		if want := strings.TrimSuffix(filepath.Base(f), ".yaml"); sc.Name != want || sc.Description == "" || sc.Load == nil {
			t.Errorf("%s: name %q, description %q, load %v: want the file's name, a description and a load", f, sc.Name, sc.Description, sc.Load)
		}
	}
}
