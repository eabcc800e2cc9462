package pgstore_test

import (
	"context"
	"testing"

	"github.com/careindex/careindex/loader/pgstore/pgtest"
	"github.com/careindex/careindex/loader/store"
	"github.com/careindex/careindex/loader/storetest"
	"github.com/careindex/careindex/transform/match"
)

// TestMigrateTextKeys: a store that filed its blocking keys as text
// (careindex_ops.match_key) loses that table and its key signature on
// migrating, so that the next Rekey files every record again by hash;
// Candidates then finds the records under their text keys.
func TestMigrateTextKeys(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.NewDatabase(t, "careindex_keys")
	s := open(t, dsn)
	l := s.Links()
	rec := store.MatchRecord{OrgCode: "A81001", LocalID: "1", PatientID: 7, Record: match.Record{FamilyName: "X"}, Keys: []string{"old"}}
	if err := l.SaveMatch(ctx, []store.MatchRecord{rec}); err != nil {
		t.Fatal(err)
	}
	if err := l.SetMatchMeta(ctx, store.MatchMeta{Signature: "sig1"}); err != nil {
		t.Fatal(err)
	}
	// Make it a store with its keys in text and none by hash.
	for _, q := range []string{
		`DELETE FROM careindex_ops.match_key_h`,
		`CREATE TABLE careindex_ops.match_key (key text NOT NULL, org_code text NOT NULL, local_id text NOT NULL,
			PRIMARY KEY (key, org_code, local_id))`,
		`INSERT INTO careindex_ops.match_key VALUES ('old', 'A81001', '1')`,
	} {
		if _, err := s.DB().ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	s.Close()

	s = open(t, dsn) // migrates
	l = s.Links()
	var old *string
	if err := s.DB().QueryRowContext(ctx, `SELECT to_regclass('careindex_ops.match_key')::text`).Scan(&old); err != nil || old != nil {
		t.Errorf("text key table left: %v %v", old, err)
	}
	storetest.CheckRekeyAfterTextKeys(t, l)
}
