package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/careindex/careindex/loader/store"
	"github.com/careindex/careindex/transform/record"
)

// BeginDelivery records a delivery being staged, discarding any delivery
// of the same source left half-staged by a run that failed or was killed.
//
// The stager keeps a connection of its own and writes the rows into TEMP
// tables there, which locks neither file; Commit moves them into the ops
// file in one transaction.
func (s *Store) BeginDelivery(ctx context.Context, runID int64, d store.Delivery) (store.Stager, error) {
	if err := s.discard(ctx, `SELECT delivery_id FROM ops.delivery WHERE source_id = ? AND status = 'staging'`, d.SourceID); err != nil {
		return nil, err
	}
	var base any
	if d.Base != 0 {
		base = d.Base
	}
	err := s.db.QueryRowContext(ctx, `INSERT INTO ops.delivery (source_id, org_code, kind, name, hash, received_at, run_id, seq, base)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING delivery_id`,
		d.SourceID, d.OrgCode, d.Kind, d.Name, d.Hash, ts(d.ReceivedAt), runID, d.Seq, base).Scan(&d.ID)
	if err != nil {
		return nil, fmt.Errorf("recording delivery of %s: %w", d.SourceID, err)
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("staging delivery of %s: %w", d.SourceID, err)
	}
	st := &stager{s: s, runID: runID, d: d, conn: conn}
	for _, q := range []string{
		`DROP TABLE IF EXISTS temp.stage_person`,
		`DROP TABLE IF EXISTS temp.stage_item`,
		`DROP TABLE IF EXISTS temp.stage_reject`,
		`CREATE TEMP TABLE stage_person (file TEXT, line INTEGER, org_code TEXT, local_id TEXT, nhs_number TEXT,
			family_name TEXT, given_name TEXT, date_of_birth TEXT, sex TEXT, postcode TEXT, gp_practice TEXT,
			sensitive INTEGER, objection TEXT, address TEXT, email TEXT, phone TEXT, patient_id INTEGER, deleted INTEGER)`,
		`CREATE TEMP TABLE stage_item (file TEXT, line INTEGER, org_code TEXT, local_id TEXT, item_id TEXT, kind TEXT,
			code_system TEXT, code TEXT, display TEXT, start_date TEXT, end_date TEXT, status TEXT, dedupe_key TEXT, deleted INTEGER)`,
		`CREATE TEMP TABLE stage_reject (file TEXT, line INTEGER, reason TEXT, raw TEXT)`,
	} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			st.Abort(ctx)
			return nil, fmt.Errorf("staging delivery of %s: %w", d.SourceID, err)
		}
	}
	return st, nil
}

