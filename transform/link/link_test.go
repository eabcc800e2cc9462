package link_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/careindex/careindex/loader/store"
	"github.com/careindex/careindex/transform/link"
	"github.com/careindex/careindex/transform/record"
)

// Valid NHS numbers (Modulus 11).
const (
	nhsA = "9434765919"
	nhsB = "5002977278"
	nhsC = "7931098021"
	nhsD = "7408594116"
)

// person is a compact person record; line numbers are set per batch.
func person(local, nhs, dob string) record.Person {
	return record.Person{LocalID: local, NHSNumber: nhs, DateOfBirth: dob, FamilyName: "X" + local}
}

// step is one call of Link. want holds a label per input record: records
// with the same label must link to the same patient, a label not seen
// before in the case must get a new patient id never used before, and
// "held:L" means the record is held for review against label L's patient.
type step struct {
	org  string
	recs []record.Person
	want []string
}

func TestLink(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		steps []step
	}{
		{name: "new NHS numbers get new ids", steps: []step{
			{org: "RGT", recs: []record.Person{person("1", nhsA, "1970-01-01"), person("2", nhsB, "1980-02-02"), person("3", nhsC, "")},
				want: []string{"a", "b", "c"}},
		}},
		{name: "same NHS number in one batch shares an id", steps: []step{
			{org: "RGT", recs: []record.Person{person("1", nhsA, "1970-01-01"), person("2", nhsB, ""), person("3", nhsA, "1970-01-01"), person("4", nhsA, "")},
				want: []string{"a", "b", "a", "a"}},
		}},
		{name: "same local id in one batch shares an id", steps: []step{
			{org: "RGT", recs: []record.Person{person("1", "", "1970-01-01"), person("1", "", "1970-01-01"), person("2", "", "")},
				want: []string{"a", "a", "b"}},
		}},
		{name: "a later batch reuses the links", steps: []step{
			{org: "RGT", recs: []record.Person{person("1", nhsA, "1970-01-01"), person("2", nhsB, "1980-02-02")}, want: []string{"a", "b"}},
			{org: "RGT", recs: []record.Person{person("2", nhsB, "1980-02-02"), person("1", nhsA, "1970-01-01"), person("3", nhsC, "")},
				want: []string{"b", "a", "c"}},
			{org: "RGT", recs: []record.Person{person("3", nhsC, ""), person("1", nhsA, "1970-01-01")}, want: []string{"c", "a"}},
		}},
		{name: "another organisation links by NHS number", steps: []step{
			{org: "RGT", recs: []record.Person{person("MRN1", nhsA, "1970-01-01")}, want: []string{"a"}},
			{org: "D81001", recs: []record.Person{person("GP1", nhsA, "1970-01-01"), person("GP2", nhsB, "")}, want: []string{"a", "b"}},
		}},
		{name: "same local id at another organisation is another patient", steps: []step{
			{org: "RGT", recs: []record.Person{person("1", "", "1970-01-01")}, want: []string{"a"}},
			{org: "RYV", recs: []record.Person{person("1", "", "1970-01-01")}, want: []string{"b"}},
		}},
		{name: "DOB conflict with a stored link is held", steps: []step{
			{org: "RGT", recs: []record.Person{person("1", nhsA, "1970-01-01")}, want: []string{"a"}},
			{org: "D81001", recs: []record.Person{person("GP1", nhsB, ""), person("GP2", nhsA, "1971-01-01"), person("GP3", nhsC, "")},
				want: []string{"b", "held:a", "c"}},
		}},
		{name: "DOB conflict within one batch is held", steps: []step{
			{org: "RGT", recs: []record.Person{person("1", nhsA, "1970-01-01"), person("2", nhsA, "1999-12-31")}, want: []string{"a", "held:a"}},
		}},
		{name: "held record is not linked by its local id", steps: []step{
			{org: "RGT", recs: []record.Person{person("1", nhsA, "1970-01-01")}, want: []string{"a"}},
			{org: "RYV", recs: []record.Person{person("X", nhsA, "1971-01-01")}, want: []string{"held:a"}},
			{org: "RYV", recs: []record.Person{person("X", "", "1971-01-01")}, want: []string{"x"}},
		}},
		{name: "missing DOB on the stored side agrees", steps: []step{
			{org: "RGT", recs: []record.Person{person("1", nhsA, "")}, want: []string{"a"}},
			{org: "RYV", recs: []record.Person{person("9", nhsA, "1970-01-01")}, want: []string{"a"}},
		}},
		{name: "missing DOB on the record agrees", steps: []step{
			{org: "RGT", recs: []record.Person{person("1", nhsA, "1970-01-01")}, want: []string{"a"}},
			{org: "RYV", recs: []record.Person{person("9", nhsA, "")}, want: []string{"a"}},
		}},
		{name: "record without NHS number keeps its local id's patient", steps: []step{
			{org: "LA505", recs: []record.Person{person("C1", "", "1970-01-01"), person("C2", "", "")}, want: []string{"c1", "c2"}},
			{org: "LA505", recs: []record.Person{person("C2", "", ""), person("C1", "", "1970-01-01"), person("C3", "", "")}, want: []string{"c2", "c1", "c3"}},
		}},
		{name: "record that gains an NHS number keeps its patient", steps: []step{
			{org: "LA505", recs: []record.Person{person("C1", "", "1970-01-01")}, want: []string{"c1"}},
			{org: "LA505", recs: []record.Person{person("C1", nhsD, "1970-01-01")}, want: []string{"c1"}},
			// The NHS number is now linked: another organisation finds the patient.
			{org: "RGT", recs: []record.Person{person("M1", nhsD, "1970-01-01")}, want: []string{"c1"}},
		}},
		{name: "known NHS number wins over the local id's old patient", steps: []step{
			{org: "RGT", recs: []record.Person{person("1", nhsA, "1970-01-01")}, want: []string{"a"}},
			{org: "LA505", recs: []record.Person{person("C1", "", "1970-01-01")}, want: []string{"c1"}},
			{org: "LA505", recs: []record.Person{person("C1", nhsA, "1970-01-01")}, want: []string{"a"}},
			{org: "LA505", recs: []record.Person{person("C1", "", "1970-01-01")}, want: []string{"a"}},
		}},
		{name: "ids never reused across batches", steps: []step{
			{org: "RGT", recs: []record.Person{person("1", nhsA, ""), person("2", "", "")}, want: []string{"a", "r2"}},
			{org: "RGT", recs: []record.Person{person("3", nhsB, ""), person("4", "", "")}, want: []string{"b", "r4"}},
			{org: "RYV", recs: []record.Person{person("1", nhsC, ""), person("2", "", "")}, want: []string{"c", "y2"}},
			{org: "RYV", recs: []record.Person{person("1", nhsC, ""), person("2", "", ""), person("3", nhsD, "")}, want: []string{"c", "y2", "d"}},
		}},
		{name: "empty batch", steps: []step{{org: "RGT"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			links := newFakeLinks()
			ids := map[string]int64{} // label → patient id
			used := map[int64]string{}
			for si, st := range tt.steps {
				runID := int64(si + 1)
				source := strings.ToLower(st.org) + "-patients"
				recs := make([]record.Person, len(st.recs))
				for i, r := range st.recs {
					r.SourceID, r.OrgCode, r.File, r.Line = source, st.org, fmt.Sprintf("run%d.csv", runID), i+2
					recs[i] = r
				}
				reviewsBefore := len(links.reviews)
				// A new Linker per step: links must persist in the store, not the Linker.
				linked, held, err := link.New(links, runID).Link(ctx, source, st.org, recs)
				if err != nil {
					t.Fatalf("step %d: Link = %v", si, err)
				}
				var wantHeld []int
				li := 0
				for i, w := range st.want {
					if target, ok := strings.CutPrefix(w, "held:"); ok {
						wantHeld = append(wantHeld, i)
						pid, known := ids[target]
						if !known {
							t.Fatalf("step %d: held against unknown label %q", si, target)
						}
						checkHeld(t, si, recs[i], held, links.reviews[reviewsBefore:], len(wantHeld)-1, pid, runID)
						continue
					}
					if li >= len(linked) {
						t.Fatalf("step %d: only %d records linked", si, len(linked))
					}
					got := linked[li]
					li++
					if got.Person != recs[i] {
						t.Errorf("step %d: linked[%d] is %+v, want record %d (input order)", si, li-1, got.Person, i)
					}
					if got.PatientID <= 0 {
						t.Errorf("step %d record %d: patient id %d", si, i, got.PatientID)
					}
					if pid, ok := ids[w]; ok {
						if got.PatientID != pid {
							t.Errorf("step %d record %d (local %s): patient %d, want %d (label %s)", si, i, recs[i].LocalID, got.PatientID, pid, w)
						}
						continue
					}
					if other, ok := used[got.PatientID]; ok {
						t.Errorf("step %d record %d: label %s got patient %d, already used by label %s", si, i, w, got.PatientID, other)
					}
					ids[w] = got.PatientID
					used[got.PatientID] = w
				}
				if li != len(linked) {
					t.Errorf("step %d: %d linked, want %d", si, len(linked), li)
				}
				if len(held) != len(wantHeld) {
					t.Errorf("step %d: %d held, want %d", si, len(held), len(wantHeld))
				}
				if got := len(links.reviews) - reviewsBefore; got != len(wantHeld) {
					t.Errorf("step %d: %d reviews, want %d", si, got, len(wantHeld))
				}
			}
			// Every issued id is unique, and every id in use was issued.
			seen := map[int64]bool{}
			for _, id := range links.issued {
				if seen[id] {
					t.Errorf("patient id %d issued twice", id)
				}
				seen[id] = true
			}
			for id := range used {
				if !seen[id] {
					t.Errorf("patient id %d was never issued by the store", id)
				}
			}
		})
	}
}

