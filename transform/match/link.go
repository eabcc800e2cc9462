package match

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
)

// Threshold is a match probability (0 < p < 1) or, with Weight set, a
// match weight in bits.
type Threshold struct {
	Value  float64 `json:"value"`
	Weight bool    `json:"weight,omitempty"`
}

// Probability returns a threshold on the match probability.
func Probability(p float64) Threshold { return Threshold{Value: p} }

// Weight returns a threshold on the match weight (bits).
func Weight(w float64) Threshold { return Threshold{Value: w, Weight: true} }

func (t Threshold) bits() (float64, error) {
	if t.Weight {
		if math.IsNaN(t.Value) || math.IsInf(t.Value, 0) {
			return 0, fmt.Errorf("weight %v is not a number", t.Value)
		}
		return t.Value, nil
	}
	if !(t.Value > 0 && t.Value < 1) {
		return 0, fmt.Errorf("probability %v: want strictly between 0 and 1", t.Value)
	}
	return math.Log2(t.Value / (1 - t.Value)), nil
}

// Thresholds decide what a scored pair becomes: a pair at or above
// AutoLink links automatically (unless a safety rule holds it back); one
// at or above Review but below AutoLink goes to clerical review; the rest
// are different people.
type Thresholds struct {
	AutoLink Threshold `json:"auto_link"`
	Review   Threshold `json:"review"`
	// NHSDemographicsMin is the least demographic evidence (bits, every
	// field but the NHS number, no prior) that a pair sharing an NHS number
	// must have to link; below it the pair goes to review whatever its
	// weight, as a possible NHS number keying or tracing error.
	NHSDemographicsMin float64 `json:"nhs_demographics_min"`
}

// DefaultThresholds links at a match probability of 0.99 and reviews from
// 0.5; a shared NHS number needs demographic evidence of at least 0 bits
// (no more against than for).
func DefaultThresholds() Thresholds {
	return Thresholds{AutoLink: Probability(0.99), Review: Probability(0.5)}
}

type thresholdWeights struct {
	auto, review       float64
	nhsDemographicsMin float64
}

func (t Thresholds) weights() (*thresholdWeights, error) {
	a, err := t.AutoLink.bits()
	if err != nil {
		return nil, fmt.Errorf("match: auto-link threshold: %w", err)
	}
	r, err := t.Review.bits()
	if err != nil {
		return nil, fmt.Errorf("match: review threshold: %w", err)
	}
	if r > a {
		return nil, errors.New("match: the review threshold is above the auto-link threshold")
	}
	return &thresholdWeights{auto: a, review: r, nhsDemographicsMin: t.NHSDemographicsMin}, nil
}

// pair outcomes
const (
	outNone = iota
	outReview
	outLink
)

// review reasons
const (
	whyDifferentNHS = 1 << iota
	whyPlaceholder
	whyNHSConflict
	whyBand
	whyClusterNHS
	whyAmbiguous
)

// classify applies the thresholds and the safety rules to a scored pair
// and returns its outcome and, for a review, why.
func (t *thresholdWeights) classify(w, demo float64, flags uint8) (int, uint8) {
	var why uint8
	if flags&pairSameNHS != 0 && demo < t.nhsDemographicsMin {
		why |= whyNHSConflict
	}
	if w >= t.auto {
		if flags&pairDifferentNHS != 0 {
			why |= whyDifferentNHS
		}
		if flags&pairPlaceholder != 0 {
			why |= whyPlaceholder
		}
		if why != 0 {
			return outReview, why
		}
		return outLink, 0
	}
	if w >= t.review {
		return outReview, why | whyBand
	}
	if why != 0 {
		return outReview, why
	}
	return outNone, 0
}

// reasonNames turns review reason bits into Caution… names.
func reasonNames(why uint8) []string {
	var out []string
	for _, r := range []struct {
		bit  uint8
		name string
	}{
		{whyDifferentNHS, CautionDifferentNHS}, {whyPlaceholder, CautionPlaceholder},
		{whyNHSConflict, CautionNHSConflict}, {whyClusterNHS, CautionClusterNHS},
		{whyAmbiguous, CautionAmbiguous}, {whyBand, CautionReviewBand},
	} {
		if why&r.bit != 0 {
			out = append(out, r.name)
		}
	}
	return out
}

// Result is the outcome of linking a set of records.
type Result struct {
	// Clusters are the groups of two or more records linked
	// automatically, largest first. Records in no cluster are on their own.
	Clusters []Cluster `json:"clusters"`
	// Review lists pairs for clerical review whose records did not end up
	// in the same cluster, highest weight first.
	Review []Pair `json:"review"`
	Stats  Stats  `json:"stats"`
}

// Cluster is a group of records of one person.
type Cluster struct {
	Records []int    `json:"records"` // positions in the input, ascending
	IDs     []string `json:"ids"`     // the records' IDs, in the same order
}

