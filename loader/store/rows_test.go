package store_test

import (
	"context"
	"database/sql"
	"errors"
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

// TestQueryMapAndGroups reads two-column rows into maps: the later row
// wins in QueryMap, ScanGrouped keeps every value in order, ScanLinks
// fills links; an error from the row function stops EachRow.
func TestQueryMapAndGroups(t *testing.T) {
	ctx := context.Background()
	db := sqliteDB(t, `CREATE TABLE l (k TEXT, p INTEGER, d TEXT);
		INSERT INTO l VALUES ('a', 1, '1970-01-01'), ('b', 2, ''), ('a', 3, '1980-02-03')`)
	const q = `SELECT k, p FROM l ORDER BY rowid`
	m, err := store.QueryMap[string, int64](ctx, db, q)
	if err != nil || len(m) != 2 || m["a"] != 3 || m["b"] != 2 {
		t.Errorf("QueryMap: %v, %v", m, err)
	}
	if m, err := store.QueryMap[string, int64](ctx, db, q+` LIMIT 0`); err != nil || m == nil || len(m) != 0 {
		t.Errorf("QueryMap of no rows: %#v, %v", m, err)
	}
	g := map[string][]int64{}
	if err := store.EachRow(ctx, db, store.ScanGrouped(g), q); err != nil || len(g) != 2 || !slices.Equal(g["a"], []int64{1, 3}) || !slices.Equal(g["b"], []int64{2}) {
		t.Errorf("ScanGrouped: %v, %v", g, err)
	}
	links := map[string]store.Link{}
	if err := store.EachRow(ctx, db, store.ScanLinks(links), `SELECT k, p, d FROM l ORDER BY rowid`); err != nil ||
		links["a"] != (store.Link{PatientID: 3, DateOfBirth: "1980-02-03"}) || links["b"] != (store.Link{PatientID: 2}) {
		t.Errorf("ScanLinks: %v, %v", links, err)
	}
	stop := errors.New("stop")
	calls := 0
	err = store.EachRow(ctx, db, func(*sql.Rows) error { calls++; return stop }, q)
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("EachRow after a failing row: %v, %d calls", err, calls)
	}
}
