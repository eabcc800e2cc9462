//go:build unix

package bench

import (
	"os"
	"runtime"
	"syscall"
)

// childMaxRSS is a finished child's ru_maxrss in bytes: Linux and the BSDs
// count KiB, macOS bytes.
func childMaxRSS(ps *os.ProcessState) int64 {
	u, ok := ps.SysUsage().(*syscall.Rusage)
	if !ok || u == nil {
		return 0
	}
	if runtime.GOOS == "darwin" || runtime.GOOS == "ios" {
		return int64(u.Maxrss)
	}
	return int64(u.Maxrss) * 1024
}
