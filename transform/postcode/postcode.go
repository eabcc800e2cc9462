// Package postcode validates, normalises and takes apart UK postcodes.
//
// # Accepted input
//
// Normalise trims the input, upper-cases ASCII letters and removes every
// inner white space character, so "sw1a2aa", " Sw1A  2aa " and "SW1A 2AA"
// are all the same postcode; the normalised output always has exactly one
// space before the last three characters ("SW1A 2AA"). IsNormalised
// reports whether a string is already in that form, for checks on output.
//
// The outward code must be one of A9, A99, A9A, AA9, AA99 or AA9A and the
// inward code 9AA. On top of the shape, the Royal Mail letter and district
// rules apply (ErrRule), because the test vectors assert them:
//
//   - the first letter is never Q, V or X;
//   - the second letter is never I, J or Z;
//   - the third character of an A9A outward code is one of ABCDEFGHJKPSTUW;
//   - the fourth character of an AA9A outward code is one of ABEHMNPRVWXY;
//   - the letters of the inward code are never C, I, K, M, O or V;
//   - areas BR FY HA HD HG HR HS HX JE LD SM SR WC WN ZE have only
//     single-digit districts, and AB LL SO only two-digit districts.
//
// Historic codes that break these rules (W1N 4DJ, retired) are refused
// with ErrRule. Non-existent codes of a legal shape (MA1 1AA) are accepted:
// this package checks format, not the Postcode Address File.
//
// # Exceptions
//
// GIR 0AA (the old Girobank code) is accepted as it stands; its area and
// district are "GIR". NHS pseudo-postcodes ZZ99 9AA (ZZ99 3VZ no fixed
// abode, ZZ99 3WZ address not known, and every other ZZ99 code) are valid
// values that mean "no address": the letter rules do not apply to them,
// IsPseudo reports them, and the match-key helpers (Outcode, Sector,
// District, Area) return "" for them so that no two people are ever matched
// on a pseudo-postcode. Gibraltar's GX11 1AA fits the UK scheme and is
// accepted. BFPO numbers and the overseas territories' codes (ASCN, BBND,
// BIQQ, FIQQ, PCRN, SIQQ, STHL, TDCU, TKCA 1ZZ; AI-2640; KY, MSR, VG codes)
// are recognised and refused with ErrUnsupported, so that a caller can
// count them apart from garbage; the index holds only UK postcodes.
//
// Normalise never guesses: letter O for digit 0 and I for 1 are errors.
// Fix repairs those confusions by position and is meant to be applied
// explicitly, before Normalise, where a source is known to need it.
package postcode

import (
	"fmt"
	"strings"
	"unicode"
)

// Parts is a valid postcode taken apart. For "AA9A 9AA" the parts are
// Outcode "AA9A", Incode "9AA", Area "AA", District "AA9", SubDistrict
// "AA9A", Sector "AA9A 9" and Unit "AA".
type Parts struct {
	Postcode    string // normalised form, "AA9A 9AA"
	Outcode     string // outward code, "AA9A"
	Incode      string // inward code, "9AA"
	Area        string // leading letters of the outward code, "AA"
	District    string // outward code without a trailing sub-district letter, "AA9"
	SubDistrict string // outward code when it ends in a letter, else ""
	Sector      string // outward code, a space and the inward digit, "AA9A 9"
	Unit        string // the inward code's two letters, "AA"
	Pseudo      bool   // a ZZ99 pseudo-postcode: no usable address
}

// Letter sets for the position rules.
const (
	notFirst    = "QVX"
	notSecond   = "IJZ"
	thirdA9A    = "ABCDEFGHJKPSTUW"
	fourthAA9A  = "ABEHMNPRVWXY"
	notInInward = "CIKMOV"
)

// singleDigitArea reports whether every district of area has one digit.
func singleDigitArea(area string) bool {
	switch area {
	case "BR", "FY", "HA", "HD", "HG", "HR", "HS", "HX", "JE", "LD", "SM", "SR", "WC", "WN", "ZE":
		return true
	}
	return false
}

