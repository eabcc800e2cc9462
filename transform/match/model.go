package match

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
)

// Model is a Fellegi–Sunter match model: for each compared field, the
// probability of each comparison level among true matches (m) and among
// non-matches (u); the prior probability that two records picked at random
// are the same person; term-frequency tables for common values; and the
// blocking rules that pick the pairs worth comparing. A Model is plain
// data: it marshals to and from JSON, so it can be estimated once
// (Estimate), reviewed, kept in configuration and loaded by the nightly
// job. DefaultModel gives hand-set starting values.
//
// A pair's match weight is log2(Prior/(1−Prior)) plus, for every field
// where both records have a value, log2(m/u) of the level the pair falls
// in; its match probability is 2^w / (1 + 2^w).
type Model struct {
	// Prior is the probability that two records drawn at random refer to
	// the same person (λ). It depends on how many records the population
	// has: for a region of a million people with three records each it is
	// around 1e-6.
	Prior float64 `json:"prior"`

	// Fields maps a field name (nhs_number, family_name, given_name,
	// date_of_birth, sex, postcode, address, gp_practice, email, phone) to
	// its parameters. A field that is absent is not compared.
	Fields map[string]FieldParams `json:"fields"`

	// TermFrequencies are value-frequency tables by field name, for the
	// fields with TermFrequency set. Estimate fills them from the data;
	// without a table, Link uses the frequencies of the records it links
	// and Match makes no adjustment.
	TermFrequencies map[string]*TermFrequencies `json:"term_frequencies,omitempty"`

	// TFMinBits and TFMaxBits bound the term-frequency adjustment of an
	// exact agreement, in bits: log2(u / frequency of the value). The
	// defaults (−8, 0) make common values count for less and leave rare
	// ones at the field's average weight.
	TFMinBits float64 `json:"tf_min_bits"`
	TFMaxBits float64 `json:"tf_max_bits"`

	// Blocking lists the rules whose keys pick the candidate pairs: two
	// records are compared when they share the key of at least one rule.
	Blocking []BlockingRule `json:"blocking"`

	// MaxBlock is the largest block compared: a key shared by more records
	// than this (a placeholder date, a care home's postcode) is skipped and
	// reported, so that cost stays near linear. Default 1000.
	MaxBlock int `json:"max_block"`
}

// FieldParams holds a field's level probabilities.
type FieldParams struct {
	// Levels maps level names (see Levels) to their m and u
	// probabilities. Every non-null level of the field must be present.
	Levels map[string]LevelParams `json:"levels"`
	// TermFrequency turns on the term-frequency adjustment of the exact
	// level (family_name, given_name, date_of_birth and postcode only).
	TermFrequency bool `json:"term_frequency,omitempty"`
}

// LevelParams are the probabilities of a comparison level among matches
// (M) and among non-matches (U), both in (0, 1].
type LevelParams struct {
	M float64 `json:"m"`
	U float64 `json:"u"`
}

// Fields returns the names of the fields a model can compare, in order.
func Fields() []string {
	out := make([]string, numFields)
	for f := range numFields {
		out[f] = fieldDefs[f].name
	}
	return out
}

// Levels returns the comparison levels of a field, strongest agreement
// first and "null" (a value missing on either side) omitted; nil for an
// unknown field.
//
//	nhs_number, sex, gp_practice, phone: exact, different
//	family_name, given_name: exact, jw92 (Jaro–Winkler ≥ 0.92), jw80 (≥ 0.80,
//	    or a word in common), phonetic (same NYSIIS code), letters (names of
//	    four or more letters at most one letter apart in any order: bag
//	    distance ≤ 1), swapped (family and given names the wrong way
//	    round), different
//	date_of_birth: exact, transposed (day and month swapped), one_component
//	    (only day, month or year differ), within_month (at most 31 days
//	    apart), within_year, within_10_years (birth years at most ten
//	    apart), different
//	postcode: full, sector, district, different (opaque codes: full, sector
//	    meaning one keying error apart, different)
//	address: exact (same words), high (Dice ≥ 0.66), some (a word in common),
//	    different
//	email: exact, near (Jaro–Winkler ≥ 0.88), different
func Levels(field string) []string {
	f := fieldIndex(field)
	if f < 0 {
		return nil
	}
	return slices.Clone(fieldDefs[f].levels[1:])
}

func fieldIndex(name string) int {
	for f := range numFields {
		if fieldDefs[f].name == name {
			return f
		}
	}
	return -1
}

