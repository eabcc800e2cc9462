package xlsx

import "errors"

// Sentinel errors. Errors wrap them with the sheet and workbook names and,
// where there is one, the row number.
var (
	// ErrSheetNotFound is returned by Open when the workbook has no sheet of
	// the requested name.
	ErrSheetNotFound = errors.New("sheet not found")
	// ErrNoHeader is returned by Open when the sheet has no header row: it
	// is empty, or Options.HeaderRow names an empty row or one past the end.
	ErrNoHeader = errors.New("no header row")
	// ErrFieldCount marks a row with a non-blank cell to the right of the
	// header's last column.
	ErrFieldCount = errors.New("value beyond the header's columns")
	// ErrDamagedWorkbook is returned by Open for a workbook whose zip
	// directory cannot be trusted (a part declaring an implausible size).
	ErrDamagedWorkbook = errors.New("damaged workbook")
	// ErrBadCell marks a row with a cell excelize could not read (for
	// example a bad shared-string reference).
	ErrBadCell = errors.New("unreadable cell")
)
