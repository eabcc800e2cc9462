package field_test

import (
	"errors"
	"testing"
	"time"

	"github.com/careindex/careindex/transform/field"
)

var (
	iso       = []string{"2006-01-02"}
	ukLayouts = []string{"02/01/2006", "2/1/2006", "20060102", "2006-01-02T15:04:05Z07:00"}
)

func TestDate(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		layouts []string
		want    string
		err     error
	}{
		{name: "ISO", in: "2023-01-01", layouts: iso, want: "2023-01-01"},
		{name: "no layouts means ISO", in: "2023-01-01", want: "2023-01-01"},
		{name: "no layouts rejects UK", in: "01/02/2023", err: field.ErrDate},
		{name: "surrounding white space", in: " 2023-01-01\t", layouts: iso, want: "2023-01-01"},
		{name: "first layout", in: "01/02/2023", layouts: ukLayouts, want: "2023-02-01"},
		{name: "second layout", in: "1/2/2023", layouts: ukLayouts, want: "2023-02-01"},
		{name: "compact layout", in: "19550412", layouts: ukLayouts, want: "1955-04-12"},
		{name: "timestamp keeps the written date", in: "2023-01-01T23:30:00-05:00", layouts: ukLayouts, want: "2023-01-01"},
		{name: "leap day", in: "2024-02-29", layouts: iso, want: "2024-02-29"},
		{name: "no leap day in 2023", in: "2023-02-29", layouts: iso, err: field.ErrDate},
		{name: "no day 31 in April", in: "31/04/2023", layouts: ukLayouts, err: field.ErrDate},
		{name: "impossible compact date", in: "19355004", layouts: []string{"20060102"}, err: field.ErrDate},
		{name: "layout without a year", in: "01/02", layouts: []string{"02/01"}, err: field.ErrDate},
		{name: "trailing text", in: "2023-01-01x", layouts: iso, err: field.ErrDate},
		{name: "empty", in: "", layouts: iso, err: field.ErrEmpty},
		{name: "white space only", in: "  ", layouts: iso, err: field.ErrEmpty},
		{name: "junk", in: "yesterday", layouts: iso, err: field.ErrDate},
		{name: "Excel serial", in: "44927", layouts: iso, want: "2023-01-01"},
		{name: "Excel serial with .0", in: "44927.0", layouts: iso, want: "2023-01-01"},
		{name: "Excel serial with time of day", in: "44927.75", layouts: iso, want: "2023-01-01"},
		{name: "Excel serial 2000-01-01", in: "36526", layouts: iso, want: "2000-01-01"},
		{name: "Excel serial 2024-01-01", in: "45292", want: "2024-01-01"},
		{name: "Excel serial 1", in: "1", layouts: iso, want: "1900-01-01"},
		{name: "Excel serial 59", in: "59", layouts: iso, want: "1900-02-28"},
		{name: "Excel serial 60 phantom leap day", in: "60", layouts: iso, err: field.ErrDate},
		{name: "Excel serial 61", in: "61", layouts: iso, want: "1900-03-01"},
		{name: "Excel serial maximum", in: "99999", layouts: iso, want: "2173-10-13"},
		{name: "Excel serial too large", in: "100000", layouts: iso, err: field.ErrDate},
		{name: "Excel serial 0", in: "0", layouts: iso, err: field.ErrDate},
		{name: "Excel serial 0.5", in: "0.5", layouts: iso, err: field.ErrDate},
		{name: "Excel serial negative", in: "-1", layouts: iso, err: field.ErrDate},
		{name: "Excel serial with a trailing dot", in: "44927.", layouts: iso, err: field.ErrDate},
		{name: "Excel serial with exponent", in: "4.4927E4", layouts: iso, err: field.ErrDate},
		{name: "layout wins over serial", in: "20230101", layouts: []string{"20060102"}, want: "2023-01-01"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := field.Date(tt.in, tt.layouts)
			if tt.err != nil {
				if !errors.Is(err, tt.err) || got != "" {
					t.Fatalf("Date(%q) = %q, %v; want error %v", tt.in, got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Date(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestDateOfBirth(t *testing.T) {
	london, err := time.LoadLocation("Europe/London")
	if err != nil {
		london = time.FixedZone("BST", 3600)
	}
	now := time.Date(2024, time.June, 15, 0, 30, 0, 0, london) // 2024-06-14 23:30 UTC
	tests := []struct {
		name string
		in   string
		want string
		err  error
	}{
		{name: "ordinary", in: "12/04/1955", want: "1955-04-12"},
		{name: "born today in now's zone", in: "15/06/2024", want: "2024-06-15"},
		{name: "tomorrow", in: "16/06/2024", err: field.ErrFuture},
		{name: "far future", in: "01/01/2999", err: field.ErrFuture},
		{name: "earliest accepted", in: "01/01/1880", want: "1880-01-01"},
		{name: "day before earliest", in: "31/12/1879", err: field.ErrTooEarly},
		{name: "year 1000", in: "10000101", err: field.ErrTooEarly},
		{name: "Excel serial", in: "20000", want: "1954-10-03"},
		{name: "Excel serial in the future", in: "99999", err: field.ErrFuture},
		{name: "impossible", in: "19355004", err: field.ErrDate},
		{name: "empty", in: "", err: field.ErrEmpty},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := field.DateOfBirth(tt.in, ukLayouts, now)
			if tt.err != nil {
				if !errors.Is(err, tt.err) || got != "" {
					t.Fatalf("DateOfBirth(%q) = %q, %v; want error %v", tt.in, got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("DateOfBirth(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

// TestDateErrorsDoNotRepeatInput guards against dates of birth leaking
// into logs through error messages.
func TestDateErrorsDoNotRepeatInput(t *testing.T) {
	now := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, in := range []string{"31/02/1961", "1961-02-31", "19610231", "2099-01-01"} {
		t.Run(in, func(t *testing.T) {
			_, err := field.DateOfBirth(in, append([]string{"2006-01-02"}, ukLayouts...), now)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, part := range []string{in, "1961", "2099"} {
				if contains(err.Error(), part) {
					t.Fatalf("error %q repeats %q", err, part)
				}
			}
		})
	}
}
