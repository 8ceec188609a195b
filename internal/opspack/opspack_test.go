package opspack_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/surge-commerce/surge/internal/opspack"
	"github.com/surge-commerce/surge/internal/slo"
)

const root = "../.."

// TestGeneratedFilesAreCurrent regenerates the pack from the SLO file and
// fails on any difference from the files checked in.
func TestGeneratedFilesAreCurrent(t *testing.T) {
	files, err := opspack.Generate(t.Context(), os.DirFS(root))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{opspack.SLORulesFile, opspack.FastSLORulesFile, opspack.BurnTestFile} {
		if _, ok := files[want]; !ok {
			t.Errorf("%s not generated", want)
		}
	}
	for name, want := range files {
		have, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			t.Errorf("%s: %v (run go generate ./deploy)", name, err)
			continue
		}
		if !bytes.Equal(have, want) {
			t.Errorf("%s differs from what deploy/slo generates: run go generate ./deploy", name)
		}
	}
}

// ruleFiles lists every Prometheus rule file the pack ships, and the test
// variant.
func ruleFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root, "deploy/prometheus/*.yml"))
	if err != nil || len(files) < 2 {
		t.Fatalf("rule files: %v %v", files, err)
	}
	return append(files, filepath.Join(root, opspack.FastSLORulesFile))
}

// promtool finds promtool: $SURGE_TEST_PROMTOOL, else on PATH. The test
// harness (scripts/services) installs it with Debian's prometheus.
func promtool(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("SURGE_TEST_PROMTOOL"); p != "" {
		return p
	}
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not found: install Debian's prometheus package (scripts/services start does) or set SURGE_TEST_PROMTOOL")
	}
	return p
}

// TestPromtoolCheckRules: promtool accepts every rule file.
func TestPromtoolCheckRules(t *testing.T) {
	tool := promtool(t)
	out, err := exec.Command(tool, append([]string{"check", "rules"}, ruleFiles(t)...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
}

// TestPromtoolUnitTests runs the rules' unit tests: every SLO's page alert
// fires on a 14.4x burn and stays silent at 1x (generated from the SLO
// file), and every saturation alert fires on what it watches.
func TestPromtoolUnitTests(t *testing.T) {
	tool := promtool(t)
	tests, err := filepath.Glob(filepath.Join(root, "deploy/prometheus/tests/*-test.yml"))
	if err != nil || len(tests) < 2 {
		t.Fatalf("unit tests: %v %v", tests, err)
	}
	for _, f := range tests {
		t.Run(filepath.Base(f), func(t *testing.T) {
			t.Parallel()
			out, err := exec.Command(tool, "test", "rules", f).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "SUCCESS") {
				t.Fatalf("promtool test rules %s: %v\n%s", f, err, out)
			}
		})
	}
}

// TestEveryAlertHasARunbookLine: docs/operations.md explains each alert.
func TestEveryAlertHasARunbookLine(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(root, "docs/operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range ruleFiles(t)[:len(ruleFiles(t))-1] {
		for _, a := range alertNames(t, f) {
			if !bytes.Contains(doc, []byte("`"+a+"`")) {
				t.Errorf("docs/operations.md has no runbook line for %s (%s)", a, f)
			}
		}
	}
}

func alertNames(t *testing.T, file string) []string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var rf struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(data, &rf); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	var out []string
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if _, err := slo.MetricNames(r.Expr); err != nil {
				t.Errorf("%s: %q: %v", file, r.Expr, err)
			}
			if r.Alert != "" && (len(out) == 0 || out[len(out)-1] != r.Alert) {
				out = append(out, r.Alert)
			}
		}
	}
	return out
}

// TestDashboards: the three dashboards exist, and every query parses as
// PromQL once Grafana's variables are filled in. (Which metrics they read
// is checked against a running shop in cmd/surge.)
func TestDashboards(t *testing.T) {
	vars := strings.NewReplacer("$__rate_interval", "5m", "$__range", "1h", "$drop", ".*", "$instance", ".*")
	files, err := opspack.Dashboards(mustSLOFile(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{opspack.OverviewDashboard, opspack.DropDashboard, opspack.RuntimeDashboard} {
		var d struct {
			UID    string `json:"uid"`
			Panels []struct {
				Title   string `json:"title"`
				Targets []struct {
					Expr string `json:"expr"`
				} `json:"targets"`
			} `json:"panels"`
		}
		if err := json.Unmarshal(files[name], &d); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		n := 0
		for _, p := range d.Panels {
			for _, q := range p.Targets {
				n++
				if _, err := slo.MetricNames(vars.Replace(q.Expr)); err != nil {
					t.Errorf("%s: panel %q: %q: %v", name, p.Title, q.Expr, err)
				}
			}
		}
		if d.UID == "" || n < 8 {
			t.Errorf("%s: uid %q, %d queries", name, d.UID, n)
		}
	}
}

func mustSLOFile(t *testing.T) *slo.File {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, opspack.SLOFile))
	if err != nil {
		t.Fatal(err)
	}
	f, err := slo.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return f
}
