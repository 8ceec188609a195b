package capacity

import (
	"testing"
	"time"
)

// The worked examples of the Kubernetes documentation's "Horizontal Pod
// Autoscaling" page (algorithm details, scaling policies, stabilisation,
// default behavior), replayed through the controller.

func docHPA() HPA {
	return HPA{MinReplicas: 1, MaxReplicas: 1000, TargetUtilization: 1, Tolerance: 0.1, Up: defaultScaleUp, Down: defaultScaleDown}
}

// "if the current metric value is 200m, and the desired value is 100m,
// the number of replicas will be doubled ... If the current value is
// instead 50m, you'll halve the number of replicas"; and a ratio within
// the 0.1 tolerance changes nothing.
func TestHPARatioExamples(t *testing.T) {
	for _, tc := range []struct {
		name      string
		cur, want int
		metric    float64 // current / desired
	}{
		{"200m of 100m doubles", 4, 8, 2.0},
		{"50m of 100m halves", 4, 2, 0.5},
		{"within tolerance above", 10, 10, 1.09},
		{"within tolerance below", 10, 10, 0.91},
		{"just past tolerance", 10, 12, 1.11},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := docHPA()
			h.Down.Window = 0
			h.Down.Policies = nil // no rate limit: the bare algorithm
			h.Up.Policies = nil
			c := &Controller{HPA: h}
			got := c.Sync(15*time.Second, Sample{Replicas: tc.cur, Ready: tc.cur, Utilization: tc.metric})
			if got != tc.want {
				t.Errorf("%d replicas at %.2fx the target: got %d, want %d", tc.cur, tc.metric, got, tc.want)
			}
		})
	}
}

// The documentation's scaling-policy example: Pods 4 and Percent 10 per
// 60 s on scale-down. "if there are 80 replicas and the target has to be
// scaled down to 10 replicas then during the first step 8 replicas will
// be reduced. In the next iteration when the number of replicas is 72,
// 10% of the pods is 7.2 but the number is rounded up to 8 ... When the
// number of replicas falls below 40 the first policy (Pods) is applied
// and 4 replicas will be reduced at a time."
func TestHPAScaleDownPolicyExample(t *testing.T) {
	h := docHPA()
	h.Down = ScalingRules{Window: 0, SelectPolicy: "Max", Policies: []ScalingPolicy{
		{Type: "Pods", Value: 4, Period: time.Minute}, {Type: "Percent", Value: 10, Period: time.Minute}}}
	c := &Controller{HPA: h}
	cur := 80
	var perMinute []int
	for s := 15 * time.Second; s <= 12*time.Minute; s += 15 * time.Second {
		// Load that needs 10 replicas whatever runs.
		cur = c.Sync(s, Sample{Replicas: cur, Ready: cur, Utilization: 10 / float64(cur)})
		if s%time.Minute == 15*time.Second {
			perMinute = append(perMinute, cur)
		}
	}
	want := []int{72, 64, 57, 51, 45, 40, 36, 32, 28, 24, 20, 16}
	for i := range want {
		if perMinute[i] != want[i] {
			t.Fatalf("replicas minute by minute: got %v, want %v", perMinute, want)
		}
	}
	// Within a period, no second step: 80 -> 72 and then wait a minute.
	c = &Controller{HPA: h}
	a := c.Sync(15*time.Second, Sample{Replicas: 80, Ready: 80, Utilization: 10.0 / 80})
	b := c.Sync(30*time.Second, Sample{Replicas: a, Ready: a, Utilization: 10.0 / float64(a)})
	if a != 72 || b != 72 {
		t.Errorf("two syncs in one period: %d then %d, want 72 and 72", a, b)
	}
}

// The default behavior: scale up by the larger of 100% and 4 pods every
// 15 s, with no stabilisation window.
func TestHPADefaultScaleUp(t *testing.T) {
	c := &Controller{HPA: docHPA()}
	cur := 1
	var got []int
	for s := 15 * time.Second; s <= 60*time.Second; s += 15 * time.Second {
		cur = c.Sync(s, Sample{Replicas: cur, Ready: cur, Utilization: 100 / float64(cur)})
		got = append(got, cur)
	}
	want := []int{5, 10, 20, 40}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("default scale-up from 1 toward 100: got %v, want %v", got, want)
		}
	}
}

