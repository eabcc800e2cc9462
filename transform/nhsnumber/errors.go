package nhsnumber

import "errors"

// Sentinel errors returned (wrapped) by Parse and Normalise. Test for them
// with errors.Is. None of the error messages repeats the input, so they can
// be logged without leaking a patient identifier.
var (
	// ErrFormat means the input is not ten digits once the leading and
	// trailing white space and the inner spaces and dashes are removed.
	ErrFormat = errors.New("not a 10-digit NHS number")

	// ErrCheckDigit means the ten digits fail the Modulus 11 check.
	ErrCheckDigit = errors.New("NHS number check digit is wrong")

	// ErrPlaceholder means the number is one of the repeated-digit numbers
	// 0000000000 … 9999999999: they pass the check but are placeholders.
	ErrPlaceholder = errors.New("NHS number is a repeated-digit placeholder")

	// ErrTestRange means the number is in the 999xxxxxxx test range, which
	// is never issued, and the source is not marked as test data.
	ErrTestRange = errors.New("NHS number is in the 999 test range")
)
