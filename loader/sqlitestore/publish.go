package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/careindex/careindex/loader/store"
)

// testHookAfterOpsCommit, when set, runs in Swap between the commit of the
// version's ledger in the ops file and the commit of the live pointer in
// the published file. Tests use it to kill a process at the worst moment.
var testHookAfterOpsCommit func()

// BeginVersion allocates a version number and opens the transaction that
// will hold the version's rows, after removing versions left half-built by
// failed or killed runs.
func (s *Store) BeginVersion(ctx context.Context, runID int64) (store.Version, error) {
	s.abortBuilding(ctx)
	if err := s.dropBuilding(ctx); err != nil {
		return nil, err
	}
	if err := s.recoverSwaps(ctx); err != nil {
		return nil, err
	}
	var n int64
	if err := s.db.QueryRowContext(ctx, `INSERT INTO main.version (run_id, state) VALUES (?, 'building') RETURNING version`, runID).
		Scan(&n); err != nil {
		return nil, fmt.Errorf("allocating version: %w", err)
	}
	v := &version{s: s, n: n}
	if err := v.begin(ctx); err != nil {
		v.Abort(ctx)
		return nil, fmt.Errorf("creating version %d: %w", n, err)
	}
	s.mu.Lock()
	s.building = v
	s.mu.Unlock()
	return v, nil
}

// abortBuilding rolls back a version this process is still building (its
// run gave up on it without Abort), so that its write lock does not block
// the cleanup.
func (s *Store) abortBuilding(ctx context.Context) {
	s.mu.Lock()
	v := s.building
	s.mu.Unlock()
	if v != nil {
		v.rollback()
	}
}

// dropBuilding abandons versions that never went live (the run building
// them failed or was killed) and deletes any rows they committed. The run
// lock guarantees no other process is building.
func (s *Store) dropBuilding(ctx context.Context) error {
	vs, err := store.QueryRows(ctx, s.db, store.ScanInt64, `SELECT version FROM main.version WHERE state = 'building'`)
	if err != nil {
		return fmt.Errorf("finding unfinished versions: %w", err)
	}
	for _, v := range vs {
		if err := s.abandon(ctx, v); err != nil {
			return err
		}
	}
	return nil
}

