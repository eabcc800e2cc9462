package store

import (
	"context"
	"database/sql"
)

// QueryRows runs a query and scans every row it returns with scan. The
// rows are closed, and the first error (the query's, a scan's or the
// iteration's) is returned unwrapped, for the caller to say what it was
// reading. No rows give an empty slice, not nil.
func QueryRows[T any](ctx context.Context, q Querier, scan func(*sql.Rows) (T, error), query string, args ...any) ([]T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
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
