// Package sqlitestore is the embedded SQLite backend of the regional store,
// through modernc.org/sqlite (pure Go, no cgo). It has the semantics of
// pgstore, the reference backend.
//
// # Files
//
// A store at PATH is three files (plus SQLite's -wal and -shm beside the
// first two):
//
//   - PATH, the published file. It holds the versioned rows (data_patient,
//     data_record_location, data_care_item, data_organisation, keyed by
//     version), the list of versions (version), the one-row live pointer
//     (live) and the views of the contract: patient, record_location,
//     care_item, organisation and publication. A viewer opens it read-only
//     (file:PATH?mode=ro) and queries the views. Nothing from the ops file
//     is in it. The published file does hold the version being built and
//     the versions kept for rollback; SQLite has no permissions within a
//     file, so a viewer that reads the data_ tables directly can see them.
//   - PATH-ops, the ops file: run ledger, deliveries and staged rows,
//     quarantine, link state, review queue, and what each version was
//     built from. Every connection of the store ATTACHes it as schema ops.
//   - PATH-locks/, the run locks (see LockDir): flocks that StartRun takes
//     and FinishRun (or Close, or the death of the process) releases: one
//     for publishing, one per source extracted, one per open run.
//
// Both databases use WAL journal mode with synchronous=NORMAL (FULL for
// the commits of Swap), a busy timeout, and foreign keys on. Dates are ISO
// text (2006-01-02), timestamps RFC 3339 text in UTC with microseconds.
// Viewers open the published file with ViewerDSN.
//
// # Versions
//
// As in pgstore, the views show the rows of the version named in live.
// BeginVersion builds a version in one write transaction of its own (on a
// dedicated connection, with prepared multi-row inserts) that Finish
// commits: a killed process leaves nothing of it but its row in version,
// which the next BeginVersion marks abandoned. A rollback is a publish of
// the previous version's deliveries (Previous, Swap.RollbackFrom/To);
// retired versions' rows are deleted after the swap. Abort abandons a
// version only while it is being built: it never touches one that went
// live. Swap checks the version (the checks of
// pgstore) and moves the live pointer in one write transaction of the
// published file, so a reader in a read transaction keeps its WAL snapshot
// of the old version whole and a reader after the swap sees the new one
// whole.
//
// SQLite commits a transaction that spans attached WAL databases one file
// at a time, so Swap orders its writes: first, with the live version still
// untouched, it records the version's ledger (deliveries, source outcomes,
// publish-time quarantine, withheld counts, applied overrides) in the ops
// file and syncs it; then it moves the
// live pointer in the published file and syncs that. A process killed in
// between leaves ledger rows for a version that never went live; the next
// publishing StartRun or BeginVersion removes them and gives the deliveries
// their earlier status back (so a pending delivery is pending again). The published file is the truth
// about what is live.
//
// # Loading
//
// Store.Version's Add methods write on the version's own connection while
// StreamPersons or StreamItems reads the ops file on another: under WAL a
// reader never waits for a writer, and the two touch different files.
// A Stager writes into TEMP tables on a connection of its own (taking no lock
// on either file, so the linker can read and write the link state in the
// meantime) and Commit moves the rows into the ops file in one transaction,
// sorted for its indexes, marking duplicates as it goes.
package sqlitestore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"modernc.org/sqlite"

	"github.com/careindex/careindex/loader/store"
)

var (
	// ErrBusy means another run holds the store.
	ErrBusy = errors.New("another careindex run is using this store")
	// ErrCheck means a built version failed its checks and was not published.
	ErrCheck = errors.New("published version failed its checks")
)

// busyTimeout is how long a statement waits for a lock another connection
// holds. Only one run writes at a time, so waits are short: a stager's
// commit, a swap.
const busyTimeout = time.Minute

// OpsPath names the ops file of the store whose published file is path.
func OpsPath(path string) string { return path + "-ops" }

