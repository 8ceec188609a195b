package deploy_test

import (
	"context"
	"fmt"
	"maps"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
)

// composeEnv is the environment compose.yaml is loaded with: the variables
// of .env.example, which must therefore name every one it needs.
func composeEnv(t *testing.T) map[string]string {
	t.Helper()
	env, err := dotenv.Read(".env.example")
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// loadCompose loads compose.yaml the way `docker compose` does: schema
// validation, interpolation, normalisation and the consistency checks
// (undefined networks or volumes, dependency cycles) all on.
func loadCompose(env map[string]string) (*types.Project, error) {
	return loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  ".",
		ConfigFiles: []types.ConfigFile{{Filename: "compose.yaml"}},
		Environment: env,
	})
}

func mustLoadCompose(t *testing.T) *types.Project {
	t.Helper()
	p, err := loadCompose(composeEnv(t))
	if err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	return p
}

func envValue(s types.ServiceConfig, name string) string {
	if v := s.Environment[name]; v != nil {
		return *v
	}
	return ""
}

// isSurge tells the services running the Surge image apart.
func isSurge(s types.ServiceConfig) bool {
	return s.Build != nil && s.Build.Dockerfile == "deploy/Dockerfile"
}

// TestComposeRequiresSecrets checks that every secret is required: Compose
// must refuse to start rather than run with an empty password or key.
func TestComposeRequiresSecrets(t *testing.T) {
	for _, name := range []string{"POSTGRES_PASSWORD", "REPLICATION_PASSWORD", "REDIS_PASSWORD", "SURGE_WAITROOM_KEYS", "SURGE_ADMIN_TOKEN", "GRAFANA_ADMIN_PASSWORD"} {
		env := composeEnv(t)
		if _, ok := env[name]; !ok {
			t.Errorf(".env.example does not list %s", name)
		}
		delete(env, name)
		if _, err := loadCompose(env); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("compose.yaml loads without %s (err: %v); want ${%s:?...} so it is required", name, err, name)
		}
	}
}

// TestComposeTopology checks the services, their health checks, resource
// limits and start order, and that the Surge settings point at services
// that exist.
func TestComposeTopology(t *testing.T) {
	p := mustLoadCompose(t)
	want := []string{"postgres", "postgres-replica", "redis", "nats-1", "nats-2", "nats-3", "api", "worker", "haproxy",
		"varnish", "prometheus", "alertmanager", "grafana"}
	if got := slices.Sorted(maps.Keys(p.Services)); !slices.Equal(got, slices.Sorted(slices.Values(want))) {
		t.Errorf("services = %v, want %v", got, want)
	}

	for name, s := range p.Services {
		if err := checkPinned(s.Image); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if s.HealthCheck == nil || s.HealthCheck.Disable || len(s.HealthCheck.Test) == 0 {
			t.Errorf("%s: no healthcheck; depends_on conditions and `docker compose ps` need one", name)
		} else if s.HealthCheck.Interval == nil || s.HealthCheck.Timeout == nil {
			t.Errorf("%s: healthcheck without interval and timeout", name)
		}
		if s.Deploy == nil || s.Deploy.Resources.Limits == nil ||
			s.Deploy.Resources.Limits.NanoCPUs <= 0 || s.Deploy.Resources.Limits.MemoryBytes <= 0 {
			t.Errorf("%s: no CPU and memory limits (deploy.resources.limits)", name)
		}
		if s.Restart != "unless-stopped" {
			t.Errorf("%s: restart = %q, want unless-stopped", name, s.Restart)
		}
		for _, v := range s.Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			if _, err := os.Stat(v.Source); err != nil {
				t.Errorf("%s: bind mount source: %v", name, err)
			}
		}
		for dep, d := range s.DependsOn {
			if _, ok := p.Services[dep]; !ok {
				t.Errorf("%s depends on %s, which is not a service", name, dep)
			}
			if dep != "postgres-replica" && d.Condition != types.ServiceConditionHealthy {
				t.Errorf("%s depends on %s with condition %q, want service_healthy", name, dep, d.Condition)
			}
		}
	}

	api, worker := p.Services["api"], p.Services["worker"]
	if api.Deploy == nil || api.Deploy.Replicas == nil || *api.Deploy.Replicas != 3 {
		t.Errorf("api: want deploy.replicas: 3")
	}
	if worker.Deploy == nil || worker.Deploy.Replicas == nil || *worker.Deploy.Replicas != 1 {
		t.Errorf("worker: want deploy.replicas: 1")
	}
	if got := strings.Join(api.Command, " "); got != "serve --role api" {
		t.Errorf("api runs %q, want serve --role api", got)
	}
	if got := strings.Join(worker.Command, " "); got != "worker" {
		t.Errorf("worker runs %q, want worker", got)
	}
	if api.ContainerName != "" {
		t.Errorf("api: container_name %q rules out replicas", api.ContainerName)
	}
	for _, dep := range []string{"postgres", "redis", "nats-1", "nats-2", "nats-3"} {
		if _, ok := api.DependsOn[dep]; !ok {
			t.Errorf("api does not wait for %s", dep)
		}
		if _, ok := worker.DependsOn[dep]; !ok {
			t.Errorf("worker does not wait for %s", dep)
		}
	}
	if d, ok := p.Services["haproxy"].DependsOn["api"]; !ok || d.Condition != types.ServiceConditionHealthy {
		t.Errorf("haproxy must wait for the api to be healthy")
	}
	if d, ok := p.Services["postgres-replica"].DependsOn["postgres"]; !ok || d.Condition != types.ServiceConditionHealthy {
		t.Errorf("postgres-replica must wait for the primary to be healthy: it clones it")
	}
	if len(api.Ports) != 0 {
		t.Errorf("api publishes ports %v: traffic must come through HAProxy", api.Ports)
	}
}