// Pair is a scored pair of records.
type Pair struct {
	A           int      `json:"a"` // positions in the input, A < B
	B           int      `json:"b"`
	AID         string   `json:"a_id"` // the records' IDs
	BID         string   `json:"b_id"`
	Weight      float64  `json:"weight"`      // match weight (bits)
	Probability float64  `json:"probability"` // match probability
	Reasons     []string `json:"reasons"`     // why it is held for review (Caution… constants)
}

// Stats describe a linking run.
type Stats struct {
	Records  int         `json:"records"`
	Compared int64       `json:"compared"` // distinct candidate pairs scored
	Linked   int         `json:"linked"`   // pairs that linked (union-find merges)
	Rules    []RuleStats `json:"rules"`
}

// RuleStats describe one blocking rule's part in a run. Giant blocks are
// reported by size only: their keys are patient data.
type RuleStats struct {
	Rule          string `json:"rule"`
	Keyed         int    `json:"keyed"`          // records with a key under the rule
	Blocks        int    `json:"blocks"`         // blocks of two or more records compared
	Pairs         int64  `json:"pairs"`          // pairs in those blocks (before removing pairs found by earlier rules)
	Compared      int64  `json:"compared"`       // pairs first found by this rule and scored
	SkippedBlocks []int  `json:"skipped_blocks"` // sizes of the blocks larger than MaxBlock, not compared
	SkippedPairs  int64  `json:"skipped_pairs"`
}

// LinkOptions tune Link.
type LinkOptions struct {
	Workers int // goroutines comparing blocks; default GOMAXPROCS
}

// Link deduplicates a stream of records under a model: it blocks them with
// the model's rules, scores every candidate pair, links pairs at or above
// the auto-link threshold into clusters (union-find, strongest pairs
// first, never joining two different NHS numbers) and reports the pairs in
// the review band. Memory is the prepared dataset (about 100 bytes a
// record) plus one rule's index at a time; LinkOnDisk gives the same
// result in a fraction of that.
func Link(ctx context.Context, recs Records, model *Model, th Thresholds) (*Result, error) {
	d, err := NewDataset(ctx, recs)
	if err != nil {
		return nil, err
	}
	return d.Link(ctx, model, th, LinkOptions{})
}

type scoredPair struct {
	i, j uint32
	w    float32
	out  uint8
	why  uint8
}

// Link is Link over a prepared dataset.
func (d *Dataset) Link(ctx context.Context, model *Model, th Thresholds, opts LinkOptions) (*Result, error) {
	c, tw, err := compileWith(model, th)
	if err != nil {
		return nil, err
	}
	pl := &pairLinker{s: newScorer(c, d, true), tw: tw}
	nw := workers(opts.Workers)
	x := newRuleIndex(d, c.rules)
	res := &Result{Stats: Stats{Records: d.Len()}}
	found := make([][]scoredPair, nw)
	compared := make([]int64, nw)
	caches := make([]*cmpCache, nw)
	scratch := make([][]byte, nw)
	for w := range caches {
		caches[w] = newCmpCache()
	}
	for r := range c.rules {
		bs := buildBlocks(x, r, c.maxBlock)
		x.giant[r] = bs.giant
		before := sum(compared)
		err := eachBlock(ctx, bs, nw, func(w int, block []uint32) error {
			out := found[w]
			n := int64(0)
			for bi, i := range block {
				a := d.row(i)
				for _, j := range block[bi+1:] {
					if r > 0 && x.comparedBefore(i, j, r, &scratch[w]) {
						continue
					}
					n++
					out = pl.score(d, a, d.row(j), i, j, caches[w], out)
				}
			}
			found[w] = out
			compared[w] += n
			return nil
		})
		if err != nil {
			return nil, err
		}
		res.Stats.Rules = append(res.Stats.Rules, ruleStats(c.rules[r].name, bs, sum(compared)-before))
	}
	res.Stats.Compared = sum(compared)
	err = cluster(d.Len(), slices.Concat(found...), tw, res,
		func(i uint32) (uint64, error) { return d.row(i).nhs, nil },
		func(i int) (string, error) { return d.ID(i), nil })
	return res, err
}

// compileWith checks and compiles a model and its thresholds.
func compileWith(model *Model, th Thresholds) (*compiled, *thresholdWeights, error) {
	c, err := model.compile()
	if err != nil {
		return nil, nil, err
	}
	tw, err := th.weights()
	if err != nil {
		return nil, nil, err
	}
	return c, tw, nil
}

// pairLinker scores candidate pairs and keeps those that link or go to
// review.
type pairLinker struct {
	s  *scorer
	tw *thresholdWeights
}

// score compares rows a and b of d, records i and j of the input, and
// appends the pair to out when it links or goes to review.
func (pl *pairLinker) score(d *Dataset, a, b *row, i, j uint32, cc *cmpCache, out []scoredPair) []scoredPair {
	g, flags := d.compare(a, b, cc)
	wt, demo := pl.s.weights(a, b, &g)
	if o, why := pl.tw.classify(wt, demo, flags); o != outNone {
		out = append(out, scoredPair{i: min(i, j), j: max(i, j), w: float32(wt), out: uint8(o), why: why})
	}
	return out
}

