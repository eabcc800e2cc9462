// Package decision holds the rules of manual review decisions once for
// every store backend: how Decide works out the patient a record is pinned
// to and the merge or split it makes from the review row, and how
// ApplyDecisions resolves merges, moves links, pins decided records and
// releases held ones. A backend keeps only its SQL, behind Tx, one method
// a statement or two; the order of the steps, the checks and the errors
// live here.
package decision

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/careindex/careindex/loader/store"
	"github.com/careindex/careindex/transform/record"
)

// Review is the part of a review row a decision reads.
type Review struct {
	Status  string
	OrgCode string
	LocalID string
	// Candidate is the candidate patient; Assigned the patient the record
	// was given meanwhile (0: the record is held).
	Candidate int64
	Assigned  int64
}

// Pending is a decision not yet applied, with its review item.
type Pending struct {
	ReviewID int64
	OrgCode  string
	LocalID  string
	// Patient is the patient the record is pinned to; Other the decision's
	// other patient (see store.Decision.OtherPatientID).
	Patient int64
	Other   int64
	// Assigned and DeliveryID are the review item's (0: none); Held its
	// held record's JSON ("" for none), staged from SourceID, File and
	// Line.
	Assigned   int64
	DeliveryID int64
	Held       string
	SourceID   string
	File       string
	Line       int
	// Merges says the decision recorded a merge.
	Merges bool
}

// PendingSQL is the query of the decisions not yet applied, oldest first,
// with their review items, over the ops tables of schema (the backends
// name it differently); ReadPending reads its rows.
func PendingSQL(schema string) string {
	return fmt.Sprintf(`SELECT d.review_id, d.org_code, d.local_id, d.patient_id, COALESCE(d.other_patient_id, 0),
			COALESCE(r.assigned_patient_id, 0), COALESCE(r.delivery_id, 0), r.held_record, r.source_id, r.file, r.line,
			EXISTS (SELECT 1 FROM %[1]s.patient_change c WHERE c.review_id = d.review_id AND c.kind = 'merge')
		FROM %[1]s.decision d JOIN %[1]s.review r ON r.review_id = d.review_id
		WHERE d.applied_run IS NULL ORDER BY d.decided_at, d.review_id`, schema)
}