// abandon marks a version that is still building abandoned and deletes its
// rows, in one transaction of the published file, then removes any ledger
// rows a failed swap left for it.
func (s *Store) abandon(ctx context.Context, v int64) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE main.version SET state = 'abandoned' WHERE version = ? AND state = 'building'`, v)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil // not building: live, kept or gone; leave it
		}
		return deleteVersionRows(ctx, tx, v)
	})
	if err != nil {
		return fmt.Errorf("dropping unfinished version %d: %w", v, err)
	}
	return s.recoverSwaps(ctx)
}

var dataTables = []string{"data_patient", "data_record_location", "data_care_item", "data_organisation", "data_patient_merge"}

func deleteVersionRows(ctx context.Context, tx *sql.Tx, v int64) error {
	for _, t := range dataTables {
		if _, err := tx.ExecContext(ctx, `DELETE FROM main.`+t+` WHERE version = ?`, v); err != nil {
			return fmt.Errorf("deleting %s rows of version %d: %w", t, v, err)
		}
	}
	return nil
}

// recoverSwaps removes the ledger rows of swaps that recorded the ledger in
// the ops file but never moved the live pointer (the process was killed in
// between, see Swap).
func (s *Store) recoverSwaps(ctx context.Context) error {
	rows, err := s.db.QueryContext(ctx, `SELECT m.version, m.run_id FROM ops.version_meta m
		LEFT JOIN main.version v ON v.version = m.version
		WHERE v.version IS NULL OR v.state IN ('building', 'abandoned')`)
	if err != nil {
		return fmt.Errorf("finding unfinished swaps: %w", err)
	}
	type swap struct{ version, run int64 }
	var undo []swap
	for rows.Next() {
		var sw swap
		if err := rows.Scan(&sw.version, &sw.run); err != nil {
			rows.Close()
			return fmt.Errorf("finding unfinished swaps: %w", err)
		}
		undo = append(undo, sw)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("finding unfinished swaps: %w", err)
	}
	for _, sw := range undo {
		s.log.Warn("removing the ledger of a publication that never went live", zap.Int64("version", sw.version), zap.Int64("run_id", sw.run))
		if err := s.undoSwapLedger(ctx, sw.version, sw.run); err != nil {
			return err
		}
	}
	return nil
}

// undoSwapLedger removes what Swap recorded in the ops file for a version
// that did not go live, and gives the deliveries it marked published their
// status back (a pending delivery stays pending for the next publish).
func (s *Store) undoSwapLedger(ctx context.Context, v, runID int64) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		for _, st := range []struct {
			q    string
			args []any
		}{
			{`DELETE FROM ops.version_meta WHERE version = ?`, []any{v}},
			{`UPDATE ops.delivery SET status = (SELECT vd.was_status FROM ops.version_delivery vd
				WHERE vd.version = ?1 AND vd.delivery_id = delivery.delivery_id)
				WHERE status = 'published' AND delivery_id IN (SELECT delivery_id FROM ops.version_delivery
					WHERE version = ?1 AND was_status IS NOT NULL AND was_status <> 'published')`, []any{v}},
			{`DELETE FROM ops.version_delivery WHERE version = ?`, []any{v}},
			{`DELETE FROM ops.quarantine WHERE version = ?`, []any{v}},
			{`DELETE FROM ops.withheld_summary WHERE version = ?`, []any{v}},
			{`DELETE FROM ops.override_applied WHERE version = ?`, []any{v}},
			{`UPDATE ops.decision SET published_version = NULL WHERE published_version = ?`, []any{v}},
			{`DELETE FROM ops.run_source WHERE run_id = ?`, []any{runID}},
			{`UPDATE ops.run SET published_version = NULL WHERE run_id = ? AND published_version = ?`, []any{runID, v}},
		} {
			if _, err := tx.ExecContext(ctx, st.q, st.args...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("removing the ledger of version %d: %w", v, err)
	}
	return nil
}

// version is a version being built: one write transaction of the published
// file on a connection of its own, with prepared multi-row inserts.
type version struct {
	s    *Store
	n    int64
	conn *sql.Conn
	tx   *sql.Tx
	// Buffered inserts, one per table.
	patients, locations, items, orgs *inserter
	seq                              int64 // care item sequence within the version
	finished                         bool
}

// insertRows is how many rows one INSERT statement carries. One statement
// keeps its b-tree cursors open from row to row, so rows that arrive in
// key order (patients and care items come ordered by patient id) are
// appended without a descent from the root for each.
const insertRows = 64

// inserter buffers the rows of one table and inserts them insertRows at a
// time with a prepared statement.
type inserter struct {
	tx    *sql.Tx
	head  string // INSERT INTO t (cols) VALUES
	ncols int
	full  *sql.Stmt // insertRows rows
	args  []any
	rows  int
}

func newInserter(ctx context.Context, tx *sql.Tx, table string, cols []string) (*inserter, error) {
	in := &inserter{tx: tx, head: "INSERT INTO main." + table + " (" + strings.Join(cols, ", ") + ") VALUES ", ncols: len(cols)}
	var err error
	in.full, err = tx.PrepareContext(ctx, in.query(insertRows))
	return in, err
}

func (in *inserter) query(rows int) string {
	one := "(" + strings.Repeat("?, ", in.ncols-1) + "?)"
	return in.head + strings.Repeat(one+", ", rows-1) + one
}

func (in *inserter) add(vals ...any) error {
	in.args = append(in.args, vals...)
	in.rows++
	if in.rows < insertRows {
		return nil
	}
	_, err := in.full.Exec(in.args...)
	in.args, in.rows = in.args[:0], 0
	return err
}

// flush inserts the rows still buffered.
func (in *inserter) flush(ctx context.Context) error {
	if in.rows == 0 {
		return nil
	}
	_, err := in.tx.ExecContext(ctx, in.query(in.rows), in.args...)
	in.args, in.rows = in.args[:0], 0
	return err
}

func (in *inserter) close() {
	if in != nil && in.full != nil {
		in.full.Close()
	}
}

func (v *version) begin(ctx context.Context) error {
	var err error
	if v.conn, err = v.s.db.Conn(ctx); err != nil {
		return err
	}
	// The transaction lives until Finish, beyond the caller's ctx: Add
	// methods have none. Abort and Finish end it.
	bg := context.WithoutCancel(ctx)
	if v.tx, err = v.conn.BeginTx(bg, nil); err != nil {
		return err
	}
	for _, p := range []struct {
		in    **inserter
		table string
		cols  []string
	}{
		{&v.patients, "data_patient", []string{"version", "patient_id", "nhs_number", "family_name", "given_name", "date_of_birth",
			"sex", "postcode", "gp_practice", "status"}},
		{&v.locations, "data_record_location", []string{"version", "patient_id", "org_code", "local_id"}},
		{&v.items, "data_care_item", []string{"version", "patient_id", "seq", "org_code", "kind", "code_system", "code", "display",
			"start_date", "end_date", "status", "item_id"}},
		{&v.orgs, "data_organisation", []string{"version", "org_code", "name", "org_type", "last_delivery_at", "stale"}},
	} {
		if *p.in, err = newInserter(bg, v.tx, p.table, p.cols); err != nil {
			return err
		}
	}
	return nil
}

func (v *version) Number() int64 { return v.n }

func (v *version) add(in *inserter, what string, args ...any) error {
	if v.tx == nil {
		return fmt.Errorf("version %d: adding %s: the version is finished or aborted", v.n, what)
	}
	if err := in.add(args...); err != nil {
		return fmt.Errorf("version %d: adding %s: %w", v.n, what, err)
	}
	return nil
}

func (v *version) AddPatient(p store.Patient) error {
	if p.Status == "withheld" {
		// The published marker of a withheld patient carries no more than
		// the NHS number, so that the objection can be followed.
		return v.add(v.patients, "patient", v.n, p.PatientID, nullable(p.NHSNumber), nil, nil, nil, nil, nil, nil, p.Status)
	}
	return v.add(v.patients, "patient", v.n, p.PatientID, nullable(p.NHSNumber), nullable(p.FamilyName), nullable(p.GivenName),
		nullable(p.DateOfBirth), nullable(p.Sex), nullable(p.Postcode), nullable(p.GPPractice), p.Status)
}

func (v *version) AddLocation(l store.Location) error {
	return v.add(v.locations, "record location", v.n, l.PatientID, l.OrgCode, l.LocalID)
}

func (v *version) AddItem(i store.Item) error {
	v.seq++
	return v.add(v.items, "care item", v.n, i.PatientID, v.seq, i.OrgCode, i.Kind, i.CodeSystem, i.Code, i.Display,
		nullable(i.StartDate), nullable(i.EndDate), i.Status, i.ItemID)
}

func (v *version) AddOrganisation(o store.Organisation) error {
	return v.add(v.orgs, "organisation", v.n, o.OrgCode, o.Name, o.OrgType, nullTS(o.LastDeliveryAt), o.Stale)
}

func (v *version) closeStmts() {
	for _, in := range []*inserter{v.patients, v.locations, v.items, v.orgs} {
		in.close()
	}
	v.patients, v.locations, v.items, v.orgs = nil, nil, nil, nil
}

// rollback ends the transaction without keeping anything.
func (v *version) rollback() {
	v.closeStmts()
	if v.tx != nil {
		v.tx.Rollback()
		v.tx = nil
	}
	if v.conn != nil {
		v.conn.Close()
		v.conn = nil
	}
	v.s.mu.Lock()
	if v.s.building == v {
		v.s.building = nil
	}
	v.s.mu.Unlock()
}

// Finish commits the version's rows and refreshes the planner statistics.
func (v *version) Finish(ctx context.Context) error {
	if v.tx == nil {
		return fmt.Errorf("finishing version %d: the version is finished or aborted", v.n)
	}
	var err error
	for _, in := range []*inserter{v.orgs, v.patients, v.locations, v.items} {
		if err == nil {
			err = in.flush(ctx)
		}
	}
	v.closeStmts()
	if err != nil {
		v.rollback()
		return fmt.Errorf("finishing version %d: %w", v.n, err)
	}
	err = v.tx.Commit()
	v.tx = nil
	conn := v.conn
	v.conn = nil
	v.s.mu.Lock()
	if v.s.building == v {
		v.s.building = nil
	}
	v.s.mu.Unlock()
	if err != nil {
		conn.Close()
		return fmt.Errorf("finishing version %d: %w", v.n, err)
	}
	v.finished = true
	defer conn.Close()
	// Sampled statistics (analysis_limit) cost little on any size.
	if _, err := conn.ExecContext(ctx, `PRAGMA analysis_limit = 1000`); err == nil {
		if _, err := conn.ExecContext(ctx, `ANALYZE main`); err != nil {
			v.s.log.Warn("could not refresh the planner statistics", zap.Error(err))
		}
	}
	return nil
}

// Abort drops the version (unless it already went live).
func (v *version) Abort(ctx context.Context) error {
	v.rollback()
	return v.s.abandon(context.WithoutCancel(ctx), v.n)
}

// survivors returns the SQL that resolves the patient id expression pid
// through ops.patient_survivor (a staged row may still carry a merged id,
// see Reviews), or pid itself when no patient was ever merged.
func (s *Store) survivors(ctx context.Context, pid string) (string, error) {
	var some bool
	if err := s.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM ops.patient_survivor)`).Scan(&some); err != nil {
		return "", fmt.Errorf("reading merged patients: %w", err)
	}
	if !some {
		return pid, nil
	}
	return `COALESCE((SELECT m.to_patient FROM ops.patient_survivor m WHERE m.from_patient = ` + pid + `), ` + pid + `)`, nil
}

