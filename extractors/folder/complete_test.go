package folder_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/careindex/careindex/extractors/folder"
	"github.com/careindex/careindex/extractors/manifest"
)

// The delivery testdata is package manifest's: two CSV files and manifests
// agreeing with them.
var manifestData = filepath.Join("..", "manifest", "testdata")

var now = time.Date(2026, 11, 24, 6, 0, 0, 0, time.UTC)

// dropFile writes a file into dir with the given modification time.
func dropFile(t *testing.T, dir, name string, data []byte, mtime time.Time) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	return p
}

// copyIn copies a file of the manifest testdata into dir.
func copyIn(t *testing.T, dir, from, name string, mtime time.Time) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(manifestData, from))
	if err != nil {
		t.Fatal(err)
	}
	return dropFile(t, dir, name, data, mtime)
}

// deliveryDrop returns a drop folder holding the two CSV files of the
// manifest testdata, written an hour before now.
func deliveryDrop(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, n := range []string{"patients_20261124.csv", "problems_20261124.csv"} {
		copyIn(t, dir, filepath.Join("delivery", n), n, now.Add(-time.Hour))
	}
	return dir
}

func found(t *testing.T, c folder.Completeness, dir, pattern string) folder.Delivery {
	t.Helper()
	d, err := c.Find(dir, pattern)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// checkErr compares a Check error with the expectation: want nil, or a
// sentinel and substrings of the message.
func checkErr(t *testing.T, err, want error, says ...string) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("Check: %v", err)
		}
		return
	}
	if !errors.Is(err, want) {
		t.Fatalf("Check error = %v, want %v", err, want)
	}
	for _, s := range says {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}
}

func TestCompletenessZeroAcceptsAll(t *testing.T) {
	dir := deliveryDrop(t)
	d := found(t, folder.Completeness{}, dir, "patients_*.csv")
	if err := (folder.Completeness{}).Check(context.Background(), dir, d, now); err != nil {
		t.Errorf("Check = %v, want nil", err)
	}
}

func TestCompletenessValidate(t *testing.T) {
	tests := []struct {
		name string
		c    folder.Completeness
		want error
	}{
		{"marker with a path", folder.Completeness{Marker: "../x.done"}, folder.ErrBadCompleteness},
		{"marker dot", folder.Completeness{Marker: "."}, folder.ErrBadCompleteness},
		{"manifest with a path", folder.Completeness{Manifest: "sub/*.json"}, folder.ErrBadCompleteness},
		{"manifest bad glob", folder.Completeness{Manifest: "manifest_[.json"}, filepath.ErrBadPattern},
		{"negative interval", folder.Completeness{StableFor: -time.Second}, folder.ErrBadCompleteness},
	}
	dir := deliveryDrop(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.c.Validate(); !errors.Is(err, tt.want) {
				t.Errorf("Validate = %v, want %v", err, tt.want)
			}
			if _, err := tt.c.Find(dir, "*.csv"); !errors.Is(err, tt.want) {
				t.Errorf("Find = %v, want %v", err, tt.want)
			}
			if err := tt.c.Check(context.Background(), dir, folder.Delivery{}, now); !errors.Is(err, tt.want) {
				t.Errorf("Check = %v, want %v", err, tt.want)
			}
		})
	}
	ok := folder.Completeness{Marker: ".done", Manifest: "manifest_*.json", StableFor: time.Minute}
	if err := ok.Validate(); err != nil {
		t.Errorf("Validate(%+v) = %v", ok, err)
	}
}

