// Package journalfile keeps a waiting-room journal (waitroom.Journal) in
// an append-only file: each Append is one write of checksummed records, a
// few microseconds where a SQLite commit costs tens, which is what a
// drop's stampede of joins asks of it.
//
// A record is its body's length (4 bytes, little endian), the body's
// CRC-32C (4 bytes), then the body: the drop ID (a length byte and the
// bytes), a kind byte (entry or reset) and the entry's record. A write
// the process did not live to finish leaves a short or mismatched record
// at the end; Open cuts it off (nobody was told it was written). Like the
// shop's SQLite database in WAL mode with synchronous=NORMAL, the file
// survives a crash of the process, and loses at most the last writes,
// never its order, to a crash of the machine.
package journalfile

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/surge-commerce/surge/internal/waitroom"
)

// ErrInUse means another process holds the journal file open.
var ErrInUse = errors.New("waiting room journal in use by another process")

// File is a journal in an append-only file.
type File struct {
	mu   sync.Mutex
	f    *os.File
	path string
	buf  []byte
}

var _ waitroom.Journal = (*File)(nil)

const (
	headerLen = 8
	// maxBody bounds a record's body: a drop ID of at most 255 bytes and
	// a ledger record of a few dozen.
	maxBody = 1 << 16

	kindEntry byte = 1
	kindReset byte = 2
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Open opens (creating if needed) the journal file at path, locked for
// this process while open (another gets ErrInUse; the lock dies with the
// process). It cuts off a record a crash left half written, and rewrites
// the file without the entries resets made dead, so a journal holds about
// what the lines hold.
func Open(path string) (*File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("waiting room journal: %w", err)
	}
	if err := lock(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: %s: %v", ErrInUse, path, err)
	}
	j := &File{f: f, path: path}
	entries, end, dead, err := j.scan()
	if err != nil {
		f.Close()
		return nil, err
	}
	if dead > 0 {
		if err := j.rewrite(entries); err != nil {
			j.f.Close()
			return nil, err
		}
	} else if err := f.Truncate(end); err != nil {
		f.Close()
		return nil, fmt.Errorf("waiting room journal: cut off a torn write: %w", err)
	}
	if _, err := j.f.Seek(0, io.SeekEnd); err != nil {
		j.f.Close()
		return nil, fmt.Errorf("waiting room journal: %w", err)
	}
	return j, nil
}

// scan reads every whole record from the start: the live entries (resets
// applied), where the last whole record ends, and how many entries the
// resets made dead.
func (j *File) scan() (live []waitroom.JournalEntry, end int64, dead int, err error) {
	if _, err := j.f.Seek(0, io.SeekStart); err != nil {
		return nil, 0, 0, fmt.Errorf("waiting room journal: %w", err)
	}
	r := bufio.NewReaderSize(j.f, 1<<16)
	var header [headerLen]byte
	for {
		if _, err := io.ReadFull(r, header[:]); err != nil {
			return live, end, dead, nil // the end, or a torn header
		}
		n := binary.LittleEndian.Uint32(header[:4])
		if n > maxBody {
			return live, end, dead, nil
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(r, body); err != nil || crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(header[4:]) {
			return live, end, dead, nil // a torn write: only the last can be
		}
		e, ok := decode(body)
		if !ok {
			return nil, 0, 0, fmt.Errorf("%w: record at byte %d", waitroom.ErrCorruptJournal, end)
		}
		end += headerLen + int64(n)
		if e.Reset {
			before := len(live)
			kept := live[:0]
			for _, old := range live {
				if old.Drop != e.Drop {
					kept = append(kept, old)
				}
			}
			live = kept
			dead += before - len(live) + 1
			continue
		}
		live = append(live, e)
	}
}

// rewrite replaces the file with one holding entries, atomically (a new
// file renamed over the old one).
func (j *File) rewrite(entries []waitroom.JournalEntry) error {
	tmp := j.path + ".new"
	nf, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("waiting room journal: rewrite: %w", err)
	}
	fail := func(err error) error {
		nf.Close()
		os.Remove(tmp)
		return fmt.Errorf("waiting room journal: rewrite: %w", err)
	}
	if err := lock(nf); err != nil {
		return fail(err)
	}
	w := bufio.NewWriterSize(nf, 1<<16)
	var buf []byte
	for _, e := range entries {
		buf = appendRecord(buf[:0], e)
		if _, err := w.Write(buf); err != nil {
			return fail(err)
		}
	}
	if err := w.Flush(); err != nil {
		return fail(err)
	}
	if err := nf.Sync(); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, j.path); err != nil {
		return fail(err)
	}
	if d, err := os.Open(filepath.Dir(j.path)); err == nil {
		_ = d.Sync() // the rename itself, on file systems that need it
		d.Close()
	}
	j.f.Close()
	j.f = nf
	return nil
}

