package storetest

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/careindex/careindex/loader/store"
	"github.com/careindex/careindex/transform/match"
)

// matchRec is a match record with every field set, varied by n.
func matchRec(org, local string, pid int64, n int, keys ...string) store.MatchRecord {
	return store.MatchRecord{OrgCode: org, LocalID: local, PatientID: pid, Keys: keys, Record: match.Record{
		NHSNumber: "", FamilyName: fmt.Sprintf("FAMILY%d", n), GivenName: "ANN MARIE", DateOfBirth: "1970-01-0" + fmt.Sprint(1+n%9),
		Sex: "female", Postcode: "LS1 4AP", Address: fmt.Sprintf("%d HIGH STREET LEEDS", n), GPPractice: "B86001",
		Email: fmt.Sprintf("ann%d@example.org", n), Phone: "0113 496 0000"}}
}

// candidate is what Candidates returns for r.
func candidate(r store.MatchRecord) match.Candidate {
	c := match.Candidate{PatientID: r.PatientID, Record: r.Record}
	c.Record.ID = store.MatchID(r.OrgCode, r.LocalID)
	return c
}

// sortedSet sorts each key's candidates by ID, for comparison.
func sortedSet(s match.CandidateSet) match.CandidateSet {
	for _, cs := range s.ByKey {
		slices.SortFunc(cs, func(a, b match.Candidate) int { return strings.Compare(a.Record.ID, b.Record.ID) })
	}
	if len(s.Oversized) == 0 {
		s.Oversized = nil
	}
	return s
}

