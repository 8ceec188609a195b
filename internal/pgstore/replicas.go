package pgstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// LSN is a position in the primary's write-ahead log. A replica that has
// replayed past the LSN of a write shows that write.
type LSN uint64

// ParseLSN reads an LSN in PostgreSQL's text form, such as "16/B374D848".
func ParseLSN(s string) (LSN, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if ok {
		h, err1 := strconv.ParseUint(hi, 16, 32)
		l, err2 := strconv.ParseUint(lo, 16, 32)
		if err1 == nil && err2 == nil {
			return LSN(h<<32 | l), nil
		}
	}
	return 0, fmt.Errorf("parse lsn %q: want two hexadecimal numbers separated by '/'", s)
}

// String writes the LSN in PostgreSQL's text form, which ParseLSN reads.
func (l LSN) String() string { return fmt.Sprintf("%X/%X", uint64(l)>>32, uint64(l)&0xFFFFFFFF) }

type minLSNKey struct{}

// WithMinLSN returns a context whose reads see at least everything up to
// lsn: a replica serves them only once it has replayed past lsn, and the
// primary serves them otherwise. The HTTP layer sets it from a cookie
// holding the LSN of the visitor's last write, so a visitor always sees
// their own writes whichever replica answers.
func WithMinLSN(ctx context.Context, lsn LSN) context.Context {
	if prev, ok := LSNFromContext(ctx); ok && prev >= lsn {
		return ctx
	}
	return context.WithValue(ctx, minLSNKey{}, lsn)
}

// LSNFromContext returns the position reads with ctx must see: the larger
// of the one set by WithMinLSN and the last write recorded by RecordWrites.
func LSNFromContext(ctx context.Context) (LSN, bool) {
	lsn, ok := ctx.Value(minLSNKey{}).(LSN)
	if rec, _ := ctx.Value(writeRecordKey{}).(*WriteRecord); rec != nil {
		if w := rec.LSN(); w > lsn {
			lsn, ok = w, true
		}
	}
	return lsn, ok && lsn > 0
}

type writeRecordKey struct{}

// WriteRecord collects the WAL position of the writes made with a context
// from RecordWrites. It is safe for concurrent use.
type WriteRecord struct {
	lsn atomic.Uint64
}

// LSN returns the position after the last recorded write, 0 if none.
func (w *WriteRecord) LSN() LSN { return LSN(w.lsn.Load()) }

func (w *WriteRecord) note(l LSN) {
	for {
		cur := w.lsn.Load()
		if uint64(l) <= cur || w.lsn.CompareAndSwap(cur, uint64(l)) {
			return
		}
	}
}

// RecordWrites returns a context whose writes record the primary's WAL
// position after they commit (one extra query each), and whose later
// reads see those writes. A request handler uses it to learn what to put
// in the visitor's cookie for WithMinLSN on the next request.
func RecordWrites(ctx context.Context) (context.Context, *WriteRecord) {
	if rec, ok := ctx.Value(writeRecordKey{}).(*WriteRecord); ok {
		return ctx, rec
	}
	rec := &WriteRecord{}
	return context.WithValue(ctx, writeRecordKey{}, rec), rec
}

// noteWrite records the primary's position after a committed write, if
// ctx asks for it. Failing to learn it only costs the reads that follow
// going to the primary, so it is not an error of the write.
func (s *Store) noteWrite(ctx context.Context) {
	rec, _ := ctx.Value(writeRecordKey{}).(*WriteRecord)
	if rec == nil {
		return
	}
	lsn, err := s.CurrentLSN(context.WithoutCancel(ctx))
	if err != nil {
		// Unknown: demand more than any replica has, so reads go to the
		// primary.
		lsn = LSN(math.MaxUint64)
	}
	rec.note(lsn)
}

// CurrentLSN returns the primary's current WAL position: everything
// committed so far is at or before it. It is the insert position, not
// pg_current_wal_lsn's write position: with synchronous_commit off a
// commit returns before its record is written, and a replica that has
// replayed up to the write position may not have it yet.
func (s *Store) CurrentLSN(ctx context.Context) (LSN, error) {
	var text string
	if err := s.primary.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&text); err != nil {
		return 0, fmt.Errorf("primary wal position: %w", err)
	}
	return ParseLSN(text)
}

// raiseFloor makes every later replica read need what the primary holds
// now.
func (s *Store) raiseFloor(ctx context.Context) error {
	lsn, err := s.CurrentLSN(ctx)
	if err != nil {
		return err
	}
	for {
		cur := s.floor.Load()
		if uint64(lsn) <= cur || s.floor.CompareAndSwap(cur, uint64(lsn)) {
			return nil
		}
	}
}