// DefaultModel returns hand-set parameters for a UK region of about a
// million people: u from population frequencies (a date of birth is shared
// by about 1 in 30,000 pairs, a full postcode by about 1 in 20,000, a
// surname by about 1 in 300), m from typical keying error rates. They are
// a starting point for Estimate and a fallback when there is too little
// data to estimate from.
func DefaultModel() *Model {
	p := func(m, u float64) LevelParams { return LevelParams{M: m, U: u} }
	return &Model{
		Prior: 1e-6,
		Fields: map[string]FieldParams{
			"nhs_number": {Levels: map[string]LevelParams{
				"exact": p(0.98, 1e-6), "different": p(0.02, 1)}},
			"family_name": {TermFrequency: true, Levels: map[string]LevelParams{
				"exact": p(0.86, 0.003), "jw92": p(0.05, 0.002), "jw80": p(0.04, 0.02),
				"phonetic": p(0.01, 0.005), "letters": p(0.005, 0.0003), "swapped": p(0.01, 0.0002), "different": p(0.025, 0.97)}},
			"given_name": {TermFrequency: true, Levels: map[string]LevelParams{
				"exact": p(0.85, 0.008), "jw92": p(0.05, 0.003), "jw80": p(0.05, 0.03),
				"phonetic": p(0.01, 0.01), "letters": p(0.005, 0.0005), "swapped": p(0.01, 0.0002), "different": p(0.025, 0.95)}},
			"date_of_birth": {Levels: map[string]LevelParams{
				"exact": p(0.93, 3e-5), "transposed": p(0.01, 1e-5), "one_component": p(0.04, 0.004),
				"within_month": p(0.004, 0.0015), "within_year": p(0.006, 0.0105), "within_10_years": p(0.006, 0.25), "different": p(0.004, 0.73)}},
			"sex": {Levels: map[string]LevelParams{
				"exact": p(0.98, 0.5), "different": p(0.02, 0.5)}},
			"postcode": {TermFrequency: true, Levels: map[string]LevelParams{
				"full": p(0.75, 5e-5), "sector": p(0.05, 5e-4), "district": p(0.05, 0.01),
				"different": p(0.15, 0.99)}},
			"address": {Levels: map[string]LevelParams{
				"exact": p(0.6, 1e-4), "high": p(0.2, 1e-3), "some": p(0.1, 0.05), "different": p(0.1, 0.95)}},
			"gp_practice": {Levels: map[string]LevelParams{
				"exact": p(0.8, 0.01), "different": p(0.2, 0.99)}},
			"email": {Levels: map[string]LevelParams{
				"exact": p(0.8, 1e-6), "near": p(0.1, 1e-5), "different": p(0.1, 1)}},
			"phone": {Levels: map[string]LevelParams{
				"exact": p(0.8, 1e-6), "different": p(0.2, 1)}},
		},
		TFMinBits: -8,
		TFMaxBits: 0,
		Blocking:  DefaultBlocking(),
		MaxBlock:  1000,
	}
}

// levelFallback names, for levels added after models were first kept
// (date_of_birth within_10_years and within_month, the names' letters), the
// level whose parameters a model without them uses: the level those pairs
// fell in before.
var levelFallback = map[string]string{"within_10_years": "different", "within_month": "within_year", "letters": "different"}

// Clone returns a deep copy of the model.
func (m *Model) Clone() *Model {
	b, err := json.Marshal(m)
	if err != nil {
		panic(err) // a Model always marshals
	}
	var c Model
	if err := json.Unmarshal(b, &c); err != nil {
		panic(err)
	}
	return &c
}

// Validate reports every problem with the model at once.
func (m *Model) Validate() error {
	_, err := m.compile()
	return err
}

// compiled is a model in the form the hot loops use.
type compiled struct {
	prior    float64 // log2 prior odds
	lambda   float64
	enabled  [numFields]bool
	m, u     [numFields][maxLevels]float64
	w        [numFields][maxLevels]float64 // log2(m/u); 0 at null
	tf       [numFields]bool
	tfMin    float64
	tfMax    float64
	tables   map[string]*TermFrequencies
	rules    []compiledRule
	maxBlock int
}

