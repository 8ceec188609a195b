package capacity

import (
	"math"
	"time"
)

// SimResult is how one scaling strategy fared against the event.
type SimResult struct {
	Strategy string `json:"strategy"`
	// UnderCapacity is the seconds during which demand exceeded what the
	// ready pods could serve within the SLO.
	UnderCapacity float64 `json:"under_capacity_s"`
	// Shed is the requests that would have got a 503 without a line;
	// Queued the visitors a standby line (or the drop's waiting room)
	// would have held instead, waiting at most LongestWait seconds.
	Shed        float64 `json:"shed_requests"`
	Queued      float64 `json:"queued_sessions"`
	LongestWait float64 `json:"longest_wait_s"`
	PeakPods    int     `json:"peak_pods"`
	PodSeconds  float64 `json:"pod_seconds"`
	// Series, one point every Step seconds.
	Step   float64    `json:"step_s"`
	Points []SimPoint `json:"points"`
}

// SimPoint is one moment of the simulation.
type SimPoint struct {
	T        float64 `json:"t"`
	Demand   float64 `json:"demand_cores"`
	Capacity float64 `json:"capacity_cores"`
	Pods     int     `json:"pods"`
	Ready    int     `json:"ready"`
	Backlog  float64 `json:"backlog_sessions"`
}

// Cluster simulation settings.
type simSetup struct {
	hpa       HPA
	request   float64 // CPU request per pod, cores
	podCap    float64 // cores a ready pod serves within the SLO
	startup   time.Duration
	warmup    time.Duration
	lag       time.Duration
	sync      time.Duration
	minAt     func(t time.Duration) int // minReplicas over time (pre-scaling), nil: the HPA's
	demand    func(t time.Duration) float64
	perReq    float64 // cores per request, for the shed count
	perSess   float64 // cores per session, for the line
	span      time.Duration
	fixedPods int // >0: no autoscaling at all
}

type pod struct{ created time.Duration }

// run simulates second by second: pods start, become ready after start-up
// and reach full speed after warm-up; every sync the controller sees the
// ready pods' mean CPU of lag ago (metrics-server's window) and resizes.
func (s simSetup) run(name string) SimResult {
	res := SimResult{Strategy: name, Step: 1}
	start := s.hpa.MinReplicas
	if s.minAt != nil {
		start = max(start, s.minAt(0))
	}
	if s.fixedPods > 0 {
		start = s.fixedPods
	}
	ctl := &Controller{HPA: s.hpa}
	pods := make([]pod, start)
	for i := range pods {
		pods[i] = pod{created: -time.Hour} // running before the event
	}
	type obs struct{ util float64 }
	var hist []obs
	var backlog, waitStart float64
	waitStart = -1
	every := max(1, int(s.span.Seconds()/600))
	for t := time.Duration(0); t < s.span; t += time.Second {
		ready, capCores := 0, 0.0
		for _, p := range pods {
			age := t - p.created
			switch {
			case age >= s.startup+s.warmup:
				ready++
				capCores += s.podCap
			case age >= s.startup:
				ready++
				capCores += s.podCap * float64(age-s.startup) / float64(max(s.warmup, time.Second))
			}
		}
		d := s.demand(t)
		served := math.Min(d+backlog*s.perSess, capCores)
		short := d - capCores
		if short > 1e-9 {
			res.UnderCapacity++
			res.Shed += short / s.perReq
			res.Queued += short / s.perSess
			if waitStart < 0 {
				waitStart = t.Seconds()
			}
		}
		backlog = math.Max(0, backlog+(d-served)/s.perSess)
		if backlog <= 1e-6 && waitStart >= 0 {
			res.LongestWait = math.Max(res.LongestWait, t.Seconds()-waitStart)
			waitStart = -1
		}
		util := 0.0
		if ready > 0 {
			util = served / (float64(ready) * s.request)
		}
		hist = append(hist, obs{util})
		res.PodSeconds += float64(len(pods))
		res.PeakPods = max(res.PeakPods, len(pods))
		if int(t.Seconds())%every == 0 {
			res.Points = append(res.Points, SimPoint{T: t.Seconds(), Demand: d, Capacity: capCores, Pods: len(pods), Ready: ready, Backlog: backlog})
		}
		if s.fixedPods > 0 || t%s.sync != 0 || t == 0 {
			continue
		}
		// The metric: the mean over the 15 s before (t - lag).
		end := int((t - s.lag).Seconds())
		var sum float64
		n := 0
		for i := max(0, end-15); i < end && i < len(hist); i++ {
			sum += hist[i].util
			n++
		}
		if n == 0 {
			continue
		}
		h := s.hpa
		if s.minAt != nil {
			h.MinReplicas = min(max(h.MinReplicas, s.minAt(t)), h.MaxReplicas)
		}
		ctl.HPA = h
		want := ctl.Sync(t, Sample{Replicas: len(pods), Ready: ready, Utilization: sum / float64(n)})
		for len(pods) < want {
			pods = append(pods, pod{created: t})
		}
		if len(pods) > want {
			// The newest go first, as a ReplicaSet prefers not-ready pods.
			pods = pods[:want]
		}
	}
	if waitStart >= 0 {
		res.LongestWait = math.Max(res.LongestWait, s.span.Seconds()-waitStart)
	}
	res.Step = float64(every)
	return res
}

