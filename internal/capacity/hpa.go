package capacity

import (
	"errors"
	"fmt"
	"math"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
)

// HPA is the part of a HorizontalPodAutoscaler the simulator needs: its
// bounds, its CPU utilisation target and its behavior, with Kubernetes's
// defaults filled in for what the object leaves out.
type HPA struct {
	MinReplicas, MaxReplicas int
	TargetUtilization        float64 // of the CPU request, 0..n (0.7 is 70%)
	Tolerance                float64 // the controller's, 0.1 by default
	Up, Down                 ScalingRules
}

// ScalingRules is one direction of an HPA's behavior.
type ScalingRules struct {
	Window       time.Duration // stabilisation window
	SelectPolicy string        // Max, Min or Disabled
	Policies     []ScalingPolicy
}

// ScalingPolicy limits the change in replicas over a period.
type ScalingPolicy struct {
	Type   string // Pods or Percent
	Value  int
	Period time.Duration
}

// DefaultScaleUp and DefaultScaleDown are the behavior Kubernetes applies
// when an HPA sets none: add the larger of 100% or 4 pods every 15 s with
// no stabilisation; remove up to 100% every 15 s after a 300 s window.
var (
	defaultScaleUp = ScalingRules{SelectPolicy: "Max", Policies: []ScalingPolicy{
		{Type: "Percent", Value: 100, Period: 15 * time.Second}, {Type: "Pods", Value: 4, Period: 15 * time.Second}}}
	defaultScaleDown = ScalingRules{Window: 300 * time.Second, SelectPolicy: "Max", Policies: []ScalingPolicy{
		{Type: "Percent", Value: 100, Period: 15 * time.Second}}}
)

// HPAFromSpec reads an autoscaling/v2 HPA that scales on CPU utilisation.
func HPAFromSpec(spec autoscalingv2.HorizontalPodAutoscalerSpec) (HPA, error) {
	h := HPA{MaxReplicas: int(spec.MaxReplicas), MinReplicas: 1, Tolerance: 0.1, Up: defaultScaleUp, Down: defaultScaleDown}
	if spec.MinReplicas != nil {
		h.MinReplicas = int(*spec.MinReplicas)
	}
	for _, m := range spec.Metrics {
		if m.Type == autoscalingv2.ResourceMetricSourceType && m.Resource != nil && m.Resource.Name == "cpu" &&
			m.Resource.Target.AverageUtilization != nil {
			h.TargetUtilization = float64(*m.Resource.Target.AverageUtilization) / 100
		}
	}
	if h.TargetUtilization <= 0 {
		return h, errors.New("the HPA has no CPU utilisation target (metrics: Resource cpu, target averageUtilization)")
	}
	if b := spec.Behavior; b != nil {
		var err error
		if h.Up, err = rulesFromSpec(b.ScaleUp, defaultScaleUp); err != nil {
			return h, fmt.Errorf("scaleUp: %w", err)
		}
		if h.Down, err = rulesFromSpec(b.ScaleDown, defaultScaleDown); err != nil {
			return h, fmt.Errorf("scaleDown: %w", err)
		}
		if b.ScaleUp != nil && b.ScaleUp.Tolerance != nil {
			h.Tolerance = b.ScaleUp.Tolerance.AsApproximateFloat64()
		}
	}
	return h, h.validate()
}

func rulesFromSpec(r *autoscalingv2.HPAScalingRules, def ScalingRules) (ScalingRules, error) {
	if r == nil {
		return def, nil
	}
	out := def
	if r.StabilizationWindowSeconds != nil {
		out.Window = time.Duration(*r.StabilizationWindowSeconds) * time.Second
	}
	if r.SelectPolicy != nil {
		out.SelectPolicy = string(*r.SelectPolicy)
	}
	if r.Policies != nil {
		out.Policies = nil
		for _, p := range r.Policies {
			out.Policies = append(out.Policies, ScalingPolicy{Type: string(p.Type), Value: int(p.Value),
				Period: time.Duration(p.PeriodSeconds) * time.Second})
		}
	}
	return out, nil
}

func (h HPA) validate() error {
	if h.MinReplicas < 1 || h.MaxReplicas < h.MinReplicas {
		return fmt.Errorf("replicas %d..%d: want 1 <= min <= max", h.MinReplicas, h.MaxReplicas)
	}
	for _, r := range []ScalingRules{h.Up, h.Down} {
		switch r.SelectPolicy {
		case "Max", "Min", "Disabled":
		default:
			return fmt.Errorf("selectPolicy %q: want Max, Min or Disabled", r.SelectPolicy)
		}
		for _, p := range r.Policies {
			if (p.Type != "Pods" && p.Type != "Percent") || p.Value <= 0 || p.Period <= 0 {
				return fmt.Errorf("policy %s %d per %s: want Pods or Percent, a positive value and period", p.Type, p.Value, p.Period)
			}
		}
	}
	return nil
}

// Controller is the HPA's replica calculation as kube-controller-manager
// does it on every sync: the usage ratio over ready pods, the tolerance,
// not-yet-ready pods counted as idle when scaling up, the stabilisation
// windows over past recommendations and the policies' rate limits over
// past scale events. It keeps that history between calls.
type Controller struct {
	HPA     HPA
	recs    []timedInt // recommendations (desired replicas before behavior)
	upEv    []timedInt // replicas added, by when
	downEv  []timedInt // replicas removed, by when
	lastNow time.Duration
}

type timedInt struct {
	at time.Duration
	n  int
}