func checkHeld(t *testing.T, si int, rec record.Person, held []store.Reject, reviews []store.Review, k int, pid, runID int64) {
	t.Helper()
	if k >= len(held) || k >= len(reviews) {
		t.Errorf("step %d: record %s not held", si, rec.LocalID)
		return
	}
	wantReject := store.Reject{SourceID: rec.SourceID, File: rec.File, Line: rec.Line, Reason: link.ReasonDOBConflict}
	if held[k] != wantReject {
		t.Errorf("step %d: held[%d] = %+v, want %+v", si, k, held[k], wantReject)
	}
	wantReview := store.Review{RunID: runID, SourceID: rec.SourceID, OrgCode: rec.OrgCode, LocalID: rec.LocalID,
		NHSNumber: rec.NHSNumber, PatientID: pid, Reason: link.ReasonDOBConflict, File: rec.File, Line: rec.Line}
	// The held record is kept with its review item, to be staged when a
	// decision releases it.
	got := reviews[k]
	if got.Held == nil || *got.Held != rec {
		t.Errorf("step %d: review[%d] keeps held record %+v, want %+v", si, k, got.Held, rec)
	}
	got.Held = nil
	if got != wantReview {
		t.Errorf("step %d: review[%d] = %+v, want %+v", si, k, got, wantReview)
	}
}

