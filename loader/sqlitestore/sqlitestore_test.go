package sqlitestore_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/careindex/careindex/loader/sqlitestore"
	"github.com/careindex/careindex/loader/store"
	"github.com/careindex/careindex/loader/storetest"
)

func open(t testing.TB, path string) *sqlitestore.Store {
	t.Helper()
	ctx := context.Background()
	s, err := sqlitestore.Open(ctx, path, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

// viewer opens the published file read-only, as a viewer does.
func viewer(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", sqlitestore.ViewerDSN(path))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func newBackend(t *testing.T) *storetest.Backend {
	path := filepath.Join(t.TempDir(), "careindex.db")
	s := open(t, path)
	v := viewer(t, path)
	return &storetest.Backend{
		Store:  s,
		Reopen: func(t *testing.T) store.Store { return open(t, path) },
		Published: func(t testing.TB) storetest.Snapshot {
			t.Helper()
			snap, err := storetest.ReadSnapshot(context.Background(), v, "")
			if err != nil {
				t.Fatal(err)
			}
			return snap
		},
		ErrBusy: sqlitestore.ErrBusy, ErrCheck: sqlitestore.ErrCheck, ErrNoPublication: sqlitestore.ErrNoPublication,
	}
}

func TestConformance(t *testing.T) {
	storetest.Run(t, newBackend)
}

func BenchmarkPublish(b *testing.B) {
	storetest.Bench(b, func(b *testing.B) store.Store { return open(b, filepath.Join(b.TempDir(), "careindex.db")) })
}

// publish puts a version of n patients (ids base+1…base+n), each with a
// location and an item, live.
func publish(t testing.TB, s store.Store, base int64, n int) int64 {
	t.Helper()
	ctx := context.Background()
	run, err := s.StartRun(ctx, store.RunInfo{Kind: "publish", Started: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	v, err := s.BeginVersion(ctx, run)
	if err != nil {
		t.Fatal(err)
	}
	for i := int64(1); i <= int64(n); i++ {
		p := base + i
		for _, err := range []error{
			v.AddPatient(store.Patient{PatientID: p, FamilyName: "F", Status: "shared"}),
			v.AddLocation(store.Location{PatientID: p, OrgCode: "A81001", LocalID: fmt.Sprintf("L%d", p)}),
			v.AddItem(store.Item{PatientID: p, OrgCode: "A81001", Kind: "problem", Code: "1", Status: "active"}),
		} {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := v.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Swap(ctx, store.Swap{RunID: run, Version: v.Number(), Patients: n, Locations: n, Items: n, Keep: 2}); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishRun(ctx, run, store.RunSucceeded, "", nil); err != nil {
		t.Fatal(err)
	}
	return v.Number()
}

func patientIDs(snap storetest.Snapshot) []int64 {
	var ids []int64
	for _, p := range snap.Patients {
		ids = append(ids, p.PatientID)
	}
	return ids
}

func checkVersion(t *testing.T, what string, snap storetest.Snapshot, base int64, n int, version int64) {
	t.Helper()
	var want []int64
	for i := int64(1); i <= int64(n); i++ {
		want = append(want, base+i)
	}
	if got := patientIDs(snap); !slices.Equal(got, want) || len(snap.Locations) != n || len(snap.Items) != n {
		t.Fatalf("%s: %d patients (%v…), %d locations, %d items; want version %d's %d of each",
			what, len(got), got[:min(3, len(got))], len(snap.Locations), len(snap.Items), version, n)
	}
	for _, l := range snap.Locations {
		if l.PatientID <= base || l.PatientID > base+int64(n) {
			t.Fatalf("%s: a location of patient %d, not of version %d", what, l.PatientID, version)
		}
	}
	live := 0
	for _, p := range snap.Publications {
		if p.Live {
			live++
			if p.Version != version {
				t.Fatalf("%s: version %d live, want %d", what, p.Version, version)
			}
		}
	}
	if live != 1 {
		t.Fatalf("%s: %d live publications", what, live)
	}
}

// A reader in a read transaction keeps seeing the version that was live
// when it started, whole, however many swaps (and retirements) commit
// meanwhile; once it starts a new transaction it sees the new one.
func TestReaderKeepsItsSnapshot(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "careindex.db")
	s := open(t, path)
	v1 := publish(t, s, 1000, 500)

	db := viewer(t, path)
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	snap, err := storetest.ReadSnapshot(ctx, tx, "")
	if err != nil {
		t.Fatal(err)
	}
	checkVersion(t, "before the swap", snap, 1000, 500, v1)

	v2 := publish(t, s, 2000, 700)
	snap, err = storetest.ReadSnapshot(ctx, tx, "")
	if err != nil {
		t.Fatal(err)
	}
	checkVersion(t, "in the old transaction after a swap", snap, 1000, 500, v1)
	// Keep 2: this swap deletes v1's rows; the reader still has them.
	v3 := publish(t, s, 3000, 300)
	snap, err = storetest.ReadSnapshot(ctx, tx, "")
	if err != nil {
		t.Fatal(err)
	}
	checkVersion(t, "in the old transaction after v1 was retired", snap, 1000, 500, v1)
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}

	snap, err = storetest.ReadSnapshot(ctx, db, "")
	if err != nil {
		t.Fatal(err)
	}
	checkVersion(t, "after the reader's transaction", snap, 3000, 300, v3)
	_ = v2
}

// A viewer of the published file sees the contract and nothing of the ops
// data, which lives in the ops file.
func TestPublishedFileHoldsNoOpsData(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "careindex.db")
	s := open(t, path)
	run, err := s.StartRun(ctx, store.RunInfo{Kind: "run", Sources: []string{"a"}, Started: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Links().SaveNHS(ctx, map[string]store.Link{"9434765919": {PatientID: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishRun(ctx, run, store.RunSucceeded, "", nil); err != nil {
		t.Fatal(err)
	}
	publish(t, s, 0, 3)

	names := func(db *sql.DB) []string {
		rows, err := db.QueryContext(ctx, `SELECT name FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%' ORDER BY name`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var n string
			if err := rows.Scan(&n); err != nil {
				t.Fatal(err)
			}
			out = append(out, n)
		}
		return out
	}
	got := names(viewer(t, path))
	want := []string{"care_item", "data_care_item", "data_organisation", "data_patient", "data_patient_merge", "data_patient_nhs",
		"data_record_location", "data_record_location_key", "live", "organisation", "patient", "patient_merge", "publication",
		"record_location", "version"}
	if !slices.Equal(got, want) {
		t.Fatalf("published file objects:\n got %v\nwant %v", got, want)
	}
	ops := viewer(t, sqlitestore.OpsPath(path))
	for _, table := range []string{"run", "run_source", "quarantine", "staged_person", "nhs_link", "local_link", "review", "decision",
		"patient_change"} {
		if !slices.Contains(names(ops), table) {
			t.Fatalf("the ops file has no %s table", table)
		}
	}
	var n int
	if err := ops.QueryRowContext(ctx, `SELECT count(*) FROM nhs_link`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("ops file nhs_link: %d, %v", n, err)
	}
	var mode string
	for _, p := range []string{path, sqlitestore.OpsPath(path)} {
		if err := viewer(t, p).QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
			t.Fatalf("%s journal mode %q, %v", p, mode, err)
		}
	}
	// A viewer can open the published file after the store has closed.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	snap, err := storetest.ReadSnapshot(ctx, viewer(t, path), "")
	if err != nil || len(snap.Patients) != 3 {
		t.Fatalf("reading a closed store: %d patients, %v", len(snap.Patients), err)
	}
	if _, err := os.Stat(sqlitestore.LockDir(path)); err != nil {
		t.Fatalf("lock directory: %v", err)
	}
}