func TestCompletenessFindPassesOverCompanions(t *testing.T) {
	dir := t.TempDir()
	old := now.Add(-time.Hour)
	dropFile(t, dir, "patients_20261124.csv", []byte("id\n"), old)
	dropFile(t, dir, "patients_20261124.csv.done", nil, old)
	dropFile(t, dir, "patients_20261125.done", nil, old)
	dropFile(t, dir, "patients_manifest_20261126.json", []byte("{}"), old)
	c := folder.Completeness{Marker: ".done", Manifest: "*manifest_*.json"}
	if d := found(t, c, dir, "patients_*"); d.Name != "patients_20261124.csv" {
		t.Errorf("Find = %s, want patients_20261124.csv", d.Name)
	}
	// Plain folder.Find would take the newest name, a marker or manifest.
	if d, _ := folder.Find(dir, "patients_*"); d.Name == "patients_20261124.csv" {
		t.Errorf("folder.Find = %s: the test does not test anything", d.Name)
	}
	if _, err := c.Find(dir, "patients_*.done"); !errors.Is(err, folder.ErrNoDelivery) {
		t.Errorf("Find of markers only: %v, want ErrNoDelivery", err)
	}
}

func TestCheckStableFor(t *testing.T) {
	c := folder.Completeness{StableFor: 2 * time.Minute}
	ctx := context.Background()
	tests := []struct {
		name  string
		mtime time.Time
		after func(t *testing.T, p string) // between Find and Check
		want  error
		says  []string
	}{
		{name: "unchanged for longer", mtime: now.Add(-5 * time.Minute)},
		{name: "unchanged for exactly the interval", mtime: now.Add(-2 * time.Minute)},
		{name: "changed recently", mtime: now.Add(-30 * time.Second), want: folder.ErrIncomplete,
			says: []string{"patients_20261124.csv", "changed within the last 2m0s", "30s ago"}},
		{name: "modified in the future", mtime: now.Add(time.Minute), want: folder.ErrIncomplete, says: []string{"1m0s in the future"}},
		{name: "grew since Find", mtime: now.Add(-time.Hour), want: folder.ErrIncomplete, says: []string{"changed since it was found", "still being written"},
			after: func(t *testing.T, p string) {
				f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				f.WriteString("100199\n")
				f.Close()
				os.Chtimes(p, now.Add(-time.Hour), now.Add(-time.Hour))
			}},
		{name: "touched since Find", mtime: now.Add(-time.Hour), want: folder.ErrIncomplete, says: []string{"changed since it was found"},
			after: func(t *testing.T, p string) { os.Chtimes(p, now.Add(-time.Minute), now.Add(-time.Minute)) }},
		{name: "gone since Find", mtime: now.Add(-time.Hour), want: fs.ErrNotExist,
			after: func(t *testing.T, p string) { os.Remove(p) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			p := dropFile(t, dir, "patients_20261124.csv", []byte("PatientID\n100101\n"), tt.mtime)
			d := found(t, c, dir, "patients_*.csv")
			if tt.after != nil {
				tt.after(t, p)
			}
			err := c.Check(ctx, dir, d, now)
			checkErr(t, err, tt.want, tt.says...)
			if tt.want != nil && tt.want != folder.ErrIncomplete && errors.Is(err, folder.ErrIncomplete) {
				t.Errorf("error %v should not be ErrIncomplete", err)
			}
		})
	}
}

func TestCheckMarker(t *testing.T) {
	c := folder.Completeness{Marker: ".done"}
	ctx := context.Background()
	fileTime := now.Add(-time.Hour)
	tests := []struct {
		name    string
		markers map[string]time.Time // marker name -> mtime
		dirs    []string             // directories named like markers
		want    error
		says    []string
	}{
		{name: "no marker", want: folder.ErrIncomplete,
			says: []string{"folder ", "patients_20261124.csv: no .done marker yet (patients_20261124.csv.done or patients_20261124.done)"}},
		{name: "marker after the full name", markers: map[string]time.Time{"patients_20261124.csv.done": fileTime}},
		{name: "marker after the name without extension", markers: map[string]time.Time{"patients_20261124.done": fileTime.Add(time.Second)}},
		{name: "marker older than the file", markers: map[string]time.Time{"patients_20261124.csv.done": fileTime.Add(-time.Second)},
			want: folder.ErrIncomplete, says: []string{"marker patients_20261124.csv.done is older than the file"}},
		{name: "an old and a new marker", markers: map[string]time.Time{
			"patients_20261124.csv.done": fileTime.Add(-time.Hour), "patients_20261124.done": fileTime}},
		{name: "marker of another file", markers: map[string]time.Time{"patients_20261123.csv.done": fileTime}, want: folder.ErrIncomplete},
		{name: "marker is a folder", dirs: []string{"patients_20261124.csv.done"}, want: folder.ErrIncomplete},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			dropFile(t, dir, "patients_20261124.csv", []byte("PatientID\n"), fileTime)
			for n, mt := range tt.markers {
				dropFile(t, dir, n, nil, mt)
			}
			for _, n := range tt.dirs {
				os.Mkdir(filepath.Join(dir, n), 0o700)
			}
			d := found(t, c, dir, "patients_*")
			checkErr(t, c.Check(ctx, dir, d, now), tt.want, tt.says...)
		})
	}
}

