package capacity

import (
	"fmt"
	"math"
	"sort"
	"time"
)

var inf = math.Inf(1)

// Plan is what `surge plan` answers for one event.
type Plan struct {
	Event      string    `json:"event"`
	Start      time.Time `json:"start"`
	ProfileOf  string    `json:"profile_of"` // where and when the profile was taken
	SLONote    string    `json:"slo_note"`
	SLO        SLOs      `json:"slo"`
	TargetUtil float64   `json:"target_utilization"`
	// PerSession is each class's requests per session of the mix.
	PerSession map[string]float64 `json:"requests_per_session"`
	// SessionCPU is the CPU one session costs in each component.
	SessionCPU Components `json:"session_cpu_seconds"`
	// RequestCPU is what one request of each class in the mix costs the
	// calibrated replica's own cores (its API, and the worker and engines
	// that ran inside it), so a rehearsal can price what was served.
	RequestCPU map[string]float64 `json:"replica_cpu_seconds_per_request"`
	// ReplicaCapacity is the sessions per second one API pod takes at the
	// target utilisation of its CPU request.
	ReplicaCapacity float64     `json:"replica_capacity_sessions_per_s"`
	Cluster         ClusterView `json:"cluster"`
	Phases          []PhasePlan `json:"phases"`
	Drops           []DropPlan  `json:"drops,omitempty"`
	Timeline        []Moment    `json:"timeline"`
	Reactive        SimResult   `json:"reactive_hpa"`
	PreScaled       SimResult   `json:"pre_scaled"`
	Warnings        []string    `json:"warnings,omitempty"`
	Assumptions     []string    `json:"assumptions"`
}

// ClusterView is the part of the manifests the plan used.
type ClusterView struct {
	Namespace        string  `json:"namespace"`
	APIDeployment    string  `json:"api_deployment"`
	WorkerDeployment string  `json:"worker_deployment"`
	HPAName          string  `json:"hpa"`
	APICPU           float64 `json:"api_cpu_request"`
	APILimit         float64 `json:"api_cpu_limit"`
	WorkerCPU        float64 `json:"worker_cpu_request"`
	MinReplicas      int     `json:"hpa_min_replicas"`
	MaxReplicas      int     `json:"hpa_max_replicas"`
	WorkerReplicas   int     `json:"worker_replicas"`
	HPA              HPA     `json:"-"`
	Fixed            bool    `json:"fixed_replicas"`
}

// PhasePlan is the plan for one phase, at its peak.
type PhasePlan struct {
	Name     string             `json:"name"`
	From     float64            `json:"from_s"` // seconds from the event's start
	To       float64            `json:"to_s"`
	Sessions float64            `json:"sessions_per_s"` // peak ordinary arrivals
	Requests map[string]float64 `json:"requests_per_s"` // by class, drop traffic included
	CPU      Components         `json:"cpu_cores"`      // demand by component
	// APIReplicas and WorkerReplicas are what to run; Utilization is the
	// API pods' predicted CPU use as a share of their request.
	APIReplicas    int     `json:"api_replicas"`
	WorkerReplicas int     `json:"worker_replicas"`
	Utilization    float64 `json:"utilization"`
	// P99 is the predicted p99 (ms) of each class in the phase; +Inf
	// (null in JSON) when the replicas would be past their knee.
	P99    map[string]float64  `json:"-"`
	P99Out map[string]*float64 `json:"predicted_p99_ms"`
	// Breach says the SLO would not hold; AdmitSessions is then the rate
	// of sessions a standby line should let in to hold it.
	Breach        bool    `json:"slo_breach"`
	BreachWhy     string  `json:"breach_reason,omitempty"`
	AdmitSessions float64 `json:"admit_sessions_per_s"`
	DB            DBPlan  `json:"database"`
	RedisOps      float64 `json:"redis_ops_per_s"`
	NATSMsgs      float64 `json:"nats_msgs_per_s"`
	// Active is the sessions shopping at once; Memory the bytes each API
	// pod holds for them (and for waiting buyers).
	Active       float64 `json:"active_sessions"`
	Waiting      float64 `json:"waiting_buyers"`
	MemoryPerPod float64 `json:"memory_per_pod_bytes"`
}

// DBPlan sizes PostgreSQL for a phase.
type DBPlan struct {
	Cores          float64 `json:"cores"`
	VCPUs          int     `json:"vcpus"` // at the target utilisation, at least 2
	PoolPerReplica int     `json:"pool_per_replica"`
	MaxConnections int     `json:"max_connections"`
}

// Moment is one step of the timeline.
type Moment struct {
	At   time.Time `json:"at"`
	Rel  float64   `json:"rel_s"` // seconds from the event's start (negative: before)
	What string    `json:"what"`
}