func TestLinkPersistsState(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	links := newFakeLinks()
	recs := []record.Person{person("1", nhsA, "1970-01-01"), person("2", "", "1980-01-01"), person("3", nhsB, "")}
	linked, _, err := link.New(links, 1).Link(ctx, "rgt-patients", "RGT", recs)
	if err != nil {
		t.Fatal(err)
	}
	if got := links.nhs[nhsA]; got.PatientID != linked[0].PatientID || got.DateOfBirth != "1970-01-01" {
		t.Errorf("stored link for A = %+v, want patient %d born 1970-01-01", got, linked[0].PatientID)
	}
	if got := links.nhs[nhsB]; got.PatientID != linked[2].PatientID || got.DateOfBirth != "" {
		t.Errorf("stored link for B = %+v", got)
	}
	if len(links.nhs) != 2 {
		t.Errorf("%d NHS links stored, want 2", len(links.nhs))
	}
	for i, r := range recs {
		if got := links.local["RGT"][r.LocalID]; got != linked[i].PatientID {
			t.Errorf("local link %s = %d, want %d", r.LocalID, got, linked[i].PatientID)
		}
	}
	if len(links.issued) != 3 {
		t.Errorf("%d ids issued for 3 new patients", len(links.issued))
	}
	// Linking the same batch again allocates nothing.
	if _, _, err := link.New(links, 2).Link(ctx, "rgt-patients", "RGT", recs); err != nil {
		t.Fatal(err)
	}
	if len(links.issued) != 3 {
		t.Errorf("relinking issued %d more ids", len(links.issued)-3)
	}
}

