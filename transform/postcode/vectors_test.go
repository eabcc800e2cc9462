package postcode_test

import (
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/careindex/careindex/fixtures/csvtable"
	"github.com/careindex/careindex/transform/postcode"
)

// vectorDir holds the project's copy of the shared postcode vectors.
var vectorDir = filepath.Join("..", "..", "fixtures", "vectors", "postcodes")

// readVectors reads a vector CSV with a header row. Fields keep their
// leading and trailing spaces: they are part of the inputs under test.
func readVectors(tb testing.TB, name string) []csvtable.Row {
	return csvtable.Read(tb, filepath.Join(vectorDir, name), false)
}

// outcome is what Normalise does with an input: the normalised postcode, or
// the sentinel error.
type outcome struct {
	want string
	err  error
	why  string
}

// unasserted records our decision for the rows whose validity no source
// asserts (valid left empty): the overseas and special postcodes.
var unasserted = map[string]outcome{
	"BBND 1ZZ": {err: postcode.ErrUnsupported, why: "British Indian Ocean Territory: recognised, not held"},
	"FIQQ 1ZZ": {err: postcode.ErrUnsupported, why: "Falkland Islands: recognised, not held"},
	"GX11 1AA": {want: "GX11 1AA", why: "Gibraltar fits the UK scheme"},
	"AI-2640":  {err: postcode.ErrUnsupported, why: "Anguilla: recognised, not held"},
	"BFPO 801": {err: postcode.ErrUnsupported, why: "British Forces Post Office: recognised, not held"},
	"EC4Y 0HQ": {want: "EC4Y 0HQ", why: "ordinary format"},
	"W1A 1AA":  {want: "W1A 1AA", why: "ordinary format"},
	"SW1A 1AA": {want: "SW1A 1AA", why: "ordinary format"},
	"W1N 4DJ":  {err: postcode.ErrRule, why: "historic: N is never the third character of an A9A outward code"},
}

// deviations records the asserted rows where we differ from the source.
var deviations = map[string]outcome{
	"LS44PL": {want: "LS4 4PL", why: "raw input may omit the space (as ideal-postcodes accepts NR103EZ); only the normalised output must have it, see IsNormalised"},
}

