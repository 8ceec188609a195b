package capacity

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	sigsyaml "sigs.k8s.io/yaml"
)

// testProfile is a profile as calibration writes it, with round figures.
func testProfile() *Profile {
	steps := func(rate float64) []Step {
		return []Step{{Offered: rate * .3, Utilization: .3, P99: 5}, {Offered: rate * .6, Utilization: .6, P99: 12},
			{Offered: rate * .85, Utilization: .85, P99: 60}, {Offered: rate, Utilization: .95, P99: 2000}}
	}
	cls := func(api, worker, db float64) *ClassCost {
		c := Components{API: api, Worker: worker, Database: db, NATS: worker / 10}
		return &ClassCost{CPU: c, Requests: 1000, KneeRate: .85 / (api + worker + db), KneeUtilization: .85, Saturated: true, Steps: steps(1 / api)}
	}
	return &Profile{Version: 1, Taken: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC), Machine: Machine{Host: "test", CPUs: 2},
		Target: Target{URL: "http://127.0.0.1:8080", Version: "test", Cores: 1, Worker: "in-process", Embedded: []string{"database", "nats"}},
		Classes: map[string]*ClassCost{
			CachedPage: cls(100e-6, 0, 0), UncachedPage: cls(600e-6, 0, 200e-6), Search: cls(700e-6, 0, 300e-6),
			AddToCart: cls(400e-6, 0, 200e-6), Checkout: cls(1e-3, 2e-3, 1e-3), DropJoin: cls(150e-6, 0, 0), DropStatus: cls(50e-6, 0, 0)},
		Memory: Memory{BaseBytes: 50 << 20, PerSessionBytes: 2000, PerWaitingBuyer: 500}}
}

const dropEvent = `
name: Friday drop
start: 2026-12-04T19:00:00+01:00
timezone: Europe/Amsterdam
baseline: 400
mix: {browse: 80, buy: 20}
phases:
  - {name: before, for: 10m, x: 1}
  - {name: spike, for: 20m, x: 15}
  - name: drop
    for: 10m
    x: 2
    drop: {buyers: 1000000, within: 2m, units: 1000}
  - {name: after, for: 30m, x: 1}
`

func planFor(t *testing.T, event string) (*Plan, *Event) {
	t.Helper()
	e, err := ParseEvent([]byte(event))
	if err != nil {
		t.Fatal(err)
	}
	c, err := ReadCluster("../../deploy/k8s/base")
	if err != nil {
		t.Fatal(err)
	}
	pl, err := Make(testProfile(), e, c)
	if err != nil {
		t.Fatal(err)
	}
	return pl, e
}

