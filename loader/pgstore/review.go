package pgstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/lib/pq"

	"github.com/careindex/careindex/loader/decision"
	"github.com/careindex/careindex/loader/store"
	"github.com/careindex/careindex/transform/record"
)

// Reviews returns the review queue and its decisions.
func (s *Store) Reviews() store.Reviews { return reviews{s} }

type reviews struct{ s *Store }

// AddReviews queues review items; an open item of the same record is
// brought up to date.
func (l links) AddReviews(ctx context.Context, rs []store.Review) error {
	for _, r := range rs {
		held, err := decision.HeldJSON(r.Held)
		if err != nil {
			return err
		}
		if _, err := l.s.db.ExecContext(ctx, `INSERT INTO careindex_ops.review
			(run_id, source_id, org_code, local_id, nhs_number, patient_id, reason, file, line, assigned_patient_id, evidence,
				delivery_id, held_record)
			VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13)
			ON CONFLICT (org_code, local_id, nhs_number) DO UPDATE SET run_id = EXCLUDED.run_id, source_id = EXCLUDED.source_id,
				reason = EXCLUDED.reason, file = EXCLUDED.file, line = EXCLUDED.line, evidence = EXCLUDED.evidence,
				delivery_id = COALESCE(EXCLUDED.delivery_id, careindex_ops.review.delivery_id), held_record = EXCLUDED.held_record
			WHERE careindex_ops.review.status = 'open'
				AND (careindex_ops.review.assigned_patient_id IS NULL) = (EXCLUDED.assigned_patient_id IS NULL)`,
			r.RunID, r.SourceID, r.OrgCode, r.LocalID, r.NHSNumber, r.PatientID, r.Reason, r.File, r.Line, nullID(r.Assigned), r.Evidence,
			nullID(r.DeliveryID), held); err != nil {
			return fmt.Errorf("adding review item: %w", err)
		}
	}
	return nil
}

func nullID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

// Pins returns the patients decisions pinned local ids to.
func (l links) Pins(ctx context.Context, org string, ids []string) (map[string]int64, error) {
	if len(ids) == 0 {
		return map[string]int64{}, nil
	}
	out, err := store.QueryMap[string, int64](ctx, l.s.db, `SELECT DISTINCT ON (local_id) local_id, patient_id FROM careindex_ops.decision
		WHERE org_code = $1 AND local_id = ANY($2) ORDER BY local_id, decided_at DESC, review_id DESC`, org, pq.Array(ids))
	if err != nil {
		return nil, fmt.Errorf("looking up decisions: %w", err)
	}
	return out, nil
}

const reviewCols = `r.review_id, r.run_id, r.created_at, r.source_id, r.org_code, r.local_id, r.patient_id,
	COALESCE(r.assigned_patient_id, 0), r.reason, r.file, r.line, COALESCE(r.delivery_id, 0), r.status, r.evidence`

type scanner interface{ Scan(...any) error }

func scanReview(row scanner) (store.ReviewItem, error) {
	var r store.ReviewItem
	err := row.Scan(&r.ID, &r.RunID, &r.CreatedAt, &r.SourceID, &r.OrgCode, &r.LocalID, &r.PatientID, &r.Assigned, &r.Reason,
		&r.File, &r.Line, &r.DeliveryID, &r.Status, &r.Evidence)
	return r, err
}

func scanReviewRows(rows *sql.Rows) (store.ReviewItem, error) { return scanReview(rows) }

func (v reviews) ListReviews(ctx context.Context, all bool) ([]store.ReviewItem, error) {
	out, err := store.QueryRows(ctx, v.s.db, scanReviewRows, `SELECT `+reviewCols+` FROM careindex_ops.review r
		WHERE $1 OR r.status = 'open' ORDER BY r.review_id`, all)
	if err != nil {
		return nil, fmt.Errorf("listing review items: %w", err)
	}
	return out, nil
}

