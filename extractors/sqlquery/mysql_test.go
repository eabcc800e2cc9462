package sqlquery_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/careindex/careindex/extractors/sqlquery"
)

// These tests run sqlquery on MariaDB/MySQL export databases through
// github.com/go-sql-driver/mysql and check that the strings it produces are
// the ones it produces for the same data in PostgreSQL (see TestOpen).
//
// The driver needs three DSN parameters for that (mysqlParityDSN):
//
//   - parseTime=true: without it DATETIME and TIMESTAMP come back as text in
//     MySQL's own form ("2026-11-24 08:15:00"), not PostgreSQL's
//     ("2026-11-24T08:15:00Z", or "2026-11-24" at midnight). DATE columns come
//     out as "2006-01-02" either way.
//   - loc=UTC (the driver's default, stated for clarity): DATETIME, which has
//     no zone, is read as UTC, as lib/pq reads a timestamp without time zone.
//   - time_zone='+00:00' (URL-encoded: time_zone=%27%2B00%3A00%27): the server
//     sends TIMESTAMP values in the session time zone; it must be the zone
//     loc names, or every TIMESTAMP is off by the server's UTC offset.
//
// What no DSN parameter changes (see TestMySQLDifferences): BOOLEAN/TINYINT(1)
// come out as "1"/"0", not "true"/"false"; a zero date '0000-00-00' comes
// out as "0001-01-01" with parseTime=true ("0000-00-00" without).

const defaultMySQLDSN = "root@tcp(127.0.0.1:3306)/"

// mysqlParity sets the DSN parameters that make MySQL values come out as
// PostgreSQL's do.
func mysqlParity(cfg *mysql.Config) {
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	cfg.Params["time_zone"] = "'+00:00'"
}

// mysqlRaw sets parseTime=false: temporal values as the server's text.
func mysqlRaw(cfg *mysql.Config) {
	cfg.ParseTime = false
	cfg.Loc = time.UTC
}