// replica is one read replica and what its last check found.
type replica struct {
	name  string
	pool  *pgxpool.Pool
	state atomic.Pointer[replicaState]
}

type replicaState struct {
	up       bool
	lag      time.Duration // math.MaxInt64 when unknown
	replayed LSN
}

func newReplica(name string, pool *pgxpool.Pool) *replica {
	r := &replica{name: name, pool: pool}
	r.state.Store(&replicaState{lag: math.MaxInt64})
	return r
}

// replicaFor returns the replica a read that may be stale should run on:
// one that is up, within MaxReplicaLag and past the context's minimum LSN;
// nil when none is, and the read goes to the primary.
func (s *Store) replicaFor(ctx context.Context) *replica {
	if len(s.replicas) == 0 {
		return nil
	}
	minLSN, _ := LSNFromContext(ctx)
	minLSN = max(minLSN, LSN(s.floor.Load()))
	start := s.round.Add(1)
	for i := range s.replicas {
		r := s.replicas[(start+uint64(i))%uint64(len(s.replicas))]
		st := r.state.Load()
		if st.up && st.lag <= s.maxLag && st.replayed >= minLSN {
			s.metrics.reads.WithLabelValues(r.name).Inc()
			return r
		}
	}
	s.metrics.fallbacks.Inc()
	return nil
}

// reading runs fn, a read that may be a moment stale, on a replica that
// can serve it (see replicaFor), or else on the primary. A replica that
// fails the read for a connection reason (killed, restarting, shutting
// down) is marked down at once and fn runs again on the primary: it is a
// read, so running it twice is harmless, and the shopper is not the one
// to wait for the next check to notice. fn must therefore set, not
// accumulate, what it reports.
func (s *Store) reading(ctx context.Context, fn func(q querier) error) error {
	r := s.replicaFor(ctx)
	if r == nil {
		return fn(s.primary)
	}
	err := fn(r.pool)
	if err == nil || !connectionLost(err) || ctx.Err() != nil {
		return err
	}
	s.markDown(r)
	s.metrics.retries.WithLabelValues(r.name).Inc()
	return fn(s.primary)
}

// markDown takes r out of the read rotation until a check finds it
// answering again, and drops its pooled connections, which died with the
// server: a replica back up gets fresh ones rather than failing a read
// per dead connection. Of many reads failing together only the first
// does this.
func (s *Store) markDown(r *replica) {
	old := r.state.Load()
	if !old.up || !r.state.CompareAndSwap(old, &replicaState{lag: math.MaxInt64}) {
		return
	}
	s.metrics.up.WithLabelValues(r.name).Set(0)
	s.metrics.lag.WithLabelValues(r.name).Set(math.Inf(1))
	r.pool.Reset()
}

// connectionLost reports whether err says the server could not be reached
// or the connection to it died, rather than that the server answered the
// query with an error: refused or reset connections, connections closed
// under the query, and the server ending sessions because it is shutting
// down, crashing or not yet accepting connections. A deadline or
// cancellation is the caller giving up, which says nothing of the server.
func connectionLost(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err) {
		return false
	}
	if _, ok := errors.AsType[*pgconn.ConnectError](err); ok {
		return true
	}
	if pe, ok := errors.AsType[*pgconn.PgError](err); ok {
		switch pe.Code {
		case codeAdminShutdown, codeCrashShutdown, codeCannotConnectNow:
			return true
		}
		return strings.HasPrefix(pe.Code, "08") // connection exception
	}
	_, isNet := errors.AsType[net.Error](err)
	return isNet || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, pgconn.ErrConnClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE)
}

// replicaCheckTimeout bounds one check of the replicas: one that has not
// answered by then counts as down.
const replicaCheckTimeout = 2 * time.Second

func (s *Store) watchReplicas() {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), replicaCheckTimeout)
			s.CheckReplicas(ctx)
			cancel()
		case <-s.stop:
			return
		}
	}
}

