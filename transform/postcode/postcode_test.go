package postcode_test

import (
	"errors"
	"testing"

	"github.com/careindex/careindex/transform/postcode"
)

func TestNormalise(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
		err  error
	}{
		{name: "A9 9AA", in: "M1 1AE", want: "M1 1AE"},
		{name: "A99 9AA", in: "B33 8TH", want: "B33 8TH"},
		{name: "A9A 9AA", in: "W1A 0AX", want: "W1A 0AX"},
		{name: "AA9 9AA", in: "CR2 6XH", want: "CR2 6XH"},
		{name: "AA99 9AA", in: "DN55 1PT", want: "DN55 1PT"},
		{name: "AA9A 9AA", in: "EC1A 1BB", want: "EC1A 1BB"},
		{name: "lower case unspaced", in: "sw1a2aa", want: "SW1A 2AA"},
		{name: "tabs and runs of spaces", in: "\tSW1A \t 2AA\n", want: "SW1A 2AA"},
		{name: "non-breaking space", in: "SW1A\u00a02AA", want: "SW1A 2AA"},
		{name: "space in the outward code", in: "S W1A 2AA", want: "SW1A 2AA"},
		{name: "Girobank", in: "gir0aa", want: "GIR 0AA"},
		{name: "pseudo no fixed abode", in: "zz99 3vz", want: "ZZ99 3VZ"},
		{name: "pseudo not known", in: "ZZ993WZ", want: "ZZ99 3WZ"},
		{name: "other pseudo", in: "ZZ99 1WZ", want: "ZZ99 1WZ"},
		{name: "Gibraltar", in: "GX11 1AA", want: "GX11 1AA"},
		{name: "format-valid but not issued", in: "MA1 1AA", want: "MA1 1AA"},
		{name: "SO two-digit district", in: "SO10 9AA", want: "SO10 9AA"},
		{name: "FY single-digit district", in: "FY9 9AA", want: "FY9 9AA"},
		{name: "WC sub-district", in: "WC1A 9AA", want: "WC1A 9AA"},
		{name: "empty", in: "", err: postcode.ErrEmpty},
		{name: "white space only", in: " \t ", err: postcode.ErrEmpty},
		{name: "too short", in: "A1 9A", err: postcode.ErrFormat},
		{name: "too long", in: "SW1A 2AAA", err: postcode.ErrFormat},
		{name: "no digit in outward", in: "EH 1JS", err: postcode.ErrFormat},
		{name: "digit first", in: "1A1 1AA", err: postcode.ErrFormat},
		{name: "letter O for zero", in: "SW1A OAA", err: postcode.ErrFormat},
		{name: "dash separator", in: "SW1A-2AA", err: postcode.ErrFormat},
		{name: "three-digit district", in: "A999 9AA", err: postcode.ErrFormat},
		{name: "letter after two digits", in: "A99A 9AA", err: postcode.ErrFormat},
		{name: "Kelvin sign not folded", in: "\u212aT1 1AA", err: postcode.ErrFormat},
		{name: "dotless i not folded", in: "s\u0131 1aa", err: postcode.ErrFormat},
		{name: "Q first", in: "Q1A 9AA", err: postcode.ErrRule},
		{name: "Z second", in: "LZ10 3QP", err: postcode.ErrRule},
		{name: "ZZ outside ZZ99", in: "ZZ1 1AA", err: postcode.ErrRule},
		{name: "bad A9A third", in: "A9Q 9AA", err: postcode.ErrRule},
		{name: "bad AA9A fourth", in: "AA9C 9AA", err: postcode.ErrRule},
		{name: "C in inward", in: "SW1A 2CA", err: postcode.ErrRule},
		{name: "V in inward", in: "SW1A 2AV", err: postcode.ErrRule},
		{name: "single-digit area with two", in: "FY10 4PL", err: postcode.ErrRule},
		{name: "double-digit area with one", in: "SO1 4QQ", err: postcode.ErrRule},
		{name: "double-digit area sub-district", in: "AB1A 1AA", err: postcode.ErrRule},
		{name: "historic W1N", in: "W1N 4DJ", err: postcode.ErrRule},
		{name: "BFPO", in: "BFPO 801", err: postcode.ErrUnsupported},
		{name: "BFPO four digits", in: "bfpo1234", err: postcode.ErrUnsupported},
		{name: "Falklands", in: "FIQQ 1ZZ", err: postcode.ErrUnsupported},
		{name: "St Helena", in: "STHL 1ZZ", err: postcode.ErrUnsupported},
		{name: "Anguilla", in: "AI-2640", err: postcode.ErrUnsupported},
		{name: "Cayman", in: "KY1-1234", err: postcode.ErrUnsupported},
		{name: "Montserrat", in: "MSR 1110", err: postcode.ErrUnsupported},
		{name: "Virgin Islands", in: "VG1110", err: postcode.ErrUnsupported},
		{name: "Kirkcaldy is not Cayman", in: "KY1 1AA", want: "KY1 1AA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := postcode.Normalise(tt.in)
			if tt.err != nil {
				if !errors.Is(err, tt.err) || got != "" {
					t.Fatalf("Normalise(%q) = %q, %v; want error %v", tt.in, got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Normalise(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want postcode.Parts
	}{
		{name: "AA9A", in: "sw1a 2aa", want: postcode.Parts{Postcode: "SW1A 2AA", Outcode: "SW1A", Incode: "2AA", Area: "SW", District: "SW1", SubDistrict: "SW1A", Sector: "SW1A 2", Unit: "AA"}},
		{name: "A9", in: "M1 1AE", want: postcode.Parts{Postcode: "M1 1AE", Outcode: "M1", Incode: "1AE", Area: "M", District: "M1", Sector: "M1 1", Unit: "AE"}},
		{name: "AA99", in: "NR103EZ", want: postcode.Parts{Postcode: "NR10 3EZ", Outcode: "NR10", Incode: "3EZ", Area: "NR", District: "NR10", Sector: "NR10 3", Unit: "EZ"}},
		{name: "A9A", in: "N1C 0AB", want: postcode.Parts{Postcode: "N1C 0AB", Outcode: "N1C", Incode: "0AB", Area: "N", District: "N1", SubDistrict: "N1C", Sector: "N1C 0", Unit: "AB"}},
		{name: "GIR", in: "GIR 0AA", want: postcode.Parts{Postcode: "GIR 0AA", Outcode: "GIR", Incode: "0AA", Area: "GIR", District: "GIR", Sector: "GIR 0", Unit: "AA"}},
		{name: "pseudo", in: "ZZ99 3VZ", want: postcode.Parts{Postcode: "ZZ99 3VZ", Outcode: "ZZ99", Incode: "3VZ", Area: "ZZ", District: "ZZ99", Sector: "ZZ99 3", Unit: "VZ", Pseudo: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := postcode.Parse(tt.in)
			if err != nil || got != tt.want {
				t.Fatalf("Parse(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestMatchKeys(t *testing.T) {
	tests := []struct {
		name                            string
		in                              string
		outcode, sector, district, area string
	}{
		{name: "sub-district", in: "SW1A 2AA", outcode: "SW1A", sector: "SW1A 2", district: "SW1", area: "SW"},
		{name: "raw input", in: "l278xy", outcode: "L27", sector: "L27 8", district: "L27", area: "L"},
		{name: "Girobank", in: "GIR 0AA", outcode: "GIR", sector: "GIR 0", district: "GIR", area: "GIR"},
		{name: "pseudo no fixed abode gives no key", in: "ZZ99 3VZ"},
		{name: "pseudo not known gives no key", in: "zz99 3wz"},
		{name: "invalid gives no key", in: "not a postcode"},
		{name: "empty gives no key", in: ""},
		{name: "overseas gives no key", in: "BFPO 801"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := postcode.Outcode(tt.in); got != tt.outcode {
				t.Errorf("Outcode = %q, want %q", got, tt.outcode)
			}
			if got := postcode.Sector(tt.in); got != tt.sector {
				t.Errorf("Sector = %q, want %q", got, tt.sector)
			}
			if got := postcode.District(tt.in); got != tt.district {
				t.Errorf("District = %q, want %q", got, tt.district)
			}
			if got := postcode.Area(tt.in); got != tt.area {
				t.Errorf("Area = %q, want %q", got, tt.area)
			}
		})
	}
}

func TestIsPseudo(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want bool
	}{
		{name: "no fixed abode", in: "ZZ99 3VZ", want: true},
		{name: "not known", in: "ZZ99 3WZ", want: true},
		{name: "any ZZ99 code", in: "ZZ99 1WZ", want: true},
		{name: "raw form", in: " zz993cz ", want: true},
		{name: "real postcode", in: "SW1A 2AA"},
		{name: "ZZ99 without inward code", in: "ZZ99"},
		{name: "ZZ99 with bad inward code", in: "ZZ99 AAA"},
		{name: "empty", in: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := postcode.IsPseudo(tt.in); got != tt.want {
				t.Fatalf("IsPseudo(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestValidOutcode(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want bool
	}{
		{name: "AA9A", in: "SW1A", want: true},
		{name: "lower case", in: "nr10", want: true},
		{name: "Girobank", in: "GIR", want: true},
		{name: "pseudo", in: "ZZ99", want: true},
		{name: "full postcode", in: "SW1A 2AA"},
		{name: "rule broken", in: "FY10"},
		{name: "letters only", in: "BOGUS"},
		{name: "empty", in: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := postcode.ValidOutcode(tt.in); got != tt.want {
				t.Fatalf("ValidOutcode(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestIsNormalised(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want bool
	}{
		{name: "normalised", in: "SW1A 2AA", want: true},
		{name: "pseudo", in: "ZZ99 3VZ", want: true},
		{name: "no space", in: "SW1A2AA"},
		{name: "lower case", in: "sw1a 2aa"},
		{name: "two spaces", in: "SW1A  2AA"},
		{name: "surrounding space", in: " SW1A 2AA"},
		{name: "invalid", in: "Q1A 9AA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := postcode.IsNormalised(tt.in); got != tt.want {
				t.Fatalf("IsNormalised(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestFix(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{name: "valid is normalised", in: "sw1a2aa", want: "SW1A 2AA"},
		{name: "inward O and I", in: "M1 IOA", want: "M1 1OA"},
		{name: "LN outward", in: "1O 1AA", want: "I0 1AA"},
		{name: "digit slot already right", in: "B0 1AA", want: "B0 1AA"},
		{name: "too short unchanged", in: " AB1 ", want: " AB1 "},
		{name: "too long unchanged", in: "ABCDEFGH", want: "ABCDEFGH"},
		{name: "non-ASCII unchanged", in: "SW1A 2ÅA", want: "SW1A 2ÅA"},
		{name: "empty unchanged", in: "", want: ""},
		{name: "pseudo kept", in: "zz99 3vz", want: "ZZ99 3VZ"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := postcode.Fix(tt.in); got != tt.want {
				t.Fatalf("Fix(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestFixThenNormalise shows the intended opt-in use.
func TestFixThenNormalise(t *testing.T) {
	tests := []struct {
		name, in, want string
		err            error
	}{
		{name: "O for zero repaired", in: "SW1A OAA", want: "SW1A 0AA"},
		{name: "I for one repaired", in: "SWIA 2AA", want: "SW1A 2AA"},
		{name: "ambiguous stays invalid", in: "SWO OAA", err: postcode.ErrFormat},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := postcode.Normalise(tt.in); err == nil {
				t.Fatalf("Normalise(%q) accepted the raw input: Normalise must not guess", tt.in)
			}
			got, err := postcode.Normalise(postcode.Fix(tt.in))
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("Normalise(Fix(%q)) = %q, %v; want %v", tt.in, got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Normalise(Fix(%q)) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}
