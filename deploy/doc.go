// Package deploy holds Surge's deployment files: the container image
// (Dockerfile), a Compose file for one Docker host with HAProxy in front
// (compose.yaml, haproxy/), and Kubernetes manifests built with kustomize
// (k8s/base). It has no code; its tests load every file with the real
// Compose loader and Kubernetes API types, so a misspelled field, a probe
// on the wrong port or a Service that selects no pod fails `go test`.
package deploy

// The Prometheus rules, their unit tests and the Grafana dashboards are
// generated from slo/surge.yaml (see internal/opspack).
//go:generate go run ../internal/opspack/opsgen -root ..
