package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/careindex/careindex/loader/decision"
	"github.com/careindex/careindex/loader/store"
	"github.com/careindex/careindex/transform/record"
)

// Reviews returns the review queue and its decisions.
func (s *Store) Reviews() store.Reviews { return reviews{s} }

type reviews struct{ s *Store }

// AddReviews queues records for review; an open item of the same record
// (organisation, local id and NHS number) is brought up to date.
func (l links) AddReviews(ctx context.Context, rs []store.Review) error {
	now := ts(time.Now())
	held := make([]string, len(rs))
	for i, r := range rs {
		var err error
		if held[i], err = decision.HeldJSON(r.Held); err != nil {
			return err
		}
	}
	return l.batch(ctx, "adding review items", `INSERT INTO ops.review
		(run_id, source_id, org_code, local_id, nhs_number, patient_id, reason, file, line, created_at, assigned_patient_id, evidence,
			delivery_id, held_record)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (org_code, local_id, nhs_number) DO UPDATE SET run_id = excluded.run_id, source_id = excluded.source_id,
			reason = excluded.reason, file = excluded.file, line = excluded.line, evidence = excluded.evidence,
			delivery_id = COALESCE(excluded.delivery_id, review.delivery_id), held_record = excluded.held_record
		WHERE review.status = 'open' AND (review.assigned_patient_id IS NULL) = (excluded.assigned_patient_id IS NULL)`,
		len(rs), func(i int) []any {
			r := rs[i]
			return []any{r.RunID, r.SourceID, r.OrgCode, r.LocalID, r.NHSNumber, r.PatientID, r.Reason, r.File, r.Line, now,
				nullID(r.Assigned), r.Evidence, nullID(r.DeliveryID), held[i]}
		})
}

// Pins returns the patients decisions pinned local ids to.
func (l links) Pins(ctx context.Context, org string, ids []string) (map[string]int64, error) {
	if len(ids) == 0 {
		return map[string]int64{}, nil
	}
	arr, err := jsonArray(ids)
	if err != nil {
		return nil, fmt.Errorf("looking up decisions: %w", err)
	}
	out, err := store.QueryMap[string, int64](ctx, l.s.db, `SELECT local_id, patient_id FROM ops.decision
		WHERE org_code = ? AND local_id IN (SELECT value FROM json_each(?)) ORDER BY decided_at, review_id`, org, arr)
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
	var created string
	err := row.Scan(&r.ID, &r.RunID, &created, &r.SourceID, &r.OrgCode, &r.LocalID, &r.PatientID, &r.Assigned, &r.Reason,
		&r.File, &r.Line, &r.DeliveryID, &r.Status, &r.Evidence)
	if err == nil {
		r.CreatedAt, err = parseTS(created)
	}
	return r, err
}

func scanReviewRows(rows *sql.Rows) (store.ReviewItem, error) { return scanReview(rows) }

func (v reviews) ListReviews(ctx context.Context, all bool) ([]store.ReviewItem, error) {
	out, err := store.QueryRows(ctx, v.s.db, scanReviewRows, `SELECT `+reviewCols+` FROM ops.review r
		WHERE ? OR r.status = 'open' ORDER BY r.review_id`, all)
	if err != nil {
		return nil, fmt.Errorf("listing review items: %w", err)
	}
	return out, nil
}

func (v reviews) ReviewItem(ctx context.Context, id int64) (store.ReviewItem, error) {
	r, err := scanReview(v.s.db.QueryRowContext(ctx, `SELECT `+reviewCols+` FROM ops.review r WHERE r.review_id = ?`, id))
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
	}, `SELECT org_code, local_id FROM main.record_location WHERE patient_id = ?
		ORDER BY org_code, local_id`, r.PatientID)
	if err != nil {
		return r, fmt.Errorf("reading review item %d: %w", id, err)
	}
	var d store.Decision
	var at string
	var other, applied, published sql.NullInt64
	err = v.s.db.QueryRowContext(ctx, `SELECT review_id, kind, org_code, local_id, patient_id, other_patient_id, decided_by, decided_at,
			note, applied_run, published_version
		FROM ops.decision WHERE review_id = ?`, id).Scan(&d.ReviewID, &d.Kind, &d.OrgCode, &d.LocalID, &d.PatientID, &other,
		&d.By, &at, &d.Note, &applied, &published)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return r, nil
	case err != nil:
		return r, fmt.Errorf("reading the decision on review item %d: %w", id, err)
	}
	if d.At, err = parseTS(at); err != nil {
		return r, fmt.Errorf("reading the decision on review item %d: %w", id, err)
	}
	d.OtherPatientID, d.AppliedRun, d.PublishedVersion = other.Int64, applied.Int64, published.Int64
	all, err := changes(ctx, v.s.db, `WHERE c.review_id = ?`, id)
	if err != nil {
		return r, err
	}
	if len(all) > 0 {
		d.Change = &all[0]
	}
	r.Decision = &d
	return r, nil
}