func (v reviews) ReviewItem(ctx context.Context, id int64) (store.ReviewItem, error) {
	r, err := scanReview(v.s.db.QueryRowContext(ctx, `SELECT `+reviewCols+` FROM careindex_ops.review r WHERE r.review_id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("%w: %d", store.ErrNoReview, id)
	}
	if err != nil {
		return r, fmt.Errorf("reading review item %d: %w", id, err)
	}
	// The candidate's record locations in the live version.
	r.Candidates, err = store.QueryRows(ctx, v.s.db, func(rows *sql.Rows) (store.Location, error) {
		l := store.Location{PatientID: r.PatientID}
		return l, rows.Scan(&l.OrgCode, &l.LocalID)
	}, `SELECT org_code, local_id FROM careindex.record_location WHERE patient_id = $1
		ORDER BY org_code, local_id`, r.PatientID)
	if err != nil {
		return r, fmt.Errorf("reading review item %d: %w", id, err)
	}
	var d store.Decision
	var other, applied, published sql.NullInt64
	err = v.s.db.QueryRowContext(ctx, `SELECT review_id, kind, org_code, local_id, patient_id, other_patient_id, decided_by, decided_at,
			note, applied_run, published_version
		FROM careindex_ops.decision WHERE review_id = $1`, id).Scan(&d.ReviewID, &d.Kind, &d.OrgCode, &d.LocalID, &d.PatientID, &other,
		&d.By, &d.At, &d.Note, &applied, &published)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return r, nil
	case err != nil:
		return r, fmt.Errorf("reading the decision on review item %d: %w", id, err)
	}
	d.OtherPatientID, d.AppliedRun, d.PublishedVersion = other.Int64, applied.Int64, published.Int64
	var c store.PatientChange
	err = v.s.db.QueryRowContext(ctx, `SELECT kind, from_patient, to_patient, review_id, decided_by, decided_at
		FROM careindex_ops.patient_change WHERE review_id = $1 ORDER BY change_id LIMIT 1`, id).
		Scan(&c.Kind, &c.From, &c.To, &c.ReviewID, &c.By, &c.At)
	switch {
	case err == nil:
		d.Change = &c
	case !errors.Is(err, sql.ErrNoRows):
		return r, fmt.Errorf("reading the decision on review item %d: %w", id, err)
	}
	r.Decision = &d
	return r, nil
}

// changes reads the recorded patient changes (of applied decisions only,
// when applied).
func changes(ctx context.Context, q store.Querier, applied bool) ([]store.PatientChange, error) {
	where := ""
	if applied {
		where = `WHERE EXISTS (SELECT 1 FROM careindex_ops.decision d WHERE d.review_id = c.review_id AND d.applied_run IS NOT NULL)`
	}
	out, err := store.QueryRows(ctx, q, func(rows *sql.Rows) (store.PatientChange, error) {
		var c store.PatientChange
		return c, rows.Scan(&c.Kind, &c.From, &c.To, &c.ReviewID, &c.By, &c.At)
	}, `SELECT c.kind, c.from_patient, c.to_patient, c.review_id, c.decided_by, c.decided_at
		FROM careindex_ops.patient_change c `+where+` ORDER BY c.change_id`)
	if err != nil {
		return nil, fmt.Errorf("reading merges and splits: %w", err)
	}
	return out, nil
}

func (v reviews) PatientChanges(ctx context.Context) ([]store.PatientChange, error) {
	return changes(ctx, v.s.db, false)
}

func (v reviews) PendingDecisions(ctx context.Context) (int, error) {
	var n int
	if err := v.s.db.QueryRowContext(ctx, `SELECT count(*) FROM careindex_ops.decision WHERE published_version IS NULL`).Scan(&n); err != nil {
		return 0, fmt.Errorf("counting pending decisions: %w", err)
	}
	return n, nil
}

// Decide records a decision on an open review item by the shared rules.
func (v reviews) Decide(ctx context.Context, in store.Decision) (store.Decision, error) {
	return decision.Decide(ctx, v.runTx, in)
}

// ApplyDecisions applies the pending decisions by the shared rules.
func (v reviews) ApplyDecisions(ctx context.Context, runID int64) (int, error) {
	return decision.Apply(ctx, v.runTx, runID)
}

// runTx runs fn in a transaction, with the statements of decisionTx.
func (v reviews) runTx(ctx context.Context, fn func(decision.Tx) error) error {
	return v.s.inTx(ctx, func(tx *sql.Tx) error { return fn(decisionTx{tx}) })
}

// decisionTx is the PostgreSQL SQL of decision.Tx.
type decisionTx struct{ tx *sql.Tx }

// LockReview locks the decision table: one decision at a time, and none
// while a run applies them.
func (t decisionTx) LockReview(ctx context.Context, _ int64) error {
	return t.LockPending(ctx)
}

func (t decisionTx) Review(ctx context.Context, id int64) (decision.Review, error) {
	var r decision.Review
	err := t.tx.QueryRowContext(ctx, `SELECT status, org_code, local_id, patient_id, COALESCE(assigned_patient_id, 0)
		FROM careindex_ops.review WHERE review_id = $1 FOR UPDATE`, id).Scan(&r.Status, &r.OrgCode, &r.LocalID, &r.Candidate, &r.Assigned)
	return r, err
}

func (t decisionTx) Changes(ctx context.Context) ([]store.PatientChange, error) {
	return changes(ctx, t.tx, false)
}

func (t decisionTx) KeptApart(ctx context.Context, a, b int64) (bool, error) {
	var n int
	err := t.tx.QueryRowContext(ctx, `SELECT count(*) FROM careindex_ops.decision WHERE kind = 'separate'
		AND ((patient_id = $1 AND other_patient_id = $2) OR (patient_id = $2 AND other_patient_id = $1))`, a, b).Scan(&n)
	return n > 0, err
}

func (t decisionTx) NewPatientID(ctx context.Context) (int64, error) {
	var id int64
	err := t.tx.QueryRowContext(ctx, `SELECT nextval('careindex_ops.patient_id_seq')`).Scan(&id)
	return id, err
}

func (t decisionTx) SaveDecision(ctx context.Context, d store.Decision, status string) error {
	if _, err := t.tx.ExecContext(ctx, `INSERT INTO careindex_ops.decision
		(review_id, org_code, local_id, kind, patient_id, other_patient_id, decided_by, decided_at, note)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)`, d.ReviewID, d.OrgCode, d.LocalID, string(d.Kind), d.PatientID, nullID(d.OtherPatientID),
		d.By, d.At, d.Note); err != nil {
		return err
	}
	if _, err := t.tx.ExecContext(ctx, `UPDATE careindex_ops.review SET status = $2 WHERE review_id = $1`, d.ReviewID, status); err != nil {
		return err
	}
	if c := d.Change; c != nil {
		if _, err := t.tx.ExecContext(ctx, `INSERT INTO careindex_ops.patient_change (kind, from_patient, to_patient, review_id, decided_by, decided_at)
			VALUES ($1,$2,$3,$4,$5,$6)`, c.Kind, c.From, c.To, c.ReviewID, c.By, c.At); err != nil {
			return err
		}
	}
	return nil
}

func (t decisionTx) LockPending(ctx context.Context) error {
	_, err := t.tx.ExecContext(ctx, `LOCK TABLE careindex_ops.decision IN SHARE ROW EXCLUSIVE MODE`)
	return err
}

func (t decisionTx) Pending(ctx context.Context) ([]decision.Pending, error) {
	rows, err := t.tx.QueryContext(ctx, decision.PendingSQL("careindex_ops"))
	if err != nil {
		return nil, err
	}
	return decision.ReadPending(rows)
}

func (t decisionTx) MovePatients(ctx context.Context, table, col string, from, to []int64) error {
	_, err := t.tx.ExecContext(ctx, fmt.Sprintf(`UPDATE careindex_ops.%[1]s t SET %[2]s = m.t
		FROM unnest($1::bigint[], $2::bigint[]) AS m(f, t) WHERE t.%[2]s = m.f`, table, col), pq.Array(from), pq.Array(to))
	return err
}

func (t decisionTx) SetSurvivor(ctx context.Context, from, to int64) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO careindex_ops.patient_survivor (from_patient, to_patient) VALUES ($1, $2)
		ON CONFLICT (from_patient) DO UPDATE SET to_patient = EXCLUDED.to_patient`, from, to)
	return err
}