// Store is a SQLite regional store.
type Store struct {
	path string
	db   *sql.DB
	log  *zap.Logger

	mu       sync.Mutex
	locks    map[int64]*runLocks // run id → the locks it holds
	building *version            // the version this process is building, until Finish or Abort
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if need be) the store whose published file is path,
// with its ops file beside it. Call Migrate before use.
func Open(ctx context.Context, path string, log *zap.Logger) (*Store, error) {
	if path == "" {
		return nil, errors.New("opening sqlite store: no path")
	}
	if log == nil {
		log = zap.NewNop()
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("opening sqlite store %s: %w", path, err)
	}
	base, err := sqlite.NewConnector(fileURI(abs, ""))
	if err != nil {
		return nil, fmt.Errorf("opening sqlite store %s: %w", path, err)
	}
	db := sql.OpenDB(&connector{Connector: base, ops: OpsPath(abs)})
	// Connections are cheap but each attaches the ops file, so keep them.
	db.SetMaxOpenConns(12)
	db.SetMaxIdleConns(12)
	db.SetConnMaxIdleTime(5 * time.Minute)
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("opening sqlite store %s: %w", path, err)
	}
	return &Store{path: abs, db: db, log: log, locks: map[int64]*runLocks{}}, nil
}

// fileURI is the SQLite URI of a file, with query parameters.
func fileURI(path, query string) string {
	u := url.URL{Scheme: "file", OmitHost: true, Path: filepath.ToSlash(path), RawQuery: query}
	return u.String()
}

// ViewerDSN is the data source name (for driver "sqlite") with which a
// viewer opens the published file read-only.
func ViewerDSN(path string) string {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	return fileURI(path, "mode=ro&_pragma=busy_timeout(10000)")
}

// connector opens connections to the published file and prepares each:
// pragmas, and the ops file attached as ops.
type connector struct {
	driver.Connector
	ops string
}

func (c *connector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	ex, ok := conn.(driver.ExecerContext)
	if !ok {
		conn.Close()
		return nil, errors.New("sqlite driver connection cannot execute statements")
	}
	steps := []struct {
		q    string
		args []driver.NamedValue
	}{
		{q: fmt.Sprintf("PRAGMA busy_timeout = %d", busyTimeout.Milliseconds())},
		{q: "PRAGMA foreign_keys = ON"},
		{q: "PRAGMA main.journal_mode = WAL"},
		{q: "PRAGMA main.synchronous = NORMAL"},
		{q: "PRAGMA main.journal_size_limit = 67108864"},
		{q: "PRAGMA main.cache_size = -65536"},
		{q: "ATTACH DATABASE ? AS ops", args: []driver.NamedValue{{Ordinal: 1, Value: c.ops}}},
		{q: "PRAGMA ops.journal_mode = WAL"},
		{q: "PRAGMA ops.synchronous = NORMAL"},
		{q: "PRAGMA ops.journal_size_limit = 67108864"},
		{q: "PRAGMA ops.cache_size = -32768"},
	}
	for _, st := range steps {
		if _, err := ex.ExecContext(ctx, st.q, st.args); err != nil {
			conn.Close()
			return nil, fmt.Errorf("preparing sqlite connection: %s: %w", st.q, err)
		}
	}
	return conn, nil
}

// DB returns the underlying pool (ops attached), for tests and tools.
func (s *Store) DB() *sql.DB { return s.db }

// Path returns the published file's path.
func (s *Store) Path() string { return s.path }

// Close releases the connections and any run lock still held.
func (s *Store) Close() error {
	s.mu.Lock()
	for id, l := range s.locks {
		l.release()
		delete(s.locks, id)
	}
	s.mu.Unlock()
	return s.db.Close()
}

// Migrate creates the tables and views of both files. It is idempotent, and
// when both files are current it only reads their schema versions, so it
// does not wait for a run that is writing.
func (s *Store) Migrate(ctx context.Context) error {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("migrating sqlite store: %w", err)
	}
	defer conn.Close()
	current := func() (bool, error) {
		for _, schema := range []string{"main", "ops"} {
			var v int
			if err := conn.QueryRowContext(ctx, "PRAGMA "+schema+".user_version").Scan(&v); err != nil {
				return false, err
			}
			if v < schemaVersion {
				return false, nil
			}
		}
		return true, nil
	}
	if ok, err := current(); err != nil {
		return fmt.Errorf("migrating sqlite store: %w", err)
	} else if ok {
		return nil
	}
	// BEGIN IMMEDIATE locks both files: concurrent migrations serialise.
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return fmt.Errorf("migrating sqlite store: %w", err)
	}
	err = func() error {
		for _, q := range []string{publishedSchema, opsSchema, seedSequence} {
			if _, err := conn.ExecContext(ctx, q); err != nil {
				return err
			}
		}
		if err := addColumns(ctx, conn); err != nil {
			return err
		}
		if err := dropTextKeys(ctx, conn); err != nil {
			return err
		}
		for _, q := range []string{
			fmt.Sprintf("PRAGMA main.user_version = %d", schemaVersion),
			fmt.Sprintf("PRAGMA ops.user_version = %d", schemaVersion)} {
			if _, err := conn.ExecContext(ctx, q); err != nil {
				return err
			}
		}
		_, err := conn.ExecContext(ctx, "COMMIT")
		return err
	}()
	if err != nil {
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
		return fmt.Errorf("migrating sqlite store: %w", err)
	}
	return nil
}