func testMatchState(t *testing.T, b *Backend) {
	ctx := ctxFor(t)
	l := b.Store.Links()
	if _, ok, err := l.MatchMeta(ctx); err != nil || ok {
		t.Fatalf("MatchMeta of an empty store: %v %v", ok, err)
	}
	empty := try(l.Candidates(ctx, []string{"dob:19700101"}, 10)).must(t)
	if empty.ByKey == nil || len(empty.ByKey) != 0 || len(empty.Oversized) != 0 {
		t.Fatalf("Candidates of an empty store: %+v", empty)
	}
	if s := try(l.Candidates(ctx, nil, 10)).must(t); s.ByKey == nil || len(s.ByKey) != 0 {
		t.Fatalf("Candidates(nil): %+v", s)
	}
	noErr(t, l.SaveMatch(ctx, nil))

	ids := try(l.NewPatientIDs(ctx, 4)).must(t)
	a1 := matchRec("A81001", "L1", ids[0], 1, "k1", "k2")
	a1.Record.NHSNumber = "9434765919"
	a2 := matchRec("A81001", "L2", ids[1], 2, "k2")
	b1 := matchRec("B82002", "L1", ids[2], 3, "k2", "k3")
	noErr(t, l.SaveMatch(ctx, []store.MatchRecord{a1, a2, b1}))

	got := sortedSet(try(l.Candidates(ctx, []string{"k1", "k2", "k3", "none"}, 10)).must(t))
	equal(t, "candidates", got, match.CandidateSet{ByKey: map[string][]match.Candidate{
		"k1": {candidate(a1)},
		"k2": {candidate(a1), candidate(a2), candidate(b1)},
		"k3": {candidate(b1)},
	}})
	// A key under more records than the limit is reported, not expanded.
	got = sortedSet(try(l.Candidates(ctx, []string{"k1", "k2", "k3"}, 2)).must(t))
	if n := got.Oversized["k2"]; n < 3 || len(got.Oversized) != 1 {
		t.Fatalf("oversized %v, want k2 with a count of at least 3", got.Oversized)
	}
	got.Oversized = nil
	equal(t, "candidates with a limit", got, match.CandidateSet{
		ByKey: map[string][]match.Candidate{"k1": {candidate(a1)}, "k3": {candidate(b1)}},
	})

	// A changed record replaces its fields and keys; a new patient shows.
	a1b := matchRec("A81001", "L1", ids[3], 4, "k4", "k2")
	a1b.Record.NHSNumber = a1.Record.NHSNumber
	a2b := a2
	a2b.PatientID = ids[3] // only the patient changes
	noErr(t, l.SaveMatch(ctx, []store.MatchRecord{a1b, a2b}))
	got = sortedSet(try(l.Candidates(ctx, []string{"k1", "k2", "k4"}, 10)).must(t))
	equal(t, "candidates after an update", got, match.CandidateSet{ByKey: map[string][]match.Candidate{
		"k2": {candidate(a1b), candidate(a2b), candidate(b1)},
		"k4": {candidate(a1b)},
	}})
	// Saving the same records again changes nothing; a record given twice
	// in one call is saved as given last.
	noErr(t, l.SaveMatch(ctx, []store.MatchRecord{a1b, a2b, b1}))
	b1b := matchRec("B82002", "L1", ids[2], 5, "k5")
	noErr(t, l.SaveMatch(ctx, []store.MatchRecord{b1, b1b}))
	got = sortedSet(try(l.Candidates(ctx, []string{"k2", "k3", "k5"}, 10)).must(t))
	equal(t, "candidates after saving twice", got, match.CandidateSet{ByKey: map[string][]match.Candidate{
		"k2": {candidate(a1b), candidate(a2b)},
		"k5": {candidate(b1b)},
	}})

	// The model and its key signature.
	noErr(t, l.SetMatchMeta(ctx, store.MatchMeta{Signature: "sig1", Model: []byte(`{"prior":0.001}`)}))
	meta, ok, err := l.MatchMeta(ctx)
	if err != nil || !ok || meta.Signature != "sig1" || string(meta.Model) != `{"prior":0.001}` || meta.UpdatedAt.IsZero() {
		t.Fatalf("MatchMeta: %+v %v %v", meta, ok, err)
	}

	// Rekey files every record under new keys and records the signature;
	// with the signature current it does nothing.
	keysOf := func(r match.Record) []string {
		return []string{"family:" + r.FamilyName, "all"}
	}
	n := try(l.Rekey(ctx, "sig2", keysOf)).must(t)
	if n != 3 {
		t.Fatalf("Rekey filed %d records, want 3", n)
	}
	got = sortedSet(try(l.Candidates(ctx, []string{"k2", "k4", "k5", "all", "family:FAMILY2"}, 10)).must(t))
	equal(t, "candidates after rekeying", got, match.CandidateSet{ByKey: map[string][]match.Candidate{
		"all":            {candidate(a1b), candidate(a2b), candidate(b1b)},
		"family:FAMILY2": {candidate(a2b)},
	}})
	meta, _, _ = l.MatchMeta(ctx)
	if meta.Signature != "sig2" || string(meta.Model) != `{"prior":0.001}` {
		t.Fatalf("MatchMeta after rekeying: %+v", meta)
	}
	if n := try(l.Rekey(ctx, "sig2", func(match.Record) []string { t.Fatal("rekeyed with the signature current"); return nil })).must(t); n != 0 {
		t.Fatalf("Rekey with the signature current filed %d records", n)
	}
	// A record saved after rekeying leaves the keys Rekey filed it under.
	a2c := a2b
	a2c.Record.GivenName, a2c.Keys = "ANNE", []string{"family:FAMILY2", "given:ANNE"}
	noErr(t, l.SaveMatch(ctx, []store.MatchRecord{a2c}))
	got = sortedSet(try(l.Candidates(ctx, []string{"all", "family:FAMILY2", "given:ANNE"}, 10)).must(t))
	equal(t, "candidates after saving a rekeyed record", got, match.CandidateSet{ByKey: map[string][]match.Candidate{
		"all":            {candidate(a1b), candidate(b1b)},
		"family:FAMILY2": {candidate(a2c)},
		"given:ANNE":     {candidate(a2c)},
	}})

	// Batches as big as the linker's and more, and keys shared by many.
	big := make([]store.MatchRecord, 6000)
	var keys []string
	for i := range big {
		k := fmt.Sprintf("big:%d", i)
		big[i] = matchRec("C83003", fmt.Sprintf("R%d", i), ids[i%4], i, k, "big:common")
		keys = append(keys, k)
	}
	noErr(t, l.SaveMatch(ctx, big))
	got = try(l.Candidates(ctx, append(keys, "big:common"), 1000)).must(t)
	if len(got.ByKey) != 6000 || got.Oversized["big:common"] <= 1000 || len(got.Oversized) != 1 {
		t.Fatalf("big batch: %d keys found, oversized %v", len(got.ByKey), got.Oversized)
	}
	if c := got.ByKey["big:4321"]; len(c) != 1 || c[0] != candidate(big[4321]) {
		t.Fatalf("big batch: %+v", c)
	}

	// Every record, in order, with its patient and fields and no keys,
	// across pages (6,003 records; pages of a few thousand); an error from
	// the callback stops the reading and comes back.
	want := append([]store.MatchRecord{a2c, a1b, b1b}, big...)
	for i := range want {
		want[i].Keys = nil
	}
	slices.SortFunc(want, func(x, y store.MatchRecord) int {
		return cmp.Or(strings.Compare(x.OrgCode, y.OrgCode), strings.Compare(x.LocalID, y.LocalID))
	})
	var all []store.MatchRecord
	noErr(t, l.EachMatchRecord(ctx, func(r store.MatchRecord) error { all = append(all, r); return nil }))
	equal(t, "every match record", all, want)
	stop := errors.New("stop")
	seen := 0
	if err := l.EachMatchRecord(ctx, func(store.MatchRecord) error { seen++; return stop }); !errors.Is(err, stop) || seen != 1 {
		t.Fatalf("EachMatchRecord with a failing callback: %v after %d records", err, seen)
	}

	// The state persists: another Store sees it.
	other := b.Reopen(t)
	defer other.Close()
	got = sortedSet(try(other.Links().Candidates(ctx, []string{"family:FAMILY4"}, 10)).must(t))
	equal(t, "candidates seen by another store", got, match.CandidateSet{ByKey: map[string][]match.Candidate{
		"family:FAMILY4": {candidate(a1b)}}})

	// Rekey files every record of several pages.
	if n := try(l.Rekey(ctx, "sig3", func(r match.Record) []string { return []string{"fam:" + r.FamilyName} })).must(t); n != len(want) {
		t.Fatalf("Rekey over pages filed %d records, want %d", n, len(want))
	}
	last := big[len(big)-1]
	got = try(l.Candidates(ctx, []string{"fam:" + last.Record.FamilyName, "big:common"}, 10)).must(t)
	if c := got.ByKey["fam:"+last.Record.FamilyName]; len(c) != 1 || c[0].Record.ID != store.MatchID(last.OrgCode, last.LocalID) || len(got.ByKey["big:common"]) != 0 {
		t.Fatalf("after rekeying over pages: %+v", got)
	}
}

