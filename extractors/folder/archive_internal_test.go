package folder

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// withFS makes links and renames fail with the given errors for one test,
// as on another file system (EXDEV: a different device; EPERM: links
// refused).
func withFS(t *testing.T, linkErr, renameErr error) {
	t.Helper()
	oldLink, oldRename := linkFile, renameFile
	t.Cleanup(func() { linkFile, renameFile = oldLink, oldRename })
	if linkErr != nil {
		linkFile = func(o, n string) error { return &os.LinkError{Op: "link", Old: o, New: n, Err: linkErr} }
	}
	if renameErr != nil {
		renameFile = func(o, n string) error { return &os.LinkError{Op: "rename", Old: o, New: n, Err: renameErr} }
	}
}

func TestArchiveOtherFileSystems(t *testing.T) {
	mtime := time.Date(2026, 11, 24, 1, 0, 0, 0, time.UTC)
	tests := []struct {
		name              string
		linkErr, renameEr error
	}{
		{"links refused: rename", syscall.EPERM, nil},
		{"another device: copy", syscall.EXDEV, nil},
		{"links refused, another device: copy", syscall.EPERM, syscall.EXDEV},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			withFS(t, tt.linkErr, tt.renameEr)
			dir, archive := t.TempDir(), t.TempDir()
			var got []string
			for _, content := range []string{"one\n", "two\n"} {
				p := filepath.Join(dir, "patients_20261124.csv")
				if err := os.WriteFile(p, []byte(content), 0o640); err != nil {
					t.Fatal(err)
				}
				if err := os.Chtimes(p, mtime, mtime); err != nil {
					t.Fatal(err)
				}
				dst, err := Archive(Delivery{Path: p, Name: "patients_20261124.csv"}, archive)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, filepath.Base(dst))
				if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("original still there: %v", err)
				}
				data, err := os.ReadFile(dst)
				info, _ := os.Stat(dst)
				if err != nil || string(data) != content || !info.ModTime().Equal(mtime) {
					t.Errorf("archived %s: %q %v mtime %v; want %q mtime %v", dst, data, err, info.ModTime(), content, mtime)
				}
			}
			if got[0] != "patients_20261124.csv" || got[1] != "patients_20261124~1.csv" {
				t.Errorf("archived as %q", got)
			}
		})
	}
}

func TestArchiveOtherErrors(t *testing.T) {
	withFS(t, syscall.EPERM, syscall.EACCES)
	dir := t.TempDir()
	p := filepath.Join(dir, "a.csv")
	if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Archive(Delivery{Path: p, Name: "a.csv"}, t.TempDir()); !errors.Is(err, syscall.EACCES) {
		t.Errorf("Archive error %v, want EACCES", err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Errorf("the delivery should stay: %v", err)
	}
}

func TestSuffixed(t *testing.T) {
	for _, tt := range []struct {
		name string
		n    int
		want string
	}{
		{"p.csv", 0, "p.csv"},
		{"p.csv", 3, "p~3.csv"},
		{"p.tar.gz", 1, "p.tar~1.gz"},
		{"p", 1, "p~1"},
		{".done", 1, ".done~1"},
	} {
		if got := suffixed(tt.name, tt.n); got != tt.want {
			t.Errorf("suffixed(%q, %d) = %q, want %q", tt.name, tt.n, got, tt.want)
		}
	}
}