// TestComposeSurgeSettings checks the environment of every Surge
// container: each SURGE_* variable names a real flag, the listeners match
// the health check, and the URLs point at the services and credentials of
// this file.
func TestComposeSurgeSettings(t *testing.T) {
	p := mustLoadCompose(t)
	env := composeEnv(t)
	pg, redis := p.Services["postgres"], p.Services["redis"]
	for name, s := range p.Services {
		if !isSurge(s) {
			continue
		}
		t.Run(name, func(t *testing.T) {
			if !s.ReadOnly {
				t.Errorf("read_only is off: the image needs no writable root")
			}
			adminPort := portOf(t, "SURGE_ADMIN_ADDR", envValue(s, "SURGE_ADMIN_ADDR"))
			if hc := strings.Join(s.HealthCheck.Test, " "); !strings.Contains(hc, "127.0.0.1:"+strconv.Itoa(adminPort)+"/readyz") {
				t.Errorf("healthcheck %q does not probe /readyz on the admin port %d", hc, adminPort)
			}
			if s.Environment["SURGE_ADDR"] != nil {
				portOf(t, "SURGE_ADDR", envValue(s, "SURGE_ADDR"))
			}

			db := mustParseURL(t, "SURGE_DB_URL", envValue(s, "SURGE_DB_URL"))
			if db.Hostname() != "postgres" {
				t.Errorf("SURGE_DB_URL host %q, want the postgres service", db.Hostname())
			}
			if pw, _ := db.User.Password(); pw != env["POSTGRES_PASSWORD"] || db.User.Username() != envValue(pg, "POSTGRES_USER") {
				t.Errorf("SURGE_DB_URL credentials differ from the postgres service's")
			}
			if strings.TrimPrefix(db.Path, "/") != envValue(pg, "POSTGRES_DB") {
				t.Errorf("SURGE_DB_URL database %q, postgres creates %q", db.Path, envValue(pg, "POSTGRES_DB"))
			}
			for _, u := range strings.Split(envValue(s, "SURGE_DB_REPLICA_URL"), ",") {
				r := mustParseURL(t, "SURGE_DB_REPLICA_URL", u)
				if _, ok := p.Services[r.Hostname()]; !ok || !strings.HasPrefix(r.Hostname(), "postgres-replica") {
					t.Errorf("SURGE_DB_REPLICA_URL host %q is not a replica service", r.Hostname())
				}
			}
			rd := mustParseURL(t, "SURGE_REDIS_URL", envValue(s, "SURGE_REDIS_URL"))
			if pw, _ := rd.User.Password(); rd.Hostname() != "redis" || pw != env["REDIS_PASSWORD"] {
				t.Errorf("SURGE_REDIS_URL %q does not reach the redis service with its password", rd.Redacted())
			}
			if !slices.Contains(redis.Command, "--requirepass") {
				t.Errorf("redis runs without --requirepass")
			}

			var nats []string
			for _, u := range strings.Split(envValue(s, "SURGE_NATS_URL"), ",") {
				n := mustParseURL(t, "SURGE_NATS_URL", u)
				if _, ok := p.Services[n.Hostname()]; !ok || n.Port() != "4222" {
					t.Errorf("SURGE_NATS_URL lists %q, not a NATS service's client port", u)
				}
				nats = append(nats, n.Hostname())
			}
			if want := []string{"nats-1", "nats-2", "nats-3"}; !slices.Equal(slices.Sorted(slices.Values(nats)), want) {
				t.Errorf("SURGE_NATS_URL lists %v, want every node %v", nats, want)
			}
			if envValue(s, "SURGE_NATS_REPLICAS") != strconv.Itoa(len(nats)) {
				t.Errorf("SURGE_NATS_REPLICAS = %q with %d NATS nodes", envValue(s, "SURGE_NATS_REPLICAS"), len(nats))
			}

			drain := mustDuration(t, "SURGE_DRAIN_DELAY", envValue(s, "SURGE_DRAIN_DELAY"))
			shutdown := mustDuration(t, "SURGE_SHUTDOWN_TIMEOUT", envValue(s, "SURGE_SHUTDOWN_TIMEOUT"))
			if s.StopGracePeriod == nil || time.Duration(*s.StopGracePeriod) <= drain+shutdown {
				t.Errorf("stop_grace_period must exceed drain delay + shutdown timeout (%v)", drain+shutdown)
			}

			if surgeSubcommand(s.Command) == "serve" {
				// Cookies follow the scheme HAProxy reports, believed only
				// from HAProxy, which must report it.
				if mode := envValue(s, "SURGE_COOKIE_SECURE"); mode != "auto" && mode != "always" {
					t.Errorf("SURGE_COOKIE_SECURE = %q, want auto or always", mode)
				}
				if envValue(s, "SURGE_COOKIE_SECURE") == "auto" && envValue(s, "SURGE_TRUSTED_PROXIES") == "" {
					t.Errorf("SURGE_COOKIE_SECURE=auto without SURGE_TRUSTED_PROXIES: X-Forwarded-Proto is never believed")
				}
				if cfg, err := os.ReadFile("haproxy/haproxy.cfg"); err != nil || !strings.Contains(string(cfg), "set-header X-Forwarded-Proto https if { ssl_fc }") {
					t.Errorf("haproxy.cfg does not tell Surge the scheme (X-Forwarded-Proto): %v", err)
				}
			}

			checkSurgeEnv(t, "compose "+name, surgeSubcommand(s.Command), slices.Collect(maps.Keys(s.Environment)))
		})
	}
}

