package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/surge-commerce/surge/internal/admission"
	"github.com/surge-commerce/surge/internal/ops"
	"github.com/surge-commerce/surge/internal/shop"
	"github.com/surge-commerce/surge/internal/sqlitestore"
	"github.com/surge-commerce/surge/internal/storefront"
	"github.com/surge-commerce/surge/internal/telemetry"
	"github.com/surge-commerce/surge/internal/tracing"
	"github.com/surge-commerce/surge/internal/waitroom"
)

// serveConfig is everything `surge serve` can be told: the shop's
// settings, declared (with their defaults) once in shop.Config, and the
// process's own: listeners, logging, shutdown. Each flag is bound to its
// field and shows the default the field has in shop.Defaults.
type serveConfig struct {
	shop.Config

	Addr            string
	AdminAddr       string
	Demo            bool
	DemoProducts    int
	AdminTokenFile  string
	Pprof           bool
	LogLevel        string
	LogFormat       string
	DrainDelay      time.Duration
	ShutdownTimeout time.Duration
	MaxConns        int
	// TrustedProxies is --trusted-proxies as given; shopConfig parses it
	// into Config.AdmissionConfig.
	TrustedProxies []string

	Pay payFlags
	// JobsOn is --jobs; the shop's setting is its negation, JobsOff.
	JobsOn bool

	// Cmdline is the command line with secrets redacted, for
	// /debug/pprof/cmdline.
	Cmdline []string
	// Tracing is read from the OTEL_* environment variables.
	Tracing tracing.Config
}

// readAdminTokenFile reads --admin-token-file into AdminToken, checking
// it as --admin-token is checked.
func (c *serveConfig) readAdminTokenFile() error {
	if c.AdminTokenFile == "" {
		return nil
	}
	b, err := os.ReadFile(c.AdminTokenFile)
	if err != nil {
		return fmt.Errorf("--admin-token-file: %w", err)
	}
	c.AdminToken = strings.TrimSpace(string(b))
	if len(c.AdminToken) < 16 {
		return fmt.Errorf("--admin-token-file %s: the token must be at least 16 characters", c.AdminTokenFile)
	}
	return nil
}

// shopConfig is the shop's part of the settings, with what the flags give
// in another form filled in: the public URL, the trusted proxies, SMTP's
// STARTTLS and the payment provider's secrets.
func (c serveConfig) shopConfig() (shop.Config, error) {
	sc := c.Config
	sc.PublicURL, _ = c.publicURL() // checked by validate
	sc.SMTP.STARTTLS = sc.SMTP.Username != ""
	sc.JobsOff = !c.JobsOn
	var err error
	if sc.CookieSecure, err = storefront.ParseCookieSecure(string(c.CookieSecure)); err != nil {
		return shop.Config{}, fmt.Errorf("--%w", err)
	}
	if sc.PaymentProvider, sc.Stripe, err = c.Pay.config(); err != nil {
		return shop.Config{}, err
	}
	if sc.AdmissionConfig.TrustedProxies, err = c.trustedProxies(); err != nil {
		return shop.Config{}, err
	}
	return sc, nil
}

// trustedProxies is --trusted-proxies parsed, checked with
// --client-ip-header.
func (c serveConfig) trustedProxies() ([]netip.Prefix, error) {
	trusted, err := admission.ParseTrustedProxies(c.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("--trusted-proxies: %w", err)
	}
	if c.AdmissionConfig.ClientIPHeader != "" && len(trusted) == 0 {
		return nil, errors.New("--client-ip-header needs --trusted-proxies: the header is believed only from them")
	}
	return trusted, nil
}