// doubleDigitArea reports whether every district of area has two digits.
func doubleDigitArea(area string) bool {
	switch area {
	case "AB", "LL", "SO":
		return true
	}
	return false
}

// overseasTerritory reports whether c is the compact form of an overseas
// territory's single UK-style postcode.
func overseasTerritory(c string) bool {
	switch c {
	case "ASCN1ZZ", "BBND1ZZ", "BIQQ1ZZ", "FIQQ1ZZ", "PCRN1ZZ", "SIQQ1ZZ", "STHL1ZZ", "TDCU1ZZ", "TKCA1ZZ":
		return true
	}
	return false
}

// Normalise returns s as a normalised UK postcode ("SW1A 2AA"), or an
// error wrapping ErrEmpty, ErrFormat, ErrRule or ErrUnsupported. See the
// package documentation for the rules.
func Normalise(s string) (string, error) {
	p, err := Parse(s)
	if err != nil {
		return "", err
	}
	return p.Postcode, nil
}

// IsNormalised reports whether s is a valid postcode already in normalised
// form: upper case, no surrounding space, one space before the inward
// code. It is the strict check for output; Normalise is the lenient one
// for input ("LS44PL" is not normalised, but normalises to "LS4 4PL").
func IsNormalised(s string) bool {
	n, err := Normalise(s)
	return err == nil && n == s
}

// Parse validates s as Normalise does and returns its parts.
func Parse(s string) (Parts, error) {
	c := compact(s)
	if c == "" {
		return Parts{}, fmt.Errorf("postcode: %w", ErrEmpty)
	}
	if isSpecial(c) {
		return Parts{}, fmt.Errorf("postcode: %w", ErrUnsupported)
	}
	if len(c) < 5 || len(c) > 7 {
		return Parts{}, fmt.Errorf("postcode: %d characters without spaces, want 5 to 7: %w", len(c), ErrFormat)
	}
	out, in := c[:len(c)-3], c[len(c)-3:]
	if !isDigit(in[0]) || !isLetter(in[1]) || !isLetter(in[2]) {
		return Parts{}, fmt.Errorf("postcode: inward code is not digit, letter, letter: %w", ErrFormat)
	}
	switch {
	case out == "GIR" && in == "0AA":
		return parts(out, in, "GIR", "GIR", "", false), nil
	case out == "ZZ99":
		return parts(out, in, "ZZ", "ZZ99", "", true), nil
	}
	area, district, sub, err := outward(out)
	if err != nil {
		return Parts{}, err
	}
	if strings.ContainsAny(in[1:], notInInward) {
		return Parts{}, fmt.Errorf("postcode: inward code uses one of the letters %s: %w", notInInward, ErrRule)
	}
	return parts(out, in, area, district, sub, false), nil
}

func parts(out, in, area, district, sub string, pseudo bool) Parts {
	return Parts{
		Postcode:    out + " " + in,
		Outcode:     out,
		Incode:      in,
		Area:        area,
		District:    district,
		SubDistrict: sub,
		Sector:      out + " " + in[:1],
		Unit:        in[1:],
		Pseudo:      pseudo,
	}
}

