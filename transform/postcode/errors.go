package postcode

import "errors"

// Sentinel errors returned (wrapped) by Normalise and Parse. Test for them
// with errors.Is. Error messages never repeat the input, which can identify
// a household.
var (
	// ErrEmpty means the input holds nothing but white space.
	ErrEmpty = errors.New("postcode is empty")

	// ErrFormat means the input does not have the shape of a UK postcode
	// (A9 9AA, A99 9AA, A9A 9AA, AA9 9AA, AA99 9AA, AA9A 9AA or GIR 0AA).
	ErrFormat = errors.New("not a UK postcode format")

	// ErrRule means the input has the shape of a UK postcode but breaks a
	// rule of the Royal Mail scheme: a letter in a position where it is
	// never used (Q, V or X first; I, J or Z second; ...), or a district
	// number of a length that its area never uses (FY10, SO1).
	ErrRule = errors.New("postcode breaks the UK postcode letter or district rules")

	// ErrUnsupported means the input is a recognised postcode outside the
	// UK scheme: British Forces (BFPO) or an overseas territory (BBND 1ZZ,
	// FIQQ 1ZZ, AI-2640, ...). The index does not hold these.
	ErrUnsupported = errors.New("BFPO or overseas territory postcode not held by the index")
)
