package cli

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/careindex/careindex/loader/store"
)

var updateGolden = flag.Bool("update-review", false, "rewrite the review golden files in testdata")

// TestReviewShowGolden checks the layout of 'review show' and 'review
// list' against golden files: the evidence as a table of field, agreement
// level and weight, the record's and the candidate's locations, and the
// decision.
func TestReviewShowGolden(t *testing.T) {
	created := time.Date(2026, 11, 24, 2, 10, 0, 0, time.UTC)
	ev := `{"decision":"review","weight":9.21,"probability":0.9983,"demographic":9.21,"reasons":["ambiguous"],` +
		`"candidate":{"org_code":"RGT","local_id":"MRN0042"},"other_patients":1,"fields":[` +
		`{"field":"family_name","level":"exact","weight":7.9},{"field":"given_name","level":"jaro-winkler>=0.92","weight":3.1},` +
		`{"field":"date_of_birth","level":"exact","weight":10.2},{"field":"postcode","level":"different","weight":-4.5},` +
		`{"field":"sex","level":"missing","weight":0}]}`
	possible := store.ReviewItem{ID: 7, RunID: 3, CreatedAt: created, SourceID: "la505-clients", OrgCode: "LA505", LocalID: "C0099",
		PatientID: 1042, Assigned: 1107, Reason: "possible match: given a new patient until reviewed (ambiguous)", File: "clients_20261124.txt",
		Line: 12, DeliveryID: 31, Status: store.ReviewOpen, Evidence: ev,
		Candidates: []store.Location{{PatientID: 1042, OrgCode: "D81001", LocalID: "GP0042"}, {PatientID: 1042, OrgCode: "RGT", LocalID: "MRN0042"}}}
	held := store.ReviewItem{ID: 8, RunID: 3, CreatedAt: created, SourceID: "rgt-patients", OrgCode: "RGT", LocalID: "MRN0077",
		PatientID: 1003, Reason: "held for review: the NHS number links to a patient with a different date of birth",
		File: "patients.xlsx#Patients", Line: 78, DeliveryID: 30, Status: store.ReviewSeparated,
		Candidates: []store.Location{{PatientID: 1003, OrgCode: "D81001", LocalID: "GP0003"}},
		Decision: &store.Decision{ReviewID: 8, Kind: store.DecideSeparate, OrgCode: "RGT", LocalID: "MRN0077", PatientID: 1120,
			OtherPatientID: 1003, By: "alice", At: created.Add(7 * time.Hour), Note: "different person, same NHS number keyed twice",
			Change:     &store.PatientChange{Kind: store.ChangeSplit, From: 1003, To: 1120, ReviewID: 8, By: "alice", At: created.Add(7 * time.Hour)},
			AppliedRun: 4, PublishedVersion: 5}}
	linked := possible
	linked.Status = store.ReviewLinked
	linked.Decision = &store.Decision{ReviewID: 7, Kind: store.DecideLink, OrgCode: "LA505", LocalID: "C0099", PatientID: 1042,
		OtherPatientID: 1107, By: "bob", At: created.Add(8 * time.Hour),
		Change: &store.PatientChange{Kind: store.ChangeMerge, From: 1107, To: 1042, ReviewID: 7, By: "bob", At: created.Add(8 * time.Hour)}}
	tests := []struct {
		name  string
		print func(*bytes.Buffer)
	}{
		{"review_show_possible_match", func(b *bytes.Buffer) { printReview(b, possible) }},
		{"review_show_held_separated", func(b *bytes.Buffer) { printReview(b, held) }},
		{"review_show_linked", func(b *bytes.Buffer) { printReview(b, linked) }},
		{"review_list", func(b *bytes.Buffer) { printReviewList(b, []store.ReviewItem{possible, held}, true) }},
		{"review_list_empty", func(b *bytes.Buffer) { printReviewList(b, nil, false) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			tt.print(&b)
			path := filepath.Join("testdata", tt.name+".golden")
			if *updateGolden {
				if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update-review to create it)", err)
			}
			if got := b.String(); got != string(want) {
				t.Errorf("output differs from %s:\n%s\nwant:\n%s", path, got, want)
			}
		})
	}
}
