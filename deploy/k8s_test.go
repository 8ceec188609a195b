package deploy_test

import (
	"fmt"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

const k8sBase = "k8s/base"

// kinds maps apiVersion/kind to the API type a document decodes into. A
// kind missing here fails the render, so a new manifest is never left
// unchecked.
var kinds = map[string]func() metav1.Object{
	"v1/Namespace":                           func() metav1.Object { return &corev1.Namespace{} },
	"v1/ConfigMap":                           func() metav1.Object { return &corev1.ConfigMap{} },
	"v1/Secret":                              func() metav1.Object { return &corev1.Secret{} },
	"v1/Service":                             func() metav1.Object { return &corev1.Service{} },
	"v1/PersistentVolumeClaim":               func() metav1.Object { return &corev1.PersistentVolumeClaim{} },
	"apps/v1/Deployment":                     func() metav1.Object { return &appsv1.Deployment{} },
	"apps/v1/StatefulSet":                    func() metav1.Object { return &appsv1.StatefulSet{} },
	"autoscaling/v2/HorizontalPodAutoscaler": func() metav1.Object { return &autoscalingv2.HorizontalPodAutoscaler{} },
	"policy/v1/PodDisruptionBudget":          func() metav1.Object { return &policyv1.PodDisruptionBudget{} },
	"networking.k8s.io/v1/Ingress":           func() metav1.Object { return &networkingv1.Ingress{} },
}

// kustomization is the part of kustomization.yaml that render implements.
// It is decoded strictly: a field render does not implement (a generator, a
// patch) fails the test instead of being silently skipped.
type kustomization struct {
	APIVersion string           `json:"apiVersion"`
	Kind       string           `json:"kind"`
	Namespace  string           `json:"namespace,omitempty"`
	Resources  []string         `json:"resources"`
	Images     []kustomizeImage `json:"images,omitempty"`
}

type kustomizeImage struct {
	Name    string `json:"name"`
	NewName string `json:"newName,omitempty"`
	NewTag  string `json:"newTag,omitempty"`
	Digest  string `json:"digest,omitempty"`
}

// strictDecode decodes YAML the way the API server does with strict field
// validation: case-sensitive field names, no unknown and no duplicate
// fields.
func strictDecode(doc []byte, v any) error {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	strict, err := kjson.UnmarshalStrict(j, v, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err != nil {
		return err
	}
	if len(strict) > 0 {
		return fmt.Errorf("%v", strict)
	}
	return nil
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// render does what `kustomize build dir` does for the subset of kustomize
// these manifests use: resources (files, or directories with their own
// kustomization.yaml), namespace and images. Every document is decoded
// strictly into its Kubernetes API type.
func render(dir string) ([]metav1.Object, error) {
	b, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		return nil, err
	}
	var k kustomization
	if err := strictDecode(b, &k); err != nil {
		return nil, fmt.Errorf("%s/kustomization.yaml: %w", dir, err)
	}
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		return nil, fmt.Errorf("%s/kustomization.yaml: apiVersion/kind %s/%s", dir, k.APIVersion, k.Kind)
	}
	var objs []metav1.Object
	for _, res := range k.Resources {
		path := filepath.Join(dir, res)
		if fi, err := os.Stat(path); err == nil && fi.IsDir() {
			sub, err := render(path)
			if err != nil {
				return nil, err
			}
			objs = append(objs, sub...)
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("%s/kustomization.yaml: resource: %w", dir, err)
		}
		line := 1 // where the document starts, for messages
		for i, doc := range docSeparator.Split(string(b), -1) {
			where := fmt.Sprintf("%s document %d (from line %d)", path, i+1, line)
			line += strings.Count(doc, "\n") + 1
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
			if tm.APIVersion == "" && tm.Kind == "" {
				continue // only comments
			}
			newObj := kinds[tm.APIVersion+"/"+tm.Kind]
			if newObj == nil {
				return nil, fmt.Errorf("%s: %s %s: no API type registered in this test", where, tm.APIVersion, tm.Kind)
			}
			obj := newObj()
			if err := strictDecode([]byte(doc), obj); err != nil {
				return nil, fmt.Errorf("%s: %s: %w", where, tm.Kind, err)
			}
			objs = append(objs, obj)
		}
	}
	seen := map[string]bool{}
	for _, obj := range objs {
		if _, ok := obj.(*corev1.Namespace); !ok && k.Namespace != "" {
			obj.SetNamespace(k.Namespace)
		}
		id := fmt.Sprintf("%T/%s/%s", obj, obj.GetNamespace(), obj.GetName())
		if seen[id] {
			return nil, fmt.Errorf("%s: %s defined twice", dir, id)
		}
		seen[id] = true
		if pod := podSpec(obj); pod != nil {
			for _, cs := range [][]corev1.Container{pod.InitContainers, pod.Containers} {
				for i := range cs {
					cs[i].Image = setImage(cs[i].Image, k.Images)
				}
			}
		}
	}
	return objs, nil
}

// setImage applies kustomize's images transformer to one reference.
func setImage(ref string, images []kustomizeImage) string {
	name := ref
	if i := strings.Index(name, "@"); i >= 0 {
		name = name[:i]
	}
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		name = name[:i]
	}
	for _, img := range images {
		if img.Name != name {
			continue
		}
		tag := strings.TrimPrefix(ref, name)
		if img.NewName != "" {
			name = img.NewName
		}
		switch {
		case img.Digest != "":
			tag = "@" + img.Digest
		case img.NewTag != "":
			tag = ":" + img.NewTag
		}
		return name + tag
	}
	return ref
}

