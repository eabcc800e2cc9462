package match

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
)

// Matcher matches single records against existing patients: the nightly
// job's incremental path. It is safe for concurrent use.
type Matcher struct {
	model *Model
	c     *compiled
	th    *thresholdWeights
}

// NewMatcher checks the model and thresholds and returns a matcher.
func NewMatcher(model *Model, th Thresholds) (*Matcher, error) {
	c, tw, err := compileWith(model, th)
	if err != nil {
		return nil, err
	}
	return &Matcher{model: model, c: c, th: tw}, nil
}

// Score compares two records under the matcher's model. The model's
// term-frequency tables are used when it has them.
func (m *Matcher) Score(a, b Record) Comparison {
	d := newDataset(2)
	d.add(a)
	d.add(b)
	s := newScorer(m.c, d, false)
	return s.explain(d.row(0), d.row(1), m.th)
}

// BlockingKeys returns the keys under which a record is filed, one for
// each blocking rule under which it has a key, as "rule:value" (for
// example "dob:19850207"). Keys hold patient data: never log them. They
// depend on the model's blocking rules; KeySignature changes when those
// do, and the store must then file its records again.
func (m *Matcher) BlockingKeys(r Record) []string {
	d := newDataset(1)
	d.add(r)
	return d.recordKeys(m.c.rules, 0)
}

// KeySignature identifies the blocking rules and key format. A store that
// persists keys keeps the signature beside them and re-keys its records
// when it changes.
func (m *Matcher) KeySignature() string {
	b, _ := json.Marshal(struct {
		Format int            `json:"format"`
		Rules  []BlockingRule `json:"rules"`
	}{1, m.model.Blocking})
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:8])
}

// MaxBlock is the largest number of candidates a key may bring: keys
// filed under more records are skipped (CandidateSet.Oversized).
func (m *Matcher) MaxBlock() int { return m.c.maxBlock }

// Candidate is one record of an existing patient, as the store keeps it
// for matching.
type Candidate struct {
	PatientID int64
	Record    Record
}

// CandidateSet is what a CandidateSource returns for a set of keys.
type CandidateSet struct {
	// ByKey holds the records filed under each key (keys with none may be
	// left out).
	ByKey map[string][]Candidate
	// Oversized lists keys filed under more records than the limit, with
	// their counts; their records are not returned.
	Oversized map[string]int
}

// CandidateSource finds existing patients' records by blocking key. The
// store implements it over a table of (key, patient_id, record_id) rows
// and the records' matching fields; Index is an in-memory implementation.
type CandidateSource interface {
	// Candidates returns the records filed under any of keys. A key filed
	// under more than limit records is reported in Oversized instead.
	Candidates(ctx context.Context, keys []string, limit int) (CandidateSet, error)
}

// DecisionKind is what becomes of a record.
type DecisionKind string

// Decision kinds.
const (
	KindLink   DecisionKind = "link"   // the record belongs to PatientID
	KindReview DecisionKind = "review" // a person must decide; PatientID is the best candidate
	KindNew    DecisionKind = "new"    // no existing patient matches: a new patient
)

// Decision is the outcome of matching one record.
type Decision struct {
	Kind        DecisionKind `json:"kind"`
	PatientID   int64        `json:"patient_id,omitempty"`   // linked or proposed patient; 0 for new
	CandidateID string       `json:"candidate_id,omitempty"` // ID of that patient's best-matching record
	Weight      float64      `json:"weight"`                 // of the best candidate (0 when there were none)
	Probability float64      `json:"probability"`
	// Reasons say why a decision is review (Caution… constants).
	Reasons []string `json:"reasons,omitempty"`
	// Evidence is the field-by-field comparison with the best candidate;
	// nil when there were no candidates.
	Evidence *Comparison `json:"evidence,omitempty"`
	// Others are further patients that scored in the review band or above,
	// best first, for the reviewer.
	Others []Alternative `json:"others,omitempty"`
}

// Alternative is another patient a record might belong to.
type Alternative struct {
	PatientID   int64   `json:"patient_id"`
	CandidateID string  `json:"candidate_id"`
	Weight      float64 `json:"weight"`
}