// liveDeliveries selects the deliveries of an organisation whose staged
// rows may still be published.
const liveDeliveries = `SELECT delivery_id FROM careindex_ops.delivery WHERE org_code = $1 AND status IN ('staged', 'published', 'held')`

func (t decisionTx) Pin(ctx context.Context, org, local string, patient int64) error {
	for _, q := range []string{
		`INSERT INTO careindex_ops.local_link (org_code, local_id, patient_id) VALUES ($1, $2, $3)
			ON CONFLICT (org_code, local_id) DO UPDATE SET patient_id = EXCLUDED.patient_id`,
		`UPDATE careindex_ops.match_record SET patient_id = $3 WHERE org_code = $1 AND local_id = $2`,
		`UPDATE careindex_ops.staged_person SET patient_id = $3 WHERE delivery_id IN (` + liveDeliveries + `)
			AND org_code = $1 AND local_id = $2 AND patient_id <> $3`,
	} {
		if _, err := t.tx.ExecContext(ctx, q, org, local, patient); err != nil {
			return err
		}
	}
	return nil
}

func (t decisionTx) Delivery(ctx context.Context, id int64) (string, int, error) {
	var status string
	var quarantined int
	err := t.tx.QueryRowContext(ctx, `SELECT status, quarantined FROM careindex_ops.delivery WHERE delivery_id = $1 FOR UPDATE`, id).
		Scan(&status, &quarantined)
	return status, quarantined, err
}