func podSpec(obj metav1.Object) *corev1.PodSpec {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		return &o.Spec.Template.Spec
	case *appsv1.StatefulSet:
		return &o.Spec.Template.Spec
	}
	return nil
}

// workload is a Deployment or StatefulSet seen through what the checks need.
type workload struct {
	id       string
	replicas int32
	selector *metav1.LabelSelector
	template *corev1.PodTemplateSpec
	claims   []string // volumeClaimTemplates
}

// manifests is the rendered kustomization, indexed.
type manifests struct {
	objs       []metav1.Object
	workloads  []workload
	configMaps map[string]*corev1.ConfigMap
	secrets    map[string]*corev1.Secret
	services   map[string]*corev1.Service
	pvcs       map[string]*corev1.PersistentVolumeClaim
}

func mustRender(t *testing.T) *manifests {
	t.Helper()
	objs, err := render(k8sBase)
	if err != nil {
		t.Fatal(err)
	}
	m := &manifests{objs: objs, configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{},
		services: map[string]*corev1.Service{}, pvcs: map[string]*corev1.PersistentVolumeClaim{}}
	for _, obj := range objs {
		switch o := obj.(type) {
		case *corev1.ConfigMap:
			m.configMaps[o.Name] = o
		case *corev1.Secret:
			m.secrets[o.Name] = o
		case *corev1.Service:
			m.services[o.Name] = o
		case *corev1.PersistentVolumeClaim:
			m.pvcs[o.Name] = o
		case *appsv1.Deployment:
			m.workloads = append(m.workloads, workload{id: "Deployment " + o.Name, replicas: deref(o.Spec.Replicas, 1),
				selector: o.Spec.Selector, template: &o.Spec.Template})
		case *appsv1.StatefulSet:
			w := workload{id: "StatefulSet " + o.Name, replicas: deref(o.Spec.Replicas, 1),
				selector: o.Spec.Selector, template: &o.Spec.Template}
			for _, c := range o.Spec.VolumeClaimTemplates {
				w.claims = append(w.claims, c.Name)
			}
			m.workloads = append(m.workloads, w)
		}
	}
	return m
}

func deref[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

// all returns the rendered objects of one type.
func all[T metav1.Object](m *manifests) []T {
	var out []T
	for _, obj := range m.objs {
		if o, ok := obj.(T); ok {
			out = append(out, o)
		}
	}
	return out
}

func named[T metav1.Object](t *testing.T, m *manifests, name string) T {
	t.Helper()
	for _, o := range all[T](m) {
		if o.GetName() == name {
			return o
		}
	}
	var zero T
	t.Fatalf("no %T named %s", zero, name)
	return zero
}

// secretValue returns a Secret's value from stringData or data.
func secretValue(s *corev1.Secret, key string) (string, bool) {
	if v, ok := s.StringData[key]; ok {
		return v, true
	}
	v, ok := s.Data[key]
	return string(v), ok
}

// containerEnv resolves a container's environment as the kubelet would,
// envFrom first, then env, refs looked up in the rendered ConfigMaps and
// Secrets. Unresolvable references are errors.
func (m *manifests) containerEnv(c corev1.Container) (map[string]string, []error) {
	env := map[string]string{}
	var errs []error
	for _, from := range c.EnvFrom {
		switch {
		case from.ConfigMapRef != nil:
			cm, ok := m.configMaps[from.ConfigMapRef.Name]
			if !ok {
				errs = append(errs, fmt.Errorf("envFrom: no ConfigMap %s", from.ConfigMapRef.Name))
				continue
			}
			for k, v := range cm.Data {
				env[from.Prefix+k] = v
			}
		case from.SecretRef != nil:
			s, ok := m.secrets[from.SecretRef.Name]
			if !ok {
				errs = append(errs, fmt.Errorf("envFrom: no Secret %s", from.SecretRef.Name))
				continue
			}
			for k, v := range s.StringData {
				env[from.Prefix+k] = v
			}
			for k, v := range s.Data {
				env[from.Prefix+k] = string(v)
			}
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.ConfigMapKeyRef != nil:
			ref := e.ValueFrom.ConfigMapKeyRef
			cm, ok := m.configMaps[ref.Name]
			v, found := "", false
			if ok {
				v, found = cm.Data[ref.Key]
			}
			if !found && !deref(ref.Optional, false) {
				errs = append(errs, fmt.Errorf("env %s: ConfigMap %s has no key %s", e.Name, ref.Name, ref.Key))
			}
			env[e.Name] = v
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			s, ok := m.secrets[ref.Name]
			v, found := "", false
			if ok {
				v, found = secretValue(s, ref.Key)
			}
			if !found && !deref(ref.Optional, false) {
				errs = append(errs, fmt.Errorf("env %s: Secret %s has no key %s", e.Name, ref.Name, ref.Key))
			}
			env[e.Name] = v
		case e.ValueFrom.FieldRef != nil, e.ValueFrom.ResourceFieldRef != nil:
			env[e.Name] = ""
		}
	}
	return env, errs
}

// podsSelectedBy returns the workloads whose pods carry the labels.
func (m *manifests) podsSelectedBy(t *testing.T, sel labels.Selector) []workload {
	t.Helper()
	var out []workload
	for _, w := range m.workloads {
		if sel.Matches(labels.Set(w.template.Labels)) {
			out = append(out, w)
		}
	}
	return out
}

func mustSelector(t *testing.T, what string, ls *metav1.LabelSelector) labels.Selector {
	t.Helper()
	if ls == nil || (len(ls.MatchLabels) == 0 && len(ls.MatchExpressions) == 0) {
		t.Fatalf("%s: empty selector selects everything", what)
	}
	sel, err := metav1.LabelSelectorAsSelector(ls)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return sel
}

// containerPort resolves a probe's or Service's port (a name or a number)
// against a container's declared ports.
func containerPort(c corev1.Container, p intstr.IntOrString) (int32, bool) {
	for _, cp := range c.Ports {
		if (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && cp.ContainerPort == p.IntVal) {
			return cp.ContainerPort, true
		}
	}
	return 0, false
}

// TestKustomizeRender decodes every manifest strictly into its API type
// and checks the render as a whole.
func TestKustomizeRender(t *testing.T) {
	m := mustRender(t)
	count := map[string]int{}
	for _, obj := range m.objs {
		count[fmt.Sprintf("%T", obj)]++
		if obj.GetLabels()["app.kubernetes.io/part-of"] != "surge" {
			t.Errorf("%T %s: no app.kubernetes.io/part-of: surge label", obj, obj.GetName())
		}
	}
	for typ, least := range map[string]int{
		"*v1.Namespace": 1, "*v1.ConfigMap": 3, "*v1.Secret": 3, "*v1.Deployment": 3, "*v1.StatefulSet": 3,
		"*v1.Service": 5, "*v2.HorizontalPodAutoscaler": 1, "*v1.PodDisruptionBudget": 2, "*v1.Ingress": 1,
	} {
		if count[typ] < least {
			t.Errorf("%d %s rendered, want at least %d", count[typ], typ, least)
		}
	}
	ns := all[*corev1.Namespace](m)
	for _, obj := range m.objs {
		if _, ok := obj.(*corev1.Namespace); !ok && (len(ns) != 1 || obj.GetNamespace() != ns[0].Name) {
			t.Errorf("%T %s: namespace %q is not the Namespace the kustomization creates", obj, obj.GetName(), obj.GetNamespace())
		}
	}
	if len(ns) == 1 && ns[0].Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
		t.Errorf("namespace %s does not enforce the restricted Pod Security Standard", ns[0].Name)
	}
}