// Plan computes the plan for event e from profile p and the cluster's
// manifests.
func Make(p *Profile, e *Event, c *Cluster) (*Plan, error) {
	out := &Plan{Event: e.Name, Start: e.Start, SLO: e.SLO, TargetUtil: e.TargetUtilization,
		ProfileOf: fmt.Sprintf("%s, %d CPUs, %g cores for the replica, surge %s, %s", p.Machine.Host, p.Machine.CPUs,
			p.Target.Cores, p.Target.Version, p.Taken.UTC().Format("2006-01-02 15:04 UTC"))}
	apiCPU, workerCPU := e.Pods.APICPU, e.Pods.WorkerCPU
	if apiCPU == 0 {
		apiCPU = c.APICPU
	}
	if workerCPU == 0 {
		workerCPU = c.WorkerCPU
	}
	limit := max(c.APILimit, apiCPU)
	fixed := e.Pods.Replicas > 0
	if fixed {
		limit = apiCPU
	}
	out.Cluster = ClusterView{Namespace: c.Namespace, APIDeployment: c.APIDeployment, WorkerDeployment: c.WorkerDeployment,
		HPAName: c.HPAName, APICPU: apiCPU, APILimit: limit, WorkerCPU: workerCPU, MinReplicas: c.HPA.MinReplicas,
		MaxReplicas: c.HPA.MaxReplicas, WorkerReplicas: c.WorkerReplicas, HPA: c.HPA, Fixed: fixed}

	per, _, think := e.classMix()
	out.PerSession = per
	out.RequestCPU = map[string]float64{}
	for class, n := range per {
		cost, ok := p.Cost(class)
		if !ok {
			if why := p.Unmeasured[class]; why != "" {
				return nil, fmt.Errorf("the mix uses %s, which calibration could not measure: %s", class, why)
			}
			return nil, fmt.Errorf("the mix uses %s, which the profile did not measure (it has %v)", class, p.MeasuredClasses())
		}
		out.SessionCPU = out.SessionCPU.Add(cost, n)
		out.RequestCPU[class] = p.ReplicaCPU(class)
	}
	m := model{p: p, e: e, apiCPU: apiCPU, workerCPU: workerCPU, limit: limit, fixed: fixed, cluster: c}
	out.ReplicaCapacity = e.TargetUtilization * apiCPU / m.podCPU(per)
	if c.HPA.TargetUtilization != e.TargetUtilization && !fixed {
		out.Warnings = append(out.Warnings, fmt.Sprintf("the event plans for %.0f%% CPU but the shipped HPA targets %.0f%%: the HPA will resize what this plan starts",
			100*e.TargetUtilization, 100*c.HPA.TargetUtilization))
	}
	sessionLen := think.Seconds() + 0.1*float64(len(per))

	// Phases.
	var at time.Duration
	for _, ph := range e.Phases {
		pp := PhasePlan{Name: ph.Name, From: at.Seconds(), To: (at + ph.For.D()).Seconds(), Sessions: ph.X * e.Baseline,
			Requests: map[string]float64{}}
		for class, n := range per {
			pp.Requests[class] = n * pp.Sessions
		}
		pp.Active = pp.Sessions * sessionLen
		if ph.Drop != nil {
			dp := m.planDrop(ph, pp.Requests, at)
			out.Drops = append(out.Drops, dp)
			for class, r := range dp.PeakRequests {
				pp.Requests[class] += r
			}
			pp.Waiting = dp.PeakWaiting
			pp.Active += dp.ActiveCap
		}
		m.size(&pp)
		out.Phases = append(out.Phases, pp)
		at += ph.For.D()
	}
	for i := range out.Drops {
		d := &out.Drops[i]
		for _, pp := range out.Phases {
			if pp.Name == d.Phase {
				d.APIReplicas = pp.APIReplicas
			}
		}
	}
	out.Timeline = m.timeline(out)
	out.Reactive, out.PreScaled = m.simulate(out, per)
	out.Assumptions = assumptions(p, e)
	for _, pp := range out.Phases {
		if pp.Breach {
			out.Warnings = append(out.Warnings, fmt.Sprintf("phase %s: %s; a standby line admitting %s sessions/s would hold the SLO",
				pp.Name, pp.BreachWhy, fmtRate(pp.AdmitSessions)))
		}
	}
	if len(p.Notes) > 0 {
		out.Warnings = append(out.Warnings, "the profile notes: "+joinNotes(p.Notes))
	}
	return out, nil
}

func joinNotes(n []string) string {
	s := ""
	for i, x := range n {
		if i > 0 {
			s += "; "
		}
		s += x
	}
	return s
}