func appendRecord(dst []byte, e waitroom.JournalEntry) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, headerLen)...)
	dst = append(dst, byte(len(e.Drop)))
	dst = append(dst, e.Drop...)
	if e.Reset {
		dst = append(dst, kindReset)
	} else {
		dst = append(dst, kindEntry)
		dst = append(dst, e.Record...)
	}
	body := dst[start+headerLen:]
	binary.LittleEndian.PutUint32(dst[start:], uint32(len(body)))
	binary.LittleEndian.PutUint32(dst[start+4:], crc32.Checksum(body, castagnoli))
	return dst
}

func decode(body []byte) (waitroom.JournalEntry, bool) {
	if len(body) < 2 || len(body) < 1+int(body[0])+1 {
		return waitroom.JournalEntry{}, false
	}
	n := int(body[0])
	e := waitroom.JournalEntry{Drop: string(body[1 : 1+n])}
	switch body[1+n] {
	case kindEntry:
		e.Record = append([]byte(nil), body[2+n:]...)
	case kindReset:
		if len(body) != 2+n {
			return waitroom.JournalEntry{}, false
		}
		e.Reset = true
	default:
		return waitroom.JournalEntry{}, false
	}
	return e, true
}

// Replay implements waitroom.Journal.
func (j *File) Replay(ctx context.Context, fn func(waitroom.JournalEntry) error) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	live, _, _, err := j.scan()
	if _, serr := j.f.Seek(0, io.SeekEnd); err == nil && serr != nil {
		err = fmt.Errorf("waiting room journal: %w", serr)
	}
	if err != nil {
		return err
	}
	for _, e := range live {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

// Append implements waitroom.Journal: one write of all of entries. A
// failed or short write is cut off again, so the file never holds part
// of a batch its caller was told failed.
func (j *File) Append(ctx context.Context, entries []waitroom.JournalEntry) error {
	if len(entries) == 0 {
		return nil
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	buf := j.buf[:0]
	for _, e := range entries {
		if len(e.Drop) > 255 || len(e.Record) > maxBody-258 {
			return fmt.Errorf("waiting room journal: entry of drop %q too large", e.Drop)
		}
		buf = appendRecord(buf, e)
	}
	j.buf = buf
	end, err := j.f.Seek(0, io.SeekCurrent)
	if err != nil {
		return fmt.Errorf("waiting room journal: %w", err)
	}
	if _, err := j.f.Write(buf); err != nil {
		if terr := j.f.Truncate(end); terr == nil {
			_, _ = j.f.Seek(end, io.SeekStart)
		}
		return fmt.Errorf("waiting room journal: %w", err)
	}
	return nil
}

// Clear forgets every entry: for a journal the ledger cannot replay, so
// the shop starts with empty lines rather than not at all.
func (j *File) Clear(context.Context) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.f.Truncate(0); err != nil {
		return fmt.Errorf("waiting room journal: %w", err)
	}
	_, err := j.f.Seek(0, io.SeekStart)
	return err
}

// Close closes the file, letting go of its lock.
func (j *File) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.f.Close()
}