// TestK8sStrictDecodingCatchesMistakes makes sure the render would catch
// the mistakes it exists for; a decoder that accepted these would make the
// other tests meaningless.
func TestK8sStrictDecodingCatchesMistakes(t *testing.T) {
	for name, doc := range map[string]string{
		"misspelled field":    "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replica: 3\n",
		"wrong case":          "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  Replicas: 3\n",
		"duplicate field":     "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b}\ndata: {c: d}\n",
		"number for a string": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {SURGE_NATS_REPLICAS: 3}\n",
		"field at wrong level": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  template:\n    spec:\n" +
			"      containers: [{name: a, image: b}]\n      readinessProbe: {httpGet: {path: /readyz, port: 9090}}\n",
	} {
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			t.Fatal(err)
		}
		if err := strictDecode([]byte(doc), kinds[tm.APIVersion+"/"+tm.Kind]()); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
}

// TestK8sPods checks what every pod needs whatever it runs: pinned images,
// resources, probes on declared ports, the restricted security profile,
// and references to ConfigMaps, Secrets and volumes that exist.
func TestK8sPods(t *testing.T) {
	m := mustRender(t)
	for _, w := range m.workloads {
		t.Run(w.id, func(t *testing.T) {
			sel := mustSelector(t, "selector", w.selector)
			if !sel.Matches(labels.Set(w.template.Labels)) {
				t.Errorf("selector %v does not match the pod template's labels %v", sel, w.template.Labels)
			}
			pod := w.template.Spec
			if pod.TerminationGracePeriodSeconds == nil {
				t.Errorf("no terminationGracePeriodSeconds")
			}
			if deref(pod.AutomountServiceAccountToken, true) {
				t.Errorf("the service account token is mounted; nothing here talks to the API server")
			}
			if deref(pod.EnableServiceLinks, true) {
				t.Errorf("enableServiceLinks is on: Service variables would leak into the environment")
			}
			psc := pod.SecurityContext
			if psc == nil || !deref(psc.RunAsNonRoot, false) || psc.SeccompProfile == nil ||
				psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("pod securityContext: want runAsNonRoot and the RuntimeDefault seccomp profile")
			}

			volumes := map[string]corev1.Volume{}
			for _, v := range pod.Volumes {
				volumes[v.Name] = v
				switch {
				case v.ConfigMap != nil:
					cm, ok := m.configMaps[v.ConfigMap.Name]
					if !ok {
						t.Errorf("volume %s: no ConfigMap %s", v.Name, v.ConfigMap.Name)
						continue
					}
					for _, it := range v.ConfigMap.Items {
						if _, ok := cm.Data[it.Key]; !ok {
							t.Errorf("volume %s: ConfigMap %s has no key %s", v.Name, cm.Name, it.Key)
						}
					}
				case v.Secret != nil:
					if _, ok := m.secrets[v.Secret.SecretName]; !ok {
						t.Errorf("volume %s: no Secret %s", v.Name, v.Secret.SecretName)
					}
				case v.PersistentVolumeClaim != nil:
					if _, ok := m.pvcs[v.PersistentVolumeClaim.ClaimName]; !ok {
						t.Errorf("volume %s: no PersistentVolumeClaim %s", v.Name, v.PersistentVolumeClaim.ClaimName)
					}
				}
			}

			for i, c := range slices.Concat(pod.InitContainers, pod.Containers) {
				if err := checkPinned(c.Image); err != nil {
					t.Errorf("container %s: %v", c.Name, err)
				}
				req, lim := c.Resources.Requests, c.Resources.Limits
				for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
					if req.Name(r, "").IsZero() || lim.Name(r, "").IsZero() {
						t.Errorf("container %s: no %s request and limit", c.Name, r)
					} else if req.Name(r, "").Cmp(*lim.Name(r, "")) > 0 {
						t.Errorf("container %s: %s request above its limit", c.Name, r)
					}
				}
				sc := c.SecurityContext
				if sc == nil || deref(sc.AllowPrivilegeEscalation, true) || !deref(sc.ReadOnlyRootFilesystem, false) ||
					sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
					t.Errorf("container %s: want allowPrivilegeEscalation false, readOnlyRootFilesystem, capabilities drop ALL", c.Name)
				}
				if _, errs := m.containerEnv(c); len(errs) > 0 {
					for _, err := range errs {
						t.Errorf("container %s: %v", c.Name, err)
					}
				}
				for _, vm := range c.VolumeMounts {
					if _, ok := volumes[vm.Name]; !ok && !slices.Contains(w.claims, vm.Name) {
						t.Errorf("container %s: mounts %s, which is no volume or claim template", c.Name, vm.Name)
					}
				}
				if i < len(pod.InitContainers) {
					continue // init containers run to completion: no probes
				}
				if c.LivenessProbe == nil || c.ReadinessProbe == nil {
					t.Errorf("container %s: want liveness and readiness probes", c.Name)
				}
				for kind, p := range map[string]*corev1.Probe{"startup": c.StartupProbe, "liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
					switch {
					case p == nil:
					case p.HTTPGet != nil:
						if _, ok := containerPort(c, p.HTTPGet.Port); !ok {
							t.Errorf("container %s: %s probe on port %s, which it does not declare", c.Name, kind, p.HTTPGet.Port.String())
						}
					case p.Exec != nil:
						if len(p.Exec.Command) == 0 {
							t.Errorf("container %s: %s probe runs nothing", c.Name, kind)
						}
					default:
						t.Errorf("container %s: %s probe has no handler", c.Name, kind)
					}
				}
			}
		})
	}
}

