package link_test

import (
	"context"
	"maps"
	"sync"

	"github.com/careindex/careindex/loader/store"
)

// fakeLinks is an in-memory store.Links: the persistent link state of a
// store, with a patient id sequence that never goes back.
type fakeLinks struct {
	mu      sync.Mutex
	nhs     map[string]store.Link
	local   map[string]map[string]int64 // org → local id → patient
	seq     int64
	issued  []int64
	reviews []store.Review
	// fail, when set, makes the named method fail.
	fail string
}

func newFakeLinks() *fakeLinks {
	return &fakeLinks{nhs: map[string]store.Link{}, local: map[string]map[string]int64{}, seq: 1000}
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

var _ store.Links = (*fakeLinks)(nil)