func TestLinkHeldRecordLeavesStateAlone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	links := newFakeLinks()
	if _, _, err := link.New(links, 1).Link(ctx, "rgt-patients", "RGT", []record.Person{person("1", nhsA, "1970-01-01")}); err != nil {
		t.Fatal(err)
	}
	before := links.nhs[nhsA]
	linked, held, err := link.New(links, 2).Link(ctx, "ryv-patients", "RYV", []record.Person{person("X", nhsA, "1999-09-09")})
	if err != nil {
		t.Fatal(err)
	}
	if len(linked) != 0 || len(held) != 1 {
		t.Fatalf("linked %d, held %d", len(linked), len(held))
	}
	if links.nhs[nhsA] != before {
		t.Errorf("held record changed the NHS link: %+v → %+v", before, links.nhs[nhsA])
	}
	if _, ok := links.local["RYV"]["X"]; ok {
		t.Error("held record got a local link")
	}
}

func TestLinkStoreErrors(t *testing.T) {
	t.Parallel()
	for _, method := range []string{"ByNHS", "ByLocal", "NewPatientIDs", "SaveNHS", "SaveLocal", "AddReviews"} {
		t.Run(method, func(t *testing.T) {
			t.Parallel()
			links := newFakeLinks()
			links.fail = method
			_, _, err := link.New(links, 1).Link(context.Background(), "rgt-patients", "RGT",
				[]record.Person{person("1", nhsA, "1970-01-01")})
			var fe fakeError
			if !errors.As(err, &fe) || !strings.Contains(err.Error(), "rgt-patients") {
				t.Errorf("Link = %v, want the store's error naming the source", err)
			}
		})
	}
}

// TestLinkLearnsDateOfBirth: a link first made without a date of birth
// must take one on when a later record supplies it, or two records that
// contradict each other on date of birth both link to the patient and the
// conflict never reaches review.
func TestLinkLearnsDateOfBirth(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		steps [][]record.Person // batches, all at RGT
	}{
		{"across batches", [][]record.Person{
			{person("1", nhsA, "")},
			{person("2", nhsA, "1970-01-01")},
			{person("3", nhsA, "1999-09-09")},
		}},
		{"within one batch", [][]record.Person{
			{person("1", nhsA, ""), person("2", nhsA, "1970-01-01"), person("3", nhsA, "1999-09-09")},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			links := newFakeLinks()
			var held int
			for i, b := range tt.steps {
				_, h, err := link.New(links, int64(i+1)).Link(context.Background(), "rgt-patients", "RGT", b)
				if err != nil {
					t.Fatal(err)
				}
				held += len(h)
			}
			if held != 1 {
				t.Errorf("%d records held, want 1 (the one born 1999-09-09)", held)
			}
		})
	}
}
