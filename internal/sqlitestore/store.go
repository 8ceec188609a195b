// Package sqlitestore keeps Surge's data in one SQLite file, using the pure-Go
// modernc.org/sqlite driver. It implements catalog.Store; other packages'
// tables live here too, each with its own file and migration.
package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/surge-commerce/surge/internal/catalog"
)

var _ catalog.Store = (*Store)(nil)

// Store is a SQLite database opened as two connection pools: one writer
// connection, because SQLite admits one writer at a time and queueing in Go
// is cheaper than SQLITE_BUSY retries, and several read-only connections,
// which WAL mode lets run alongside the writer.
type Store struct {
	writer *sql.DB
	reader *sql.DB
	now    func() time.Time
	commit *committer
	ckpt   *checkpointer
	// sync is the commits' synchronous setting; a batch of only lazy
	// writes (see writeLazy) commits at NORMAL when it is FULL.
	sync Synchronous
	// Prepared statements of the hot paths, per pool.
	wstmts, rstmts *stmtCache
}

// Option changes how Open sets up a Store.
type Option func(*options)

type options struct {
	now                func() time.Time
	readers            int
	sync               Synchronous
	checkpointInterval time.Duration
	walRestartFrames   int64
}

// Synchronous is how far a commit waits for the disk: SQLite's synchronous
// setting, in WAL mode.
type Synchronous string

// The settings Open accepts.
const (
	// SyncFull (the default) syncs the write-ahead log at every commit: a
	// write acknowledged to its caller survives an OS crash or a power
	// loss. Group commit shares one sync among every write of a batch.
	SyncFull Synchronous = "full"
	// SyncNormal syncs only at checkpoints: a commit survives the process
	// being killed, but the last ones may be lost when the OS crashes or
	// the power fails. For tests and measurements.
	SyncNormal Synchronous = "normal"
)

// ParseSynchronous reads a Synchronous setting ("full" or "normal").
func ParseSynchronous(s string) (Synchronous, error) {
	switch v := Synchronous(strings.ToLower(s)); v {
	case SyncFull, SyncNormal:
		return v, nil
	}
	return "", fmt.Errorf("sqlite synchronous %q: want full or normal", s)
}

// WithSynchronous sets how commits wait for the disk (default SyncFull).
func WithSynchronous(v Synchronous) Option {
	return func(o *options) { o.sync = v }
}

// WithClock makes the store take timestamps from now instead of time.Now.
func WithClock(now func() time.Time) Option {
	return func(o *options) { o.now = now }
}

// WithReaders sets the size of the read-only pool (default 2*GOMAXPROCS+2).
func WithReaders(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.readers = n
		}
	}
}

// Pragmas every connection gets. They go in the DSN because database/sql
// opens connections lazily; a PRAGMA run once on the pool would reach only
// one of them.
var (
	commonPragmas = []string{
		"busy_timeout(5000)", // other processes (surge migrate) may hold the lock briefly
		"foreign_keys(1)",
		"journal_mode(WAL)",
		"temp_store(MEMORY)",
	}
	writerPragmas = []string{
		"cache_size(-65536)",    // 64 MiB: a bulk import stays out of the WAL until commit
		"wal_autocheckpoint(0)", // the checkpointer does it, off the writer's path (checkpoint.go)
	}
	readerPragmas = []string{"cache_size(-16384)", "query_only(1)"}
)

// Open opens (creating if needed) the SQLite database file at path. It does
// not migrate; call Migrate.
func Open(ctx context.Context, path string, opts ...Option) (*Store, error) {
	o := options{now: time.Now, readers: 2*runtime.GOMAXPROCS(0) + 2, sync: SyncFull,
		checkpointInterval: defaultCheckpointInterval, walRestartFrames: defaultWALRestartFrames}
	for _, opt := range opts {
		opt(&o)
	}
	if _, err := ParseSynchronous(string(o.sync)); err != nil {
		return nil, err
	}
	// Every connection gets it: a checkpoint may run on any of them.
	common := append(slices.Clip(commonPragmas), "synchronous("+strings.ToUpper(string(o.sync))+")")
	if path == "" || strings.ContainsRune(path, '?') || strings.Contains(path, ":memory:") {
		// Two pools must see one database, so it has to be a file; '?'
		// would be taken for the start of DSN parameters.
		return nil, fmt.Errorf("open sqlite %q: want a file path without '?'", path)
	}

	// Writer first: its journal_mode(WAL) converts a new file before any
	// reader connects.
	writer, err := openPool(ctx, path, 1, "immediate", append(slices.Clip(common), writerPragmas...))
	if err != nil {
		return nil, err
	}
	reader, err := openPool(ctx, path, o.readers, "", append(slices.Clip(common), readerPragmas...))
	if err != nil {
		writer.Close()
		return nil, err
	}
	ckpt, err := openPool(ctx, path, 1, "", slices.Clip(common))
	if err != nil {
		reader.Close()
		writer.Close()
		return nil, err
	}
	s := &Store{writer: writer, reader: reader, now: o.now, sync: o.sync, wstmts: newStmtCache(writer), rstmts: newStmtCache(reader)}
	s.startCheckpointer(ckpt, o.checkpointInterval, o.walRestartFrames)
	s.startCommitter()
	return s, nil
}

func openPool(ctx context.Context, path string, conns int, txlock string, pragmas []string) (*sql.DB, error) {
	v := url.Values{}
	for _, p := range pragmas {
		v.Add("_pragma", p)
	}
	if txlock != "" {
		// BEGIN IMMEDIATE takes the write lock up front, so a transaction
		// that reads before it writes cannot fail halfway with SQLITE_BUSY.
		v.Set("_txlock", txlock)
	}
	db, err := sql.Open("sqlite", path+"?"+v.Encode())
	if err != nil {
		return nil, fmt.Errorf("open sqlite %q: %w", path, err)
	}
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	db.SetConnMaxIdleTime(0)
	db.SetConnMaxLifetime(0)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite %q: %w", path, err)
	}
	return db, nil
}

// Close closes the pools.
func (s *Store) Close() error {
	s.stopCommitter()
	cerr := s.ckpt.close()
	s.wstmts.close()
	s.rstmts.close()
	return errors.Join(cerr, s.reader.Close(), s.writer.Close())
}

// Ping reports whether the database answers a query, for readiness checks.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.reader.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("ping sqlite: %w", err)
	}
	return nil
}

// Writer returns the single-connection pool for writes. Its transactions
// begin IMMEDIATE, so they queue for the write lock at BEGIN.
func (s *Store) Writer() *sql.DB { return s.writer }

// Reader returns the read-only pool. It sees every committed write.
func (s *Store) Reader() *sql.DB { return s.reader }

// querier is what *sql.DB and *sql.Tx have in common, so reads can run in a
// write transaction or on the reader pool.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// inTx runs fn in a write transaction, committing if it returns nil.
func (s *Store) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() // no-op after Commit
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// isUnique reports whether err is a UNIQUE or PRIMARY KEY violation.
func isUnique(err error) bool {
	se, ok := errors.AsType[*sqlite.Error](err)
	return ok && (se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY)
}

// nanos converts t to the stored form; fromNanos converts back, in UTC.
func nanos(t time.Time) int64 { return t.UnixNano() }

func fromNanos(n int64) time.Time { return time.Unix(0, n).UTC() }

// Times outside this range do not fit in int64 nanoseconds.
var (
	minTime = time.Unix(0, -1<<63)
	maxTime = time.Unix(0, 1<<63-1)
)
