//go:build !unix

package journalfile

import "os"

// lock does nothing where there is no flock: run one process per data
// directory there.
func lock(*os.File) error { return nil }