func TestPlanDropEvent(t *testing.T) {
	pl, _ := planFor(t, dropEvent)
	// A browse session is 3 cached pages (300µs API), a buy 2 cached pages,
	// an add and a checkout (200+400+1000µs API): 0.8*300+0.2*1600 = 560µs.
	if got := pl.SessionCPU.API; math.Abs(got-560e-6) > 1e-9 {
		t.Errorf("API CPU per session %g, want 560µs", got)
	}
	spike := pl.Phases[1]
	// 6,000 sessions/s * 560µs = 3.36 cores; at 70% of 0.5 CPU: 9.6 -> 10;
	// before it, 0.224 cores: the HPA's floor of 3.
	if spike.APIReplicas != 10 || pl.Phases[0].APIReplicas != 3 {
		t.Errorf("API replicas before/spike: %d/%d, want 3/10", pl.Phases[0].APIReplicas, spike.APIReplicas)
	}
	// Worker: 6,000*0.2 checkouts/s * 2ms = 2.4 cores / (0.7*0.25) -> 14.
	if spike.WorkerReplicas != 14 {
		t.Errorf("worker replicas %d, want 14", spike.WorkerReplicas)
	}
	if len(pl.Drops) != 1 {
		t.Fatalf("%d drops", len(pl.Drops))
	}
	d := pl.Drops[0]
	if d.AdmitPerMinute <= 0 || d.ActiveCap <= 0 || d.SellOut <= 0 || d.Admitted < 999 || d.Admitted > 1001 {
		t.Errorf("drop plan: %+v", d)
	}
	if d.ToldSoldOut <= 0 || d.WaitMax < d.WaitMedian {
		t.Errorf("waits and sell-out: %+v", d)
	}
	// 1,000 units need 1,000 buyers: admitting faster than all of them in
	// a second, or holding more active, admits nobody more.
	if d.AdmitPerMinute > 60*1000 || d.ActiveCap > 1000 {
		t.Errorf("rate_per_minute %d, max_active %g for 1,000 units", d.AdmitPerMinute, d.ActiveCap)
	}
	// The status polls of up to a million waiting buyers: the drop phase
	// needs more API pods than its ordinary traffic (twice the baseline).
	if pl.Phases[2].APIReplicas <= 3 {
		t.Errorf("drop phase %d pods", pl.Phases[2].APIReplicas)
	}
	// Pre-scaling leaves no second under capacity; the HPA alone, starting
	// from 3 pods, some.
	if pl.PreScaled.UnderCapacity != 0 {
		t.Errorf("pre-scaled plan under capacity for %gs", pl.PreScaled.UnderCapacity)
	}
	if pl.Reactive.UnderCapacity <= 0 || pl.Reactive.Shed <= 0 {
		t.Errorf("reactive HPA: %gs under capacity, %g shed; want some", pl.Reactive.UnderCapacity, pl.Reactive.Shed)
	}
	var text bytes.Buffer
	if err := pl.Text(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"rate_per_minute", "timeline:", "open the pre-queue", "shipped HPA alone:"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, text.String())
		}
	}
	if _, err := json.Marshal(pl); err != nil {
		t.Errorf("JSON: %v", err)
	}
}

// A rehearsal event on one fixed replica: the predicted utilisation is the
// rate times the replica's CPU per session, and past the knee the plan
// says the SLO breaks and what to admit instead.
func TestPlanFixedReplicaPredictsBreach(t *testing.T) {
	ev := func(rate string) string {
		return "name: rehearsal\nstart: 2026-12-04T19:00:00Z\nbaseline: " + rate + "\nmix: {buy: 1}\npods: {replicas: 1, api_cpu: 1}\nphases:\n  - {name: load, for: 1m}\n"
	}
	// buy: 2 cached (100µs) + add (600µs) + checkout (4.2ms, everything in process) = 5ms per session.
	pl, _ := planFor(t, ev("100"))
	if got := pl.Phases[0].Utilization; math.Abs(got-0.5) > 1e-6 {
		t.Errorf("utilisation at 100 sessions/s: %g, want 0.5", got)
	}
	if pl.Phases[0].Breach {
		t.Errorf("breach at 50%%: %s", pl.Phases[0].BreachWhy)
	}
	// Priced per request: a checkout's API, in-process worker and embedded
	// database and NATS.
	if got := pl.RequestCPU[Checkout]; math.Abs(got-4.2e-3) > 1e-9 || len(pl.RequestCPU) != 3 {
		t.Errorf("replica CPU per request %v, want checkout 4.2ms among 3 classes", pl.RequestCPU)
	}
	pl, _ = planFor(t, ev("260"))
	p := pl.Phases[0]
	if !p.Breach || p.AdmitSessions <= 0 || p.AdmitSessions >= 260 {
		t.Errorf("at 125%% of the CPU: breach %v (%s), admit %g", p.Breach, p.BreachWhy, p.AdmitSessions)
	}
	// What it would admit keeps the utilisation at the 70% target.
	if got := p.AdmitSessions * 5e-3; math.Abs(got-0.7) > 0.01 {
		t.Errorf("admitting %g sessions/s loads %g of the core, want 0.7", p.AdmitSessions, got)
	}
}

