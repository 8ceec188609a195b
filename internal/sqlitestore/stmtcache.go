package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
)

// stmtCache keeps prepared statements by query text. Parsing SQL costs more
// than running a small statement, and the hot paths (checkout, sessions,
// the order workers) run the same few statements thousands of times a
// second. database/sql prepares a cached statement once per connection and
// reuses it, inside transactions too (Tx.Stmt).
type stmtCache struct {
	db     *sql.DB
	mu     sync.RWMutex
	m      map[string]*sql.Stmt
	wanted map[string]bool // seen inside a write, to prepare when the writer is free
}

func newStmtCache(db *sql.DB) *stmtCache {
	return &stmtCache{db: db, m: map[string]*sql.Stmt{}, wanted: map[string]bool{}}
}

// cached returns the prepared statement for q if there is one, and
// otherwise notes q so prepareWanted prepares it later. It never prepares:
// inside a write transaction the writer pool's only connection is taken,
// and preparing on the pool would wait for it forever.
func (c *stmtCache) cached(q string) *sql.Stmt {
	c.mu.RLock()
	st, seen := c.m[q], c.wanted[q]
	c.mu.RUnlock()
	if st == nil && !seen {
		c.mu.Lock()
		c.wanted[q] = true
		c.mu.Unlock()
	}
	return st
}

// prepareWanted prepares the statements noted by cached. The group-commit
// loop calls it between transactions, when the connection is free.
func (c *stmtCache) prepareWanted(ctx context.Context) {
	c.mu.RLock()
	n := len(c.wanted)
	c.mu.RUnlock()
	if n == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for q := range c.wanted {
		if _, ok := c.m[q]; !ok {
			if st, err := c.db.PrepareContext(ctx, q); err == nil {
				c.m[q] = st
			}
		}
		delete(c.wanted, q)
	}
}

func (c *stmtCache) get(ctx context.Context, q string) (*sql.Stmt, error) {
	c.mu.RLock()
	st := c.m[q]
	c.mu.RUnlock()
	if st != nil {
		return st, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if st = c.m[q]; st != nil {
		return st, nil
	}
	st, err := c.db.PrepareContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	c.m[q] = st
	return st, nil
}

func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.m {
		st.Close()
	}
	c.m = nil
}

// wtx is a write transaction of the group commit whose statements come
// from the writer's statement cache. It has the methods of *sql.Tx that
// the store uses, so code reads the same.
type wtx struct {
	tx *sql.Tx
	c  *stmtCache
}

// Exec runs a statement in the transaction.
func (t wtx) Exec(q string, args ...any) (sql.Result, error) {
	if st := t.c.cached(q); st != nil {
		ts := t.tx.Stmt(st)
		defer ts.Close()
		return ts.Exec(args...)
	}
	return t.tx.Exec(q, args...)
}

// Query runs a query in the transaction.
func (t wtx) Query(q string, args ...any) (*sql.Rows, error) {
	if st := t.c.cached(q); st != nil {
		// Closing a transaction's statement while rows are open is
		// deferred by database/sql until the rows close.
		ts := t.tx.Stmt(st)
		defer ts.Close()
		return ts.Query(args...)
	}
	return t.tx.Query(q, args...)
}

// QueryRow runs a query for one row in the transaction.
func (t wtx) QueryRow(q string, args ...any) *sql.Row {
	if st := t.c.cached(q); st != nil {
		ts := t.tx.Stmt(st)
		defer ts.Close()
		return ts.QueryRow(args...)
	}
	return t.tx.QueryRow(q, args...)
}

// read runs a query for one row on the reader pool with a cached statement.
func (s *Store) readRow(ctx context.Context, q string, args ...any) *sql.Row {
	st, err := s.rstmts.get(ctx, q)
	if err != nil {
		return s.reader.QueryRowContext(ctx, q, args...)
	}
	return st.QueryRowContext(ctx, args...)
}

// readRows runs a query on the reader pool with a cached statement.
func (s *Store) readRows(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	st, err := s.rstmts.get(ctx, q)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}
