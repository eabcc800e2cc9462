package match

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
)

// EstimateOptions tune Estimate. The zero value uses the defaults.
type EstimateOptions struct {
	// Start gives the starting parameters, the fields to compare (those
	// present in Start.Fields), TF settings and MaxBlock. Default
	// DefaultModel().
	Start *Model
	// Blocking rules for the candidate pairs EM learns from, kept in the
	// estimated model. Default Start.Blocking, or DefaultBlocking().
	Blocking []BlockingRule
	// RandomPairs is how many random pairs u is estimated from (all pairs
	// when there are fewer). Default 2,000,000.
	RandomPairs int
	// MaxPairsPerRule caps the pairs EM takes from one rule (a uniform
	// sample of them). Default 2,000,000.
	MaxPairsPerRule int
	// MaxIterations bounds each EM run. Default 100.
	MaxIterations int
	// Seed makes the random sampling repeatable. Default 1.
	Seed uint64
	// TFValues is the most values a term-frequency table keeps. Default
	// 10,000.
	TFValues int
	// Workers comparing pairs; default GOMAXPROCS.
	Workers int
}

// EstimateReport says how an estimate was reached.
type EstimateReport struct {
	Records       int          `json:"records"`
	RandomPairs   int64        `json:"random_pairs"`
	Rules         []RuleReport `json:"rules"`
	ExpectedLinks float64      `json:"expected_links"` // matching pairs among the candidates, estimated
}

// RuleReport describes the EM run on one blocking rule's pairs.
type RuleReport struct {
	Rule          string  `json:"rule"`
	Pairs         int64   `json:"pairs"`          // candidate pairs of the rule
	Sampled       int64   `json:"sampled"`        // pairs EM used
	Iterations    int     `json:"iterations"`     // EM iterations until convergence
	MatchShare    float64 `json:"match_share"`    // estimated share of matches among the rule's pairs
	SkippedBlocks []int   `json:"skipped_blocks"` // sizes of blocks over MaxBlock
}

// Estimate learns a model from unlabelled records (Fellegi–Sunter by
// expectation–maximisation, as Splink does):
//
//  1. u, the chance of each level among non-matches, from random pairs;
//  2. m, its chance among matches, by EM on each blocking rule's candidate
//     pairs in turn, with u held fixed and leaving out the fields the rule
//     blocks on (its pairs agree on them by construction); each field's m
//     is the average over the rules that could estimate it, weighted by
//     their expected matches;
//  3. u again, discounting random pairs that are likely matches (which
//     matters in small files, where random pairs include many matches);
//  4. the prior, from the expected number of matches among all candidate
//     pairs (each counted under the first rule that finds it);
//  5. term-frequency tables of the most common values.
//
// Steps 2 and 3 alternate twice. The records are read once.
func Estimate(ctx context.Context, recs Records, opts EstimateOptions) (*Model, *EstimateReport, error) {
	d, err := NewDataset(ctx, recs)
	if err != nil {
		return nil, nil, err
	}
	return d.Estimate(ctx, opts)
}

// pattern packs a comparison vector (4 bits a field) and a rule mask
// (bits 48 and up).
type pattern uint64

func packPattern(g *gamma, mask uint16) pattern {
	var p uint64
	for f := range numFields {
		p |= uint64(g[f]) << (4 * f)
	}
	return pattern(p | uint64(mask)<<48)
}

func (p pattern) level(f int) uint8 { return uint8(p>>(4*f)) & 15 }
func (p pattern) mask() uint16      { return uint16(p >> 48) }