// surgeContainer returns the one Surge container of a Deployment.
func surgeContainer(t *testing.T, d *appsv1.Deployment) corev1.Container {
	t.Helper()
	for _, c := range d.Spec.Template.Spec.Containers {
		if strings.HasPrefix(c.Image, "ghcr.io/surge-commerce/surge") {
			return c
		}
	}
	t.Fatalf("Deployment %s runs no Surge container", d.Name)
	return corev1.Container{}
}

// probe checks that a probe is an HTTP GET of path on the named port.
func checkHTTPProbe(t *testing.T, what string, c corev1.Container, p *corev1.Probe, path string, port int) {
	t.Helper()
	if p == nil || p.HTTPGet == nil {
		t.Errorf("%s: want an httpGet probe of %s", what, path)
		return
	}
	if p.HTTPGet.Path != path {
		t.Errorf("%s: probes %s, want %s", what, p.HTTPGet.Path, path)
	}
	if n, _ := containerPort(c, p.HTTPGet.Port); int(n) != port {
		t.Errorf("%s: probes port %s (%d), want the admin port %d", what, p.HTTPGet.Port.String(), n, port)
	}
}

// TestK8sSurge checks the API and worker Deployments against Surge's
// behaviour: probes on the operations listener, a shutdown sequence that
// fits the grace period, and only SURGE_* variables that are real flags.
func TestK8sSurge(t *testing.T) {
	m := mustRender(t)
	for _, name := range []string{"surge-api", "surge-worker"} {
		t.Run(name, func(t *testing.T) {
			d := named[*appsv1.Deployment](t, m, name)
			c := surgeContainer(t, d)
			env, errs := m.containerEnv(c)
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			sub := surgeSubcommand(c.Args)
			checkSurgeEnv(t, "k8s "+name, sub, slices.Collect(maps.Keys(env)))

			admin := portOf(t, "SURGE_ADMIN_ADDR", env["SURGE_ADMIN_ADDR"])
			if n, ok := containerPort(c, intstr.FromString("admin")); !ok || int(n) != admin {
				t.Errorf("port admin = %d, SURGE_ADMIN_ADDR listens on %d", n, admin)
			}
			checkHTTPProbe(t, "startupProbe", c, c.StartupProbe, "/readyz", admin)
			checkHTTPProbe(t, "livenessProbe", c, c.LivenessProbe, "/livez", admin)
			checkHTTPProbe(t, "readinessProbe", c, c.ReadinessProbe, "/readyz", admin)
			if c.StartupProbe != nil && c.StartupProbe.PeriodSeconds*c.StartupProbe.FailureThreshold < 60 {
				t.Errorf("startupProbe gives a first start under a minute")
			}
			if c.LivenessProbe != nil && c.LivenessProbe.PeriodSeconds*c.LivenessProbe.FailureThreshold < 20 {
				t.Errorf("livenessProbe restarts a replica after under 20 s of silence; a GC pause or a burst is not a death")
			}
			if env["SURGE_DATA_DIR"] == "" || !slices.ContainsFunc(c.VolumeMounts, func(vm corev1.VolumeMount) bool {
				return vm.MountPath == env["SURGE_DATA_DIR"]
			}) {
				t.Errorf("SURGE_DATA_DIR %q is not a mounted volume; the root filesystem is read-only", env["SURGE_DATA_DIR"])
			}
			if _, ok := env["GOMEMLIMIT"]; !ok {
				t.Errorf("no GOMEMLIMIT: the Go heap does not know the memory limit")
			}

			drain := mustDuration(t, "SURGE_DRAIN_DELAY", env["SURGE_DRAIN_DELAY"])
			shutdown := mustDuration(t, "SURGE_SHUTDOWN_TIMEOUT", env["SURGE_SHUTDOWN_TIMEOUT"])
			var preStop time.Duration
			if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
				preStop = time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
			}
			grace := time.Duration(deref(d.Spec.Template.Spec.TerminationGracePeriodSeconds, 30)) * time.Second
			if grace <= preStop+drain+shutdown {
				t.Errorf("terminationGracePeriodSeconds %v does not cover preStop %v + drain %v + shutdown %v", grace, preStop, drain, shutdown)
			}
			if sub == "worker" {
				if drain != 0 {
					t.Errorf("worker: drain delay %v, but it has no listener to drain", drain)
				}
				return
			}

			if got := strings.Join(c.Args, " "); got != "serve --role api" {
				t.Errorf("runs %q, want serve --role api", got)
			}
			public := portOf(t, "SURGE_ADDR", env["SURGE_ADDR"])
			if n, ok := containerPort(c, intstr.FromString("http")); !ok || int(n) != public {
				t.Errorf("port http = %d, SURGE_ADDR listens on %d", n, public)
			}
			if preStop != drain {
				t.Errorf("preStop sleep %v, want the drain delay %v", preStop, drain)
			}
			if deref(d.Spec.Replicas, 1) != 3 {
				t.Errorf("replicas = %d, want 3", deref(d.Spec.Replicas, 1))
			}
			if ru := d.Spec.Strategy.RollingUpdate; ru == nil || ru.MaxUnavailable == nil || ru.MaxUnavailable.String() != "0" {
				t.Errorf("rolling update may take replicas away before new ones are ready; want maxUnavailable 0")
			}
			if len(d.Spec.Template.Spec.TopologySpreadConstraints) == 0 {
				t.Errorf("no topologySpreadConstraints: all replicas may land on one node")
			}
			for _, tsc := range d.Spec.Template.Spec.TopologySpreadConstraints {
				if !mustSelector(t, "topology spread", tsc.LabelSelector).Matches(labels.Set(d.Spec.Template.Labels)) {
					t.Errorf("topology spread over %s does not select the API pods", tsc.TopologyKey)
				}
			}
			if env["SURGE_CLIENT_IP_HEADER"] != "" && env["SURGE_TRUSTED_PROXIES"] == "" {
				t.Errorf("SURGE_CLIENT_IP_HEADER without SURGE_TRUSTED_PROXIES: Surge refuses to start")
			}
			// The Ingress serves the shop over TLS: session cookies must
			// never travel in clear.
			switch env["SURGE_COOKIE_SECURE"] {
			case "always":
			case "auto":
				if env["SURGE_TRUSTED_PROXIES"] == "" {
					t.Errorf("SURGE_COOKIE_SECURE=auto without SURGE_TRUSTED_PROXIES: X-Forwarded-Proto is never believed")
				}
			default:
				t.Errorf("SURGE_COOKIE_SECURE = %q, want always (or auto with trusted proxies)", env["SURGE_COOKIE_SECURE"])
			}
		})
	}
}

