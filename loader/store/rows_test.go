package store_test

import (
	"context"
	"database/sql"
	"errors"
	"reflect"
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

// TestEachStaged: staged rows scan into persons and items; the callback's
// error comes back as it is, the query's says what was being read.
func TestEachStaged(t *testing.T) {
	ctx := context.Background()
	db := sqliteDB(t, `SELECT 1`)
	const person = `SELECT 7, 'gp-patients', 'p.csv', 12, 'D81001', 'L1', '9434765919', 'SMITH', 'ANN', '1980-01-02', 'female',
		'CB1 1AA', 'D81001', 1, 'objects', '1 HIGH ST', 'a@example.org', '01632 000000', 42`
	var got []store.StagedPerson
	if err := store.EachStagedPerson(ctx, db, func(p store.StagedPerson) error { got = append(got, p); return nil }, person); err != nil {
		t.Fatal(err)
	}
	var want store.StagedPerson
	want.DeliveryID, want.PatientID = 7, 42
	w := &want.Person
	w.SourceID, w.File, w.Line, w.OrgCode, w.LocalID, w.NHSNumber = "gp-patients", "p.csv", 12, "D81001", "L1", "9434765919"
	w.FamilyName, w.GivenName, w.DateOfBirth, w.Sex, w.Postcode, w.GPPractice = "SMITH", "ANN", "1980-01-02", "female", "CB1 1AA", "D81001"
	w.Sensitive, w.Objection, w.Address, w.Email, w.Phone = true, "objects", "1 HIGH ST", "a@example.org", "01632 000000"
	if len(got) != 1 || !reflect.DeepEqual(got[0], want) {
		t.Errorf("persons %+v, want %+v", got, want)
	}
	var items []store.StagedItem
	err := store.EachStagedItem(ctx, db, func(i store.StagedItem) error { items = append(items, i); return nil },
		`SELECT 8, 'gp-problems', 'i.csv', 3, 'D81001', 'L1', 'I9', 'problem', 'snomed', '123', 'Asthma', '2020-01-01', '', 'active', 42`)
	var wantItem store.StagedItem
	wantItem.DeliveryID, wantItem.PatientID = 8, 42
	wi := &wantItem.CareItem
	wi.SourceID, wi.File, wi.Line, wi.OrgCode, wi.LocalID, wi.ItemID = "gp-problems", "i.csv", 3, "D81001", "L1", "I9"
	wi.Kind, wi.CodeSystem, wi.Code, wi.Display, wi.StartDate, wi.Status = "problem", "snomed", "123", "Asthma", "2020-01-01", "active"
	if err != nil || len(items) != 1 || !reflect.DeepEqual(items[0], wantItem) {
		t.Errorf("items %+v, %v", items, err)
	}
	stop := errors.New("the loader stopped")
	if err := store.EachStagedPerson(ctx, db, func(store.StagedPerson) error { return stop }, person); err != stop {
		t.Errorf("callback error came back as %v", err)
	}
	if err := store.EachStagedItem(ctx, db, func(store.StagedItem) error { return nil }, `SELECT * FROM nowhere`); err == nil ||
		!strings.HasPrefix(err.Error(), "reading staged care items: ") {
		t.Errorf("query error %v", err)
	}
}
