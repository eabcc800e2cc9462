package store_test

import (
	"reflect"
	"slices"
	"testing"

	"github.com/careindex/careindex/loader/store"
	"github.com/careindex/careindex/transform/match"
)

func TestPlanMatchSave(t *testing.T) {
	rec := func(local string, pid int64, family string, keys ...string) store.MatchRecord {
		return store.MatchRecord{OrgCode: "A81001", LocalID: local, PatientID: pid, Record: match.Record{FamilyName: family}, Keys: keys}
	}
	ref := func(local string) store.RecordRef { return store.RecordRef{OrgCode: "A81001", LocalID: local} }
	kr := func(key, local string) store.KeyRow {
		return store.KeyRow{Hash: store.KeyHash(key), RecordRef: ref(local)}
	}
	stored := map[store.RecordRef]store.MatchRecord{
		ref("same"):    rec("same", 1, "X", "b", "a"),
		ref("changed"): rec("changed", 2, "Y", "k1", "k2"),
		ref("moved"):   rec("moved", 3, "Z", "m"),
	}
	same := rec("same", 1, "X", "a", "b", "a")
	same.Record.ID = "ignored"
	plan := store.PlanMatchSave([]store.MatchRecord{
		same,
		rec("changed", 2, "Y2", "k2", "k3"),
		rec("moved", 4, "Z", "m"),
		rec("new", 5, "N", "n2", "n1"),
		rec("twice", 6, "T1", "t1"),
		rec("twice", 6, "T2", "t2"),
	}, stored)
	want := store.MatchSave{
		Upserts: []store.MatchRecord{rec("changed", 2, "Y2", "k2", "k3"), rec("moved", 4, "Z", "m"), rec("new", 5, "N", "n1", "n2"),
			rec("twice", 6, "T2", "t2")},
		Remove: []store.KeyRow{kr("k1", "changed")},
		Add:    []store.KeyRow{kr("k3", "changed"), kr("n1", "new"), kr("n2", "new"), kr("t2", "twice")},
	}
	slices.SortFunc(want.Remove, store.CompareKeyRows)
	slices.SortFunc(want.Add, store.CompareKeyRows)
	if !reflect.DeepEqual(plan, want) {
		t.Errorf("plan:\n got %+v\nwant %+v", plan, want)
	}
}

// TestKeyHash: the hash the stores keep must never change (it is FNV-1a
// 64), and distinct keys get distinct hashes.
func TestKeyHash(t *testing.T) {
	for _, c := range []struct {
		key  string
		want uint64
	}{
		{"", 0xcbf29ce484222325},
		{"a", 0xaf63dc4c8601ec8c},
		{"foobar", 0x85944171f73967e8},
	} {
		if got := uint64(store.KeyHash(c.key)); got != c.want {
			t.Errorf("KeyHash(%q) = %#x, want %#x", c.key, got, c.want)
		}
	}
	hashes, byHash := store.KeyHashes([]string{"b", "a", "b", "c"})
	if len(hashes) != 3 || !slices.IsSorted(hashes) {
		t.Errorf("KeyHashes hashes %v", hashes)
	}
	for _, k := range []string{"a", "b", "c"} {
		if got := byHash[store.KeyHash(k)]; !slices.Equal(got, []string{k}) {
			t.Errorf("KeyHashes[%q] = %v", k, got)
		}
	}
}