// outward checks an outward code (already compact and upper case) against
// the shapes and rules and returns its area, district and sub-district.
func outward(out string) (area, district, sub string, err error) {
	// shape: letters, then one or two digits, then an optional letter.
	i := 0
	for i < len(out) && isLetter(out[i]) {
		i++
	}
	area = out[:i]
	j := i
	for j < len(out) && isDigit(out[j]) {
		j++
	}
	digits := j - i
	rest := out[j:]
	if len(area) < 1 || len(area) > 2 || digits < 1 || digits > 2 ||
		len(rest) > 1 || (len(rest) == 1 && (!isLetter(rest[0]) || digits != 1)) {
		return "", "", "", fmt.Errorf("postcode: outward code is not A9, A99, A9A, AA9, AA99 or AA9A: %w", ErrFormat)
	}
	district = out[:j]
	if rest != "" {
		sub = out
	}
	switch {
	case strings.IndexByte(notFirst, area[0]) >= 0:
		return "", "", "", fmt.Errorf("postcode: first letter is one of %s: %w", notFirst, ErrRule)
	case len(area) == 2 && strings.IndexByte(notSecond, area[1]) >= 0:
		return "", "", "", fmt.Errorf("postcode: second letter is one of %s: %w", notSecond, ErrRule)
	case rest != "" && len(area) == 1 && strings.IndexByte(thirdA9A, rest[0]) < 0:
		return "", "", "", fmt.Errorf("postcode: third character of an A9A outward code is not one of %s: %w", thirdA9A, ErrRule)
	case rest != "" && len(area) == 2 && strings.IndexByte(fourthAA9A, rest[0]) < 0:
		return "", "", "", fmt.Errorf("postcode: fourth character of an AA9A outward code is not one of %s: %w", fourthAA9A, ErrRule)
	case digits == 2 && singleDigitArea(area):
		return "", "", "", fmt.Errorf("postcode: area has only single-digit districts: %w", ErrRule)
	case digits == 1 && doubleDigitArea(area):
		return "", "", "", fmt.Errorf("postcode: area has only two-digit districts: %w", ErrRule)
	}
	return area, district, sub, nil
}

// ValidOutcode reports whether s (trimmed, any case, inner spaces removed)
// is a valid outward code on its own: one that Normalise would accept in
// front of a valid inward code. "GIR" and "ZZ99" are valid outward codes.
func ValidOutcode(s string) bool {
	c := compact(s)
	if c == "GIR" || c == "ZZ99" {
		return true
	}
	_, _, _, err := outward(c)
	return err == nil
}

// IsPseudo reports whether pc is a valid NHS pseudo-postcode (any ZZ99
// code, such as ZZ99 3VZ no fixed abode or ZZ99 3WZ not known). Such a
// postcode is a valid value that means "no address". pc need not be
// normalised.
func IsPseudo(pc string) bool {
	p, err := Parse(pc)
	return err == nil && p.Pseudo
}

// Outcode returns the outward code of pc ("SW1A" for "SW1A 2AA") as a
// match key. It returns "" when pc is not a valid postcode or is a
// pseudo-postcode, which must never be matched on.
func Outcode(pc string) string {
	return key(pc, func(p Parts) string { return p.Outcode })
}

// Sector returns the postcode sector of pc ("SW1A 2" for "SW1A 2AA") as a
// match key, or "" as Outcode does.
func Sector(pc string) string {
	return key(pc, func(p Parts) string { return p.Sector })
}

// District returns the postcode district of pc ("SW1" for "SW1A 2AA", "L27"
// for "L27 8XY") as a match key, or "" as Outcode does.
func District(pc string) string {
	return key(pc, func(p Parts) string { return p.District })
}

// Area returns the postcode area of pc ("SW" for "SW1A 2AA") as a match
// key, or "" as Outcode does.
func Area(pc string) string {
	return key(pc, func(p Parts) string { return p.Area })
}

func key(pc string, part func(Parts) string) string {
	p, err := Parse(pc)
	if err != nil || p.Pseudo {
		return ""
	}
	return part(p)
}