// StreamPersons streams the unmerged staged persons of deliveries, each
// under its patient's survivor if that patient was merged.
func (s *Store) StreamPersons(ctx context.Context, deliveries []int64, fn func(store.StagedPerson) error) error {
	pid, err := s.survivors(ctx, "sp.patient_id")
	if err != nil {
		return err
	}
	return store.EachStagedPerson(ctx, s.db, fn, `SELECT sp.delivery_id, sp.source_id, sp.file, sp.line, sp.org_code, sp.local_id, sp.nhs_number,
			sp.family_name, sp.given_name, COALESCE(sp.date_of_birth, ''), sp.sex, sp.postcode, sp.gp_practice, sp.sensitive, sp.objection,
			sp.address, sp.email, sp.phone, `+pid+` AS pid
		FROM ops.staged_person sp WHERE sp.delivery_id IN (`+idList(deliveries)+`) AND sp.merged = 0
		ORDER BY pid, sp.delivery_id, sp.line`)
}

// StreamItems streams the unmerged staged care items of deliveries with
// the patient their person links to (the person in the lowest-numbered of
// the person deliveries, as in pgstore).
func (s *Store) StreamItems(ctx context.Context, itemDeliveries, personDeliveries []int64, fn func(store.StagedItem) error) error {
	pid, err := s.survivors(ctx, "p.patient_id")
	if err != nil {
		return err
	}
	// Each (organisation, local id)'s person of the oldest delivery that
	// has one (SQLite takes a bare column of a min() aggregate from the
	// row with the minimum), built once and joined: twice as fast as a
	// lookup per item.
	return store.EachStagedItem(ctx, s.db, fn, `WITH p AS MATERIALIZED (
			SELECT sp.org_code, sp.local_id, sp.patient_id, min(sp.delivery_id) FROM ops.staged_person sp
			WHERE sp.delivery_id IN (`+idList(personDeliveries)+`) AND sp.merged = 0 GROUP BY sp.org_code, sp.local_id)
		SELECT i.delivery_id, i.source_id, i.file, i.line, i.org_code, i.local_id, i.item_id,
			i.kind, i.code_system, i.code, i.display, COALESCE(i.start_date, ''), COALESCE(i.end_date, ''), i.status,
			COALESCE(`+pid+`, 0) AS pid
		FROM ops.staged_item i LEFT JOIN p ON p.org_code = i.org_code AND p.local_id = i.local_id
		WHERE i.delivery_id IN (`+idList(itemDeliveries)+`) AND i.merged = 0
		ORDER BY pid, i.delivery_id, i.line`)
}

