package deploy_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"go.yaml.in/yaml/v3"
)

// mount returns the container path where a service mounts the host path
// src (relative to this directory), or "".
func mount(t *testing.T, volumes []struct{ Source, Target string }, src string) string {
	t.Helper()
	for _, v := range volumes {
		if filepath.Clean(v.Source) == filepath.Clean(src) {
			return v.Target
		}
	}
	return ""
}

// TestComposeMonitoring: Prometheus evaluates the shipped rule files and
// scrapes every Surge container's operations listener, Grafana loads the
// dashboards, and the real tools accept the configuration files.
func TestComposeMonitoring(t *testing.T) {
	p := mustLoadCompose(t)
	vols := func(name string) []struct{ Source, Target string } {
		var out []struct{ Source, Target string }
		for _, v := range p.Services[name].Volumes {
			out = append(out, struct{ Source, Target string }{v.Source, v.Target})
		}
		return out
	}
	rulesDir := mount(t, vols("prometheus"), "prometheus")
	confPath := mount(t, vols("prometheus"), "monitoring/prometheus.yml")
	if rulesDir == "" || confPath == "" {
		t.Fatalf("prometheus mounts neither ./prometheus nor ./monitoring/prometheus.yml: %v", vols("prometheus"))
	}
	var conf struct {
		RuleFiles []string `yaml:"rule_files"`
		Scrape    []struct {
			DNS []struct {
				Names []string `yaml:"names"`
				Port  int      `yaml:"port"`
			} `yaml:"dns_sd_configs"`
		} `yaml:"scrape_configs"`
	}
	b, err := os.ReadFile("monitoring/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &conf); err != nil {
		t.Fatal(err)
	}
	if len(conf.RuleFiles) != 1 || conf.RuleFiles[0] != rulesDir+"/*.yml" {
		t.Errorf("rule_files %v, want %s/*.yml", conf.RuleFiles, rulesDir)
	}
	scraped := map[string]int{}
	for _, sc := range conf.Scrape {
		for _, d := range sc.DNS {
			for _, n := range d.Names {
				scraped[n] = d.Port
			}
		}
	}
	for name, s := range p.Services {
		if !isSurge(s) {
			continue
		}
		if port := portOf(t, "SURGE_ADMIN_ADDR", envValue(s, "SURGE_ADMIN_ADDR")); scraped[name] != port {
			t.Errorf("prometheus scrapes %s on port %d, its operations listener is on %d", name, scraped[name], port)
		}
	}
	dashDir := mount(t, vols("grafana"), "grafana")
	var prov struct {
		Providers []struct {
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	b, err = os.ReadFile("monitoring/grafana-provisioning/dashboards/surge.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &prov); err != nil {
		t.Fatal(err)
	}
	if dashDir == "" || len(prov.Providers) != 1 || prov.Providers[0].Options.Path != dashDir {
		t.Errorf("grafana mounts the dashboards at %q, its provider reads %+v", dashDir, prov.Providers)
	}
	if mount(t, vols("grafana"), "monitoring/grafana-provisioning") != "/etc/grafana/provisioning" {
		t.Errorf("grafana does not mount the provisioning files at /etc/grafana/provisioning")
	}

	if tool, err := exec.LookPath("promtool"); err == nil {
		if out, err := exec.Command(tool, "check", "config", "--syntax-only", "monitoring/prometheus.yml").CombinedOutput(); err != nil {
			t.Errorf("promtool check config: %v\n%s", err, out)
		}
	} else {
		t.Log("promtool not found; configuration not checked by it")
	}
	if tool, err := exec.LookPath("amtool"); err == nil {
		if out, err := exec.Command(tool, "check-config", "monitoring/alertmanager.yml").CombinedOutput(); err != nil {
			t.Errorf("amtool check-config: %v\n%s", err, out)
		}
	} else {
		t.Log("amtool not found; alertmanager.yml not checked by it")
	}
}

// TestK8sMonitoring: the kustomize base carries the alert rules and the
// dashboards as ConfigMaps, the dashboards labelled for Grafana's sidecar.
func TestK8sMonitoring(t *testing.T) {
	m := mustRender(t)
	rules := m.configMaps["surge-prometheus-rules"]
	dash := m.configMaps["surge-grafana-dashboards"]
	if rules == nil || dash == nil {
		t.Fatal("no surge-prometheus-rules or surge-grafana-dashboards ConfigMap in the base")
	}
	for dir, cm := range map[string]map[string]string{"prometheus/*.yml": rules.Data, "grafana/*.json": dash.Data} {
		files, _ := filepath.Glob(dir)
		if len(files) == 0 || len(cm) != len(files) {
			t.Errorf("%s: %d files, the ConfigMap holds %d", dir, len(files), len(cm))
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if cm[filepath.Base(f)] != string(b) {
				t.Errorf("ConfigMap copy of %s differs: run go generate ./deploy", f)
			}
		}
	}
	if dash.Labels["grafana_dashboard"] != "1" {
		t.Errorf("dashboards ConfigMap lacks the grafana_dashboard: \"1\" label the sidecar looks for")
	}
}