// Match decides which existing patient, if any, rec belongs to, among the
// candidates (several records of one patient may be given). It links when
// exactly one patient scores at or above the auto-link threshold and no
// safety rule holds the pair back (different NHS numbers, a placeholder
// identity, a shared NHS number with conflicting demographics, or another
// of the patient's records carrying a different NHS number); it asks for
// review when the best score is in the review band, when a safety rule
// holds a link back, or when two patients both qualify; otherwise the
// record is a new patient.
func (m *Matcher) Match(ctx context.Context, rec Record, candidates []Candidate) Decision {
	if len(candidates) == 0 || ctx.Err() != nil {
		return Decision{Kind: KindNew}
	}
	d := newDataset(len(candidates) + 1)
	d.add(rec)
	for _, c := range candidates {
		d.add(c.Record)
	}
	s := newScorer(m.c, d, false)
	a := d.row(0)
	type best struct {
		idx     int
		w       float64
		out     int
		why     uint8
		nhsDiff bool
	}
	per := map[int64]*best{}
	for k, cand := range candidates {
		b := d.row(uint32(k + 1))
		g, flags := d.compare(a, b, nil)
		w, demo := s.weights(a, b, &g)
		out, why := m.th.classify(w, demo, flags)
		p := per[cand.PatientID]
		if p == nil {
			p = &best{idx: -1}
			per[cand.PatientID] = p
		}
		if flags&pairDifferentNHS != 0 {
			p.nhsDiff = true
		}
		if p.idx < 0 || w > p.w {
			p.idx, p.w, p.out, p.why = k, w, out, why
		}
	}
	type scored struct {
		pid int64
		*best
	}
	var list []scored
	for pid, b := range per {
		if b.out == outLink && b.nhsDiff {
			b.out, b.why = outReview, b.why|whyClusterNHS
		}
		list = append(list, scored{pid, b})
	}
	slices.SortFunc(list, func(x, y scored) int {
		if c := cmp.Compare(y.w, x.w); c != 0 {
			return c
		}
		return cmp.Compare(x.pid, y.pid)
	})
	top := list[0]
	dec := Decision{PatientID: top.pid, CandidateID: candidates[top.idx].Record.ID, Weight: top.w, Probability: probability(top.w)}
	ev := s.explain(a, d.row(uint32(top.idx+1)), m.th)
	dec.Evidence = &ev
	strong := 0 // patients at or above the auto-link weight, held back or not
	for _, x := range list {
		if x.w >= m.th.auto {
			strong++
		}
		if x.out != outNone && x.pid != top.pid {
			dec.Others = append(dec.Others, Alternative{PatientID: x.pid, CandidateID: candidates[x.idx].Record.ID, Weight: x.w})
		}
	}
	switch {
	case strong > 1:
		dec.Kind = KindReview
		dec.Reasons = append(reasonNames(top.why), CautionAmbiguous)
	case top.out == outLink:
		dec.Kind = KindLink
	case top.out == outReview:
		dec.Kind = KindReview
		dec.Reasons = reasonNames(top.why)
	default:
		// the best patient is below the band; another may still be held for
		// review (a shared NHS number with conflicting demographics)
		for _, x := range list {
			if x.out == outReview {
				ev := s.explain(a, d.row(uint32(x.idx+1)), m.th)
				return Decision{Kind: KindReview, PatientID: x.pid, CandidateID: candidates[x.idx].Record.ID,
					Weight: x.w, Probability: probability(x.w), Reasons: reasonNames(x.why), Evidence: &ev}
			}
		}
		dec = Decision{Kind: KindNew, Weight: top.w, Probability: probability(top.w), Evidence: dec.Evidence}
	}
	return dec
}

// BatchReport describes a MatchBatch call.
type BatchReport struct {
	Keys          int `json:"keys"`           // distinct keys looked up
	OversizedKeys int `json:"oversized_keys"` // keys skipped as too common (see Model.MaxBlock)
	Candidates    int `json:"candidates"`     // candidate records scored, summed over the batch
}

// MatchBatch matches a batch of new records against the patients of src,
// asking src once for all the batch's keys. Records of the batch are not
// matched with each other: deduplicate the batch first (Link), or add each
// new patient to the source before matching the next record.
func (m *Matcher) MatchBatch(ctx context.Context, recs []Record, src CandidateSource) ([]Decision, *BatchReport, error) {
	keys := make([][]string, len(recs))
	all := map[string]bool{}
	for i, r := range recs {
		keys[i] = m.BlockingKeys(r)
		for _, k := range keys[i] {
			all[k] = true
		}
	}
	list := make([]string, 0, len(all))
	for k := range all {
		list = append(list, k)
	}
	slices.Sort(list)
	set, err := src.Candidates(ctx, list, m.c.maxBlock)
	if err != nil {
		return nil, nil, fmt.Errorf("match: finding candidates: %w", err)
	}
	rep := &BatchReport{Keys: len(list), OversizedKeys: len(set.Oversized)}
	out := make([]Decision, len(recs))
	var mu sync.Mutex
	var wg sync.WaitGroup
	next := make(chan int)
	for range workers(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				type ck struct {
					pid int64
					id  string
				}
				seen := map[ck]bool{}
				var cands []Candidate
				for _, k := range keys[i] {
					if _, big := set.Oversized[k]; big {
						continue
					}
					for _, c := range set.ByKey[k] {
						if x := (ck{c.PatientID, c.Record.ID}); !seen[x] {
							seen[x] = true
							cands = append(cands, c)
						}
					}
				}
				out[i] = m.Match(ctx, recs[i], cands)
				mu.Lock()
				rep.Candidates += len(cands)
				mu.Unlock()
			}
		}()
	}
	for i := range recs {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	return out, rep, nil
}

// Index is an in-memory CandidateSource: a map from blocking key to the
// records filed under it. It shows what a store persists (one row per
// key, patient and record, plus each record's matching fields) and serves
// tests and small regions; a region's store implements CandidateSource
// itself.
type Index struct {
	m     *Matcher
	mu    sync.RWMutex
	byKey map[string][]Candidate
}

// NewIndex returns an empty index filing records under m's keys.
func NewIndex(m *Matcher) *Index {
	return &Index{m: m, byKey: map[string][]Candidate{}}
}

// Add files a patient's record under its keys.
func (x *Index) Add(patientID int64, r Record) {
	keys := x.m.BlockingKeys(r)
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, k := range keys {
		x.byKey[k] = append(x.byKey[k], Candidate{PatientID: patientID, Record: r})
	}
}

// Candidates implements CandidateSource.
func (x *Index) Candidates(ctx context.Context, keys []string, limit int) (CandidateSet, error) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	set := CandidateSet{ByKey: map[string][]Candidate{}}
	for _, k := range keys {
		cs := x.byKey[k]
		if len(cs) > limit {
			if set.Oversized == nil {
				set.Oversized = map[string]int{}
			}
			set.Oversized[k] = len(cs)
			continue
		}
		if len(cs) > 0 {
			set.ByKey[k] = slices.Clone(cs)
		}
	}
	return set, ctx.Err()
}
