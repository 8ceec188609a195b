// Package shop assembles a running shop from its parts: the store, the
// caches, the domain services and the storefront handler. cmd/surge uses it
// for `surge serve` and owns the process around it (flags, listeners,
// signals); tests use it to get the same shop in-process. It is the one
// place that knows which adapter backs which interface.
package shop

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/surge-commerce/surge/internal/admission"
	"github.com/surge-commerce/surge/internal/cart"
	"github.com/surge-commerce/surge/internal/catalog"
	"github.com/surge-commerce/surge/internal/cdnpurge"
	"github.com/surge-commerce/surge/internal/checkout"
	"github.com/surge-commerce/surge/internal/customer"
	"github.com/surge-commerce/surge/internal/demoshop"
	"github.com/surge-commerce/surge/internal/drop"
	"github.com/surge-commerce/surge/internal/dropreport"
	"github.com/surge-commerce/surge/internal/jobs"
	"github.com/surge-commerce/surge/internal/mail"
	"github.com/surge-commerce/surge/internal/natsbus"
	"github.com/surge-commerce/surge/internal/notify"
	"github.com/surge-commerce/surge/internal/outbox"
	"github.com/surge-commerce/surge/internal/pagecache"
	"github.com/surge-commerce/surge/internal/payment/simulated"
	"github.com/surge-commerce/surge/internal/payment/stripe"
	"github.com/surge-commerce/surge/internal/pgstore"
	"github.com/surge-commerce/surge/internal/pipeline"
	"github.com/surge-commerce/surge/internal/redisstore"
	"github.com/surge-commerce/surge/internal/session"
	"github.com/surge-commerce/surge/internal/sqlitestore"
	"github.com/surge-commerce/surge/internal/storefront"
	"github.com/surge-commerce/surge/internal/telemetry"
	"github.com/surge-commerce/surge/internal/tracing"
	"github.com/surge-commerce/surge/internal/waitroom"
)