// inTx runs fn in a transaction on the pool. The first statement of fn
// should write (to the one file it writes), so that the transaction takes
// its write lock, waiting if need be, before it reads anything.
func (s *Store) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	return store.InTx(ctx, s.db, fn)
}

// StartRun takes the run's locks and records a new run. Every run locks the
// sources it extracts; a run that publishes (every kind but "extract") also
// locks the store's publish lock. Locks are tried, not waited for: a
// conflict is ErrBusy. Runs whose process died before they finished are
// marked abandoned, and a publishing run removes the ledger rows of a swap
// that a killed process left half done.
func (s *Store) StartRun(ctx context.Context, info store.RunInfo) (int64, error) {
	kind := info.Kind
	if kind == "" {
		kind = "run"
	}
	dir := LockDir(s.path)
	locks, err := acquireRunLocks(dir, kind, info.Sources)
	if err != nil {
		return 0, err
	}
	started := info.Started
	if started.IsZero() {
		started = time.Now()
	}
	var id int64
	err = s.db.QueryRowContext(ctx, `INSERT INTO ops.run (kind, started_at, sources, lock_token) VALUES (?, ?, ?, ?) RETURNING run_id`,
		kind, ts(started), strings.Join(info.Sources, ","), locks.token).Scan(&id)
	if err != nil {
		locks.release()
		return 0, fmt.Errorf("recording run: %w", err)
	}
	if err := s.closeAbandoned(ctx, dir, id); err != nil {
		locks.release()
		return 0, err
	}
	if kind != "extract" {
		if err := s.recoverSwaps(ctx); err != nil {
			locks.release()
			return 0, err
		}
	}
	s.mu.Lock()
	s.locks[id] = locks
	s.mu.Unlock()
	return id, nil
}

// closeAbandoned marks abandoned the runs still "running" whose process no
// longer holds their run lock: it was killed before the run finished.
func (s *Store) closeAbandoned(ctx context.Context, dir string, self int64) error {
	rows, err := s.db.QueryContext(ctx, `SELECT run_id, lock_token FROM ops.run WHERE status = 'running' AND run_id <> ?`, self)
	if err != nil {
		return fmt.Errorf("closing abandoned runs: %w", err)
	}
	type open struct {
		id    int64
		token string
	}
	var runs []open
	for rows.Next() {
		var r open
		if err := rows.Scan(&r.id, &r.token); err != nil {
			rows.Close()
			return fmt.Errorf("closing abandoned runs: %w", err)
		}
		runs = append(runs, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("closing abandoned runs: %w", err)
	}
	for _, r := range runs {
		alive, err := runAlive(dir, r.token)
		if err != nil {
			return fmt.Errorf("closing abandoned runs: %w", err)
		}
		if alive {
			continue
		}
		if _, err := s.db.ExecContext(ctx, `UPDATE ops.run SET status = 'abandoned', finished_at = ?,
			message = 'the process ended before the run finished' WHERE run_id = ? AND status = 'running'`, ts(time.Now()), r.id); err != nil {
			return fmt.Errorf("closing abandoned runs: %w", err)
		}
	}
	return nil
}

// FinishRun records the run's end and the sources' outcomes (if the run did
// not already record them when it published), then releases its locks.
func (s *Store) FinishRun(ctx context.Context, runID int64, status store.RunStatus, message string, sources []store.SourceOutcome) error {
	defer s.releaseLocks(runID)
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE ops.run SET status = ?, message = ?, finished_at = ? WHERE run_id = ?`,
			string(status), message, ts(time.Now()), runID); err != nil {
			return fmt.Errorf("finishing run %d: %w", runID, err)
		}
		var have int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM ops.run_source WHERE run_id = ?`, runID).Scan(&have); err != nil {
			return fmt.Errorf("finishing run %d: %w", runID, err)
		}
		if have == 0 {
			if err := insertOutcomes(ctx, tx, runID, sources); err != nil {
				return err
			}
		}
		return touchSources(ctx, tx, sources)
	})
}

