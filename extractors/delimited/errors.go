package delimited

import "errors"

// Sentinel errors. Row and stream errors wrap them with the file name and,
// where there is one, the line number.
var (
	// ErrFieldCount marks a record whose number of fields differs from the
	// header's.
	ErrFieldCount = errors.New("wrong number of fields")
	// ErrBadQuote marks a record with a malformed quoted field.
	ErrBadQuote = errors.New("malformed quoting")
	// ErrInvalidEncoding marks a record holding bytes that are not valid in
	// the declared encoding.
	ErrInvalidEncoding = errors.New("text not valid in the declared encoding")
	// ErrRecordTooLong marks a record longer than Options.MaxRecordBytes.
	ErrRecordTooLong = errors.New("record too long")
	// ErrNoHeader is returned by Open and New for a file with no header row
	// (empty, or only blank lines).
	ErrNoHeader = errors.New("no header row")
	// ErrUnsupportedEncoding is returned for an Options.Encoding this package
	// does not know, or a file whose byte-order mark contradicts it.
	ErrUnsupportedEncoding = errors.New("unsupported encoding")
	// ErrBadDelimiter is returned for a delimiter that cannot separate fields
	// (a quote, a line break, or an invalid rune).
	ErrBadDelimiter = errors.New("invalid delimiter")
)
