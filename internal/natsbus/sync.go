package natsbus

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/nats-io/nats-server/v2/server"
)

// Sync makes every event the stream has acknowledged so far durable on
// disk, so that an OS crash or a power loss cannot take it back.
//
// The embedded server acknowledges a publish once the message is written
// to its message file, and syncs its files to disk only every two minutes
// by default (JetStream's sync_interval). Syncing at every message (the
// server's sync_always) would cost a sync of the disk per message, and its
// one batched alternative, atomic batch publishing, stages every batch in
// a file store of its own (about four times the CPU of a plain publish
// per message, measured). So the caller batches: the outbox relay
// publishes a claimed batch, calls Sync once, and only then marks the
// batch published. Sync flushes the stream's message files written since
// the last Sync, and their directory when a file was added, in the layout
// JetStream's file store keeps under StoreDir; if that layout ever
// changes, Sync fails instead of silently syncing nothing.
//
// With an external server or cluster Sync does nothing: a cluster
// acknowledges a message once a quorum of its nodes has it (stream
// replicas), which is what protects it from one machine's crash; a
// cluster that must survive all its nodes losing power at once is
// configured with sync_interval: always.
func (b *Bus) Sync(ctx context.Context) error {
	return b.syncStream(ctx, b.cfg.Stream)
}

// syncStream is Sync for any of the bus's streams.
func (b *Bus) syncStream(ctx context.Context, stream string) error {
	if b.emb == nil {
		return nil
	}
	if err := b.emb.syncer(stream).sync(); err != nil {
		return fmt.Errorf("sync event stream %s: %w", stream, err)
	}
	return ctx.Err()
}

// streamSyncer fsyncs one stream's message block files. Blocks are
// numbered N.blk in the order the server creates them and only the
// newest is written to, so a sync covers the block that was newest last
// time (it may have grown since) and any created after it.
type streamSyncer struct {
	dir   string                  // .../streams/<name>/msgs
	fsync func(path string) error // fsyncFile; tests see what it syncs

	mu     sync.Mutex
	newest int // index of the newest block when last synced; 0 before the first sync
}

func (e *embedded) syncer(stream string) *streamSyncer {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.syncers == nil {
		e.syncers = map[string]*streamSyncer{}
	}
	s := e.syncers[stream]
	if s == nil {
		s = &streamSyncer{dir: filepath.Join(e.dir, server.JetStreamStoreDir, server.DEFAULT_GLOBAL_ACCOUNT, "streams", stream, "msgs"), fsync: fsyncFile}
		e.syncers[stream] = s
	}
	return s
}

// sync flushes the blocks written since the last call to disk.
func (s *streamSyncer) sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for attempt := 0; ; attempt++ {
		first := s.newest
		if first == 0 {
			// First sync: find the blocks there are. Later syncs probe
			// for new ones by number instead of reading a directory that
			// grows with the stream's age.
			n, err := newestBlock(s.dir)
			if err != nil {
				return err
			}
			first = n
		}
		newest, added := 0, false
		for i := first; ; i++ {
			err := s.fsync(filepath.Join(s.dir, strconv.Itoa(i)+".blk"))
			if errors.Is(err, fs.ErrNotExist) {
				break
			}
			if err != nil {
				return err
			}
			newest = i
			added = added || i > s.newest
		}
		if newest == 0 {
			// The block that was newest has gone (its messages expired,
			// or it was compacted): look again.
			s.newest = 0
			if attempt == 0 {
				continue
			}
			return fmt.Errorf("message block %d.blk vanished from %s while syncing", first, s.dir)
		}
		if added {
			// A new file's name is in its directory, which needs a sync
			// of its own for the file to be found after a crash.
			if err := s.syncDir(); err != nil {
				return err
			}
		}
		s.newest = newest
		return nil
	}
}

func (s *streamSyncer) syncDir() error {
	return s.fsync(s.dir)
}

// newestBlock returns the highest block number in dir.
func newestBlock(dir string) (int, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("message blocks: %w", err)
	}
	newest := 0
	for _, e := range entries {
		if n, err := strconv.Atoi(strings.TrimSuffix(e.Name(), ".blk")); err == nil && strings.HasSuffix(e.Name(), ".blk") && n > newest {
			newest = n
		}
	}
	if newest == 0 {
		return 0, fmt.Errorf("no message blocks (N.blk) in %s: the JetStream file layout is not the one Sync knows", dir)
	}
	return newest, nil
}

// fsyncFile flushes a file's (or a directory's) data to disk. On Linux,
// fsync of any descriptor flushes the file's dirty pages, whoever wrote
// them.
func fsyncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	serr := f.Sync()
	if cerr := f.Close(); serr == nil {
		serr = cerr
	}
	return serr
}