// TestComposeNATSCluster checks that the three NATS nodes form one
// JetStream cluster: same cluster name, routes to every node, distinct
// server names, each with its own volume.
func TestComposeNATSCluster(t *testing.T) {
	p := mustLoadCompose(t)
	nodes := []string{"nats-1", "nats-2", "nats-3"}
	var wantRoutes []string
	for _, n := range nodes {
		wantRoutes = append(wantRoutes, "nats://"+n+":6222")
	}
	names := map[string]bool{}
	for _, n := range nodes {
		s := p.Services[n]
		opts := map[string]string{}
		for _, a := range s.Command {
			if k, v, ok := strings.Cut(a, "="); ok {
				opts[k] = v
			} else {
				opts[a] = ""
			}
		}
		if _, ok := opts["--jetstream"]; !ok {
			t.Errorf("%s: JetStream is off", n)
		}
		if opts["--cluster_name"] != "surge" {
			t.Errorf("%s: cluster name %q", n, opts["--cluster_name"])
		}
		if got := strings.Split(opts["--routes"], ","); !slices.Equal(slices.Sorted(slices.Values(got)), wantRoutes) {
			t.Errorf("%s: routes %v, want %v", n, got, wantRoutes)
		}
		if names[opts["--server_name"]] || opts["--server_name"] == "" {
			t.Errorf("%s: server name %q is empty or taken", n, opts["--server_name"])
		}
		names[opts["--server_name"]] = true
		if !slices.ContainsFunc(s.Volumes, func(v types.ServiceVolumeConfig) bool {
			return v.Type == types.VolumeTypeVolume && v.Source == n && v.Target == opts["--store_dir"]
		}) {
			t.Errorf("%s: JetStream store %q is not on its own named volume", n, opts["--store_dir"])
		}
	}
}

