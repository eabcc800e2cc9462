package bench

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/careindex/careindex/schedules/config"
)

// pgTarget is a PostgreSQL store.
type pgTarget struct {
	dsn string
	db  *sql.DB
}

func openPG(ctx context.Context, dsn string) (*pgTarget, error) {
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		return nil, err
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("opening the store database: %w", err)
	}
	db.SetMaxOpenConns(2)
	return &pgTarget{dsn: dsn, db: db}, nil
}

func (t *pgTarget) storeArg() string { return t.dsn }
func (t *pgTarget) describe() string { return config.RedactDSN(t.dsn) }
func (t *pgTarget) close()           { t.db.Close() }

func (t *pgTarget) lastRun(ctx context.Context) (int64, error) {
	var exists bool
	if err := t.db.QueryRowContext(ctx, `SELECT to_regclass('careindex_ops.run') IS NOT NULL`).Scan(&exists); err != nil || !exists {
		return 0, err
	}
	var n int64
	err := t.db.QueryRowContext(ctx, `SELECT COALESCE(max(run_id), 0) FROM careindex_ops.run`).Scan(&n)
	return n, err
}

func (t *pgTarget) runs(ctx context.Context, after int64) ([]LedgerRun, int64, error) {
	return readRuns(ctx, t.db,
		`SELECT run_id, kind, status, COALESCE(published_version, 0) FROM careindex_ops.run WHERE run_id > $1 ORDER BY run_id`,
		`SELECT run_id, count(*), COALESCE(sum(rows_in), 0) FROM careindex_ops.run_source
			WHERE run_id > $1 AND status = 'new' GROUP BY run_id`, after)
}

func (t *pgTarget) published(ctx context.Context) (Counts, error) {
	var c Counts
	err := t.db.QueryRowContext(ctx, `SELECT COALESCE((SELECT version FROM careindex_data.live), 0),
		(SELECT count(*) FROM careindex.patient), (SELECT count(*) FROM careindex.patient WHERE status = 'withheld'),
		(SELECT count(*) FROM careindex.record_location), (SELECT count(*) FROM careindex.care_item),
		(SELECT count(*) FROM careindex.organisation)`).
		Scan(&c.Version, &c.Patients, &c.WithheldMarkers, &c.Locations, &c.Items, &c.Organisations)
	if err != nil {
		return c, fmt.Errorf("counting the published rows: %w", err)
	}
	return c, nil
}

func (t *pgTarget) locations(ctx context.Context, fn func(int64, string, string)) error {
	rows, err := t.db.QueryContext(ctx, `SELECT patient_id, org_code, local_id FROM careindex.record_location`)
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

func (t *pgTarget) ledger(ctx context.Context) (Ledger, error) {
	return ledgerLines(ctx, t.db, `SELECT run_id, source_id, rows_in, loaded, quarantined, withheld, merged, pending
		FROM careindex_ops.run_source ORDER BY run_id, source_id`)
}

// export writes each partition of the version with COPY … TO STDOUT, and
// reads its columns and indexes from the catalog.
func (t *pgTarget) export(ctx context.Context, b *bench, version int64, dir string) (exported, error) {
	ex := exported{version: version}
	for _, logical := range publishedTables {
		part := fmt.Sprintf("careindex_data.%s_v%d", logical, version)
		var found bool
		if err := t.db.QueryRowContext(ctx, `SELECT to_regclass($1) IS NOT NULL`, part).Scan(&found); err != nil {
			return ex, err
		}
		if !found {
			return ex, fmt.Errorf("the live version's table %s does not exist", part)
		}
		et := exportedTable{logical: logical, name: part, file: filepath.Join(dir, logical+".copy")}
		rows, err := t.db.QueryContext(ctx, `SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull
			FROM pg_attribute a WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`, part)
		if err != nil {
			return ex, fmt.Errorf("reading the columns of %s: %w", part, err)
		}
		for rows.Next() {
			var c column
			if err := rows.Scan(&c.name, &c.typ, &c.notNull); err != nil {
				rows.Close()
				return ex, err
			}
			et.cols = append(et.cols, c)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return ex, err
		}
		defs := make([]string, len(et.cols))
		names := make([]string, len(et.cols))
		for i, c := range et.cols {
			names[i] = quoteIdent(c.name)
			defs[i] = quoteIdent(c.name) + " " + c.typ
			if c.notNull {
				defs[i] += " NOT NULL"
			}
		}
		et.create = []string{fmt.Sprintf("CREATE TABLE %s (%s)", part, strings.Join(defs, ", "))}
		rows, err = t.db.QueryContext(ctx, `SELECT indexdef FROM pg_indexes WHERE schemaname = 'careindex_data' AND tablename = $1 ORDER BY indexname`,
			fmt.Sprintf("%s_v%d", logical, version))
		if err != nil {
			return ex, fmt.Errorf("reading the indexes of %s: %w", part, err)
		}
		for rows.Next() {
			var def string
			if err := rows.Scan(&def); err != nil {
				rows.Close()
				return ex, err
			}
			et.indexes = append(et.indexes, def)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return ex, err
		}
		if err := psqlTo(ctx, t.dsn, fmt.Sprintf("COPY %s (%s) TO STDOUT", part, strings.Join(names, ", ")), et.file); err != nil {
			return ex, err
		}
		et.bytes = fileSize(et.file)
		ex.tables = append(ex.tables, et)
	}
	return ex, nil
}

// psqlTo runs one command with psql -c and writes its output to a file.
func psqlTo(ctx context.Context, dsn, command, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", command, dsn)
	cmd.Stdout = f
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err = cmd.Run()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("psql -c %q: %w\n%s", command, err, stderr.String())
	}
	return nil
}

// rawPG loads the exported rows into a fresh database: the empty tables
// are made first; then one psql -1 script, timed, copies the four files
// in and builds the indexes.
func (b *bench) rawPG(ctx context.Context, ex exported) (Raw, error) {
	r := Raw{Method: "psql -1: \\copy FROM the 4 files, then CREATE INDEX (one transaction)"}
	dsn, err := b.createDatabase(ctx, "raw")
	if err != nil {
		return r, err
	}
	defer b.dropDatabase(ctx, dsn)
	setup := []string{"CREATE SCHEMA careindex_data"}
	var script strings.Builder
	for _, t := range ex.tables {
		setup = append(setup, t.create...)
		if strings.ContainsAny(t.file, "'\\\n") {
			return r, fmt.Errorf("%s: the raw COPY needs a path without quotes or backslashes", t.file)
		}
		names := make([]string, len(t.cols))
		for i, c := range t.cols {
			names[i] = quoteIdent(c.name)
		}
		fmt.Fprintf(&script, "\\copy %s (%s) FROM '%s'\n", t.name, strings.Join(names, ", "), t.file)
	}
	for _, t := range ex.tables {
		for _, idx := range t.indexes {
			script.WriteString(idx + ";\n")
		}
	}
	if err := b.psql(ctx, dsn, "-c", strings.Join(setup, ";\n")); err != nil {
		return r, err
	}
	path := filepath.Join(b.scratch, "raw-copy.sql")
	if err := os.WriteFile(path, []byte(script.String()), 0o644); err != nil {
		return r, err
	}
	start := time.Now()
	if err := b.psql(ctx, dsn, "-1", "-f", path); err != nil {
		return r, err
	}
	r.Seconds = time.Since(start).Seconds()
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		return r, err
	}
	defer db.Close()
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

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
