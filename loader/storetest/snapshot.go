package storetest

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/careindex/careindex/loader/store"
)

// Snapshot is the published contract as a viewer reads it: the rows of the
// views patient, record_location, care_item (with item_id), organisation
// publication and patient_merge,
// with NULL read as "" (or the zero time), dates as "2006-01-02", times in
// UTC to the microsecond, and every list in a fixed order.
type Snapshot struct {
	Patients      []store.Patient
	Locations     []store.Location
	Items         []store.Item
	Organisations []store.Organisation
	Publications  []PublicationRow
	Merges        []MergeRow
}

// MergeRow is a row of the patient_merge view: a merged patient id and the
// patient that survives it.
type MergeRow struct {
	OldPatientID int64
	PatientID    int64
	MergedAt     time.Time
}

// PublicationRow is a row of the publication view.
type PublicationRow struct {
	Version     int64
	RunID       int64
	PublishedAt time.Time
	Live        bool
}

// Querier is what ReadSnapshot reads through: a *sql.DB, *sql.Conn or *sql.Tx.
type Querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// ReadSnapshot reads the published contract through q. prefix qualifies
// the view names: "careindex." for PostgreSQL, "" for SQLite.
func ReadSnapshot(ctx context.Context, q Querier, prefix string) (Snapshot, error) {
	var s Snapshot
	err := readRows(ctx, q, `SELECT patient_id, nhs_number, family_name, given_name, date_of_birth, sex, postcode, gp_practice, status
		FROM `+prefix+`patient`, func(v []any) error {
		id, err := asInt(v[0])
		s.Patients = append(s.Patients, store.Patient{PatientID: id, NHSNumber: asString(v[1]), FamilyName: asString(v[2]),
			GivenName: asString(v[3]), DateOfBirth: asDate(v[4]), Sex: asString(v[5]), Postcode: asString(v[6]),
			GPPractice: asString(v[7]), Status: asString(v[8])})
		return err
	})
	if err != nil {
		return s, err
	}
	err = readRows(ctx, q, `SELECT patient_id, org_code, local_id FROM `+prefix+`record_location`, func(v []any) error {
		id, err := asInt(v[0])
		s.Locations = append(s.Locations, store.Location{PatientID: id, OrgCode: asString(v[1]), LocalID: asString(v[2])})
		return err
	})
	if err != nil {
		return s, err
	}
	err = readRows(ctx, q, `SELECT patient_id, org_code, kind, code_system, code, display, start_date, end_date, status, item_id
		FROM `+prefix+`care_item`, func(v []any) error {
		id, err := asInt(v[0])
		s.Items = append(s.Items, store.Item{PatientID: id, OrgCode: asString(v[1]), Kind: asString(v[2]), CodeSystem: asString(v[3]),
			Code: asString(v[4]), Display: asString(v[5]), StartDate: asDate(v[6]), EndDate: asDate(v[7]), Status: asString(v[8]),
			ItemID: asString(v[9])})
		return err
	})
	if err != nil {
		return s, err
	}
	err = readRows(ctx, q, `SELECT org_code, name, org_type, last_delivery_at, stale FROM `+prefix+`organisation`, func(v []any) error {
		at, err := asTime(v[3])
		if err != nil {
			return err
		}
		stale, err := asBool(v[4])
		s.Organisations = append(s.Organisations, store.Organisation{OrgCode: asString(v[0]), Name: asString(v[1]),
			OrgType: asString(v[2]), LastDeliveryAt: at, Stale: stale})
		return err
	})
	if err != nil {
		return s, err
	}
	err = readRows(ctx, q, `SELECT version, run_id, published_at, live FROM `+prefix+`publication`, func(v []any) error {
		var p PublicationRow
		var err error
		if p.Version, err = asInt(v[0]); err != nil {
			return err
		}
		if p.RunID, err = asInt(v[1]); err != nil {
			return err
		}
		if p.PublishedAt, err = asTime(v[2]); err != nil {
			return err
		}
		if p.Live, err = asBool(v[3]); err != nil {
			return err
		}
		s.Publications = append(s.Publications, p)
		return nil
	})
	if err != nil {
		return s, err
	}
	err = readRows(ctx, q, `SELECT old_patient_id, patient_id, merged_at FROM `+prefix+`patient_merge`, func(v []any) error {
		var m MergeRow
		var err error
		if m.OldPatientID, err = asInt(v[0]); err != nil {
			return err
		}
		if m.PatientID, err = asInt(v[1]); err != nil {
			return err
		}
		if m.MergedAt, err = asTime(v[2]); err != nil {
			return err
		}
		s.Merges = append(s.Merges, m)
		return nil
	})
	if err != nil {
		return s, err
	}
	s.sort()
	return s, nil
}