// simulate runs the shipped HPA alone, and the plan's pre-scaling (its
// minReplicas schedule under the same HPA), against the event.
func (m *model) simulate(pl *Plan, per map[string]float64) (reactive, prescaled SimResult) {
	e := m.e
	perSess := m.podCPU(per)
	var reqs float64
	for _, n := range per {
		reqs += n
	}
	perReq := perSess / math.Max(reqs, 1e-9)
	dropLoad := make([]float64, 0)
	// The drops' own load second by second, on top of the ordinary
	// sessions (their line sized as planned).
	var at time.Duration
	di := 0
	for _, ph := range e.Phases {
		if ph.Drop != nil && di < len(pl.Drops) {
			dp := pl.Drops[di]
			di++
			a := float64(dp.AdmitPerMinute) / 60
			_, _, series := lineSim(ph.Drop, ph.For.D(), a, true)
			for _, load := range series {
				dropLoad = append(dropLoad, m.podCPU(load))
			}
		} else {
			for s := 0; s < int(ph.For.D().Seconds()); s++ {
				dropLoad = append(dropLoad, 0)
			}
		}
		at += ph.For.D()
	}
	demand := func(t time.Duration) float64 {
		d := e.SessionRate(t) * perSess
		if i := int(t.Seconds()); i < len(dropLoad) {
			d += dropLoad[i]
		}
		return d
	}
	kneeU := 1.0
	for class := range per {
		if c := m.p.Classes[class]; c != nil && c.KneeUtilization > 0 && c.Saturated {
			kneeU = math.Min(kneeU, c.KneeUtilization)
		}
	}
	podCap := math.Min(m.limit, m.p.Target.Cores) * kneeU
	if m.fixed {
		podCap = m.apiCPU * kneeU
	}
	s := simSetup{hpa: m.cluster.HPA, request: m.apiCPU, podCap: podCap, startup: e.Pods.Startup.D(), warmup: e.Pods.Warmup.D(),
		lag: e.Pods.MetricLag.D(), sync: 15 * time.Second, demand: demand, perReq: perReq, perSess: perSess, span: e.Duration()}
	if m.fixed {
		s.fixedPods = e.Pods.Replicas
		r := s.run("fixed replicas")
		return r, r
	}
	reactive = s.run("shipped HPA alone")
	lead := e.Pods.Startup.D() + e.Pods.Warmup.D() + 2*time.Minute
	s.minAt = func(t time.Duration) int {
		n := 0
		for _, pp := range pl.Phases {
			from := time.Duration(pp.From*float64(time.Second)) - lead
			to := time.Duration(pp.To * float64(time.Second))
			if t >= from && t < to {
				n = max(n, pp.APIReplicas)
			}
		}
		return n
	}
	prescaled = s.run("pre-scaled by this plan")
	return reactive, prescaled
}
