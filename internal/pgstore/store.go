// Package pgstore keeps Surge's data in PostgreSQL, on a primary and any
// number of streaming read replicas, using pgx. It implements the same
// store contract as the embedded SQLite store (shop.Store) with the same
// semantics and errors; both pass the conformance suites in
// internal/storetest.
//
// Writes and reads that must see them go to the primary. Reads that may be
// a moment stale (catalog, search, the category tree, offers) go to a
// replica that is up, no further behind than Config.MaxReplicaLag and, when
// the context carries a minimum WAL position (WithMinLSN, RecordWrites),
// has replayed past it; otherwise they go to the primary too. Each read
// method's doc comment says which.
package pgstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/surge-commerce/surge/internal/telemetry"
)

// Config says which databases to use and how.
type Config struct {
	// URL is the primary's connection string, as a URL
	// (postgres://user:pass@host:5432/db?sslmode=disable) or key=value
	// pairs.
	URL string
	// ReplicaURLs are streaming replicas of the primary. None means every
	// read goes to the primary.
	ReplicaURLs []string
	// MaxReplicaLag is how far behind the primary a replica may be and
	// still serve reads; 0 means 5s.
	MaxReplicaLag time.Duration
	// ReplicaCheckInterval is how often each replica's health and lag are
	// measured; 0 means 1s.
	ReplicaCheckInterval time.Duration
	// MaxConns caps each connection pool; 0 keeps pgxpool's default
	// (max(4, GOMAXPROCS)).
	MaxConns int32
	// Now is the clock for times the store sets itself; nil means
	// time.Now.
	Now func() time.Time
	// Logger receives a line when the primary becomes unreachable and one,
	// with the count of failed calls, when it answers again (default:
	// discard); never one per failed call.
	Logger *slog.Logger
}

func (c Config) validate() error {
	switch {
	case strings.TrimSpace(c.URL) == "":
		return errors.New("url: required")
	case c.MaxReplicaLag < 0:
		return errors.New("max replica lag: must not be negative")
	case c.ReplicaCheckInterval < 0:
		return errors.New("replica check interval: must not be negative")
	case c.MaxConns < 0:
		return errors.New("max conns: must not be negative")
	}
	for i, u := range c.ReplicaURLs {
		if strings.TrimSpace(u) == "" {
			return fmt.Errorf("replica url %d: empty", i+1)
		}
	}
	return nil
}

// Store is a PostgreSQL primary with optional read replicas.
type Store struct {
	primary  *pgxpool.Pool
	db       *sql.DB // database/sql over the primary pool, for Writer
	replicas []*replica
	now      func() time.Time
	maxLag   time.Duration
	interval time.Duration
	metrics  *metrics
	round    atomic.Uint64 // spreads reads over the usable replicas
	// floor is the LSN every replica read needs, whatever the context: the
	// primary's position when the store opened or last migrated, so no
	// replica serves reads before it has the schema this store uses.
	floor atomic.Uint64

	stop chan struct{}
	wg   sync.WaitGroup
}

// Open connects to the primary (failing if it does not answer) and sets up
// the replica pools, which connect lazily: a replica that is down when the
// store opens is skipped until it answers. It does not migrate; call
// Migrate.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	if cfg.MaxReplicaLag == 0 {
		cfg.MaxReplicaLag = 5 * time.Second
	}
	if cfg.ReplicaCheckInterval == 0 {
		cfg.ReplicaCheckInterval = time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	primary, err := newPool(ctx, cfg.URL, cfg.MaxConns, outageTracer{telemetry.NewOutage(cfg.Logger, "postgres primary")})
	if err != nil {
		return nil, fmt.Errorf("open postgres primary: %w", err)
	}
	if err := primary.Ping(ctx); err != nil {
		primary.Close()
		return nil, fmt.Errorf("open postgres primary %s: %w", poolName(primary), err)
	}
	s := &Store{
		primary:  primary,
		db:       stdlib.OpenDBFromPool(primary),
		now:      cfg.Now,
		maxLag:   cfg.MaxReplicaLag,
		interval: cfg.ReplicaCheckInterval,
		stop:     make(chan struct{}),
	}
	names := map[string]int{}
	for i, u := range cfg.ReplicaURLs {
		pool, err := newPool(ctx, u, cfg.MaxConns, nil)
		if err != nil {
			s.closePools()
			return nil, fmt.Errorf("open postgres replica %d: %w", i+1, err)
		}
		name := poolName(pool)
		if names[name]++; names[name] > 1 {
			name = fmt.Sprintf("%s#%d", name, names[name])
		}
		s.replicas = append(s.replicas, newReplica(name, pool))
	}
	s.metrics = newMetrics(s.replicas)
	if len(s.replicas) > 0 {
		if err := s.raiseFloor(ctx); err != nil {
			s.closePools()
			return nil, fmt.Errorf("open postgres: %w", err)
		}
		// A replica that does not answer soon is down for now; the store
		// does not wait for it to open.
		cctx, cancel := context.WithTimeout(ctx, replicaCheckTimeout)
		s.CheckReplicas(cctx)
		cancel()
		s.wg.Go(s.watchReplicas)
	}
	return s, nil
}

