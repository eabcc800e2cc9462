// Package field holds the small normalisers used when mapping source
// columns onto the index's record shapes: dates, sex, names and ODS
// organisation codes.
//
// Each function takes the raw cell text and returns the normalised value
// or an error wrapping one of the package's sentinel errors. Errors never
// repeat the input, so they can be logged and counted without copying
// personal data into logs.
package field

import (
	"fmt"
	"strings"
	"unicode"
)

// Values returned by Sex.
const (
	SexMale    = "male"
	SexFemale  = "female"
	SexOther   = "other"
	SexUnknown = "unknown"
)

// Sex maps a source sex or gender code to "male", "female", "other" or
// "unknown". Matching ignores case, surrounding white space and runs of
// inner white space:
//
//	M, Male, 1                              → male
//	F, Female, 2                            → female
//	I, Indeterminate, X, Other              → other
//	U, Unknown, Not known, 0, 9, (empty)    → unknown
//
// Anything else is an error wrapping ErrSex. The digits are read as in the
// NHS Data Dictionary's person gender code (0 not known, 1 male, 2 female,
// 9 not specified). Other NHS code sets give 9 and X other meanings (in
// Person Phenotypic Sex 9 is "indeterminate"; in Person Stated Gender X is
// "not known"): a source that uses them that way must have its values
// mapped before they reach this function.
func Sex(s string) (string, error) {
	switch strings.ToLower(strings.Join(strings.Fields(s), " ")) {
	case "m", "male", "1":
		return SexMale, nil
	case "f", "female", "2":
		return SexFemale, nil
	case "i", "indeterminate", "x", "other":
		return SexOther, nil
	case "", "u", "unknown", "not known", "0", "9":
		return SexUnknown, nil
	}
	return "", fmt.Errorf("field: sex: %w", ErrSex)
}

// Name normalises a personal name for storage and matching: it trims the
// value, folds every run of white space into one space and upper-cases it
// with Unicode case mapping. Accented letters, apostrophes and hyphens are
// kept ("Zoë O'Brien-Smith" → "ZOË O'BRIEN-SMITH"); typographic
// apostrophes (’ ‘ ʼ ` ´) become ' and typographic hyphens and dashes
// (‐ ‑ ‒ – —) become -, so that the same name typed in a word processor and
// in a form compares equal. Control and format characters (zero-width
// spaces, byte order marks, soft hyphens) and invalid UTF-8 are dropped.
// Unicode normalisation (NFC) is not applied.
func Name(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for _, r := range s {
		switch {
		case unicode.IsSpace(r):
			space = b.Len() > 0
			continue
		case r == unicode.ReplacementChar, unicode.In(r, unicode.Cc, unicode.Cf):
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		switch r {
		case '\u2019', '\u2018', '\u02bc', '`', '\u00b4':
			r = '\''
		case '\u2010', '\u2011', '\u2012', '\u2013', '\u2014':
			r = '-'
		}
		b.WriteRune(unicode.ToUpper(r))
	}
	return b.String()
}

// NameWithoutDigits is Name with every decimal digit removed, for sources
// such as Synthea that append numbers to names ("Hyman89" → "HYMAN"). White
// space left behind is folded again, so "Jo 12 Smith" gives "JO SMITH".
func NameWithoutDigits(s string) string {
	return Name(strings.Map(func(r rune) rune {
		if unicode.IsDigit(r) {
			return -1
		}
		return r
	}, s))
}

// ODSCode normalises an Organisation Data Service code: it trims the value,
// upper-cases it and requires 3 to 10 ASCII letters and digits ("rr8" →
// "RR8", " v81999 " → "V81999"). It does not decide whether a code is in
// use; V81999 ("GP practice not known") is returned like any other code.
// Errors wrap ErrEmpty or ErrODSCode.
func ODSCode(s string) (string, error) {
	s = strings.TrimFunc(s, unicode.IsSpace)
	if s == "" {
		return "", fmt.Errorf("field: ODS code: %w", ErrEmpty)
	}
	if len(s) < 3 || len(s) > 10 {
		return "", fmt.Errorf("field: ODS code of %d bytes, want 3 to 10: %w", len(s), ErrODSCode)
	}
	b := []byte(s)
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z':
			b[i] = c - 'a' + 'A'
		case c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		default:
			return "", fmt.Errorf("field: ODS code has a character other than a letter or digit: %w", ErrODSCode)
		}
	}
	return string(b), nil
}