// Config is everything that shapes the assembled shop. It is the one
// place its settings are declared, and Defaults the one place their
// defaults are: `surge serve` binds its flags to these fields and shows
// these defaults, and tests start from them too.
type Config struct {
	// Role is what the process runs (see Run); empty means RoleAll. A
	// worker serves no HTTP, so it opens no waiting room and needs no
	// waiting-room key.
	Role Role
	// DataDir holds the embedded database, the embedded NATS server's
	// files and the generated waiting-room key, each only when used; it is
	// created when first needed.
	DataDir string
	// SQLiteSynchronous is how far the embedded database waits for the
	// disk at each commit (default sqlitestore.SyncFull).
	SQLiteSynchronous sqlitestore.Synchronous
	// DBURL names a PostgreSQL primary (postgres://...); empty keeps the
	// embedded SQLite database in DataDir. DBReplicaURLs are its streaming
	// read replicas, used for reads that may be slightly stale while their
	// lag stays under MaxReplicaLag.
	DBURL         string
	DBReplicaURLs []string
	MaxReplicaLag time.Duration
	// RedisURL names the Redis that replicas share (sessions, the waiting
	// room ledger, rate limits, cache purges); empty keeps all of that in
	// process. RedisPrefix starts every key, so shops can share a Redis.
	RedisURL    string
	RedisPrefix string
	ShopName    string
	Currency    string
	// PublicURL is where shoppers reach the shop (https://shop.example.com):
	// order confirmation mail links there. Empty leaves the link out.
	PublicURL string

	PageCache      bool
	PageCacheBytes int64
	PageCacheTTL   time.Duration
	PageCacheSWR   time.Duration
	// FastHits answers the page cache's fresh hits for anonymous visitors
	// on the connection, before net/http (see pagecache.FastListener and
	// Shop.Listener). It stays off with a per-client rate limit or a
	// tracer, which every request must pass through.
	FastHits    bool
	ObjectCache int

	AdminToken string
	AccessLog  bool

	TaxBasisPoints   int64
	ShippingFlat     int64
	FreeShippingOver int64
	ReservationTTL   time.Duration
	// CookieSecure says when cookies are marked Secure (auto: on requests
	// that came over HTTPS, directly or through a trusted proxy).
	CookieSecure storefront.CookieSecure

	// NATSURL names an external NATS server or cluster; empty embeds one
	// with its files in DataDir/nats. NATSListen lets other processes reach
	// the embedded one. NATSReplicas is the stream replication factor.
	NATSURL      string
	NATSListen   string
	NATSReplicas int
	// PaymentLatency and PaymentFailureRate shape the simulated provider.
	PaymentLatency     time.Duration
	PaymentFailureRate float64
	// PaymentProvider is ProviderSimulated (default) or ProviderStripe,
	// configured by Stripe (its DB is the shop's).
	PaymentProvider string
	Stripe          stripe.Config
	// SMTP sends mail when SMTP.Addr is set; otherwise mail is logged.
	SMTP mail.SMTPConfig
	// SweepEvery is how often expired reservations are released.
	SweepEvery time.Duration
	// ClaimLease is how long a payment attempt keeps its order from
	// expiring.
	ClaimLease time.Duration
	// AckWait is how long the bus waits for a silent consumer (a worker
	// that died) before redelivering its messages.
	AckWait time.Duration
	// OutboxMaxLag is how long an order event may wait in the outbox
	// before readiness reports the replica degraded.
	OutboxMaxLag time.Duration

	// WarmBefore is how long before a drop starts its pages are cached and
	// database connections opened.
	WarmBefore time.Duration
	// Standby puts the whole storefront behind a FIFO waiting room when
	// StandbyOnActive requests are in flight or p95 latency passes
	// StandbyOnLatency, admitting StandbyRate visitors a minute with at
	// most StandbyMaxActive shopping; it turns off again when load falls.
	Standby          bool
	StandbyOnActive  int
	StandbyOnLatency time.Duration
	StandbyRate      int
	StandbyMaxActive int
	// WaitroomKeys is the waiting-room keyring ("id:base64secret,...",
	// current first), shared by every replica. Empty keeps a generated key
	// in DataDir.
	WaitroomKeys string

	// Now is the clock of the sign-in limits; nil is time.Now (and Redis's
	// own clock for the buckets shared there).
	Now func() time.Time
	// DropClock is the clock of the waiting room, the drop rules and
	// checkout; nil is time.Now. Tests move it to script a drop.
	DropClock func() time.Time

	// Admission turns on overload protection with AdmissionConfig; its
	// Cheap probe is set to the page cache.
	Admission       bool
	AdmissionConfig admission.Config

	// CDN forwards every cache purge to the CDN instances in CDN.URLs.
	CDN cdnpurge.Config

	// Tracer, when not nil, traces requests, store and payment calls, the
	// outbox relay and the event bus (see internal/tracing).
	Tracer *tracing.Tracer

	// Jobs shapes the mail job runner of worker processes (RoleWorker and
	// RoleAll, never RoleAPI); JobsOff keeps it from running there.
	// JobsPressureURLs are the API replicas' metrics URLs it reads the
	// shop's pressure from (see jobs.MetricsPressure).
	Jobs             jobs.Config
	JobsOff          bool
	JobsPressureURLs []string
}

