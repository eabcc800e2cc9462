package normalise_test

import (
	"encoding/csv"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/careindex/careindex/extractors/rowsource"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestPersonsGolden maps testdata/persons.csv as a GP practice delivery and
// compares every row's outcome with testdata/persons.golden.
func TestPersonsGolden(t *testing.T) {
	t.Parallel()
	f, err := os.Open(filepath.Join("testdata", "persons.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	records, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	opts := personOptions()
	opts.SourceID, opts.OrgCode, opts.OrgType = "d81001-patients", "D81001", "gp_practice"
	m := mapper(t, records[0], opts)
	var b strings.Builder
	for i, rec := range records[1:] {
		line := i + 2
		p, err := m.Person(rowsource.Row{File: "persons.csv", Line: line, Values: rec})
		if err != nil {
			fmt.Fprintf(&b, "line %d: reject %s\n", line, err)
			continue
		}
		if p.Line != line || p.File != "persons.csv" || p.SourceID != "d81001-patients" || p.OrgCode != "D81001" {
			t.Errorf("line %d: provenance %+v", line, p.Provenance)
		}
		fmt.Fprintf(&b, "line %d: ok %s|%s|%s|%s|%s|%s|%s|%s|%v\n", line,
			p.LocalID, p.NHSNumber, p.FamilyName, p.GivenName, p.DateOfBirth, p.Sex, p.Postcode, p.GPPractice, p.Sensitive)
	}
	golden := filepath.Join("testdata", "persons.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got := b.String(); got != string(want) {
		t.Errorf("outcomes differ from %s:\ngot:\n%s\nwant:\n%s", golden, got, want)
	}
}
