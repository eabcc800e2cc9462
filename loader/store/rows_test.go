package store_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/careindex/careindex/loader/store"
)

// TestQueryRows reads every row in order, gives an empty slice for none,
// and returns the query's or a scan's error (closing the rows, so that
// the database can be closed at once).
func TestQueryRows(t *testing.T) {
	ctx := context.Background()
	db := sqliteDB(t, `CREATE TABLE v (n INTEGER, s TEXT);
		INSERT INTO v VALUES (3, 'c'), (1, 'a'), (2, 'b'), (4, NULL)`)
	db.SetMaxOpenConns(1) // a row set left open would block the next query
	tests := []struct {
		name    string
		query   string
		args    []any
		want    []int64
		wantErr string
	}{
		{"every row, in order", `SELECT n FROM v WHERE s IS NOT NULL ORDER BY n`, nil, []int64{1, 2, 3}, ""},
		{"arguments", `SELECT n FROM v WHERE n > ? ORDER BY n DESC`, []any{2}, []int64{4, 3}, ""},
		{"no rows", `SELECT n FROM v WHERE n > 10`, nil, []int64{}, ""},
		{"bad query", `SELECT n FROM nowhere`, nil, nil, "no such table"},
		{"a scan fails", `SELECT s FROM v ORDER BY n`, nil, nil, "converting"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := store.QueryRows(ctx, db, store.ScanInt64, tc.query, tc.args...)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one saying %q", err, tc.wantErr)
				}
				if got != nil {
					t.Errorf("rows %v returned with an error", got)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if tc.want != nil && (got == nil || !slices.Equal(got, tc.want)) {
				t.Errorf("got %#v, want %#v", got, tc.want)
			}
			// the rows were closed: the one connection is free
			free, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			var n int
			if err := db.QueryRowContext(free, `SELECT count(*) FROM v`).Scan(&n); err != nil || n != 4 {
				t.Errorf("after the query: %d rows, %v", n, err)
			}
		})
	}
}
