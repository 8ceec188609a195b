package loadtest

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Job is a load test in a form that travels: the command line builds one,
// runs it here or hands shares of it to agents.
type Job struct {
	Target       string        `json:"target"`
	Scenario     []byte        `json:"scenario,omitempty"` // YAML of a scenario file
	ScenarioName string        `json:"scenario_name,omitempty"`
	Mix          string        `json:"mix,omitempty"` // built-in journeys, "browse=80,buy=20"
	Drop         DropOptions   `json:"drop,omitzero"` // for the drop journey
	StepThink    *Think        `json:"step_think,omitempty"`
	Plan         Plan          `json:"plan,omitempty"`
	VUs          int           `json:"vus,omitempty"`
	Think        Think         `json:"think"`
	Duration     time.Duration `json:"duration"`
	MaxInFlight  int           `json:"max_in_flight"`
	Connections  int           `json:"connections"`
	Timeout      time.Duration `json:"timeout"`
	Grace        time.Duration `json:"grace"`
	Interval     time.Duration `json:"interval"`
	StartAt      time.Time     `json:"start_at"`
	Profile      string        `json:"profile"`
	SourceIPs    []string      `json:"source_ips,omitempty"` // local addresses to send from
}

// mix resolves the job's journeys: the scenario file's, or built-in ones.
func (j Job) mix() ([]Weighted, error) {
	if len(j.Scenario) > 0 {
		name := j.ScenarioName
		if name == "" {
			name = "scenario"
		}
		f, err := ParseFile(name, j.Scenario)
		if err != nil {
			return nil, err
		}
		return f.Mix(j.Drop)
	}
	spec := j.Mix
	if spec == "" {
		spec = "get"
	}
	mix, err := ParseMix(spec, j.Drop)
	if err != nil {
		return nil, err
	}
	if j.StepThink != nil {
		for i := range mix {
			if mix[i].Scenario.Name != "get" {
				mix[i].Scenario = mix[i].Scenario.WithThink(*j.StepThink)
			}
		}
	}
	return mix, nil
}

// Config turns the job into an engine configuration.
func (j Job) Config() (Config, error) {
	mix, err := j.mix()
	if err != nil {
		return Config{}, err
	}
	cfg := Config{
		Mix: mix, Plan: j.Plan, VUs: j.VUs, Think: j.Think, Duration: j.Duration,
		MaxInFlight: j.MaxInFlight, Connections: j.Connections, Timeout: j.Timeout, Grace: j.Grace,
		Interval: j.Interval, StartAt: j.StartAt, Profile: j.Profile,
	}
	if cfg.SourceAddrs, err = ParseSourceIPs(strings.Join(j.SourceIPs, ",")); err != nil {
		return Config{}, err
	}
	if j.Target != "" {
		u, err := url.Parse(j.Target)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return Config{}, fmt.Errorf("target %q: want an http:// or https:// URL", j.Target)
		}
		cfg.Target = u
	}
	return cfg, cfg.validate()
}

// Thresholds are the scenario file's thresholds, if the job has one.
func (j Job) Thresholds() []string {
	if len(j.Scenario) == 0 {
		return nil
	}
	f, err := ParseFile(j.ScenarioName, j.Scenario)
	if err != nil {
		return nil
	}
	return f.Thresholds
}

// share is the part of the job agent i of n runs: the rates divided by
// n, the users, cap and connections split as evenly as whole numbers go.
func (j Job) share(i, n int) Job {
	s := j
	if len(j.Plan) > 0 {
		s.Plan = j.Plan.Scale(1 / float64(n))
	}
	split := func(v int) int {
		if v <= 0 {
			return v
		}
		q := v / n
		if i < v%n {
			q++
		}
		return max(q, 1)
	}
	s.VUs = split(j.VUs)
	if j.VUs > 0 && i >= j.VUs {
		s.VUs = 0
	}
	s.MaxInFlight = split(j.MaxInFlight)
	s.Connections = split(j.Connections)
	return s
}