func (s *Store) releaseLocks(runID int64) {
	s.mu.Lock()
	l, ok := s.locks[runID]
	delete(s.locks, runID)
	s.mu.Unlock()
	if ok {
		l.release()
	}
}

func insertOutcomes(ctx context.Context, tx *sql.Tx, runID int64, sources []store.SourceOutcome) error {
	for _, o := range sources {
		if _, err := tx.ExecContext(ctx, `INSERT INTO ops.run_source
			(run_id, source_id, org_code, status, delivery_id, delivery, rows_in, loaded, quarantined, withheld, merged, pending,
				stale, error, duplicates)
			VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
			runID, o.SourceID, o.OrgCode, o.Status, nullID(o.DeliveryID), o.Delivery, o.RowsIn, o.Loaded, o.Quarantined,
			o.Withheld, o.Merged, o.Pending, o.Stale, o.Error, o.Duplicates); err != nil {
			return fmt.Errorf("recording source %s of run %d: %w", o.SourceID, runID, err)
		}
	}
	return nil
}

func touchSources(ctx context.Context, tx *sql.Tx, sources []store.SourceOutcome) error {
	now := ts(time.Now())
	for _, o := range sources {
		if !store.Extracted(o.Status) {
			continue
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO ops.source_state (source_id, org_code, last_attempt_at, last_error)
			VALUES (?, ?, ?, ?)
			ON CONFLICT (source_id) DO UPDATE SET org_code = excluded.org_code, last_attempt_at = excluded.last_attempt_at,
				last_error = excluded.last_error`,
			o.SourceID, o.OrgCode, now, o.Error); err != nil {
			return fmt.Errorf("recording state of source %s: %w", o.SourceID, err)
		}
	}
	return nil
}

// LastError returns the error of the source's last extraction attempt.
func (s *Store) LastError(ctx context.Context, sourceID string) (string, error) {
	var msg string
	err := s.db.QueryRowContext(ctx, `SELECT last_error FROM ops.source_state WHERE source_id = ?`, sourceID).Scan(&msg)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading the state of source %s: %w", sourceID, err)
	}
	return msg, nil
}

const deliveryCols = `d.delivery_id, d.source_id, d.org_code, d.kind, d.name, d.hash, d.received_at, d.rows_in, d.quarantined, d.merged, d.seq`

func scanDelivery(row *sql.Row) (store.Delivery, bool, error) {
	var d store.Delivery
	var received string
	err := row.Scan(&d.ID, &d.SourceID, &d.OrgCode, &d.Kind, &d.Name, &d.Hash, &received, &d.RowsIn, &d.Quarantined, &d.Merged, &d.Seq)
	if errors.Is(err, sql.ErrNoRows) {
		return d, false, nil
	}
	if err == nil {
		d.ReceivedAt, err = parseTS(received)
	}
	return d, err == nil, err
}

// CurrentDelivery returns the delivery of sourceID in the live version.
func (s *Store) CurrentDelivery(ctx context.Context, sourceID string) (store.Delivery, bool, error) {
	d, ok, err := scanDelivery(s.db.QueryRowContext(ctx, `SELECT `+deliveryCols+`
		FROM main.live l
		JOIN ops.version_delivery vd ON vd.version = l.version AND vd.source_id = ?
		JOIN ops.delivery d ON d.delivery_id = vd.delivery_id`, sourceID))
	if err != nil {
		return d, false, fmt.Errorf("reading current delivery of %s: %w", sourceID, err)
	}
	return d, ok, nil
}

// PendingDelivery returns the newest staged, unpublished delivery.
func (s *Store) PendingDelivery(ctx context.Context, sourceID string) (store.Delivery, bool, error) {
	d, ok, err := scanDelivery(s.db.QueryRowContext(ctx, `SELECT `+deliveryCols+`
		FROM ops.delivery d WHERE d.source_id = ? AND d.status = 'staged'
		ORDER BY d.delivery_id DESC LIMIT 1`, sourceID))
	if err != nil {
		return d, false, fmt.Errorf("reading pending delivery of %s: %w", sourceID, err)
	}
	return d, ok, nil
}

