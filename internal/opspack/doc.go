// Package opspack generates Surge's operations pack from its one source of
// truth, the SLO file (deploy/slo/surge.yaml): Prometheus recording rules
// and multiwindow, multi-burn-rate alerts through Sloth, promtool unit
// tests for them, and the Grafana dashboards through the Grafana
// Foundation SDK. `go generate ./deploy` writes the files; the package's
// tests regenerate them and fail when a checked-in file differs.
//
// It is a build-time tool: the surge binary does not link it.
package opspack