// TestK8sHPA checks the API autoscaler: it targets the API Deployment,
// scales out fast and in slowly.
func TestK8sHPA(t *testing.T) {
	m := mustRender(t)
	hpa := named[*autoscalingv2.HorizontalPodAutoscaler](t, m, "surge-api")
	ref := hpa.Spec.ScaleTargetRef
	if ref.APIVersion != "apps/v1" || ref.Kind != "Deployment" {
		t.Fatalf("scaleTargetRef %s %s, want apps/v1 Deployment", ref.APIVersion, ref.Kind)
	}
	d := named[*appsv1.Deployment](t, m, ref.Name)
	minReplicas := deref(hpa.Spec.MinReplicas, 1)
	if minReplicas < 2 || minReplicas != deref(d.Spec.Replicas, 1) {
		t.Errorf("minReplicas %d: want at least 2 and the Deployment's starting size %d", minReplicas, deref(d.Spec.Replicas, 1))
	}
	if hpa.Spec.MaxReplicas < 4*minReplicas {
		t.Errorf("maxReplicas %d leaves no room for a spike over minReplicas %d", hpa.Spec.MaxReplicas, minReplicas)
	}
	var cpu bool
	for _, mt := range hpa.Spec.Metrics {
		if mt.Type == autoscalingv2.ResourceMetricSourceType && mt.Resource != nil && mt.Resource.Name == corev1.ResourceCPU &&
			mt.Resource.Target.Type == autoscalingv2.UtilizationMetricType {
			cpu = true
			if u := deref(mt.Resource.Target.AverageUtilization, 0); u < 50 || u > 80 {
				t.Errorf("CPU target %d%%: below 50 wastes, above 80 leaves no headroom while new pods start", u)
			}
		}
	}
	if !cpu {
		t.Errorf("no CPU utilisation metric")
	}
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Resources.Requests.Cpu().IsZero() {
			t.Errorf("container %s has no CPU request: utilisation is a share of it", c.Name)
		}
	}

	b := hpa.Spec.Behavior
	if b == nil || b.ScaleUp == nil || b.ScaleDown == nil {
		t.Fatal("no scaleUp and scaleDown behavior")
	}
	up := b.ScaleUp
	if deref(up.StabilizationWindowSeconds, -1) != 0 {
		t.Errorf("scaleUp stabilizationWindowSeconds %d, want 0: react to a spike at once", deref(up.StabilizationWindowSeconds, -1))
	}
	if deref(up.SelectPolicy, autoscalingv2.MaxChangePolicySelect) != autoscalingv2.MaxChangePolicySelect {
		t.Errorf("scaleUp selectPolicy %s, want Max", *up.SelectPolicy)
	}
	var doubles, addsPods bool
	for _, p := range up.Policies {
		if p.PeriodSeconds > 15 {
			t.Errorf("scaleUp policy %s %d per %ds: slower than every 15 s", p.Type, p.Value, p.PeriodSeconds)
		}
		doubles = doubles || (p.Type == autoscalingv2.PercentScalingPolicy && p.Value >= 100)
		addsPods = addsPods || (p.Type == autoscalingv2.PodsScalingPolicy && p.Value >= 4)
	}
	if !doubles || !addsPods {
		t.Errorf("scaleUp: want +100%% and +4 pods policies (the larger wins), got %+v", up.Policies)
	}
	down := b.ScaleDown
	if deref(down.StabilizationWindowSeconds, 0) < 300 {
		t.Errorf("scaleDown stabilizationWindowSeconds %d, want at least 300", deref(down.StabilizationWindowSeconds, 0))
	}
	if len(down.Policies) == 0 {
		t.Errorf("scaleDown has no policies: it would remove any number of pods at once")
	}
	for _, p := range down.Policies {
		if p.Type != autoscalingv2.PercentScalingPolicy || p.Value > 10 || p.PeriodSeconds < 60 {
			t.Errorf("scaleDown policy %s %d per %ds, want at most 10%% per minute", p.Type, p.Value, p.PeriodSeconds)
		}
	}
}

