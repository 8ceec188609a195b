// Package admission keeps the shop answering when more requests arrive
// than it can serve: it decides, before any work is done, which requests
// to serve and which to refuse quickly and cheaply.
//
// In order, for every request of a wrapped route:
//
//  1. a body larger than MaxBodyBytes is refused with 413;
//  2. a client (by address, and by session cookie when present) past its
//     token bucket is refused with 429 and Retry-After;
//  3. a request Config.Cheap says is cheap (a page-cache hit) is served at
//     once, never counted against the limit nor shed;
//  4. a Browse or Background request is shed while the CPU guard says the
//     process's CPU is oversubscribed (see CPUConfig);
//  5. the request gets its class's deadline, and the Limiter admits it
//     under the adaptive concurrency limit, queues it, or sheds it with a
//     pre-rendered 503 and Retry-After (see Limiter for the rules).
//
// See docs/overload.md for the algorithm, the settings and the metrics.
package admission

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Config configures Admission. Zero fields take the defaults listed on
// each.
type Config struct {
	// Limit configures the adaptive concurrency limit and its queue.
	Limit LimitConfig
	// CPU configures the CPU guard, which sheds Browse and Background
	// while requests wait for a CPU before the limiter can see them.
	CPU CPUConfig
	// Deadlines is each class's time budget, indexed by Class (defaults:
	// Background 1s, Browse 3s, High 5s, Critical 10s). It is set on the
	// request's context, so the store and the event bus see it too, and
	// the queue drops a request that could no longer meet it.
	Deadlines [NumClasses]time.Duration
	// Cheap reports whether a request will be answered from memory (a
	// fresh page-cache entry). Cheap requests skip the limiter: serving
	// them costs less than refusing them. Nil means none are.
	Cheap func(*http.Request) bool
	// RetryAfter is the Retry-After on a 503 (default 1s); clients get a
	// random value between it and twice it, so they do not all return at
	// once.
	RetryAfter time.Duration
	// MaxBodyBytes bounds request bodies (default 1 MiB); a larger declared
	// body is refused with 413 and a longer one fails on read. Negative
	// disables the bound.
	MaxBodyBytes int64
	// PerClient is the token bucket per client address (IPv6 by /64).
	// Zero PerSecond disables it. Burst defaults to twice PerSecond.
	PerClient Rate
	// PerSession is the token bucket per value of SessionCookie, on top of
	// PerClient, so that many shoppers behind one NAT are not limited as
	// one. Zero PerSecond disables it.
	PerSession Rate
	// SharedRates, when set, makes the PerClient ("client") and PerSession
	// ("session") buckets shared by every replica; each replica falls back
	// to its own buckets while the shared ones fail.
	SharedRates func(name string, r Rate) SharedBuckets
	// SessionCookie names the session cookie (default "surge_session").
	SessionCookie string
	// MaxTrackedClients bounds the buckets held by each of the two rate
	// limits (default 100,000); idle clients are forgotten first.
	MaxTrackedClients int
	// ClientIPHeader is the header a trusted proxy puts the client address
	// in (X-Forwarded-For, X-Real-IP, ...). It is read only from peers in
	// TrustedProxies; with either empty the peer address is the client.
	ClientIPHeader string
	TrustedProxies []netip.Prefix
	// ShopName titles the HTML refusal pages (default "Surge").
	ShopName string
	// Now is the clock (default time.Now), shared with Limit.Now and the
	// rate limits when those are nil.
	Now func() time.Time
}