// openMySQL connects to the test MariaDB/MySQL ($CAREINDEX_TEST_MYSQL_DSN,
// default root with no password on 127.0.0.1:3306), creates a database
// careindex_test_<random> loaded with the fixture below, and drops it when
// the test ends. It returns a function that opens a connection pool to that
// database with the given DSN settings. It fails the test, never skips it,
// when the server cannot be reached.
func openMySQL(t *testing.T) (connect func(set func(*mysql.Config)) *sql.DB) {
	t.Helper()
	base := os.Getenv("CAREINDEX_TEST_MYSQL_DSN")
	if base == "" {
		base = defaultMySQLDSN
	}
	cfg, err := mysql.ParseDSN(base)
	if err != nil {
		t.Fatalf("CAREINDEX_TEST_MYSQL_DSN: %v", err)
	}
	redacted := cfg.Clone()
	if redacted.Passwd != "" {
		redacted.Passwd = "xxxxx"
	}
	open := func(c *mysql.Config) *sql.DB {
		connector, err := mysql.NewConnector(c)
		if err != nil {
			t.Fatalf("mysql connector: %v", err)
		}
		db := sql.OpenDB(connector)
		t.Cleanup(func() { db.Close() })
		return db
	}
	admin := cfg.Clone()
	admin.DBName = ""
	admin.MultiStatements = true
	mysqlParity(admin)
	adb := open(admin)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := adb.PingContext(ctx); err != nil {
		t.Fatalf("MariaDB/MySQL is not reachable at %s: %v\n"+
			"Start the local MariaDB (as root): start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd\n"+
			"It must accept root with an empty password on 127.0.0.1:3306, or point CAREINDEX_TEST_MYSQL_DSN "+
			"at another server (go-sql-driver form, e.g. user:password@tcp(host:3306)/).",
			redacted.FormatDSN(), err)
	}
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	name := "careindex_test_" + hex.EncodeToString(b[:])
	if _, err := adb.ExecContext(ctx, "CREATE DATABASE "+name+" CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		if _, err := adb.Exec("DROP DATABASE " + name); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	loader := admin.Clone()
	loader.DBName = name
	ldb := open(loader)
	if _, err := ldb.ExecContext(ctx, mysqlFixture); err != nil {
		t.Fatalf("load fixture: %v", err)
	}
	if err := insertGenerated(ctx, ldb); err != nil {
		t.Fatalf("load generated rows: %v", err)
	}
	return func(set func(*mysql.Config)) *sql.DB {
		c := cfg.Clone()
		c.DBName = name
		set(c)
		return open(c)
	}
}

// mysqlFixture holds the rows of testdata/fixture.sql (the PostgreSQL
// fixture), column for column in the nearest MySQL types. It is loaded in
// a session with time_zone '+00:00'.
const mysqlFixture = `
CREATE TABLE patients (
    id        INT PRIMARY KEY,
    nhs_no    VARCHAR(10),
    surname   VARCHAR(40),
    dob       DATE,
    seen      TIMESTAMP(2) NULL DEFAULT NULL,
    admitted  DATETIME,
    weight    DECIMAL(6,2),
    ratio     DOUBLE,
    big       BIGINT,
    active    BOOLEAN,
    note      BLOB
) DEFAULT CHARSET=utf8mb4;
INSERT INTO patients VALUES
    (1, '5002977278', 'Pennington', '1948-03-14', '2026-11-24 10:30:00.25', '2026-11-24 00:00:00', 61.50, 0.1, 9007199254740993, TRUE, NULL),
    (2, NULL, 'O''Neil, Jr', NULL, NULL, '2026-11-24 08:15:00', NULL, -2.5e-7, NULL, FALSE, NULL),
    (3, '7408594116', 'Zoë', '2001-01-23', NULL, NULL, 70, NULL, NULL, NULL, x'ff41');
CREATE TABLE people (
    id       INT PRIMARY KEY,
    nhs_no   CHAR(10),
    name     VARCHAR(80),
    dob      DATE,
    seen     DATETIME(3),
    weight   DECIMAL(8,3),
    score    DOUBLE
) DEFAULT CHARSET=utf8mb4;
`

// generatedRows is how many rows the people table gets.
const generatedRows = 3000

var names = []string{"Zoë D’Arcy", "Ó Súilleabháin", "Nguyễn Thị Minh Khai", "王秀英", "Smith 🙂", "O'Brien, \"Jr\""}

// generatedRow returns row i of the people table as the values to insert
// and the strings sqlquery should produce (as for PostgreSQL).
func generatedRow(i int) (args []any, want []string) {
	want = make([]string, 7)
	args = make([]any, 7)
	args[0], want[0] = i, fmt.Sprint(i)
	if i%5 != 0 {
		nhs := fmt.Sprintf("%010d", 4000000000+i)
		args[1], want[1] = nhs, nhs
	}
	name := names[i%len(names)]
	args[2], want[2] = name, name
	if i%7 != 0 {
		d := time.Date(1940, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, i*11)
		args[3], want[3] = d.Format(time.DateOnly), d.Format(time.DateOnly)
	}
	if i%3 != 0 {
		ts := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * 1001 * time.Millisecond)
		args[4] = ts.Format("2006-01-02 15:04:05.000")
		if i%6 == 1 {
			ts = ts.Truncate(24 * time.Hour) // midnight: a date alone
			args[4] = ts.Format("2006-01-02 15:04:05.000")
		}
		want[4] = sqlquery.Format(ts)
	}
	if i%4 != 0 {
		w := fmt.Sprintf("%d.%03d", i, i%1000)
		args[5], want[5] = w, w
	}
	if i%9 != 0 {
		f := float64(i) / 8
		args[6], want[6] = f, strconv.FormatFloat(f, 'f', -1, 64)
	}
	return args, want
}

