package folder

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Delivery describes one delivered file.
type Delivery struct {
	// Path is the file's path: the folder given to Find joined with Name.
	Path string
	// Name is the file's base name.
	Name string
	// Size is the file's size in bytes.
	Size int64
	// ModTime is the file's modification time.
	ModTime time.Time
}

// Find returns the newest regular file in dir whose base name matches the
// glob pattern (path/filepath.Match syntax, for example "patients_*.csv").
// See the package documentation for how "newest" is decided. The folder is
// not searched recursively; symbolic links to regular files count; names
// starting with a dot (often uploads in progress) are ignored unless the
// pattern itself starts with a dot. A zero-length file is returned like any
// other: judging whether a delivery is complete is for the caller.
//
// When nothing matches, the error wraps ErrNoDelivery and names the folder
// and the pattern.
func Find(dir, pattern string) (Delivery, error) {
	return find(dir, pattern, nil)
}

// find is Find, also passing over the names skip reports (nil skips none).
func find(dir, pattern string, skip func(name string) bool) (Delivery, error) {
	if strings.ContainsRune(pattern, '/') || strings.ContainsRune(pattern, filepath.Separator) {
		return Delivery{}, fmt.Errorf("folder %s: pattern %q: must match file names, not paths: %w", dir, pattern, filepath.ErrBadPattern)
	}
	if _, err := filepath.Match(pattern, ""); err != nil {
		return Delivery{}, fmt.Errorf("folder %s: pattern %q: %w", dir, pattern, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return Delivery{}, fmt.Errorf("folder %s: %w", dir, err)
	}
	var best Delivery
	found := false
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") && !strings.HasPrefix(pattern, ".") {
			continue
		}
		if ok, _ := filepath.Match(pattern, name); !ok {
			continue
		}
		if skip != nil && skip(name) {
			continue
		}
		path := filepath.Join(dir, name)
		info, err := os.Stat(path)
		if err != nil {
			// A file removed or a link left dangling since ReadDir is
			// not a delivery.
			if os.IsNotExist(err) {
				continue
			}
			return Delivery{}, fmt.Errorf("folder %s: %s: %w", dir, name, err)
		}
		if !info.Mode().IsRegular() {
			continue
		}
		d := Delivery{Path: path, Name: name, Size: info.Size(), ModTime: info.ModTime()}
		if !found || newer(d, best) {
			best, found = d, true
		}
	}
	if !found {
		return Delivery{}, fmt.Errorf("folder %s: no file matches %q: %w", dir, pattern, ErrNoDelivery)
	}
	return best, nil
}

// newer reports whether a is a newer delivery than b.
func newer(a, b Delivery) bool { return Newer(a.Name, a.ModTime, b.Name, b.ModTime) }

// Newer reports whether the delivery named a (modified at at) is newer
// than the one named b: natural name order (so that dates and sequence
// numbers in names decide), then modification time, then byte order. S3
// drops use the same rule.
func Newer(a string, at time.Time, b string, bt time.Time) bool {
	if c := NaturalCompare(a, b); c != 0 {
		return c > 0
	}
	if !at.Equal(bt) {
		return at.After(bt)
	}
	return a > b
}

// NaturalCompare compares two names with runs of ASCII digits compared by
// numeric value and everything else byte by byte. It returns -1, 0 or +1.
func NaturalCompare(a, b string) int {
	for a != "" && b != "" {
		da, db := isDigit(a[0]), isDigit(b[0])
		switch {
		case da && db:
			var na, nb string
			na, a = splitDigits(a)
			nb, b = splitDigits(b)
			na, nb = strings.TrimLeft(na, "0"), strings.TrimLeft(nb, "0")
			if len(na) != len(nb) {
				return cmpInt(len(na), len(nb))
			}
			if c := strings.Compare(na, nb); c != 0 {
				return c
			}
		case a[0] != b[0]:
			return cmpInt(int(a[0]), int(b[0]))
		default:
			a, b = a[1:], b[1:]
		}
	}
	return cmpInt(len(a), len(b))
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// splitDigits splits s after its leading run of digits.
func splitDigits(s string) (digits, rest string) {
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return s[:i], s[i:]
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