func newPool(ctx context.Context, url string, maxConns int32, tracer pgx.QueryTracer) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	if tracer != nil {
		cfg.ConnConfig.Tracer = tracer
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	cfg.AfterConnect = func(_ context.Context, conn *pgx.Conn) error {
		// Times come back in UTC, as the SQLite store returns them, not in
		// the process's local zone.
		conn.TypeMap().RegisterType(&pgtype.Type{Name: "timestamptz", OID: pgtype.TimestamptzOID,
			Codec: &pgtype.TimestamptzCodec{ScanLocation: time.UTC}})
		return nil
	}
	return pgxpool.NewWithConfig(ctx, cfg)
}

// poolName names a pool by host and port, never with its password.
func poolName(p *pgxpool.Pool) string {
	c := p.Config().ConnConfig
	return fmt.Sprintf("%s:%d", c.Host, c.Port)
}

// Close stops the replica checks and closes every pool.
func (s *Store) Close() error {
	close(s.stop)
	s.wg.Wait()
	return s.closePools()
}

func (s *Store) closePools() error {
	err := s.db.Close()
	for _, r := range s.replicas {
		r.pool.Close()
	}
	s.primary.Close()
	return err
}

// Ping reports whether the primary answers a query, for readiness checks:
// without the primary nothing can be bought. Replicas are optional.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.primary.Ping(ctx); err != nil {
		return fmt.Errorf("ping postgres: %w", err)
	}
	return nil
}

// Writer returns a database/sql handle on the primary's pool, where the
// simulated payment provider keeps its tables.
func (s *Store) Writer() *sql.DB { return s.db }

// Primary returns the primary's pool.
func (s *Store) Primary() *pgxpool.Pool { return s.primary }

// querier is what pools and transactions have in common, so reads can run
// inside a write transaction or on a pool.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// maxAttempts bounds how often a transaction that lost a deadlock or a
// serialization conflict is run again.
const maxAttempts = 8

// inTx runs fn in a READ COMMITTED transaction on the primary, committing
// if it returns nil. A transaction chosen as a deadlock victim or failing
// serialization is rolled back and run again from the start, so fn must
// set, not accumulate, what it reports to its caller. After a commit the
// write's WAL position goes to the context's WriteRecord, if any.
func (s *Store) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	if err := retry(ctx, func() error { return s.runTx(ctx, fn) }); err != nil {
		return err
	}
	s.noteWrite(ctx)
	return nil
}

// inBatch sends the batch build returns to the primary in one round trip.
// The server runs a batch as one implicit transaction: all of it commits
// or none does, with no BEGIN and COMMIT round trips around it. Like inTx
// it runs it again (build is called anew) after a deadlock or a
// serialization failure, and notes the write's WAL position.
func (s *Store) inBatch(ctx context.Context, build func() *pgx.Batch) error {
	err := retry(ctx, func() error {
		// Once sent, the batch may commit whatever happens to the
		// caller: wait for its outcome, as runTx waits for a COMMIT.
		done, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
		defer cancel()
		if err := ctx.Err(); err != nil {
			return err
		}
		return s.primary.SendBatch(done, build()).Close()
	})
	if err != nil {
		return err
	}
	s.noteWrite(ctx)
	return nil
}

