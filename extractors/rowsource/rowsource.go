// Package rowsource defines the contract every extractor meets: a stream of
// raw rows with provenance (file and line), read one at a time so that a
// delivery is never held in memory whole.
//
// An extractor returns a Reader. The caller calls Next until it returns
// false, then checks Err, and always calls Close. A problem confined to one
// row (a malformed quoted field, a wrong number of fields, bytes that are not
// valid in the declared encoding) is reported on that row in Row.Err and the
// stream carries on; Err reports only problems that stop the stream (the file
// cannot be read, the connection is lost, the context is cancelled).
package rowsource

import (
	"context"
	"strings"
)

// Row is one raw record of a delivery.
type Row struct {
	// File names where the row came from: a file name (base name, never a
	// full path with user directories), "sheet@workbook", or "query:<source>".
	File string
	// Line is the 1-based line (or spreadsheet row, or result row) number
	// of the record in File, counting the header as line 1 where there is one.
	Line int
	// Values holds the fields in header order. A short row is padded with
	// empty strings; see Err for rows with the wrong field count.
	Values []string
	// Raw is the record as delivered, as near to the original text as the
	// format allows, for the quarantine table.
	Raw string
	// Err, when not nil, says why this row cannot be used as it stands.
	Err error
}

// Reader streams the rows of one delivery.
type Reader interface {
	// Header returns the column names, in order, as the delivery states them
	// (trimmed of surrounding white space and a byte-order mark).
	Header() []string
	// Next advances to the next row. It returns false at the end of the
	// stream, when ctx is cancelled, or on a fatal error (see Err).
	Next(ctx context.Context) bool
	// Row returns the current row. It is valid until the next call to Next.
	Row() Row
	// Err returns the error that ended the stream early, if any.
	Err() error
	// Close releases the file, workbook or connection behind the reader.
	Close() error
}

// CSVRecord writes values as one RFC 4180 record (no line ending), for
// Row.Raw of a delivery that is not text: a value is quoted when it holds a
// comma, a quote or a line break, or starts or ends with a space.
func CSVRecord(values []string) string {
	var b strings.Builder
	for i, v := range values {
		if i > 0 {
			b.WriteByte(',')
		}
		if v == "" || !strings.ContainsAny(v, ",\"\r\n") && v[0] != ' ' && v[len(v)-1] != ' ' {
			b.WriteString(v)
			continue
		}
		b.WriteByte('"')
		b.WriteString(strings.ReplaceAll(v, `"`, `""`))
		b.WriteByte('"')
	}
	return b.String()
}
