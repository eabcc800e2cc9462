package nhsnumber_test

import (
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/careindex/careindex/fixtures/csvtable"
	"github.com/careindex/careindex/transform/nhsnumber"
)

// vectorDir holds the project's copy of the shared NHS number vectors.
var vectorDir = filepath.Join("..", "..", "fixtures", "vectors", "nhs_numbers")

// readVectors reads a vector CSV with a header row. Fields keep their
// leading and trailing spaces: they are part of the inputs under test.
func readVectors(tb testing.TB, name string) []csvtable.Row {
	return csvtable.Read(tb, filepath.Join(vectorDir, name), false)
}

// stripSeparators removes spaces and hyphens, as the README does before
// computing mod11_on_digits.
func stripSeparators(s string) string {
	return strings.NewReplacer(" ", "", "-", "").Replace(s)
}

func isTenDigits(s string) bool {
	if len(s) != 10 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func isRepeatedDigit(s string) bool {
	return s != "" && strings.Count(s, s[:1]) == len(s)
}

// TestNHSNumbersVectors checks every row of nhs_numbers.csv.
//
// Whatever the rule, the row's mod11_on_digits column (computed by the
// vectors' authors) must agree with Valid on the stripped digits, and
// Normalise must behave as the package documents:
//
//   - n/a (not ten digits after stripping) → ErrFormat;
//   - fail → ErrCheckDigit;
//   - pass → ErrPlaceholder for repeated digits, ErrTestRange for 999…,
//     otherwise the ten digits.
//
// On top of that, per rule:
//
//   - checksum: Valid(input) equals the valid column (all these inputs are
//     bare ten-digit strings);
//   - format: Valid is false and Normalise fails;
//   - lenient_format: we trim white space but never pad, so the trailing
//     space row is accepted and the lost-leading-zero row is ErrFormat;
//   - region:*: issuing ranges are not checked, so a checksum-valid number
//     outside England/Wales/IoM (9876543210) is still accepted;
//   - policy:ntbs: we agree that repeated-digit numbers are refused, but we
//     never skip the checksum for numbers starting 0, 1, 2 or 9, so
//     9123456780, 1234567890 and 2345678901 are ErrCheckDigit.
func TestNHSNumbersVectors(t *testing.T) {
	rows := readVectors(t, "nhs_numbers.csv")
	if len(rows) != 85 {
		t.Errorf("nhs_numbers.csv has %d data rows, README says 85", len(rows))
	}
	rules := map[string]int{}
	for _, row := range rows {
		in, rule, mod11 := row.Col["nhs_number"], row.Col["rule"], row.Col["mod11_on_digits"]
		rules[rule]++
		name := strings.Join([]string{"line", strconv.Itoa(row.Line), rule, strings.ReplaceAll(in, " ", "_")}, "/")
		t.Run(name, func(t *testing.T) {
			digits := stripSeparators(in)
			// The vectors' own mod-11 column must agree with ours.
			switch mod11 {
			case "n/a":
				if isTenDigits(digits) {
					t.Fatalf("mod11_on_digits is n/a but %q has ten digits", digits)
				}
			case "pass", "fail":
				if !isTenDigits(digits) {
					t.Fatalf("mod11_on_digits is %s but the input does not strip to ten digits", mod11)
				}
				if got := nhsnumber.Valid(digits); got != (mod11 == "pass") {
					t.Fatalf("Valid(stripped) = %v, mod11_on_digits = %s", got, mod11)
				}
			default:
				t.Fatalf("unknown mod11_on_digits %q", mod11)
			}

			// Normalise follows from the digits alone.
			got, err := nhsnumber.Normalise(in)
			var want error
			switch {
			case mod11 == "n/a":
				want = nhsnumber.ErrFormat
			case mod11 == "fail":
				want = nhsnumber.ErrCheckDigit
			case isRepeatedDigit(digits):
				want = nhsnumber.ErrPlaceholder
			case strings.HasPrefix(digits, "999"):
				want = nhsnumber.ErrTestRange
			}
			if want != nil {
				if !errors.Is(err, want) {
					t.Fatalf("Normalise() = %q, %v; want error %v", got, err, want)
				}
			} else if err != nil || got != digits {
				t.Fatalf("Normalise() = %q, %v; want %q", got, err, digits)
			}
			if errors.Is(want, nhsnumber.ErrTestRange) {
				got, err := nhsnumber.Parse(in, nhsnumber.Options{AllowTestRange: true})
				if err != nil || got != digits {
					t.Fatalf("Parse(AllowTestRange) = %q, %v; want %q", got, err, digits)
				}
			}

			valid := row.Col["valid"] == "true"
			switch {
			case rule == "checksum":
				if got := nhsnumber.Valid(in); got != valid {
					t.Fatalf("Valid() = %v, vector says %v", got, valid)
				}
			case rule == "format":
				if nhsnumber.Valid(in) {
					t.Fatal("Valid() = true for a format row")
				}
				if err == nil {
					t.Fatal("Normalise() accepted a format row")
				}
			case rule == "lenient_format":
				// Documented: trim yes, pad no. The expectations above
				// already encode that through mod11_on_digits; make sure
				// both kinds are present so the policy stays exercised.
				if mod11 == "n/a" && err == nil {
					t.Fatal("Normalise() padded a short number")
				}
			case strings.HasPrefix(rule, "region:"):
				// Ranges are not checked: acceptance depends on the
				// checksum only, already asserted above.
				if mod11 == "pass" && err != nil {
					t.Fatalf("Normalise() = %v; issuing ranges must not be checked", err)
				}
			case rule == "policy:ntbs":
				// We agree with NTBS on the deny-list, not on skipping
				// the checksum.
				if isRepeatedDigit(digits) && valid {
					t.Fatal("vector accepts a repeated-digit number under NTBS")
				}
				if valid && mod11 == "fail" && err == nil {
					t.Fatal("Normalise() skipped the checksum")
				}
			default:
				t.Fatalf("unknown rule %q: decide a policy for it", rule)
			}
		})
	}
	wantRules := map[string]int{"checksum": 58, "format": 16, "lenient_format": 2, "region:england_wales_iom": 2, "policy:ntbs": 7}
	for r, n := range wantRules {
		if rules[r] != n {
			t.Errorf("rule %s: %d rows, README says %d", r, rules[r], n)
		}
	}
}

// formatDecision is our documented outcome for one row of
// nhs_number_formats.csv. For "format" rows want is Format's output; for
// the others it is Normalise's output, or err is the sentinel Normalise
// returns. why explains every row where we do not accept or reject as the
// source does.
type formatDecision struct {
	input, op string
	want      string
	err       error
	why       string
}

const (
	whyGrouping  = "separators are stripped whatever the grouping; the source requires 3-3-4"
	whyStrict    = "the strict source parser takes only bare digits or 'NNN NNN NNNN'; we trim and strip spaces and dashes"
	whyChecksum  = "the source operation only reformats; Normalise also checks the check digit"
	whyDenyList  = "repeated-digit numbers pass mod 11 but are deny-listed placeholders"
	whyNoPadding = "the source pads an integer that lost its leading zero; we never pad"
)

var formatDecisions = []formatDecision{
	{"0123456789", "standardise", "0123456789", nil, ""},
	{"0123456789 ", "standardise", "0123456789", nil, ""},
	{" 0123456789", "standardise", "0123456789", nil, ""},
	{" 0123456789 ", "standardise", "0123456789", nil, ""},
	{"012 345 6789", "standardise", "0123456789", nil, ""},
	{"012 345 6789 ", "standardise", "0123456789", nil, ""},
	{" 012 345 6789", "standardise", "0123456789", nil, ""},
	{" 012 345 6789 ", "standardise", "0123456789", nil, ""},
	{"01 2345 6789", "standardise", "0123456789", nil, whyGrouping},
	{"012-345-6789", "standardise", "0123456789", nil, ""},
	{"012-345-6789 ", "standardise", "0123456789", nil, ""},
	{" 012-345-6789", "standardise", "0123456789", nil, ""},
	{" 012-345-6789 ", "standardise", "0123456789", nil, ""},
	{"01-2345-6789", "standardise", "0123456789", nil, whyGrouping},
	{"012 345-6789", "standardise", "0123456789", nil, whyGrouping},
	{"012345678", "standardise", "", nhsnumber.ErrFormat, ""},
	{"01234567890", "standardise", "", nhsnumber.ErrFormat, ""},
	{"ABCDEFGHIJ", "standardise", "", nhsnumber.ErrFormat, ""},
	{"1234567890", "standardise", "", nhsnumber.ErrCheckDigit, whyChecksum},
	{"12345678901", "standardise", "", nhsnumber.ErrFormat, ""},
	{"123456789", "standardise", "", nhsnumber.ErrFormat, whyNoPadding},
	{"123 123 4567", "normalise", "", nhsnumber.ErrCheckDigit, whyChecksum},
	{"111 111 1111", "normalise then valid", "", nhsnumber.ErrPlaceholder, whyDenyList},
	{"111-111-1111", "normalise :strict then valid", "", nhsnumber.ErrPlaceholder, whyDenyList},
	{"111 1111 111", "normalise then valid", "", nhsnumber.ErrPlaceholder, whyDenyList},
	{"111 1111 111", "normalise :strict then valid", "", nhsnumber.ErrPlaceholder, ""},
	{"111 111  1111", "normalise :strict then valid", "", nhsnumber.ErrPlaceholder, ""},
	{"111a111a1111", "normalise :lenient then valid", "", nhsnumber.ErrFormat, ""},
	{"1231234567", "format", "123 123 4567", nil, ""},
	{"0123456789", "parse", "0123456789", nil, ""},
	{"012 345 6789", "parse", "0123456789", nil, ""},
	{"012-345-6789", "parse", "0123456789", nil, whyStrict},
	{" 012 345 6789", "parse", "0123456789", nil, whyStrict},
	{"012 3456789", "parse", "0123456789", nil, whyStrict},
	{"012345 6789", "parse", "0123456789", nil, whyStrict},
	{"012  345  6789", "parse", "0123456789", nil, whyStrict},
	{"012 345 6789 ", "parse", "0123456789", nil, whyStrict},
	{"012", "parse", "", nhsnumber.ErrFormat, ""},
	{"0123456789", "format", "012 345 6789", nil, ""},
	{"9077844449", "format", "907 784 4449", nil, ""},
}

// shortOp maps the vectors' long operation descriptions to the short names
// used in formatDecisions.
func shortOp(op string) string {
	op = strings.ReplaceAll(op, "?", "")
	switch {
	case strings.HasPrefix(op, "standardise"):
		return "standardise"
	case strings.HasPrefix(op, "parse"):
		return "parse"
	case op == "format":
		return "format"
	case strings.HasPrefix(op, "normalise (default mode)"):
		return "normalise"
	case strings.HasPrefix(op, "normalise (default) then valid"):
		return "normalise then valid"
	}
	return op
}

// TestNHSNumberFormatsVectors checks every row of nhs_number_formats.csv
// against the decision recorded for it in formatDecisions, in order, and
// that every disagreement with the source is explained.
func TestNHSNumberFormatsVectors(t *testing.T) {
	rows := readVectors(t, "nhs_number_formats.csv")
	if len(rows) != len(formatDecisions) {
		t.Fatalf("%d vector rows, %d decisions: decide every new row", len(rows), len(formatDecisions))
	}
	for i, row := range rows {
		d := formatDecisions[i]
		in, op, expected := row.Col["input"], shortOp(row.Col["operation"]), row.Col["expected"]
		t.Run("line"+strconv.Itoa(row.Line)+"/"+op+"/"+strings.ReplaceAll(in, " ", "_"), func(t *testing.T) {
			if d.input != in || d.op != op {
				t.Fatalf("decision %d is for (%q, %q), vector row is (%q, %q)", i, d.input, d.op, in, op)
			}
			if op == "format" {
				if got := nhsnumber.Format(in); got != d.want || got != expected {
					t.Fatalf("Format() = %q, decision %q, vector %q", got, d.want, expected)
				}
				return
			}
			got, err := nhsnumber.Normalise(in)
			if d.err != nil {
				if !errors.Is(err, d.err) {
					t.Fatalf("Normalise() = %q, %v; want error %v", got, err, d.err)
				}
			} else if err != nil || got != d.want {
				t.Fatalf("Normalise() = %q, %v; want %q", got, err, d.want)
			}
			sourceAccepts := expected != "" && expected != "error" && expected != "invalid"
			if weAccept := err == nil; weAccept != sourceAccepts && d.why == "" {
				t.Fatalf("we accept=%v, the source accept=%v (expected %q): explain the difference", weAccept, sourceAccepts, expected)
			}
			if err == nil && sourceAccepts && expected != "valid" && got != expected {
				t.Fatalf("Normalise() = %q, source normalises to %q", got, expected)
			}
		})
	}
}

// TestTestRangeIsNotIssued checks that the 999 test range sits inside a
// range the ranges vector file marks as never issued.
func TestTestRangeIsNotIssued(t *testing.T) {
	rows := readVectors(t, "nhs_number_ranges.csv")
	for _, r := range rows {
		if r.Col["range_start"] <= "9990000000" && "9999999999" <= r.Col["range_end"] {
			if r.Col["region"] != "test_synthetic" {
				t.Fatalf("999 range falls in region %q", r.Col["region"])
			}
			return
		}
	}
	t.Fatal("no range covers 9990000000-9999999999")
}
