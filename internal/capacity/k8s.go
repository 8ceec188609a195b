package capacity

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	sigsyaml "sigs.k8s.io/yaml"
)

// Cluster is what the planner reads from the shipped manifests: the API's
// HPA and both Deployments' CPU requests, limits and replicas.
type Cluster struct {
	Dir              string
	Namespace        string
	HPAName          string
	HPA              HPA
	APIDeployment    string
	WorkerDeployment string
	APICPU, APILimit float64 // cores
	WorkerCPU        float64
	WorkerReplicas   int
	APIReplicas      int
}

// ReadCluster reads the kustomize directory dir (deploy/k8s/base): every
// YAML file its kustomization lists, decoded strictly into the Kubernetes
// types, the HPA that targets the API and the two Deployments.
func ReadCluster(dir string) (*Cluster, error) {
	kb, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		return nil, err
	}
	var k struct {
		Namespace string   `json:"namespace"`
		Resources []string `json:"resources"`
	}
	if err := sigsyaml.Unmarshal(kb, &k); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "kustomization.yaml"), err)
	}
	c := &Cluster{Dir: dir, Namespace: k.Namespace}
	deps := map[string]appsv1.Deployment{}
	var hpas []autoscalingv2.HorizontalPodAutoscaler
	for _, r := range k.Resources {
		if strings.Contains(r, "..") || filepath.IsAbs(r) {
			continue // bases elsewhere are not this directory's objects
		}
		b, err := os.ReadFile(filepath.Join(dir, r))
		if err != nil {
			return nil, err
		}
		for _, doc := range splitDocs(b) {
			var meta struct {
				Kind string `json:"kind"`
			}
			if err := sigsyaml.Unmarshal(doc, &meta); err != nil {
				return nil, fmt.Errorf("%s: %w", r, err)
			}
			switch meta.Kind {
			case "Deployment":
				var d appsv1.Deployment
				if err := sigsyaml.UnmarshalStrict(doc, &d); err != nil {
					return nil, fmt.Errorf("%s: Deployment: %w", r, err)
				}
				deps[d.Name] = d
			case "HorizontalPodAutoscaler":
				var h autoscalingv2.HorizontalPodAutoscaler
				if err := sigsyaml.UnmarshalStrict(doc, &h); err != nil {
					return nil, fmt.Errorf("%s: HorizontalPodAutoscaler: %w", r, err)
				}
				hpas = append(hpas, h)
			}
		}
	}
	if len(hpas) != 1 {
		return nil, fmt.Errorf("%s: want one HorizontalPodAutoscaler, found %d", dir, len(hpas))
	}
	h := hpas[0]
	c.HPAName = h.Name
	if c.HPA, err = HPAFromSpec(h.Spec); err != nil {
		return nil, fmt.Errorf("HPA %s: %w", h.Name, err)
	}
	api, ok := deps[h.Spec.ScaleTargetRef.Name]
	if !ok || h.Spec.ScaleTargetRef.Kind != "Deployment" {
		return nil, fmt.Errorf("HPA %s scales %s %s, not a Deployment of %s", h.Name, h.Spec.ScaleTargetRef.Kind, h.Spec.ScaleTargetRef.Name, dir)
	}
	c.APIDeployment = api.Name
	if c.APICPU, c.APILimit, err = cpuOf(api); err != nil {
		return nil, err
	}
	if api.Spec.Replicas != nil {
		c.APIReplicas = int(*api.Spec.Replicas)
	}
	for name, d := range deps {
		if name == api.Name {
			continue
		}
		if d.Spec.Template.Labels["app.kubernetes.io/component"] == "worker" {
			c.WorkerDeployment = name
			if c.WorkerCPU, _, err = cpuOf(d); err != nil {
				return nil, err
			}
			c.WorkerReplicas = 1
			if d.Spec.Replicas != nil {
				c.WorkerReplicas = int(*d.Spec.Replicas)
			}
		}
	}
	if c.WorkerDeployment == "" {
		return nil, errors.New("no worker Deployment (label app.kubernetes.io/component: worker)")
	}
	return c, nil
}

func cpuOf(d appsv1.Deployment) (req, limit float64, err error) {
	cs := d.Spec.Template.Spec.Containers
	if len(cs) == 0 {
		return 0, 0, fmt.Errorf("deployment %s has no container", d.Name)
	}
	r := cs[0].Resources
	q, ok := r.Requests["cpu"]
	if !ok {
		return 0, 0, fmt.Errorf("deployment %s: no CPU request, which the HPA's utilisation is a share of", d.Name)
	}
	req = q.AsApproximateFloat64()
	limit = req
	if l, ok := r.Limits["cpu"]; ok {
		limit = l.AsApproximateFloat64()
	}
	return req, limit, nil
}

// splitDocs splits a multi-document YAML file.
func splitDocs(b []byte) [][]byte {
	var out [][]byte
	for _, d := range bytes.Split(append([]byte("\n"), b...), []byte("\n---")) {
		if len(bytes.TrimSpace(stripComments(d))) > 0 {
			out = append(out, d)
		}
	}
	return out
}

func stripComments(b []byte) []byte {
	var out []byte
	for _, l := range bytes.Split(b, []byte("\n")) {
		if t := bytes.TrimSpace(l); len(t) > 0 && t[0] != '#' {
			out = append(out, l...)
		}
	}
	return out
}