func (m *Model) compile() (*compiled, error) {
	var errs []error
	c := &compiled{tfMin: m.TFMinBits, tfMax: m.TFMaxBits, tables: m.TermFrequencies, maxBlock: m.MaxBlock}
	if !(m.Prior > 0 && m.Prior < 1) {
		errs = append(errs, fmt.Errorf("prior %v: want a probability strictly between 0 and 1", m.Prior))
	} else {
		c.lambda = m.Prior
		c.prior = math.Log2(m.Prior / (1 - m.Prior))
	}
	if c.tfMin > 0 || c.tfMax < 0 {
		errs = append(errs, fmt.Errorf("tf_min_bits %v and tf_max_bits %v: want min ≤ 0 ≤ max", c.tfMin, c.tfMax))
	}
	if c.maxBlock == 0 {
		c.maxBlock = 1000
	}
	if c.maxBlock < 2 {
		errs = append(errs, fmt.Errorf("max_block %d: want at least 2", m.MaxBlock))
	}
	names := make([]string, 0, len(m.Fields))
	for name := range m.Fields {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fp := m.Fields[name]
		f := fieldIndex(name)
		if f < 0 {
			errs = append(errs, fmt.Errorf("field %q: unknown (want one of %v)", name, Fields()))
			continue
		}
		c.enabled[f] = true
		if fp.TermFrequency {
			if !slices.Contains(tfFields, f) {
				errs = append(errs, fmt.Errorf("field %q: term_frequency is only for family_name, given_name, date_of_birth and postcode", name))
			}
			c.tf[f] = true
		}
		for lname := range fp.Levels {
			if !slices.Contains(fieldDefs[f].levels[1:], lname) {
				errs = append(errs, fmt.Errorf("field %q: unknown level %q (want %v)", name, lname, fieldDefs[f].levels[1:]))
			}
		}
		for l := 1; l < len(fieldDefs[f].levels); l++ {
			lname := fieldDefs[f].levels[l]
			lp, ok := fp.Levels[lname]
			if fb, has := levelFallback[lname]; !ok && has {
				// a model made before the level existed: the pairs it
				// holds were in the fallback level, and weigh as they did
				lp, ok = fp.Levels[fb]
			}
			switch {
			case !ok:
				errs = append(errs, fmt.Errorf("field %q: level %q missing", name, lname))
			case !(lp.M > 0 && lp.M <= 1) || !(lp.U > 0 && lp.U <= 1):
				errs = append(errs, fmt.Errorf("field %q level %q: m %v and u %v must be in (0, 1]", name, lname, lp.M, lp.U))
			default:
				c.m[f][l], c.u[f][l] = lp.M, lp.U
				c.w[f][l] = math.Log2(lp.M / lp.U)
			}
		}
	}
	for name := range m.TermFrequencies {
		if f := fieldIndex(name); f < 0 || !slices.Contains(tfFields, f) {
			errs = append(errs, fmt.Errorf("term_frequencies %q: not a term-frequency field", name))
		}
	}
	rules, err := compileRules(m.Blocking)
	if err != nil {
		errs = append(errs, err)
	}
	c.rules = rules
	if len(errs) > 0 {
		return nil, fmt.Errorf("match: invalid model: %w", errors.Join(errs...))
	}
	return c, nil
}

// levelsInto writes the m and u arrays back into a Model.
func (c *compiled) levelsInto(m *Model) {
	for f := range numFields {
		if !c.enabled[f] {
			continue
		}
		fp := m.Fields[fieldDefs[f].name]
		lv := map[string]LevelParams{}
		for l := 1; l < len(fieldDefs[f].levels); l++ {
			lv[fieldDefs[f].levels[l]] = LevelParams{M: round6(c.m[f][l]), U: round6(c.u[f][l])}
		}
		fp.Levels = lv
		m.Fields[fieldDefs[f].name] = fp
	}
}

// round6 keeps six significant digits, so that models read well as JSON.
func round6(x float64) float64 {
	if x == 0 {
		return 0
	}
	e := math.Floor(math.Log10(math.Abs(x)))
	p := math.Pow(10, 5-e)
	return math.Round(x*p) / p
}

// scorer scores pairs of one dataset under a compiled model.
type scorer struct {
	c   *compiled
	d   *Dataset
	tfs [numFields]*tfAdj
}

// tfAdj holds a field's term-frequency adjustments (bits) by dataset key:
// by name id for names, in a map otherwise.
type tfAdj struct {
	ids []float32
	m   map[uint64]float32
	def float32
}

func newScorer(c *compiled, d *Dataset, useDatasetTF bool) *scorer {
	s := &scorer{c: c, d: d}
	for _, f := range tfFields {
		if !c.tf[f] || !c.enabled[f] {
			continue
		}
		var t *tfLookup
		if tab := c.tables[fieldDefs[f].name]; tab != nil {
			t = d.tableTF(f, tab)
		} else if useDatasetTF {
			t = d.datasetTF(f)
		}
		if t == nil {
			continue
		}
		adj := func(freq float64) float32 {
			if freq <= 0 {
				return 0
			}
			return float32(min(max(math.Log2(c.u[f][1]/freq), c.tfMin), c.tfMax))
		}
		a := &tfAdj{def: adj(t.def)}
		if n := len(d.names); f == fFamily || f == fGiven || f == fPostcode {
			if f == fPostcode {
				n = len(d.pcs)
			}
			a.ids = make([]float32, n)
			for i := range a.ids {
				a.ids[i] = a.def
			}
			for k, freq := range t.freq {
				if k < uint64(len(a.ids)) {
					a.ids[k] = adj(freq)
				}
			}
		} else {
			a.m = make(map[uint64]float32, len(t.freq))
			for k, freq := range t.freq {
				if v := adj(freq); v != a.def {
					a.m[k] = v
				}
			}
		}
		s.tfs[f] = a
	}
	return s
}