// TestK8sPDB checks that every disruption budget covers one workload and
// still lets a drain proceed.
func TestK8sPDB(t *testing.T) {
	m := mustRender(t)
	covered := map[string]bool{}
	for _, pdb := range all[*policyv1.PodDisruptionBudget](m) {
		ws := m.podsSelectedBy(t, mustSelector(t, "PDB "+pdb.Name, pdb.Spec.Selector))
		if len(ws) != 1 {
			t.Errorf("PDB %s selects the pods of %d workloads, want 1", pdb.Name, len(ws))
			continue
		}
		covered[ws[0].id] = true
		switch {
		case pdb.Spec.MaxUnavailable != nil:
			if pdb.Spec.MaxUnavailable.String() != "1" {
				t.Errorf("PDB %s: maxUnavailable %s, want 1", pdb.Name, pdb.Spec.MaxUnavailable.String())
			}
		case pdb.Spec.MinAvailable != nil:
			if n := pdb.Spec.MinAvailable.IntValue(); pdb.Spec.MinAvailable.Type != intstr.Int || n >= int(ws[0].replicas) {
				t.Errorf("PDB %s: minAvailable %s blocks every eviction of %d replicas", pdb.Name, pdb.Spec.MinAvailable.String(), ws[0].replicas)
			}
		default:
			t.Errorf("PDB %s: neither minAvailable nor maxUnavailable", pdb.Name)
		}
	}
	for _, id := range []string{"Deployment surge-api", "StatefulSet nats"} {
		if !covered[id] {
			t.Errorf("no PodDisruptionBudget covers %s", id)
		}
	}
}

// TestK8sServices checks that every Service selects pods that exist and
// sends traffic to ports those pods declare, and that StatefulSets name an
// existing governing Service.
func TestK8sServices(t *testing.T) {
	m := mustRender(t)
	for _, svc := range m.services {
		ws := m.podsSelectedBy(t, mustSelector(t, "Service "+svc.Name, &metav1.LabelSelector{MatchLabels: svc.Spec.Selector}))
		if len(ws) == 0 {
			t.Errorf("Service %s selects no pods (%v)", svc.Name, svc.Spec.Selector)
		}
		for _, p := range svc.Spec.Ports {
			target := p.TargetPort
			if target.Type == intstr.Int && target.IntVal == 0 {
				target = intstr.FromInt32(p.Port)
			}
			for _, w := range ws {
				if !slices.ContainsFunc(w.template.Spec.Containers, func(c corev1.Container) bool {
					_, ok := containerPort(c, target)
					return ok
				}) {
					t.Errorf("Service %s port %s: %s declares no port %s", svc.Name, p.Name, w.id, target.String())
				}
			}
		}
	}
	for _, ss := range all[*appsv1.StatefulSet](m) {
		if _, ok := m.services[ss.Spec.ServiceName]; !ok {
			t.Errorf("StatefulSet %s: serviceName %q is not a Service", ss.Name, ss.Spec.ServiceName)
		}
	}
}

