package link_test

import (
	"cmp"
	"context"
	"maps"
	"slices"
	"sync"

	"github.com/careindex/careindex/loader/store"
	"github.com/careindex/careindex/transform/match"
)

// fakeLinks is an in-memory store.Links: the persistent link state of a
// store, with a patient id sequence that never goes back, and the match
// state (records by organisation and local id, keys → records).
type fakeLinks struct {
	mu      sync.Mutex
	nhs     map[string]store.Link
	local   map[string]map[string]int64 // org → local id → patient
	seq     int64
	issued  []int64
	reviews []store.Review
	pins    map[string]map[string]int64 // org → local id → pinned patient
	// match state
	records    map[string]store.MatchRecord // MatchID → record (with its keys)
	keys       map[string]map[string]bool   // key → MatchIDs
	meta       *store.MatchMeta
	candidates int // Candidates calls
	rekeyed    int // Rekey calls that filed records
	// fail, when set, makes the named method fail.
	fail string
}

func newFakeLinks() *fakeLinks {
	return &fakeLinks{nhs: map[string]store.Link{}, local: map[string]map[string]int64{}, seq: 1000,
		records: map[string]store.MatchRecord{}, keys: map[string]map[string]bool{}}
}

type fakeError string

func (e fakeError) Error() string { return string(e) }

func (f *fakeLinks) ByNHS(_ context.Context, nhs []string) (map[string]store.Link, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail == "ByNHS" {
		return nil, fakeError("ByNHS failed")
	}
	out := map[string]store.Link{}
	for _, n := range nhs {
		if l, ok := f.nhs[n]; ok {
			out[n] = l
		}
	}
	return out, nil
}

func (f *fakeLinks) NHSOfPatients(_ context.Context, ids []int64) (map[int64][]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[int64][]string{}
	for n, l := range f.nhs {
		for _, id := range ids {
			if l.PatientID == id {
				out[id] = append(out[id], n)
			}
		}
	}
	return out, nil
}

func (f *fakeLinks) ByLocal(_ context.Context, org string, localIDs []string) (map[string]int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail == "ByLocal" {
		return nil, fakeError("ByLocal failed")
	}
	out := map[string]int64{}
	for _, id := range localIDs {
		if p, ok := f.local[org][id]; ok {
			out[id] = p
		}
	}
	return out, nil
}

func (f *fakeLinks) NewPatientIDs(_ context.Context, n int) ([]int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail == "NewPatientIDs" {
		return nil, fakeError("NewPatientIDs failed")
	}
	ids := make([]int64, n)
	for i := range ids {
		f.seq++
		ids[i] = f.seq
	}
	f.issued = append(f.issued, ids...)
	return ids, nil
}

func (f *fakeLinks) SaveNHS(_ context.Context, links map[string]store.Link) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail == "SaveNHS" {
		return fakeError("SaveNHS failed")
	}
	maps.Copy(f.nhs, links)
	return nil
}

func (f *fakeLinks) SaveLocal(_ context.Context, org string, links map[string]int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail == "SaveLocal" {
		return fakeError("SaveLocal failed")
	}
	if f.local[org] == nil {
		f.local[org] = map[string]int64{}
	}
	maps.Copy(f.local[org], links)
	return nil
}

func (f *fakeLinks) AddReviews(_ context.Context, rs []store.Review) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail == "AddReviews" {
		return fakeError("AddReviews failed")
	}
	f.reviews = append(f.reviews, rs...)
	return nil
}

// pin records a decision pinning an organisation's local id to a patient.
func (f *fakeLinks) pin(org, localID string, pid int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pins == nil {
		f.pins = map[string]map[string]int64{}
	}
	if f.pins[org] == nil {
		f.pins[org] = map[string]int64{}
	}
	f.pins[org][localID] = pid
}

func (f *fakeLinks) Pins(_ context.Context, org string, localIDs []string) (map[string]int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail == "Pins" {
		return nil, fakeError("Pins failed")
	}
	out := map[string]int64{}
	for _, id := range localIDs {
		if p, ok := f.pins[org][id]; ok {
			out[id] = p
		}
	}
	return out, nil
}

func (f *fakeLinks) SaveMatch(_ context.Context, recs []store.MatchRecord) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail == "SaveMatch" {
		return fakeError("SaveMatch failed")
	}
	for _, r := range recs {
		id := store.MatchID(r.OrgCode, r.LocalID)
		if old, ok := f.records[id]; ok {
			for _, k := range old.Keys {
				delete(f.keys[k], id)
			}
		}
		r.Keys = slices.Clone(r.Keys)
		r.Record.ID = id
		f.records[id] = r
		for _, k := range r.Keys {
			if f.keys[k] == nil {
				f.keys[k] = map[string]bool{}
			}
			f.keys[k][id] = true
		}
	}
	return nil
}

func (f *fakeLinks) Candidates(_ context.Context, keys []string, limit int) (match.CandidateSet, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.candidates++
	set := match.CandidateSet{ByKey: map[string][]match.Candidate{}}
	if f.fail == "Candidates" {
		return set, fakeError("Candidates failed")
	}
	for _, k := range keys {
		ids := f.keys[k]
		if len(ids) > limit {
			if set.Oversized == nil {
				set.Oversized = map[string]int{}
			}
			set.Oversized[k] = len(ids)
			continue
		}
		for _, id := range slices.Sorted(maps.Keys(ids)) {
			r := f.records[id]
			set.ByKey[k] = append(set.ByKey[k], match.Candidate{PatientID: r.PatientID, Record: r.Record})
		}
	}
	return set, nil
}

func (f *fakeLinks) MatchMeta(context.Context) (store.MatchMeta, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.meta == nil {
		return store.MatchMeta{}, false, nil
	}
	return *f.meta, true, nil
}

func (f *fakeLinks) SetMatchMeta(_ context.Context, m store.MatchMeta) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.meta = &m
	return nil
}

func (f *fakeLinks) Rekey(_ context.Context, sig string, keysOf func(match.Record) []string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.meta != nil && f.meta.Signature == sig {
		return 0, nil
	}
	f.keys = map[string]map[string]bool{}
	for id, r := range f.records {
		r.Keys = keysOf(r.Record)
		f.records[id] = r
		for _, k := range r.Keys {
			if f.keys[k] == nil {
				f.keys[k] = map[string]bool{}
			}
			f.keys[k][id] = true
		}
	}
	if f.meta == nil {
		f.meta = &store.MatchMeta{}
	}
	f.meta.Signature = sig
	f.rekeyed++
	return len(f.records), nil
}

func (f *fakeLinks) EachMatchRecord(_ context.Context, fn func(store.MatchRecord) error) error {
	f.mu.Lock()
	recs := make([]store.MatchRecord, 0, len(f.records))
	for _, r := range f.records {
		r.Keys = nil
		recs = append(recs, r)
	}
	f.mu.Unlock()
	slices.SortFunc(recs, func(a, b store.MatchRecord) int {
		return cmp.Or(cmp.Compare(a.OrgCode, b.OrgCode), cmp.Compare(a.LocalID, b.LocalID))
	})
	for _, r := range recs {
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

var _ store.Links = (*fakeLinks)(nil)