// changes reads the recorded patient changes that where (over
// patient_change c) selects.
func changes(ctx context.Context, q store.Querier, where string, args ...any) ([]store.PatientChange, error) {
	out, err := store.QueryRows(ctx, q, func(rows *sql.Rows) (store.PatientChange, error) {
		var c store.PatientChange
		var at string
		err := rows.Scan(&c.Kind, &c.From, &c.To, &c.ReviewID, &c.By, &at)
		if err == nil {
			c.At, err = parseTS(at)
		}
		return c, err
	}, `SELECT c.kind, c.from_patient, c.to_patient, c.review_id, c.decided_by, c.decided_at
		FROM ops.patient_change c `+where+` ORDER BY c.change_id`, args...)
	if err != nil {
		return nil, fmt.Errorf("reading merges and splits: %w", err)
	}
	return out, nil
}

// appliedChanges selects the changes of decisions already applied.
const appliedChanges = `WHERE EXISTS (SELECT 1 FROM ops.decision d WHERE d.review_id = c.review_id AND d.applied_run IS NOT NULL)`

func (v reviews) PatientChanges(ctx context.Context) ([]store.PatientChange, error) {
	return changes(ctx, v.s.db, "")
}

func (v reviews) PendingDecisions(ctx context.Context) (int, error) {
	var n int
	if err := v.s.db.QueryRowContext(ctx, `SELECT count(*) FROM ops.decision WHERE published_version IS NULL`).Scan(&n); err != nil {
		return 0, fmt.Errorf("counting pending decisions: %w", err)
	}
	return n, nil
}

// Decide records a decision on an open review item by the shared rules.
// Its time comes back in UTC, as it is stored.
func (v reviews) Decide(ctx context.Context, in store.Decision) (store.Decision, error) {
	d, err := decision.Decide(ctx, v.runTx, in)
	if err != nil {
		return d, err
	}
	d.At = d.At.UTC()
	if d.Change != nil {
		d.Change.At = d.At
	}
	return d, nil
}

// ApplyDecisions applies the pending decisions by the shared rules.
func (v reviews) ApplyDecisions(ctx context.Context, runID int64) (int, error) {
	return decision.Apply(ctx, v.runTx, runID)
}

// runTx runs fn in a transaction, with the statements of decisionTx.
func (v reviews) runTx(ctx context.Context, fn func(decision.Tx) error) error {
	return v.s.inTx(ctx, func(tx *sql.Tx) error { return fn(decisionTx{tx}) })
}

// decisionTx is the SQLite SQL of decision.Tx.
type decisionTx struct{ tx *sql.Tx }

// LockReview writes first, so that the transaction holds the ops file's
// write lock before it reads.
func (t decisionTx) LockReview(ctx context.Context, id int64) error {
	_, err := t.tx.ExecContext(ctx, `UPDATE ops.review SET status = status WHERE review_id = ?`, id)
	return err
}

func (t decisionTx) Review(ctx context.Context, id int64) (decision.Review, error) {
	var r decision.Review
	err := t.tx.QueryRowContext(ctx, `SELECT status, org_code, local_id, patient_id, COALESCE(assigned_patient_id, 0)
		FROM ops.review WHERE review_id = ?`, id).Scan(&r.Status, &r.OrgCode, &r.LocalID, &r.Candidate, &r.Assigned)
	return r, err
}

func (t decisionTx) Changes(ctx context.Context) ([]store.PatientChange, error) {
	return changes(ctx, t.tx, "")
}

func (t decisionTx) KeptApart(ctx context.Context, a, b int64) (bool, error) {
	var n int
	err := t.tx.QueryRowContext(ctx, `SELECT count(*) FROM ops.decision WHERE kind = 'separate'
		AND ((patient_id = ?1 AND other_patient_id = ?2) OR (patient_id = ?2 AND other_patient_id = ?1))`, a, b).Scan(&n)
	return n > 0, err
}

func (t decisionTx) NewPatientID(ctx context.Context) (int64, error) {
	var id int64
	err := t.tx.QueryRowContext(ctx, `UPDATE ops.patient_id_seq SET last = last + 1 WHERE one = 1 RETURNING last`).Scan(&id)
	return id, err
}