// tfAdjust returns the term-frequency adjustment (bits) of field f's exact
// agreement on the value with dataset key k.
func (s *scorer) tfAdjust(f int, k uint64) float64 {
	a := s.tfs[f]
	if a == nil {
		return 0
	}
	if a.ids != nil {
		return float64(a.ids[k])
	}
	if v, ok := a.m[k]; ok {
		return float64(v)
	}
	return float64(a.def)
}

// weights returns a pair's total match weight and its weight without the
// prior and the NHS number (the demographic evidence).
func (s *scorer) weights(a, b *row, g *gamma) (total, demographic float64) {
	c := s.c
	for f := range numFields {
		l := g[f]
		if l == 0 || !c.enabled[f] {
			continue
		}
		w := c.w[f][l]
		if l == 1 && s.tfs[f] != nil {
			switch f {
			case fFamily:
				w += s.tfAdjust(f, uint64(a.family))
			case fGiven:
				w += s.tfAdjust(f, uint64(a.given))
			case fDOB:
				w += s.tfAdjust(f, uint64(a.dob))
			case fPostcode:
				w += s.tfAdjust(f, uint64(a.pc))
			}
		}
		total += w
		if f != fNHS {
			demographic += w
		}
	}
	return total + c.prior, demographic
}

// Comparison is the outcome of comparing two records.
type Comparison struct {
	Fields      []FieldComparison `json:"fields"`      // every field the model compares, in Fields() order
	Weight      float64           `json:"weight"`      // match weight: log2 prior odds + the fields' weights
	Probability float64           `json:"probability"` // match probability, 2^w/(1+2^w)
	// Demographic is the evidence of every field but the NHS number,
	// without the prior (bits).
	Demographic float64 `json:"demographic"`
	// Cautions name the safety rules that forbid linking this pair
	// automatically (see the package documentation).
	Cautions []string `json:"cautions,omitempty"`
}

// FieldComparison is one field's part in a comparison.
type FieldComparison struct {
	Field  string  `json:"field"`
	Level  string  `json:"level"`  // a level name, or "null" when either value is missing
	Weight float64 `json:"weight"` // log2(m/u) of the level, term-frequency adjusted; 0 at null
	// TFAdjustment is the part of Weight due to the value's frequency.
	TFAdjustment float64 `json:"tf_adjustment,omitempty"`
}

// Safety rule names used in Comparison.Cautions and Decision.Reasons.
const (
	CautionDifferentNHS = "different NHS numbers"
	CautionPlaceholder  = "placeholder identity (placeholder names with a 1 January or missing date of birth)"
	CautionNHSConflict  = "same NHS number, conflicting demographics"
	CautionAmbiguous    = "more than one patient above the auto-link threshold"
	CautionClusterNHS   = "linking would join patients with different NHS numbers"
	CautionReviewBand   = "match weight in the review band"
)

// explain builds the public Comparison of rows a and b.
func (s *scorer) explain(a, b *row, th *thresholdWeights) Comparison {
	g, flags := s.d.compare(a, b, nil)
	total, demo := s.weights(a, b, &g)
	cmp := Comparison{Weight: total, Probability: probability(total), Demographic: demo}
	for f := range numFields {
		if !s.c.enabled[f] {
			continue
		}
		fc := FieldComparison{Field: fieldDefs[f].name, Level: fieldDefs[f].levels[g[f]]}
		if g[f] != 0 {
			fc.Weight = s.c.w[f][g[f]]
			if g[f] == 1 && s.tfs[f] != nil {
				var k uint64
				switch f {
				case fFamily:
					k = uint64(a.family)
				case fGiven:
					k = uint64(a.given)
				case fDOB:
					k = uint64(a.dob)
				case fPostcode:
					k = uint64(a.pc)
				}
				fc.TFAdjustment = s.tfAdjust(f, k)
				fc.Weight += fc.TFAdjustment
			}
		}
		cmp.Fields = append(cmp.Fields, fc)
	}
	cmp.Cautions = cautions(flags, demo, th)
	return cmp
}

func cautions(flags uint8, demo float64, th *thresholdWeights) []string {
	var out []string
	if flags&pairDifferentNHS != 0 {
		out = append(out, CautionDifferentNHS)
	}
	if flags&pairPlaceholder != 0 {
		out = append(out, CautionPlaceholder)
	}
	if flags&pairSameNHS != 0 && th != nil && demo < th.nhsDemographicsMin {
		out = append(out, CautionNHSConflict)
	}
	return out
}

func probability(w float64) float64 {
	return 1 / (1 + math.Exp2(-w))
}
