// Package link assigns each person record the regional patient it belongs
// to. Records with a valid NHS number are linked deterministically:
//
//   - a valid NHS number already linked to a patient, with a date of birth
//     that agrees (or is missing on either side), links to that patient;
//   - a valid NHS number linked to a patient whose date of birth differs is
//     not trusted: the record is held for review and not published; so is
//     one whose other demographics clearly disagree with the patient's
//     other records that carry the number (with a matcher: the demographic
//     weight of the best of them is below the thresholds'
//     NHSDemographicsMin; they are found under the model's blocking rule
//     on the NHS number alone, so a model without one skips this check);
//   - a new NHS number gets the patient the organisation's local id already
//     had, if any, or a new patient id;
//   - a record without an NHS number keeps the patient its organisation's
//     local id had last time (patient ids are stable).
//
// Before any of these, a record that a person decided on (a review item
// linked or separated, see store.Reviews) gets the patient the decision
// pinned it to, whatever its NHS number, date of birth or matching would
// say: such a record is neither held nor matched again, so a record kept
// apart from a patient is never linked to it automatically.
//
// A record without an NHS number that its organisation never sent before
// is matched probabilistically (with a matcher, see WithMatcher) against
// the records of existing patients, found in the store by blocking key,
// and against the records already assigned in the same batch, so that two
// local ids of one person at one organisation link too:
//
//   - a link decision links it to that patient;
//   - a decision in the review band, or a link a safety rule holds back,
//     gives it a new patient id for now and queues a review item with the
//     evidence (never an automatic merge);
//   - otherwise it is a new patient.
//
// Every linked record, with or without an NHS number, is then filed in
// the store's match state (its matching fields, patient and blocking
// keys), so that later records can find it.
//
// A record filed unchanged (the same matching fields and keys, with the
// local id and the NHS number still linked to the patient it was filed
// with) keeps that patient without being matched or checked against the
// patient's other records again, and is not filed again: a snapshot
// delivery resent with few changes costs a few lookups per batch. (A
// changed record is still checked against it.) This needs a store whose
// link state is a FiledReader.
//
// Patient ids come from the store's sequence, so they are never reused, and
// links persist in the store, so they are stable from one run to the next.
// Records are linked in batches so that the store is asked once per batch
// for each kind of lookup: NHS numbers, local ids, and the candidates of
// every key of the batch. Nothing here logs: keys and fields are patient
// data.
package link

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/careindex/careindex/loader/store"
	"github.com/careindex/careindex/transform/match"
	"github.com/careindex/careindex/transform/record"
)

// Quarantine and review reasons.
const (
	// ReasonDOBConflict is the quarantine reason of a record held because
	// its NHS number links to a patient with another date of birth.
	ReasonDOBConflict = "held for review: the NHS number links to a patient with a different date of birth"
	// ReasonDemographicsConflict is the quarantine reason of a record held
	// because its other demographics clearly disagree with the records of
	// the patient its NHS number links to.
	ReasonDemographicsConflict = "held for review: the NHS number links to a patient whose demographics disagree"
	// ReasonPossibleMatch is the review reason of a record without an NHS
	// number that may belong to an existing patient: it was given a new
	// patient until a person decides.
	ReasonPossibleMatch = "possible match: given a new patient until reviewed"
)

// FiledReader is what a store's link state may offer besides store.Links:
// the match records an organisation's local ids are filed with now (the
// fields and patient SaveMatch stored; the keys need not be read back, as
// under one key signature the same fields give the same keys). With it, a matching Linker
// does close to nothing for a record filed unchanged (see Link).
type FiledReader interface {
	Filed(ctx context.Context, org string, localIDs []string) (map[string]store.MatchRecord, error)
}

// Linker links batches of one organisation's person records.
type Linker struct {
	links    store.Links
	runID    int64
	delivery int64 // the delivery being staged, named in review items
	matcher  *match.Matcher
	auto     float64 // the auto-link threshold, in bits
	stats    Stats
}

// Stats counts what a Linker's matching did, for logs: counts only.
type Stats struct {
	Matched       int // records without an NHS number that were matched
	Linked        int // of which linked to an existing patient (or one earlier in the batch)
	Joined        int // of which joined new patients of the batch that it links strongly (see Link)
	Review        int // of which given a new patient and a review item
	New           int // of which new patients
	HeldNHS       int // records held because their demographics disagree with their NHS number's patient
	Candidates    int // candidate records scored
	OversizedKeys int // keys skipped as too common (summed over batches)
}