// inTwoTrips runs an explicit transaction in two round trips, for work
// whose second part depends on what the first read: BEGIN and the first
// batch in one, then the second batch (built from the first's results)
// and the COMMIT in the other. Row locks the second part takes are held
// until a COMMIT already on its way, never across a trip back to the
// shop. Like inTx it runs everything again after a deadlock or a
// serialization failure; first and second are called anew each time.
func (s *Store) inTwoTrips(ctx context.Context, first func(b *pgx.Batch), second func(b *pgx.Batch) error) error {
	err := retry(ctx, func() error {
		conn, err := s.primary.Acquire(ctx)
		if err != nil {
			return err
		}
		defer conn.Release()
		done, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
		defer cancel()
		// Whatever failed, the connection goes back to the pool outside
		// any transaction (pgxpool would otherwise close it).
		defer func() {
			if conn.Conn().PgConn().TxStatus() != 'I' {
				if _, rerr := conn.Exec(done, "ROLLBACK"); rerr != nil {
					conn.Conn().Close(done)
				}
			}
		}()
		b := &pgx.Batch{}
		b.Queue("BEGIN")
		first(b)
		if err := conn.SendBatch(ctx, b).Close(); err != nil {
			return err
		}
		b = &pgx.Batch{}
		if err := second(b); err != nil {
			return err
		}
		b.Queue("COMMIT").Exec(func(tag pgconn.CommandTag) error {
			if tag.String() != "COMMIT" {
				// The transaction had failed: PostgreSQL answers a
				// COMMIT of it with ROLLBACK.
				return pgx.ErrTxCommitRollback
			}
			return nil
		})
		// Once the COMMIT is sent, wait for its outcome whatever happens
		// to the caller, as runTx does.
		return conn.SendBatch(done, b).Close()
	})
	if err != nil {
		return err
	}
	s.noteWrite(ctx)
	return nil
}

// retry runs fn until it succeeds, fails with an error a new attempt
// cannot fix, or has failed maxAttempts times.
func retry(ctx context.Context, fn func() error) error {
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil {
			return nil
		}
		if !retryable(err) || attempt == maxAttempts {
			return err
		}
		if cerr := backoff(ctx, attempt); cerr != nil {
			return errors.Join(err, cerr)
		}
	}
}

// backoff waits before the attempt after attempt, a jittered time that
// doubles with each, so the transactions that collided do not collide
// again in lockstep; it returns early with ctx's error.
func backoff(ctx context.Context, attempt int) error {
	t := time.NewTimer(time.Duration(rand.Int64N(int64(time.Millisecond) << min(attempt, 6))))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// commitTimeout bounds a COMMIT that no longer follows the caller's
// context.
const commitTimeout = 30 * time.Second

// runTx runs fn in one transaction. The COMMIT ignores the caller's
// cancellation, as the SQLite store's group commit does: once the work is
// done the caller learns whether it was committed, instead of an error
// for a write that may have happened.
func (s *Store) runTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	tx, err := s.primary.Begin(ctx)
	if err != nil {
		return err
	}
	done, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
	defer cancel()
	if err := fn(tx); err != nil {
		if rerr := tx.Rollback(done); rerr != nil && !errors.Is(rerr, pgx.ErrTxClosed) {
			return errors.Join(err, fmt.Errorf("rollback: %w", rerr))
		}
		return err
	}
	return tx.Commit(done)
}

// SQLSTATE codes the store reacts to.
const (
	codeUniqueViolation      = "23505"
	codeSerializationFailure = "40001"
	codeDeadlockDetected     = "40P01"
	codeAdminShutdown        = "57P01"
	codeCrashShutdown        = "57P02"
	codeCannotConnectNow     = "57P03"
)

func pgCode(err error) string {
	if pe, ok := errors.AsType[*pgconn.PgError](err); ok {
		return pe.Code
	}
	return ""
}

// retryable reports whether running the transaction again may succeed.
func retryable(err error) bool {
	switch pgCode(err) {
	case codeSerializationFailure, codeDeadlockDetected:
		return true
	}
	return false
}

// isUnique reports whether err is a UNIQUE or PRIMARY KEY violation.
func isUnique(err error) bool { return pgCode(err) == codeUniqueViolation }

// isUniqueOn reports whether err is a UNIQUE or PRIMARY KEY violation of
// the named constraint.
func isUniqueOn(err error, constraint string) bool {
	pe, ok := errors.AsType[*pgconn.PgError](err)
	return ok && pe.Code == codeUniqueViolation && pe.ConstraintName == constraint
}

// storable reports whether PostgreSQL can hold s as text: valid UTF-8
// without NUL. Keys that are not cannot be stored, so looking one up finds
// nothing rather than failing the query.
func storable(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

// Times outside this range are refused, as the SQLite store refuses times
// that do not fit in int64 nanoseconds, so both stores accept the same
// products.
var (
	minTime = time.Unix(0, -1<<63)
	maxTime = time.Unix(0, 1<<63-1)
)