func (t decisionTx) SaveDecision(ctx context.Context, d store.Decision, status string) error {
	if _, err := t.tx.ExecContext(ctx, `INSERT INTO ops.decision
		(review_id, org_code, local_id, kind, patient_id, other_patient_id, decided_by, decided_at, note)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, d.ReviewID, d.OrgCode, d.LocalID, string(d.Kind), d.PatientID, nullID(d.OtherPatientID),
		d.By, ts(d.At), d.Note); err != nil {
		return err
	}
	if _, err := t.tx.ExecContext(ctx, `UPDATE ops.review SET status = ? WHERE review_id = ?`, status, d.ReviewID); err != nil {
		return err
	}
	if c := d.Change; c != nil {
		if _, err := t.tx.ExecContext(ctx, `INSERT INTO ops.patient_change (kind, from_patient, to_patient, review_id, decided_by, decided_at)
			VALUES (?, ?, ?, ?, ?, ?)`, c.Kind, c.From, c.To, c.ReviewID, c.By, ts(c.At)); err != nil {
			return err
		}
	}
	return nil
}

// LockPending writes first, so that the transaction holds the ops file's
// write lock before it reads.
func (t decisionTx) LockPending(ctx context.Context) error {
	_, err := t.tx.ExecContext(ctx, `UPDATE ops.decision SET applied_run = applied_run WHERE applied_run IS NULL`)
	return err
}

func (t decisionTx) Pending(ctx context.Context) ([]decision.Pending, error) {
	rows, err := t.tx.QueryContext(ctx, decision.PendingSQL("ops"))
	if err != nil {
		return nil, err
	}
	return decision.ReadPending(rows)
}

// MovePatients moves patients with a CASE: ids are integers, safe to
// inline.
func (t decisionTx) MovePatients(ctx context.Context, table, col string, from, to []int64) error {
	var cases strings.Builder
	for i := range from {
		fmt.Fprintf(&cases, " WHEN %d THEN %d", from[i], to[i])
	}
	_, err := t.tx.ExecContext(ctx, fmt.Sprintf(`UPDATE ops.%[1]s SET %[2]s = CASE %[2]s%[3]s END WHERE %[2]s IN (%[4]s)`,
		table, col, cases.String(), idList(from)))
	return err
}

func (t decisionTx) SetSurvivor(ctx context.Context, from, to int64) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO ops.patient_survivor (from_patient, to_patient) VALUES (?, ?)
		ON CONFLICT (from_patient) DO UPDATE SET to_patient = excluded.to_patient`, from, to)
	return err
}

// liveDeliveries selects the deliveries of an organisation whose staged
// rows may still be published.
const liveDeliveries = `SELECT delivery_id FROM ops.delivery WHERE org_code = ?1 AND status IN ('staged', 'published', 'held')`

func (t decisionTx) Pin(ctx context.Context, org, local string, patient int64) error {
	for _, q := range []string{
		`INSERT INTO ops.local_link (org_code, local_id, patient_id) VALUES (?1, ?2, ?3)
			ON CONFLICT (org_code, local_id) DO UPDATE SET patient_id = excluded.patient_id`,
		`UPDATE ops.match_record SET patient_id = ?3 WHERE org_code = ?1 AND local_id = ?2`,
		`UPDATE ops.staged_person SET patient_id = ?3 WHERE org_code = ?1 AND local_id = ?2 AND patient_id <> ?3
			AND delivery_id IN (` + liveDeliveries + `)`,
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
	err := t.tx.QueryRowContext(ctx, `SELECT status, quarantined FROM ops.delivery WHERE delivery_id = ?`, id).Scan(&status, &quarantined)
	return status, quarantined, err
}

func (t decisionTx) HasStaged(ctx context.Context, delivery int64, org, local string) (bool, error) {
	var have bool
	err := t.tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM ops.staged_person
		WHERE org_code = ? AND local_id = ? AND delivery_id = ? AND merged = 0)`, org, local, delivery).Scan(&have)
	return have, err
}

func (t decisionTx) FoldHeld(ctx context.Context, delivery int64) error {
	_, err := t.tx.ExecContext(ctx, `UPDATE ops.delivery SET quarantined = quarantined - 1, merged = merged + 1
		WHERE delivery_id = ?`, delivery)
	return err
}

func (t decisionTx) StageHeld(ctx context.Context, p decision.Pending, rec record.Person, patient int64) error {
	if _, err := t.tx.ExecContext(ctx, `INSERT INTO ops.staged_person (delivery_id, source_id, file, line, org_code, local_id,
			nhs_number, family_name, given_name, date_of_birth, sex, postcode, gp_practice, sensitive, objection, address, email, phone,
			patient_id)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		p.DeliveryID, p.SourceID, p.File, p.Line, p.OrgCode, p.LocalID, rec.NHSNumber, rec.FamilyName, rec.GivenName, nullable(rec.DateOfBirth),
		rec.Sex, rec.Postcode, rec.GPPractice, rec.Sensitive, rec.Objection, rec.Address, rec.Email, rec.Phone, patient); err != nil {
		return err
	}
	_, err := t.tx.ExecContext(ctx, `UPDATE ops.delivery SET quarantined = quarantined - 1 WHERE delivery_id = ?`, p.DeliveryID)
	return err
}

func (t decisionTx) MarkApplied(ctx context.Context, reviewID, runID, patient int64) error {
	_, err := t.tx.ExecContext(ctx, `UPDATE ops.decision SET applied_run = ?, patient_id = ? WHERE review_id = ?`,
		runID, patient, reviewID)
	return err
}

// publishedMerges reads the merges of applied decisions, each merged
// patient with its final survivor, for a version's patient_merge.
func (s *Store) publishedMerges(ctx context.Context) ([]store.PatientChange, map[int64]int64, error) {
	all, err := changes(ctx, s.db, appliedChanges)
	if err != nil {
		return nil, nil, err
	}
	return all, store.ResolveMerges(all), nil
}
