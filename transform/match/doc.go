// Package match links person records that have no usable NHS number to
// each other and to existing patients, probabilistically: a
// Fellegi–Sunter model, trained without labels by expectation–maximisation
// (as Splink does), with blocking so that cost stays near linear. It is
// pure Go, holds no database connection and logs nothing: careindex's
// linker calls it and persists what it decides.
//
// # Records, comparisons and weights
//
// A Record carries the matching fields of one organisation's record of a
// person: NHS number, family and given names, date of birth, sex,
// postcode, free-text address, GP practice, email and phone. Two records
// are compared field by field, each field falling into a level:
//
//	names          exact, Jaro–Winkler ≥ 0.92, ≥ 0.80 (or a word in common),
//	               same NYSIIS phonetic code, letters (at most one letter apart
//	               in any order), swapped (family ↔ given), different
//	date of birth  exact, day and month transposed, one of day/month/year
//	               different, within a month, within a year, birth years
//	               within ten, different
//	postcode       full, sector, district, different (UK, through
//	               transform/postcode); other codes: equal, one keying error, different
//	address        same words, most words, some words, different
//	NHS number, sex, GP practice, phone: exact, different;  email: exact, near, different
//
// A missing value on either side is level "null" and counts for nothing.
// Each level has an m probability (how often true matches fall in it) and
// a u probability (how often non-matches do); log2(m/u) is the level's
// weight. The match weight of a pair is the sum of its fields' weights
// plus log2 of the prior odds that two random records match; its match
// probability is 2^w/(1+2^w). Exact agreement on a common family name,
// given name or postcode counts for less than on a rare one
// (term-frequency adjustment).
//
// # Safety rules
//
// Some pairs never link automatically, whatever their weight; they go to
// review instead:
//
//   - two records whose valid NHS numbers differ (and a cluster never joins
//     two different NHS numbers, even through records that have none);
//   - a placeholder identity: names that are emergency placeholders (NATO
//     phonetic alphabet words such as ALPHA or BRAVO in both names, or
//     UNKNOWN) together with a 1 January or missing date of birth. Placeholder
//     names give no evidence and no blocking key in any case;
//   - two records sharing an NHS number whose other fields disagree (their
//     demographic weight is below Thresholds.NHSDemographicsMin).
//
// ZZ99 pseudo-postcodes ("no fixed abode", "not known") and the unknown GP
// practice V81999 are treated as missing, so no two people ever agree on
// them.
//
// # Tutorial
//
// Estimate learns a model from the records themselves (the nightly job
// would do this now and then, on the whole region, and keep the result):
//
//	model, report, err := match.Estimate(ctx, match.FromSlice(records), match.EstimateOptions{})
//	b, _ := json.MarshalIndent(model, "", "  ") // review it, keep it in configuration
//
// DefaultModel gives hand-set parameters for a UK region when there is
// nothing to learn from. A model read back from JSON is checked by
// Validate (and by everything that uses it).
//
// Link deduplicates a set of records: it blocks them under the model's
// rules, scores the candidate pairs on all cores, joins pairs at or above
// the auto-link threshold into clusters (union-find, strongest first) and
// lists the pairs in the review band:
//
//	res, err := match.Link(ctx, match.FromSlice(records), model, match.DefaultThresholds())
//	for _, c := range res.Clusters { ... c.IDs ... }   // one person each
//	for _, p := range res.Review { ... p.AID, p.BID, p.Reasons ... }
//
// Records stream in (Records is an iter.Seq2[Record, error]) and are kept
// as compact rows, about 100 bytes each with the interned values and the
// blocking fingerprints: a million synthetic records (about 122 million
// candidate pairs) link in about 25 seconds on two cores with a live heap
// of about 120 MB, against 80 MB of CSV text (see BenchmarkLink1M).
//
// LinkOnDisk gives the same result with each prepared record in a
// temporary file instead of memory: rule by rule it writes the records
// into buckets by key and compares one bucket's blocks at a time. Memory
// is then the interned values (which grow with the distinct names,
// address words and postcodes, not with the records), an offset per
// record, one bucket and the pairs found. The same million records link in
// about 25 seconds with a live heap of about 30 MB
// (BenchmarkLinkOnDisk1M).
//
// # Incremental matching
//
// The nightly job matches each new record against existing patients
// instead of relinking the region. A Matcher gives the keys to file each
// patient's records under and decides on candidates:
//
//	m, err := match.NewMatcher(model, match.DefaultThresholds())
//	keys := m.BlockingKeys(rec)            // e.g. "dob:19850207", "names:ASL+HAL"
//	d := m.Match(ctx, rec, candidates)     // link, review or new, with the evidence
//	ds, rep, err := m.MatchBatch(ctx, batch, store) // one candidate query for a batch
//
// The store implements CandidateSource. It persists, for every record of
// every patient, one row per blocking key (key, patient_id, record_id) and
// the record's matching fields (the Record), plus the matcher's
// KeySignature: when the blocking rules change, the signature changes and
// the records must be filed again. It answers Candidates by key, leaving
// out keys filed under more than MaxBlock records (reported as
// Oversized). Index is an in-memory CandidateSource showing the contract.
// Records of one batch are not matched with each other by MatchBatch:
// deduplicate the batch with Link first, or add each new patient to the
// source before matching the next record.
//
// Blocking keys, like every value of a Record, are patient data: never
// log them. Results name records by their position and ID only, and
// skipped giant blocks are reported by size, not by key.
package match
