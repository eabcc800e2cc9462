package store_test

import (
	"reflect"
	"testing"

	"github.com/careindex/careindex/loader/store"
	"github.com/careindex/careindex/transform/match"
)

func TestPlanMatchSave(t *testing.T) {
	rec := func(local string, pid int64, family string, keys ...string) store.MatchRecord {
		return store.MatchRecord{OrgCode: "A81001", LocalID: local, PatientID: pid, Record: match.Record{FamilyName: family}, Keys: keys}
	}
	ref := func(local string) store.RecordRef { return store.RecordRef{OrgCode: "A81001", LocalID: local} }
	kr := func(key, local string) store.KeyRow { return store.KeyRow{Key: key, RecordRef: ref(local)} }
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
	if !reflect.DeepEqual(plan, want) {
		t.Errorf("plan:\n got %+v\nwant %+v", plan, want)
	}
}
