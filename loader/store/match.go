package store

import (
	"slices"
	"strings"
)

// RecordRef names an organisation's record in the match state.
type RecordRef struct{ OrgCode, LocalID string }

// KeyRow is one row of the key table: a record filed under a key.
type KeyRow struct {
	Key string
	RecordRef
}

// MatchSave is what a backend writes for a SaveMatch call: the records to
// upsert (new or changed, with the keys they are filed under now) and the
// key rows to remove and to add, sorted by key so that they go into the
// key index in order.
type MatchSave struct {
	Upserts []MatchRecord
	Remove  []KeyRow
	Add     []KeyRow
}

// PlanMatchSave compares records to save with what the backend holds for
// them (stored, by reference, with the keys they were filed under) and
// returns the writes: nothing for a record saved unchanged. A record given
// twice is saved as given last.
func PlanMatchSave(recs []MatchRecord, stored map[RecordRef]MatchRecord) MatchSave {
	var plan MatchSave
	last := make(map[RecordRef]int, len(recs))
	for i, r := range recs {
		last[RecordRef{r.OrgCode, r.LocalID}] = i
	}
	for i, r := range recs {
		ref := RecordRef{r.OrgCode, r.LocalID}
		if last[ref] != i {
			continue
		}
		keys := slices.Clone(r.Keys)
		slices.Sort(keys)
		keys = slices.Compact(keys)
		r.Keys = keys
		r.Record.ID = ""
		old, ok := stored[ref]
		var oldKeys []string
		if ok {
			oldKeys = slices.Clone(old.Keys)
			slices.Sort(oldKeys)
			oldKeys = slices.Compact(oldKeys)
			old.Record.ID = ""
			if old.PatientID == r.PatientID && old.Record == r.Record && slices.Equal(oldKeys, keys) {
				continue
			}
		}
		plan.Upserts = append(plan.Upserts, r)
		for _, k := range oldKeys {
			if _, found := slices.BinarySearch(keys, k); !found {
				plan.Remove = append(plan.Remove, KeyRow{k, ref})
			}
		}
		for _, k := range keys {
			if _, found := slices.BinarySearch(oldKeys, k); !found {
				plan.Add = append(plan.Add, KeyRow{k, ref})
			}
		}
	}
	byKey := func(a, b KeyRow) int {
		if c := strings.Compare(a.Key, b.Key); c != 0 {
			return c
		}
		if c := strings.Compare(a.OrgCode, b.OrgCode); c != 0 {
			return c
		}
		return strings.Compare(a.LocalID, b.LocalID)
	}
	slices.SortFunc(plan.Remove, byKey)
	slices.SortFunc(plan.Add, byKey)
	return plan
}
