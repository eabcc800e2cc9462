package folder

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/careindex/careindex/extractors/manifest"
)

// maxSuffix bounds the names tried for one archived file.
const maxSuffix = 10000

// These are variables so that tests can make them fail as another file
// system would.
var (
	linkFile   = os.Link
	renameFile = os.Rename
)

// suffixed returns name for n == 0, else name with "~n" before its
// extension: patients_20261124~1.csv.
func suffixed(name string, n int) string {
	if n == 0 {
		return name
	}
	ext := filepath.Ext(name)
	if ext == name {
		ext = ""
	}
	return strings.TrimSuffix(name, ext) + "~" + strconv.Itoa(n) + ext
}

// Archive moves the delivery's file into archiveDir (created, with its
// parents, if missing) and returns the file's new path. It never overwrites:
// when archiveDir already holds the name, the file is archived as
// name~1.ext, name~2.ext and so on (patients_20261124~1.csv). On the same
// file system the move is a hard link then an unlink (a rename where links
// are refused), so the file is never missing from both folders; across file
// systems it is copied (created exclusively, synced, modification time
// kept) and then removed. If the original cannot be removed, the copy is
// removed and an error returned, so the file is in exactly one place.
//
// Archive moves only the one file; Completeness.Archive also moves its
// marker and manifest.
func Archive(d Delivery, archiveDir string) (string, error) {
	dst, err := moveInto(d.Path, archiveDir)
	if err != nil {
		return "", fmt.Errorf("archive %s: %w", d.Path, err)
	}
	return dst, nil
}

func moveInto(src, archiveDir string) (string, error) {
	info, err := os.Lstat(src)
	if err != nil {
		return "", err
	}
	if info.IsDir() {
		return "", fmt.Errorf("is a directory")
	}
	if err := os.MkdirAll(archiveDir, 0o750); err != nil {
		return "", err
	}
	name := filepath.Base(src)
	for n := 0; n < maxSuffix; n++ {
		dst := filepath.Join(archiveDir, suffixed(name, n))
		err := linkFile(src, dst)
		switch {
		case err == nil:
			return dst, removeOriginal(src, dst)
		case errors.Is(err, fs.ErrExist):
			continue
		case errors.Is(err, syscall.EXDEV):
			// Another file system: copy.
		default:
			// Links refused here (a file system without them, or
			// protected_hardlinks for a file this user does not own):
			// rename, into a name that is free.
			if _, serr := os.Lstat(dst); serr == nil {
				continue
			} else if !errors.Is(serr, fs.ErrNotExist) {
				return "", serr
			}
			err = renameFile(src, dst)
			if err == nil {
				return dst, nil
			}
			if !errors.Is(err, syscall.EXDEV) {
				return "", err
			}
		}
		err = copyExclusive(src, dst)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		return dst, removeOriginal(src, dst)
	}
	return "", fmt.Errorf("%s: no free name in %s after %d tries", name, archiveDir, maxSuffix)
}

// removeOriginal removes src once dst holds it; if that fails it removes
// dst again, so the file stays in exactly one place.
func removeOriginal(src, dst string) error {
	if err := os.Remove(src); err != nil {
		_ = os.Remove(dst)
		return err
	}
	return nil
}

// copyExclusive copies src to dst, which must not exist, keeping the
// modification time. On error dst is removed (unless it existed before).
func copyExclusive(src, dst string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	info, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, info.Mode().Perm()|0o600)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = os.Remove(dst)
		}
	}()
	if _, err = io.CopyBuffer(out, in, make([]byte, 1<<20)); err != nil {
		_ = out.Close()
		return err
	}
	if err = out.Sync(); err != nil {
		_ = out.Close()
		return err
	}
	if err = out.Close(); err != nil {
		return err
	}
	return os.Chtimes(dst, info.ModTime(), info.ModTime())
}

// Archive moves a processed delivery into c.ArchiveDir (see the package
// function Archive: created if missing, never overwriting), together with
// its marker files (F+Marker and F-without-extension+Marker, those present)
// and the manifests (matching Manifest) that list it once none of the files
// they list is left in the delivery's folder, so that a manifest shared by
// several sources' files stays until the last of them is archived. It
// returns the new paths, the delivery's first. A manifest that cannot be
// parsed is left where it is.
//
// Call it only once the delivery's processing has been recorded (so a
// failure here can never cause it to be read twice). If the delivery itself
// cannot be moved nothing is; an error moving a marker or manifest is
// returned after the rest have been moved.
func (c Completeness) Archive(d Delivery) ([]string, error) {
	if c.ArchiveDir == "" {
		return nil, fmt.Errorf("archive %s: no archive folder configured: %w", d.Path, ErrBadCompleteness)
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("archive %s: %w", d.Path, err)
	}
	first, err := Archive(d, c.ArchiveDir)
	if err != nil {
		return nil, err
	}
	moved := []string{first}
	dir := filepath.Dir(d.Path)
	var errs []error
	move := func(p string) {
		dst, err := moveInto(p, c.ArchiveDir)
		if err != nil {
			errs = append(errs, fmt.Errorf("archive %s: %w", p, err))
			return
		}
		moved = append(moved, dst)
	}
	for _, n := range c.MarkerNames(d.Name) {
		p := filepath.Join(dir, n)
		if info, err := os.Stat(p); err == nil && info.Mode().IsRegular() {
			move(p)
		}
	}
	if c.Manifest != "" {
		candidates, err := c.manifests(dir)
		if err != nil {
			errs = append(errs, fmt.Errorf("archive manifests of %s: %w", d.Path, err))
		}
		for _, cand := range candidates {
			m, err := manifest.ParseFile(cand.Path)
			if err != nil || !m.Lists(d.Name) || anyLeft(dir, m) {
				continue
			}
			move(cand.Path)
		}
	}
	return moved, errors.Join(errs...)
}

// anyLeft reports whether any file m lists is still in dir.
func anyLeft(dir string, m *manifest.Manifest) bool {
	for _, f := range m.Files {
		if _, err := os.Lstat(filepath.Join(dir, f.Name)); !errors.Is(err, fs.ErrNotExist) {
			return true
		}
	}
	return false
}
