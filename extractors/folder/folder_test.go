package folder_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/careindex/careindex/extractors/folder"
	"github.com/careindex/careindex/extractors/rowsource"
)

func TestFind(t *testing.T) {
	drop := filepath.Join("testdata", "drop")
	tests := []struct {
		name    string
		dir     string
		pattern string
		want    string // expected Name; "" when an error is expected
		err     error
	}{
		{"newest by date in the name", drop, "patients_*.csv", "patients_20261124.csv", nil},
		{"directories and non-matching names ignored", drop, "patients_2026112?.csv", "patients_20261124.csv", nil},
		{"other source in the same folder", drop, "problems_*.csv", "problems_20261124.csv", nil},
		{"numbers compared by value", drop, "seq_*.csv", "seq_10.csv", nil},
		{"hidden files ignored", drop, "*patients_20261127.csv", "", folder.ErrNoDelivery},
		{"hidden files found when asked for", drop, ".patients_*.csv", ".patients_20261127.csv", nil},
		{"no match", drop, "clients_*.txt", "", folder.ErrNoDelivery},
		{"empty folder", filepath.Join("testdata", "empty"), "*.csv", "", folder.ErrNoDelivery},
		{"missing folder", filepath.Join("testdata", "nope"), "*.csv", "", os.ErrNotExist},
		{"bad pattern", drop, "patients_[.csv", "", filepath.ErrBadPattern},
		{"pattern with a path", drop, "../drop/*.csv", "", filepath.ErrBadPattern},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := folder.Find(tt.dir, tt.pattern)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("Find error = %v, want %v", err, tt.err)
				}
				if !strings.Contains(err.Error(), tt.dir) {
					t.Errorf("error %q does not name the folder", err)
				}
				if errors.Is(tt.err, folder.ErrNoDelivery) && !strings.Contains(err.Error(), tt.pattern) {
					t.Errorf("error %q does not name the pattern", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Find: %v", err)
			}
			if d.Name != tt.want || d.Path != filepath.Join(tt.dir, tt.want) {
				t.Errorf("Find = %s (%s), want %s", d.Name, d.Path, tt.want)
			}
			info, err := os.Stat(d.Path)
			if err != nil {
				t.Fatal(err)
			}
			if d.Size != info.Size() || !d.ModTime.Equal(info.ModTime()) {
				t.Errorf("Size %d ModTime %v, want %d %v", d.Size, d.ModTime, info.Size(), info.ModTime())
			}
		})
	}
}

func TestFindTieBreaksOnModTime(t *testing.T) {
	base := time.Date(2026, 11, 24, 1, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		files map[string]time.Time
		want  string
	}{
		{"later mtime wins a name tie", map[string]time.Time{"p_0012.csv": base.Add(time.Hour), "p_12.csv": base}, "p_0012.csv"},
		{"later mtime wins the other way", map[string]time.Time{"p_0012.csv": base, "p_12.csv": base.Add(time.Hour)}, "p_12.csv"},
		{"same mtime: byte order decides", map[string]time.Time{"p_0012.csv": base, "p_12.csv": base}, "p_12.csv"},
		{"name beats mtime", map[string]time.Time{"p_20261123.csv": base.Add(time.Hour), "p_20261124.csv": base}, "p_20261124.csv"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, mtime := range tt.files {
				path := filepath.Join(dir, name)
				if err := os.WriteFile(path, []byte("x\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Chtimes(path, mtime, mtime); err != nil {
					t.Fatal(err)
				}
			}
			d, err := folder.Find(dir, "p_*.csv")
			if err != nil {
				t.Fatal(err)
			}
			if d.Name != tt.want {
				t.Errorf("Find = %s, want %s", d.Name, tt.want)
			}
		})
	}
}

