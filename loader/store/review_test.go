package store_test

import (
	"reflect"
	"testing"

	"github.com/careindex/careindex/loader/store"
)

func TestResolveMerges(t *testing.T) {
	merge := func(from, to int64) store.PatientChange {
		return store.PatientChange{Kind: store.ChangeMerge, From: from, To: to}
	}
	tests := []struct {
		name    string
		changes []store.PatientChange
		want    map[int64]int64
	}{
		{"none", nil, map[int64]int64{}},
		{"one merge", []store.PatientChange{merge(1, 2)}, map[int64]int64{1: 2}},
		{"a chain ends at its survivor", []store.PatientChange{merge(1, 2), merge(2, 3), merge(3, 4)},
			map[int64]int64{1: 4, 2: 4, 3: 4}},
		{"two merges into one", []store.PatientChange{merge(1, 3), merge(2, 3)}, map[int64]int64{1: 3, 2: 3}},
		{"splits are not merges", []store.PatientChange{{Kind: store.ChangeSplit, From: 1, To: 5}, merge(6, 1)},
			map[int64]int64{6: 1}},
		{"a merge into itself is nothing", []store.PatientChange{merge(7, 7)}, map[int64]int64{}},
		{"a cycle stops", []store.PatientChange{merge(1, 2), merge(2, 1)}, map[int64]int64{1: 2, 2: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := store.ResolveMerges(tt.changes); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ResolveMerges = %v, want %v", got, tt.want)
			}
		})
	}
}