// ruleStats describes one rule's blocks and the pairs it compared first.
func ruleStats(name string, bs *blockSet, compared int64) RuleStats {
	rs := RuleStats{Rule: name, Keyed: bs.keyed, Blocks: bs.blockCount(), Pairs: bs.pairs,
		Compared: compared, SkippedPairs: bs.skipped}
	for _, size := range bs.giant {
		rs.SkippedBlocks = append(rs.SkippedBlocks, size)
	}
	slices.SortFunc(rs.SkippedBlocks, func(a, b int) int { return cmp.Compare(b, a) })
	return rs
}

func sum(xs []int64) int64 {
	var t int64
	for _, x := range xs {
		t += x
	}
	return t
}

// cluster links the scored pairs of n records with union-find, strongest
// first, and fills the result's clusters and review list. nhsOf and idOf
// give a record's NHS number (0 none) and id; nhsOf is asked only about
// records of pairs that link.
func cluster(n int, pairs []scoredPair, tw *thresholdWeights, res *Result,
	nhsOf func(uint32) (uint64, error), idOf func(int) (string, error)) error {
	slices.SortFunc(pairs, func(a, b scoredPair) int {
		if c := cmp.Compare(b.w, a.w); c != 0 {
			return c
		}
		if c := cmp.Compare(a.i, b.i); c != 0 {
			return c
		}
		return cmp.Compare(a.j, b.j)
	})
	uf := newUnionFind(n)
	nhs := map[uint32]uint64{} // root → the cluster's NHS number, for clusters that have one
	for _, p := range pairs {
		if p.out != outLink {
			continue
		}
		for _, i := range [2]uint32{p.i, p.j} {
			v, err := nhsOf(i)
			if err != nil {
				return err
			}
			if v != 0 {
				nhs[i] = v
			}
		}
	}
	var review []scoredPair
	for _, p := range pairs {
		if p.out != outLink {
			review = append(review, p)
			continue
		}
		ra, rb := uf.find(p.i), uf.find(p.j)
		if ra == rb {
			continue
		}
		na, nb := nhs[ra], nhs[rb]
		if na != 0 && nb != 0 && na != nb {
			p.out, p.why = outReview, whyClusterNHS
			review = append(review, p)
			continue
		}
		root := uf.union(ra, rb)
		res.Stats.Linked++
		if na == 0 {
			na = nb
		}
		delete(nhs, ra)
		delete(nhs, rb)
		if na != 0 {
			nhs[root] = na
		}
	}
	for _, p := range review {
		if uf.find(p.i) == uf.find(p.j) {
			continue
		}
		a, err := idOf(int(p.i))
		if err != nil {
			return err
		}
		b, err := idOf(int(p.j))
		if err != nil {
			return err
		}
		res.Review = append(res.Review, Pair{A: int(p.i), B: int(p.j), AID: a, BID: b,
			Weight: float64(p.w), Probability: probability(float64(p.w)), Reasons: reasonNames(p.why)})
	}
	// the clusters: records that joined another, grouped by root
	var members []uint64 // root<<32 | record
	for i := range uint32(n) {
		if uf.joined(i) {
			members = append(members, uint64(uf.find(i))<<32|uint64(i))
		}
	}
	slices.Sort(members)
	for lo := 0; lo < len(members); {
		hi := lo + 1
		for hi < len(members) && members[hi]>>32 == members[lo]>>32 {
			hi++
		}
		cl := Cluster{Records: make([]int, hi-lo), IDs: make([]string, hi-lo)}
		for k, m := range members[lo:hi] {
			cl.Records[k] = int(uint32(m))
			id, err := idOf(cl.Records[k])
			if err != nil {
				return err
			}
			cl.IDs[k] = id
		}
		res.Clusters = append(res.Clusters, cl)
		lo = hi
	}
	slices.SortFunc(res.Clusters, func(a, b Cluster) int {
		if c := cmp.Compare(len(b.Records), len(a.Records)); c != 0 {
			return c
		}
		return cmp.Compare(a.Records[0], b.Records[0])
	})
	return nil
}

// unionFind is a disjoint-set forest over row ordinals, joined by rank:
// five bytes a record.
type unionFind struct {
	parent []uint32
	rank   []uint8
}

func newUnionFind(n int) *unionFind {
	u := &unionFind{parent: make([]uint32, n), rank: make([]uint8, n)}
	for i := range u.parent {
		u.parent[i] = uint32(i)
	}
	return u
}

func (u *unionFind) find(x uint32) uint32 {
	for u.parent[x] != x {
		u.parent[x] = u.parent[u.parent[x]]
		x = u.parent[x]
	}
	return x
}

// union joins the sets of roots a and b and returns the new root.
func (u *unionFind) union(a, b uint32) uint32 {
	if u.rank[a] < u.rank[b] {
		a, b = b, a
	}
	u.parent[b] = a
	if u.rank[a] == u.rank[b] {
		u.rank[a]++
	}
	return a
}

// joined reports whether x is in a set of more than one: a root that
// absorbed another has a rank above zero.
func (u *unionFind) joined(x uint32) bool { return u.parent[x] != x || u.rank[x] > 0 }
