// Package nhsnumber parses, checks and formats NHS numbers.
//
// An NHS number is ten digits whose last digit is a Modulus 11 check digit:
// the first nine digits are weighted 10 down to 2, the weighted sum is
// taken modulo 11 and the check digit is 11 minus that remainder, where 11
// becomes 0 and 10 means no valid number has those first nine digits.
//
// The index is strict about what it accepts as an identifier:
//
//   - leading and trailing white space is trimmed, and spaces and dashes
//     anywhere inside are removed, whatever the grouping ("943 476 5919",
//     "943-476-5919" and "9434 765 919" are all 9434765919); any other
//     character, or a digit count other than ten, is ErrFormat. Numbers that
//     lost a leading zero (nine digits, for example from a spreadsheet
//     column typed as a number) are not padded: guessing could link the
//     wrong person;
//   - the check digit must be right (ErrCheckDigit);
//   - repeated-digit numbers (0000000000 … 9999999999) pass the check but
//     are placeholders and are refused (ErrPlaceholder);
//   - 999xxxxxxx is a test range that is never issued: it is refused
//     (ErrTestRange) unless the source is marked as test data
//     (Options.AllowTestRange).
//
// Issuing ranges (England, Wales and the Isle of Man; Scotland's CHI;
// Northern Ireland) are not checked: a patient treated here may carry a
// number issued elsewhere.
package nhsnumber

import (
	"fmt"
	"strings"
	"unicode"
)

// Options adjusts what Parse accepts. The zero value is the strict policy
// used by Normalise.
type Options struct {
	// AllowTestRange accepts numbers in the 999xxxxxxx test range. Set it
	// only for sources marked as test data.
	AllowTestRange bool
}

// Normalise returns the ten digits of the NHS number in s, checked under
// the strict policy. It is Parse with the zero Options.
func Normalise(s string) (string, error) {
	return Parse(s, Options{})
}

// Parse returns the ten digits of the NHS number in s. It trims leading and
// trailing white space, removes inner spaces and dashes, and then requires
// exactly ten ASCII digits with a correct Modulus 11 check digit that are
// neither a repeated-digit placeholder nor, unless opts.AllowTestRange is
// set, in the 999xxxxxxx test range. Errors wrap ErrFormat, ErrCheckDigit,
// ErrPlaceholder or ErrTestRange and never contain the input.
func Parse(s string, opts Options) (string, error) {
	digits, err := clean(s)
	if err != nil {
		return "", err
	}
	if !Valid(digits) {
		return "", fmt.Errorf("nhsnumber: %w", ErrCheckDigit)
	}
	if strings.Count(digits, digits[:1]) == len(digits) {
		return "", fmt.Errorf("nhsnumber: %w", ErrPlaceholder)
	}
	if strings.HasPrefix(digits, "999") && !opts.AllowTestRange {
		return "", fmt.Errorf("nhsnumber: source not marked as test data: %w", ErrTestRange)
	}
	return digits, nil
}

// clean trims s, removes inner spaces and dashes and checks that exactly
// ten ASCII digits remain.
func clean(s string) (string, error) {
	s = strings.TrimFunc(s, unicode.IsSpace)
	var b strings.Builder
	b.Grow(10)
	n := 0
	for _, r := range s {
		switch {
		case r == ' ' || r == '-':
			continue
		case r >= '0' && r <= '9':
			n++
			if n <= 10 {
				b.WriteRune(r)
			}
		default:
			return "", fmt.Errorf("nhsnumber: character other than a digit, space or dash: %w", ErrFormat)
		}
	}
	if n != 10 {
		return "", fmt.Errorf("nhsnumber: %d digits, want 10: %w", n, ErrFormat)
	}
	return b.String(), nil
}

// Valid reports whether s is exactly ten ASCII digits whose last digit is
// the Modulus 11 check digit of the first nine. It does not strip
// separators and does not apply the placeholder or test-range rules, so
// Valid("1111111111") is true while Normalise refuses that number.
func Valid(s string) bool {
	if len(s) != 10 {
		return false
	}
	sum := 0
	for i := 0; i < 10; i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return false
		}
		if i < 9 {
			sum += int(c-'0') * (10 - i)
		}
	}
	check := 11 - sum%11
	switch check {
	case 11:
		check = 0
	case 10:
		return false
	}
	return int(s[9]-'0') == check
}

// Format returns n in the 3-3-4 display form, "943 476 5919". n may be
// given with spaces or dashes and surrounding white space; if it does not
// reduce to ten digits it is returned unchanged. Format does not check the
// check digit: call Normalise first when that matters.
func Format(n string) string {
	digits, err := clean(n)
	if err != nil {
		return n
	}
	return digits[:3] + " " + digits[3:6] + " " + digits[6:]
}