// HoldDelivery sets a staged delivery aside for review: it is not pending
// (so not published) until AcceptHeld releases it.
func (s *Store) HoldDelivery(ctx context.Context, deliveryID int64, reason string) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE ops.delivery SET status = 'held', hold_reason = ?
		WHERE delivery_id = ? AND status = 'staged'`, reason, deliveryID); err != nil {
		return fmt.Errorf("holding delivery %d: %w", deliveryID, err)
	}
	return nil
}

// AcceptHeld releases the newest held delivery of a source.
func (s *Store) AcceptHeld(ctx context.Context, sourceID string) (store.Delivery, bool, error) {
	// RETURNING names the columns unqualified: SQLite takes no alias there.
	d, ok, err := scanDelivery(s.db.QueryRowContext(ctx, `UPDATE ops.delivery SET status = 'staged'
		WHERE delivery_id = (SELECT delivery_id FROM ops.delivery WHERE source_id = ? AND status = 'held'
			ORDER BY delivery_id DESC LIMIT 1)
		RETURNING `+strings.ReplaceAll(deliveryCols, "d.", ""), sourceID))
	if err != nil {
		return d, false, fmt.Errorf("accepting the held delivery of %s: %w", sourceID, err)
	}
	return d, ok, nil
}

// Live returns the live publication.
func (s *Store) Live(ctx context.Context) (store.Publication, bool, error) {
	p, err := publication(ctx, s.db, `v.version = (SELECT version FROM main.live)`)
	if errors.Is(err, sql.ErrNoRows) {
		return p, false, nil
	}
	if err != nil {
		return p, false, fmt.Errorf("reading live version: %w", err)
	}
	return p, true, nil
}

type queryRower interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// errBadConn, returned from sql.Conn.Raw, makes database/sql discard a
// connection left in a state it must not be handed on in.
var errBadConn = driver.ErrBadConn

// tsLayout is RFC 3339 in UTC with a fixed number of fractional digits, so
// that timestamps sort as text.
const tsLayout = "2006-01-02T15:04:05.000000Z07:00"

// ts formats a timestamp for storage.
func ts(t time.Time) string { return t.UTC().Format(tsLayout) }

// nullTS formats a nullable timestamp: the zero time is NULL.
func nullTS(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return ts(t)
}

func parseTS(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return t, fmt.Errorf("bad timestamp %q in store: %w", s, err)
	}
	return t, nil
}

// parseNullTS parses a nullable timestamp.
func parseNullTS(s sql.NullString) (*time.Time, error) {
	if !s.Valid {
		return nil, nil
	}
	t, err := parseTS(s.String)
	if err != nil {
		return nil, err
	}
	return &t, nil
}

// isoDate formats the calendar date of t ("" for the zero time).
func isoDate(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format("2006-01-02")
}

// parseDate reads an ISO date as midnight UTC.
func parseDate(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse("2006-01-02", s)
	if err != nil {
		return t, fmt.Errorf("bad date %q in store: %w", s, err)
	}
	return t, nil
}

// nullable turns "" into NULL (dates).
func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// nullID turns 0 into NULL (optional ids).
func nullID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

// idList renders ids as the inside of an SQL IN list. They are integers, so
// this is safe, and SQLite accepts an empty list.
func idList(ids []int64) string {
	var b strings.Builder
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%d", id)
	}
	return b.String()
}

// addColumns adds to the ops file the columns of addedColumns it lacks
// (SQLite has no ADD COLUMN IF NOT EXISTS).
func addColumns(ctx context.Context, conn *sql.Conn) error {
	for _, c := range addedColumns {
		var n int
		if err := conn.QueryRowContext(ctx, `SELECT count(*) FROM pragma_table_info(?, 'ops') WHERE name = ?`, c.table, c.column).
			Scan(&n); err != nil {
			return fmt.Errorf("reading columns of %s: %w", c.table, err)
		}
		if n > 0 {
			continue
		}
		if _, err := conn.ExecContext(ctx, `ALTER TABLE ops.`+c.table+` ADD COLUMN `+c.column+` `+c.decl); err != nil {
			return fmt.Errorf("adding column %s.%s: %w", c.table, c.column, err)
		}
	}
	return nil
}

// dropTextKeys drops the key table of a store that filed its keys as text
// (before schema version 4) and clears the key signature, so that the next
// run files every record again by hash.
func dropTextKeys(ctx context.Context, conn *sql.Conn) error {
	var n int
	if err := conn.QueryRowContext(ctx, `SELECT count(*) FROM ops.sqlite_master WHERE type = 'table' AND name = 'match_key'`).
		Scan(&n); err != nil {
		return fmt.Errorf("reading the key tables: %w", err)
	}
	if n == 0 {
		return nil
	}
	for _, q := range []string{`DROP TABLE ops.match_key`, `UPDATE ops.match_meta SET signature = ''`} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("dropping the text keys: %w", err)
		}
	}
	return nil
}
