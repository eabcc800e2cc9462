package bench

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/careindex/careindex/fixtures/regiongen"
)

// Linkage scores the published linkage against the generator's truth:
// pairwise precision, recall and F1 over the published records the truth
// knows (see the package documentation).
type Linkage struct {
	Night int `json:"night"`
	// Records are the published record locations scored; Unknown those
	// the truth does not list (not scored).
	Records  int64 `json:"records"`
	Unknown  int64 `json:"unknown"`
	Patients int64 `json:"patients"`
	Persons  int64 `json:"persons"`
	// Pairs of records: predicted (same patient), true (same person) and
	// both.
	PredictedPairs    int64   `json:"predicted_pairs"`
	TruePairs         int64   `json:"true_pairs"`
	TruePositivePairs int64   `json:"true_positive_pairs"`
	Precision         float64 `json:"precision"`
	Recall            float64 `json:"recall"`
	F1                float64 `json:"f1"`
}

// pairs is n choose 2.
func pairs(n int64) int64 { return n * (n - 1) / 2 }

// contingency counts records by (patient, person).
type contingency struct {
	cells    map[[2]int64]int64
	patients map[int64]int64
	persons  map[int64]int64
	records  int64
}

func newContingency() *contingency {
	return &contingency{cells: map[[2]int64]int64{}, patients: map[int64]int64{}, persons: map[int64]int64{}}
}

func (c *contingency) add(patient, person int64) {
	c.cells[[2]int64{patient, person}]++
	c.patients[patient]++
	c.persons[person]++
	c.records++
}

// score computes the pairwise measures from the table.
func (c *contingency) score() Linkage {
	l := Linkage{Records: c.records, Patients: int64(len(c.patients)), Persons: int64(len(c.persons))}
	for _, n := range c.cells {
		l.TruePositivePairs += pairs(n)
	}
	for _, n := range c.patients {
		l.PredictedPairs += pairs(n)
	}
	for _, n := range c.persons {
		l.TruePairs += pairs(n)
	}
	l.Precision, l.Recall = 1, 1
	if l.PredictedPairs > 0 {
		l.Precision = float64(l.TruePositivePairs) / float64(l.PredictedPairs)
	}
	if l.TruePairs > 0 {
		l.Recall = float64(l.TruePositivePairs) / float64(l.TruePairs)
	}
	if l.Precision+l.Recall > 0 {
		l.F1 = 2 * l.Precision * l.Recall / (l.Precision + l.Recall)
	}
	return l
}

// truth maps a night's person records, (org_code, local_id), to the true
// person, numbered in order of appearance.
type truth struct {
	records map[string]int64
}

func truthKey(org, local string) string { return org + "\x00" + local }

// readTruth reads night-NN/truth/persons.csv: org_code, source_id,
// local_id, person_id, ….
func readTruth(path string) (*truth, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.ReuseRecord = true
	header, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[h] = i
	}
	orgCol, okO := col["org_code"]
	localCol, okL := col["local_id"]
	personCol, okP := col["person_id"]
	if !okO || !okL || !okP {
		return nil, fmt.Errorf("%s: want columns org_code, local_id and person_id", path)
	}
	t := &truth{records: map[string]int64{}}
	persons := map[string]int64{}
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		p, ok := persons[rec[personCol]]
		if !ok {
			p = int64(len(persons))
			persons[rec[personCol]] = p
		}
		t.records[truthKey(rec[orgCol], rec[localCol])] = p
	}
	return t, nil
}

// linkage scores the store's live version against a night's truth.
func (b *bench) linkage(ctx context.Context, st target, n regiongen.NightSummary) (Linkage, error) {
	tr, err := readTruth(filepath.Join(b.region, n.Dir, "truth", "persons.csv"))
	if err != nil {
		return Linkage{}, fmt.Errorf("reading the truth: %w", err)
	}
	c := newContingency()
	var unknown int64
	err = st.locations(ctx, func(patient int64, org, local string) {
		person, ok := tr.records[truthKey(org, local)]
		if !ok {
			unknown++
			return
		}
		c.add(patient, person)
	})
	if err != nil {
		return Linkage{}, err
	}
	l := c.score()
	l.Night, l.Unknown = n.Night, unknown
	return l, nil
}