func readRows(ctx context.Context, q Querier, query string, fn func([]any) error) error {
	rows, err := q.QueryContext(ctx, query)
	if err != nil {
		return fmt.Errorf("reading the published contract: %w", err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return fmt.Errorf("reading the published contract: %w", err)
		}
		if err := fn(vals); err != nil {
			return fmt.Errorf("reading the published contract: %s: %w", query, err)
		}
	}
	return rows.Err()
}

// Normalise puts a snapshot built by hand in the form ReadSnapshot returns.
func (s Snapshot) Normalise() Snapshot {
	s.Patients = slices.Clone(s.Patients)
	s.Locations = slices.Clone(s.Locations)
	s.Items = slices.Clone(s.Items)
	s.Organisations = slices.Clone(s.Organisations)
	s.Publications = slices.Clone(s.Publications)
	s.Merges = slices.Clone(s.Merges)
	for i := range s.Merges {
		s.Merges[i].MergedAt = normTime(s.Merges[i].MergedAt)
	}
	for i := range s.Organisations {
		s.Organisations[i].LastDeliveryAt = normTime(s.Organisations[i].LastDeliveryAt)
	}
	for i := range s.Publications {
		s.Publications[i].PublishedAt = normTime(s.Publications[i].PublishedAt)
	}
	s.sort()
	return s
}

func (s *Snapshot) sort() {
	slices.SortFunc(s.Patients, func(a, b store.Patient) int { return cmp.Compare(a.PatientID, b.PatientID) })
	slices.SortFunc(s.Locations, func(a, b store.Location) int {
		return cmp.Or(cmp.Compare(a.PatientID, b.PatientID), cmp.Compare(a.OrgCode, b.OrgCode), cmp.Compare(a.LocalID, b.LocalID))
	})
	slices.SortFunc(s.Items, func(a, b store.Item) int {
		return cmp.Or(cmp.Compare(a.PatientID, b.PatientID), cmp.Compare(a.OrgCode, b.OrgCode), cmp.Compare(a.Kind, b.Kind),
			cmp.Compare(a.CodeSystem, b.CodeSystem), cmp.Compare(a.Code, b.Code), cmp.Compare(a.StartDate, b.StartDate),
			cmp.Compare(a.EndDate, b.EndDate), cmp.Compare(a.Display, b.Display), cmp.Compare(a.Status, b.Status),
			cmp.Compare(a.ItemID, b.ItemID))
	})
	slices.SortFunc(s.Organisations, func(a, b store.Organisation) int { return cmp.Compare(a.OrgCode, b.OrgCode) })
	slices.SortFunc(s.Publications, func(a, b PublicationRow) int { return cmp.Compare(a.Version, b.Version) })
	slices.SortFunc(s.Merges, func(a, b MergeRow) int { return cmp.Compare(a.OldPatientID, b.OldPatientID) })
}

func normTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Microsecond)
}

func asString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case []byte:
		return string(x)
	default:
		return fmt.Sprint(x)
	}
}

// asDate reads a date column: a time.Time from PostgreSQL, ISO text from
// SQLite.
func asDate(v any) string {
	if t, ok := v.(time.Time); ok {
		return t.Format("2006-01-02")
	}
	return asString(v)
}

func asInt(v any) (int64, error) {
	switch x := v.(type) {
	case int64:
		return x, nil
	case int32:
		return int64(x), nil
	case int:
		return int64(x), nil
	case nil:
		return 0, nil
	default:
		return strconv.ParseInt(asString(v), 10, 64)
	}
}

func asBool(v any) (bool, error) {
	switch x := v.(type) {
	case bool:
		return x, nil
	case int64:
		return x != 0, nil
	case nil:
		return false, nil
	default:
		return strconv.ParseBool(asString(v))
	}
}

// asTime reads a timestamp: a time.Time from PostgreSQL, RFC 3339 text
// from SQLite.
func asTime(v any) (time.Time, error) {
	switch x := v.(type) {
	case nil:
		return time.Time{}, nil
	case time.Time:
		return normTime(x), nil
	default:
		s := strings.TrimSpace(asString(v))
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999"} {
			if t, err := time.Parse(layout, s); err == nil {
				return normTime(t), nil
			}
		}
		return time.Time{}, fmt.Errorf("unreadable timestamp %q", s)
	}
}