func TestEventRejectsBadInput(t *testing.T) {
	for _, bad := range []string{
		"baseline: -1\nphases: [{name: a, for: 1m}]",
		"baseline: 1\nphases: [{name: a, for: 0s}]",
		"baseline: 1\nphases: [{name: a, for: 1m, x: 1e9}]",
		"baseline: 1\nmix: {nope: 1}\nphases: [{name: a, for: 1m}]",
		"baseline: 1\nphases: [{name: a, for: 1m, drop: {buyers: 0, within: 1m, units: 1}}]",
		"baseline: 1\nphases: [{name: a, for: 1m, drop: {buyers: 10, within: 2m, units: 1}}]",
		"baseline: 1\nphases: [{name: a, for: 1m}]\ntarget_utilization: 2",
		"baseline: 1\nphases: [{name: a, for: 1m}]\nunknown_field: 1",
		"baseline: 1\nphases: [{name: a, for: 1m}]\ntimezone: Mars/Olympus",
	} {
		if _, err := ParseEvent([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

// scaledObject mirrors KEDA v2's ScaledObject (github.com/kedacore/keda/v2
// apis/keda/v1alpha1, v2.18.3), field for field and with the same JSON
// names, so a strict decode fails on any field KEDA would not know. The
// module itself is not a dependency: see docs/capacity.md.
type scaledObject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              struct {
		ScaleTargetRef *struct {
			Name                   string `json:"name"`
			APIVersion             string `json:"apiVersion,omitempty"`
			Kind                   string `json:"kind,omitempty"`
			EnvSourceContainerName string `json:"envSourceContainerName,omitempty"`
		} `json:"scaleTargetRef"`
		PollingInterval       *int32 `json:"pollingInterval,omitempty"`
		InitialCooldownPeriod *int32 `json:"initialCooldownPeriod,omitempty"`
		CooldownPeriod        *int32 `json:"cooldownPeriod,omitempty"`
		IdleReplicaCount      *int32 `json:"idleReplicaCount,omitempty"`
		MinReplicaCount       *int32 `json:"minReplicaCount,omitempty"`
		MaxReplicaCount       *int32 `json:"maxReplicaCount,omitempty"`
		Advanced              *struct {
			HorizontalPodAutoscalerConfig *struct {
				Behavior *autoscalingv2.HorizontalPodAutoscalerBehavior `json:"behavior,omitempty"`
				Name     string                                         `json:"name,omitempty"`
			} `json:"horizontalPodAutoscalerConfig,omitempty"`
			RestoreToOriginalReplicaCount bool `json:"restoreToOriginalReplicaCount,omitempty"`
		} `json:"advanced,omitempty"`
		Triggers []struct {
			Type              string            `json:"type"`
			Name              string            `json:"name,omitempty"`
			UseCachedMetrics  bool              `json:"useCachedMetrics,omitempty"`
			Metadata          map[string]string `json:"metadata"`
			AuthenticationRef *struct {
				Name string `json:"name"`
				Kind string `json:"kind,omitempty"`
			} `json:"authenticationRef,omitempty"`
			MetricType autoscalingv2.MetricTargetType `json:"metricType,omitempty"`
		} `json:"triggers"`
	} `json:"spec"`
}

var cronField = []struct{ lo, hi int }{{0, 59}, {0, 23}, {1, 31}, {1, 12}}

func TestManifestsDecodeStrictly(t *testing.T) {
	pl, e := planFor(t, dropEvent)
	ms := pl.BuildManifests(e, "../../deploy/k8s/base")
	var so scaledObject
	if err := sigsyaml.UnmarshalStrict([]byte(ms["keda-scaledobject.yaml"]), &so); err != nil {
		t.Fatalf("ScaledObject: %v\n%s", err, ms["keda-scaledobject.yaml"])
	}
	if so.APIVersion != "keda.sh/v1alpha1" || so.Kind != "ScaledObject" || so.Spec.ScaleTargetRef.Name != "surge-api" || len(so.Spec.Triggers) != 2 {
		t.Fatalf("ScaledObject: %+v", so)
	}
	cron, cpu := so.Spec.Triggers[0], so.Spec.Triggers[1]
	if cron.Type != "cron" || cpu.Type != "cpu" || cpu.MetricType != autoscalingv2.UtilizationMetricType || cpu.Metadata["value"] != "70" {
		t.Errorf("triggers: %+v", so.Spec.Triggers)
	}
	// KEDA's cron scaler: five fields, start != end, desiredReplicas set.
	for _, k := range []string{"start", "end"} {
		f := strings.Fields(cron.Metadata[k])
		if len(f) != 5 || f[4] != "*" {
			t.Fatalf("cron %s %q", k, cron.Metadata[k])
		}
		for i, r := range cronField {
			var v int
			if _, err := fmt.Sscan(f[i], &v); err != nil || v < r.lo || v > r.hi {
				t.Errorf("cron %s field %d %q", k, i, f[i])
			}
		}
	}
	if cron.Metadata["start"] == cron.Metadata["end"] || cron.Metadata["desiredReplicas"] == "" || cron.Metadata["timezone"] != "Europe/Amsterdam" {
		t.Errorf("cron trigger: %v", cron.Metadata)
	}
	// The start is the plan's first scale-up, in the event's zone: the
	// drop phase starts 19:30 local, so the cron starts before it.
	if b := so.Spec.Advanced.HorizontalPodAutoscalerConfig.Behavior; b == nil || *b.ScaleDown.StabilizationWindowSeconds != 300 {
		t.Errorf("behavior not carried over: %+v", b)
	}
	var hpa autoscalingv2.HorizontalPodAutoscaler
	if err := sigsyaml.UnmarshalStrict([]byte(ms["hpa-min-replicas-patch.yaml"]), &hpa); err != nil {
		t.Fatal(err)
	}
	if hpa.Name != "surge-api" || hpa.Spec.MinReplicas == nil || int(*hpa.Spec.MinReplicas) != pl.Phases[2].APIReplicas {
		t.Errorf("HPA patch: %+v", hpa.Spec)
	}
	var k struct {
		APIVersion string           `json:"apiVersion"`
		Kind       string           `json:"kind"`
		Resources  []string         `json:"resources"`
		Patches    []map[string]any `json:"patches"`
	}
	if err := sigsyaml.UnmarshalStrict([]byte(ms["kustomization.yaml"]), &k); err != nil || len(k.Resources) != 2 || len(k.Patches) != 2 {
		t.Errorf("kustomization: %v %+v", err, k)
	}
	var compose struct {
		Services map[string]struct {
			Deploy struct {
				Replicas int `json:"replicas"`
			} `json:"deploy"`
		} `json:"services"`
	}
	if err := sigsyaml.UnmarshalStrict([]byte(ms["compose.override.yaml"]), &compose); err != nil || compose.Services["api"].Deploy.Replicas < 3 {
		t.Errorf("compose override: %v %+v", err, compose)
	}
}

// TestPlanIdleMissStopsSearch: when the calibration's lightest step
// already misses an SLO (a machine too loaded to calibrate on), no pod
// count holds it; the plan says so instead of searching to absurd counts.
func TestPlanIdleMissStopsSearch(t *testing.T) {
	p := testProfile()
	for i := range p.Classes[Checkout].Steps {
		p.Classes[Checkout].Steps[i].P99 = 60_000 // a minute, at every load
	}
	e, err := ParseEvent([]byte(dropEvent))
	if err != nil {
		t.Fatal(err)
	}
	c, err := ReadCluster("../../deploy/k8s/base")
	if err != nil {
		t.Fatal(err)
	}
	pl, err := Make(p, e, c)
	if err != nil {
		t.Fatal(err)
	}
	spike := pl.Phases[1]
	if spike.APIReplicas != 10 {
		t.Errorf("spike: %d pods, want the CPU's 10 (more pods would not help)", spike.APIReplicas)
	}
	if !spike.Breach || !strings.Contains(spike.BreachWhy, "no pod count holds it, even an idle pod misses: checkout p99 60000ms") {
		t.Errorf("breach %v: %q", spike.Breach, spike.BreachWhy)
	}
}