// withSync runs fn on a connection of its own whose schema synchronous
// setting is FULL, so that a commit is on disk before it returns.
func (s *Store) withSync(ctx context.Context, schema string, fn func(*sql.Conn) error) error {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `PRAGMA `+schema+`.synchronous = FULL`); err != nil {
		return err
	}
	defer func() {
		if _, err := conn.ExecContext(context.WithoutCancel(ctx), `PRAGMA `+schema+`.synchronous = NORMAL`); err != nil {
			_ = conn.Raw(func(any) error { return errBadConn })
		}
	}()
	return fn(conn)
}

// Swap checks the version and makes it live.
//
// The live pointer moves in one transaction of the published file, which
// is what readers see. The version's ledger goes to the ops file first, in
// a transaction committed (and synced) while the published file's
// transaction holds its write lock with the checks done but the pointer not
// yet moved; see the package documentation for why and how a kill in
// between is undone.
func (s *Store) Swap(ctx context.Context, sw store.Swap) error {
	for _, o := range sw.Sources {
		if !o.Balanced() {
			return fmt.Errorf("%w: source %s does not balance: %d in, %d loaded + %d quarantined + %d withheld + %d merged + %d pending",
				ErrCheck, o.SourceID, o.RowsIn, o.Loaded, o.Quarantined, o.Withheld, o.Merged, o.Pending)
		}
	}
	s.mu.Lock()
	unfinished := s.building != nil && s.building.n == sw.Version
	s.mu.Unlock()
	if unfinished {
		return fmt.Errorf("swapping in version %d: the version is not finished", sw.Version)
	}
	merges, survivors, err := s.publishedMerges(ctx)
	if err != nil {
		return fmt.Errorf("swapping in version %d: %w", sw.Version, err)
	}
	err = s.withSync(ctx, "main", func(w *sql.Conn) error {
		tx, err := w.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("swapping in version %d: %w", sw.Version, err)
		}
		defer tx.Rollback()
		// The first statement writes, so the transaction holds the
		// published file's write lock from here on (serialising with a
		// rollback) and its checks see what it will publish.
		res, err := tx.ExecContext(ctx, `UPDATE main.version SET state = state WHERE version = ? AND state = 'building'`, sw.Version)
		if err != nil {
			return fmt.Errorf("swapping in version %d: %w", sw.Version, err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return fmt.Errorf("swapping in version %d: no such version is being built", sw.Version)
		}
		if err := checkVersion(ctx, tx, sw); err != nil {
			return err
		}
		// Merged patients and their survivors, for viewers holding an old id.
		for _, c := range merges {
			if c.Kind != store.ChangeMerge || c.From == c.To {
				continue
			}
			if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO main.data_patient_merge (version, old_patient_id, patient_id, merged_at)
				VALUES (?, ?, ?, ?)`, sw.Version, c.From, survivors[c.From], ts(c.At)); err != nil {
				return fmt.Errorf("swapping in version %d: publishing merged patients: %w", sw.Version, err)
			}
		}
		if err := s.withSync(ctx, "ops", func(o *sql.Conn) error {
			return store.InTx(ctx, o, func(otx *sql.Tx) error { return recordSwap(ctx, otx, sw) })
		}); err != nil {
			return err
		}
		if testHookAfterOpsCommit != nil {
			testHookAfterOpsCommit()
		}
		err = func() error {
			for _, st := range []struct {
				q    string
				args []any
			}{
				{`UPDATE main.version SET state = 'kept' WHERE state = 'live'`, nil},
				{`UPDATE main.version SET state = 'live', published_at = ? WHERE version = ?`, []any{ts(time.Now()), sw.Version}},
				{`INSERT INTO main.live (one, version) VALUES (1, ?) ON CONFLICT (one) DO UPDATE SET version = excluded.version`,
					[]any{sw.Version}},
				// A rollback withdraws the live version for good and
				// supersedes the version it republishes.
				{`UPDATE main.version SET state = 'rolled_back' WHERE version = ?`, []any{sw.RollbackFrom}},
				{`UPDATE main.version SET state = 'superseded' WHERE version = ?`, []any{sw.RollbackTo}},
			} {
				if _, err := tx.ExecContext(ctx, st.q, st.args...); err != nil {
					return err
				}
			}
			return tx.Commit()
		}()
		if err != nil {
			if uerr := s.undoSwapLedger(context.WithoutCancel(ctx), sw.Version, sw.RunID); uerr != nil {
				s.log.Error("could not remove the ledger of a failed swap; the next run will", zap.Error(uerr))
			}
			return fmt.Errorf("swapping in version %d: %w", sw.Version, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	// The new version is live; tidying old ones must not undo that.
	if err := s.retire(ctx, sw.Keep); err != nil {
		s.log.Warn("could not retire old versions; the next publish tries again", zap.Error(err))
	}
	return nil
}

// recordSwap writes the version's ledger: its metadata, the delivery of
// every source, the sources' outcomes and the publish-time quarantine.
func recordSwap(ctx context.Context, tx *sql.Tx, sw store.Swap) error {
	var stale []string
	for _, o := range sw.Sources {
		if o.Stale {
			stale = append(stale, o.SourceID)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO ops.version_meta (version, run_id, register_hash, stale_sources)
		VALUES (?, ?, ?, ?)`, sw.Version, sw.RunID, sw.RegisterHash, strings.Join(stale, ",")); err != nil {
		return fmt.Errorf("recording version %d: %w", sw.Version, err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE ops.run SET published_version = ? WHERE run_id = ?`, sw.Version, sw.RunID); err != nil {
		return fmt.Errorf("recording version %d: %w", sw.Version, err)
	}
	for _, o := range sw.Sources {
		reason := ""
		if o.Stale {
			reason = o.Error
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO ops.version_delivery (version, source_id, delivery_id, stale, stale_reason, was_status)
			VALUES (?1, ?2, ?3, ?4, ?5, (SELECT status FROM ops.delivery WHERE delivery_id = ?3))`,
			sw.Version, o.SourceID, nullID(o.DeliveryID), o.Stale, reason); err != nil {
			return fmt.Errorf("recording deliveries of version %d: %w", sw.Version, err)
		}
		if o.DeliveryID != 0 {
			if _, err := tx.ExecContext(ctx, `UPDATE ops.delivery SET status = 'published' WHERE delivery_id = ?`, o.DeliveryID); err != nil {
				return fmt.Errorf("recording deliveries of version %d: %w", sw.Version, err)
			}
		}
	}
	if err := insertOutcomes(ctx, tx, sw.RunID, sw.Sources); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE ops.decision SET published_version = ?
		WHERE applied_run IS NOT NULL AND published_version IS NULL`, sw.Version); err != nil {
		return fmt.Errorf("recording published decisions: %w", err)
	}
	for _, w := range sw.Withheld {
		if _, err := tx.ExecContext(ctx, `INSERT INTO ops.withheld_summary (run_id, version, source_id, kind, reason, count)
			VALUES (?, ?, ?, ?, ?, ?)`, sw.RunID, sw.Version, w.SourceID, w.Kind, w.Reason, w.Count); err != nil {
			return fmt.Errorf("recording withheld counts: %w", err)
		}
	}
	for _, o := range sw.Overrides {
		if _, err := tx.ExecContext(ctx, `INSERT INTO ops.override_applied
			(run_id, version, patient_id, reason, authorised_by, valid_from, valid_to, scope) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			sw.RunID, sw.Version, o.PatientID, o.Reason, o.AuthorisedBy, isoDate(o.ValidFrom), nullable(isoDate(o.ValidTo)), o.Scope); err != nil {
			return fmt.Errorf("recording applied overrides: %w", err)
		}
	}
	now := ts(time.Now())
	for _, r := range sw.Rejects {
		if _, err := tx.ExecContext(ctx, `INSERT INTO ops.quarantine (run_id, source_id, version, file, line, reason, raw, recorded_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, sw.RunID, r.SourceID, sw.Version, r.File, r.Line, r.Reason, r.Raw, now); err != nil {
			return fmt.Errorf("recording publish-time quarantine: %w", err)
		}
	}
	return nil
}

// checkVersion refuses a version whose contents disagree with what the
// pipeline built, or that carries data of a withheld patient: the checks
// of pgstore, reported in its order, made in one pass over each table.
func checkVersion(ctx context.Context, tx *sql.Tx, sw store.Swap) error {
	v := sw.Version
	var patients, withheldData, badStatus, locations, strayLocations, items, itemsWithoutLocation int
	passes := []struct {
		q    string
		dest []any
	}{
		{`SELECT count(*),
				COALESCE(sum(status = 'withheld' AND (family_name IS NOT NULL OR given_name IS NOT NULL OR date_of_birth IS NOT NULL
					OR sex IS NOT NULL OR postcode IS NOT NULL OR gp_practice IS NOT NULL)), 0),
				COALESCE(sum(status NOT IN ('shared', 'withheld')), 0)
			FROM main.data_patient WHERE version = ?1`, []any{&patients, &withheldData, &badStatus}},
		{`SELECT count(*), COALESCE(sum(NOT EXISTS (SELECT 1 FROM main.data_patient p
				WHERE p.version = ?1 AND p.patient_id = l.patient_id AND p.status = 'shared')), 0)
			FROM main.data_record_location l WHERE l.version = ?1`, []any{&locations, &strayLocations}},
		{`SELECT count(*), COALESCE(sum(NOT EXISTS (SELECT 1 FROM main.data_record_location l
				WHERE l.version = ?1 AND l.patient_id = i.patient_id AND l.org_code = i.org_code)), 0)
			FROM main.data_care_item i WHERE i.version = ?1`, []any{&items, &itemsWithoutLocation}},
	}
	for _, p := range passes {
		if err := tx.QueryRowContext(ctx, p.q, v).Scan(p.dest...); err != nil {
			return fmt.Errorf("checking version %d: %w", v, err)
		}
	}
	for _, c := range []struct {
		name      string
		got, want int
	}{{"patient", patients, sw.Patients}, {"record_location", locations, sw.Locations}, {"care_item", items, sw.Items}} {
		if c.got != c.want {
			return fmt.Errorf("%w: version %d has %d %s rows, the run built %d", ErrCheck, v, c.got, c.name, c.want)
		}
	}
	// Every location belongs to a shared patient once strayLocations is
	// 0, so an item with a location of its patient at its organisation
	// belongs to a shared patient: only when some item lacks one is it
	// worth counting the items of withheld or missing patients.
	strayItems := 0
	if strayLocations == 0 && itemsWithoutLocation > 0 {
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM main.data_care_item i
			WHERE i.version = ?1 AND NOT EXISTS (SELECT 1 FROM main.data_patient p
				WHERE p.version = ?1 AND p.patient_id = i.patient_id AND p.status = 'shared')`, v).Scan(&strayItems); err != nil {
			return fmt.Errorf("checking version %d: %w", v, err)
		}
	}
	for _, c := range []struct {
		what string
		n    int
	}{
		{"withheld patients carrying demographics", withheldData},
		{"patients with a status other than shared or withheld", badStatus},
		{"record locations of withheld or missing patients", strayLocations},
		{"care items of withheld or missing patients", strayItems},
		{"care items from an organisation that holds no record of the patient", itemsWithoutLocation},
	} {
		if c.n != 0 {
			return fmt.Errorf("%w: version %d has %d %s", ErrCheck, v, c.n, c.what)
		}
	}
	return nil
}

