package pgstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/lib/pq"

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
		held, err := heldJSON(r.Held)
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

// heldJSON encodes a held record for the review queue ("" for none).
func heldJSON(p *record.Person) (string, error) {
	if p == nil {
		return "", nil
	}
	b, err := json.Marshal(p)
	if err != nil {
		return "", fmt.Errorf("encoding a held record: %w", err)
	}
	return string(b), nil
}

func nullID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

// Pins returns the patients decisions pinned local ids to.
func (l links) Pins(ctx context.Context, org string, ids []string) (map[string]int64, error) {
	out := map[string]int64{}
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := l.s.db.QueryContext(ctx, `SELECT DISTINCT ON (local_id) local_id, patient_id FROM careindex_ops.decision
		WHERE org_code = $1 AND local_id = ANY($2) ORDER BY local_id, decided_at DESC, review_id DESC`, org, pq.Array(ids))
	if err != nil {
		return nil, fmt.Errorf("looking up decisions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var p int64
		if err := rows.Scan(&id, &p); err != nil {
			return nil, fmt.Errorf("looking up decisions: %w", err)
		}
		out[id] = p
	}
	return out, rows.Err()
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

func (v reviews) ListReviews(ctx context.Context, all bool) ([]store.ReviewItem, error) {
	rows, err := v.s.db.QueryContext(ctx, `SELECT `+reviewCols+` FROM careindex_ops.review r
		WHERE $1 OR r.status = 'open' ORDER BY r.review_id`, all)
	if err != nil {
		return nil, fmt.Errorf("listing review items: %w", err)
	}
	defer rows.Close()
	out := []store.ReviewItem{}
	for rows.Next() {
		r, err := scanReview(rows)
		if err != nil {
			return nil, fmt.Errorf("listing review items: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
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
	rows, err := v.s.db.QueryContext(ctx, `SELECT org_code, local_id FROM careindex.record_location WHERE patient_id = $1
		ORDER BY org_code, local_id`, r.PatientID)
	if err != nil {
		return r, fmt.Errorf("reading review item %d: %w", id, err)
	}
	defer rows.Close()
	for rows.Next() {
		l := store.Location{PatientID: r.PatientID}
		if err := rows.Scan(&l.OrgCode, &l.LocalID); err != nil {
			return r, fmt.Errorf("reading review item %d: %w", id, err)
		}
		r.Candidates = append(r.Candidates, l)
	}
	if err := rows.Err(); err != nil {
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
func changes(ctx context.Context, q querier, applied bool) ([]store.PatientChange, error) {
	where := ""
	if applied {
		where = `WHERE EXISTS (SELECT 1 FROM careindex_ops.decision d WHERE d.review_id = c.review_id AND d.applied_run IS NOT NULL)`
	}
	rows, err := q.QueryContext(ctx, `SELECT c.kind, c.from_patient, c.to_patient, c.review_id, c.decided_by, c.decided_at
		FROM careindex_ops.patient_change c `+where+` ORDER BY c.change_id`)
	if err != nil {
		return nil, fmt.Errorf("reading merges and splits: %w", err)
	}
	defer rows.Close()
	out := []store.PatientChange{}
	for rows.Next() {
		var c store.PatientChange
		if err := rows.Scan(&c.Kind, &c.From, &c.To, &c.ReviewID, &c.By, &c.At); err != nil {
			return nil, fmt.Errorf("reading merges and splits: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
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

func survivor(m map[int64]int64, id int64) int64 {
	if to, ok := m[id]; ok {
		return to
	}
	return id
}

func (v reviews) Decide(ctx context.Context, in store.Decision) (store.Decision, error) {
	d := store.Decision{ReviewID: in.ReviewID, Kind: in.Kind, By: in.By, At: in.At, Note: in.Note}
	if d.At.IsZero() {
		d.At = time.Now()
	}
	if d.Kind != store.DecideLink && d.Kind != store.DecideSeparate {
		return d, fmt.Errorf("deciding review item %d: unknown decision %q", d.ReviewID, d.Kind)
	}
	err := v.s.inTx(ctx, func(tx *sql.Tx) error {
		// One decision at a time, and none while a run applies them.
		if _, err := tx.ExecContext(ctx, `LOCK TABLE careindex_ops.decision IN SHARE ROW EXCLUSIVE MODE`); err != nil {
			return err
		}
		var status string
		var cand, assigned int64
		err := tx.QueryRowContext(ctx, `SELECT status, org_code, local_id, patient_id, COALESCE(assigned_patient_id, 0)
			FROM careindex_ops.review WHERE review_id = $1 FOR UPDATE`, d.ReviewID).Scan(&status, &d.OrgCode, &d.LocalID, &cand, &assigned)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: %d", store.ErrNoReview, d.ReviewID)
		}
		if err != nil {
			return err
		}
		if status != store.ReviewOpen {
			return fmt.Errorf("%w: review item %d is %s", store.ErrDecided, d.ReviewID, status)
		}
		all, err := changes(ctx, tx, false)
		if err != nil {
			return err
		}
		merged := store.ResolveMerges(all)
		cand, assigned = survivor(merged, cand), survivor(merged, assigned)
		newStatus := store.ReviewLinked
		switch {
		case d.Kind == store.DecideLink:
			d.PatientID = cand
			if assigned != 0 && assigned != cand {
				d.OtherPatientID = assigned
				d.Change = &store.PatientChange{Kind: store.ChangeMerge, From: assigned, To: cand}
				var n int
				if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM careindex_ops.decision WHERE kind = 'separate'
					AND ((patient_id = $1 AND other_patient_id = $2) OR (patient_id = $2 AND other_patient_id = $1))`, assigned, cand).
					Scan(&n); err != nil {
					return err
				}
				if n > 0 {
					return fmt.Errorf("%w: linking review item %d would merge patients %d and %d, which a decision kept apart",
						store.ErrDecisionConflict, d.ReviewID, assigned, cand)
				}
			}
		case assigned != 0:
			newStatus = store.ReviewSeparated
			d.PatientID, d.OtherPatientID = assigned, cand
		default:
			// A held record separated from its NHS number's patient: a
			// patient of its own (a split).
			newStatus = store.ReviewSeparated
			if err := tx.QueryRowContext(ctx, `SELECT nextval('careindex_ops.patient_id_seq')`).Scan(&d.PatientID); err != nil {
				return err
			}
			d.OtherPatientID = cand
			d.Change = &store.PatientChange{Kind: store.ChangeSplit, From: cand, To: d.PatientID}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO careindex_ops.decision
			(review_id, org_code, local_id, kind, patient_id, other_patient_id, decided_by, decided_at, note)
			VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)`, d.ReviewID, d.OrgCode, d.LocalID, string(d.Kind), d.PatientID, nullID(d.OtherPatientID),
			d.By, d.At, d.Note); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE careindex_ops.review SET status = $2 WHERE review_id = $1`, d.ReviewID, newStatus); err != nil {
			return err
		}
		if c := d.Change; c != nil {
			c.ReviewID, c.By, c.At = d.ReviewID, d.By, d.At
			if _, err := tx.ExecContext(ctx, `INSERT INTO careindex_ops.patient_change (kind, from_patient, to_patient, review_id, decided_by, decided_at)
				VALUES ($1,$2,$3,$4,$5,$6)`, c.Kind, c.From, c.To, c.ReviewID, c.By, c.At); err != nil {
				return err
			}
		}
		return nil
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

// pendingDecision is a decision being applied, with its review item.
type pendingDecision struct {
	reviewID           int64
	org, local         string
	kind               string
	patient, other     int64
	assigned, delivery int64
	held               string
	sourceID, file     string
	line               int
	merges             bool
}

func (v reviews) ApplyDecisions(ctx context.Context, runID int64) (int, error) {
	applied := 0
	err := v.s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `LOCK TABLE careindex_ops.decision IN SHARE ROW EXCLUSIVE MODE`); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT d.review_id, d.org_code, d.local_id, d.kind, d.patient_id, COALESCE(d.other_patient_id, 0),
				COALESCE(r.assigned_patient_id, 0), COALESCE(r.delivery_id, 0), r.held_record, r.source_id, r.file, r.line,
				EXISTS (SELECT 1 FROM careindex_ops.patient_change c WHERE c.review_id = d.review_id AND c.kind = 'merge')
			FROM careindex_ops.decision d JOIN careindex_ops.review r ON r.review_id = d.review_id
			WHERE d.applied_run IS NULL ORDER BY d.decided_at, d.review_id`)
		if err != nil {
			return err
		}
		var pending []pendingDecision
		for rows.Next() {
			var p pendingDecision
			if err := rows.Scan(&p.reviewID, &p.org, &p.local, &p.kind, &p.patient, &p.other, &p.assigned, &p.delivery, &p.held,
				&p.sourceID, &p.file, &p.line, &p.merges); err != nil {
				rows.Close()
				return err
			}
			pending = append(pending, p)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(pending) == 0 {
			return nil
		}
		all, err := changes(ctx, tx, false)
		if err != nil {
			return err
		}
		merged := store.ResolveMerges(all)
		// Merges: everything of each merged patient moves to its survivor,
		// in one statement per table.
		var from, to []int64
		for _, p := range pending {
			if p.merges && p.other != 0 {
				if s := survivor(merged, p.other); s != p.other {
					from, to = append(from, p.other), append(to, s)
				}
			}
		}
		if len(from) > 0 {
			for _, u := range []struct{ table, col string }{
				{"local_link", "patient_id"}, {"nhs_link", "patient_id"}, {"match_record", "patient_id"},
				{"staged_person", "patient_id"}, {"review", "patient_id"}, {"review", "assigned_patient_id"},
				{"decision", "patient_id"}, {"decision", "other_patient_id"},
			} {
				if _, err := tx.ExecContext(ctx, fmt.Sprintf(`UPDATE careindex_ops.%[1]s t SET %[2]s = m.t
					FROM unnest($1::bigint[], $2::bigint[]) AS m(f, t) WHERE t.%[2]s = m.f`, u.table, u.col),
					pq.Array(from), pq.Array(to)); err != nil {
					return fmt.Errorf("merging patients: %s: %w", u.table, err)
				}
			}
		}
		for f, t := range merged {
			if _, err := tx.ExecContext(ctx, `INSERT INTO careindex_ops.patient_survivor (from_patient, to_patient) VALUES ($1, $2)
				ON CONFLICT (from_patient) DO UPDATE SET to_patient = EXCLUDED.to_patient`, f, t); err != nil {
				return fmt.Errorf("recording surviving patients: %w", err)
			}
		}
		for _, p := range pending {
			pin := survivor(merged, p.patient)
			if err := applyPin(ctx, tx, p, pin); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE careindex_ops.decision SET applied_run = $2, patient_id = $3 WHERE review_id = $1`,
				p.reviewID, runID, pin); err != nil {
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

// liveDeliveries selects the deliveries of an organisation whose staged
// rows may still be published.
const liveDeliveries = `SELECT delivery_id FROM careindex_ops.delivery WHERE org_code = $1 AND status IN ('staged', 'published', 'held')`

// applyPin gives a decided record its pinned patient: its local link, its
// match record, its staged rows; and stages a held record into the
// delivery that held it.
func applyPin(ctx context.Context, tx *sql.Tx, p pendingDecision, pin int64) error {
	for _, q := range []string{
		`INSERT INTO careindex_ops.local_link (org_code, local_id, patient_id) VALUES ($1, $2, $3)
			ON CONFLICT (org_code, local_id) DO UPDATE SET patient_id = EXCLUDED.patient_id`,
		`UPDATE careindex_ops.match_record SET patient_id = $3 WHERE org_code = $1 AND local_id = $2`,
		`UPDATE careindex_ops.staged_person SET patient_id = $3 WHERE delivery_id IN (` + liveDeliveries + `)
			AND org_code = $1 AND local_id = $2 AND patient_id <> $3`,
	} {
		if _, err := tx.ExecContext(ctx, q, p.org, p.local, pin); err != nil {
			return fmt.Errorf("pinning a decided record: %w", err)
		}
	}
	if p.assigned != 0 || p.held == "" || p.delivery == 0 {
		return nil
	}
	var status string
	var quarantined int
	err := tx.QueryRowContext(ctx, `SELECT status, quarantined FROM careindex_ops.delivery WHERE delivery_id = $1 FOR UPDATE`, p.delivery).
		Scan(&status, &quarantined)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && (quarantined == 0 || (status != "staged" && status != "published" && status != "held"))) {
		return nil // the delivery's rows are gone: the record comes back with its next delivery
	}
	if err != nil {
		return fmt.Errorf("releasing a held record: %w", err)
	}
	var have bool
	if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM careindex_ops.staged_person
		WHERE delivery_id = $1 AND org_code = $2 AND local_id = $3 AND NOT merged)`, p.delivery, p.org, p.local).Scan(&have); err != nil {
		return fmt.Errorf("releasing a held record: %w", err)
	}
	if have {
		// The delivery has the local id already: the released row folds
		// into it.
		_, err := tx.ExecContext(ctx, `UPDATE careindex_ops.delivery SET quarantined = quarantined - 1, merged = merged + 1
			WHERE delivery_id = $1`, p.delivery)
		if err != nil {
			return fmt.Errorf("releasing a held record: %w", err)
		}
		return nil
	}
	var rec record.Person
	if err := json.Unmarshal([]byte(p.held), &rec); err != nil {
		return fmt.Errorf("releasing a held record: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO careindex_ops.staged_person (delivery_id, source_id, file, line, org_code, local_id,
			nhs_number, family_name, given_name, date_of_birth, sex, postcode, gp_practice, sensitive, objection, address, email, phone,
			patient_id)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19)`,
		p.delivery, p.sourceID, p.file, p.line, p.org, p.local, rec.NHSNumber, rec.FamilyName, rec.GivenName, nullable(rec.DateOfBirth),
		rec.Sex, rec.Postcode, rec.GPPractice, rec.Sensitive, rec.Objection, rec.Address, rec.Email, rec.Phone, pin); err != nil {
		return fmt.Errorf("releasing a held record: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE careindex_ops.delivery SET quarantined = quarantined - 1 WHERE delivery_id = $1`, p.delivery); err != nil {
		return fmt.Errorf("releasing a held record: %w", err)
	}
	return nil
}
