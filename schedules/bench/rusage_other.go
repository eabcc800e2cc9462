//go:build !unix

package bench

import "os"

// childMaxRSS: no resource usage on this system.
func childMaxRSS(*os.ProcessState) int64 { return 0 }