func TestCheckManifest(t *testing.T) {
	ctx := context.Background()
	c := folder.Completeness{Manifest: "manifest_*"}
	type mf struct {
		name, from string // from: a file of the manifest testdata, or content
		mtime      time.Time
	}
	good := "manifest_20261124.json"
	tests := []struct {
		name      string
		manifests []mf
		remove    []string // delivery files to remove
		pattern   string
		want      error
		says      []string
	}{
		{name: "no manifest", want: folder.ErrIncomplete, says: []string{`no manifest matching "manifest_*" lists it yet`}},
		{name: "manifest for something else", manifests: []mf{{"manifest_20261123.json", `{"files":[{"name":"patients_20261123.csv","rows":1,"sha256":"` + strings.Repeat("a", 64) + `"}]}`, now}},
			want: folder.ErrIncomplete},
		{name: "JSON manifest agrees", manifests: []mf{{good, good, now}}},
		{name: "CSV manifest agrees", manifests: []mf{{"manifest_20261124.csv", "manifest_20261124.csv", now}}},
		{name: "other source's file of the delivery", pattern: "problems_*.csv", manifests: []mf{{good, good, now}}},
		{name: "a listed file missing", manifests: []mf{{good, good, now}}, remove: []string{"problems_20261124.csv"},
			want: folder.ErrManifestMismatch, says: []string{"patients_20261124.csv: manifest manifest_20261124.json: the delivery disagrees with it: problems_20261124.csv: listed but not delivered"}},
		{name: "row count disagrees", manifests: []mf{{good, `{"files":[{"name":"patients_20261124.csv","rows":18,"sha256":"d8616bc4d15fdba7f42c6db2b7bd350469fef4bb77f1be1a2aa53b41335b6d13"}]}`, now}},
			want: folder.ErrManifestMismatch, says: []string{"patients_20261124.csv: has 17 data rows; the manifest says 18"}},
		{name: "newest manifest listing the file applies", manifests: []mf{
			{"manifest_20261124.json", `{"files":[{"name":"patients_20261124.csv","rows":17,"sha256":"` + strings.Repeat("0", 64) + `"}]}`, now},
			{"manifest_20261124_2.json", good, now},
		}},
		{name: "manifest that cannot be parsed", manifests: []mf{{good, good, now}, {"manifest_20261125.json", `{"files": [`, now}},
			want: folder.ErrBadManifest, says: []string{"manifest manifest_20261125.json: not valid JSON"}},
		{name: "older unparseable manifest not read", manifests: []mf{{good, good, now}, {"manifest_20261101.json", `{"files": [`, now}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := deliveryDrop(t)
			for _, m := range tt.manifests {
				if _, err := os.Stat(filepath.Join(manifestData, m.from)); err == nil {
					copyIn(t, dir, m.from, m.name, m.mtime)
				} else {
					dropFile(t, dir, m.name, []byte(m.from), m.mtime)
				}
			}
			pattern := tt.pattern
			if pattern == "" {
				pattern = "patients_*"
			}
			d := found(t, c, dir, pattern)
			for _, n := range tt.remove {
				os.Remove(filepath.Join(dir, n))
			}
			err := c.Check(ctx, dir, d, now)
			checkErr(t, err, tt.want, tt.says...)
			if tt.want == folder.ErrManifestMismatch {
				var me *manifest.MismatchError
				if !errors.As(err, &me) || len(me.Problems) != 1 {
					t.Errorf("error %v: want one problem in a *manifest.MismatchError", err)
				}
			}
		})
	}
}

