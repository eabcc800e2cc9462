// Package link assigns each person record the regional patient it belongs
// to, deterministically:
//
//   - a valid NHS number already linked to a patient, with a date of birth
//     that agrees (or is missing on either side), links to that patient;
//   - a valid NHS number linked to a patient whose date of birth differs is
//     not trusted: the record is held for review and not published;
//   - a new NHS number gets the patient the organisation's local id already
//     had, if any, or a new patient id;
//   - a record without an NHS number keeps the patient its organisation's
//     local id had last time, or gets a new patient id of its own.
//
// Patient ids come from the store's sequence, so they are never reused, and
// links persist in the store, so they are stable from one run to the next.
// Records are linked in batches so that the store is asked once per batch.
package link

import (
	"context"
	"fmt"

	"github.com/careindex/careindex/loader/store"
	"github.com/careindex/careindex/transform/record"
)

// ReasonDOBConflict is the quarantine reason of a record held for review.
const ReasonDOBConflict = "held for review: the NHS number links to a patient with a different date of birth"

// Linker links batches of one organisation's person records.
type Linker struct {
	links store.Links
	runID int64
}

// New returns a linker over the store's link state.
func New(links store.Links, runID int64) *Linker {
	return &Linker{links: links, runID: runID}
}

// Link links a batch of person records of one source. It returns the linked
// records and the rejects of records held for review, in input order.
func (l *Linker) Link(ctx context.Context, sourceID, org string, batch []record.Person) ([]store.StagedPerson, []store.Reject, error) {
	var nhs, locals []string
	for _, p := range batch {
		if p.NHSNumber != "" {
			nhs = append(nhs, p.NHSNumber)
		}
		locals = append(locals, p.LocalID)
	}
	byNHS, err := l.links.ByNHS(ctx, nhs)
	if err != nil {
		return nil, nil, fmt.Errorf("linking %s: %w", sourceID, err)
	}
	byLocal, err := l.links.ByLocal(ctx, org, locals)
	if err != nil {
		return nil, nil, fmt.Errorf("linking %s: %w", sourceID, err)
	}

	// First pass: decide, marking records that need a new patient id with
	// a negative placeholder shared by records that must share the patient.
	type decision struct {
		pid  int64 // > 0 patient id; < 0 placeholder for a new id; 0 held
		held bool
	}
	decisions := make([]decision, len(batch))
	newNHS := map[string]int64{}   // NHS number → placeholder or id, new in this batch
	newLocal := map[string]int64{} // local id → placeholder, new in this batch
	learned := map[string]bool{}   // existing links that learned a date of birth
	next := int64(0)
	placeholder := func() int64 { next--; return next }
	for i, p := range batch {
		var pid int64
		if p.NHSNumber != "" {
			if k, ok := byNHS[p.NHSNumber]; ok {
				if !agree(k.DateOfBirth, p.DateOfBirth) {
					decisions[i] = decision{held: true}
					continue
				}
				pid = k.PatientID
				if k.DateOfBirth == "" && p.DateOfBirth != "" {
					// The link learns the date of birth, so that a later
					// record with another one is held for review.
					k.DateOfBirth = p.DateOfBirth
					byNHS[p.NHSNumber] = k
					learned[p.NHSNumber] = true
				}
			} else if ph, ok := newNHS[p.NHSNumber]; ok {
				pid = ph
			} else if old, ok := byLocal[p.LocalID]; ok {
				pid = old
			} else if ph, ok := newLocal[p.LocalID]; ok {
				pid = ph
			} else {
				pid = placeholder()
			}
			if _, ok := byNHS[p.NHSNumber]; !ok {
				newNHS[p.NHSNumber] = pid
				byNHS[p.NHSNumber] = store.Link{PatientID: pid, DateOfBirth: p.DateOfBirth}
			}
		} else if old, ok := byLocal[p.LocalID]; ok {
			pid = old
		} else if ph, ok := newLocal[p.LocalID]; ok {
			pid = ph
		} else {
			pid = placeholder()
		}
		if pid < 0 {
			newLocal[p.LocalID] = pid
		}
		decisions[i] = decision{pid: pid}
	}

	ids, err := l.links.NewPatientIDs(ctx, int(-next))
	if err != nil {
		return nil, nil, fmt.Errorf("linking %s: %w", sourceID, err)
	}
	resolve := func(pid int64) int64 {
		if pid < 0 {
			return ids[-pid-1]
		}
		return pid
	}

	saveNHS := map[string]store.Link{}
	for n, pid := range newNHS {
		saveNHS[n] = store.Link{PatientID: resolve(pid), DateOfBirth: byNHS[n].DateOfBirth}
	}
	for n := range learned {
		if _, ok := saveNHS[n]; !ok {
			saveNHS[n] = store.Link{PatientID: resolve(byNHS[n].PatientID), DateOfBirth: byNHS[n].DateOfBirth}
		}
	}
	saveLocal := map[string]int64{}
	var linked []store.StagedPerson
	var held []store.Reject
	var reviews []store.Review
	for i, p := range batch {
		d := decisions[i]
		if d.held {
			k := byNHS[p.NHSNumber]
			held = append(held, store.Reject{SourceID: sourceID, File: p.File, Line: p.Line, Reason: ReasonDOBConflict})
			reviews = append(reviews, store.Review{RunID: l.runID, SourceID: sourceID, OrgCode: org, LocalID: p.LocalID,
				NHSNumber: p.NHSNumber, PatientID: resolve(k.PatientID), Reason: ReasonDOBConflict, File: p.File, Line: p.Line})
			continue
		}
		pid := resolve(d.pid)
		if old, ok := byLocal[p.LocalID]; !ok || old != pid {
			saveLocal[p.LocalID] = pid
		}
		linked = append(linked, store.StagedPerson{Person: p, PatientID: pid})
	}
	if err := l.links.SaveNHS(ctx, saveNHS); err != nil {
		return nil, nil, fmt.Errorf("linking %s: %w", sourceID, err)
	}
	if err := l.links.SaveLocal(ctx, org, saveLocal); err != nil {
		return nil, nil, fmt.Errorf("linking %s: %w", sourceID, err)
	}
	if err := l.links.AddReviews(ctx, reviews); err != nil {
		return nil, nil, fmt.Errorf("linking %s: %w", sourceID, err)
	}
	return linked, held, nil
}

// agree reports whether two dates of birth do not contradict each other.
func agree(a, b string) bool { return a == "" || b == "" || a == b }