func (c serveConfig) validate() error {
	var errs []error
	if _, err := shop.ParseRole(string(c.Role)); err != nil {
		errs = append(errs, fmt.Errorf("--role: %w", err))
	}
	if c.Standby && (c.StandbyOnActive < 2 || c.StandbyOnLatency <= 0 || c.StandbyRate < 1 || c.StandbyMaxActive < 0) {
		errs = append(errs, errors.New("--standby-on-active must be at least 2, --standby-on-latency and --standby-rate positive"))
	}
	if c.WarmBefore <= 0 {
		errs = append(errs, errors.New("--drop-warmup must be positive"))
	}
	if c.OutboxMaxLag <= 0 {
		errs = append(errs, errors.New("--outbox-max-lag must be positive"))
	}
	if c.ReservationTTL <= 0 || c.ClaimLease <= 0 || c.SweepEvery <= 0 {
		errs = append(errs, errors.New("--reservation-ttl, --payment-claim-lease and --expiry-sweep must be positive"))
	}
	if c.PaymentFailureRate < 0 || c.PaymentFailureRate > 1 {
		errs = append(errs, errors.New("--payment-failure-rate: must be 0 to 1"))
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("--addr %q: %w", c.Addr, err))
	}
	if _, _, err := net.SplitHostPort(c.AdminAddr); err != nil {
		errs = append(errs, fmt.Errorf("--admin-addr %q: %w", c.AdminAddr, err))
	}
	if len(c.DBReplicaURLs) > 0 && c.DBURL == "" {
		errs = append(errs, errors.New("--db-replica-url needs --db-url: replicas follow a PostgreSQL primary"))
	}
	if c.MaxReplicaLag <= 0 {
		errs = append(errs, errors.New("--db-max-replica-lag must be positive"))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("--data-dir: required"))
	}
	if c.WaitroomKeys != "" {
		if _, err := waitroom.ParseKeyring(c.WaitroomKeys); err != nil {
			errs = append(errs, fmt.Errorf("--waitroom-keys: %w (each secret: at least %d random bytes, base64)", err, waitroom.MinSecretLen))
		}
	} else if c.RedisURL != "" && c.Role != shop.RoleWorker {
		// A key of its own in each replica's data dir would make every
		// replica refuse the tickets and access tokens the others issue.
		errs = append(errs, errors.New("--waitroom-keys: required with --redis-url: replicas sharing a waiting room must share its signing keys"))
	}
	if _, err := c.publicURL(); err != nil {
		errs = append(errs, err)
	}
	if c.DemoProducts < 1 {
		errs = append(errs, errors.New("--demo-products: must be at least 1"))
	}
	if c.AdminToken != "" && len(c.AdminToken) < 16 {
		errs = append(errs, errors.New("--admin-token: use at least 16 characters"))
	}
	if c.AdminToken != "" && c.AdminTokenFile != "" {
		errs = append(errs, errors.New("--admin-token and --admin-token-file: give one"))
	}
	if c.PageCacheBytes < 1<<20 {
		errs = append(errs, errors.New("--page-cache-bytes: at least 1 MiB"))
	}
	if c.PageCacheTTL <= 0 || c.PageCacheSWR < 0 {
		errs = append(errs, errors.New("--page-cache-ttl must be positive and --page-cache-swr not negative"))
	}
	if _, err := storefront.ParseCookieSecure(string(c.CookieSecure)); err != nil {
		errs = append(errs, fmt.Errorf("--%w", err))
	}
	if c.DrainDelay < 0 || c.ShutdownTimeout <= 0 {
		errs = append(errs, errors.New("--drain-delay must not be negative and --shutdown-timeout must be positive"))
	}
	errs = append(errs, validateCDN(c.CDN))
	if _, err := sqlitestore.ParseSynchronous(string(c.SQLiteSynchronous)); err != nil {
		errs = append(errs, fmt.Errorf("--sqlite-synchronous: %w", err))
	}
	errs = append(errs, validateJobs(c.Config))
	if _, _, err := c.Pay.config(); err != nil {
		errs = append(errs, err)
	}
	if _, err := c.trustedProxies(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// publicURL is --public-url checked, or the public listener's address
// when it is empty: right for a shop on one machine, while behind a load
// balancer or proxy the flag must name the address shoppers use.
func (c serveConfig) publicURL() (string, error) {
	if c.PublicURL == "" {
		host, port, err := net.SplitHostPort(c.Addr)
		if err != nil {
			return "", nil // --addr's own check reports it
		}
		if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
			host = "localhost"
		}
		return "http://" + net.JoinHostPort(host, port), nil
	}
	u, err := url.Parse(c.PublicURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		u.RawQuery != "" || u.Fragment != "" || strings.Trim(u.Path, "/") != "" {
		return "", fmt.Errorf("--public-url %q: want the shop's scheme and host, such as https://shop.example.com", c.PublicURL)
	}
	return strings.TrimRight(c.PublicURL, "/"), nil
}

// workerFlags are the serve flags that concern the order pipeline: its
// database, bus, payments, mail, the operations listener and logging.
// The storefront's (listener, caches, waiting room, admission, cookies)
// do nothing in a worker, so `surge worker` neither takes nor lists them.
var workerFlags = []string{"config", "data-dir", "db-url", "db-replica-url", "db-max-replica-lag", "redis-url", "redis-prefix",
	"nats-url", "nats-listen", "nats-replicas", "consumer-ack-wait", "payment-latency", "payment-failure-rate",
	"reservation-ttl", "payment-claim-lease", "expiry-sweep", "smtp-addr", "smtp-from", "smtp-user", "smtp-password",
	"shop-name", "currency", "admin-addr", "admin-token", "admin-token-file", "pprof", "log-level", "log-format",
	"drain-delay", "shutdown-timeout", "public-url", "payment-provider", "stripe-secret-key-file", "stripe-webhook-secret-file",
	"stripe-publishable-key", "stripe-api-url", "waitroom-keys"}

// newWorkerCmd is `surge serve --role worker` with its own help and only
// the flags a worker uses: the order consumers and the expiry sweep, with
// the operations listener but no shop listener.
func newWorkerCmd(getenv func(string) string, stdout, stderr io.Writer) *cobra.Command {
	serveCmd := newServeCmd(getenv, stdout, stderr)
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Run the order pipeline consumers and the mail jobs alone: payments, stock, order mail, expiry, drop reminders",
		Long: `Run the order pipeline without the storefront: the consumers of order events
(payment capture, stock commit, confirmation mail) and the sweep that releases
the stock of orders never paid, and the mail jobs (drop reminders and
sold-out mail to "notify me" subscribers, read from a database replica when
one is configured, paced by --jobs-mail-rate and holding off while the API
replicas named by --jobs-pressure-url shed load). It serves no shop, only the operations
listener (--admin-addr: /livez /readyz /metrics). Run it beside
` + "`surge serve --role api`" + ` replicas, against the same database and NATS.

Every flag can also be set as an environment variable (SURGE_ plus the flag
name in upper snake case) or in a YAML file given by --config; a file shared
with the API replicas may hold their settings too, which a worker ignores.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := serveCmd.Flags().Set("role", string(shop.RoleWorker)); err != nil {
				return err
			}
			// The flags are serve's own (shared, not copied), so serve
			// reads the environment and file for them and validates.
			serveCmd.SetContext(cmd.Context())
			return serveCmd.RunE(serveCmd, args)
		},
	}
	for _, name := range append(workerFlags, jobsFlagNames...) {
		cmd.Flags().AddFlag(serveCmd.Flags().Lookup(name))
	}
	completeFlagValues(cmd)
	return cmd
}

func newServeCmd(getenv func(string) string, stdout, stderr io.Writer) *cobra.Command {
	var cfg serveConfig
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the shop: storefront pages, JSON API, order workers and the admin listener",
		Long: `Run the shop. With no flags it uses embedded defaults: a SQLite database in
--data-dir and in-process caches. Every flag can also be set as an environment
variable (SURGE_ plus the flag name in upper snake case, e.g. SURGE_ADMIN_TOKEN)
or in a YAML file given by --config; flags win over the environment, which wins
over the file.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := bindConfig(cmd.Flags(), getenv); err != nil {
				return err
			}
			if err := cfg.validate(); err != nil {
				return err
			}
			if err := cfg.readAdminTokenFile(); err != nil {
				return err
			}
			cfg.Cmdline = redactedCmdline(cmd)
			var err error
			if cfg.Tracing, err = tracing.FromEnv(getenv); err != nil {
				return err
			}
			return serve(cmd.Context(), cfg, stdout, stderr)
		},
	}
	cfg.bind(cmd.Flags(), getenv)
	completeFlagValues(cmd)
	return cmd
}

