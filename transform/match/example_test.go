package match_test

import (
	"context"
	"fmt"

	"github.com/careindex/careindex/transform/match"
)

func Example() {
	ctx := context.Background()
	records := []match.Record{
		{ID: "gp-1", FamilyName: "SMITH", GivenName: "JOHN", DateOfBirth: "1985-02-07", Sex: "male", Postcode: "LS1 4AP", Address: "12 Park Row"},
		{ID: "hosp-7", FamilyName: "SMYTH", GivenName: "JOHN", DateOfBirth: "1985-07-02", Sex: "male", Postcode: "LS1 4AP"},
		{ID: "gp-2", FamilyName: "JONES", GivenName: "MARY", DateOfBirth: "1990-11-30", Sex: "female", Postcode: "LS6 2QD"},
		{ID: "hosp-9", FamilyName: "JONES", GivenName: "MARY", DateOfBirth: "1990-11-30", Sex: "female", Postcode: "LS6 2QD", NHSNumber: "9434765919"},
		{ID: "ae-3", FamilyName: "UNKNOWN", GivenName: "ALPHA", DateOfBirth: "1970-01-01", Postcode: "ZZ99 3VZ"},
		{ID: "ae-4", FamilyName: "UNKNOWN", GivenName: "ALPHA", DateOfBirth: "1970-01-01", Postcode: "ZZ99 3VZ"},
	}

	// Deduplicate: DefaultModel has hand-set parameters; Estimate learns
	// them from a region's records.
	model := match.DefaultModel()
	res, err := match.Link(ctx, match.FromSlice(records), model, match.DefaultThresholds())
	if err != nil {
		panic(err)
	}
	for _, c := range res.Clusters {
		fmt.Println("same person:", c.IDs)
	}
	fmt.Println("review:", len(res.Review))

	// Match a new record against existing patients.
	m, err := match.NewMatcher(model, match.DefaultThresholds())
	if err != nil {
		panic(err)
	}
	index := match.NewIndex(m) // a store implements match.CandidateSource
	index.Add(1001, records[0])
	index.Add(1002, records[2])
	newRec := match.Record{ID: "community-5", FamilyName: "SMITH", GivenName: "JON", DateOfBirth: "1985-02-07", Postcode: "LS1 4AP"}
	fmt.Println("keys:", m.BlockingKeys(newRec))
	decisions, _, err := m.MatchBatch(ctx, []match.Record{newRec}, index)
	if err != nil {
		panic(err)
	}
	d := decisions[0]
	fmt.Printf("%s patient %d (candidate %s), probability %.3f\n", d.Kind, d.PatientID, d.CandidateID, d.Probability)
	for _, f := range d.Evidence.Fields {
		if f.Level != "null" {
			fmt.Printf("  %-13s %-9s %+.1f\n", f.Field, f.Level, f.Weight)
		}
	}
	// Output:
	// same person: [gp-1 hosp-7]
	// same person: [gp-2 hosp-9]
	// review: 0
	// keys: [dob:19850207 family_year:SNAT|1985 given_month:J|198502 postcode_given:LS1 4AP|J names:JAN+SNAT postcode_family:LS1 4AP|S given_family_year:JON|S|1985 family_given_initial:SMITH|J]
	// link patient 1001 (candidate gp-1), probability 1.000
	//   family_name   exact     +8.2
	//   given_name    jw92      +4.1
	//   date_of_birth exact     +14.9
	//   postcode      full      +13.9
}