// Fix repairs common keying errors in a postcode and returns it in
// normalised layout, without validating it. It trims, upper-cases, removes
// inner white space and puts one space before the inward code; then it
// turns digit 0 into letter O and 1 into I where the position needs a
// letter, and O into 0 and I into 1 where it needs a digit. Positions are
// read as the ideal-postcodes library reads them: the inward code is digit,
// letter, letter; a two-character outward code is letter, digit; a
// three-character one has only its first position fixed (letter); a
// four-character one is letter, letter, digit, anything. Ambiguous
// positions are left alone, so the result may still be invalid ("SWO 0AA").
//
// Input that cannot be a confused postcode (fewer than 5 or more than 7
// characters, or characters that no fix can turn into the right kind) is
// returned unchanged. A valid postcode comes back as its normalised form.
// Fix is opt-in: Normalise never applies it.
func Fix(s string) string {
	c := compact(s)
	if len(c) < 5 || len(c) > 7 {
		return s
	}
	out, in := c[:len(c)-3], c[len(c)-3:]
	if !fixableOutward(out) || !fixableInward(in) {
		return s
	}
	var pattern string
	switch len(out) {
	case 2:
		pattern = "LN"
	case 3:
		pattern = "L??"
	case 4:
		pattern = "LLN?"
	}
	return coerce(pattern, out) + " " + coerce("NLL", in)
}

// fixableOutward reports whether out matches [A-Z01]{1,2}[0-9OI][A-Z0-9]?.
func fixableOutward(out string) bool {
	for lead := 1; lead <= 2 && lead < len(out); lead++ {
		ok := true
		for k := 0; k < lead; k++ {
			ok = ok && (isLetter(out[k]) || out[k] == '0' || out[k] == '1')
		}
		rest := out[lead:]
		ok = ok && (isDigit(rest[0]) || rest[0] == 'O' || rest[0] == 'I')
		ok = ok && (len(rest) == 1 || (len(rest) == 2 && (isLetter(rest[1]) || isDigit(rest[1]))))
		if ok {
			return true
		}
	}
	return false
}

// fixableInward reports whether in matches [0-9OI][A-Z01]{2}.
func fixableInward(in string) bool {
	if len(in) != 3 || !(isDigit(in[0]) || in[0] == 'O' || in[0] == 'I') {
		return false
	}
	for k := 1; k < 3; k++ {
		if !(isLetter(in[k]) || in[k] == '0' || in[k] == '1') {
			return false
		}
	}
	return true
}

// coerce applies a position pattern: L wants a letter, N a digit, ? either.
func coerce(pattern, s string) string {
	b := []byte(s)
	for i := range b {
		switch {
		case pattern[i] == 'L' && b[i] == '0':
			b[i] = 'O'
		case pattern[i] == 'L' && b[i] == '1':
			b[i] = 'I'
		case pattern[i] == 'N' && b[i] == 'O':
			b[i] = '0'
		case pattern[i] == 'N' && b[i] == 'I':
			b[i] = '1'
		}
	}
	return string(b)
}

// compact removes all white space and upper-cases ASCII letters. Other
// characters are kept, so that they fail validation rather than being
// folded into ASCII by Unicode case mapping.
func compact(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		switch {
		case unicode.IsSpace(r):
		case r >= 'a' && r <= 'z':
			b.WriteByte(byte(r - 'a' + 'A'))
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// isSpecial reports whether c (compact, upper case) is a BFPO number or
// an overseas territory postcode.
func isSpecial(c string) bool {
	switch {
	case overseasTerritory(c):
		return true
	case strings.HasPrefix(c, "BFPO"):
		return allDigits(c[4:], 1, 4)
	case strings.HasPrefix(c, "AI"): // Anguilla: AI-2640
		return strings.TrimPrefix(c[2:], "-") == "2640"
	case strings.HasPrefix(c, "KY") && len(c) > 2: // Cayman Islands: KY1-1234
		return c[2] >= '1' && c[2] <= '3' && allDigits(strings.TrimPrefix(c[3:], "-"), 4, 4)
	case strings.HasPrefix(c, "MSR"): // Montserrat: MSR 1110
		return allDigits(c[3:], 4, 4)
	case strings.HasPrefix(c, "VG"): // British Virgin Islands: VG1110
		return allDigits(c[2:], 4, 4)
	}
	return false
}

func allDigits(s string, minLen, maxLen int) bool {
	if len(s) < minLen || len(s) > maxLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

func isLetter(c byte) bool { return c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool  { return c >= '0' && c <= '9' }
