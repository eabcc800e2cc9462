package main_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// configure rewrites the region's config, failing if old is not there once.
func (r *region) configure(t *testing.T, old, new string) {
	t.Helper()
	b, err := os.ReadFile(r.config)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), old); n != 1 {
		t.Fatalf("config: %q found %d times", old, n)
	}
	if err := os.WriteFile(r.config, []byte(strings.Replace(string(b), old, new, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestDoneMarkerAndArchive(t *testing.T) {
	t.Parallel()
	r := newRegion(t)
	r.configure(t, `from: {folder: {path: drops/d81001, pattern: "patients_*.csv"}}`,
		`from: {folder: {path: drops/d81001, pattern: "patients_*.csv", complete: {marker: .done}, archive: archive/d81001}}`)
	// No marker yet: the practice's file may still be being written.
	res := r.careindex(t, "run")
	if res.code != 1 || !strings.Contains(res.stderr, "no .done marker yet") {
		t.Fatalf("exit %d, want 1 saying the delivery is incomplete:\n%s", res.code, res.stderr)
	}
	if n := r.scalar(t, `SELECT count(*) FROM careindex.record_location WHERE org_code = 'D81001'`); n != 0 {
		t.Fatal("an incomplete delivery was read")
	}
	os.WriteFile(filepath.Join(r.dir, "drops", "d81001", "patients_20261124.csv.done"), nil, 0o644)
	r.mustRun(t, "run")
	if n := r.scalar(t, `SELECT count(*) FROM careindex.record_location WHERE org_code = 'D81001'`); n == 0 {
		t.Fatal("the complete delivery was not published")
	}
	if _, err := os.Stat(filepath.Join(r.dir, "archive", "d81001", "patients_20261124.csv")); err != nil {
		t.Errorf("the processed delivery was not archived: %v", err)
	}
	// Archived: the next run finds nothing new, and that is not a failure.
	if res := r.mustRun(t, "run"); !strings.Contains(res.stdout, "unchanged") {
		t.Errorf("the run after archiving: %s", res.stdout)
	}
	if n := r.scalar(t, `SELECT count(*) FROM careindex.organisation WHERE stale`); n != 0 {
		t.Errorf("%d organisations stale after archiving", n)
	}
}

func TestManifestMismatchFailsTheDelivery(t *testing.T) {
	t.Parallel()
	r := newRegion(t)
	r.configure(t, `from: {folder: {path: drops/d81001, pattern: "problems_*.csv"}}`,
		`from: {folder: {path: drops/d81001, pattern: "problems_*.csv", complete: {manifest: "manifest_*.csv"}}}`)
	file := filepath.Join(r.dir, "drops", "d81001", "problems_20261124.csv")
	b, _ := os.ReadFile(file)
	sum := sha256.Sum256(b)
	lines := strings.Count(strings.TrimRight(string(b), "\r\n"), "\n") // data rows
	manifest := filepath.Join(r.dir, "drops", "d81001", "manifest_20261124.csv")
	os.WriteFile(manifest, []byte(fmt.Sprintf("name,rows,sha256\nproblems_20261124.csv,%d,%s\n", lines+5, hex.EncodeToString(sum[:]))), 0o644)
	res := r.careindex(t, "run")
	if res.code != 1 || !strings.Contains(res.stderr, "disagrees") || !strings.Contains(res.stderr, "problems_20261124.csv") {
		t.Fatalf("exit %d, want 1 naming the manifest mismatch:\n%s", res.code, res.stderr)
	}
	if n := r.scalar(t, `SELECT count(*) FROM careindex.care_item WHERE org_code = 'D81001'`); n != 0 {
		t.Error("care items of a delivery that disagrees with its manifest were published")
	}
	os.WriteFile(manifest, []byte(fmt.Sprintf("name,rows,sha256\nproblems_20261124.csv,%d,%s\n", lines, hex.EncodeToString(sum[:]))), 0o644)
	r.mustRun(t, "run")
	if n := r.scalar(t, `SELECT count(*) FROM careindex.care_item WHERE org_code = 'D81001'`); n == 0 {
		t.Error("the delivery matching its corrected manifest was not published")
	}
}