func (c *Config) setDefaults() {
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Limit.Now == nil {
		c.Limit.Now = c.Now
	}
	c.Limit.setDefaults()
	c.CPU.setDefaults()
	for cl, d := range [NumClasses]time.Duration{time.Second, 3 * time.Second, 5 * time.Second, 10 * time.Second} {
		if c.Deadlines[cl] == 0 {
			c.Deadlines[cl] = d
		}
	}
	if c.RetryAfter == 0 {
		c.RetryAfter = time.Second
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 1 << 20
	}
	for _, r := range []*Rate{&c.PerClient, &c.PerSession} {
		if r.PerSecond > 0 && r.Burst == 0 {
			r.Burst = max(1, int(2*r.PerSecond))
		}
	}
	if c.SessionCookie == "" {
		c.SessionCookie = "surge_session"
	}
	if c.MaxTrackedClients == 0 {
		c.MaxTrackedClients = 100_000
	}
	if c.ShopName == "" {
		c.ShopName = "Surge"
	}
}

func (c Config) validate() error {
	errs := []error{c.Limit.validate(), c.CPU.validate()}
	for cl, d := range c.Deadlines {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s deadline must be positive", Class(cl)))
		}
	}
	if c.RetryAfter < time.Second {
		errs = append(errs, errors.New("retry-after must be at least 1s (the header counts whole seconds)"))
	}
	for name, r := range map[string]Rate{"per-client": c.PerClient, "per-session": c.PerSession} {
		if r.PerSecond < 0 || r.Burst < 0 {
			errs = append(errs, fmt.Errorf("%s rate and burst must not be negative", name))
		}
	}
	if c.MaxTrackedClients < 1 {
		errs = append(errs, errors.New("max tracked clients must be at least 1"))
	}
	return errors.Join(errs...)
}

// Admission is the overload-protection middleware for the public routes.
// Routes declare their class where they are listed, by wrapping their
// handler with Wrap.
type Admission struct {
	cfg      Config
	limiter  *Limiter
	cpu      *cpuGuard
	clientIP *ClientIP
	byClient *Buckets // nil when disabled
	bySess   *Buckets // nil when disabled
	seed     maphash.Seed
	m        *metrics

	overloaded, tooMany, tooLarge *canned
}

// New returns an Admission; zero Config fields take defaults.
func New(cfg Config) (*Admission, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("admission: %w", err)
	}
	lim, err := NewLimiter(cfg.Limit)
	if err != nil {
		return nil, err
	}
	cpu := newCPUGuard(cfg.CPU, cfg.Now)
	a := &Admission{cfg: cfg, limiter: lim, cpu: cpu, clientIP: NewClientIP(cfg.ClientIPHeader, cfg.TrustedProxies),
		seed: maphash.MakeSeed(), m: newMetrics(lim, cpu)}
	if cfg.PerClient.PerSecond > 0 {
		a.byClient = &Buckets{Local: NewRateLimiter(cfg.PerClient, cfg.MaxTrackedClients, cfg.Now)}
		if cfg.SharedRates != nil {
			a.byClient.Shared = cfg.SharedRates("client", cfg.PerClient)
		}
	}
	if cfg.PerSession.PerSecond > 0 {
		a.bySess = &Buckets{Local: NewRateLimiter(cfg.PerSession, cfg.MaxTrackedClients, cfg.Now)}
		if cfg.SharedRates != nil {
			a.bySess.Shared = cfg.SharedRates("session", cfg.PerSession)
		}
	}
	a.overloaded = newCanned(http.StatusServiceUnavailable, "overloaded",
		"the shop is very busy right now and could not take this request; retry after the time in Retry-After",
		"We're very busy right now", "So many people are shopping at the moment that we couldn't open this page. Please try again in a few seconds.",
		cfg.ShopName, cfg.RetryAfter)
	a.tooMany = newCanned(http.StatusTooManyRequests, "rate-limited",
		"too many requests from this client; retry after the time in Retry-After",
		"Slow down a little", "We received a lot of requests from you in a short time. Please wait a moment and try again.",
		cfg.ShopName, 0)
	a.tooLarge = newCanned(http.StatusRequestEntityTooLarge, "body-too-large",
		"the request body is larger than "+strconv.FormatInt(cfg.MaxBodyBytes, 10)+" bytes",
		"That was too much", "The form you sent is larger than we accept.", cfg.ShopName, 0)
	return a, nil
}

