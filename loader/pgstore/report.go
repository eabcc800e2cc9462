package pgstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/lib/pq"

	"github.com/careindex/careindex/loader/store"
)

// ErrNoPublication means there is no publishing run to report on.
var ErrNoPublication = errors.New("no published version")

// Compliance reports what a publishing run withheld.
func (s *Store) Compliance(ctx context.Context, runID int64) (store.Compliance, error) {
	var c store.Compliance
	q := `SELECT r.run_id, v.version, v.published_at FROM careindex_ops.run r
		JOIN careindex_data.version v ON v.version = r.published_version AND v.run_id = r.run_id
		WHERE ($1 = 0 OR r.run_id = $1) ORDER BY r.run_id DESC LIMIT 1`
	if err := s.db.QueryRowContext(ctx, q, runID).Scan(&c.RunID, &c.Version, &c.PublishedAt); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			if runID != 0 {
				return c, fmt.Errorf("%w by run %d", ErrNoPublication, runID)
			}
			return c, ErrNoPublication
		}
		return c, fmt.Errorf("reading run: %w", err)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT source_id, kind, reason, count FROM careindex_ops.withheld_summary
		WHERE run_id = $1 ORDER BY kind, reason, source_id`, c.RunID)
	if err != nil {
		return c, fmt.Errorf("reading withheld counts: %w", err)
	}
	for rows.Next() {
		var w store.WithheldCount
		if err := rows.Scan(&w.SourceID, &w.Kind, &w.Reason, &w.Count); err != nil {
			rows.Close()
			return c, fmt.Errorf("reading withheld counts: %w", err)
		}
		c.Withheld = append(c.Withheld, w)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return c, fmt.Errorf("reading withheld counts: %w", err)
	}
	orows, err := s.db.QueryContext(ctx, `SELECT patient_id, reason, authorised_by, valid_from, valid_to, scope
		FROM careindex_ops.override_applied WHERE run_id = $1 ORDER BY patient_id, valid_from`, c.RunID)
	if err != nil {
		return c, fmt.Errorf("reading applied overrides: %w", err)
	}
	defer orows.Close()
	for orows.Next() {
		var o store.AppliedOverride
		var to sql.NullTime
		if err := orows.Scan(&o.PatientID, &o.Reason, &o.AuthorisedBy, &o.ValidFrom, &to, &o.Scope); err != nil {
			return c, fmt.Errorf("reading applied overrides: %w", err)
		}
		if to.Valid {
			o.ValidTo = to.Time
		}
		c.Overrides = append(c.Overrides, o)
	}
	return c, orows.Err()
}

// StreamLive streams the live version's patients with their NHS numbers,
// record locations and care items.
func (s *Store) StreamLive(ctx context.Context, fn func(store.LivePatient) error) error {
	live, ok, err := s.Live(ctx)
	if err != nil {
		return err
	}
	if !ok {
		return ErrNoPublication
	}
	rows, err := s.db.QueryContext(ctx, `SELECT p.patient_id, p.status, COALESCE(p.nhs_number, ''),
			(p.family_name IS NOT NULL OR p.given_name IS NOT NULL OR p.date_of_birth IS NOT NULL OR p.sex IS NOT NULL
			 OR p.postcode IS NOT NULL OR p.gp_practice IS NOT NULL),
			ARRAY(SELECT l.nhs_number FROM careindex_ops.nhs_link l WHERE l.patient_id = p.patient_id),
			ARRAY(SELECT DISTINCT r.org_code FROM careindex_data.record_location r WHERE r.version = $1 AND r.patient_id = p.patient_id),
			ARRAY(SELECT i.org_code || chr(31) || i.code || chr(31) || i.item_id FROM careindex_data.care_item i
				WHERE i.version = $1 AND i.patient_id = p.patient_id),
			ARRAY(SELECT sp.objection FROM careindex_ops.staged_person sp
				JOIN careindex_ops.version_delivery vd ON vd.delivery_id = sp.delivery_id AND vd.version = $1
				WHERE sp.patient_id = p.patient_id AND sp.objection <> '' AND NOT sp.merged)
		FROM careindex_data.patient p WHERE p.version = $1 ORDER BY p.patient_id`, live.Version)
	if err != nil {
		return fmt.Errorf("reading the live version: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var p store.LivePatient
		var nhs string
		var linked, orgs, items []string
		if err := rows.Scan(&p.PatientID, &p.Status, &nhs, &p.HasDemographics, pq.Array(&linked), pq.Array(&orgs), pq.Array(&items),
			pq.Array(&p.Flags)); err != nil {
			return fmt.Errorf("reading the live version: %w", err)
		}
		if nhs != "" {
			p.NHSNumbers = append(p.NHSNumbers, nhs)
		}
		for _, n := range linked {
			if n != nhs {
				p.NHSNumbers = append(p.NHSNumbers, n)
			}
		}
		p.Orgs = orgs
		for _, it := range items {
			parts := strings.SplitN(it, "\x1f", 3)
			if len(parts) == 3 {
				p.Items = append(p.Items, store.LiveItem{OrgCode: parts[0], Code: parts[1], ItemID: parts[2]})
			}
		}
		if err := fn(p); err != nil {
			return err
		}
	}
	return rows.Err()
}