// AgentHandler serves `surge load agent`: POST /run with a Job runs it and
// answers with the Result (histograms included, so the controller merges
// them exactly); GET /healthz answers "ok". With a token, /run requires
// "Authorization: Bearer <token>". One job runs at a time. sourceIPs are
// this agent's own addresses to send from, for jobs that name none and
// set no connection cap: each agent of a spike brings its own sources.
func AgentHandler(token string, sourceIPs []string, logf func(format string, args ...any)) http.Handler {
	var busy sync.Mutex
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("POST /run", func(w http.ResponseWriter, r *http.Request) {
		if token != "" && subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte("Bearer "+token)) != 1 {
			http.Error(w, "bad or missing token", http.StatusUnauthorized)
			return
		}
		if !busy.TryLock() {
			http.Error(w, "this agent is already running a test", http.StatusConflict)
			return
		}
		defer busy.Unlock()
		var job Job
		if err := json.NewDecoder(io.LimitReader(r.Body, 8<<20)).Decode(&job); err != nil {
			http.Error(w, "bad job: "+err.Error(), http.StatusBadRequest)
			return
		}
		if len(job.SourceIPs) == 0 && job.Connections == 0 {
			job.SourceIPs = sourceIPs
		}
		cfg, err := job.Config()
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		logf("agent: running %s for %s against %s", job.Profile, job.Duration, job.Target)
		res, err := Run(r.Context(), cfg)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		logf("agent: done, %d requests, %d errors", res.Total.Requests, res.Total.Errors)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(res)
	})
	return mux
}

// RunAgents runs the job on several agents at once: each gets its share,
// all start at the same wall-clock instant (their clocks should be in sync,
// as NTP keeps them), and their results are merged exactly.
func RunAgents(ctx context.Context, agents []string, token string, job Job) (*Result, error) {
	if len(agents) == 0 {
		return nil, errors.New("no agents")
	}
	client := &http.Client{}
	base := func(a string) string {
		if strings.Contains(a, "://") {
			return strings.TrimSuffix(a, "/")
		}
		return "http://" + a
	}
	for _, a := range agents {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base(a)+"/healthz", nil)
		ctx2, cancel := context.WithTimeout(ctx, 5*time.Second)
		resp, err := client.Do(req.WithContext(ctx2))
		cancel()
		if err != nil {
			return nil, fmt.Errorf("agent %s: %w", a, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("agent %s: health check answered %s", a, resp.Status)
		}
	}
	// Every agent must have the job before the start; a start the caller
	// chose is kept when that leaves time enough.
	if time.Until(job.StartAt) < 500*time.Millisecond {
		job.StartAt = time.Now().Add(time.Second)
	}
	results := make([]*Result, len(agents))
	errs := make([]error, len(agents))
	var wg sync.WaitGroup
	for i, a := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = postJob(ctx, client, base(a), token, job.share(i, len(agents)))
		}()
	}
	wg.Wait()
	var ok []*Result
	var summaries []AgentSummary
	var failed []error
	for i, a := range agents {
		s := AgentSummary{Addr: a}
		if errs[i] != nil {
			s.Error = errs[i].Error()
			failed = append(failed, fmt.Errorf("agent %s: %w", a, errs[i]))
		} else {
			s.Requests, s.Errors = results[i].Total.Requests, results[i].Total.Errors
			ok = append(ok, results[i])
		}
		summaries = append(summaries, s)
	}
	if len(ok) == 0 {
		return nil, errors.Join(failed...)
	}
	merged := Merge(ok...)
	merged.Agents = summaries
	merged.Target, merged.Profile = job.Target, job.Profile
	return merged, errors.Join(failed...)
}

func postJob(ctx context.Context, client *http.Client, base, token string, job Job) (*Result, error) {
	body, err := json.Marshal(job)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/run", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	var r Result
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, fmt.Errorf("reading the result: %w", err)
	}
	return &r, nil
}
