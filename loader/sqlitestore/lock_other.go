//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package sqlitestore

import (
	"errors"
	"os"
	"runtime"
)

// tryFlock is not implemented on this platform: without a lock that the
// operating system releases when the process dies, two runs could write
// one store at once, so StartRun refuses.
func tryFlock(f *os.File) (bool, error) {
	return false, errors.New("sqlite store: no run locks on " + runtime.GOOS + "; use the PostgreSQL store")
}