// Limiter is the concurrency limiter behind the middleware.
func (a *Admission) Limiter() *Limiter { return a.limiter }

// ClientAddr is r's client address as the rate limits see it (see
// ClientIP); the access log may want the same.
func (a *Admission) ClientAddr(r *http.Request) netip.Addr { return a.clientIP.Addr(r) }

// Register registers the admission metrics on reg.
func (a *Admission) Register(reg prometheus.Registerer) error { return a.m.register(reg) }

// Wrap puts next behind admission control as a route of the given class.
func (a *Admission) Wrap(class Class, next http.Handler) http.Handler {
	if !class.valid() {
		panic(fmt.Sprintf("admission: Wrap with invalid class %d", int(class)))
	}
	deadline := a.cfg.Deadlines[class]
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if limit := a.cfg.MaxBodyBytes; limit > 0 && r.Body != nil && r.Body != http.NoBody {
			if r.ContentLength > limit {
				a.m.tooLarge.Inc()
				a.tooLarge.write(w, r, 0)
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, limit)
		}
		if !a.allowClient(w, r) {
			return
		}
		if a.cfg.Cheap != nil && a.cfg.Cheap(r) {
			a.m.cheap.Inc()
			next.ServeHTTP(w, r)
			return
		}

		if !a.cpu.allow(class) {
			a.m.shed[class][reasonIndex(ReasonCPU)].Inc()
			a.overloaded.write(w, r, 0)
			return
		}

		ctx, cancel := context.WithTimeout(r.Context(), deadline)
		defer cancel()
		start := a.cfg.Now()
		release, err := a.limiter.Acquire(ctx, class)
		if err != nil {
			var se *ShedError
			if errors.As(err, &se) {
				a.m.shed[class][reasonIndex(se.Reason)].Inc()
			}
			if r.Context().Err() != nil {
				return // the client is gone: nobody to answer
			}
			a.overloaded.write(w, r, 0)
			return
		}
		a.m.queueWait[class].Observe(a.cfg.Now().Sub(start).Seconds())
		a.m.admitted[class].Inc()
		outcome := Ignore // unless the handler returns normally
		defer func() {
			if outcome == Success {
				switch {
				case errors.Is(ctx.Err(), context.DeadlineExceeded) && r.Context().Err() == nil:
					outcome = Dropped
				case r.Context().Err() != nil:
					outcome = Ignore // the client left; its latency means nothing
				}
			}
			release(outcome)
		}()
		next.ServeHTTP(w, r.WithContext(ctx))
		outcome = Success
	})
}

// allowClient applies the per-client and per-session token buckets and
// answers 429 when either is empty.
func (a *Admission) allowClient(w http.ResponseWriter, r *http.Request) bool {
	if a.byClient != nil {
		if ok, wait := a.byClient.Allow(r.Context(), ClientKey(a.clientIP.Addr(r))); !ok {
			a.m.rateLimited[0].Inc()
			a.tooMany.write(w, r, wait)
			return false
		}
	}
	if a.bySess != nil {
		if c, err := r.Cookie(a.cfg.SessionCookie); err == nil && c.Value != "" {
			if ok, wait := a.bySess.Allow(r.Context(), a.sessionKey(c.Value)); !ok {
				a.m.rateLimited[1].Inc()
				a.tooMany.write(w, r, wait)
				return false
			}
		}
	}
	return true
}

// sessionKey bounds the memory a client-chosen cookie value can take.
func (a *Admission) sessionKey(v string) string {
	if len(v) <= 64 {
		return v
	}
	return "#" + strconv.FormatUint(maphash.String(a.seed, v), 16)
}

func reasonIndex(r Reason) int {
	for i, x := range reasons {
		if x == r {
			return i
		}
	}
	return len(reasons) - 1
}