func (t decisionTx) HasStaged(ctx context.Context, delivery int64, org, local string) (bool, error) {
	var have bool
	err := t.tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM careindex_ops.staged_person
		WHERE delivery_id = $1 AND org_code = $2 AND local_id = $3 AND NOT merged)`, delivery, org, local).Scan(&have)
	return have, err
}

func (t decisionTx) FoldHeld(ctx context.Context, delivery int64) error {
	_, err := t.tx.ExecContext(ctx, `UPDATE careindex_ops.delivery SET quarantined = quarantined - 1, merged = merged + 1
		WHERE delivery_id = $1`, delivery)
	return err
}

func (t decisionTx) StageHeld(ctx context.Context, p decision.Pending, rec record.Person, patient int64) error {
	if _, err := t.tx.ExecContext(ctx, `INSERT INTO careindex_ops.staged_person (delivery_id, source_id, file, line, org_code, local_id,
			nhs_number, family_name, given_name, date_of_birth, sex, postcode, gp_practice, sensitive, objection, address, email, phone,
			patient_id)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19)`,
		p.DeliveryID, p.SourceID, p.File, p.Line, p.OrgCode, p.LocalID, rec.NHSNumber, rec.FamilyName, rec.GivenName, nullable(rec.DateOfBirth),
		rec.Sex, rec.Postcode, rec.GPPractice, rec.Sensitive, rec.Objection, rec.Address, rec.Email, rec.Phone, patient); err != nil {
		return err
	}
	_, err := t.tx.ExecContext(ctx, `UPDATE careindex_ops.delivery SET quarantined = quarantined - 1 WHERE delivery_id = $1`, p.DeliveryID)
	return err
}

func (t decisionTx) MarkApplied(ctx context.Context, reviewID, runID, patient int64) error {
	_, err := t.tx.ExecContext(ctx, `UPDATE careindex_ops.decision SET applied_run = $2, patient_id = $3 WHERE review_id = $1`,
		reviewID, runID, patient)
	return err
}
