package link_test

import (
	"testing"

	"github.com/careindex/careindex/loader/store"
	"github.com/careindex/careindex/transform/record"
)

// TestPinnedRecords: a record a person decided on gets the patient the
// decision pinned it to, whatever its NHS number, date of birth or
// matching would say, and is neither held nor queued for review again.
func TestPinnedRecords(t *testing.T) {
	t.Parallel()
	const pinned = 9001 // a patient a decision made (a split), outside the batch's ids
	tests := []struct {
		name string
		// first is linked before the decision (at D81001), second after
		// it (at LA505, where the pinned local id is "C1").
		first  []record.Person
		pin    func(first []store.StagedPerson) int64 // the patient C1 is pinned to
		second []record.Person
		// want is C1's patient after the decision, from the first batch's
		// patients and the pinned one.
		want func(first []store.StagedPerson) int64
		// nhsOwner says whose patient C1's NHS number links to afterwards
		// (0: not linked).
		nhsOwner func(first []store.StagedPerson) int64
	}{
		{name: "linked despite a date of birth conflict",
			first:    []record.Person{hattie("GP1", nhsB)},
			pin:      func(f []store.StagedPerson) int64 { return f[0].PatientID },
			second:   []record.Person{withDOB(hattie("C1", nhsB), "1950-01-01")},
			want:     func(f []store.StagedPerson) int64 { return f[0].PatientID },
			nhsOwner: func(f []store.StagedPerson) int64 { return f[0].PatientID }},
		{name: "separated from the NHS number's patient (a split)",
			first:    []record.Person{hattie("GP1", nhsB)},
			pin:      func([]store.StagedPerson) int64 { return pinned },
			second:   []record.Person{withDOB(hattie("C1", nhsB), "1950-01-01"), hattie("C2", nhsB)},
			want:     func([]store.StagedPerson) int64 { return pinned },
			nhsOwner: func(f []store.StagedPerson) int64 { return f[0].PatientID }},
		{name: "separated from a patient it matches strongly",
			first:    []record.Person{hattie("GP1", nhsB)},
			pin:      func([]store.StagedPerson) int64 { return pinned },
			second:   []record.Person{hattie("C1", "")},
			want:     func([]store.StagedPerson) int64 { return pinned },
			nhsOwner: func(f []store.StagedPerson) int64 { return f[0].PatientID }},
		{name: "a pinned record's new NHS number follows the pin",
			first:    []record.Person{desmond("GP2", nhsC)},
			pin:      func([]store.StagedPerson) int64 { return pinned },
			second:   []record.Person{hattie("C1", nhsD)},
			want:     func([]store.StagedPerson) int64 { return pinned },
			nhsOwner: func([]store.StagedPerson) int64 { return pinned }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			links := newFakeLinks()
			first, _ := linkAt(t, links, 1, "D81001", tt.first...)
			links.pin("LA505", "C1", tt.pin(first))
			linked, held := linkAt(t, links, 2, "LA505", tt.second...)
			if len(held) != 0 {
				t.Fatalf("held %+v: a decided record is never held", held)
			}
			if len(links.reviews) != 0 {
				t.Fatalf("review items %+v: a decided record is never queued again", links.reviews)
			}
			if got, want := linked[0].PatientID, tt.want(first); got != want {
				t.Errorf("C1 got patient %d, want %d", got, want)
			}
			if got := links.local["LA505"]["C1"]; got != tt.want(first) {
				t.Errorf("C1's local link is %d, want %d", got, tt.want(first))
			}
			nhs := tt.second[0].NHSNumber
			if nhs != "" {
				if got := links.nhs[nhs].PatientID; got != tt.nhsOwner(first) {
					t.Errorf("NHS number links to %d, want %d", got, tt.nhsOwner(first))
				}
			}
			// Another record of the batch is not pinned: it links as before.
			for i, p := range linked[1:] {
				if p.PatientID == tt.want(first) && tt.want(first) == pinned {
					t.Errorf("record %d (%s) took the pinned patient", i+1, p.LocalID)
				}
			}
			// A later batch keeps the decision.
			again, held := linkAt(t, links, 3, "LA505", tt.second[0])
			if len(held) != 0 || again[0].PatientID != tt.want(first) {
				t.Errorf("the next night: patient %d, held %d", again[0].PatientID, len(held))
			}
		})
	}
}

func withDOB(p record.Person, dob string) record.Person {
	p.DateOfBirth = dob
	return p
}
