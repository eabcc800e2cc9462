package field

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// ISODate is the layout of every date this package returns.
const ISODate = "2006-01-02"

// EarliestBirthDate is the earliest date of birth DateOfBirth accepts.
const EarliestBirthDate = "1880-01-01"

// maxExcelSerial bounds the Excel serial day numbers Date accepts: five
// digits, up to 2173-10-13. Longer digit strings are far more often a
// mangled yyyymmdd than a date two centuries ahead.
const maxExcelSerial = 99999

// Date parses s as a calendar date and returns it as "2006-01-02".
//
// s is trimmed and tried against each Go time layout in layouts in turn;
// the first that parses wins. With no layouts, ISO 8601 "2006-01-02" is
// used. A layout that includes a time and zone yields the calendar date in
// the zone written in s. time.Parse rejects days that do not exist
// ("2023-02-30", or "19355004" under "20060102"). Layouts with two-digit
// years ("02/01/06") follow Go's pivot (69–99 → 19xx, 00–68 → 20xx) and
// are best avoided for dates of birth.
//
// If no layout matches and s is an Excel serial day number of the 1900
// date system, with an optional fraction for the time of day ("44927" or
// "44927.0" → "2023-01-01"), the serial's date is returned. Serial 1 is
// 1900-01-01; serial 60 is Lotus 1-2-3's fictitious 1900-02-29 and is
// rejected; serials below 1 or above 99999 are rejected. The 1904 date
// system is not supported.
//
// Errors wrap ErrEmpty or ErrDate.
func Date(s string, layouts []string) (string, error) {
	t, err := parseDate(s, layouts)
	if err != nil {
		return "", err
	}
	return t.Format(ISODate), nil
}

// DateOfBirth is Date for dates of birth: the date must also fall neither
// after now (compared as calendar dates in now's location, so a birth
// today is accepted) nor before EarliestBirthDate. Errors wrap ErrEmpty,
// ErrDate, ErrFuture or ErrTooEarly.
func DateOfBirth(s string, layouts []string, now time.Time) (string, error) {
	d, err := Date(s, layouts)
	if err != nil {
		return "", err
	}
	// ISO dates with four-digit years compare correctly as strings.
	if d < EarliestBirthDate {
		return "", fmt.Errorf("field: date of birth before %s: %w", EarliestBirthDate, ErrTooEarly)
	}
	if d > now.Format(ISODate) {
		return "", fmt.Errorf("field: date of birth after the run date: %w", ErrFuture)
	}
	return d, nil
}

func parseDate(s string, layouts []string) (time.Time, error) {
	s = strings.TrimFunc(s, unicode.IsSpace)
	if s == "" {
		return time.Time{}, fmt.Errorf("field: date: %w", ErrEmpty)
	}
	if len(layouts) == 0 {
		layouts = []string{ISODate}
	}
	for _, layout := range layouts {
		t, err := time.Parse(layout, s)
		if err != nil {
			continue
		}
		if t.Year() < 1 {
			return time.Time{}, fmt.Errorf("field: date has no year or year 0: %w", ErrDate)
		}
		return t, nil
	}
	if t, ok, err := excelSerial(s); ok {
		return t, err
	}
	return time.Time{}, fmt.Errorf("field: date matches none of %d layouts and is not an Excel serial: %w", len(layouts), ErrDate)
}

// excelSerial reads s as an Excel 1900-system serial day number. ok is
// false when s does not look like one (digits, optionally a dot and more
// digits); err is set when it looks like one but names no date.
func excelSerial(s string) (t time.Time, ok bool, err error) {
	whole, frac, dot := strings.Cut(s, ".")
	if !isDigits(whole) || (dot && !isDigits(frac)) {
		return time.Time{}, false, nil
	}
	if len(whole) > len(strconv.Itoa(maxExcelSerial)) {
		return time.Time{}, true, fmt.Errorf("field: Excel serial above %d: %w", maxExcelSerial, ErrDate)
	}
	n, err := strconv.Atoi(whole)
	switch {
	case err != nil:
		return time.Time{}, true, fmt.Errorf("field: Excel serial: %w", ErrDate)
	case n < 1:
		return time.Time{}, true, fmt.Errorf("field: Excel serial below 1: %w", ErrDate)
	case n == 60:
		return time.Time{}, true, fmt.Errorf("field: Excel serial 60 is the fictitious 1900-02-29: %w", ErrDate)
	case n > maxExcelSerial:
		return time.Time{}, true, fmt.Errorf("field: Excel serial above %d: %w", maxExcelSerial, ErrDate)
	case n < 60:
		// Before the phantom leap day, serial 1 is 1900-01-01.
		return time.Date(1899, time.December, 31+n, 0, 0, 0, 0, time.UTC), true, nil
	default:
		// From serial 61 (1900-03-01) on, the phantom day shifts the count.
		return time.Date(1899, time.December, 30+n, 0, 0, 0, 0, time.UTC), true, nil
	}
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