// retire deletes versions beyond the newest keep (live included) and the
// staged rows of deliveries no kept version uses. Failure here leaves extra
// data behind but never touches the live version, so Swap only logs it.
func (s *Store) retire(ctx context.Context, keep int) error {
	retired, err := store.VersionsToRetire(ctx, s.db, "main.version", keep)
	if err != nil {
		return err
	}
	for _, v := range retired {
		err := s.inTx(ctx, func(tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx, `UPDATE main.version SET state = 'retired'
				WHERE version = ? AND state IN ('kept', 'rolled_back', 'superseded')`, v)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 0 {
				return nil
			}
			return deleteVersionRows(ctx, tx, v)
		})
		if err != nil {
			return fmt.Errorf("retiring version %d: %w", v, err)
		}
	}
	// Staged (or held) deliveries older than a source's published one will
	// never be published.
	if err := s.discard(ctx, `SELECT d.delivery_id FROM ops.delivery d WHERE d.status IN ('staged', 'held') AND EXISTS (
		SELECT 1 FROM ops.delivery p WHERE p.source_id = d.source_id AND p.status = 'published' AND p.delivery_id > d.delivery_id)`); err != nil {
		return err
	}
	unused, err := store.QueryRows(ctx, s.db, store.ScanInt64, `SELECT d.delivery_id FROM ops.delivery d WHERE d.status = 'published' AND NOT EXISTS (
		SELECT 1 FROM ops.version_delivery vd JOIN main.version v ON v.version = vd.version
		WHERE vd.delivery_id = d.delivery_id AND v.state IN ('live', 'kept'))`)
	if err != nil {
		return fmt.Errorf("finding superseded deliveries: %w", err)
	}
	if len(unused) == 0 {
		return nil
	}
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		list := idList(unused)
		for _, q := range []string{
			`DELETE FROM ops.staged_person WHERE delivery_id IN (` + list + `)`,
			`DELETE FROM ops.staged_item WHERE delivery_id IN (` + list + `)`,
			`UPDATE ops.delivery SET status = 'superseded' WHERE delivery_id IN (` + list + `) AND status = 'published'`,
		} {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("removing superseded staged rows: %w", err)
	}
	return nil
}

