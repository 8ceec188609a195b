//go:build unix

package journalfile

import (
	"os"
	"syscall"
)

// lock takes an exclusive advisory lock on f without waiting; the kernel
// lets go of it when the process ends, however it ends.
func lock(f *os.File) error {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
}
