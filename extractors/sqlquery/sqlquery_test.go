package sqlquery_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	_ "github.com/lib/pq"

	"github.com/careindex/careindex/extractors/rowsource"
	"github.com/careindex/careindex/extractors/sqlquery"
)

const defaultDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// openDB connects to the test PostgreSQL and creates a uniquely named
// schema loaded from testdata/fixture.sql, dropped when the test ends. It
// fails the test, never skips it, when the server cannot be reached.
func openDB(t *testing.T) (*sql.DB, string) {
	t.Helper()
	dsn := os.Getenv("CAREINDEX_TEST_PG_DSN")
	if dsn == "" {
		dsn = defaultDSN
	}
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		t.Fatalf("sql.Open(%q): %v", redact(dsn), err)
	}
	t.Cleanup(func() { db.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		t.Fatalf("PostgreSQL is not reachable at %s: %v\n"+
			"Start it (for example `service postgresql start` or `pg_ctlcluster 15 main start`), "+
			"make sure database \"test\" exists for user postgres with trust auth on 127.0.0.1:5432, "+
			"or point CAREINDEX_TEST_PG_DSN at another server.", redact(dsn), err)
	}
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	schema := "careindex_sqlquery_" + hex.EncodeToString(b[:])
	script, err := os.ReadFile(filepath.Join("testdata", "fixture.sql"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, strings.ReplaceAll(string(script), "{{schema}}", schema)); err != nil {
		t.Fatalf("load fixture: %v", err)
	}
	t.Cleanup(func() {
		if _, err := db.Exec("DROP SCHEMA " + schema + " CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return db, schema
}

// redact hides a password in a URL-form DSN.
func redact(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		return u.Redacted()
	}
	return dsn
}

func readAll(t *testing.T, r rowsource.Reader) ([]rowsource.Row, error) {
	t.Helper()
	var rows []rowsource.Row
	for r.Next(context.Background()) {
		rows = append(rows, r.Row())
	}
	return rows, r.Err()
}

func TestOpen(t *testing.T) {
	db, schema := openDB(t)
	tests := []struct {
		name   string
		query  string
		args   []any
		header []string
		rows   [][]string
		errs   []error
		raw    []string
	}{
		{
			name:   "types converted to strings",
			query:  "SELECT id, nhs_no, surname, dob, seen AT TIME ZONE 'UTC' AS seen_utc, admitted, weight, ratio, big, active, note FROM " + schema + ".patients ORDER BY id",
			header: []string{"id", "nhs_no", "surname", "dob", "seen_utc", "admitted", "weight", "ratio", "big", "active", "note"},
			rows: [][]string{
				{"1", "5002977278", "Pennington", "1948-03-14", "2026-11-24T10:30:00.25Z", "2026-11-24", "61.50", "0.1", "9007199254740993", "true", ""},
				{"2", "", "O'Neil, Jr", "", "", "2026-11-24T08:15:00Z", "", "-0.00000025", "", "false", ""},
				{"3", "7408594116", "Zoë", "2001-01-23", "", "", "70.00", "", "", "", "\uFFFDA"},
			},
			errs: []error{nil, nil, sqlquery.ErrInvalidEncoding},
			raw: []string{
				"1,5002977278,Pennington,1948-03-14,2026-11-24T10:30:00.25Z,2026-11-24,61.50,0.1,9007199254740993,true,",
				`2,,"O'Neil, Jr",,,2026-11-24T08:15:00Z,,-0.00000025,,false,`,
				"",
			},
		},
		{
			name:   "NUL byte",
			query:  `SELECT 1 AS id, '\x410042'::bytea AS note`,
			header: []string{"id", "note"},
			rows:   [][]string{{"1", "A\uFFFDB"}},
			errs:   []error{sqlquery.ErrInvalidEncoding},
		},
		{
			name:   "placeholders",
			query:  "SELECT id AS \"PatientID\", surname FROM " + schema + ".patients WHERE id = $1",
			args:   []any{2},
			header: []string{"PatientID", "surname"},
			rows:   [][]string{{"2", "O'Neil, Jr"}},
			errs:   []error{nil},
		},
		{
			name:   "empty result",
			query:  "SELECT id FROM " + schema + ".patients WHERE false",
			header: []string{"id"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := sqlquery.Open(context.Background(), db, "d81001-patients", tt.query, tt.args...)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer func() {
				if err := r.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			}()
			if got := r.Header(); !slices.Equal(got, tt.header) {
				t.Errorf("Header() = %q, want %q", got, tt.header)
			}
			rows, err := readAll(t, r)
			if err != nil {
				t.Fatalf("Err() = %v", err)
			}
			if len(rows) != len(tt.rows) {
				t.Fatalf("got %d rows, want %d", len(rows), len(tt.rows))
			}
			for i, row := range rows {
				if row.File != "query:d81001-patients" || row.Line != i+2 {
					t.Errorf("row %d at %s:%d, want query:d81001-patients:%d", i, row.File, row.Line, i+2)
				}
				if !slices.Equal(row.Values, tt.rows[i]) {
					t.Errorf("row %d: Values = %q, want %q", i, row.Values, tt.rows[i])
				}
				if (tt.errs[i] == nil) != (row.Err == nil) || !errors.Is(row.Err, tt.errs[i]) {
					t.Errorf("row %d: Err = %v, want %v", i, row.Err, tt.errs[i])
				}
				if row.Err != nil && !strings.Contains(row.Err.Error(), fmt.Sprintf(`query:d81001-patients: line %d: column "note"`, row.Line)) {
					t.Errorf("row %d: Err %q does not name the source, line and column", i, row.Err)
				}
				if tt.raw != nil && tt.raw[i] != "" && row.Raw != tt.raw[i] {
					t.Errorf("row %d: Raw = %q, want %q", i, row.Raw, tt.raw[i])
				}
			}
		})
	}
}

func TestTimestampWithZone(t *testing.T) {
	db, schema := openDB(t)
	r, err := sqlquery.Open(context.Background(), db, "tz", "SELECT seen FROM "+schema+".patients WHERE id = 1")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rows, err := readAll(t, r)
	if err != nil || len(rows) != 1 {
		t.Fatalf("rows %v, err %v", rows, err)
	}
	got, err := time.Parse(time.RFC3339Nano, rows[0].Values[0])
	if err != nil {
		t.Fatalf("%q is not RFC 3339: %v", rows[0].Values[0], err)
	}
	if want := time.Date(2026, 11, 24, 10, 30, 0, 250e6, time.UTC); !got.Equal(want) {
		t.Errorf("seen = %v, want %v", got, want)
	}
}

func TestStreamErrors(t *testing.T) {
	db, _ := openDB(t)
	t.Run("bad SQL fails Open with the source name", func(t *testing.T) {
		_, err := sqlquery.Open(context.Background(), db, "broken", "SELEKT 1")
		if err == nil || !strings.HasPrefix(err.Error(), "query:broken: ") {
			t.Fatalf("Open error = %v", err)
		}
	})
	t.Run("no result columns", func(t *testing.T) {
		_, err := sqlquery.Open(context.Background(), db, "ddl", "CREATE TEMP TABLE IF NOT EXISTS t_sqlquery_nocols (x int)")
		if !errors.Is(err, sqlquery.ErrNoColumns) {
			t.Fatalf("Open error = %v, want ErrNoColumns", err)
		}
	})
	t.Run("error part way through ends the stream", func(t *testing.T) {
		r, err := sqlquery.Open(context.Background(), db, "div", "SELECT 10 / (3 - n) AS x FROM generate_series(1, 5) AS n")
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		rows, err := readAll(t, r)
		if err == nil || !strings.HasPrefix(err.Error(), "query:div: ") {
			t.Fatalf("Err() = %v, want a division-by-zero error naming the source", err)
		}
		if len(rows) > 2 {
			t.Errorf("got %d rows before the error, want at most 2", len(rows))
		}
	})
	t.Run("cancelled context", func(t *testing.T) {
		r, err := sqlquery.Open(context.Background(), db, "series", "SELECT n FROM generate_series(1, 100000) AS n")
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		ctx, cancel := context.WithCancel(context.Background())
		if !r.Next(ctx) {
			t.Fatal("first Next returned false")
		}
		cancel()
		if r.Next(ctx) {
			t.Fatal("Next returned true after cancel")
		}
		if !errors.Is(r.Err(), context.Canceled) {
			t.Errorf("Err() = %v, want context.Canceled", r.Err())
		}
	})
}

func TestLargeResultStreams(t *testing.T) {
	db, _ := openDB(t)
	const n = 200000
	r, err := sqlquery.Open(context.Background(), db, "series", "SELECT n, md5(n::text) FROM generate_series(1, $1) AS n", n)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	count := 0
	for r.Next(context.Background()) {
		count++
		if row := r.Row(); row.Line != count+1 || row.Err != nil {
			t.Fatalf("row %d: line %d err %v", count, row.Line, row.Err)
		}
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	if count != n {
		t.Errorf("read %d rows, want %d", count, n)
	}
}

func TestFormat(t *testing.T) {
	london, err := time.LoadLocation("Europe/London")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		in   any
		want string
	}{
		{nil, ""},
		{"text", "text"},
		{[]byte("bytes"), "bytes"},
		{int64(-42), "-42"},
		{3.0, "3"},
		{1e21, "1000000000000000000000"},
		{0.1, "0.1"},
		{true, "true"},
		{time.Date(2026, 3, 29, 0, 0, 0, 0, time.UTC), "2026-03-29"},
		{time.Date(2026, 3, 29, 0, 0, 0, 0, london), "2026-03-29"},
		{time.Date(2026, 7, 1, 9, 5, 0, 0, london), "2026-07-01T09:05:00+01:00"},
		{time.Date(2026, 7, 1, 0, 0, 0, 1, time.UTC), "2026-07-01T00:00:00.000000001Z"},
	}
	for _, tt := range tests {
		if got := sqlquery.Format(tt.in); got != tt.want {
			t.Errorf("Format(%#v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
