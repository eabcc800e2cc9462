package match

import (
	"iter"
)

// Record is one person record as the matcher sees it. Every field is
// optional except ID; an empty field is missing and gives no evidence either
// way. Values are expected in careindex's normalised forms (see
// transform/normalise), but the matcher normalises again for comparison, so
// lower case, punctuation and stray white space do no harm.
type Record struct {
	// ID identifies the record to the caller (an organisation's local id,
	// a row number): it is echoed in results and never compared.
	ID string

	// NHSNumber is a 10-digit NHS number, already validated, or "". A
	// number that fails the Modulus 11 check is treated as missing.
	NHSNumber string

	FamilyName string // surname; placeholder names (ALPHA … ZULU, UNKNOWN) give no evidence
	GivenName  string // forenames, space separated

	// DateOfBirth is "2006-01-02" or "". Anything else is treated as
	// missing.
	DateOfBirth string

	// Sex is "male", "female", "other" or "unknown" ("" and "unknown" are
	// missing; "M"/"F" are accepted too).
	Sex string

	// Postcode is a UK postcode, normalised ("AA9A 9AA") or not; UK
	// postcodes are compared in full, then by sector and district. ZZ99
	// pseudo-postcodes ("no fixed abode", "not known") are treated as
	// missing: no two people ever agree on them. Any other value that is
	// not a UK postcode (an Australian 4-digit code, say) is compared as an
	// opaque code: equal, one keying error apart, or different.
	Postcode string

	// Address is free text: house number, street, locality, town. It is
	// compared as a set of words (typing errors tolerated), ignoring
	// words such as ROAD or STREET.
	Address string

	// GPPractice is the ODS code of the registered practice. V81999
	// ("practice not known") is treated as missing.
	GPPractice string

	// Email and Phone are contact details, when a source has them.
	Email string
	Phone string
}

// Records is a stream of records. It yields each record with a nil error,
// or a zero record with the error that stopped the stream; the consumer
// stops at the first error.
type Records = iter.Seq2[Record, error]

// FromSlice streams the records of a slice.
func FromSlice(rs []Record) Records {
	return func(yield func(Record, error) bool) {
		for _, r := range rs {
			if !yield(r, nil) {
				return
			}
		}
	}
}