// Previous returns the newest kept version older than the live one, with
// the deliveries it was built from. A rollback publishes those deliveries
// again, as a new version, with Swap.RollbackFrom and RollbackTo set.
func (s *Store) Previous(ctx context.Context) (store.Publication, []store.VersionSource, bool, error) {
	p, err := publication(ctx, s.db, `v.version = (SELECT max(version) FROM main.version
		WHERE state = 'kept' AND version < (SELECT version FROM main.live))`)
	if errors.Is(err, sql.ErrNoRows) {
		return p, nil, false, nil
	}
	if err != nil {
		return p, nil, false, fmt.Errorf("finding the previous version: %w", err)
	}
	p.Stale = nil // rebuilt from the sources below, as pgstore does
	rows, err := s.db.QueryContext(ctx, `SELECT vd.source_id, vd.stale, vd.stale_reason, d.delivery_id, d.org_code, d.kind, d.name,
			d.hash, d.received_at, d.rows_in, d.quarantined, d.merged, d.seq
		FROM ops.version_delivery vd LEFT JOIN ops.delivery d ON d.delivery_id = vd.delivery_id
		WHERE vd.version = ? ORDER BY vd.source_id`, p.Version)
	if err != nil {
		return p, nil, false, fmt.Errorf("reading the previous version's deliveries: %w", err)
	}
	defer rows.Close()
	var out []store.VersionSource
	for rows.Next() {
		var vs store.VersionSource
		var id, in, q, m, seq sql.NullInt64
		var org, kind, name, hash, at sql.NullString
		if err := rows.Scan(&vs.SourceID, &vs.Stale, &vs.StaleReason, &id, &org, &kind, &name, &hash, &at, &in, &q, &m, &seq); err != nil {
			return p, nil, false, fmt.Errorf("reading the previous version's deliveries: %w", err)
		}
		if id.Valid {
			d := &store.Delivery{ID: id.Int64, SourceID: vs.SourceID, OrgCode: org.String, Kind: kind.String, Name: name.String,
				Hash: hash.String, RowsIn: int(in.Int64), Quarantined: int(q.Int64), Merged: int(m.Int64), Seq: seq.Int64}
			if d.ReceivedAt, err = parseTS(at.String); err != nil {
				return p, nil, false, fmt.Errorf("reading the previous version's deliveries: %w", err)
			}
			vs.Delivery = d
		}
		if vs.Stale {
			p.Stale = append(p.Stale, vs.SourceID)
		}
		out = append(out, vs)
	}
	if err := rows.Err(); err != nil {
		return p, nil, false, fmt.Errorf("reading the previous version's deliveries: %w", err)
	}
	return p, out, true, nil
}

