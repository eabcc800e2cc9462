package bench

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/careindex/careindex/loader/sqlitestore"
)

// sqliteTarget is an embedded SQLite store: the published file at path and
// the ops file beside it. It opens them only to read, between runs.
type sqliteTarget struct {
	path string
}

func (t *sqliteTarget) storeArg() string { return "sqlite:" + t.path }
func (t *sqliteTarget) describe() string { return t.path }
func (t *sqliteTarget) close()           {}

// open opens the published file, or the ops file, read-only.
func (t *sqliteTarget) open(ops bool) (*sql.DB, error) {
	path := t.path
	if ops {
		path = sqlitestore.OpsPath(path)
	}
	if _, err := os.Stat(path); err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite", sqlitestore.ViewerDSN(path))
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

func (t *sqliteTarget) lastRun(ctx context.Context) (int64, error) {
	db, err := t.open(true)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var n int64
	err = db.QueryRowContext(ctx, `SELECT COALESCE(max(run_id), 0) FROM run`).Scan(&n)
	return n, err
}

func (t *sqliteTarget) runs(ctx context.Context, after int64) ([]LedgerRun, int64, error) {
	db, err := t.open(true)
	if err != nil {
		return nil, 0, err
	}
	defer db.Close()
	return readRuns(ctx, db,
		`SELECT run_id, kind, status, COALESCE(published_version, 0) FROM run WHERE run_id > ? ORDER BY run_id`,
		`SELECT run_id, count(*), COALESCE(sum(rows_in), 0) FROM run_source WHERE run_id > ? AND status = 'new' GROUP BY run_id`, after)
}

func (t *sqliteTarget) published(ctx context.Context) (Counts, error) {
	db, err := t.open(false)
	if err != nil {
		return Counts{}, err
	}
	defer db.Close()
	var c Counts
	err = db.QueryRowContext(ctx, `SELECT COALESCE((SELECT version FROM live), 0),
		(SELECT count(*) FROM patient), (SELECT count(*) FROM patient WHERE status = 'withheld'),
		(SELECT count(*) FROM record_location), (SELECT count(*) FROM care_item), (SELECT count(*) FROM organisation)`).
		Scan(&c.Version, &c.Patients, &c.WithheldMarkers, &c.Locations, &c.Items, &c.Organisations)
	if err != nil {
		return c, fmt.Errorf("counting the published rows: %w", err)
	}
	return c, nil
}

func (t *sqliteTarget) locations(ctx context.Context, fn func(int64, string, string)) error {
	db, err := t.open(false)
	if err != nil {
		return err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT patient_id, org_code, local_id FROM record_location`)
	if err != nil {
		return fmt.Errorf("reading the record locations: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var org, local string
		if err := rows.Scan(&id, &org, &local); err != nil {
			return fmt.Errorf("reading the record locations: %w", err)
		}
		fn(id, org, local)
	}
	return rows.Err()
}

func (t *sqliteTarget) ledger(ctx context.Context) (Ledger, error) {
	db, err := t.open(true)
	if err != nil {
		return Ledger{}, err
	}
	defer db.Close()
	return ledgerLines(ctx, db, `SELECT run_id, source_id, rows_in, loaded, quarantined, withheld, merged, pending
		FROM run_source ORDER BY run_id, source_id`)
}

// export writes the version's rows of each data_ table in COPY text
// format, with the tables' and their indexes' CREATE statements.
func (t *sqliteTarget) export(ctx context.Context, _ *bench, version int64, dir string) (exported, error) {
	ex := exported{version: version}
	db, err := t.open(false)
	if err != nil {
		return ex, err
	}
	defer db.Close()
	for _, logical := range publishedTables {
		et := exportedTable{logical: logical, name: "data_" + logical, file: filepath.Join(dir, logical+".copy")}
		if et.cols, err = sqliteColumns(ctx, db, et.name); err != nil {
			return ex, err
		}
		if len(et.cols) == 0 {
			return ex, fmt.Errorf("the store has no table %s", et.name)
		}
		rows, err := db.QueryContext(ctx, `SELECT sql FROM sqlite_master WHERE tbl_name = ? AND sql IS NOT NULL
			ORDER BY type <> 'table', name`, et.name)
		if err != nil {
			return ex, err
		}
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				rows.Close()
				return ex, err
			}
			et.create = append(et.create, s)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return ex, err
		}
		if err := writeSQLiteRows(ctx, db, et, version); err != nil {
			return ex, fmt.Errorf("exporting %s: %w", et.name, err)
		}
		et.bytes = fileSize(et.file)
		ex.tables = append(ex.tables, et)
	}
	return ex, nil
}

func sqliteColumns(ctx context.Context, db *sql.DB, table string) ([]column, error) {
	rows, err := db.QueryContext(ctx, `SELECT name, type, "notnull" FROM pragma_table_info(?)`, table)
	if err != nil {
		return nil, fmt.Errorf("reading the columns of %s: %w", table, err)
	}
	defer rows.Close()
	var cols []column
	for rows.Next() {
		var c column
		if err := rows.Scan(&c.name, &c.typ, &c.notNull); err != nil {
			return nil, err
		}
		cols = append(cols, c)
	}
	return cols, rows.Err()
}

func writeSQLiteRows(ctx context.Context, db *sql.DB, et exportedTable, version int64) error {
	names := make([]string, len(et.cols))
	for i, c := range et.cols {
		names[i] = quoteIdent(c.name)
	}
	rows, err := db.QueryContext(ctx, fmt.Sprintf(`SELECT %s FROM %s WHERE version = ?`, strings.Join(names, ", "), et.name), version)
	if err != nil {
		return err
	}
	defer rows.Close()
	f, err := os.Create(et.file)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	vals := make([]any, len(et.cols))
	ptrs := make([]any, len(et.cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var line []byte
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			f.Close()
			return err
		}
		line = line[:0]
		for i, v := range vals {
			if i > 0 {
				line = append(line, '\t')
			}
			switch v := v.(type) {
			case nil:
				line = append(line, '\\', 'N')
			case int64:
				line = strconv.AppendInt(line, v, 10)
			case float64:
				line = strconv.AppendFloat(line, v, 'g', -1, 64)
			case string:
				line = appendCopyField(line, v)
			case []byte:
				line = appendCopyField(line, string(v))
			case bool:
				line = strconv.AppendInt(line, map[bool]int64{false: 0, true: 1}[v], 10)
			case time.Time:
				line = appendCopyField(line, v.UTC().Format(time.RFC3339Nano))
			default:
				f.Close()
				return fmt.Errorf("column %s: unexpected value of type %T", et.cols[i].name, v)
			}
		}
		line = append(line, '\n')
		if _, err := w.Write(line); err != nil {
			f.Close()
			return err
		}
	}
	if err := rows.Err(); err != nil {
		f.Close()
		return err
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// rawInsertRows is the rows per INSERT statement, as the store's loader.
const rawInsertRows = 64

// rawSQLite loads the exported rows into a fresh SQLite file with the
// store's tables and indexes: one timed transaction of prepared multi-row
// inserts.
func (b *bench) rawSQLite(ctx context.Context, ex exported, path string) (Raw, error) {
	r := Raw{Method: fmt.Sprintf("one transaction of prepared %d-row INSERTs from the 4 files, indexes in place (SQLite has no COPY)", rawInsertRows)}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(path + suffix)
	}
	u := url.URL{Scheme: "file", OmitHost: true, Path: filepath.ToSlash(path),
		RawQuery: "_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=cache_size(-65536)&_pragma=busy_timeout(10000)"}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		return r, err
	}
	defer func() {
		db.Close()
		if !b.opts.Keep {
			for _, suffix := range []string{"", "-wal", "-shm"} {
				os.Remove(path + suffix)
			}
		}
	}()
	db.SetMaxOpenConns(1)
	for _, t := range ex.tables {
		for _, q := range t.create {
			if _, err := db.ExecContext(ctx, q); err != nil {
				return r, fmt.Errorf("creating %s: %w", t.name, err)
			}
		}
	}
	start := time.Now()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return r, err
	}
	for _, t := range ex.tables {
		if err := insertFile(ctx, tx, t); err != nil {
			tx.Rollback()
			return r, fmt.Errorf("loading %s: %w", t.name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return r, err
	}
	r.Seconds = time.Since(start).Seconds()
	for _, t := range ex.tables {
		var n int64
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM `+t.name).Scan(&n); err != nil {
			return r, fmt.Errorf("counting the raw copy of %s: %w", t.name, err)
		}
		r.Rows.setCount(t.logical, n)
		if t.logical == "patient" {
			if err := db.QueryRowContext(ctx, `SELECT count(*) FROM `+t.name+` WHERE status = 'withheld'`).Scan(&r.Rows.WithheldMarkers); err != nil {
				return r, err
			}
		}
	}
	return r, nil
}