// discard removes the staged rows of the deliveries the query selects
// (given args) and marks them discarded.
func (s *Store) discard(ctx context.Context, query string, args ...any) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		for _, table := range []string{"staged_person", "staged_item"} {
			if _, err := tx.ExecContext(ctx, `DELETE FROM ops.`+table+` WHERE delivery_id IN (`+query+`)`, args...); err != nil {
				return fmt.Errorf("discarding staged deliveries: %w", err)
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE ops.delivery SET status = 'discarded' WHERE delivery_id IN (`+query+`)`, args...); err != nil {
			return fmt.Errorf("discarding staged deliveries: %w", err)
		}
		return nil
	})
}

type stager struct {
	s       *Store
	runID   int64
	d       store.Delivery
	conn    *sql.Conn // nil once committed or aborted
	nReject int
}

// ItemKey is the key under which two care items of one delivery are the
// same item: the organisation's item id when it sends one, otherwise the
// person, kind, code and start date. It is pgstore.ItemKey.
func ItemKey(i record.CareItem) string {
	if i.ItemID != "" {
		return i.LocalID + "\x1fid\x1f" + i.ItemID
	}
	return i.LocalID + "\x1f" + i.Kind + "\x1f" + i.CodeSystem + "\x1f" + i.Code + "\x1f" + i.StartDate
}

// insertTemp inserts n rows into a TEMP table in one transaction with a
// prepared statement. Only the TEMP database is written.
func (st *stager) insertTemp(ctx context.Context, q string, n int, row func(i int) []any) error {
	if st.conn == nil {
		return fmt.Errorf("staging delivery of %s: the stager is closed", st.d.SourceID)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// Statements run without the caller's cancellation (a watcher per row
	// costs more than the row); the batch checks ctx above.
	bg := context.WithoutCancel(ctx)
	return store.InTx(bg, st.conn, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(bg, q)
		if err != nil {
			return fmt.Errorf("staging delivery of %s: %w", st.d.SourceID, err)
		}
		defer stmt.Close()
		for i := 0; i < n; i++ {
			if _, err := stmt.ExecContext(bg, row(i)...); err != nil {
				return fmt.Errorf("staging delivery of %s: %w", st.d.SourceID, err)
			}
		}
		return nil
	})
}

func (st *stager) AddPersons(ctx context.Context, ps []store.StagedPerson) error {
	return st.insertTemp(ctx, `INSERT INTO temp.stage_person VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`, len(ps), func(i int) []any {
		p := &ps[i]
		return []any{p.File, p.Line, p.OrgCode, p.LocalID, p.NHSNumber, p.FamilyName, p.GivenName, nullable(p.DateOfBirth),
			p.Sex, p.Postcode, p.GPPractice, p.Sensitive, p.Objection, p.Address, p.Email, p.Phone, p.PatientID, p.Deleted}
	})
}

func (st *stager) AddItems(ctx context.Context, items []record.CareItem) error {
	return st.insertTemp(ctx, `INSERT INTO temp.stage_item VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)`, len(items), func(n int) []any {
		i := &items[n]
		return []any{i.File, i.Line, i.OrgCode, i.LocalID, i.ItemID, i.Kind, i.CodeSystem, i.Code, i.Display,
			nullable(i.StartDate), nullable(i.EndDate), i.Status, ItemKey(*i), i.Deleted}
	})
}

func (st *stager) AddRejects(ctx context.Context, rs []store.Reject) error {
	err := st.insertTemp(ctx, `INSERT INTO temp.stage_reject VALUES (?,?,?,?)`, len(rs), func(i int) []any {
		return []any{rs[i].File, rs[i].Line, rs[i].Reason, rs[i].Raw}
	})
	if err == nil {
		st.nReject += len(rs)
	}
	return err
}

func (st *stager) SetHash(ctx context.Context, hash string) error {
	if _, err := st.s.db.ExecContext(ctx, `UPDATE ops.delivery SET hash = ? WHERE delivery_id = ?`, hash, st.d.ID); err != nil {
		return fmt.Errorf("recording delivery hash: %w", err)
	}
	st.d.Hash = hash
	return nil
}

// Commit moves the staged rows into the ops file in one transaction. A row
// is merged when a row of the same key has a smaller line (the first row of
// a key wins), as in pgstore. Persons go in sorted by their lookup key, so
// that the index the care items are matched through grows in order.
func (st *stager) Commit(ctx context.Context, rowsIn int) (store.Delivery, error) {
	if st.conn == nil {
		return st.d, fmt.Errorf("staging delivery of %s: the stager is closed", st.d.SourceID)
	}
	var merged int
	err := store.InTx(ctx, st.conn, func(tx *sql.Tx) error {
		steps := []struct {
			what string
			q    string
			args []any
		}{
			{"persons", `INSERT INTO ops.staged_person (delivery_id, source_id, file, line, org_code, local_id, nhs_number,
					family_name, given_name, date_of_birth, sex, postcode, gp_practice, sensitive, objection, address, email, phone,
					patient_id, deleted, merged)
				SELECT ?, ?, file, line, org_code, local_id, nhs_number, family_name, given_name, date_of_birth, sex,
					postcode, gp_practice, sensitive, objection, address, email, phone, patient_id, deleted,
					line > min(line) OVER (PARTITION BY org_code, local_id)
				FROM temp.stage_person ORDER BY org_code, local_id, line`, []any{st.d.ID, st.d.SourceID}},
			{"care items", `INSERT INTO ops.staged_item (delivery_id, source_id, file, line, org_code, local_id, item_id, kind,
					code_system, code, display, start_date, end_date, status, dedupe_key, deleted, merged)
				SELECT ?, ?, file, line, org_code, local_id, item_id, kind, code_system, code, display, start_date, end_date,
					status, dedupe_key, deleted, line > min(line) OVER (PARTITION BY dedupe_key)
				FROM temp.stage_item ORDER BY line`, []any{st.d.ID, st.d.SourceID}},
			{"rejects", `INSERT INTO ops.quarantine (run_id, source_id, delivery_id, file, line, reason, raw, recorded_at)
				SELECT ?, ?, ?, file, line, reason, raw, ? FROM temp.stage_reject ORDER BY rowid`,
				[]any{st.runID, st.d.SourceID, st.d.ID, ts(time.Now())}},
		}
		for _, step := range steps {
			if _, err := tx.ExecContext(ctx, step.q, step.args...); err != nil {
				return fmt.Errorf("storing staged %s: %w", step.what, err)
			}
		}
		if err := tx.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM ops.staged_person WHERE delivery_id = ?1 AND merged = 1)
				+ (SELECT count(*) FROM ops.staged_item WHERE delivery_id = ?1 AND merged = 1)`, st.d.ID).Scan(&merged); err != nil {
			return fmt.Errorf("counting merged rows: %w", err)
		}
		if st.d.Base != 0 {
			// A delta: carry the base's rows the delta does not touch, then
			// drop the deletions (counted as merged).
			carried, deletions, err := applyDelta(ctx, tx, st.d.ID, st.d.Base)
			if err != nil {
				return err
			}
			rowsIn += carried
			merged += deletions
		}
		if _, err := tx.ExecContext(ctx, `UPDATE ops.delivery SET status = 'staged', rows_in = ?, quarantined = ?, merged = ?
			WHERE delivery_id = ?`, rowsIn, st.nReject, merged, st.d.ID); err != nil {
			return fmt.Errorf("recording delivery counts: %w", err)
		}
		return nil
	})
	if err != nil {
		st.Abort(ctx)
		return st.d, fmt.Errorf("staging delivery of %s: %w", st.d.SourceID, err)
	}
	st.close(ctx)
	st.d.RowsIn, st.d.Quarantined, st.d.Merged = rowsIn, st.nReject, merged
	return st.d, nil
}

