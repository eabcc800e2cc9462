package store

import (
	"context"
	"database/sql"
	"fmt"
)

// EachRow runs a query and calls fn for every row it returns, to scan it.
// The rows are closed, and the first error (the query's, fn's or the
// iteration's) is returned unwrapped, for the caller to say what it was
// reading.
func EachRow(ctx context.Context, q Querier, fn func(*sql.Rows) error, query string, args ...any) error {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// QueryRows runs a query and returns its rows, each scanned by scan, as
// EachRow does. No rows give an empty slice, not nil.
func QueryRows[T any](ctx context.Context, q Querier, scan func(*sql.Rows) (T, error), query string, args ...any) ([]T, error) {
	out := []T{}
	err := EachRow(ctx, q, func(rows *sql.Rows) error {
		v, err := scan(rows)
		out = append(out, v)
		return err
	}, query, args...)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// QueryMap runs a query of two columns and returns a map of the first to
// the second, as EachRow does (when two rows share a key, the later one
// wins). No rows give an empty map, not nil.
func QueryMap[K comparable, V any](ctx context.Context, q Querier, query string, args ...any) (map[K]V, error) {
	out := map[K]V{}
	err := EachRow(ctx, q, func(rows *sql.Rows) error {
		var k K
		var v V
		if err := rows.Scan(&k, &v); err != nil {
			return err
		}
		out[k] = v
		return nil
	}, query, args...)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ScanInt64 scans a row of one integer.
func ScanInt64(rows *sql.Rows) (int64, error) {
	var v int64
	err := rows.Scan(&v)
	return v, err
}

// ScanGrouped returns an EachRow function that adds each row's second
// column to the list of its first in m.
func ScanGrouped[K comparable, V any](m map[K][]V) func(*sql.Rows) error {
	return func(rows *sql.Rows) error {
		var k K
		var v V
		if err := rows.Scan(&k, &v); err != nil {
			return err
		}
		m[k] = append(m[k], v)
		return nil
	}
}

// ScanLinks returns an EachRow function that reads rows of NHS number,
// patient id and date of birth into m.
func ScanLinks(m map[string]Link) func(*sql.Rows) error {
	return func(rows *sql.Rows) error {
		var n string
		var k Link
		if err := rows.Scan(&n, &k.PatientID, &k.DateOfBirth); err != nil {
			return err
		}
		m[n] = k
		return nil
	}
}

// eachStreamed runs a query and calls fn with each row scan makes of it.
// Errors of the query and of scanning say what was read; fn's own error is
// returned as it is.
func eachStreamed[T any](ctx context.Context, q Querier, what string, scan func(*sql.Rows) (T, error), fn func(T) error,
	query string, args ...any) error {
	var fnErr error
	err := EachRow(ctx, q, func(rows *sql.Rows) error {
		v, err := scan(rows)
		if err != nil {
			return err
		}
		fnErr = fn(v)
		return fnErr
	}, query, args...)
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return fmt.Errorf("reading %s: %w", what, err)
	}
	return nil
}

// EachStagedPerson runs a backend's query of staged persons and calls fn
// for each. The query selects delivery_id, source_id, file, line, org_code,
// local_id, nhs_number, family_name, given_name, date_of_birth (as text),
// sex, postcode, gp_practice, sensitive, objection, address, email, phone
// and the patient id.
func EachStagedPerson(ctx context.Context, q Querier, fn func(StagedPerson) error, query string, args ...any) error {
	return eachStreamed(ctx, q, "staged persons", func(rows *sql.Rows) (StagedPerson, error) {
		var p StagedPerson
		err := rows.Scan(&p.DeliveryID, &p.SourceID, &p.File, &p.Line, &p.OrgCode, &p.LocalID, &p.NHSNumber, &p.FamilyName,
			&p.GivenName, &p.DateOfBirth, &p.Sex, &p.Postcode, &p.GPPractice, &p.Sensitive, &p.Objection, &p.Address,
			&p.Email, &p.Phone, &p.PatientID)
		return p, err
	}, fn, query, args...)
}

// EachStagedItem runs a backend's query of staged care items and calls fn
// for each. The query selects delivery_id, source_id, file, line, org_code,
// local_id, item_id, kind, code_system, code, display, start_date and
// end_date (as text), status and the patient id.
func EachStagedItem(ctx context.Context, q Querier, fn func(StagedItem) error, query string, args ...any) error {
	return eachStreamed(ctx, q, "staged care items", func(rows *sql.Rows) (StagedItem, error) {
		var i StagedItem
		err := rows.Scan(&i.DeliveryID, &i.SourceID, &i.File, &i.Line, &i.OrgCode, &i.LocalID, &i.ItemID, &i.Kind,
			&i.CodeSystem, &i.Code, &i.Display, &i.StartDate, &i.EndDate, &i.Status, &i.PatientID)
		return i, err
	}, fn, query, args...)
}
