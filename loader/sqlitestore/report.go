package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/careindex/careindex/loader/store"
)

// ErrNoPublication means there is no publishing run to report on.
var ErrNoPublication = errors.New("no published version")

// Compliance reports what a publishing run withheld (runID 0: the latest).
func (s *Store) Compliance(ctx context.Context, runID int64) (store.Compliance, error) {
	var c store.Compliance
	var published sql.NullString
	err := s.db.QueryRowContext(ctx, `SELECT r.run_id, v.version, v.published_at FROM ops.run r
		JOIN main.version v ON v.version = r.published_version AND v.run_id = r.run_id
		WHERE (?1 = 0 OR r.run_id = ?1) ORDER BY r.run_id DESC LIMIT 1`, runID).Scan(&c.RunID, &c.Version, &published)
	if errors.Is(err, sql.ErrNoRows) {
		if runID != 0 {
			return c, fmt.Errorf("%w by run %d", ErrNoPublication, runID)
		}
		return c, ErrNoPublication
	}
	if err == nil && published.Valid {
		c.PublishedAt, err = parseTS(published.String)
	}
	if err != nil {
		return c, fmt.Errorf("reading run: %w", err)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT source_id, kind, reason, count FROM ops.withheld_summary
		WHERE run_id = ? ORDER BY kind, reason, source_id`, c.RunID)
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
	orows, err := s.db.QueryContext(ctx, `SELECT patient_id, reason, authorised_by, valid_from, COALESCE(valid_to, ''), scope
		FROM ops.override_applied WHERE run_id = ? ORDER BY patient_id, valid_from`, c.RunID)
	if err != nil {
		return c, fmt.Errorf("reading applied overrides: %w", err)
	}
	defer orows.Close()
	for orows.Next() {
		var o store.AppliedOverride
		var from, to string
		if err := orows.Scan(&o.PatientID, &o.Reason, &o.AuthorisedBy, &from, &to, &o.Scope); err != nil {
			return c, fmt.Errorf("reading applied overrides: %w", err)
		}
		if o.ValidFrom, err = parseDate(from); err == nil {
			o.ValidTo, err = parseDate(to)
		}
		if err != nil {
			return c, fmt.Errorf("reading applied overrides: %w", err)
		}
		c.Overrides = append(c.Overrides, o)
	}
	return c, orows.Err()
}

// StreamLive streams the live version's patients with their NHS numbers
// (the published one first, then the others linked to the patient), the
// organisations holding a record location, the care items and the
// objections the organisations sent in the records behind the version, in
// one statement, so in one snapshot.
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
			COALESCE((SELECT group_concat(l.nhs_number, char(30) ORDER BY l.nhs_number) FROM ops.nhs_link l
				WHERE l.patient_id = p.patient_id), ''),
			COALESCE((SELECT group_concat(DISTINCT r.org_code ORDER BY r.org_code) FROM main.data_record_location r
				WHERE r.version = ?1 AND r.patient_id = p.patient_id), ''),
			COALESCE((SELECT group_concat(i.org_code || char(31) || i.code || char(31) || i.item_id, char(30) ORDER BY i.seq)
				FROM main.data_care_item i WHERE i.version = ?1 AND i.patient_id = p.patient_id), ''),
			COALESCE((SELECT group_concat(sp.objection, char(30) ORDER BY sp.delivery_id, sp.line) FROM ops.staged_person sp
				JOIN ops.version_delivery vd ON vd.delivery_id = sp.delivery_id AND vd.version = ?1
				WHERE sp.patient_id = p.patient_id AND sp.objection <> '' AND sp.merged = 0), '')
		FROM main.data_patient p WHERE p.version = ?1 ORDER BY p.patient_id`, live.Version)
	if err != nil {
		return fmt.Errorf("reading the live version: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var p store.LivePatient
		var nhs, linked, orgs, items, flags string
		if err := rows.Scan(&p.PatientID, &p.Status, &nhs, &p.HasDemographics, &linked, &orgs, &items, &flags); err != nil {
			return fmt.Errorf("reading the live version: %w", err)
		}
		if nhs != "" {
			p.NHSNumbers = append(p.NHSNumbers, nhs)
		}
		for _, n := range split(linked, "\x1e") {
			if n != nhs {
				p.NHSNumbers = append(p.NHSNumbers, n)
			}
		}
		p.Orgs = split(orgs, ",")
		for _, it := range split(items, "\x1e") {
			if parts := strings.SplitN(it, "\x1f", 3); len(parts) == 3 {
				p.Items = append(p.Items, store.LiveItem{OrgCode: parts[0], Code: parts[1], ItemID: parts[2]})
			}
		}
		p.Flags = split(flags, "\x1e")
		if err := fn(p); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading the live version: %w", err)
	}
	return nil
}

func split(s, sep string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, sep)
}
