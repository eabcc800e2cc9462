package sqlquery

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/careindex/careindex/extractors/rowsource"
)

// reader implements rowsource.Reader over *sql.Rows.
type reader struct {
	file   string // "query:<name>"
	rows   *sql.Rows
	header []string
	dest   []any // scan targets, pointing into vals
	vals   []any
	n      int // result rows read

	row  rowsource.Row
	err  error
	done bool
}

var _ rowsource.Reader = (*reader)(nil)

// Open runs query (with optional args for its placeholders) on db and
// returns a reader over its result. name identifies the source in
// Row.File ("query:"+name) and in errors.
//
// The query runs under ctx for its whole life: cancelling ctx ends the
// stream, so ctx must outlive the reading, not just the call to Open. The
// reader holds a connection from db until Close.
func Open(ctx context.Context, db *sql.DB, name, query string, args ...any) (rowsource.Reader, error) {
	file := "query:" + name
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: run: %w", file, err)
	}
	cols, err := rows.Columns()
	if err != nil {
		_ = rows.Close()
		return nil, fmt.Errorf("%s: columns: %w", file, err)
	}
	if len(cols) == 0 {
		_ = rows.Close()
		return nil, fmt.Errorf("%s: %w", file, ErrNoColumns)
	}
	r := &reader{
		file:   file,
		rows:   rows,
		header: make([]string, len(cols)),
		dest:   make([]any, len(cols)),
		vals:   make([]any, len(cols)),
	}
	for i, c := range cols {
		r.header[i] = strings.TrimSpace(c)
		r.dest[i] = &r.vals[i]
	}
	return r, nil
}

// Header returns a copy of the result's column names.
func (r *reader) Header() []string {
	return append([]string(nil), r.header...)
}

// Next advances to the next result row.
func (r *reader) Next(ctx context.Context) bool {
	if r.done {
		return false
	}
	if err := ctx.Err(); err != nil {
		r.stop(fmt.Errorf("%s: after line %d: %w", r.file, r.n+1, err))
		return false
	}
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			r.stop(fmt.Errorf("%s: after line %d: %w", r.file, r.n+1, err))
		} else {
			r.stop(nil)
		}
		return false
	}
	r.n++
	line := r.n + 1
	values := make([]string, len(r.header))
	r.row = rowsource.Row{File: r.file, Line: line, Values: values}
	if err := r.rows.Scan(r.dest...); err != nil {
		r.row.Err = fmt.Errorf("%s: line %d: scan: %w", r.file, line, err)
		return true
	}
	for i, v := range r.vals {
		values[i] = Format(v)
		r.vals[i] = nil
	}
	for i, v := range values {
		if !utf8.ValidString(v) || strings.IndexByte(v, 0) >= 0 {
			if r.row.Err == nil {
				r.row.Err = fmt.Errorf("%s: line %d: column %q: %w", r.file, line, r.header[i], ErrInvalidEncoding)
			}
			values[i] = strings.ReplaceAll(strings.ToValidUTF8(v, "\uFFFD"), "\x00", "\uFFFD")
		}
	}
	r.row.Raw = rowsource.CSVRecord(values)
	return true
}

func (r *reader) stop(err error) {
	r.done, r.err, r.row = true, err, rowsource.Row{}
}

// Row returns the current row.
func (r *reader) Row() rowsource.Row { return r.row }

// Err returns the error that ended the stream early, if any.
func (r *reader) Err() error { return r.err }

// Close closes the result and returns its connection to the pool. It is
// safe to call more than once.
func (r *reader) Close() error {
	r.done = true
	if err := r.rows.Close(); err != nil {
		return fmt.Errorf("%s: close: %w", r.file, err)
	}
	return nil
}

// Format converts one value scanned from database/sql into its string form,
// as described in the package documentation.
func Format(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case []byte:
		return string(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case int:
		return strconv.Itoa(v)
	case int32:
		return strconv.FormatInt(int64(v), 10)
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case float32:
		return strconv.FormatFloat(float64(v), 'f', -1, 32)
	case bool:
		return strconv.FormatBool(v)
	case time.Time:
		if v.IsZero() {
			// MySQL's zero date '0000-00-00' arrives as the zero time: no date.
			return ""
		}
		if h, m, s := v.Clock(); h == 0 && m == 0 && s == 0 && v.Nanosecond() == 0 {
			return v.Format(time.DateOnly)
		}
		return v.Format(time.RFC3339Nano)
	case fmt.Stringer:
		return v.String()
	default:
		return fmt.Sprint(v)
	}
}