// TestK8sNATS checks the NATS StatefulSet forms one three-node JetStream
// cluster over its headless Service, and that Surge knows every node.
func TestK8sNATS(t *testing.T) {
	m := mustRender(t)
	ss := named[*appsv1.StatefulSet](t, m, "nats")
	replicas := deref(ss.Spec.Replicas, 1)
	if replicas != 3 {
		t.Errorf("replicas %d, want 3", replicas)
	}
	if ss.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
		t.Errorf("podManagementPolicy %q: nodes started one by one never reach the quorum the first needs to be ready", ss.Spec.PodManagementPolicy)
	}
	headless := m.services[ss.Spec.ServiceName]
	if headless == nil || headless.Spec.ClusterIP != corev1.ClusterIPNone || !headless.Spec.PublishNotReadyAddresses {
		t.Fatalf("serviceName %q: want a headless Service publishing not-ready addresses", ss.Spec.ServiceName)
	}
	conf := m.configMaps["nats-config"].Data["nats.conf"]
	routes := regexp.MustCompile(`nats://([a-z0-9.-]+):(\d+)`).FindAllStringSubmatch(conf, -1)
	var got, want []string
	for _, r := range routes {
		got = append(got, r[1]+":"+r[2])
	}
	var wantClients []string
	for i := range replicas {
		host := fmt.Sprintf("%s-%d.%s", ss.Name, i, ss.Spec.ServiceName)
		want = append(want, host+":6222")
		wantClients = append(wantClients, host+":4222")
	}
	if !slices.Equal(slices.Sorted(slices.Values(got)), want) {
		t.Errorf("nats.conf routes %v, want %v", got, want)
	}
	for _, key := range []string{"jetstream", "server_name: $POD_NAME", "cluster", "lame_duck_duration"} {
		if !strings.Contains(conf, key) {
			t.Errorf("nats.conf: no %s", key)
		}
	}

	env := m.configMaps["surge-config"].Data
	var clients []string
	for _, u := range strings.Split(env["SURGE_NATS_URL"], ",") {
		clients = append(clients, mustParseURL(t, "SURGE_NATS_URL", u).Host)
	}
	if !slices.Equal(slices.Sorted(slices.Values(clients)), wantClients) {
		t.Errorf("SURGE_NATS_URL lists %v, want every node %v", clients, wantClients)
	}
	if n, err := strconv.Atoi(env["SURGE_NATS_REPLICAS"]); err != nil || n != int(replicas) {
		t.Errorf("SURGE_NATS_REPLICAS %q with %d nodes", env["SURGE_NATS_REPLICAS"], replicas)
	}
}

// TestK8sSecrets checks the Secrets hold placeholders only, and that the
// URLs Surge gets reach the in-cluster engines with their credentials.
func TestK8sSecrets(t *testing.T) {
	m := mustRender(t)
	for _, s := range m.secrets {
		if len(s.Data) > 0 {
			t.Errorf("Secret %s: data hides values from review; use stringData placeholders", s.Name)
		}
		for k, v := range s.StringData {
			if !strings.Contains(v, "CHANGE-ME") {
				t.Errorf("Secret %s: %s is not a CHANGE-ME placeholder; real secrets do not belong in the repository", s.Name, k)
			}
		}
	}
	app := m.secrets["surge-secrets"]
	pgPassword, _ := secretValue(m.secrets["postgres-credentials"], "POSTGRES_PASSWORD")
	redisPassword, _ := secretValue(m.secrets["redis-credentials"], "REDIS_PASSWORD")
	primary := named[*appsv1.StatefulSet](t, m, "postgres")
	pgEnv, errs := m.containerEnv(primary.Spec.Template.Spec.Containers[0])
	if len(errs) > 0 {
		t.Fatal(errs)
	}

	reaches := func(what string, u *url.URL, workload string) {
		t.Helper()
		svc, ok := m.services[u.Hostname()]
		if !ok {
			t.Errorf("%s: host %s is not a Service", what, u.Hostname())
			return
		}
		if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return strconv.Itoa(int(p.Port)) == u.Port() }) {
			t.Errorf("%s: Service %s has no port %s", what, svc.Name, u.Port())
		}
		ws := m.podsSelectedBy(t, labels.SelectorFromSet(svc.Spec.Selector))
		if len(ws) != 1 || ws[0].id != workload {
			t.Errorf("%s: Service %s does not lead to %s", what, svc.Name, workload)
		}
	}

	dbURL, _ := secretValue(app, "SURGE_DB_URL")
	db := mustParseURL(t, "SURGE_DB_URL", dbURL)
	reaches("SURGE_DB_URL", db, "StatefulSet postgres")
	if pw, _ := db.User.Password(); pw != pgPassword || db.User.Username() != pgEnv["POSTGRES_USER"] {
		t.Errorf("SURGE_DB_URL credentials differ from the primary's POSTGRES_USER and POSTGRES_PASSWORD")
	}
	if strings.TrimPrefix(db.Path, "/") != pgEnv["POSTGRES_DB"] {
		t.Errorf("SURGE_DB_URL database %q, the primary creates %q", db.Path, pgEnv["POSTGRES_DB"])
	}
	replicaURLs, _ := secretValue(app, "SURGE_DB_REPLICA_URL")
	for _, u := range strings.Split(replicaURLs, ",") {
		r := mustParseURL(t, "SURGE_DB_REPLICA_URL", u)
		reaches("SURGE_DB_REPLICA_URL", r, "StatefulSet postgres-replica")
		if pw, _ := r.User.Password(); pw != pgPassword {
			t.Errorf("SURGE_DB_REPLICA_URL password differs from the primary's (a replica has the primary's roles)")
		}
	}
	redisURL, _ := secretValue(app, "SURGE_REDIS_URL")
	rd := mustParseURL(t, "SURGE_REDIS_URL", redisURL)
	reaches("SURGE_REDIS_URL", rd, "Deployment redis")
	if pw, _ := rd.User.Password(); pw != redisPassword {
		t.Errorf("SURGE_REDIS_URL password differs from redis-credentials")
	}
}