// bind binds the serve flags to cfg's fields.
func (cfg *serveConfig) bind(f *pflag.FlagSet, getenv func(string) string) {
	// Every shop setting starts at its default in shop.Defaults, which the
	// flag shows; only the process's own settings have their defaults here.
	cfg.Config = shop.Defaults()
	d := cfg.Config
	ac := &cfg.AdmissionConfig
	f.String("config", "", "YAML file of settings named like the flags")
	f.StringVar((*string)(&cfg.Role), "role", string(d.Role), "api (HTTP and outbox relay), worker (order consumers and expiry sweep) or all")
	f.StringVar(&cfg.DBURL, "db-url", d.DBURL, "PostgreSQL primary (postgres://user@host:port/db); empty uses the embedded SQLite database in --data-dir")
	f.StringSliceVar(&cfg.DBReplicaURLs, "db-replica-url", d.DBReplicaURLs, "PostgreSQL streaming read replica for catalog and search reads (repeatable)")
	f.DurationVar(&cfg.MaxReplicaLag, "db-max-replica-lag", d.MaxReplicaLag, "replicas lagging more than this are skipped; reads fall back to the primary")
	f.StringVar(&cfg.RedisURL, "redis-url", d.RedisURL, "Redis shared by every replica (redis://host:port/db): sessions, waiting room, rate limits, cache purges; empty keeps them in process")
	f.StringVar(&cfg.RedisPrefix, "redis-prefix", d.RedisPrefix, "prefix of every Redis key, so shops can share one Redis")
	f.StringVar(&cfg.NATSURL, "nats-url", d.NATSURL, "external NATS JetStream server or cluster; empty embeds one in --data-dir/nats")
	f.StringVar(&cfg.NATSListen, "nats-listen", d.NATSListen, "host:port where the embedded NATS server also accepts other processes (e.g. surge worker)")
	f.IntVar(&cfg.NATSReplicas, "nats-replicas", d.NATSReplicas, "stream replication factor (3 on a three-node cluster)")
	f.DurationVar(&cfg.PaymentLatency, "payment-latency", d.PaymentLatency, "mean latency of the simulated payment provider")
	f.Float64Var(&cfg.PaymentFailureRate, "payment-failure-rate", d.PaymentFailureRate, "fraction of simulated payment calls that fail transiently (0 to 1)")
	f.DurationVar(&cfg.ReservationTTL, "reservation-ttl", d.ReservationTTL, "how long checkout holds stock for an unpaid order")
	f.DurationVar(&cfg.ClaimLease, "payment-claim-lease", d.ClaimLease, "how long a payment attempt keeps its order from expiring")
	f.DurationVar(&cfg.SweepEvery, "expiry-sweep", d.SweepEvery, "how often expired reservations are released")
	f.BoolVar(&cfg.Standby, "standby", d.Standby, "hold the whole storefront behind a FIFO waiting line while load is above --standby-on-active or --standby-on-latency")
	f.IntVar(&cfg.StandbyOnActive, "standby-on-active", d.StandbyOnActive, "requests in flight that turn the standby line on (off again below 60% of it)")
	f.DurationVar(&cfg.StandbyOnLatency, "standby-on-latency", d.StandbyOnLatency, "p95 latency that turns the standby line on (off again below a quarter of it)")
	f.IntVar(&cfg.StandbyRate, "standby-rate", d.StandbyRate, "visitors let in from the standby line per minute")
	f.IntVar(&cfg.StandbyMaxActive, "standby-max-active", d.StandbyMaxActive, "cap on visitors let in from the standby line and still shopping")
	f.DurationVar(&cfg.WarmBefore, "drop-warmup", d.WarmBefore, "how long before a drop starts its pages are cached and database connections opened")
	f.StringVar(&cfg.WaitroomKeys, "waitroom-keys", d.WaitroomKeys, "waiting-room signing keys, id:base64secret[,id:base64secret...], current first, each secret at least 32 random bytes; every replica needs the same, so required with --redis-url (empty: a key kept in --data-dir; a worker needs none)")
	f.DurationVar(&cfg.AckWait, "consumer-ack-wait", d.AckWait, "how long before the messages of a silent (dead) worker are redelivered")
	f.DurationVar(&cfg.OutboxMaxLag, "outbox-max-lag", d.OutboxMaxLag, "an order event waiting this long in the outbox (the event bus not taking it) makes /readyz report degraded")
	f.StringVar(&cfg.SMTP.Addr, "smtp-addr", d.SMTP.Addr, "SMTP server host:port for order mail; empty logs mail instead")
	f.StringVar(&cfg.SMTP.From, "smtp-from", d.SMTP.From, "sender address of order mail")
	f.StringVar(&cfg.SMTP.Username, "smtp-user", d.SMTP.Username, "SMTP user (PLAIN auth, only over TLS or to this machine)")
	f.StringVar(&cfg.SMTP.Password, "smtp-password", d.SMTP.Password, "SMTP password")
	f.StringVar(&cfg.Addr, "addr", "127.0.0.1:8080", "public listener: storefront and API")
	f.StringVar(&cfg.AdminAddr, "admin-addr", "127.0.0.1:9090", "operations listener: /livez /readyz /metrics /ops (and /debug/pprof with --pprof)")
	f.StringVar(&cfg.DataDir, "data-dir", d.DataDir, "directory for the embedded database, the embedded NATS server and a generated waiting-room key; created when needed")
	f.BoolVar(&cfg.Demo, "demo", false, "seed the demo catalog on first start when the store is empty")
	f.IntVar(&cfg.DemoProducts, "demo-products", 1250, "products in the demo catalog")
	f.StringVar(&cfg.AdminToken, "admin-token", d.AdminToken,
		"bearer token for /api/v1/admin, at least 16 characters; prefer SURGE_ADMIN_TOKEN or --admin-token-file, since a command line is visible to every local user (with --demo and none set, one is generated)")
	f.StringVar(&cfg.AdminTokenFile, "admin-token-file", "", "file holding the admin token (surrounding white space ignored), e.g. a mounted secret")
	f.BoolVar(&cfg.Pprof, "pprof", false, "serve Go profiles under /debug/pprof on the operations listener (behind the admin token when one is set)")
	f.StringVar(&cfg.ShopName, "shop-name", d.ShopName, "name shown in the storefront")
	f.StringVar(&cfg.PublicURL, "public-url", d.PublicURL, "where shoppers reach the shop (https://shop.example.com), for the order links in mail (empty: http:// and --addr)")
	f.StringVar(&cfg.Currency, "currency", d.Currency, "shop currency (ISO 4217)")
	f.BoolVar(&cfg.PageCache, "page-cache", d.PageCache, "serve anonymous pages and catalog API responses from the full-page cache")
	f.Int64Var(&cfg.PageCacheBytes, "page-cache-bytes", d.PageCacheBytes, "memory bound of the full-page cache in bytes")
	f.DurationVar(&cfg.PageCacheTTL, "page-cache-ttl", d.PageCacheTTL, "how long a cached page is fresh")
	f.DurationVar(&cfg.PageCacheSWR, "page-cache-swr", d.PageCacheSWR, "how long a stale page may be served while it is refreshed")
	f.BoolVar(&cfg.FastHits, "fast-hits", d.FastHits, "answer fresh page-cache hits of anonymous visitors on kept-alive HTTP/1.1 connections before the HTTP server's handler chain (off with --rate-per-client or tracing)")
	f.IntVar(&cfg.ObjectCache, "object-cache-size", d.ObjectCache, "products held in the object cache")
	f.StringVar(&cfg.LogLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&cfg.LogFormat, "log-format", "json", "json or text")
	f.BoolVar(&cfg.AccessLog, "access-log", d.AccessLog, "log one line per request")
	f.DurationVar(&cfg.DrainDelay, "drain-delay", 0, "on SIGTERM, keep serving this long after /readyz turns false so load balancers notice (5s behind Kubernetes)")
	f.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", 15*time.Second, "how long in-flight requests may take to finish on shutdown")
	f.BoolVar(&cfg.Admission, "admission", d.Admission, "overload protection: adaptive concurrency limit, priority shedding, deadlines")
	f.IntVar(&ac.Limit.Floor, "admission-floor", 0, "lowest concurrency limit (0: default 4)")
	f.IntVar(&ac.Limit.Ceiling, "admission-ceiling", 0, "highest concurrency limit (0: default 1000)")
	f.DurationVar(&ac.CPU.Target, "admission-cpu-target", 0,
		"90th percentile of the wait for a CPU above which browse and background requests are shed (0: default 15ms; negative: never)")
	f.DurationVar(&ac.Deadlines[admission.Critical], "deadline-critical", 0, "deadline of checkout and payment requests (0: default 10s)")
	f.DurationVar(&ac.Deadlines[admission.High], "deadline-high", 0, "deadline of cart and account requests (0: default 5s)")
	f.DurationVar(&ac.Deadlines[admission.Browse], "deadline-browse", 0, "deadline of browse and search requests (0: default 3s)")
	f.DurationVar(&ac.Deadlines[admission.Background], "deadline-background", 0, "deadline of prefetch and image requests (0: default 1s)")
	f.Int64Var(&ac.MaxBodyBytes, "max-body-bytes", 0, "largest request body accepted (0: default 1 MiB)")
	f.Float64Var(&ac.PerClient.PerSecond, "rate-per-client", 0, "requests per second allowed per client address (0: off)")
	f.IntVar(&ac.PerClient.Burst, "rate-per-client-burst", 0, "burst above --rate-per-client (0: twice the rate)")
	f.Float64Var(&ac.PerSession.PerSecond, "rate-per-session", 0, "requests per second allowed per session (0: off)")
	f.IntVar(&ac.PerSession.Burst, "rate-per-session-burst", 0, "burst above --rate-per-session (0: twice the rate)")
	f.StringVar(&ac.ClientIPHeader, "client-ip-header", "", "header carrying the client address (e.g. X-Forwarded-For), believed only from --trusted-proxies")
	f.StringSliceVar(&cfg.TrustedProxies, "trusted-proxies", nil, "addresses or CIDRs of load balancers whose client-ip header is trusted")
	f.IntVar(&cfg.MaxConns, "max-conns", 0, "cap on open connections to the public listener (0: no cap)")
	f.StringVar((*string)(&cfg.CookieSecure), "cookie-secure", string(d.CookieSecure),
		"mark cookies Secure: auto (when the request came over HTTPS: TLS, or X-Forwarded-Proto: https from --trusted-proxies), always or never")
	addCDNFlags(f, &cfg.CDN, d.CDN)
	cfg.Pay.add(f, getenv)
	f.StringVar((*string)(&cfg.SQLiteSynchronous), "sqlite-synchronous", string(d.SQLiteSynchronous),
		"embedded database: full syncs the log at every commit, so an acknowledged order survives an OS crash or power loss (group commit shares one sync among concurrent writes); normal survives only a crash of the process (for measurements)")
	addJobsFlags(f, &cfg.Config, &cfg.JobsOn, d)
}

