package natsbus

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// recordSyncs makes the bus's syncer for stream note the paths it syncs.
func recordSyncs(b *Bus, stream string) func() []string {
	var mu sync.Mutex
	var paths []string
	s := b.emb.syncer(stream)
	s.fsync = func(path string) error {
		err := fsyncFile(path)
		if err == nil {
			mu.Lock()
			paths = append(paths, path)
			mu.Unlock()
		}
		return err
	}
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		out := slices.Clone(paths)
		paths = nil
		return out
	}
}

// TestSyncFlushesTheFileHoldingThePublishedEvent: Sync syncs the message
// block the embedded server wrote the event to (what the relay counts on
// before it marks an outbox row published) and that block's directory the
// first time; a later Sync syncs the same block again, not the directory.
func TestSyncFlushesTheFileHoldingThePublishedEvent(t *testing.T) {
	b := mustOpen(t, t.TempDir())
	synced := recordSyncs(b, b.cfg.Stream)
	ctx := context.Background()
	mustPublish(t, b, "surge.order.created", "evt-1", "payload-one-4711")
	if err := b.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	holds := func(paths []string, data string) bool {
		for _, p := range paths {
			if raw, err := os.ReadFile(p); err == nil && bytes.Contains(raw, []byte(data)) {
				return true
			}
		}
		return false
	}
	first := synced()
	if !holds(first, "payload-one-4711") {
		t.Fatalf("Sync synced %v, none of which holds the published event", first)
	}
	if !slices.ContainsFunc(first, func(p string) bool { return filepath.Base(p) == "msgs" }) {
		t.Errorf("first Sync did not sync the blocks' directory: %v", first)
	}
	mustPublish(t, b, "surge.order.created", "evt-2", "payload-two-4712")
	if err := b.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	second := synced()
	if !holds(second, "payload-two-4712") {
		t.Fatalf("second Sync synced %v, none of which holds the event", second)
	}
	if slices.ContainsFunc(second, func(p string) bool { return filepath.Base(p) == "msgs" }) {
		t.Errorf("second Sync synced the directory again with no new block: %v", second)
	}
}

// TestSyncFollowsNewAndVanishedBlocks: blocks the server adds after a
// sync are synced with their directory; when the blocks synced last are
// gone (expired, compacted) the syncer finds the newest again; with no
// block at all, the layout is not the one it knows and it says so.
func TestSyncFollowsNewAndVanishedBlocks(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "msgs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var got []string
	s := &streamSyncer{dir: dir, fsync: func(p string) error {
		err := fsyncFile(p)
		if err == nil {
			got = append(got, filepath.Base(p))
		}
		return err
	}}
	write := func(name string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	step := func(want string) {
		t.Helper()
		got = nil
		if err := s.sync(); err != nil {
			t.Fatal(err)
		}
		if g := strings.Join(got, " "); g != want {
			t.Errorf("synced %q, want %q", g, want)
		}
	}
	if err := s.sync(); err == nil {
		t.Fatal("sync of a directory without blocks succeeded")
	}
	write("1.blk")
	step("1.blk msgs")
	step("1.blk")
	write("2.blk")
	write("3.blk")
	step("1.blk 2.blk 3.blk msgs")
	step("3.blk")
	for _, n := range []string{"1.blk", "2.blk", "3.blk"} {
		os.Remove(filepath.Join(dir, n))
	}
	write("7.blk")
	step("7.blk msgs")
}
