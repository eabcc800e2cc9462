package field_test

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/careindex/careindex/transform/field"
)

var fuzzNow = time.Date(2024, time.June, 15, 12, 0, 0, 0, time.UTC)

func FuzzDate(f *testing.F) {
	for _, s := range []string{
		"2023-01-01", "01/02/2023", "19550412", "19355004", "44927", "44927.0",
		"60", "0", "99999", "100000", "", " ", "2023-02-29", "1879-12-31", "2999-01-01",
		"2023-01-01T23:30:00-05:00", "0000-01-01", "44927.",
	} {
		f.Add(s, "2006-01-02")
		f.Add(s, "02/01/2006")
		f.Add(s, "20060102")
	}
	f.Fuzz(func(t *testing.T, s, layout string) {
		layouts := []string{layout}
		got, err := field.Date(s, layouts)
		if err != nil {
			if got != "" || !(errors.Is(err, field.ErrDate) || errors.Is(err, field.ErrEmpty)) {
				t.Fatalf("Date(%q, %q) = %q, %v", s, layout, got, err)
			}
		} else {
			d, perr := time.Parse(field.ISODate, got)
			if perr != nil || d.Format(field.ISODate) != got {
				t.Fatalf("Date(%q, %q) = %q, not an ISO date", s, layout, got)
			}
			if again, err := field.Date(got, nil); err != nil || again != got {
				t.Fatalf("Date(%q) = %q, %v; not stable", got, again, err)
			}
		}

		dob, err := field.DateOfBirth(s, layouts, fuzzNow)
		if err != nil {
			if dob != "" {
				t.Fatalf("DateOfBirth(%q) = %q with error %v", s, dob, err)
			}
			return
		}
		if dob != got {
			t.Fatalf("DateOfBirth(%q) = %q, Date = %q", s, dob, got)
		}
		if dob < field.EarliestBirthDate || dob > fuzzNow.Format(field.ISODate) {
			t.Fatalf("DateOfBirth(%q) = %q, out of range", s, dob)
		}
	})
}

func FuzzSex(f *testing.F) {
	for _, s := range []string{"M", "f", "Male", "FEMALE", "1", "2", "0", "9", "U", "unknown",
		"Not Known", "I", "x", "Other", "", " ", "N", "ı", "notknown"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := field.Sex(s)
		if err != nil {
			if got != "" || !errors.Is(err, field.ErrSex) {
				t.Fatalf("Sex(%q) = %q, %v", s, got, err)
			}
			return
		}
		switch got {
		case field.SexMale, field.SexFemale, field.SexOther, field.SexUnknown:
		default:
			t.Fatalf("Sex(%q) = %q", s, got)
		}
		if again, err := field.Sex(got); err != nil || again != got {
			t.Fatalf("Sex(%q) = %q, %v; not stable", got, again, err)
		}
	})
}

func FuzzODSCode(f *testing.F) {
	for _, s := range []string{"RR8", " v81999 ", "ABCDE12345", "ABCDE123456", "R1", "", "RR8-01", "RRÉ"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := field.ODSCode(s)
		if err != nil {
			if got != "" || !(errors.Is(err, field.ErrODSCode) || errors.Is(err, field.ErrEmpty)) {
				t.Fatalf("ODSCode(%q) = %q, %v", s, got, err)
			}
			return
		}
		if len(got) < 3 || len(got) > 10 {
			t.Fatalf("ODSCode(%q) = %q, wrong length", s, got)
		}
		for _, r := range got {
			if !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
				t.Fatalf("ODSCode(%q) = %q, bad character %q", s, got, r)
			}
		}
		if again, err := field.ODSCode(got); err != nil || again != got {
			t.Fatalf("ODSCode(%q) = %q, %v; not stable", got, again, err)
		}
	})
}

func FuzzName(f *testing.F) {
	for _, c := range readNameCases(f) {
		f.Add(c.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, fn := range []struct {
			name string
			f    func(string) string
		}{{"Name", field.Name}, {"NameWithoutDigits", field.NameWithoutDigits}} {
			got := fn.f(s)
			if !utf8.ValidString(got) {
				t.Fatalf("%s(%q) = %q, invalid UTF-8", fn.name, s, got)
			}
			if strings.TrimSpace(got) != got || strings.Contains(got, "  ") {
				t.Fatalf("%s(%q) = %q, white space not folded", fn.name, s, got)
			}
			for _, r := range got {
				if r != ' ' && unicode.IsSpace(r) || unicode.In(r, unicode.Cc, unicode.Cf) || r == utf8.RuneError {
					t.Fatalf("%s(%q) = %q, keeps %U", fn.name, s, got, r)
				}
				if fn.name == "NameWithoutDigits" && unicode.IsDigit(r) {
					t.Fatalf("%s(%q) = %q, keeps digit %U", fn.name, s, got, r)
				}
			}
			if again := fn.f(got); again != got {
				t.Fatalf("%s not idempotent: %q → %q → %q", fn.name, s, got, again)
			}
		}
	})
}