// flagValues are the values shell completion offers for flags that take
// one of a few words.
var flagValues = map[string][]string{
	"role":          {string(shop.RoleAPI), string(shop.RoleWorker), string(shop.RoleAll)},
	"cookie-secure": storefront.CookieSecureModes,
	"log-level":     {"debug", "info", "warn", "error"},
	"log-format":    {"json", "text"},
}

// completeFlagValues registers completion of the values of cmd's flags
// listed in flagValues, and of file names for the flags that take files.
func completeFlagValues(cmd *cobra.Command) {
	for name, values := range flagValues {
		if cmd.Flags().Lookup(name) == nil {
			continue
		}
		_ = cmd.RegisterFlagCompletionFunc(name, cobra.FixedCompletions(values, cobra.ShellCompDirectiveNoFileComp))
	}
	for _, name := range []string{"config", "admin-token-file"} {
		if cmd.Flags().Lookup(name) != nil {
			_ = cmd.MarkFlagFilename(name)
		}
	}
	if cmd.Flags().Lookup("data-dir") != nil {
		_ = cmd.MarkFlagDirname("data-dir")
	}
}

// demoAdminTokenFile is where a demo shop keeps the admin token it made,
// in its data directory.
const demoAdminTokenFile = "admin-token"

// demoAdminToken returns the admin token of a demo shop without one
// configured: the one kept in dataDir, or a new one kept there from now
// on (readable by its owner only), so that it stays the same across
// restarts. It returns the file's path too.
func demoAdminToken(dataDir string) (token, path string, err error) {
	path = filepath.Join(dataDir, demoAdminTokenFile)
	if b, err := os.ReadFile(path); err == nil {
		if t := strings.TrimSpace(string(b)); len(t) >= 16 {
			return t, path, nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", path, fmt.Errorf("demo admin token: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return "", path, fmt.Errorf("data dir: %w", err)
	}
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	token = hex.EncodeToString(b)
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(token+"\n"), 0o600); err != nil {
		return "", path, fmt.Errorf("demo admin token: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", path, fmt.Errorf("demo admin token: %w", err)
	}
	return token, path, nil
}

func serve(ctx context.Context, cfg serveConfig, stdout, stderr io.Writer) error {
	log, err := telemetry.NewLogger(stderr, cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return err
	}
	reg := telemetry.NewRegistry()
	if err := telemetry.RegisterBuildInfo(reg, version); err != nil {
		return err
	}
	health := ops.NewHealth()
	if err := health.Register(reg); err != nil {
		return err
	}

	if cfg.Demo && cfg.AdminToken == "" {
		token, path, err := demoAdminToken(cfg.DataDir)
		if err != nil {
			return err
		}
		cfg.AdminToken = token
		fmt.Fprintf(stdout, "admin token (demo, kept in %s): %s\n", path, token)
	}

	// The admin listener comes up first so that probes and scrapes work
	// while the store migrates and the demo seeds.
	adminLn, err := net.Listen("tcp", cfg.AdminAddr)
	if err != nil {
		return fmt.Errorf("admin listener: %w", err)
	}
	page, err := newOpsPage(reg)
	if err != nil {
		return err
	}
	pageCtx, stopPage := context.WithCancel(ctx)
	defer stopPage()
	go page.Run(pageCtx)
	opsOpts := []ops.Option{ops.WithPage(page.Handler(cfg.AdminToken))}
	if cfg.Pprof {
		opsOpts = append(opsOpts, ops.WithPprof(cfg.AdminToken, cfg.Cmdline))
	}
	adminSrv := &http.Server{Handler: ops.NewHandler(health, reg, opsOpts...), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = adminSrv.Serve(adminLn) }()
	defer adminSrv.Close()
	fmt.Fprintf(stdout, "admin: http://%s\n", adminLn.Addr())

	sc, err := cfg.shopConfig()
	if err != nil {
		return err
	}
	role := sc.Role
	if sc.Tracer, err = tracing.New(ctx, cfg.Tracing, tracing.Options{Version: version, Role: string(role)}); err != nil {
		return err
	}
	if sc.Tracer != nil {
		log.Info("tracing on", "endpoint", cfg.Tracing.Endpoint, "sampler", cfg.Tracing.Sampler, "ratio", cfg.Tracing.Ratio,
			"service", cfg.Tracing.ServiceName)
		defer func() {
			// Spans still queued go out before the process ends.
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := sc.Tracer.Shutdown(fctx); err != nil {
				log.Warn("tracing: final export", "err", err)
			}
		}()
	}
	sh, err := shop.Open(ctx, sc, log, reg)
	if err != nil {
		return err
	}
	defer sh.Close()
	sh.RegisterHealth(health, role)
	if role != shop.RoleWorker {
		page.SetDrops(openDrops(sh))
	}
	if cfg.Demo {
		if _, err := sh.SeedDemo(ctx, cfg.DemoProducts, cfg.Currency, log); err != nil {
			return err
		}
	}
	// Background work stops after the listener has drained, so orders
	// accepted during the drain are still relayed.
	runCtx, stopRun := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRun()
	runErr := make(chan error, 1)
	go func() { runErr <- sh.Run(runCtx, role) }()
	if bus := sh.Bus; bus != nil {
		if u := bus.ClientURL(); u != "" {
			fmt.Fprintf(stdout, "nats: %s\n", u)
		}
	}

	var srv *http.Server
	serveErr := make(chan error, 1)
	if role != shop.RoleWorker {
		ln, err := net.Listen("tcp", cfg.Addr)
		if err != nil {
			return fmt.Errorf("public listener: %w", err)
		}
		// The fast path sits under the connection limit, on the TCP
		// connections themselves, so that its writes are one writev.
		ln = admission.LimitListener(sh.Listener(ln), cfg.MaxConns)
		srv = &http.Server{
			Handler:           sh.Handler,
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      60 * time.Second,
			IdleTimeout:       120 * time.Second,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		}
		go func() { serveErr <- srv.Serve(ln) }()
		fmt.Fprintf(stdout, "shop: http://%s\n", ln.Addr())
		log.Info("surge serving", "addr", ln.Addr().String(), "admin_addr", adminLn.Addr().String(), "role", role, "version", version)
	} else {
		log.Info("surge worker running", "admin_addr", adminLn.Addr().String(), "version", version)
	}
	health.SetReady(true)

	select {
	case err := <-serveErr:
		return fmt.Errorf("public listener: %w", err)
	case err := <-runErr:
		return fmt.Errorf("background work stopped: %w", err)
	case <-ctx.Done():
	}
	// Readiness turns false first, then the listener closes after the drain
	// delay, then in-flight requests get until the shutdown timeout.
	health.Drain()
	log.Info("shutting down: readiness off", "drain_delay", cfg.DrainDelay.String())
	if cfg.DrainDelay > 0 {
		time.Sleep(cfg.DrainDelay)
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	if srv != nil {
		if err := srv.Shutdown(sctx); err != nil {
			return fmt.Errorf("shutdown: %w", err)
		}
	}
	stopRun()
	if err := <-runErr; err != nil {
		log.Warn("background work ended with an error", "err", err)
	}
	log.Info("shutdown complete")
	return nil
}