// CheckReplicas measures every replica now: whether it answers, how far
// it has replayed and how far behind the primary it is. The store does
// this every ReplicaCheckInterval on its own.
//
// A replica that has replayed everything the primary had flushed when the
// check began has no lag; otherwise its lag is the time since it last
// replayed a commit. That is never less than the real delay, so an idle
// primary cannot make a stuck replica look fresh. (The flush position,
// not CurrentLSN's insert position: a replica receives only flushed WAL,
// and the insert position may stand past a page header the replica has no
// reason to reach until more WAL comes.)
func (s *Store) CheckReplicas(ctx context.Context) {
	var text string
	primaryLSN, perr := LSN(0), s.primary.QueryRow(ctx, `SELECT pg_current_wal_flush_lsn()::text`).Scan(&text)
	if perr == nil {
		primaryLSN, perr = ParseLSN(text)
	}
	var wg sync.WaitGroup
	for _, r := range s.replicas {
		wg.Go(func() {
			st := r.check(ctx)
			if st.up && perr == nil && st.replayed >= primaryLSN {
				st.lag = 0
			}
			r.state.Store(&st)
			up, lag := 0.0, math.Inf(1)
			if st.up {
				up = 1
				if st.lag != math.MaxInt64 {
					lag = st.lag.Seconds()
				}
			}
			s.metrics.up.WithLabelValues(r.name).Set(up)
			s.metrics.lag.WithLabelValues(r.name).Set(lag)
		})
	}
	wg.Wait()
}

// check asks the replica where it is. A server that is not in recovery is
// not a replica of the primary (perhaps promoted after a failover), and
// its data may have parted ways with the primary's: it counts as down.
func (r *replica) check(ctx context.Context) replicaState {
	var (
		inRecovery bool
		replayed   string
		lagSeconds float64
	)
	err := r.pool.QueryRow(ctx, `SELECT pg_is_in_recovery(),
		coalesce(pg_last_wal_replay_lsn()::text, ''),
		coalesce(extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp())::float8, -1)`).
		Scan(&inRecovery, &replayed, &lagSeconds)
	if err != nil || !inRecovery {
		return replicaState{lag: math.MaxInt64}
	}
	st := replicaState{up: true, lag: math.MaxInt64}
	if st.replayed, err = ParseLSN(replayed); err != nil {
		return replicaState{lag: math.MaxInt64}
	}
	if lagSeconds >= 0 {
		st.lag = time.Duration(lagSeconds * float64(time.Second))
	}
	return st
}

// ReplicaStatus is what the last check found of one replica.
type ReplicaStatus struct {
	Name string // host:port
	// Up is whether it answered as a replica.
	Up bool
	// Lag is how far behind the primary it is; the longest Duration when
	// unknown (down, or nothing replayed since it started).
	Lag time.Duration
	// Replayed is how far it has replayed the primary's WAL.
	Replayed LSN
}

// Replicas reports each replica as last checked, for health pages and
// tests.
func (s *Store) Replicas() []ReplicaStatus {
	out := make([]ReplicaStatus, len(s.replicas))
	for i, r := range s.replicas {
		st := r.state.Load()
		out[i] = ReplicaStatus{Name: r.name, Up: st.up, Lag: st.lag, Replayed: st.replayed}
	}
	return out
}

// metrics are the store's Prometheus collectors.
type metrics struct {
	lag       *prometheus.GaugeVec
	up        *prometheus.GaugeVec
	reads     *prometheus.CounterVec
	retries   *prometheus.CounterVec
	fallbacks prometheus.Counter
}

func newMetrics(replicas []*replica) *metrics {
	m := &metrics{
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "surge_db_replica_lag_seconds",
			Help: "How far each read replica is behind the primary, +Inf when down or unknown.",
		}, []string{"replica"}),
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "surge_db_replica_up",
			Help: "Whether each read replica answered its last check as a replica (1) or not (0).",
		}, []string{"replica"}),
		reads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "surge_db_replica_reads_total",
			Help: "Reads served by each read replica.",
		}, []string{"replica"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "surge_db_replica_read_retries_total",
			Help: "Reads a replica failed for a connection reason, run again on the primary; the replica is marked down at the first.",
		}, []string{"replica"}),
		fallbacks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "surge_db_replica_fallback_reads_total",
			Help: "Reads that could go to a replica but went to the primary: every replica down, lagging or behind the reader's own writes.",
		}),
	}
	for _, r := range replicas {
		m.lag.WithLabelValues(r.name).Set(math.Inf(1))
		m.up.WithLabelValues(r.name).Set(0)
		m.reads.WithLabelValues(r.name)
		m.retries.WithLabelValues(r.name)
	}
	return m
}

// Register adds the store's metrics to reg: replica lag
// (surge_db_replica_lag_seconds), replica health, where reads went and
// the reads retried on the primary.
func (s *Store) Register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{s.metrics.lag, s.metrics.up, s.metrics.reads, s.metrics.retries, s.metrics.fallbacks, newPoolCollector(s.primary)} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register postgres store metrics: %w", err)
		}
	}
	return nil
}