// TestComposePostgresReplication checks the primary is configured to
// stream and the replica clones it with the scripts in postgres/.
func TestComposePostgresReplication(t *testing.T) {
	p := mustLoadCompose(t)
	primary, replica := p.Services["postgres"], p.Services["postgres-replica"]
	args := strings.Join(primary.Command, " ")
	for _, setting := range []string{"wal_level=replica", "max_wal_senders=", "max_replication_slots=", "max_slot_wal_keep_size="} {
		if !strings.Contains(args, setting) {
			t.Errorf("primary: missing -c %s", setting)
		}
	}
	if !hasBind(primary, "postgres/primary-init.sh", "/docker-entrypoint-initdb.d/") {
		t.Errorf("primary: postgres/primary-init.sh is not mounted in /docker-entrypoint-initdb.d")
	}
	if !hasBind(replica, "postgres/replica-entrypoint.sh", "/replica-entrypoint.sh") ||
		strings.Join(replica.Entrypoint, " ") != "sh /replica-entrypoint.sh" {
		t.Errorf("replica: does not run postgres/replica-entrypoint.sh")
	}
	if envValue(replica, "PRIMARY_HOST") != "postgres" {
		t.Errorf("replica: PRIMARY_HOST = %q, want postgres", envValue(replica, "PRIMARY_HOST"))
	}
	if replica.User != "postgres" {
		t.Errorf("replica: runs as %q, want postgres (the owner of the data)", replica.User)
	}
	for _, s := range []types.ServiceConfig{primary, replica} {
		if envValue(s, "PGDATA") != "/var/lib/postgresql/data/pgdata" {
			t.Errorf("%s: PGDATA must be a subdirectory of the volume", s.Name)
		}
	}
}

func hasBind(s types.ServiceConfig, source, target string) bool {
	return slices.ContainsFunc(s.Volumes, func(v types.ServiceVolumeConfig) bool {
		return v.Type == types.VolumeTypeBind && strings.HasSuffix(v.Source, source) && strings.HasPrefix(v.Target, target) && v.ReadOnly
	})
}

func mustParseURL(t *testing.T, what, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil || u.Host == "" {
		t.Fatalf("%s %q: not a URL with a host (%v)", what, s, err)
	}
	return u
}

func mustDuration(t *testing.T, what, s string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return d
}

// TestComposeRedisPersists checks Redis keeps what shoppers cannot lose
// (sessions, the waiting room) across a restart, as docs/operations.md
// requires: an append-only file fsynced every second, on a named volume.
func TestComposeRedisPersists(t *testing.T) {
	p := mustLoadCompose(t)
	redis := p.Services["redis"]
	if err := redisPersists(redis.Command); err != nil {
		t.Error(err)
	}
	if !slices.ContainsFunc(redis.Volumes, func(v types.ServiceVolumeConfig) bool {
		return v.Type == types.VolumeTypeVolume && v.Target == "/data"
	}) {
		t.Errorf("redis: /data (where the append-only file goes) is not a named volume")
	}
}

// redisPersists checks redis-server arguments turn on the append-only
// file with an fsync every second.
func redisPersists(args []string) error {
	opts := map[string]string{}
	for i := 0; i+1 < len(args); i++ {
		if strings.HasPrefix(args[i], "--") {
			opts[args[i]] = args[i+1]
		}
	}
	if opts["--appendonly"] != "yes" || opts["--appendfsync"] != "everysec" {
		return fmt.Errorf("redis %v: want --appendonly yes --appendfsync everysec, or a restart logs every shopper out", args)
	}
	return nil
}
