package store_test

import (
	"context"
	"database/sql"
	"slices"
	"testing"

	"github.com/careindex/careindex/loader/store"
)

// TestVersionsToRetire: the newest keep-1 kept versions stay beside the
// live one; older kept ones, rolled-back and superseded ones go, newest
// first; building, live and retired versions are never listed.
func TestVersionsToRetire(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		states []string // state of versions 1, 2, …
		keep   int
		want   []int64
	}{
		{"nothing published", nil, 3, nil},
		{"only live", []string{"live"}, 3, nil},
		{"kept within the limit", []string{"kept", "kept", "live"}, 3, nil},
		{"oldest kept goes", []string{"kept", "kept", "kept", "live"}, 3, []int64{1}},
		{"keep 1 counts as 2", []string{"kept", "kept", "live"}, 1, []int64{1}},
		{"rolled back and superseded go whatever keep says",
			[]string{"kept", "superseded", "rolled_back", "live"}, 10, []int64{3, 2}},
		{"retired and building are left alone",
			[]string{"retired", "kept", "kept", "live", "building"}, 2, []int64{2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := sqliteDB(t, `CREATE TABLE version (version INTEGER PRIMARY KEY, state TEXT)`)
			for i, st := range tc.states {
				if _, err := db.ExecContext(ctx, `INSERT INTO version VALUES (?, ?)`, i+1, st); err != nil {
					t.Fatal(err)
				}
			}
			got, err := store.VersionsToRetire(ctx, db, "version", tc.keep)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("retire %v, want %v", got, tc.want)
			}
		})
	}
	if _, err := store.VersionsToRetire(ctx, closedDB(t), "version", 3); err == nil {
		t.Error("no error from a closed database")
	}
}

func closedDB(t *testing.T) *sql.DB {
	db := sqliteDB(t, `SELECT 1`)
	db.Close()
	return db
}
