package sqlitestore_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/careindex/careindex/loader/store"
	"github.com/careindex/careindex/transform/match"
)

// TestMigrateFromVersion1: an ops file made before the match state (schema
// version 1) gains its tables and columns, and keeps its rows.
func TestMigrateFromVersion1(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "careindex.db")
	s := open(t, path)
	run, err := s.StartRun(ctx, store.RunInfo{Kind: "run", Started: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.FinishRun(ctx, run, store.RunSucceeded, "", []store.SourceOutcome{{SourceID: "a", OrgCode: "A81001", Status: "new", RowsIn: 1, Loaded: 1}}); err != nil {
		t.Fatal(err)
	}
	// Make it a version 1 store again.
	for _, q := range []string{
		`ALTER TABLE ops.run_source DROP COLUMN duplicates`,
		`ALTER TABLE ops.staged_person DROP COLUMN email`,
		`ALTER TABLE ops.staged_person DROP COLUMN phone`,
		`ALTER TABLE ops.review DROP COLUMN assigned_patient_id`,
		`ALTER TABLE ops.review DROP COLUMN evidence`,
		`DROP TABLE ops.match_record`,
		`DROP TABLE ops.match_key_h`,
		`DROP TABLE ops.match_meta`,
		`PRAGMA main.user_version = 1`,
		`PRAGMA ops.user_version = 1`,
	} {
		if _, err := s.DB().ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	s.Close()

	s = open(t, path) // migrates
	st, err := s.Status(ctx, 10)
	if err != nil || len(st.Runs) != 1 || st.Runs[0].Sources[0].Duplicates != 0 || st.Runs[0].Sources[0].Loaded != 1 {
		t.Fatalf("status after migrating: %+v %v", st, err)
	}
	run, err = s.StartRun(ctx, store.RunInfo{Kind: "run", Started: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	o := store.SourceOutcome{SourceID: "a", OrgCode: "A81001", Status: "new", RowsIn: 2, Loaded: 2, Duplicates: 1}
	if err := s.FinishRun(ctx, run, store.RunSucceeded, "", []store.SourceOutcome{o}); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.Status(ctx, 1); st.Runs[0].Sources[0] != o {
		t.Errorf("outcome %+v, want %+v", st.Runs[0].Sources[0], o)
	}
	l := s.Links()
	if err := l.AddReviews(ctx, []store.Review{{RunID: run, SourceID: "a", OrgCode: "A81001", LocalID: "1", PatientID: 1, Assigned: 2,
		Reason: "possible match", Evidence: "{}"}}); err != nil {
		t.Fatal(err)
	}
	if err := l.SaveMatch(ctx, []store.MatchRecord{{OrgCode: "A81001", LocalID: "1", PatientID: 2, Record: match.Record{FamilyName: "X"},
		Keys: []string{"k"}}}); err != nil {
		t.Fatal(err)
	}
	if set, err := l.Candidates(ctx, []string{"k"}, 10); err != nil || len(set.ByKey["k"]) != 1 {
		t.Errorf("Candidates after migrating: %+v %v", set, err)
	}
}