// Defaults returns the settings `surge serve` starts with: the embedded
// shop (SQLite and NATS in DataDir, caches in process). A setting left
// zero where zero means nothing (a period, a lease, the Redis prefix)
// takes its default here too when the shop opens.
func Defaults() Config {
	return Config{Role: RoleAll, DataDir: "./data", ShopName: "Surge Demo Shop", Currency: "USD",
		MaxReplicaLag: 5 * time.Second, RedisPrefix: "surge:", NATSReplicas: 1,
		PageCache: true, FastHits: true, PageCacheBytes: 128 << 20, PageCacheTTL: time.Minute, PageCacheSWR: 10 * time.Minute, ObjectCache: 20000,
		AccessLog: true, ShippingFlat: 495, FreeShippingOver: 7500, ReservationTTL: 10 * time.Minute,
		SQLiteSynchronous: sqlitestore.SyncFull, CookieSecure: storefront.CookieSecureAuto, PaymentProvider: ProviderSimulated, SMTP: mail.SMTPConfig{From: "shop@localhost"},
		SweepEvery: 5 * time.Second, ClaimLease: 2 * time.Minute, AckWait: 30 * time.Second, OutboxMaxLag: time.Minute,
		WarmBefore: 2 * time.Minute, StandbyOnActive: 500, StandbyOnLatency: 2 * time.Second, StandbyRate: 3000, StandbyMaxActive: 2000,
		Admission: true, CDN: cdnpurge.Config{Timeout: 2 * time.Second},
		Jobs: jobs.Config{MailsPerSecond: 50, Senders: 2, BatchSize: 500, Lease: 30 * time.Second, Poll: 5 * time.Second,
			ReminderBefore: time.Hour}}
}

// withDefaults gives the settings left zero where zero means nothing
// their default.
func (c Config) withDefaults() Config {
	d := Defaults()
	for _, f := range []struct{ v, d *time.Duration }{
		{&c.SweepEvery, &d.SweepEvery}, {&c.ClaimLease, &d.ClaimLease}, {&c.AckWait, &d.AckWait},
		{&c.OutboxMaxLag, &d.OutboxMaxLag}, {&c.WarmBefore, &d.WarmBefore},
	} {
		if *f.v <= 0 {
			*f.v = *f.d
		}
	}
	if c.RedisPrefix == "" {
		c.RedisPrefix = d.RedisPrefix
	}
	return c
}

// Shop is an assembled shop. A worker's (Config.Role) has the store, the
// bus and the pipeline only: Handler, Catalog, Carts, Checkout and Room
// are nil.
type Shop struct {
	Handler  http.Handler
	Store    Store
	Catalog  *catalog.Service
	Cache    *pagecache.Cache // nil when the page cache is off
	Carts    *cart.Service
	Checkout *checkout.Service
	// Payments is the simulated provider, or nil when Stripe takes the
	// payments (Stripe).
	Payments *simulated.Provider
	Stripe   *stripe.Provider
	tokens   checkout.Tokenizer
	Bus      *natsbus.Bus
	Room     *waitroom.Room
	// DropLines keeps the room's lines in step with the stored drops.
	DropLines *drop.Lines
	// Standby is nil unless the standby waiting room is configured.
	Standby *waitroom.Standby
	// Admission is nil when overload protection is off.
	Admission *admission.Admission
	// fast configures the page cache's fast path; nil when it is off.
	fast *pagecache.FastConfig
	// Redis is nil unless the shop shares state through Redis.
	Redis   *redisstore.Client
	purger  *redisstore.Purger
	cdn     *cdnpurge.Client // nil without a CDN to purge
	closers []func() error

	relay      *outbox.Relay
	mail       mail.Sender  // order and notify-me mail, one message at a time
	jobs       *jobs.Runner // nil unless the worker runs mail jobs
	workers    *pipeline.Workers
	sweepEvery time.Duration
	ackWait    time.Duration
	warmBefore time.Duration
	log        *slog.Logger

	outboxMaxLag time.Duration
	sharedDB     bool // PostgreSQL, shared by every replica, rather than the embedded SQLite

	warmedMu sync.Mutex
	warmed   []string

	// DropEvents records what happens at drops for their reports; nil
	// for a worker.
	DropEvents *dropreport.Recorder
	// Notified counts the reminder mails sent for a drop; nil reports
	// them as not tracked.
	Notified  dropreport.NotifiedCounter
	dropPages dropPagePurger
	dropNow   func() time.Time
}