// insertFile inserts a COPY text file's rows, converting each field to
// its column's type (INTEGER, REAL, else text).
func insertFile(ctx context.Context, tx *sql.Tx, t exportedTable) error {
	names := make([]string, len(t.cols))
	kinds := make([]byte, len(t.cols))
	for i, c := range t.cols {
		names[i] = quoteIdent(c.name)
		switch typ := strings.ToUpper(c.typ); {
		case strings.Contains(typ, "INT"):
			kinds[i] = 'i'
		case strings.Contains(typ, "REAL"), strings.Contains(typ, "FLOA"), strings.Contains(typ, "DOUB"):
			kinds[i] = 'f'
		default:
			kinds[i] = 't'
		}
	}
	one := "(" + strings.Repeat("?, ", len(names)-1) + "?)"
	head := fmt.Sprintf("INSERT INTO %s (%s) VALUES ", t.name, strings.Join(names, ", "))
	query := func(n int) string { return head + strings.Repeat(one+", ", n-1) + one }
	full, err := tx.PrepareContext(ctx, query(rawInsertRows))
	if err != nil {
		return err
	}
	defer full.Close()
	f, err := os.Open(t.file)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	args := make([]any, 0, rawInsertRows*len(names))
	n := 0
	var fields []string
	var null []bool
	lineNo := 0
	for sc.Scan() {
		lineNo++
		if fields, null, err = splitCopyLine(sc.Text(), fields, null); err != nil {
			return fmt.Errorf("%s:%d: %w", t.file, lineNo, err)
		}
		if len(fields) != len(names) {
			return fmt.Errorf("%s:%d: %d fields, want %d", t.file, lineNo, len(fields), len(names))
		}
		for i, v := range fields {
			switch {
			case null[i]:
				args = append(args, nil)
			case kinds[i] == 'i':
				x, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					args = append(args, v)
				} else {
					args = append(args, x)
				}
			case kinds[i] == 'f':
				x, err := strconv.ParseFloat(v, 64)
				if err != nil {
					args = append(args, v)
				} else {
					args = append(args, x)
				}
			default:
				args = append(args, v)
			}
		}
		if n++; n == rawInsertRows {
			if _, err := full.ExecContext(ctx, args...); err != nil {
				return err
			}
			args, n = args[:0], 0
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if n > 0 {
		if _, err := tx.ExecContext(ctx, query(n), args...); err != nil {
			return err
		}
	}
	return nil
}
