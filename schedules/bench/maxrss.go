package bench

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"
)

// Peak resident memory of a child process.
//
// ru_maxrss (getrusage, through wait4) is the natural measure, but on
// Linux it is never lower than the parent's own peak: the kernel folds the
// high-water mark of the image a process discards at exec into its
// ru_maxrss, and Go starts children with vfork, so the image discarded is
// the parent's. So on Linux the benchmark also samples the child's VmHWM
// (/proc/PID/status: the high-water mark of its own image, from zero at
// exec) while it runs. When ru_maxrss exceeds what this process had
// reached when it started the child, ru_maxrss is the child's own peak,
// exactly; otherwise the child stayed below that floor and the last VmHWM
// sample is its peak (missing at most a rise in its last sampling
// interval).

// rssSampleEvery is how often a child's VmHWM is read.
const rssSampleEvery = 20 * time.Millisecond

// Where a stage's peak RSS came from.
const (
	rssFromRusage  = "ru_maxrss"
	rssFromSampled = "VmHWM sampled every 20ms"
	rssFromFloored = "ru_maxrss (may include the benchmark's own peak)"
)

// hwmKiB reads VmHWM (KiB) from a /proc/…/status file; 0 if absent.
func hwmKiB(path string) int64 {
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		line := sc.Bytes()
		if rest, ok := bytes.CutPrefix(line, []byte("VmHWM:")); ok {
			f := bytes.Fields(rest)
			if len(f) > 0 {
				n, _ := strconv.ParseInt(string(f[0]), 10, 64)
				return n
			}
		}
	}
	return 0
}

// rssWatch samples a child's VmHWM until stopped.
type rssWatch struct {
	floor int64 // this process's VmHWM (bytes) when the child started
	mu    sync.Mutex
	peak  int64 // bytes
	stop  chan struct{}
	done  chan struct{}
}

// watchRSS starts sampling pid (Linux only).
func watchRSS(pid int) *rssWatch {
	w := &rssWatch{stop: make(chan struct{}), done: make(chan struct{})}
	if runtime.GOOS != "linux" {
		close(w.done)
		return w
	}
	w.floor = hwmKiB("/proc/self/status") * 1024
	path := "/proc/" + strconv.Itoa(pid) + "/status"
	go func() {
		defer close(w.done)
		t := time.NewTicker(rssSampleEvery)
		defer t.Stop()
		for {
			if kib := hwmKiB(path); kib > 0 {
				w.mu.Lock()
				w.peak = max(w.peak, kib*1024)
				w.mu.Unlock()
			}
			select {
			case <-w.stop:
				return
			case <-t.C:
			}
		}
	}()
	return w
}

// result stops sampling and returns the child's peak RSS and its source.
func (w *rssWatch) result(ps *os.ProcessState) (int64, string) {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
	var ru int64
	if ps != nil {
		ru = childMaxRSS(ps)
	}
	if runtime.GOOS != "linux" {
		return ru, rssFromRusage
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case ru > w.floor:
		return ru, rssFromRusage
	case w.peak > 0:
		return w.peak, rssFromSampled
	default:
		return ru, rssFromFloored
	}
}