type model struct {
	p                 *Profile
	e                 *Event
	apiCPU, workerCPU float64
	limit             float64
	fixed             bool
	cluster           *Cluster
}

// podCPU is the CPU one unit of rates costs an API pod: on a fixed,
// rehearsed replica everything that ran in its process, else the API's
// own share (the worker, PostgreSQL, NATS and Redis have their own pods).
func (m *model) podCPU(rates map[string]float64) float64 {
	var v float64
	for class, r := range rates {
		if m.fixed {
			v += r * m.p.ReplicaCPU(class)
		} else {
			c, _ := m.p.Cost(class)
			v += r * c.API
		}
	}
	return v
}

func (m *model) sloOf(class string) time.Duration {
	switch class {
	case AddToCart, Checkout:
		return m.e.SLO.CheckoutP99.D()
	case DropJoin, DropStatus:
		return m.e.SLO.QueueP99.D()
	}
	return m.e.SLO.PageP99.D()
}

// predict returns the p99 of each class when each of n API pods carries
// rates/n, and the first SLO the rates break ("" when none).
func (m *model) predict(rates map[string]float64, n int) (map[string]float64, string) {
	podCores := m.podCPU(rates) / float64(n)
	// What the pod's load would have been on the calibrated replica.
	u := podCores / m.p.Target.Cores
	if !m.fixed {
		u = podCores / math.Min(m.limit, m.p.Target.Cores)
	}
	out := map[string]float64{}
	why := ""
	for _, class := range sortedKeys(rates) {
		if rates[class] <= 0 {
			continue
		}
		cc := m.p.Classes[class]
		v := cc.p99At(u)
		out[class] = v
		if why == "" && (math.IsInf(v, 1) || v > float64(m.sloOf(class).Milliseconds())) {
			if math.IsInf(v, 1) {
				why = fmt.Sprintf("%s past the replica's knee (%.0f%% of its CPU, the knee at %.0f%%)", class, 100*u, 100*cc.KneeUtilization)
			} else {
				why = fmt.Sprintf("%s p99 %.0fms over its SLO %s at %.0f%% CPU", class, v, m.sloOf(class), 100*u)
			}
		}
	}
	return out, why
}

