package enginetest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// SmallDisk is a real filesystem of a few megabytes (a tmpfs mounted for
// one test), to fill up as a full disk would be: writes fail with ENOSPC
// until Free.
type SmallDisk struct {
	// Dir is the mount point; everything under it shares the small
	// filesystem.
	Dir    string
	filler string
}

// NewSmallDisk mounts a tmpfs of size bytes on a fresh directory and
// unmounts it at cleanup. Mounting needs CAP_SYS_ADMIN (root, outside an
// unprivileged container); without it the test is skipped with a message
// saying so.
func NewSmallDisk(tb testing.TB, size int64) *SmallDisk {
	tb.Helper()
	dir := filepath.Join(tb.TempDir(), "disk")
	if err := os.Mkdir(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, fmt.Sprintf("size=%d,mode=0755", size)); err != nil {
		if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) {
			tb.Skipf("cannot mount a tmpfs (%v): run the test as root, with CAP_SYS_ADMIN, to give it a real filesystem to fill", err)
		}
		tb.Fatalf("enginetest: mount tmpfs on %s: %v", dir, err)
	}
	tb.Cleanup(func() {
		// Lazily: a process under test may still hold files open.
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			tb.Errorf("enginetest: unmount %s: %v", dir, err)
		}
	})
	return &SmallDisk{Dir: dir, filler: filepath.Join(dir, "filler")}
}

// Fill writes a file until the filesystem refuses more (ENOSPC) and
// returns how many bytes it took.
func (d *SmallDisk) Fill(tb testing.TB) int64 {
	tb.Helper()
	f, err := os.OpenFile(d.filler, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		tb.Fatalf("enginetest: fill %s: %v", d.Dir, err)
	}
	defer f.Close()
	var n int64
	// Large writes first, then page-sized ones for the rest.
	for _, chunk := range [][]byte{make([]byte, 1<<20), make([]byte, 4096), make([]byte, 1)} {
		for {
			w, err := f.Write(chunk)
			n += int64(w)
			if err == nil {
				continue
			}
			if !errors.Is(err, syscall.ENOSPC) {
				tb.Fatalf("enginetest: fill %s: %v", d.Dir, err)
			}
			break
		}
	}
	return n
}

// Free removes what Fill wrote.
func (d *SmallDisk) Free(tb testing.TB) {
	tb.Helper()
	if err := os.Remove(d.filler); err != nil && !errors.Is(err, os.ErrNotExist) {
		tb.Fatalf("enginetest: free %s: %v", d.Dir, err)
	}
}