// Estimate is Estimate over a prepared dataset.
func (d *Dataset) Estimate(ctx context.Context, opts EstimateOptions) (*Model, *EstimateReport, error) {
	start := opts.Start
	if start == nil {
		start = DefaultModel()
	}
	model := start.Clone()
	if opts.Blocking != nil {
		model.Blocking = opts.Blocking
	}
	if len(model.Blocking) == 0 {
		model.Blocking = DefaultBlocking()
	}
	model.TermFrequencies = nil
	c, err := model.compile()
	if err != nil {
		return nil, nil, err
	}
	if opts.RandomPairs <= 0 {
		opts.RandomPairs = 2_000_000
	}
	if opts.MaxPairsPerRule <= 0 {
		opts.MaxPairsPerRule = 2_000_000
	}
	if opts.MaxIterations <= 0 {
		opts.MaxIterations = 100
	}
	if opts.Seed == 0 {
		opts.Seed = 1
	}
	if opts.TFValues <= 0 {
		opts.TFValues = 10_000
	}
	nw := workers(opts.Workers)
	n := d.Len()
	rep := &EstimateReport{Records: n}
	if n < 2 {
		return nil, nil, fmt.Errorf("match: estimate needs at least two records, got %d", n)
	}

	// 1. u from random pairs.
	random, err := d.randomPatterns(ctx, opts.RandomPairs, opts.Seed, nw)
	if err != nil {
		return nil, nil, err
	}
	for _, cnt := range random {
		rep.RandomPairs += int64(cnt)
	}
	c.u = uFromPatterns(c, random, nil)

	// Candidate patterns per rule.
	x := newRuleIndex(d, c.rules)
	perRule := make([]map[pattern]float64, len(c.rules))
	for r := range c.rules {
		bs := buildBlocks(x, r, c.maxBlock)
		x.giant[r] = bs.giant
		pats, sampled, err := d.rulePatterns(ctx, bs, x, opts.MaxPairsPerRule, opts.Seed+uint64(r), nw)
		if err != nil {
			return nil, nil, err
		}
		perRule[r] = pats
		rr := RuleReport{Rule: c.rules[r].name, Pairs: bs.pairs, Sampled: sampled}
		for _, size := range bs.giant {
			rr.SkippedBlocks = append(rr.SkippedBlocks, size)
		}
		rep.Rules = append(rep.Rules, rr)
	}

	lambda := c.lambda
	m0 := c.m
	for round := 0; round < 2; round++ {
		// 2. m by EM per rule.
		var mSum [numFields][maxLevels]float64
		var wSum [numFields]float64
		var expected float64
		for r := range c.rules {
			if len(perRule[r]) == 0 {
				continue
			}
			exclude := c.rules[r].fields
			m, share, iters := em(c, perRule[r], exclude, c.m, m0, opts.MaxIterations)
			rep.Rules[r].Iterations = iters
			rep.Rules[r].MatchShare = share
			matches := share * float64(rep.Rules[r].Pairs)
			for f := range numFields {
				if exclude&(1<<f) != 0 || !c.enabled[f] {
					continue
				}
				for l := range maxLevels {
					mSum[f][l] += matches * m[f][l]
				}
				wSum[f] += matches
			}
			// matches among this rule's pairs that no earlier rule finds
			expected += firstRuleMatches(c, perRule[r], r, m, share) * float64(rep.Rules[r].Pairs) / math.Max(1, float64(rep.Rules[r].Sampled))
		}
		for f := range numFields {
			if wSum[f] > 0 {
				for l := 1; l < len(fieldDefs[f].levels); l++ {
					c.m[f][l] = mSum[f][l] / wSum[f]
				}
			}
		}
		// 4. The prior.
		total := float64(n) * float64(n-1) / 2
		if expected > 0 {
			lambda = math.Min(expected/total, 0.5)
		}
		rep.ExpectedLinks = expected
		c.lambda = lambda
		c.prior = math.Log2(lambda / (1 - lambda))
		// 3. u without the likely matches among random pairs.
		c.u = uFromPatterns(c, random, c)
	}
	for f := range numFields {
		for l := 1; l < len(fieldDefs[f].levels); l++ {
			c.m[f][l] = math.Max(c.m[f][l], 1e-6)
			c.u[f][l] = math.Max(c.u[f][l], 1e-9)
		}
	}
	model.Prior = round6(lambda)
	c.levelsInto(model)
	model.TermFrequencies = d.tables(opts.TFValues)
	for name := range model.TermFrequencies {
		if fp, ok := model.Fields[name]; !ok || !fp.TermFrequency {
			delete(model.TermFrequencies, name)
		}
	}
	if err := model.Validate(); err != nil {
		return nil, nil, err
	}
	return model, rep, nil
}

