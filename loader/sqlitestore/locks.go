package sqlitestore

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Run locks are flocks on files in the lock directory (LockDir), as pgstore
// uses advisory locks:
//
//   - publish: held by every run that may publish (every kind but
//     "extract"), so that one run at a time builds and swaps versions;
//   - source-…: one per source a run extracts, so that two runs never stage
//     the same source at once;
//   - run-TOKEN: held by each open run for as long as it is open; its token
//     is in the ledger, so a later run can tell a run whose process died
//     (the file is gone or lockable) from one still going.
//
// Publish and source lock files are never removed: removing a lock file
// that another process may have open would let two holders in.

// LockDir is the directory of the run locks of the store whose published
// file is path.
func LockDir(path string) string { return path + "-locks" }

// runLocks are the locks one run holds.
type runLocks struct {
	dir   string
	token string
	files []*os.File
}

// lockFile opens (creating) and locks the file name in dir; holder is
// written into it for the next one to be refused.
func lockFile(dir, name, holder string) (f *os.File, busy bool, err error) {
	path := filepath.Join(dir, name)
	f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, false, fmt.Errorf("opening lock %s: %w", path, err)
	}
	busy, err = tryFlock(f)
	if err != nil || busy {
		f.Close()
		if err != nil {
			return nil, false, fmt.Errorf("taking lock %s: %w", path, err)
		}
		return nil, true, nil
	}
	if holder != "" {
		if err := f.Truncate(0); err == nil {
			_, _ = f.WriteAt([]byte(holder+"\n"), 0)
		}
	}
	return f, false, nil
}

// holderOf says who holds a lock, as far as its file tells.
func holderOf(dir, name string) string {
	b, _ := os.ReadFile(filepath.Join(dir, name))
	if h := strings.TrimSpace(string(b)); h != "" {
		return " (" + h + ")"
	}
	return ""
}

// sourceLockName is the lock file of a source: readable, and unique even
// when the source id has characters a file name cannot.
func sourceLockName(id string) string {
	safe := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '_'
	}, id)
	if len(safe) > 64 {
		safe = safe[:64]
	}
	sum := sha256.Sum256([]byte(id))
	return "source-" + safe + "-" + hex.EncodeToString(sum[:4])
}

// acquireRunLocks takes the locks of a run of kind over sources, or none
// (ErrBusy when another run holds one).
func acquireRunLocks(dir, kind string, sources []string) (*runLocks, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating lock directory: %w", err)
	}
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	l := &runLocks{dir: dir, token: hex.EncodeToString(b)}
	host, _ := os.Hostname()
	holder := fmt.Sprintf("process %d on %s", os.Getpid(), host)
	take := func(name, what string) error {
		f, busy, err := lockFile(dir, name, holder)
		if err != nil {
			return err
		}
		if busy {
			return fmt.Errorf("%w: %s%s", ErrBusy, what, holderOf(dir, name))
		}
		l.files = append(l.files, f)
		return nil
	}
	if err := take("run-"+l.token, "run lock"); err != nil {
		l.release()
		return nil, err
	}
	if kind != "extract" {
		if err := take("publish", "another run is publishing"); err != nil {
			l.release()
			return nil, err
		}
	}
	for _, src := range sources {
		if err := take(sourceLockName(src), "another run is extracting source "+src); err != nil {
			l.release()
			return nil, err
		}
	}
	return l, nil
}

// release gives up the locks. The run's own token file goes too: nobody
// else waits for it.
func (l *runLocks) release() {
	if l == nil {
		return
	}
	if len(l.files) > 0 {
		_ = os.Remove(filepath.Join(l.dir, "run-"+l.token))
	}
	for _, f := range l.files {
		f.Close()
	}
	l.files = nil
}

// runAlive reports whether the process of the run with token still holds
// its run lock. A dead run's token file is removed.
func runAlive(dir, token string) (bool, error) {
	if token == "" {
		return false, nil
	}
	path := filepath.Join(dir, "run-"+token)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("checking run lock %s: %w", path, err)
	}
	defer f.Close()
	busy, err := tryFlock(f)
	if err != nil {
		return false, fmt.Errorf("checking run lock %s: %w", path, err)
	}
	if busy {
		return true, nil
	}
	_ = os.Remove(path)
	return false, nil
}