// TestK8sPostgres checks the replica streams from the primary, and that
// the scripts in the ConfigMap are the ones Compose mounts from postgres/.
func TestK8sPostgres(t *testing.T) {
	m := mustRender(t)
	scripts := m.configMaps["postgres-scripts"]
	if scripts == nil {
		t.Fatal("no ConfigMap postgres-scripts")
	}
	for _, name := range []string{"primary-init.sh", "replica-entrypoint.sh"} {
		want, err := os.ReadFile(filepath.Join("postgres", name))
		if err != nil {
			t.Fatal(err)
		}
		if scripts.Data[name] != string(want) {
			t.Errorf("ConfigMap postgres-scripts %s differs from postgres/%s: copy the file into it", name, name)
		}
	}
	for _, name := range []string{"postgres", "postgres-replica"} {
		for _, v := range named[*appsv1.StatefulSet](t, m, name).Spec.Template.Spec.Volumes {
			if v.ConfigMap != nil && v.ConfigMap.Name == scripts.Name && deref(v.ConfigMap.DefaultMode, 0o644)&0o111 == 0 {
				t.Errorf("%s: scripts mounted without the executable bit; the image would source the init script into its entrypoint", name)
			}
		}
	}
	primary := named[*appsv1.StatefulSet](t, m, "postgres")
	if deref(primary.Spec.Replicas, 1) != 1 {
		t.Errorf("primary replicas %d: PostgreSQL has one primary", deref(primary.Spec.Replicas, 1))
	}
	args := strings.Join(primary.Spec.Template.Spec.Containers[0].Args, " ")
	for _, setting := range []string{"wal_level=replica", "max_wal_senders=", "max_slot_wal_keep_size="} {
		if !strings.Contains(args, setting) {
			t.Errorf("primary: missing -c %s", setting)
		}
	}
	replica := named[*appsv1.StatefulSet](t, m, "postgres-replica").Spec.Template.Spec.Containers[0]
	if got := strings.Join(replica.Command, " "); !strings.HasSuffix(got, "/replica-entrypoint.sh") {
		t.Errorf("replica runs %q, not replica-entrypoint.sh", got)
	}
	env, _ := m.containerEnv(replica)
	if svc, ok := m.services[env["PRIMARY_HOST"]]; !ok || svc.Spec.Selector["app.kubernetes.io/component"] != "primary" {
		t.Errorf("replica: PRIMARY_HOST %q is not the primary's Service", env["PRIMARY_HOST"])
	}
}

// TestK8sIngress checks the Ingress routes to the API Service's port.
func TestK8sIngress(t *testing.T) {
	m := mustRender(t)
	// Order links in mail go to the host shoppers reach.
	public := mustParseURL(t, "SURGE_PUBLIC_URL", m.configMaps["surge-config"].Data["SURGE_PUBLIC_URL"])
	var hosts []string
	for _, ing := range all[*networkingv1.Ingress](m) {
		if ing.Spec.IngressClassName == nil {
			t.Errorf("Ingress %s: no ingressClassName", ing.Name)
		}
		for _, r := range ing.Spec.Rules {
			hosts = append(hosts, r.Host)
		}
		for _, r := range ing.Spec.Rules {
			for _, p := range r.HTTP.Paths {
				b := p.Backend.Service
				svc, ok := m.services[b.Name]
				if !ok {
					t.Errorf("Ingress %s: backend %s is not a Service", ing.Name, b.Name)
					continue
				}
				if !slices.ContainsFunc(svc.Spec.Ports, func(sp corev1.ServicePort) bool {
					return (b.Port.Name != "" && sp.Name == b.Port.Name) || (b.Port.Number != 0 && sp.Port == b.Port.Number)
				}) {
					t.Errorf("Ingress %s: Service %s has no port %+v", ing.Name, svc.Name, b.Port)
				}
			}
		}
	}
	if public.Scheme != "https" || !slices.Contains(hosts, public.Host) {
		t.Errorf("SURGE_PUBLIC_URL %s is not https on an Ingress host %v", public, hosts)
	}
}

// TestK8sRedisPersists checks Redis keeps sessions and the waiting room
// across a restart: an append-only file, fsynced every second, on a
// PersistentVolumeClaim mounted where Redis writes it.
func TestK8sRedisPersists(t *testing.T) {
	m := mustRender(t)
	d := named[*appsv1.Deployment](t, m, "redis")
	spec := d.Spec.Template.Spec
	if len(spec.Containers) != 1 {
		t.Fatalf("redis: %d containers, want 1", len(spec.Containers))
	}
	c := spec.Containers[0]
	if err := redisPersists(append(slices.Clone(c.Command), c.Args...)); err != nil {
		t.Error(err)
	}
	var dataVolume string
	for _, vm := range c.VolumeMounts {
		if vm.MountPath == "/data" {
			dataVolume = vm.Name
		}
	}
	if !slices.ContainsFunc(spec.Volumes, func(v corev1.Volume) bool {
		return v.Name == dataVolume && v.PersistentVolumeClaim != nil && m.pvcs[v.PersistentVolumeClaim.ClaimName] != nil
	}) {
		t.Errorf("redis: /data is not on a PersistentVolumeClaim")
	}
}
