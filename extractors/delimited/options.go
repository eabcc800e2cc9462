package delimited

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// DefaultMaxRecordBytes is the record size limit used when
// Options.MaxRecordBytes is zero.
const DefaultMaxRecordBytes = 1 << 20

// Options describes the format of a delimited delivery. The zero value reads
// comma-separated UTF-8.
type Options struct {
	// Delimiter separates fields: ',' (the default when zero), '\t', '|' or
	// any other rune except a double quote, CR, LF or U+FFFD.
	Delimiter rune
	// Encoding names the character encoding of the file: "utf-8" (the
	// default when empty; a leading byte-order mark is dropped),
	// "windows-1252" (or "cp1252"), or "latin1" (or "iso-8859-1"). Names are
	// matched without regard to case.
	Encoding string
	// TrimSpace trims leading and trailing white space from every field
	// (quoted or not), for files such as FEBRL extracts whose fields start
	// with a space. With TrimSpace a quote may follow leading blanks and still
	// open a quoted field, and lines holding only blanks count as blank.
	TrimSpace bool
	// LazyQuotes accepts a double quote inside an unquoted field as an
	// ordinary character (as in 5'11") instead of reporting ErrBadQuote.
	LazyQuotes bool
	// MaxRecordBytes bounds the memory one record may take; a longer record
	// is reported as a bad row. Zero means DefaultMaxRecordBytes.
	MaxRecordBytes int
}

// encoding identifies a supported character encoding.
type encoding int

const (
	encUTF8 encoding = iota
	encWindows1252
	encLatin1
)

func (e encoding) String() string {
	switch e {
	case encWindows1252:
		return "windows-1252"
	case encLatin1:
		return "iso-8859-1"
	default:
		return "utf-8"
	}
}

// parseEncoding maps an Options.Encoding name to an encoding.
func parseEncoding(name string) (encoding, error) {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case "", "utf-8", "utf8":
		return encUTF8, nil
	case "windows-1252", "cp1252", "windows1252":
		return encWindows1252, nil
	case "latin1", "latin-1", "iso-8859-1", "iso8859-1":
		return encLatin1, nil
	default:
		return 0, fmt.Errorf("%q (want utf-8, windows-1252 or latin1): %w", name, ErrUnsupportedEncoding)
	}
}

// delimiterBytes validates a delimiter and returns its UTF-8 encoding.
func delimiterBytes(d rune) ([]byte, error) {
	if d == 0 {
		d = ','
	}
	if d == '"' || d == '\r' || d == '\n' || d == utf8.RuneError || !utf8.ValidRune(d) {
		return nil, fmt.Errorf("%q: %w", d, ErrBadDelimiter)
	}
	return utf8.AppendRune(nil, d), nil
}