// publication reads the version that where selects (over version v) with
// its ops metadata.
func publication(ctx context.Context, q queryRower, where string, args ...any) (store.Publication, error) {
	var p store.Publication
	var published sql.NullString
	var stale string
	err := q.QueryRowContext(ctx, `SELECT v.version, v.run_id, v.published_at, COALESCE(m.register_hash, ''),
			COALESCE(m.stale_sources, '')
		FROM main.version v LEFT JOIN ops.version_meta m ON m.version = v.version
		WHERE `+where, args...).
		Scan(&p.Version, &p.RunID, &published, &p.RegisterHash, &stale)
	if err != nil {
		return p, err
	}
	if published.Valid {
		if p.PublishedAt, err = parseTS(published.String); err != nil {
			return p, err
		}
	}
	if stale != "" {
		p.Stale = strings.Split(stale, ",")
	}
	return p, nil
}

// Status reports the live version, recent runs and every source's state.
func (s *Store) Status(ctx context.Context, n int) (store.Status, error) {
	var st store.Status
	if live, ok, err := s.Live(ctx); err != nil {
		return st, err
	} else if ok {
		st.Live = &live
	}
	rows, err := s.db.QueryContext(ctx, `SELECT run_id, kind, started_at, finished_at, status, message, COALESCE(published_version, 0)
		FROM ops.run ORDER BY run_id DESC LIMIT ?`, n)
	if err != nil {
		return st, fmt.Errorf("reading runs: %w", err)
	}
	for rows.Next() {
		var r store.RunSummary
		var started string
		var fin sql.NullString
		var status string
		if err := rows.Scan(&r.RunID, &r.Kind, &started, &fin, &status, &r.Message, &r.Version); err != nil {
			rows.Close()
			return st, fmt.Errorf("reading runs: %w", err)
		}
		if r.StartedAt, err = parseTS(started); err == nil {
			r.FinishedAt, err = parseNullTS(fin)
		}
		if err != nil {
			rows.Close()
			return st, fmt.Errorf("reading runs: %w", err)
		}
		r.Status = store.RunStatus(status)
		r.Sources = []store.SourceOutcome{}
		st.Runs = append(st.Runs, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return st, fmt.Errorf("reading runs: %w", err)
	}
	for i := range st.Runs {
		srows, err := s.db.QueryContext(ctx, `SELECT source_id, org_code, status, COALESCE(delivery_id, 0), delivery, rows_in, loaded,
			quarantined, withheld, merged, pending, duplicates, stale, error FROM ops.run_source WHERE run_id = ? ORDER BY source_id`, st.Runs[i].RunID)
		if err != nil {
			return st, fmt.Errorf("reading run sources: %w", err)
		}
		for srows.Next() {
			var o store.SourceOutcome
			if err := srows.Scan(&o.SourceID, &o.OrgCode, &o.Status, &o.DeliveryID, &o.Delivery, &o.RowsIn, &o.Loaded,
				&o.Quarantined, &o.Withheld, &o.Merged, &o.Pending, &o.Duplicates, &o.Stale, &o.Error); err != nil {
				srows.Close()
				return st, fmt.Errorf("reading run sources: %w", err)
			}
			st.Runs[i].Sources = append(st.Runs[i].Sources, o)
		}
		srows.Close()
		if err := srows.Err(); err != nil {
			return st, fmt.Errorf("reading run sources: %w", err)
		}
	}
	srows, err := s.db.QueryContext(ctx, `SELECT ss.source_id, ss.org_code, COALESCE(d.name, ''), d.received_at, ss.last_attempt_at,
			COALESCE(vd.stale, 0), COALESCE(vd.stale_reason, '')
		FROM ops.source_state ss
		LEFT JOIN main.live l ON true
		LEFT JOIN ops.version_delivery vd ON vd.version = l.version AND vd.source_id = ss.source_id
		LEFT JOIN ops.delivery d ON d.delivery_id = vd.delivery_id
		ORDER BY ss.source_id`)
	if err != nil {
		return st, fmt.Errorf("reading sources: %w", err)
	}
	defer srows.Close()
	for srows.Next() {
		var ss store.SourceState
		var at, attempt sql.NullString
		if err := srows.Scan(&ss.SourceID, &ss.OrgCode, &ss.Delivery, &at, &attempt, &ss.Stale, &ss.StaleReason); err != nil {
			return st, fmt.Errorf("reading sources: %w", err)
		}
		if ss.LastDeliveryAt, err = parseNullTS(at); err == nil {
			ss.LastAttemptAt, err = parseNullTS(attempt)
		}
		if err != nil {
			return st, fmt.Errorf("reading sources: %w", err)
		}
		st.Sources = append(st.Sources, ss)
	}
	if err := srows.Err(); err != nil {
		return st, fmt.Errorf("reading sources: %w", err)
	}
	if st.Runs == nil {
		st.Runs = []store.RunSummary{}
	}
	slices.SortFunc(st.Sources, func(a, b store.SourceState) int { return strings.Compare(a.SourceID, b.SourceID) })
	return st, nil
}