func TestCheckManifestCountsWithTheSourceFormat(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	copyIn(t, dir, "delivery/encounters_20261124.tsv", "encounters_20261124.tsv", now)
	copyIn(t, dir, "delivery/patients_20261124.xlsx", "patients_20261124.xlsx", now)
	copyIn(t, dir, "manifest_formats.json", "manifest_20261124.json", now)
	c := folder.Completeness{Manifest: "manifest_*.json"}
	d := found(t, c, dir, "patients_*.xlsx")
	checkErr(t, c.Check(ctx, dir, d, now), folder.ErrManifestMismatch, "has 2 data rows; the manifest says 1", "has 3 data rows; the manifest says 2")
	c.Count.Delimited.Delimiter = '\t'
	c.Count.Sheet = "Patients"
	c.Count.XLSX.HeaderRow = 3
	checkErr(t, c.Check(ctx, dir, d, now), nil)
}

func TestCheckAllConditions(t *testing.T) {
	ctx := context.Background()
	dir := deliveryDrop(t)
	copyIn(t, dir, "manifest_20261124.json", "manifest_20261124.json", now)
	c := folder.Completeness{Marker: ".done", Manifest: "manifest_*.json", StableFor: 2 * time.Hour}
	d := found(t, c, dir, "patients_*")
	checkErr(t, c.Check(ctx, dir, d, now), folder.ErrIncomplete, "changed within the last 2h0m0s")
	checkErr(t, c.Check(ctx, dir, d, now.Add(time.Hour)), folder.ErrIncomplete, "no .done marker yet")
	dropFile(t, dir, "patients_20261124.done", nil, now)
	checkErr(t, c.Check(ctx, dir, d, now.Add(time.Hour)), nil)
}

func TestArchive(t *testing.T) {
	dir := t.TempDir()
	archive := filepath.Join(t.TempDir(), "archive", "d81001") // created on demand
	mtime := now.Add(-time.Hour)
	var got []string
	for i, content := range []string{"first\n", "second\n", "third\n"} {
		dropFile(t, dir, "patients_20261124.csv", []byte(content), mtime)
		d, err := folder.Find(dir, "patients_*.csv")
		if err != nil {
			t.Fatal(err)
		}
		p, err := folder.Archive(d, archive)
		if err != nil {
			t.Fatalf("Archive %d: %v", i, err)
		}
		got = append(got, filepath.Base(p))
		if _, err := os.Stat(d.Path); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("original still there: %v", err)
		}
		data, err := os.ReadFile(p)
		if err != nil || string(data) != content {
			t.Errorf("archived %s = %q, %v; want %q", p, data, err, content)
		}
		if info, _ := os.Stat(p); !info.ModTime().Equal(mtime) {
			t.Errorf("archived mtime %v, want %v", info.ModTime(), mtime)
		}
	}
	if want := []string{"patients_20261124.csv", "patients_20261124~1.csv", "patients_20261124~2.csv"}; !slices.Equal(got, want) {
		t.Errorf("archived as %q, want %q", got, want)
	}
	if data, _ := os.ReadFile(filepath.Join(archive, "patients_20261124.csv")); string(data) != "first\n" {
		t.Errorf("first archived file overwritten: %q", data)
	}

	t.Run("no extension", func(t *testing.T) {
		dropFile(t, dir, "PATIENTS", []byte("x"), mtime)
		dropFile(t, archive, "PATIENTS", []byte("y"), mtime)
		p, err := folder.Archive(folder.Delivery{Path: filepath.Join(dir, "PATIENTS"), Name: "PATIENTS"}, archive)
		if err != nil || filepath.Base(p) != "PATIENTS~1" {
			t.Errorf("Archive = %s, %v; want PATIENTS~1", p, err)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		p := filepath.Join(dir, "nope.csv")
		_, err := folder.Archive(folder.Delivery{Path: p, Name: "nope.csv"}, archive)
		if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), p) {
			t.Errorf("Archive error %v, want ErrNotExist naming the file", err)
		}
	})
	t.Run("archive folder is a file", func(t *testing.T) {
		dropFile(t, dir, "a.csv", []byte("x"), mtime)
		blocker := dropFile(t, t.TempDir(), "archive", []byte("x"), mtime)
		if _, err := folder.Archive(folder.Delivery{Path: filepath.Join(dir, "a.csv"), Name: "a.csv"}, blocker); err == nil {
			t.Error("Archive into a file: no error")
		}
		if _, err := os.Stat(filepath.Join(dir, "a.csv")); err != nil {
			t.Errorf("the delivery should stay: %v", err)
		}
	})
}