// testReviewEvidence: review items carry the patient a record was given
// meanwhile and the evidence; a record already queued is not queued again.
func testReviewEvidence(t *testing.T, b *Backend) {
	ctx := ctxFor(t)
	l := b.Store.Links()
	ids := try(l.NewPatientIDs(ctx, 2)).must(t)
	rs := []store.Review{
		{RunID: 1, SourceID: "gp", OrgCode: "A81001", LocalID: "L7", PatientID: ids[0], Assigned: ids[1],
			Reason: "possible match", File: "p.csv", Line: 7, Evidence: `{"weight":3.2}`},
		{RunID: 1, SourceID: "gp", OrgCode: "A81001", LocalID: "L8", NHSNumber: "9434765919", PatientID: ids[0],
			Reason: "held for review", File: "p.csv", Line: 8},
	}
	noErr(t, l.AddReviews(ctx, rs))
	noErr(t, l.AddReviews(ctx, rs))
}

// testDeltaContact: a delta delivery carries its base's rows whole,
// contact details included.
func testDeltaContact(t *testing.T, b *Backend) {
	ctx := ctxFor(t)
	s := b.Store
	ids := try(s.Links().NewPatientIDs(ctx, 2)).must(t)
	run := startRun(t, s, "run", "gp")
	p1 := person("gp", "A81001", "L1", 2, ids[0], "", "ONE")
	p1.Email, p1.Phone = "one@example.org", "07700 900000"
	base := stage(t, s, run, store.Delivery{SourceID: "gp", OrgCode: "A81001", Kind: "persons", Name: "snap", Hash: "s", ReceivedAt: recv},
		[]store.StagedPerson{p1}, nil, nil, 1)
	p2 := person("gp", "A81001", "L2", 2, ids[1], "", "TWO")
	p2.Email = "two@example.org"
	delta := stage(t, s, run, store.Delivery{SourceID: "gp", OrgCode: "A81001", Kind: "persons", Name: "delta", Hash: "d",
		ReceivedAt: recv, Seq: 1, Base: base.ID}, []store.StagedPerson{p2}, nil, nil, 1)
	got := streamPersons(t, s, delta.ID)
	p1.DeliveryID, p2.DeliveryID = delta.ID, delta.ID
	equal(t, "persons of the delta", got, []store.StagedPerson{p1, p2})
	finishRun(t, s, run)
}