// Sample is what the controller sees at one sync: the replicas the target
// has (ready or not), how many are ready, and the mean CPU utilisation of
// the ready ones as a share of their request (1.0 is 100%).
type Sample struct {
	Replicas, Ready int
	Utilization     float64
}

// Desired is the replica count before behavior: the usage ratio times the
// pods, as replica_calculator.go computes it for a resource metric.
func (c *Controller) desired(s Sample) int {
	h := c.HPA
	if s.Ready == 0 {
		return s.Replicas
	}
	ratio := s.Utilization / h.TargetUtilization
	unready := s.Replicas - s.Ready
	if unready <= 0 || ratio <= 1 {
		// Unready pods are ignored when scaling down or when all are ready.
		if math.Abs(1-ratio) <= h.Tolerance {
			return s.Replicas
		}
		return int(math.Ceil(ratio * float64(s.Ready)))
	}
	// Scaling up with pods not yet ready: they count as using nothing,
	// so a rising metric is not acted on twice while new pods start.
	newRatio := s.Utilization * float64(s.Ready) / float64(s.Replicas) / h.TargetUtilization
	if math.Abs(1-newRatio) <= h.Tolerance || newRatio < 1 {
		return s.Replicas
	}
	n := int(math.Ceil(newRatio * float64(s.Replicas)))
	if n < s.Replicas {
		return s.Replicas
	}
	return n
}

// Sync runs one reconciliation at now (time since the simulation began)
// and returns the replica count the controller sets.
func (c *Controller) Sync(now time.Duration, s Sample) int {
	h := c.HPA
	c.lastNow = now
	cur := s.Replicas
	want := c.desired(s)

	// Stabilisation: the lowest recommendation of the scale-up window and
	// the highest of the scale-down window bound the new one.
	up, down := want, want
	for _, r := range c.recs {
		if r.at > now-h.Up.Window {
			up = min(up, r.n)
		}
		if r.at > now-h.Down.Window {
			down = max(down, r.n)
		}
	}
	c.recs = append(c.recs, timedInt{now, want})
	keep := max(h.Up.Window, h.Down.Window)
	c.recs = trim(c.recs, now-keep)
	rec := cur
	if rec < up {
		rec = up
	}
	if rec > down {
		rec = down
	}

	// Rate limits, then the HPA's bounds.
	lo, hi := h.MinReplicas, h.MaxReplicas
	switch {
	case rec > cur:
		if l := c.upLimit(now, cur); l < hi {
			hi = max(l, cur)
		}
	case rec < cur:
		if l := c.downLimit(now, cur); l > lo {
			lo = min(l, cur)
		}
	}
	next := min(max(rec, lo), hi)
	switch {
	case next > cur:
		c.upEv = append(c.upEv, timedInt{now, next - cur})
	case next < cur:
		c.downEv = append(c.downEv, timedInt{now, cur - next})
	}
	c.upEv = trim(c.upEv, now-longest(h.Up))
	c.downEv = trim(c.downEv, now-longest(h.Down))
	return next
}

func trim(ev []timedInt, before time.Duration) []timedInt {
	i := 0
	for i < len(ev) && ev[i].at <= before {
		i++
	}
	return ev[i:]
}

func longest(r ScalingRules) time.Duration {
	var d time.Duration
	for _, p := range r.Policies {
		d = max(d, p.Period)
	}
	return d
}

// changed sums the changes recorded within period before now.
func changed(ev []timedInt, now, period time.Duration) int {
	n := 0
	for _, e := range ev {
		if e.at > now-period {
			n += e.n
		}
	}
	return n
}

// upLimit is calculateScaleUpLimitWithScalingRules: each policy allows
// growth from the replicas at the start of its period; Max takes the most
// generous, Min the strictest.
func (c *Controller) upLimit(now time.Duration, cur int) int {
	r := c.HPA.Up
	if r.SelectPolicy == "Disabled" {
		return cur
	}
	result := math.MinInt
	pick := func(a, b int) int { return max(a, b) }
	if r.SelectPolicy == "Min" {
		result, pick = math.MaxInt, func(a, b int) int { return min(a, b) }
	}
	for _, p := range r.Policies {
		start := cur - changed(c.upEv, now, p.Period)
		var proposed int
		if p.Type == "Pods" {
			proposed = start + p.Value
		} else {
			proposed = int(math.Ceil(float64(start) * (1 + float64(p.Value)/100)))
		}
		result = pick(result, proposed)
	}
	if len(r.Policies) == 0 {
		return math.MaxInt
	}
	return result
}

// downLimit is calculateScaleDownLimitWithBehaviors: Max picks the policy
// that removes the most (the lowest floor), Min the one that removes the
// least.
func (c *Controller) downLimit(now time.Duration, cur int) int {
	r := c.HPA.Down
	if r.SelectPolicy == "Disabled" {
		return cur
	}
	result := math.MaxInt
	pick := func(a, b int) int { return min(a, b) }
	if r.SelectPolicy == "Min" {
		result, pick = math.MinInt, func(a, b int) int { return max(a, b) }
	}
	for _, p := range r.Policies {
		start := cur + changed(c.downEv, now, p.Period)
		var proposed int
		if p.Type == "Pods" {
			proposed = start - p.Value
		} else {
			proposed = int(float64(start) * (1 - float64(p.Value)/100))
		}
		result = pick(result, proposed)
	}
	if len(r.Policies) == 0 {
		return 0
	}
	return result
}
