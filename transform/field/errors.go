package field

import "errors"

// Sentinel errors returned (wrapped) by the normalisers. Test for them with
// errors.Is. Error messages never repeat the input: a source value can be
// personal data, or a misplaced column that holds some.
var (
	// ErrEmpty means the value is empty or white space only. Callers that
	// treat the field as optional map it to "".
	ErrEmpty = errors.New("value is empty")

	// ErrDate means the value is not a date in any configured layout nor an
	// Excel serial day number, or names a day that does not exist.
	ErrDate = errors.New("not a valid date")

	// ErrFuture means a date of birth falls after the supplied now.
	ErrFuture = errors.New("date of birth is in the future")

	// ErrTooEarly means a date of birth falls before EarliestBirthDate.
	ErrTooEarly = errors.New("date of birth is implausibly early")

	// ErrSex means the value is not a recognised sex or gender code.
	ErrSex = errors.New("not a recognised sex code")

	// ErrODSCode means the value is not 3 to 10 ASCII letters and digits.
	ErrODSCode = errors.New("not a valid ODS code")
)
