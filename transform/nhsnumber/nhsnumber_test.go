package nhsnumber_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/careindex/careindex/transform/nhsnumber"
)

func TestParse(t *testing.T) {
	test := nhsnumber.Options{AllowTestRange: true}
	tests := []struct {
		name string
		in   string
		opts nhsnumber.Options
		want string
		err  error
	}{
		{name: "bare digits", in: "9434765919", want: "9434765919"},
		{name: "3-3-4 spaces", in: "943 476 5919", want: "9434765919"},
		{name: "3-3-4 dashes", in: "943-476-5919", want: "9434765919"},
		{name: "odd grouping", in: "94 34 76 59 19", want: "9434765919"},
		{name: "surrounding white space", in: "\t 943 476 5919\r\n", want: "9434765919"},
		{name: "non-breaking space at the ends", in: "\u00a09434765919\u00a0", want: "9434765919"},
		{name: "check digit 0 from 11", in: "9876543210", want: "9876543210"},
		{name: "leading zero", in: "0123456789", want: "0123456789"},
		{name: "empty", in: "", err: nhsnumber.ErrFormat},
		{name: "white space only", in: "   ", err: nhsnumber.ErrFormat},
		{name: "nine digits not padded", in: "123456789", err: nhsnumber.ErrFormat},
		{name: "eleven digits", in: "94347659190", err: nhsnumber.ErrFormat},
		{name: "letter", in: "943476591O", err: nhsnumber.ErrFormat},
		{name: "inner tab", in: "943\t4765919", err: nhsnumber.ErrFormat},
		{name: "dot separator", in: "943.476.5919", err: nhsnumber.ErrFormat},
		{name: "full-width digits", in: "９４３４７６５９１９", err: nhsnumber.ErrFormat},
		{name: "spreadsheet float", in: "9434765919.0", err: nhsnumber.ErrFormat},
		{name: "wrong check digit", in: "9434765918", err: nhsnumber.ErrCheckDigit},
		{name: "check value 10", in: "1234567890", err: nhsnumber.ErrCheckDigit},
		{name: "placeholder zeros", in: "0000000000", err: nhsnumber.ErrPlaceholder},
		{name: "placeholder ones spaced", in: "111 111 1111", err: nhsnumber.ErrPlaceholder},
		{name: "placeholder nines even for test data", in: "9999999999", opts: test, err: nhsnumber.ErrPlaceholder},
		{name: "test range refused", in: "9990000018", err: nhsnumber.ErrTestRange},
		{name: "test range allowed for test data", in: "999 000 0018", opts: test, want: "9990000018"},
		{name: "test range still checksummed", in: "9991234560", opts: test, err: nhsnumber.ErrCheckDigit},
		{name: "900 range not the test range", in: "9000000009", want: "9000000009"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := nhsnumber.Parse(tt.in, tt.opts)
			if tt.err != nil {
				if !errors.Is(err, tt.err) || got != "" {
					t.Fatalf("Parse(%q) = %q, %v; want error %v", tt.in, got, err, tt.err)
				}
				if d := strings.Map(keepDigits, tt.in); len(d) >= 4 && strings.Contains(err.Error(), d) {
					t.Fatalf("error %q repeats the input", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Parse(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func keepDigits(r rune) rune {
	if r >= '0' && r <= '9' {
		return r
	}
	return -1
}

func TestNormaliseIsParseWithZeroOptions(t *testing.T) {
	for _, in := range []string{"9434765919", "9990000018", "0000000000", "x", "1234567890"} {
		t.Run(in, func(t *testing.T) {
			g1, e1 := nhsnumber.Normalise(in)
			g2, e2 := nhsnumber.Parse(in, nhsnumber.Options{})
			if g1 != g2 || (e1 == nil) != (e2 == nil) {
				t.Fatalf("Normalise = %q, %v; Parse = %q, %v", g1, e1, g2, e2)
			}
		})
	}
}

func TestValid(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want bool
	}{
		{name: "valid", in: "9434765919", want: true},
		{name: "remainder 0 gives check 0", in: "9876543210", want: true},
		{name: "placeholder passes the checksum", in: "1111111111", want: true},
		{name: "test range passes the checksum", in: "9990000018", want: true},
		{name: "wrong check digit", in: "9434765910"},
		{name: "check value 10", in: "1234567890"},
		{name: "transposed digits", in: "4934765919"},
		{name: "spaces not stripped", in: "943 476 5919"},
		{name: "surrounding space not trimmed", in: " 9434765919"},
		{name: "nine digits", in: "943476591"},
		{name: "empty", in: ""},
		{name: "letters", in: "94347659AB"},
		{name: "multi-byte rune", in: "943476591é"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := nhsnumber.Valid(tt.in); got != tt.want {
				t.Fatalf("Valid(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

// TestValidOneCheckDigitPerStem checks over many stems that exactly one
// check digit is valid, except for stems whose check value is 10, which
// have none.
func TestValidOneCheckDigitPerStem(t *testing.T) {
	none := 0
	for stem := 0; stem < 1_000_000_000; stem += 7_919_111 {
		s := fmt.Sprintf("%09d", stem)
		n := 0
		for d := byte('0'); d <= '9'; d++ {
			if nhsnumber.Valid(s + string(d)) {
				n++
			}
		}
		if n > 1 {
			t.Fatalf("stem %s: %d valid check digits", s, n)
		}
		if n == 0 {
			none++
		}
	}
	if none == 0 {
		t.Fatal("no stem with check value 10 met: the sample is too small")
	}
}

func TestFormat(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{name: "digits", in: "9434765919", want: "943 476 5919"},
		{name: "already formatted", in: "943 476 5919", want: "943 476 5919"},
		{name: "dashed", in: "943-476-5919", want: "943 476 5919"},
		{name: "not checksum checked", in: "1231234567", want: "123 123 4567"},
		{name: "leading zero", in: "0123456789", want: "012 345 6789"},
		{name: "too short unchanged", in: "12345", want: "12345"},
		{name: "junk unchanged", in: "hello", want: "hello"},
		{name: "empty unchanged", in: "", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := nhsnumber.Format(tt.in); got != tt.want {
				t.Fatalf("Format(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
