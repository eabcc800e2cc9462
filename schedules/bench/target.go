package bench

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
)

// target is a store under benchmark: how to name it to careindex and how
// to read its ledger and live version.
type target interface {
	// storeArg is the --store argument.
	storeArg() string
	// describe names the store for the report (no password).
	describe() string
	// lastRun is the ledger's newest run id (0: none, or no store yet).
	lastRun(ctx context.Context) (int64, error)
	// runs returns the runs after run id after, and the rows in of their
	// ledger lines for the sources read (status new).
	runs(ctx context.Context, after int64) ([]LedgerRun, int64, error)
	// published counts the live version's rows.
	published(ctx context.Context) (Counts, error)
	// locations streams the live version's record locations.
	locations(ctx context.Context, fn func(patientID int64, org, local string)) error
	// ledger sums every ledger line.
	ledger(ctx context.Context) (Ledger, error)
	// export writes the rows of version's four tables to files in dir.
	export(ctx context.Context, b *bench, version int64, dir string) (exported, error)
	close()
}

// exported is a version's rows, written to files, with what it takes to
// make empty tables like the ones they came from.
type exported struct {
	version int64
	tables  []exportedTable
}

type exportedTable struct {
	logical string // patient, record_location, care_item, organisation
	name    string // the table in the store (and in the raw copy)
	file    string
	cols    []column
	// create makes the empty table (SQLite: the table then its indexes);
	// indexes are built after the load (PostgreSQL).
	create  []string
	indexes []string
	bytes   int64
}

type column struct {
	name, typ string
	notNull   bool
}

// publishedTables are the four versioned tables, in the order a version is
// loaded.
var publishedTables = []string{"organisation", "patient", "record_location", "care_item"}

// setCount files n rows of the logical table into c.
func (c *Counts) setCount(logical string, n int64) {
	switch logical {
	case "patient":
		c.Patients = n
	case "record_location":
		c.Locations = n
	case "care_item":
		c.Items = n
	case "organisation":
		c.Organisations = n
	}
}

// ledgerLines sums the run_source lines a query returns: run_id,
// source_id, rows_in, loaded, quarantined, withheld, merged, pending.
func ledgerLines(ctx context.Context, db *sql.DB, query string) (Ledger, error) {
	rows, err := db.QueryContext(ctx, query)
	if err != nil {
		return Ledger{}, fmt.Errorf("reading the ledger: %w", err)
	}
	defer rows.Close()
	var l Ledger
	runs := map[int64]bool{}
	for rows.Next() {
		var run int64
		var source string
		var in, loaded, quarantined, withheld, merged, pending int64
		if err := rows.Scan(&run, &source, &in, &loaded, &quarantined, &withheld, &merged, &pending); err != nil {
			return l, fmt.Errorf("reading the ledger: %w", err)
		}
		runs[run] = true
		l.Lines++
		l.RowsIn += in
		l.Loaded += loaded
		l.Quarantined += quarantined
		l.Withheld += withheld
		l.Merged += merged
		l.Pending += pending
		if in != loaded+quarantined+withheld+merged+pending {
			l.Unbalanced = append(l.Unbalanced, fmt.Sprintf("run %d/%s: %d in, %d loaded + %d quarantined + %d withheld + %d merged + %d pending",
				run, source, in, loaded, quarantined, withheld, merged, pending))
		}
	}
	l.Runs = len(runs)
	if err := rows.Err(); err != nil {
		return l, fmt.Errorf("reading the ledger: %w", err)
	}
	return l, nil
}

// readRuns reads runs (run_id, kind, status, published version) and the
// rows read per run (run_id, sources, rows).
func readRuns(ctx context.Context, db *sql.DB, runsQuery, readQuery string, after int64) ([]LedgerRun, int64, error) {
	rows, err := db.QueryContext(ctx, runsQuery, after)
	if err != nil {
		return nil, 0, fmt.Errorf("reading the runs: %w", err)
	}
	var out []LedgerRun
	for rows.Next() {
		var r LedgerRun
		if err := rows.Scan(&r.RunID, &r.Kind, &r.Status, &r.Version); err != nil {
			rows.Close()
			return nil, 0, fmt.Errorf("reading the runs: %w", err)
		}
		out = append(out, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("reading the runs: %w", err)
	}
	rows, err = db.QueryContext(ctx, readQuery, after)
	if err != nil {
		return nil, 0, fmt.Errorf("reading the ledger: %w", err)
	}
	defer rows.Close()
	var total int64
	for rows.Next() {
		var run, n int64
		var sources int
		if err := rows.Scan(&run, &sources, &n); err != nil {
			return nil, 0, fmt.Errorf("reading the ledger: %w", err)
		}
		total += n
		for i := range out {
			if out[i].RunID == run {
				out[i].SourcesIn = sources
			}
		}
	}
	return out, total, rows.Err()
}

// fileSize is a file's size (0 if it cannot be read).
func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// raw runs the raw baseline of a backend on the exported rows.
func (b *bench) raw(ctx context.Context, backend string, ex exported) (Raw, error) {
	var r Raw
	var err error
	switch backend {
	case Postgres:
		r, err = b.rawPG(ctx, ex)
	case SQLite:
		r, err = b.rawSQLite(ctx, ex, filepath.Join(b.scratch, "raw.db"))
	default:
		return r, fmt.Errorf("no raw baseline for %s", backend)
	}
	for _, t := range ex.tables {
		r.Bytes += t.bytes
	}
	r.Rows.Version = ex.version
	return r, err
}
