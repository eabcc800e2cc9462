// Package sqlquery streams the result of a SQL query as raw rows, one row at
// a time from *sql.Rows, so a large result is never loaded whole.
//
// Every column is converted to a string:
//
//   - NULL becomes "";
//   - text and []byte (bytea, and the numeric type as most drivers return
//     it) are taken as they are;
//   - integers and floats are formatted with strconv, floats in the
//     shortest form that reads back exactly and never in exponent form;
//   - booleans become "true" or "false";
//   - a time.Time whose clock reads midnight exactly (a DATE column, or a
//     timestamp at 00:00:00) becomes "2006-01-02"; any other becomes RFC 3339
//     with its UTC offset and, if it has one, fractional seconds (the
//     driver decides the offset: for a timestamp without time zone lib/pq
//     reports UTC, for timestamptz the session's time zone).
//
// A value that is not valid UTF-8, or holds a NUL byte (which PostgreSQL
// text cannot store), is a row error ([ErrInvalidEncoding]); the row's values
// then carry U+FFFD in place of the bad bytes.
//
// Row.File is "query:" followed by the source name, and Row.Line is the
// 1-based result row number plus one, so that the first result row is line 2
// as it would be under a header in a file. Row.Raw is the row written as one
// CSV record.
package sqlquery