// randomPatterns compares random pairs (every pair when there are fewer
// than k) and counts their patterns.
func (d *Dataset) randomPatterns(ctx context.Context, k int, seed uint64, nw int) (map[pattern]float64, error) {
	n := d.Len()
	all := int64(n) * int64(n-1) / 2
	out := map[pattern]float64{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errc := make(chan error, nw)
	for w := range nw {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := map[pattern]float64{}
			cc := newCmpCache()
			add := func(i, j int) {
				g, _ := d.compare(d.row(uint32(i)), d.row(uint32(j)), cc)
				local[packPattern(&g, 0)]++
			}
			if all <= int64(k) {
				for i := w; i < n; i += nw {
					if i%256 == w && ctx.Err() != nil {
						errc <- ctx.Err()
						return
					}
					for j := i + 1; j < n; j++ {
						add(i, j)
					}
				}
			} else {
				rng := rand.New(rand.NewPCG(seed, uint64(w)+1))
				per := k / nw
				for t := 0; t < per; t++ {
					if t%65536 == 0 && ctx.Err() != nil {
						errc <- ctx.Err()
						return
					}
					i := rng.IntN(n)
					j := rng.IntN(n - 1)
					if j >= i {
						j++
					}
					add(i, j)
				}
			}
			mu.Lock()
			for p, c := range local {
				out[p] += c
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return nil, err
	}
	return out, nil
}

// rulePatterns counts the patterns (with rule masks) of a rule's pairs, a
// uniform sample of at most max of them.
func (d *Dataset) rulePatterns(ctx context.Context, bs *blockSet, x *ruleIndex, max int, seed uint64, nw int) (map[pattern]float64, int64, error) {
	keep := uint64(math.MaxUint64)
	if bs.pairs > int64(max) {
		keep = uint64(float64(math.MaxUint64) * (float64(max) / float64(bs.pairs)))
	}
	locals := make([]map[pattern]float64, nw)
	sampled := make([]int64, nw)
	caches := make([]*cmpCache, nw)
	scratch := make([][]byte, nw)
	for w := range locals {
		locals[w] = map[pattern]float64{}
		caches[w] = newCmpCache()
	}
	err := eachBlock(ctx, bs, nw, func(w int, block []uint32) error {
		local := locals[w]
		for bi, i := range block {
			for _, j := range block[bi+1:] {
				if keep != math.MaxUint64 && mix(seed, i, j) > keep {
					continue
				}
				g, _ := d.compare(d.row(i), d.row(j), caches[w])
				local[packPattern(&g, x.mask(i, j, &scratch[w]))]++
				sampled[w]++
			}
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	out := locals[0]
	for _, l := range locals[1:] {
		for p, c := range l {
			out[p] += c
		}
	}
	return out, sum(sampled), nil
}

// mix hashes a pair for sampling (splitmix64).
func mix(seed uint64, i, j uint32) uint64 {
	a, b := min(i, j), max(i, j)
	z := seed ^ (uint64(a)<<32 | uint64(b))
	z += 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// uFromPatterns estimates u from random-pair patterns. With post set, each
// pattern counts by its posterior probability of being a non-match under
// post's parameters.
func uFromPatterns(c *compiled, random map[pattern]float64, post *compiled) [numFields][maxLevels]float64 {
	var counts [numFields][maxLevels]float64
	for p, cnt := range random {
		if post != nil {
			cnt *= 1 - posterior(post, p, 0, post.lambda)
		}
		for f := range numFields {
			counts[f][p.level(f)] += cnt
		}
	}
	u := c.u
	for f := range numFields {
		L := len(fieldDefs[f].levels) - 1
		present := 0.0
		for l := 1; l <= L; l++ {
			present += counts[f][l]
		}
		if present < 1 {
			continue // the field is never present: keep the start values
		}
		for l := 1; l <= L; l++ {
			u[f][l] = (counts[f][l] + 0.5) / (present + 0.5*float64(L))
		}
	}
	return u
}

// posterior returns the probability that pattern p is a match, with the
// fields in exclude left out.
func posterior(c *compiled, p pattern, exclude uint16, lambda float64) float64 {
	a, b := lambda, 1-lambda
	for f := range numFields {
		if exclude&(1<<f) != 0 || !c.enabled[f] {
			continue
		}
		if l := p.level(f); l != 0 {
			a *= c.m[f][l]
			b *= c.u[f][l]
		}
	}
	if a+b == 0 {
		return 0
	}
	return a / (a + b)
}

// em runs expectation–maximisation on one rule's patterns with u fixed,
// from m = init, smoothing m towards m0 by one pseudo-match, and returning m, the share of matches and the iterations used.
func em(c *compiled, pats map[pattern]float64, exclude uint16, init, m0 [numFields][maxLevels]float64, maxIter int) ([numFields][maxLevels]float64, float64, int) {
	type pc struct {
		p pattern
		c float64
	}
	list := make([]pc, 0, len(pats))
	var total float64
	for p, cnt := range pats {
		list = append(list, pc{p, cnt})
		total += cnt
	}
	cur := *c
	cur.m = init
	share := 0.05
	iter := 0
	for iter = 1; iter <= maxIter; iter++ {
		var mc [numFields][maxLevels]float64
		var matches float64
		for _, x := range list {
			post := posterior(&cur, x.p, exclude, share) * x.c
			matches += post
			for f := range numFields {
				if l := x.p.level(f); l != 0 {
					mc[f][l] += post
				}
			}
		}
		newShare := math.Min(math.Max(matches/total, 1e-9), 1-1e-9)
		change := math.Abs(newShare - share)
		share = newShare
		for f := range numFields {
			if exclude&(1<<f) != 0 || !cur.enabled[f] {
				continue
			}
			L := len(fieldDefs[f].levels) - 1
			present := 0.0
			for l := 1; l <= L; l++ {
				present += mc[f][l]
			}
			if present < 1e-9 {
				continue
			}
			for l := 1; l <= L; l++ {
				// one pseudo-match spread as the start values, against zeros
				v := (mc[f][l] + m0[f][l]) / (present + 1)
				change = math.Max(change, math.Abs(v-cur.m[f][l]))
				cur.m[f][l] = v
			}
		}
		if change < 1e-6 {
			break
		}
	}
	return cur.m, share, min(iter, maxIter)
}

// firstRuleMatches returns the expected matches among the sampled pairs
// of rule r that no earlier rule finds.
func firstRuleMatches(c *compiled, pats map[pattern]float64, r int, m [numFields][maxLevels]float64, share float64) float64 {
	cur := *c
	cur.m = m
	earlier := uint16(1)<<r - 1
	exclude := c.rules[r].fields
	var e float64
	for p, cnt := range pats {
		if p.mask()&earlier != 0 {
			continue
		}
		e += cnt * posterior(&cur, p, exclude, share)
	}
	return e
}
