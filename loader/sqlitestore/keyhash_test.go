package sqlitestore_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/careindex/careindex/loader/store"
	"github.com/careindex/careindex/loader/storetest"
	"github.com/careindex/careindex/transform/match"
)

// TestMigrateTextKeys: an ops file that filed its blocking keys as text
// (schema version 3, ops.match_key) loses that table and its key
// signature on opening, so that the next Rekey files every record again by
// hash; Candidates then finds the records under their text keys.
func TestMigrateTextKeys(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "careindex.db")
	s := open(t, path)
	l := s.Links()
	rec := store.MatchRecord{OrgCode: "A81001", LocalID: "1", PatientID: 7, Record: match.Record{FamilyName: "X"}, Keys: []string{"old"}}
	if err := l.SaveMatch(ctx, []store.MatchRecord{rec}); err != nil {
		t.Fatal(err)
	}
	if err := l.SetMatchMeta(ctx, store.MatchMeta{Signature: "sig1"}); err != nil {
		t.Fatal(err)
	}
	// Make it a version 3 store, with its keys in text and none by hash.
	for _, q := range []string{
		`DELETE FROM ops.match_key_h`,
		`CREATE TABLE ops.match_key (key TEXT NOT NULL, org_code TEXT NOT NULL, local_id TEXT NOT NULL,
			PRIMARY KEY (key, org_code, local_id)) WITHOUT ROWID`,
		`INSERT INTO ops.match_key VALUES ('old', 'A81001', '1')`,
		`PRAGMA main.user_version = 3`,
		`PRAGMA ops.user_version = 3`,
	} {
		if _, err := s.DB().ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	s.Close()

	s = open(t, path) // migrates
	l = s.Links()
	var n int
	if err := s.DB().QueryRowContext(ctx, `SELECT count(*) FROM ops.sqlite_master WHERE name = 'match_key'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("text key table left: %d %v", n, err)
	}
	storetest.CheckRekeyAfterTextKeys(t, l)
}