func insertGenerated(ctx context.Context, db *sql.DB) error {
	const batch = 500
	for start := 1; start <= generatedRows; start += batch {
		var q strings.Builder
		q.WriteString("INSERT INTO people VALUES ")
		var args []any
		for i := start; i < start+batch && i <= generatedRows; i++ {
			if i > start {
				q.WriteString(",")
			}
			q.WriteString("(?,?,?,?,?,?,?)")
			a, _ := generatedRow(i)
			args = append(args, a...)
		}
		if _, err := db.ExecContext(ctx, q.String(), args...); err != nil {
			return err
		}
	}
	return nil
}

// The query and the expected strings of TestOpen's "types converted to
// strings" case for PostgreSQL; the only change to the query is the
// boolean, which MySQL has no type for (see TestMySQLDifferences).
const mysqlParityQuery = "SELECT id, nhs_no, surname, dob, seen AS seen_utc, admitted, weight, ratio, big, " +
	"CASE WHEN active THEN 'true' WHEN NOT active THEN 'false' END AS active, note FROM patients ORDER BY id"

var postgresRows = [][]string{
	{"1", "5002977278", "Pennington", "1948-03-14", "2026-11-24T10:30:00.25Z", "2026-11-24", "61.50", "0.1", "9007199254740993", "true", ""},
	{"2", "", "O'Neil, Jr", "", "", "2026-11-24T08:15:00Z", "", "-0.00000025", "", "false", ""},
	{"3", "7408594116", "Zoë", "2001-01-23", "", "", "70.00", "", "", "", "\uFFFDA"},
}

func TestMySQLSameStringsAsPostgres(t *testing.T) {
	connect := openMySQL(t)
	db := connect(mysqlParity)
	ctx := context.Background()

	for _, proto := range []struct {
		name  string
		query string
		args  []any
	}{
		{"text protocol", mysqlParityQuery, nil},
		// A query with placeholders runs as a prepared statement, whose
		// results come in the binary protocol and decode differently.
		{"binary protocol", strings.Replace(mysqlParityQuery, "ORDER BY", "WHERE id >= ? ORDER BY", 1), []any{1}},
	} {
		t.Run(proto.name, func(t *testing.T) {
			r, err := sqlquery.Open(ctx, db, "rwh-export", proto.query, proto.args...)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer r.Close()
			want := []string{"id", "nhs_no", "surname", "dob", "seen_utc", "admitted", "weight", "ratio", "big", "active", "note"}
			if h := r.Header(); !slices.Equal(h, want) {
				t.Errorf("Header = %q, want %q", h, want)
			}
			rows, err := readAll(t, r)
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != len(postgresRows) {
				t.Fatalf("%d rows, want %d", len(rows), len(postgresRows))
			}
			for i, row := range rows {
				if !slices.Equal(row.Values, postgresRows[i]) {
					t.Errorf("row %d: Values = %q, want (as PostgreSQL) %q", i+1, row.Values, postgresRows[i])
				}
				if wantErr := i == 2; (row.Err != nil) != wantErr || wantErr && !errors.Is(row.Err, sqlquery.ErrInvalidEncoding) {
					t.Errorf("row %d: Err = %v", i+1, row.Err)
				}
			}
		})
	}
}