// Stabilisation: "When the metrics indicate that the target should be
// scaled down the algorithm looks into previously computed desired states,
// and uses the highest value from the specified interval" (300 s by
// default), so a brief dip does not scale down, and a lasting one does
// once the window has passed.
func TestHPAScaleDownStabilization(t *testing.T) {
	c := &Controller{HPA: docHPA()}
	cur := 10
	sync := func(s time.Duration, need float64) {
		cur = c.Sync(s, Sample{Replicas: cur, Ready: cur, Utilization: need / float64(cur)})
	}
	sync(15*time.Second, 10)
	for s := 30 * time.Second; s <= 300*time.Second; s += 15 * time.Second {
		sync(s, 4)
		if cur != 10 {
			t.Fatalf("scaled down to %d at %s, inside the 300 s window after a recommendation of 10", cur, s)
		}
	}
	sync(315*time.Second, 4)
	if cur != 4 {
		t.Errorf("after the window: %d replicas, want 4", cur)
	}
}

// selectPolicy Disabled turns a direction off; Min picks the policy that
// changes least.
func TestHPASelectPolicy(t *testing.T) {
	h := docHPA()
	h.Down = ScalingRules{SelectPolicy: "Disabled"}
	c := &Controller{HPA: h}
	if got := c.Sync(15*time.Second, Sample{Replicas: 10, Ready: 10, Utilization: 0.1}); got != 10 {
		t.Errorf("scale-down disabled: %d, want 10", got)
	}
	h = docHPA()
	h.Up = ScalingRules{SelectPolicy: "Min", Policies: []ScalingPolicy{
		{Type: "Percent", Value: 100, Period: 15 * time.Second}, {Type: "Pods", Value: 4, Period: 15 * time.Second}}}
	c = &Controller{HPA: h}
	if got := c.Sync(15*time.Second, Sample{Replicas: 10, Ready: 10, Utilization: 5}); got != 14 {
		t.Errorf("Min of +100%% and +4 from 10: %d, want 14", got)
	}
}

// Pods not yet ready: "we conservatively assume that the not-yet-ready
// pods are consuming 0% of the desired metric" when scaling up, and if the
// recomputed ratio is within tolerance (or reverses) nothing changes.
func TestHPANotReadyPods(t *testing.T) {
	h := docHPA()
	h.Up.Policies = nil
	c := &Controller{HPA: h}
	// 4 ready at 150%, 2 starting: 4*1.5/6 = 1.0, within tolerance.
	if got := c.Sync(15*time.Second, Sample{Replicas: 6, Ready: 4, Utilization: 1.5}); got != 6 {
		t.Errorf("new pods still starting: %d, want 6 (no second scale-up)", got)
	}
	// 4 ready at 300%, 2 starting: 4*3/6 = 2.0 -> 12.
	if got := c.Sync(30*time.Second, Sample{Replicas: 6, Ready: 4, Utilization: 3}); got != 12 {
		t.Errorf("load still above: %d, want 12", got)
	}
}

func TestHPAFromShippedManifests(t *testing.T) {
	c, err := ReadCluster("../../deploy/k8s/base")
	if err != nil {
		t.Fatal(err)
	}
	h := c.HPA
	if h.MinReplicas != 3 || h.MaxReplicas != 30 || h.TargetUtilization != 0.7 {
		t.Errorf("bounds and target: %+v", h)
	}
	if h.Up.Window != 0 || h.Up.SelectPolicy != "Max" || len(h.Up.Policies) != 2 || h.Down.Window != 300*time.Second ||
		h.Down.SelectPolicy != "Min" || len(h.Down.Policies) != 1 || h.Down.Policies[0].Value != 10 || h.Down.Policies[0].Period != time.Minute {
		t.Errorf("behavior: up %+v, down %+v", h.Up, h.Down)
	}
	if c.APICPU != 0.5 || c.APILimit != 2 || c.WorkerCPU != 0.25 || c.WorkerReplicas != 2 || c.APIDeployment != "surge-api" || c.Namespace != "surge" {
		t.Errorf("deployments: %+v", c)
	}
}
