// Package delimited streams rows from delimited text deliveries: CSV, TSV and
// pipe-delimited files with a header row, in UTF-8 (with or without a
// byte-order mark), Windows-1252 or ISO-8859-1, with CRLF or LF line ends.
//
// The reader implements [rowsource.Reader]. It never reads the whole file: it
// holds one record at a time (bounded by [Options.MaxRecordBytes]).
//
// Quoting follows RFC 4180: a field that starts with a double quote may
// contain the delimiter, line breaks and doubled quotes (""). A CRLF inside a
// quoted field becomes LF in the value, as with encoding/csv.
//
// Problems confined to one record are reported on that row in
// [rowsource.Row.Err] and the stream carries on with the next record:
//
//   - a wrong number of fields ([ErrFieldCount]): Values is padded or cut to
//     the header's length and Raw holds the whole record;
//   - text not valid in the declared encoding ([ErrInvalidEncoding]): invalid
//     UTF-8 in a UTF-8 file, a byte Windows-1252 leaves undefined, or a NUL
//     byte (which PostgreSQL text cannot hold, and which usually means a
//     UTF-16 file); Raw and Values carry U+FFFD in place of the bad bytes;
//   - a malformed quote ([ErrBadQuote]): a bare quote in an unquoted field, text
//     after a closing quote, or a quoted field never closed. The physical line
//     the record starts on becomes the bad row and reading resumes at the next
//     physical line, so one stray quote costs one line, not the rest of the
//     file;
//   - a record longer than [Options.MaxRecordBytes] ([ErrRecordTooLong]).
//
// Row errors name the file and line and wrap one of the sentinel errors, so a
// quarantine reason can be chosen with errors.Is. They never quote field
// contents, which may be patient data.
//
// Line numbers are physical line numbers, starting at 1, of the first line of
// a record: the header is line 1 unless blank lines precede it. Blank lines
// are skipped but counted.
package delimited