// close drops the TEMP tables and gives the connection back.
func (st *stager) close(ctx context.Context) {
	if st.conn == nil {
		return
	}
	ctx = context.WithoutCancel(ctx)
	for _, t := range []string{"stage_person", "stage_item", "stage_reject"} {
		if _, err := st.conn.ExecContext(ctx, `DROP TABLE IF EXISTS temp.`+t); err != nil {
			// Do not hand a connection with stray tables back to the pool.
			_ = st.conn.Raw(func(any) error { return errBadConn })
			break
		}
	}
	st.conn.Close()
	st.conn = nil
}

func (st *stager) Abort(ctx context.Context) error {
	st.close(ctx)
	return st.s.discard(context.WithoutCancel(ctx), `SELECT ?`, st.d.ID)
}

// applyDelta copies into delivery id the rows of base that the delta does
// not replace or delete, and removes the delta's deletion rows.
func applyDelta(ctx context.Context, tx *sql.Tx, id, base int64) (carried, deletions int, err error) {
	steps := []string{
		`INSERT INTO ops.staged_person (delivery_id, source_id, file, line, org_code, local_id, nhs_number, family_name,
			given_name, date_of_birth, sex, postcode, gp_practice, sensitive, objection, address, email, phone, patient_id)
		SELECT ?1, b.source_id, b.file, b.line, b.org_code, b.local_id, b.nhs_number, b.family_name, b.given_name, b.date_of_birth,
			b.sex, b.postcode, b.gp_practice, b.sensitive, b.objection, b.address, b.email, b.phone, b.patient_id
		FROM ops.staged_person b WHERE b.delivery_id = ?2 AND b.merged = 0
			AND NOT EXISTS (SELECT 1 FROM ops.staged_person n
				WHERE n.delivery_id = ?1 AND n.org_code = b.org_code AND n.local_id = b.local_id)`,
		`INSERT INTO ops.staged_item (delivery_id, source_id, file, line, org_code, local_id, item_id, kind, code_system,
			code, display, start_date, end_date, status, dedupe_key)
		SELECT ?1, b.source_id, b.file, b.line, b.org_code, b.local_id, b.item_id, b.kind, b.code_system, b.code, b.display,
			b.start_date, b.end_date, b.status, b.dedupe_key
		FROM ops.staged_item b WHERE b.delivery_id = ?2 AND b.merged = 0
			AND NOT EXISTS (SELECT 1 FROM ops.staged_item n WHERE n.delivery_id = ?1 AND n.dedupe_key = b.dedupe_key)`,
	}
	for _, q := range steps {
		res, err := tx.ExecContext(ctx, q, id, base)
		if err != nil {
			return 0, 0, fmt.Errorf("applying delta to delivery %d: %w", base, err)
		}
		n, _ := res.RowsAffected()
		carried += int(n)
	}
	for _, table := range []string{"staged_person", "staged_item"} {
		res, err := tx.ExecContext(ctx, `DELETE FROM ops.`+table+` WHERE delivery_id = ? AND deleted = 1`, id)
		if err != nil {
			return 0, 0, fmt.Errorf("applying delta deletions: %w", err)
		}
		n, _ := res.RowsAffected()
		deletions += int(n)
	}
	return carried, deletions, nil
}

// DeliveryID is the id of the delivery being staged.
func (st *stager) DeliveryID() int64 { return st.d.ID }