func TestFindFollowsSymlinks(t *testing.T) {
	dir := t.TempDir()
	target, err := filepath.Abs(filepath.Join("testdata", "drop", "patients_20261124.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(dir, "patients_20261125.csv")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "missing"), filepath.Join(dir, "patients_20261126.csv")); err != nil {
		t.Fatal(err)
	}
	d, err := folder.Find(dir, "patients_*.csv")
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "patients_20261125.csv" || d.Size != 24 {
		t.Errorf("Find = %+v, want the linked file", d)
	}
}

func TestHash(t *testing.T) {
	tests := []struct {
		name string
		path string
		want string
		err  error
	}{
		{"file", filepath.Join("testdata", "drop", "patients_20261124.csv"), "ee3303e6541750e4d671670960a1a5c7ddb0e4808814a22a82ef45727c5859a6", nil},
		{"small file", filepath.Join("testdata", "drop", "seq_9.csv"), "87428fc522803d31065e7bce3cf03fe475096631e5e07bbd7a0fde60c4cf25c7", nil},
		{"missing", filepath.Join("testdata", "drop", "nope.csv"), "", os.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := folder.Hash(context.Background(), tt.path)
			if !errors.Is(err, tt.err) {
				t.Fatalf("Hash error = %v, want %v", err, tt.err)
			}
			if err != nil {
				if !strings.Contains(err.Error(), tt.path) {
					t.Errorf("error %q does not name the file", err)
				}
				return
			}
			if got != tt.want {
				t.Errorf("Hash = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestHashCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := folder.Hash(ctx, filepath.Join("testdata", "drop", "patients_20261124.csv")); !errors.Is(err, context.Canceled) {
		t.Errorf("Hash error = %v, want context.Canceled", err)
	}
}

func digest(rows ...[]string) string {
	h := folder.NewHasher()
	for _, r := range rows {
		h.Add(r)
	}
	return h.Sum()
}

func TestHasher(t *testing.T) {
	tests := []struct {
		name string
		a, b [][]string
		same bool
	}{
		{"same rows", [][]string{{"id", "name"}, {"1", "Ann"}}, [][]string{{"id", "name"}, {"1", "Ann"}}, true},
		{"values do not run together", [][]string{{"ab", "c"}}, [][]string{{"a", "bc"}}, false},
		{"rows do not run together", [][]string{{"a"}, {"b"}}, [][]string{{"a", "b"}}, false},
		{"empty value counts", [][]string{{"a", ""}}, [][]string{{"a"}}, false},
		{"order matters", [][]string{{"1"}, {"2"}}, [][]string{{"2"}, {"1"}}, false},
		{"no rows vs one empty row", nil, [][]string{{}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := digest(tt.a...), digest(tt.b...)
			if (a == b) != tt.same {
				t.Errorf("digests %s and %s: same = %v, want %v", a, b, a == b, tt.same)
			}
			if len(a) != 64 {
				t.Errorf("digest %q is not 64 hex digits", a)
			}
		})
	}
}

// sliceReader is a rowsource.Reader over rows held in memory.
type sliceReader struct {
	header []string
	rows   [][]string
	i      int
}

func (s *sliceReader) Header() []string { return s.header }
func (s *sliceReader) Next(context.Context) bool {
	s.i++
	return s.i <= len(s.rows)
}
func (s *sliceReader) Row() rowsource.Row {
	return rowsource.Row{File: "query:test", Line: s.i + 1, Values: s.rows[s.i-1]}
}
func (s *sliceReader) Err() error   { return nil }
func (s *sliceReader) Close() error { return nil }

func TestHashingReader(t *testing.T) {
	header := []string{"id", "name"}
	rows := [][]string{{"1", "Ann"}, {"2", "Bob"}}
	hr := folder.NewHashingReader(&sliceReader{header: header, rows: rows})
	var seen []rowsource.Row
	for hr.Next(context.Background()) {
		seen = append(seen, hr.Row())
	}
	if len(seen) != 2 || seen[1].Values[1] != "Bob" {
		t.Fatalf("rows passed through: %+v", seen)
	}
	if got, want := hr.Sum(), digest(header, rows[0], rows[1]); got != want {
		t.Errorf("Sum = %s, want %s", got, want)
	}
	if err := hr.Close(); err != nil {
		t.Error(err)
	}
}