// Open builds the shop on the database cfg names (see OpenStore),
// migrating it first. reg receives every metric; log every log line.
func Open(ctx context.Context, cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Shop, error) {
	cfg = cfg.withDefaults()
	st, err := openStore(ctx, cfg, reg, log)
	if err != nil {
		return nil, err
	}
	st = traceStore(st, cfg.Tracer)
	s := &Shop{Store: st, closers: []func() error{st.Close}, sweepEvery: cfg.SweepEvery, ackWait: cfg.AckWait,
		warmBefore: cfg.WarmBefore, log: log, outboxMaxLag: cfg.OutboxMaxLag, sharedDB: cfg.DBURL != ""}
	s.Notified = remindersSent{jobs: st}
	if err := s.openRedis(cfg); err != nil {
		s.Close()
		return nil, err
	}
	if s.Redis != nil {
		if err := s.Redis.Register(reg); err != nil {
			s.Close()
			return nil, err
		}
	}
	if err := s.openPipeline(ctx, cfg, log, reg); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.openJobs(cfg, log, reg); err != nil {
		s.Close()
		return nil, err
	}
	if cfg.Role == RoleWorker {
		// The order consumers and the sweep need the store and the bus
		// alone: no storefront, so no waiting room and no key for it.
		return s, nil
	}
	if err := s.openRoom(ctx, cfg, log, reg); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.openStandby(ctx, cfg); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.assemble(cfg, log, reg); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// OpenStore opens and migrates the database cfg names: PostgreSQL (with
// its read replicas) when cfg.DBURL is set, else the embedded SQLite
// database in cfg.DataDir. reg, when not nil, receives the store's metrics.
func OpenStore(ctx context.Context, cfg Config, reg prometheus.Registerer) (Store, error) {
	return openStore(ctx, cfg, reg, nil)
}

// openStore is OpenStore with log receiving the store's own lines (a
// PostgreSQL primary's outages); nil discards them.
func openStore(ctx context.Context, cfg Config, reg prometheus.Registerer, log *slog.Logger) (Store, error) {
	if cfg.DBURL != "" {
		st, err := pgstore.Open(ctx, pgstore.Config{URL: cfg.DBURL, ReplicaURLs: cfg.DBReplicaURLs, MaxReplicaLag: cfg.MaxReplicaLag,
			Logger: log})
		if err != nil {
			return nil, err
		}
		if err := st.Migrate(ctx); err != nil {
			st.Close()
			return nil, err
		}
		if reg != nil {
			if err := st.Register(reg); err != nil {
				st.Close()
				return nil, err
			}
		}
		return st, nil
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	var opts []sqlitestore.Option
	if cfg.SQLiteSynchronous != "" {
		opts = append(opts, sqlitestore.WithSynchronous(cfg.SQLiteSynchronous))
	}
	st, err := sqlitestore.Open(ctx, filepath.Join(cfg.DataDir, "surge.db"), opts...)
	if err != nil {
		return nil, err
	}
	if err := st.Migrate(ctx); err != nil {
		st.Close()
		return nil, err
	}
	if reg != nil {
		if err := st.Register(reg); err != nil {
			st.Close()
			return nil, err
		}
	}
	return st, nil
}

func (s *Shop) assemble(cfg Config, log *slog.Logger, reg prometheus.Registerer) error {
	cookieSecure, err := storefront.ParseCookieSecure(string(cfg.CookieSecure))
	if err != nil {
		return err
	}
	if err := s.openCDN(cfg, log, reg); err != nil {
		return err
	}
	// purge empties this replica's page cache; with Redis every replica's.
	local := func(all bool, tags ...string) int { return 0 }
	if cfg.PageCache {
		s.Cache = pagecache.New(pagecache.Config{MaxBytes: cfg.PageCacheBytes, TTL: cfg.PageCacheTTL,
			StaleWhileRevalidate: cfg.PageCacheSWR, RenderTimeout: 10 * time.Second, Logger: log})
		if err := s.Cache.Register(reg); err != nil {
			return err
		}
		local = func(all bool, tags ...string) int {
			if all {
				return s.Cache.PurgeAll()
			}
			return s.Cache.PurgeTags(tags...)
		}
	}
	purgeAll := func(all bool, tags ...string) int {
		n := local(all, tags...)
		s.purgeCDN(all, tags)
		if s.purger != nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			var err error
			if all {
				err = s.purger.PublishAll(ctx)
			} else {
				err = s.purger.Publish(ctx, tags...)
			}
			if err != nil {
				// Other replicas' copies expire within the page-cache TTL.
				log.Warn("cross-replica purge", "err", err)
			}
		}
		return n
	}
	purge := func(tags ...string) { purgeAll(false, tags...) }
	s.dropPages.mu.Lock()
	s.dropPages.purge = purge
	s.dropPages.mu.Unlock()
	var sessions session.Store = s.Store
	var shared catalog.SharedCache
	if s.Redis != nil {
		sessions = redisstore.NewSessions(s.Redis, nil)
		shared = redisstore.NewCache(s.Redis)
	}
	s.Catalog, err = catalog.NewService(s.Store, catalog.ServiceOptions{ObjectCacheSize: cfg.ObjectCache,
		ObjectTTL: cfg.PageCacheTTL, Purge: purge, Currency: cfg.Currency, Shared: shared,
		RepeatPurge: repeatPurge(cfg)})
	if err != nil {
		return err
	}
	s.closers = append(s.closers, s.Catalog.Close)
	if err := s.Catalog.Register(reg); err != nil {
		return err
	}
	pricing := cart.Pricing{Currency: cfg.Currency, TaxBasisPoints: cfg.TaxBasisPoints, ShippingFlat: cfg.ShippingFlat, FreeShippingOver: cfg.FreeShippingOver}
	if err := pricing.Validate(); err != nil {
		return err
	}
	s.Carts = &cart.Service{Store: s.Store, Pricing: pricing}
	gate := &drop.Gate{Store: s.Store, Room: s.Room, Now: cfg.DropClock}
	s.Checkout = &checkout.Service{Store: s.Store, Carts: s.Carts, Payments: s.tokens, ReservationTTL: cfg.ReservationTTL,
		OnPlaced: s.relay.Notify, Drops: gate, Now: cfg.DropClock}
	metrics, err := telemetry.NewHTTPMetrics(reg)
	if err != nil {
		return err
	}
	deps := storefront.Deps{Catalog: s.Catalog, Logger: log, Metrics: metrics, AdminToken: cfg.AdminToken,
		ShopName: cfg.ShopName, AccessLog: cfg.AccessLog,
		Sessions: &session.Manager{Store: sessions, Secure: cookieSecure == storefront.CookieSecureAlways}, Carts: s.Carts, Checkout: s.Checkout, Accounts: s.Store,
		DropStore: s.Store, Room: s.Room, DropGate: gate, Standby: s.Standby,
		PaymentWebhook: s.paymentWebhook(log), StripeKey: s.stripeKey(), Tracer: cfg.Tracer,
		DropEvents: s.DropEvents.Record, DropReport: s.DropReport,
		OnDropChange: func(d drop.Drop) {
			if err := s.DropLines.Changed(context.Background(), d); err != nil {
				log.Error("waiting room: drop change", "drop", d.ID, "err", err)
			}
		}}
	// Behind a load balancer the connection comes from the balancer: the
	// client's address is in the trusted proxy's header, with or without
	// overload protection (joins are rate limited by it).
	clientIP := admission.NewClientIP(cfg.AdmissionConfig.ClientIPHeader, cfg.AdmissionConfig.TrustedProxies)
	deps.ClientAddr = func(r *http.Request) string { return clientIP.Addr(r).String() }
	deps.Notify = &notify.Service{Store: s.Store, Mail: s.mail, ShopName: cfg.ShopName, PublicURL: cfg.PublicURL}
	deps.JobAdmin = s.Store
	deps.NotifyLimits = storefront.NewNotifyLimits(cfg.Now)
	if s.Redis != nil {
		deps.NotifyLimits.PerClient.Shared = redisstore.NewRateLimiter(s.Redis, "notify-client", storefront.NotifyPerClient, cfg.Now)
		deps.NotifyLimits.PerEmail.Shared = redisstore.NewRateLimiter(s.Redis, "notify-email", storefront.NotifyPerEmail, cfg.Now)
	}
	accounts := &customer.Accounts{Store: s.Store, Sessions: sessions, Passwords: customer.NewPasswords(0),
		// Sign-in limits count across replicas through Redis, each
		// replica counting alone while Redis does not answer.
		Limits: customer.NewLimits(cfg.Now)}
	if err := accounts.Passwords.Register(reg); err != nil {
		return err
	}
	if s.Redis != nil {
		accounts.Limits.PerAccount.Shared = redisstore.NewRateLimiter(s.Redis, "signin-account", customer.SignInPerAccount, cfg.Now)
		accounts.Limits.PerClient.Shared = redisstore.NewRateLimiter(s.Redis, "signin-client", customer.SignInPerClient, cfg.Now)
	}
	deps.Customers = accounts
	if s.Cache != nil {
		deps.PageCache = s.Cache.Middleware
		deps.PurgeCache = purgeAll
	}
	if cfg.Admission {
		ac := cfg.AdmissionConfig
		if s.Cache != nil {
			ac.Cheap = s.Cache.Has
		}
		if ac.ShopName == "" {
			ac.ShopName = cfg.ShopName
		}
		if s.Redis != nil {
			ac.SharedRates = func(name string, r admission.Rate) admission.SharedBuckets {
				return redisstore.NewRateLimiter(s.Redis, name, r, nil)
			}
		}
		adm, err := admission.New(ac)
		if err != nil {
			return err
		}
		if err := adm.Register(reg); err != nil {
			return err
		}
		s.Admission = adm
		deps.Admit = adm.Wrap
	}
	if s.Cache != nil && cfg.FastHits && cfg.AdmissionConfig.PerClient.PerSecond <= 0 && cfg.Tracer == nil {
		s.fast = s.fastConfig(cfg, log, metrics)
	}
	s.Handler, err = storefront.NewServer(deps)
	if err == nil && len(cfg.DBReplicaURLs) > 0 {
		s.Handler = readYourWrites(s.Handler, cookieSecure == storefront.CookieSecureAlways)
	}
	if err == nil {
		// Outermost, so that it sees every cookie any layer sets.
		s.Handler = storefront.SecureCookies(cookieSecure, cfg.AdmissionConfig.TrustedProxies)(s.Handler)
	}
	return err
}

// repeatPurge is how long after a catalog change its purge is repeated:
// with database read replicas, long enough for them to have replayed it
// (see catalog.ServiceOptions.RepeatPurge); without, never.
func repeatPurge(cfg Config) time.Duration {
	if len(cfg.DBReplicaURLs) == 0 {
		return 0
	}
	return 2 * time.Second
}

// SeedDemo loads the demo catalog when the store has no products; it
// reports whether it seeded.
func (s *Shop) SeedDemo(ctx context.Context, products int, currency string, log *slog.Logger) (bool, error) {
	return SeedDemo(ctx, s.Store, products, currency, log)
}

// SeedDemo loads the demo catalog into st when it has no products.
func SeedDemo(ctx context.Context, st catalog.Store, products int, currency string, log *slog.Logger) (bool, error) {
	n, err := st.CountProducts(ctx)
	if err != nil {
		return false, err
	}
	if n > 0 {
		log.Info("demo seed skipped: catalog not empty", "products", n)
		return false, nil
	}
	start := time.Now()
	cats, prods := demoshop.Generate(demoshop.Options{Products: products, Seed: 1, Currency: currency, Now: time.Now().UTC()})
	if err := st.ImportCatalog(ctx, cats, prods); err != nil {
		return false, fmt.Errorf("seed demo catalog: %w", err)
	}
	log.Info("demo catalog seeded", "categories", len(cats), "products", len(prods), "took", time.Since(start).Round(time.Millisecond).String())
	return true, nil
}

// Close releases everything the shop opened, in reverse order.
func (s *Shop) Close() error {
	var errs []error
	for i := len(s.closers) - 1; i >= 0; i-- {
		errs = append(errs, s.closers[i]())
	}
	return errors.Join(errs...)
}