func TestMySQLStreamsGeneratedRows(t *testing.T) {
	connect := openMySQL(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		set   func(*mysql.Config)
		query string
		args  []any
	}{
		{"parity DSN, text protocol", mysqlParity, "SELECT * FROM people ORDER BY id", nil},
		{"parity DSN, binary protocol", mysqlParity, "SELECT * FROM people WHERE id > ? ORDER BY id", []any{0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := connect(tc.set)
			r, err := sqlquery.Open(ctx, db, "community", tc.query, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if h := r.Header(); !slices.Equal(h, []string{"id", "nhs_no", "name", "dob", "seen", "weight", "score"}) {
				t.Errorf("Header = %q", h)
			}
			n, bad := 0, 0
			for r.Next(ctx) {
				n++
				row := r.Row()
				_, want := generatedRow(n)
				if row.File != "query:community" || row.Line != n+1 || row.Err != nil {
					t.Fatalf("row %d: at %s:%d, Err %v", n, row.File, row.Line, row.Err)
				}
				if !slices.Equal(row.Values, want) {
					if bad++; bad <= 5 {
						t.Errorf("row %d: Values = %q, want %q", n, row.Values, want)
					}
				}
			}
			if err := r.Err(); err != nil {
				t.Fatal(err)
			}
			if n != generatedRows {
				t.Errorf("streamed %d rows, want %d", n, generatedRows)
			}
			if bad > 0 {
				t.Errorf("%d of %d rows differ", bad, n)
			}
		})
	}
}

// TestMySQLDifferences pins down what differs from PostgreSQL, so that a
// change in sqlquery or the driver shows up here.
func TestMySQLDifferences(t *testing.T) {
	connect := openMySQL(t)
	ctx := context.Background()
	one := func(t *testing.T, db *sql.DB, query string) []string {
		t.Helper()
		r, err := sqlquery.Open(ctx, db, "diff", query)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		rows, err := readAll(t, r)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, row := range rows {
			out = append(out, row.Values...)
		}
		return out
	}

	t.Run("parseTime=false gives MySQL's own datetime text", func(t *testing.T) {
		db := connect(mysqlRaw)
		got := one(t, db, "SELECT dob, admitted FROM patients WHERE id IN (1, 2) ORDER BY id")
		// DATE is right; DATETIME is not PostgreSQL's "2026-11-24" and
		// "2026-11-24T08:15:00Z".
		want := []string{"1948-03-14", "2026-11-24 00:00:00", "", "2026-11-24 08:15:00"}
		if !slices.Equal(got, want) {
			t.Errorf("got %q, want %q", got, want)
		}
	})

	t.Run("TIMESTAMP needs the session time zone to match loc", func(t *testing.T) {
		db := connect(func(c *mysql.Config) {
			mysqlParity(c)
			c.Params["time_zone"] = "'+05:00'" // a server whose zone is not UTC
		})
		got := one(t, db, "SELECT seen FROM patients WHERE id = 1")
		if want := []string{"2026-11-24T15:30:00.25Z"}; !slices.Equal(got, want) {
			t.Errorf("got %q, want the wrong instant %q", got, want)
		}
	})

	t.Run("booleans are 1 and 0", func(t *testing.T) {
		db := connect(mysqlParity)
		got := one(t, db, "SELECT active FROM patients ORDER BY id")
		if want := []string{"1", "0", ""}; !slices.Equal(got, want) {
			t.Errorf("got %q, want %q", got, want)
		}
	})

	t.Run("zero dates", func(t *testing.T) {
		db := connect(mysqlParity)
		// One connection, so the sql_mode below applies to the insert.
		db.SetMaxOpenConns(1)
		if _, err := db.ExecContext(ctx, "SET SESSION sql_mode = ''"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, "INSERT INTO people (id, dob, seen) VALUES (9999, '0000-00-00', '0000-00-00 00:00:00')"); err != nil {
			t.Fatal(err)
		}
		got := one(t, db, "SELECT dob, seen, NULLIF(dob, '0000-00-00') AS dob_or_null FROM people WHERE id = 9999")
		// The driver turns a zero date into time.Time{}, which sqlquery
		// reads as no date at all (never the real-looking 0001-01-01).
		if want := []string{"", "", ""}; !slices.Equal(got, want) {
			t.Errorf("got %q, want %q", got, want)
		}
		raw := connect(mysqlRaw)
		if got, want := one(t, raw, "SELECT dob FROM people WHERE id = 9999"), []string{"0000-00-00"}; !slices.Equal(got, want) {
			t.Errorf("parseTime=false: got %q, want %q", got, want)
		}
	})

	t.Run("unsigned BIGINT", func(t *testing.T) {
		db := connect(mysqlParity)
		got := one(t, db, "SELECT CAST(18446744073709551615 AS UNSIGNED), CAST(0.1 AS FLOAT), YEAR('2026-01-01')")
		if want := []string{"18446744073709551615", "0.1", "2026"}; !slices.Equal(got, want) {
			t.Errorf("got %q, want %q", got, want)
		}
	})
}
