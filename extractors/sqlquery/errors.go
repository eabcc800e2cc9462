package sqlquery

import "errors"

// Sentinel errors. Errors wrap them with "query:<name>" and, where there is
// one, the line number.
var (
	// ErrInvalidEncoding marks a row holding a value that is not valid
	// UTF-8 or that holds a NUL byte.
	ErrInvalidEncoding = errors.New("value not valid UTF-8 text")
	// ErrNoColumns is returned by Open for a statement that returns no
	// result columns.
	ErrNoColumns = errors.New("query returns no columns")
)