// ReadPending reads the rows of PendingSQL, and closes them.
func ReadPending(rows *sql.Rows) ([]Pending, error) {
	defer rows.Close()
	var out []Pending
	for rows.Next() {
		var p Pending
		if err := rows.Scan(&p.ReviewID, &p.OrgCode, &p.LocalID, &p.Patient, &p.Other, &p.Assigned, &p.DeliveryID, &p.Held,
			&p.SourceID, &p.File, &p.Line, &p.Merges); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// Tx is what the rules need of a backend, inside one transaction.
type Tx interface {
	// LockReview takes the locks under which one decision at a time is
	// taken, and none while a run applies them, before anything is read.
	LockReview(ctx context.Context, reviewID int64) error
	// Review reads a review row; an unknown id is sql.ErrNoRows.
	Review(ctx context.Context, reviewID int64) (Review, error)
	// Changes returns every recorded merge and split, oldest first.
	Changes(ctx context.Context) ([]store.PatientChange, error)
	// KeptApart reports whether a decision kept patients a and b apart.
	KeptApart(ctx context.Context, a, b int64) (bool, error)
	// NewPatientID takes the next patient id.
	NewPatientID(ctx context.Context) (int64, error)
	// SaveDecision records d, sets its review item's status and records
	// its change, if any.
	SaveDecision(ctx context.Context, d store.Decision, status string) error

	// LockPending takes the locks under which decisions are applied and
	// none are taken, before anything is read.
	LockPending(ctx context.Context) error
	// Pending returns the decisions not yet applied, oldest first.
	Pending(ctx context.Context) ([]Pending, error)
	// MovePatients moves each patient from[i] to to[i] in one column of
	// one ops table.
	MovePatients(ctx context.Context, table, column string, from, to []int64) error
	// SetSurvivor records that patient from survives as patient to.
	SetSurvivor(ctx context.Context, from, to int64) error
	// Pin gives the record its pinned patient: its local link, its match
	// record and its staged rows in live deliveries.
	Pin(ctx context.Context, org, localID string, patient int64) error
	// Delivery reads a delivery's status and quarantined count, locking
	// the row where the backend locks rows; an unknown id is
	// sql.ErrNoRows.
	Delivery(ctx context.Context, deliveryID int64) (status string, quarantined int, err error)
	// HasStaged reports whether the delivery has an unmerged staged row of
	// the record.
	HasStaged(ctx context.Context, deliveryID int64, org, localID string) (bool, error)
	// FoldHeld counts a released record as merged into the delivery's row
	// of the same local id (one less quarantined, one more merged).
	FoldHeld(ctx context.Context, deliveryID int64) error
	// StageHeld stages a released record of p into its delivery with its
	// pinned patient, one less quarantined.
	StageHeld(ctx context.Context, p Pending, rec record.Person, patient int64) error
	// MarkApplied records that the decision on reviewID was applied by
	// runID with its final pinned patient.
	MarkApplied(ctx context.Context, reviewID, runID, patient int64) error
}

// RunTx runs fn in one transaction of a backend: committed when fn returns
// nil, rolled back otherwise.
type RunTx func(ctx context.Context, fn func(Tx) error) error

// Decide records a decision on an open review item (see
// store.Reviews.Decide). Only ReviewID, Kind, By, At and Note of in are
// read; At defaults to now and is returned to the microsecond.
func Decide(ctx context.Context, run RunTx, in store.Decision) (store.Decision, error) {
	d := store.Decision{ReviewID: in.ReviewID, Kind: in.Kind, By: in.By, At: in.At, Note: in.Note}
	if d.At.IsZero() {
		d.At = time.Now()
	}
	if d.Kind != store.DecideLink && d.Kind != store.DecideSeparate {
		return d, fmt.Errorf("deciding review item %d: unknown decision %q", d.ReviewID, d.Kind)
	}
	err := run(ctx, func(tx Tx) error {
		if err := tx.LockReview(ctx, d.ReviewID); err != nil {
			return err
		}
		r, err := tx.Review(ctx, d.ReviewID)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: %d", store.ErrNoReview, d.ReviewID)
		}
		if err != nil {
			return err
		}
		d.OrgCode, d.LocalID = r.OrgCode, r.LocalID
		if r.Status != store.ReviewOpen {
			return fmt.Errorf("%w: review item %d is %s", store.ErrDecided, d.ReviewID, r.Status)
		}
		all, err := tx.Changes(ctx)
		if err != nil {
			return err
		}
		var status string
		d, status = settle(d, r, store.ResolveMerges(all))
		switch c := d.Change; {
		case c != nil && c.Kind == store.ChangeMerge:
			apart, err := tx.KeptApart(ctx, c.From, c.To)
			if err != nil {
				return err
			}
			if apart {
				return fmt.Errorf("%w: linking review item %d would merge patients %d and %d, which a decision kept apart",
					store.ErrDecisionConflict, d.ReviewID, c.From, c.To)
			}
		case c != nil && c.Kind == store.ChangeSplit:
			if d.PatientID, err = tx.NewPatientID(ctx); err != nil {
				return err
			}
			c.To = d.PatientID
		}
		if c := d.Change; c != nil {
			c.ReviewID, c.By, c.At = d.ReviewID, d.By, d.At
		}
		return tx.SaveDecision(ctx, d, status)
	})
	if err != nil {
		if errors.Is(err, store.ErrNoReview) || errors.Is(err, store.ErrDecided) || errors.Is(err, store.ErrDecisionConflict) {
			return d, err
		}
		return d, fmt.Errorf("deciding review item %d: %w", d.ReviewID, err)
	}
	// Timestamps are kept to the microsecond.
	d.At = d.At.Truncate(time.Microsecond)
	if d.Change != nil {
		d.Change.At = d.At
	}
	return d, nil
}

// settle works out decision d on the open review row r, given the
// survivors of merged patients: the patient the record is pinned to, the
// other patient, the merge or split it makes and the review item's new
// status. A split's new patient (d.PatientID and the change's To) is left
// 0 for the caller to take.
func settle(d store.Decision, r Review, merged map[int64]int64) (store.Decision, string) {
	cand, assigned := Survivor(merged, r.Candidate), Survivor(merged, r.Assigned)
	d.PatientID, d.OtherPatientID, d.Change = 0, 0, nil
	switch {
	case d.Kind == store.DecideLink:
		d.PatientID = cand
		if assigned != 0 && assigned != cand {
			d.OtherPatientID = assigned
			d.Change = &store.PatientChange{Kind: store.ChangeMerge, From: assigned, To: cand}
		}
		return d, store.ReviewLinked
	case assigned != 0:
		d.PatientID, d.OtherPatientID = assigned, cand
	default:
		// A held record separated from its NHS number's patient: a
		// patient of its own (a split).
		d.OtherPatientID = cand
		d.Change = &store.PatientChange{Kind: store.ChangeSplit, From: cand}
	}
	return d, store.ReviewSeparated
}

// Survivor returns the patient that survives id after merged (id itself
// when it was not merged).
func Survivor(merged map[int64]int64, id int64) int64 {
	if to, ok := merged[id]; ok {
		return to
	}
	return id
}

// Apply makes the decisions not yet applied take effect (see
// store.Reviews.ApplyDecisions) and returns how many it applied.
func Apply(ctx context.Context, run RunTx, runID int64) (int, error) {
	applied := 0
	err := run(ctx, func(tx Tx) error {
		if err := tx.LockPending(ctx); err != nil {
			return err
		}
		pending, err := tx.Pending(ctx)
		if err != nil {
			return err
		}
		if len(pending) == 0 {
			return nil
		}
		all, err := tx.Changes(ctx)
		if err != nil {
			return err
		}
		merged := store.ResolveMerges(all)
		// Merges: everything of each merged patient moves to its survivor,
		// in one statement per table.
		if from, to := moves(pending, merged); len(from) > 0 {
			for _, c := range movedColumns() {
				if err := tx.MovePatients(ctx, c.table, c.column, from, to); err != nil {
					return fmt.Errorf("merging patients: %s: %w", c.table, err)
				}
			}
		}
		for f, t := range merged {
			if err := tx.SetSurvivor(ctx, f, t); err != nil {
				return fmt.Errorf("recording surviving patients: %w", err)
			}
		}
		for _, p := range pending {
			pin := Survivor(merged, p.Patient)
			if err := tx.Pin(ctx, p.OrgCode, p.LocalID, pin); err != nil {
				return fmt.Errorf("pinning a decided record: %w", err)
			}
			if err := release(ctx, tx, p, pin); err != nil {
				return fmt.Errorf("releasing a held record: %w", err)
			}
			if err := tx.MarkApplied(ctx, p.ReviewID, runID, pin); err != nil {
				return err
			}
		}
		applied = len(pending)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("applying decisions: %w", err)
	}
	return applied, nil
}

// column is one patient id column of an ops table.
type column struct{ table, column string }

// movedColumns are the columns a merge moves: every local link, NHS number
// link, match record, staged row, review item and decision of the merged
// patient.
func movedColumns() []column {
	return []column{
		{"local_link", "patient_id"}, {"nhs_link", "patient_id"}, {"match_record", "patient_id"},
		{"staged_person", "patient_id"}, {"review", "patient_id"}, {"review", "assigned_patient_id"},
		{"decision", "patient_id"}, {"decision", "other_patient_id"},
	}
}

// moves returns the merged patients of the pending merges, each with its
// survivor, in the order of pending.
func moves(pending []Pending, merged map[int64]int64) (from, to []int64) {
	for _, p := range pending {
		if p.Merges && p.Other != 0 {
			if s := Survivor(merged, p.Other); s != p.Other {
				from, to = append(from, p.Other), append(to, s)
			}
		}
	}
	return from, to
}

// releases reports whether applying p stages a held record: a record that
// was held (no patient given meanwhile) with the delivery that held it.
func (p Pending) releases() bool {
	return p.Assigned == 0 && p.Held != "" && p.DeliveryID != 0
}

// stillHeld reports whether a delivery of the status still counts a
// quarantined record and may have rows published.
func stillHeld(status string, quarantined int) bool {
	return quarantined != 0 && (status == "staged" || status == "published" || status == "held")
}

// release stages p's held record, with its pinned patient, into the
// delivery that held it, or folds it into the delivery's row of the same
// local id. A delivery whose rows are gone gets nothing: the record comes
// back with its next delivery.
func release(ctx context.Context, tx Tx, p Pending, pin int64) error {
	if !p.releases() {
		return nil
	}
	status, quarantined, err := tx.Delivery(ctx, p.DeliveryID)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && !stillHeld(status, quarantined)) {
		return nil
	}
	if err != nil {
		return err
	}
	have, err := tx.HasStaged(ctx, p.DeliveryID, p.OrgCode, p.LocalID)
	if err != nil {
		return err
	}
	if have {
		return tx.FoldHeld(ctx, p.DeliveryID)
	}
	var rec record.Person
	if err := json.Unmarshal([]byte(p.Held), &rec); err != nil {
		return err
	}
	return tx.StageHeld(ctx, p, rec, pin)
}

// HeldJSON encodes a held record for the review queue ("" for none).
func HeldJSON(p *record.Person) (string, error) {
	if p == nil {
		return "", nil
	}
	b, err := json.Marshal(p)
	if err != nil {
		return "", fmt.Errorf("encoding a held record: %w", err)
	}
	return string(b), nil
}