// New returns a linker over the store's link state. Without a matcher it
// links deterministically only and keeps no match state.
func New(links store.Links, runID int64) *Linker {
	return &Linker{links: links, runID: runID}
}

// WithDelivery names the delivery the batches come from, so that a review
// item can say which delivery holds its record.
func (l *Linker) WithDelivery(id int64) *Linker {
	l.delivery = id
	return l
}

// WithMatcher turns on probabilistic matching of records without an NHS
// number, and the demographic check of records with one; th are the
// thresholds m was made with. The store's match state must be filed under
// m's keys (see Prepare).
func (l *Linker) WithMatcher(m *match.Matcher, th match.Thresholds) *Linker {
	l.matcher = m
	l.auto = th.AutoLink.Value
	if !th.AutoLink.Weight {
		l.auto = math.Log2(th.AutoLink.Value / (1 - th.AutoLink.Value))
	}
	return l
}

// nhsKeys returns a test for the keys of blocking rules that take the NHS
// number alone (a record with nothing but an NHS number has a key under
// those rules only): the keys under which the records sharing a record's
// NHS number are found.
func (l *Linker) nhsKeys() func(string) bool {
	const probe = "9434765919" // any valid NHS number
	var prefixes []string
	for _, k := range l.matcher.BlockingKeys(match.Record{NHSNumber: probe}) {
		if i := strings.Index(k, probe); i >= 0 {
			prefixes = append(prefixes, k[:i])
		}
	}
	return func(k string) bool {
		for _, p := range prefixes {
			if strings.HasPrefix(k, p) && len(k) == len(p)+len(probe) {
				return true
			}
		}
		return false
	}
}

// Stats returns what the linker's matching did so far.
func (l *Linker) Stats() Stats { return l.stats }

