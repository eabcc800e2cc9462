package store_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"

	"github.com/careindex/careindex/loader/store"
)

func TestInTx(t *testing.T) {
	ctx := context.Background()
	db := sqliteDB(t, `CREATE TABLE t (v INTEGER)`)
	errBoom := errors.New("boom")
	tests := []struct {
		name    string
		fail    error
		wantErr error
		rows    int // rows in t afterwards
	}{
		{name: "commits when fn succeeds", rows: 1},
		{name: "rolls back and returns fn's error", fail: errBoom, wantErr: errBoom, rows: 1},
		{name: "commits again", rows: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := store.InTx(ctx, db, func(tx *sql.Tx) error {
				if _, err := tx.ExecContext(ctx, `INSERT INTO t VALUES (1)`); err != nil {
					return err
				}
				return tc.fail
			})
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("InTx: %v, want %v", err, tc.wantErr)
			}
			var n int
			if err := db.QueryRowContext(ctx, `SELECT count(*) FROM t`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != tc.rows {
				t.Fatalf("%d rows after, want %d", n, tc.rows)
			}
		})
	}
}
