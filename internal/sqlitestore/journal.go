package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/surge-commerce/surge/internal/waitroom"
)

// Journal is the waiting room's journal (waitroom.Journal) in a SQLite
// file of its own: the changes of the in-process ledger, so that a drop's
// line survives a crash of a single-process shop. A file of its own, with
// its own writer connection, keeps the joins of a drop's stampede out of
// the shop database's group commit, where checkouts wait.
type Journal struct {
	db  *sql.DB
	ins *sql.Stmt
}

var _ waitroom.Journal = (*Journal)(nil)

const journalSchema = `
CREATE TABLE IF NOT EXISTS waitroom_journal (
    id      INTEGER PRIMARY KEY, -- the order entries were appended in
    drop_id TEXT    NOT NULL,
    record  BLOB    NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS waitroom_journal_drop ON waitroom_journal (drop_id);`

// ErrJournalInUse means another process holds the journal file open.
var ErrJournalInUse = errors.New("waiting room journal in use by another process")

// OpenJournal opens (creating if needed) the journal file at path and
// keeps it locked while open: one process owns a line's journal (a second
// one, such as a worker sharing the data directory, gets
// ErrJournalInUse), and the lock dies with the process, crash or not.
func OpenJournal(ctx context.Context, path string) (*Journal, error) {
	// Exclusive locking mode, set before WAL is first used, keeps every
	// lock the connection takes until it closes; a quick busy timeout
	// lets a second process find out at once.
	pragmas := append([]string{"locking_mode(EXCLUSIVE)"}, commonPragmas...)
	pragmas = append(pragmas, "busy_timeout(200)")
	db, err := openPool(ctx, path, 1, "immediate", pragmas)
	if err != nil {
		if isBusy(err) {
			return nil, fmt.Errorf("%w: %s", ErrJournalInUse, path)
		}
		return nil, err
	}
	// The schema, then a write (user_version), which takes the exclusive
	// lock for good even when the schema was there already.
	if _, err := db.ExecContext(ctx, journalSchema+`PRAGMA user_version = 1;`); err != nil {
		db.Close()
		if isBusy(err) {
			return nil, fmt.Errorf("%w: %s", ErrJournalInUse, path)
		}
		return nil, fmt.Errorf("waiting room journal %q: %w", path, err)
	}
	ins, err := db.PrepareContext(ctx, `INSERT INTO waitroom_journal (drop_id, record) VALUES (?, ?)`)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("waiting room journal %q: %w", path, err)
	}
	return &Journal{db: db, ins: ins}, nil
}

func isBusy(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && (se.Code()&0xff == sqlite3.SQLITE_BUSY || se.Code()&0xff == sqlite3.SQLITE_LOCKED)
}

// Replay implements waitroom.Journal.
func (j *Journal) Replay(ctx context.Context, fn func(waitroom.JournalEntry) error) error {
	rows, err := j.db.QueryContext(ctx, `SELECT drop_id, record FROM waitroom_journal ORDER BY id`)
	if err != nil {
		return fmt.Errorf("replay journal: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var e waitroom.JournalEntry
		if err := rows.Scan(&e.Drop, &e.Record); err != nil {
			return fmt.Errorf("replay journal: %w", err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("replay journal: %w", err)
	}
	return nil
}

// Append implements waitroom.Journal: all of entries or none survive a
// crash. One entry, the usual case while joins trickle in, is one INSERT
// on a prepared statement (a statement is its own transaction): half the
// cost of BEGIN, INSERT and COMMIT.
func (j *Journal) Append(ctx context.Context, entries []waitroom.JournalEntry) error {
	if len(entries) == 0 {
		return nil
	}
	if len(entries) == 1 && !entries[0].Reset {
		if _, err := j.ins.ExecContext(ctx, entries[0].Drop, entries[0].Record); err != nil {
			return fmt.Errorf("append to journal: %w", err)
		}
		return nil
	}
	tx, err := j.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("append to journal: %w", err)
	}
	defer tx.Rollback()
	ins := tx.StmtContext(ctx, j.ins)
	for _, e := range entries {
		if e.Reset {
			if _, err := tx.ExecContext(ctx, `DELETE FROM waitroom_journal WHERE drop_id = ?`, e.Drop); err != nil {
				return fmt.Errorf("append to journal: %w", err)
			}
			continue
		}
		if _, err := ins.ExecContext(ctx, e.Drop, e.Record); err != nil {
			return fmt.Errorf("append to journal: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("append to journal: %w", err)
	}
	return nil
}

// Clear forgets every entry: for a journal the ledger cannot replay
// (waitroom.ErrCorruptJournal), so the shop starts with empty lines
// rather than not at all.
func (j *Journal) Clear(ctx context.Context) error {
	_, err := j.db.ExecContext(ctx, `DELETE FROM waitroom_journal`)
	if err != nil {
		return fmt.Errorf("clear journal: %w", err)
	}
	return nil
}

// Close closes the journal file.
func (j *Journal) Close() error {
	j.ins.Close()
	return j.db.Close()
}