// TestPostcodesVectors checks every row of postcodes.csv: asserted validity,
// the asserted normalised form and every asserted component.
func TestPostcodesVectors(t *testing.T) {
	rows := readVectors(t, "postcodes.csv")
	if len(rows) != 87 {
		t.Errorf("postcodes.csv has %d data rows, README says 87", len(rows))
	}
	usedUnasserted := map[string]bool{}
	counts := map[string]int{}
	for _, row := range rows {
		in, kind, valid := row.Col["postcode"], row.Col["kind"], row.Col["valid"]
		counts[kind+"/"+valid]++
		t.Run("line"+strconv.Itoa(row.Line)+"/"+kind+"/"+strings.ReplaceAll(in, " ", "_"), func(t *testing.T) {
			if kind == "outcode" {
				if got := postcode.ValidOutcode(in); got != (valid == "true") {
					t.Fatalf("ValidOutcode(%q) = %v, vector says %s", in, got, valid)
				}
				return
			}
			if kind != "postcode" {
				t.Fatalf("unknown kind %q", kind)
			}
			var want outcome
			switch valid {
			case "":
				d, ok := unasserted[in]
				if !ok {
					t.Fatal("validity not asserted and no decision recorded: decide it in unasserted")
				}
				usedUnasserted[in] = true
				want = d
			case "true":
				want = outcome{want: row.Col["expected_normalised"]}
			case "false":
				note := row.Col["note"]
				want.err = postcode.ErrFormat
				if strings.Contains(note, "not allowed in") || strings.Contains(note, "districts") {
					want.err = postcode.ErrRule
				}
			default:
				t.Fatalf("unknown valid %q", valid)
			}
			if d, ok := deviations[in]; ok {
				want = d
			}

			p, err := postcode.Parse(in)
			got, nerr := postcode.Normalise(in)
			if (err == nil) != (nerr == nil) || got != p.Postcode {
				t.Fatalf("Parse and Normalise disagree: %+v, %v; %q, %v", p, err, got, nerr)
			}
			if want.err != nil {
				if !errors.Is(err, want.err) {
					t.Fatalf("Normalise(%q) = %q, %v; want error %v", in, got, err, want.err)
				}
			} else {
				if err != nil {
					t.Fatalf("Normalise(%q) = %v; want it accepted", in, err)
				}
				if want.want != "" && got != want.want {
					t.Fatalf("Normalise(%q) = %q, want %q", in, got, want.want)
				}
				if !postcode.IsNormalised(got) {
					t.Fatalf("IsNormalised(%q) = false", got)
				}
			}
			if n := row.Col["expected_normalised"]; n == "NULL" && err == nil {
				t.Fatalf("vector expects no normalised form, got %q", got)
			} else if n != "" && n != "NULL" && got != n {
				t.Fatalf("Normalise(%q) = %q, vector %q", in, got, n)
			}

			components := []struct {
				col string
				got string
			}{
				{"outcode", p.Outcode}, {"incode", p.Incode}, {"area", p.Area},
				{"district", p.District}, {"sub_district", p.SubDistrict},
				{"sector", p.Sector}, {"unit", p.Unit},
			}
			for _, c := range components {
				switch exp := row.Col[c.col]; exp {
				case "": // not asserted
				case "NULL":
					if c.got != "" {
						t.Errorf("%s = %q, vector expects NULL", c.col, c.got)
					}
				default:
					if c.got != exp {
						t.Errorf("%s = %q, vector expects %q", c.col, c.got, exp)
					}
				}
			}
		})
	}
	for in := range unasserted {
		if !usedUnasserted[in] {
			t.Errorf("decision for %q matches no vector row", in)
		}
	}
	wantCounts := map[string]int{"postcode/true": 40, "postcode/false": 23, "postcode/": 9, "outcode/true": 12, "outcode/false": 3}
	for k, n := range wantCounts {
		if counts[k] != n {
			t.Errorf("%s: %d rows, README says %d", k, counts[k], n)
		}
	}
}

// TestNoSpaceRawVersusOutput pins the policy the vectors' README asks for:
// raw input may lack the space (NR103EZ valid), normalised output may not
// (LS44PL invalid as output).
func TestNoSpaceRawVersusOutput(t *testing.T) {
	tests := []struct {
		name, in, normalised string
	}{
		{name: "ideal-postcodes NR103EZ", in: "NR103EZ", normalised: "NR10 3EZ"},
		{name: "livehybrid LS44PL", in: "LS44PL", normalised: "LS4 4PL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := postcode.Normalise(tt.in); err != nil || got != tt.normalised {
				t.Fatalf("Normalise(%q) = %q, %v; want %q", tt.in, got, err, tt.normalised)
			}
			if postcode.IsNormalised(tt.in) {
				t.Fatalf("IsNormalised(%q) = true", tt.in)
			}
			if !postcode.IsNormalised(tt.normalised) {
				t.Fatalf("IsNormalised(%q) = false", tt.normalised)
			}
		})
	}
}

// TestFixVectors checks every row of postcode_fix.csv.
func TestFixVectors(t *testing.T) {
	rows := readVectors(t, "postcode_fix.csv")
	if len(rows) != 22 {
		t.Errorf("postcode_fix.csv has %d data rows, README says 22", len(rows))
	}
	for _, row := range rows {
		in, want := row.Col["input"], row.Col["expected_fixed"]
		t.Run("line"+strconv.Itoa(row.Line)+"/"+strings.ReplaceAll(in, " ", "_"), func(t *testing.T) {
			if got := postcode.Fix(in); got != want {
				t.Fatalf("Fix(%q) = %q, want %q (%s)", in, got, want, row.Col["note"])
			}
		})
	}
}
