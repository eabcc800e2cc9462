package pgstore

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/careindex/careindex/loader/store"
	"github.com/careindex/careindex/transform/record"
)

// BeginDelivery records a delivery being staged, discarding any delivery
// of the same source left half-staged by a run that failed or was killed.
func (s *Store) BeginDelivery(ctx context.Context, runID int64, d store.Delivery) (store.Stager, error) {
	if err := s.discard(ctx, `SELECT delivery_id FROM careindex_ops.delivery WHERE source_id = $1 AND status = 'staging'`, d.SourceID); err != nil {
		return nil, err
	}
	var base any
	if d.Base != 0 {
		base = d.Base
	}
	err := s.db.QueryRowContext(ctx, `INSERT INTO careindex_ops.delivery
		(source_id, org_code, kind, name, hash, received_at, run_id, seq, base) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) RETURNING delivery_id`,
		d.SourceID, d.OrgCode, d.Kind, d.Name, d.Hash, d.ReceivedAt, runID, d.Seq, base).Scan(&d.ID)
	if err != nil {
		return nil, fmt.Errorf("recording delivery of %s: %w", d.SourceID, err)
	}
	return &stager{s: s, runID: runID, d: d}, nil
}

// discard removes the staged rows of the deliveries the query selects
// (given arg) and marks them discarded.
func (s *Store) discard(ctx context.Context, query string, arg any) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		for _, table := range []string{"staged_person", "staged_item"} {
			if _, err := tx.ExecContext(ctx, `DELETE FROM careindex_ops.`+table+` WHERE delivery_id IN (`+query+`)`, arg); err != nil {
				return fmt.Errorf("discarding staged deliveries: %w", err)
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE careindex_ops.delivery SET status = 'discarded' WHERE delivery_id IN (`+query+`)`, arg); err != nil {
			return fmt.Errorf("discarding staged deliveries: %w", err)
		}
		return nil
	})
}

type stager struct {
	s       *Store
	runID   int64
	d       store.Delivery
	persons *copier
	items   *copier
	rejects *copier
	nReject int
}

var (
	stagedPersonCols = []string{"delivery_id", "source_id", "file", "line", "org_code", "local_id", "nhs_number", "family_name",
		"given_name", "date_of_birth", "sex", "postcode", "gp_practice", "sensitive", "objection", "address", "email", "phone", "patient_id", "deleted"}
	stagedItemCols = []string{"delivery_id", "source_id", "file", "line", "org_code", "local_id", "item_id", "kind", "code_system",
		"code", "display", "start_date", "end_date", "status", "dedupe_key", "deleted"}
	quarantineCols = []string{"run_id", "source_id", "delivery_id", "file", "line", "reason", "raw"}
)

func (st *stager) AddPersons(ctx context.Context, ps []store.StagedPerson) error {
	if st.persons == nil {
		c, err := beginCopy(ctx, st.s.db, "careindex_ops.staged_person", stagedPersonCols)
		if err != nil {
			return err
		}
		st.persons = c
	}
	for _, p := range ps {
		if err := st.persons.add(ctx, st.d.ID, st.d.SourceID, p.File, p.Line, p.OrgCode, p.LocalID, p.NHSNumber, p.FamilyName,
			p.GivenName, nullable(p.DateOfBirth), p.Sex, p.Postcode, p.GPPractice, p.Sensitive, p.Objection, p.Address, p.Email, p.Phone, p.PatientID, p.Deleted); err != nil {
			return err
		}
	}
	return nil
}

// ItemKey is the key under which two care items of one delivery are the
// same item: the organisation's item id when it sends one, otherwise the
// person, kind, code and start date.
func ItemKey(i record.CareItem) string {
	if i.ItemID != "" {
		return i.LocalID + "\x1fid\x1f" + i.ItemID
	}
	return i.LocalID + "\x1f" + i.Kind + "\x1f" + i.CodeSystem + "\x1f" + i.Code + "\x1f" + i.StartDate
}

func (st *stager) AddItems(ctx context.Context, items []record.CareItem) error {
	if st.items == nil {
		c, err := beginCopy(ctx, st.s.db, "careindex_ops.staged_item", stagedItemCols)
		if err != nil {
			return err
		}
		st.items = c
	}
	for _, i := range items {
		if err := st.items.add(ctx, st.d.ID, st.d.SourceID, i.File, i.Line, i.OrgCode, i.LocalID, i.ItemID, i.Kind, i.CodeSystem,
			i.Code, i.Display, nullable(i.StartDate), nullable(i.EndDate), i.Status, ItemKey(i), i.Deleted); err != nil {
			return err
		}
	}
	return nil
}

func (st *stager) AddRejects(ctx context.Context, rs []store.Reject) error {
	if st.rejects == nil {
		c, err := beginCopy(ctx, st.s.db, "careindex_ops.quarantine", quarantineCols)
		if err != nil {
			return err
		}
		st.rejects = c
	}
	for _, r := range rs {
		if err := st.rejects.add(ctx, st.runID, st.d.SourceID, st.d.ID, r.File, r.Line, r.Reason, r.Raw); err != nil {
			return err
		}
	}
	st.nReject += len(rs)
	return nil
}

func (st *stager) SetHash(ctx context.Context, hash string) error {
	if _, err := st.s.db.ExecContext(ctx, `UPDATE careindex_ops.delivery SET hash = $2 WHERE delivery_id = $1`, st.d.ID, hash); err != nil {
		return fmt.Errorf("recording delivery hash: %w", err)
	}
	st.d.Hash = hash
	return nil
}

func (st *stager) Commit(ctx context.Context, rowsIn int) (store.Delivery, error) {
	for _, c := range []*copier{st.persons, st.items, st.rejects} {
		if c == nil {
			continue
		}
		if err := c.commit(ctx); err != nil {
			st.Abort(ctx)
			return st.d, fmt.Errorf("staging delivery of %s: %w", st.d.SourceID, err)
		}
	}
	st.persons, st.items, st.rejects = nil, nil, nil
	var merged int64
	err := st.s.inTx(ctx, func(tx *sql.Tx) error {
		r1, err := tx.ExecContext(ctx, `UPDATE careindex_ops.staged_person s SET merged = true
			WHERE s.delivery_id = $1 AND EXISTS (SELECT 1 FROM careindex_ops.staged_person o
				WHERE o.delivery_id = s.delivery_id AND o.org_code = s.org_code AND o.local_id = s.local_id AND o.line < s.line)`, st.d.ID)
		if err != nil {
			return fmt.Errorf("merging duplicate persons: %w", err)
		}
		r2, err := tx.ExecContext(ctx, `UPDATE careindex_ops.staged_item s SET merged = true
			WHERE s.delivery_id = $1 AND EXISTS (SELECT 1 FROM careindex_ops.staged_item o
				WHERE o.delivery_id = s.delivery_id AND o.dedupe_key = s.dedupe_key AND o.line < s.line)`, st.d.ID)
		if err != nil {
			return fmt.Errorf("merging duplicate care items: %w", err)
		}
		n1, _ := r1.RowsAffected()
		n2, _ := r2.RowsAffected()
		merged = n1 + n2
		if st.d.Base != 0 {
			// A delta: carry the base's rows the delta does not touch, then
			// drop the deletions (counted as merged: each was folded into
			// the record it removes).
			carried, deletions, err := applyDelta(ctx, tx, st.d.ID, st.d.Base)
			if err != nil {
				return err
			}
			rowsIn += carried
			merged += int64(deletions)
		}
		_, err = tx.ExecContext(ctx, `UPDATE careindex_ops.delivery SET status = 'staged', rows_in = $2, quarantined = $3, merged = $4
			WHERE delivery_id = $1`, st.d.ID, rowsIn, st.nReject, merged)
		if err != nil {
			return fmt.Errorf("recording delivery counts: %w", err)
		}
		return nil
	})
	if err != nil {
		return st.d, fmt.Errorf("staging delivery of %s: %w", st.d.SourceID, err)
	}
	st.d.RowsIn, st.d.Quarantined, st.d.Merged = rowsIn, st.nReject, int(merged)
	return st.d, nil
}

// applyDelta copies into delivery id the rows of base that the delta does
// not replace or delete, and removes the delta's deletion rows. It returns
// how many rows were carried and how many deletions were applied.
func applyDelta(ctx context.Context, tx *sql.Tx, id, base int64) (carried, deletions int, err error) {
	steps := []string{
		`INSERT INTO careindex_ops.staged_person (delivery_id, source_id, file, line, org_code, local_id, nhs_number, family_name,
			given_name, date_of_birth, sex, postcode, gp_practice, sensitive, objection, address, email, phone, patient_id)
		SELECT $1, b.source_id, b.file, b.line, b.org_code, b.local_id, b.nhs_number, b.family_name, b.given_name, b.date_of_birth,
			b.sex, b.postcode, b.gp_practice, b.sensitive, b.objection, b.address, b.email, b.phone, b.patient_id
		FROM careindex_ops.staged_person b WHERE b.delivery_id = $2 AND NOT b.merged
			AND NOT EXISTS (SELECT 1 FROM careindex_ops.staged_person n
				WHERE n.delivery_id = $1 AND n.org_code = b.org_code AND n.local_id = b.local_id)`,
		`INSERT INTO careindex_ops.staged_item (delivery_id, source_id, file, line, org_code, local_id, item_id, kind, code_system,
			code, display, start_date, end_date, status, dedupe_key)
		SELECT $1, b.source_id, b.file, b.line, b.org_code, b.local_id, b.item_id, b.kind, b.code_system, b.code, b.display,
			b.start_date, b.end_date, b.status, b.dedupe_key
		FROM careindex_ops.staged_item b WHERE b.delivery_id = $2 AND NOT b.merged
			AND NOT EXISTS (SELECT 1 FROM careindex_ops.staged_item n WHERE n.delivery_id = $1 AND n.dedupe_key = b.dedupe_key)`,
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
		res, err := tx.ExecContext(ctx, `DELETE FROM careindex_ops.`+table+` WHERE delivery_id = $1 AND deleted`, id)
		if err != nil {
			return 0, 0, fmt.Errorf("applying delta deletions: %w", err)
		}
		n, _ := res.RowsAffected()
		deletions += int(n)
	}
	return carried, deletions, nil
}

func (st *stager) Abort(ctx context.Context) error {
	st.persons.abort()
	st.items.abort()
	st.rejects.abort()
	st.persons, st.items, st.rejects = nil, nil, nil
	return st.s.discard(context.WithoutCancel(ctx), `SELECT $1::bigint`, st.d.ID)
}

// DeliveryID is the id of the delivery being staged.
func (st *stager) DeliveryID() int64 { return st.d.ID }