func ls(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// TestCompletenessArchive follows a delivery of two sources' files under one
// manifest: the first source archives its file and marker while the manifest
// stays for the second, whose check still finds the first file (in the
// archive); the second archive takes the manifest too. A corrected re-send
// under the same names is then checked against its own manifest.
func TestCompletenessArchive(t *testing.T) {
	ctx := context.Background()
	dir := deliveryDrop(t)
	archive := filepath.Join(t.TempDir(), "done")
	copyIn(t, dir, "manifest_20261124.json", "manifest_20261124.json", now.Add(-time.Hour))
	dropFile(t, dir, "patients_20261124.csv.done", nil, now)
	dropFile(t, dir, "problems_20261124.done", nil, now)
	dropFile(t, dir, "other.done", nil, now)
	c := folder.Completeness{Marker: ".done", Manifest: "manifest_*.json", ArchiveDir: archive}

	patients := found(t, c, dir, "patients_*")
	checkErr(t, c.Check(ctx, dir, patients, now), nil)
	moved, err := c.Archive(patients)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{filepath.Join(archive, "patients_20261124.csv"), filepath.Join(archive, "patients_20261124.csv.done")}; !slices.Equal(moved, want) {
		t.Errorf("Archive moved %q, want %q", moved, want)
	}
	if got, want := ls(t, dir), []string{"manifest_20261124.json", "other.done", "problems_20261124.csv", "problems_20261124.done"}; !slices.Equal(got, want) {
		t.Errorf("drop folder holds %q, want %q", got, want)
	}

	problems := found(t, c, dir, "problems_*")
	checkErr(t, c.Check(ctx, dir, problems, now), nil)
	// Without the archive folder the first file is missing.
	noArchive := c
	noArchive.ArchiveDir = ""
	checkErr(t, noArchive.Check(ctx, dir, problems, now), folder.ErrManifestMismatch, "patients_20261124.csv: listed but not delivered")
	if _, err := noArchive.Archive(problems); !errors.Is(err, folder.ErrBadCompleteness) {
		t.Errorf("Archive without a folder: %v", err)
	}
	moved, err = c.Archive(problems)
	if err != nil {
		t.Fatal(err)
	}
	if len(moved) != 3 || filepath.Base(moved[2]) != "manifest_20261124.json" {
		t.Errorf("Archive moved %q, want the file, its marker and the manifest", moved)
	}
	if got := ls(t, dir); !slices.Equal(got, []string{"other.done"}) {
		t.Errorf("drop folder holds %q, want only other.done", got)
	}

	// A corrected re-send of the patients file under the same name.
	p := dropFile(t, dir, "patients_20261124.csv", []byte("PatientID\n100101\n"), now)
	sum, err := folder.Hash(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	dropFile(t, dir, "manifest_20261124_2.json", []byte(`{"files":[{"name":"patients_20261124.csv","rows":1,"sha256":"`+sum+`"}]}`), now)
	dropFile(t, dir, "patients_20261124.csv.done", nil, now)
	resent := found(t, c, dir, "patients_*")
	checkErr(t, c.Check(ctx, dir, resent, now), nil)
	moved, err = c.Archive(resent)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"patients_20261124~1.csv", "patients_20261124.csv~1.done", "manifest_20261124_2.json"}
	var got []string
	for _, m := range moved {
		got = append(got, filepath.Base(m))
	}
	if !slices.Equal(got, want) {
		t.Errorf("Archive moved %q, want %q", got, want)
	}
}