// size fills in replicas, utilisation, the predicted p99 and the engines
// for a phase's peak rates.
func (m *model) size(pp *PhasePlan) {
	e, p := m.e, m.p
	for class, r := range pp.Requests {
		c, _ := p.Cost(class)
		pp.CPU = pp.CPU.Add(c, r)
		if cc := p.Classes[class]; cc != nil {
			pp.RedisOps += r * cc.RedisOps
			pp.NATSMsgs += r * cc.Events
		}
	}
	podCores := m.podCPU(pp.Requests)
	if m.fixed {
		pp.APIReplicas = e.Pods.Replicas
	} else {
		pp.APIReplicas = max(1, int(math.Ceil(podCores/(e.TargetUtilization*m.apiCPU)-1e-9)))
		pp.APIReplicas = max(pp.APIReplicas, m.cluster.HPA.MinReplicas)
		// The knee: a pod must not be loaded past what it held within SLO.
		// When even an unloaded pod misses an SLO (the calibration's
		// lightest step already over it), no pod count holds it: more
		// pods would not help, so the search does not run away.
		if _, why := m.predict(pp.Requests, math.MaxInt32); why == "" {
			for {
				if _, why := m.predict(pp.Requests, pp.APIReplicas); why == "" {
					break
				}
				pp.APIReplicas++
			}
		}
	}
	pp.Utilization = podCores / float64(pp.APIReplicas) / m.apiCPU
	pp.P99, pp.BreachWhy = m.predict(pp.Requests, pp.APIReplicas)
	if _, idle := m.predict(pp.Requests, math.MaxInt32); idle != "" && !m.fixed {
		pp.BreachWhy = "no pod count holds it, even an idle pod misses: " + idle
	}
	pp.Breach = pp.BreachWhy != ""
	pp.P99Out = map[string]*float64{}
	for k, v := range pp.P99 {
		if !math.IsInf(v, 1) {
			v := math.Round(v*10) / 10
			pp.P99Out[k] = &v
		} else {
			pp.P99Out[k] = nil
		}
	}
	// The session rate that keeps the SLO on these replicas, at most the
	// target utilisation: what a standby line should admit.
	scale := func(f float64) map[string]float64 {
		r := map[string]float64{}
		for k, v := range pp.Requests {
			r[k] = v * f
		}
		return r
	}
	lo, hi := 0.0, 1.0
	if podCores > 0 {
		hi = math.Max(1, 2*e.TargetUtilization*m.apiCPU*float64(pp.APIReplicas)/podCores)
	}
	for range 60 {
		mid := (lo + hi) / 2
		r := scale(mid)
		_, why := m.predict(r, pp.APIReplicas)
		if why == "" && m.podCPU(r)/float64(pp.APIReplicas) <= e.TargetUtilization*m.apiCPU*(1+1e-9) {
			lo = mid
		} else {
			hi = mid
		}
	}
	pp.AdmitSessions = lo * pp.Sessions

	workerCores := pp.CPU.Worker
	pp.WorkerReplicas = max(m.cluster.WorkerReplicas, int(math.Ceil(workerCores/(e.TargetUtilization*m.workerCPU)-1e-9)))
	if m.fixed {
		pp.WorkerReplicas = 0
	}
	pp.DB.Cores = pp.CPU.Database
	pp.DB.VCPUs = max(2, int(math.Ceil(pp.CPU.Database/e.TargetUtilization-1e-9)))
	pool := p.Conns.DBPool
	if pool <= 0 {
		pool = 10 // pgx's pool default on a 2-CPU pod is 4; Surge sizes it to at most 10
	}
	pp.DB.PoolPerReplica = pool
	pp.DB.MaxConnections = pool*(pp.APIReplicas+pp.WorkerReplicas) + 10
	pp.MemoryPerPod = p.Memory.BaseBytes + (pp.Active*p.Memory.PerSessionBytes+pp.Waiting*p.Memory.PerWaitingBuyer)/float64(pp.APIReplicas)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// timeline orders the actions around the event.
func (m *model) timeline(pl *Plan) []Moment {
	e := m.e
	lead := e.Pods.Startup.D() + e.Pods.Warmup.D() + 2*time.Minute
	var out []Moment
	add := func(rel time.Duration, what string) {
		out = append(out, Moment{At: e.Start.Add(rel).In(e.Location()), Rel: rel.Seconds(), What: what})
	}
	base := m.cluster.HPA.MinReplicas
	if m.fixed {
		base = e.Pods.Replicas
	}
	prev := base
	peak := 0
	for i, pp := range pl.Phases {
		at := time.Duration(pp.From * float64(time.Second))
		peak = max(peak, pp.APIReplicas)
		if pp.APIReplicas > prev {
			add(at-lead, fmt.Sprintf("scale the API to %d replicas and the worker to %d for %s (start-up %s + warm-up %s + 2m margin)",
				pp.APIReplicas, pp.WorkerReplicas, pp.Name, e.Pods.Startup.D(), e.Pods.Warmup.D()))
		} else if pp.APIReplicas < prev && i > 0 {
			add(at+5*time.Minute, fmt.Sprintf("let the API go down to %d replicas (5 min into %s, once the line has drained)", pp.APIReplicas, pp.Name))
		}
		prev = pp.APIReplicas
		if ph := e.Phases[i]; ph.Drop != nil {
			add(at-ph.Drop.PreQueue.D(), fmt.Sprintf("open the pre-queue of %s (buyers who come early get a random place at the start)", pp.Name))
			add(at-2*time.Minute, fmt.Sprintf("Surge warms the drop's pages and database pools (--drop-warmup 2m) for %s", pp.Name))
		}
		if ph := e.Phases[i]; ph.X > 1 && (i == 0 || ph.X > e.Phases[i-1].X) {
			add(at-time.Minute, fmt.Sprintf("warm the page cache for %s: request the home, category and campaign pages once", pp.Name))
		}
	}
	end := time.Duration(pl.Phases[len(pl.Phases)-1].To * float64(time.Second))
	add(end, fmt.Sprintf("the event ends: return minReplicas to %d; the HPA scales down after its %s window", base, m.cluster.HPA.Down.Window))
	sort.SliceStable(out, func(i, j int) bool { return out[i].Rel < out[j].Rel })
	return out
}

func assumptions(p *Profile, e *Event) []string {
	return []string{
		"CPU is the resource that runs out; each request costs what calibration measured on " + p.Machine.Host + ", scaled linearly across pods.",
		"A session's requests happen at its arrival rate (steady state): think times shift load by seconds, not minutes.",
		fmt.Sprintf("Pods are ready %s after they are created and at full speed %s later; the HPA sees CPU %s late.",
			e.Pods.Startup.D(), e.Pods.Warmup.D(), e.Pods.MetricLag.D()),
		"A pod's p99 follows the curve measured at calibration's steps; past the last step that held the SLO it is taken as breached.",
		"PostgreSQL, Redis and NATS scale by their own CPU per request; their latency is not modelled (the server exports no DB or NATS timings yet).",
	}
}