// Prepare makes the store's match state usable with m: it records the
// model and its key signature and, when the blocking rules changed since
// the records were filed (the signature differs), files every record
// again under the new keys. It returns how many records were re-filed.
func Prepare(ctx context.Context, links store.Links, m *match.Matcher, model []byte) (int, error) {
	sig := m.KeySignature()
	meta, ok, err := links.MatchMeta(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	if ok && meta.Signature != sig {
		if n, err = links.Rekey(ctx, sig, m.BlockingKeys); err != nil {
			return 0, err
		}
	}
	if !ok || meta.Signature != sig || !bytes.Equal(meta.Model, model) {
		if err := links.SetMatchMeta(ctx, store.MatchMeta{Signature: sig, Model: model}); err != nil {
			return n, err
		}
	}
	return n, nil
}

// MatchRecord is the matcher's view of a person record of org.
func MatchRecord(org string, p record.Person) match.Record {
	return match.Record{ID: store.MatchID(org, p.LocalID), NHSNumber: p.NHSNumber, FamilyName: p.FamilyName,
		GivenName: p.GivenName, DateOfBirth: p.DateOfBirth, Sex: p.Sex, Postcode: p.Postcode, Address: p.Address,
		GPPractice: p.GPPractice, Email: p.Email, Phone: p.Phone}
}

// Link links a batch of person records of one source. It returns the linked
// records and the rejects of records held for review, in input order.
func (l *Linker) Link(ctx context.Context, sourceID, org string, batch []record.Person) ([]store.StagedPerson, []store.Reject, error) {
	linked, held, err := l.link(ctx, sourceID, org, batch)
	if err != nil {
		return nil, nil, fmt.Errorf("linking %s: %w", sourceID, err)
	}
	return linked, held, nil
}

// decision is what becomes of one record of a batch.
type decision struct {
	pid    int64  // > 0 patient id; < 0 placeholder for a new id; 0 held
	reason string // held: the quarantine reason
	review *store.Review
}

func (l *Linker) link(ctx context.Context, sourceID, org string, batch []record.Person) ([]store.StagedPerson, []store.Reject, error) {
	var nhs, locals []string
	for _, p := range batch {
		if p.NHSNumber != "" {
			nhs = append(nhs, p.NHSNumber)
		}
		locals = append(locals, p.LocalID)
	}
	byNHS, err := l.links.ByNHS(ctx, nhs)
	if err != nil {
		return nil, nil, err
	}
	byLocal, err := l.links.ByLocal(ctx, org, locals)
	if err != nil {
		return nil, nil, err
	}
	pins, err := l.links.Pins(ctx, org, locals)
	if err != nil {
		return nil, nil, err
	}

	// Matching: every key the batch needs, looked up once.
	m := l.matcher
	var (
		recs     []match.Record
		fullKeys [][]string // per record: the keys it is filed under
		keys     [][]string // per record: the keys its candidates are found under
		set      match.CandidateSet
		index    map[string][]match.Candidate // the batch's records as they are assigned, by key
		same     []bool                       // per record: filed unchanged (see filedUnchanged)
	)
	if m != nil {
		recs = make([]match.Record, len(batch))
		fullKeys = make([][]string, len(batch))
		keys = make([][]string, len(batch))
		same = make([]bool, len(batch))
		var onFile map[string]store.MatchRecord
		if fr, ok := l.links.(FiledReader); ok {
			if onFile, err = fr.Filed(ctx, org, locals); err != nil {
				return nil, nil, err
			}
		}
		nhsKey := l.nhsKeys()
		all := map[string]bool{}
		var list []string
		for i, p := range batch {
			recs[i] = MatchRecord(org, p)
			if f, ok := onFile[p.LocalID]; ok && filedUnchanged(f, recs[i], byLocal, byNHS) {
				// The same fields under the same blocking rules (Prepare
				// refiles every record when the rules change) give the
				// same keys: they are worked out only if it is filed again.
				same[i] = true
			} else {
				fullKeys[i] = m.BlockingKeys(recs[i])
			}
			inStore := true
			switch {
			case pins[p.LocalID] != 0:
				// Pinned by a decision: neither checked nor matched.
			case same[i]:
				// Its patient stands: nothing to look up.
			case p.NHSNumber != "":
				// The records that share the NHS number, for the
				// demographic check: in the store only when the number is
				// linked already, in the batch in any case.
				for _, k := range fullKeys[i] {
					if nhsKey(k) {
						keys[i] = append(keys[i], k)
					}
				}
				_, inStore = byNHS[p.NHSNumber]
			case byLocal[p.LocalID] == 0:
				keys[i] = fullKeys[i]
			}
			for _, k := range keys[i] {
				if !inStore {
					break
				}
				if !all[k] {
					all[k] = true
					list = append(list, k)
				}
			}
		}
		if set, err = l.links.Candidates(ctx, list, m.MaxBlock()); err != nil {
			return nil, nil, err
		}
		l.stats.OversizedKeys += len(set.Oversized)
		// The batch's records are indexed under the keys some record's
		// candidates are found under only (few when most were filed
		// unchanged).
		index = map[string][]match.Candidate{}
		for i := range keys {
			for _, k := range keys[i] {
				if _, ok := index[k]; !ok {
					index[k] = nil
				}
			}
		}
	}
	var find func(int64) int64
	// candidates returns record i's candidates: the store's and the
	// batch's under its keys (a record in both counts as the batch has it).
	// A key over the limit, in the store or in the batch, brings none.
	candidates := func(i int) []match.Candidate {
		seen := map[string]bool{}
		var out []match.Candidate
		for _, k := range keys[i] {
			if _, big := set.Oversized[k]; big {
				continue
			}
			inBatch := index[k]
			if len(inBatch) > m.MaxBlock() {
				continue
			}
			for _, c := range inBatch {
				if !seen[c.Record.ID] {
					seen[c.Record.ID] = true
					c.PatientID = find(c.PatientID)
					out = append(out, c)
				}
			}
		}
		for _, k := range keys[i] {
			if _, big := set.Oversized[k]; big {
				continue
			}
			for _, c := range set.ByKey[k] {
				if !seen[c.Record.ID] {
					seen[c.Record.ID] = true
					out = append(out, c)
				}
			}
		}
		return out
	}

	// Decide, marking records that need a new patient id with a negative
	// placeholder shared by records that must share the patient. First the
	// deterministic rules, then matching, so that records without an NHS
	// number are matched against the whole batch's deterministic links.
	decisions := make([]decision, len(batch))
	// New patients that matching makes are provisional until the batch
	// ends: a record that links strongly to two or more of them and to no
	// one else joins them into one (as match.Link clusters a batch), so
	// that one person's records do not scatter over several new patients
	// in the order they come. Existing patients are never joined.
	provisional := map[int64]bool{}
	parent := map[int64]int64{}
	find = func(pid int64) int64 {
		for {
			q, ok := parent[pid]
			if !ok {
				return pid
			}
			pid = q
		}
	}
	newNHS := map[string]int64{}   // NHS number → placeholder or id, new in this batch
	newLocal := map[string]int64{} // local id → patient or placeholder, assigned in this batch
	learned := map[string]bool{}   // existing links that learned a date of birth
	next := int64(0)
	placeholder := func() int64 { next--; return next }
	assign := func(i int, pid int64) {
		decisions[i] = decision{pid: pid}
		if _, ok := byLocal[batch[i].LocalID]; !ok {
			if _, ok := newLocal[batch[i].LocalID]; !ok {
				newLocal[batch[i].LocalID] = pid
			}
		}
		if index != nil {
			for _, k := range fullKeys[i] {
				if c, wanted := index[k]; wanted {
					index[k] = append(c, match.Candidate{PatientID: pid, Record: recs[i]})
				}
			}
		}
	}
	var toMatch []int
	for i, p := range batch {
		var pid int64
		if pin, ok := pins[p.LocalID]; ok {
			// A person decided: the decision stands.
			if _, known := byNHS[p.NHSNumber]; p.NHSNumber != "" && !known {
				newNHS[p.NHSNumber] = pin
				byNHS[p.NHSNumber] = store.Link{PatientID: pin, DateOfBirth: p.DateOfBirth}
			}
			assign(i, pin)
			continue
		}
		if p.NHSNumber != "" {
			if k, ok := byNHS[p.NHSNumber]; ok {
				if !agree(k.DateOfBirth, p.DateOfBirth) {
					decisions[i] = decision{reason: ReasonDOBConflict,
						review: &store.Review{PatientID: k.PatientID, Reason: ReasonDOBConflict}}
					continue
				}
				if m != nil && !same[i] {
					if ev := l.demographicsConflict(p, recs[i], k.PatientID, candidates(i)); ev != nil {
						l.stats.HeldNHS++
						decisions[i] = decision{reason: ReasonDemographicsConflict,
							review: &store.Review{PatientID: k.PatientID, Reason: ReasonDemographicsConflict, Evidence: ev.json()}}
						continue
					}
				}
				pid = k.PatientID
				if k.DateOfBirth == "" && p.DateOfBirth != "" {
					// The link learns the date of birth, so that a later
					// record with another one is held for review.
					k.DateOfBirth = p.DateOfBirth
					byNHS[p.NHSNumber] = k
					if _, isNew := newNHS[p.NHSNumber]; !isNew {
						learned[p.NHSNumber] = true
					}
				}
			} else {
				if old, ok := byLocal[p.LocalID]; ok {
					pid = old
				} else if ph, ok := newLocal[p.LocalID]; ok {
					pid = ph
				} else {
					pid = placeholder()
				}
				newNHS[p.NHSNumber] = pid
				byNHS[p.NHSNumber] = store.Link{PatientID: pid, DateOfBirth: p.DateOfBirth}
			}
		} else if old, ok := byLocal[p.LocalID]; ok {
			pid = old
		} else if ph, ok := newLocal[p.LocalID]; ok {
			pid = ph
		} else if m != nil {
			toMatch = append(toMatch, i)
			continue
		} else {
			pid = placeholder()
		}
		assign(i, pid)
	}
	// The most complete records first: a record with more fields agrees
	// more strongly with the others of its person, so the batch's own
	// duplicates gather round it instead of splitting early.
	slices.SortStableFunc(toMatch, func(a, b int) int { return completeness(recs[b]) - completeness(recs[a]) })
	for _, i := range toMatch {
		p := batch[i]
		if pid, ok := newLocal[p.LocalID]; ok {
			assign(i, pid)
			continue
		}
		cands := candidates(i)
		l.stats.Matched++
		l.stats.Candidates += len(cands)
		d := m.Match(ctx, recs[i], cands)
		switch d.Kind {
		case match.KindLink:
			l.stats.Linked++
			assign(i, d.PatientID)
		case match.KindReview:
			if join := l.joinable(d, provisional); join != nil {
				l.stats.Linked++
				l.stats.Joined++
				root := join[0]
				for _, q := range join[1:] {
					parent[q] = root
				}
				assign(i, root)
				break
			}
			l.stats.Review++
			pid := placeholder()
			provisional[pid] = true
			assign(i, pid)
			ev := newEvidence(d.Kind, d.Evidence, d.Reasons, d.CandidateID, len(d.Others))
			decisions[i].review = &store.Review{PatientID: d.PatientID, Assigned: pid, Evidence: ev.json(),
				Reason: reviewReason(d.Reasons)}
		default:
			l.stats.New++
			pid := placeholder()
			provisional[pid] = true
			assign(i, pid)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}

	// One id for each placeholder that was not joined into another.
	slot := map[int64]int{}
	for ph := int64(-1); ph >= next; ph-- {
		if find(ph) == ph {
			slot[ph] = len(slot)
		}
	}
	ids, err := l.links.NewPatientIDs(ctx, len(slot))
	if err != nil {
		return nil, nil, err
	}
	resolve := func(pid int64) int64 {
		if pid < 0 {
			return ids[slot[find(pid)]]
		}
		return pid
	}

	saveNHS := map[string]store.Link{}
	for n, pid := range newNHS {
		saveNHS[n] = store.Link{PatientID: resolve(pid), DateOfBirth: byNHS[n].DateOfBirth}
	}
	for n := range learned {
		saveNHS[n] = store.Link{PatientID: resolve(byNHS[n].PatientID), DateOfBirth: byNHS[n].DateOfBirth}
	}
	saveLocal := map[string]int64{}
	var saveMatch []store.MatchRecord
	filed := map[string]bool{}
	var linked []store.StagedPerson
	var held []store.Reject
	var reviews []store.Review
	for i, p := range batch {
		d := decisions[i]
		if d.review != nil {
			r := *d.review
			r.RunID, r.SourceID, r.OrgCode, r.LocalID, r.NHSNumber, r.File, r.Line = l.runID, sourceID, org, p.LocalID, p.NHSNumber, p.File, p.Line
			r.DeliveryID = l.delivery
			if d.reason != "" {
				held := p
				r.Held = &held
			}
			r.PatientID, r.Assigned = resolve(r.PatientID), resolve(r.Assigned)
			if r.Assigned == 0 || r.Assigned != r.PatientID { // a later record of the batch may have joined them
				reviews = append(reviews, r)
			}
		}
		if d.reason != "" {
			held = append(held, store.Reject{SourceID: sourceID, File: p.File, Line: p.Line, Reason: d.reason})
			continue
		}
		pid := resolve(d.pid)
		if old, ok := byLocal[p.LocalID]; !ok || old != pid {
			saveLocal[p.LocalID] = pid
		}
		if m != nil && !filed[p.LocalID] {
			// The first record of a local id is the one staged (later
			// ones are merged into it).
			filed[p.LocalID] = true
			if !same[i] || pid != byLocal[p.LocalID] { // else filed so already
				if fullKeys[i] == nil {
					fullKeys[i] = m.BlockingKeys(recs[i])
				}
				saveMatch = append(saveMatch, store.MatchRecord{OrgCode: org, LocalID: p.LocalID, PatientID: pid, Record: recs[i],
					Keys: fullKeys[i]})
			}
		}
		linked = append(linked, store.StagedPerson{Person: p, PatientID: pid})
	}
	if err := l.links.SaveNHS(ctx, saveNHS); err != nil {
		return nil, nil, err
	}
	if err := l.links.SaveLocal(ctx, org, saveLocal); err != nil {
		return nil, nil, err
	}
	if err := l.links.SaveMatch(ctx, saveMatch); err != nil {
		return nil, nil, err
	}
	if err := l.links.AddReviews(ctx, reviews); err != nil {
		return nil, nil, err
	}
	return linked, held, nil
}

// filedUnchanged reports whether rec is filed unchanged as f: the same
// matching fields (so, under the key signature Prepare keeps, the same
// keys), its local id still linked to f's patient, and so is its NHS
// number, if it has one.
func filedUnchanged(f store.MatchRecord, rec match.Record, byLocal map[string]int64, byNHS map[string]store.Link) bool {
	if pid, ok := byLocal[f.LocalID]; !ok || pid != f.PatientID {
		return false
	}
	if rec.NHSNumber != "" {
		if k, ok := byNHS[rec.NHSNumber]; !ok || k.PatientID != f.PatientID {
			return false
		}
	}
	was := f.Record
	was.ID = rec.ID
	return was == rec
}

// joinable returns the provisional patients a review decision would join,
// the earliest first, or nil: the decision must be held back only because
// more than one patient scored at or above the auto-link threshold, and
// every such patient must be provisional (made new by matching in this
// batch).
func (l *Linker) joinable(d match.Decision, provisional map[int64]bool) []int64 {
	if len(d.Reasons) != 1 || d.Reasons[0] != match.CautionAmbiguous || d.Weight < l.auto {
		return nil
	}
	strong := []int64{d.PatientID}
	for _, o := range d.Others {
		if o.Weight >= l.auto {
			strong = append(strong, o.PatientID)
		}
	}
	for _, pid := range strong {
		if !provisional[pid] {
			return nil
		}
	}
	if len(strong) < 2 {
		return nil
	}
	// Placeholders count down: the earliest is the largest.
	slices.SortFunc(strong, func(a, b int64) int { return cmp.Compare(b, a) })
	return slices.Compact(strong)
}

// demographicsConflict checks a record whose NHS number links to patient
// pid against that patient's other records with the same NHS number
// (among cands): when even the best of them has a demographic weight
// below the thresholds' minimum, it returns the evidence; otherwise nil.
// A record's own earlier version is not one of the others.
func (l *Linker) demographicsConflict(p record.Person, rec match.Record, pid int64, cands []match.Candidate) *evidence {
	var best *match.Comparison
	for _, c := range cands {
		if c.PatientID != pid || c.Record.NHSNumber != p.NHSNumber || c.Record.ID == rec.ID {
			continue
		}
		cmp := l.matcher.Score(rec, c.Record)
		if !hasCaution(cmp.Cautions, match.CautionNHSConflict) {
			return nil
		}
		if best == nil || cmp.Demographic > best.Demographic {
			best = &cmp
		}
	}
	if best == nil {
		return nil
	}
	return newEvidence("review", best, []string{match.CautionNHSConflict}, "", 0)
}

func hasCaution(cs []string, c string) bool {
	for _, x := range cs {
		if x == c {
			return true
		}
	}
	return false
}

func reviewReason(reasons []string) string {
	if len(reasons) == 0 {
		return ReasonPossibleMatch
	}
	return ReasonPossibleMatch + " (" + strings.Join(reasons, "; ") + ")"
}

// evidence is a review item's summary of a comparison: levels and weights,
// never values.
type evidence struct {
	Decision    string          `json:"decision"`
	Weight      float64         `json:"weight"`
	Probability float64         `json:"probability"`
	Demographic float64         `json:"demographic"`
	Reasons     []string        `json:"reasons,omitempty"`
	Candidate   *candidateRef   `json:"candidate,omitempty"`
	Others      int             `json:"other_patients,omitempty"`
	Fields      []fieldEvidence `json:"fields"`
}

type candidateRef struct {
	OrgCode string `json:"org_code"`
	LocalID string `json:"local_id"`
}

type fieldEvidence struct {
	Field  string  `json:"field"`
	Level  string  `json:"level"`
	Weight float64 `json:"weight"`
}

func newEvidence(kind match.DecisionKind, c *match.Comparison, reasons []string, candidate string, others int) *evidence {
	ev := &evidence{Decision: string(kind), Reasons: reasons, Others: others}
	if org, local, ok := strings.Cut(candidate, "\x1f"); ok {
		ev.Candidate = &candidateRef{OrgCode: org, LocalID: local}
	}
	if c != nil {
		ev.Weight, ev.Probability, ev.Demographic = round(c.Weight), math.Round(c.Probability*1e4)/1e4, round(c.Demographic)
		for _, f := range c.Fields {
			ev.Fields = append(ev.Fields, fieldEvidence{Field: f.Field, Level: f.Level, Weight: round(f.Weight)})
		}
	}
	return ev
}

func round(x float64) float64 { return math.Round(x*100) / 100 }

func (e *evidence) json() string {
	b, err := json.Marshal(e)
	if err != nil {
		return ""
	}
	return string(b)
}

// completeness counts a record's fields.
func completeness(r match.Record) int {
	n := 0
	for _, v := range []string{r.FamilyName, r.GivenName, r.DateOfBirth, r.Sex, r.Postcode, r.Address, r.GPPractice, r.Email, r.Phone} {
		if v != "" {
			n++
		}
	}
	return n
}

// agree reports whether two dates of birth do not contradict each other.
func agree(a, b string) bool { return a == "" || b == "" || a == b }
