package link_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/careindex/careindex/loader/store"
	"github.com/careindex/careindex/transform/link"
	"github.com/careindex/careindex/transform/match"
	"github.com/careindex/careindex/transform/record"
)

func newMatcher(t testing.TB) *match.Matcher {
	t.Helper()
	m, err := match.NewMatcher(match.DefaultModel(), match.DefaultThresholds())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// hattie is a full record of one invented person at org, under local.
func hattie(local, nhs string) record.Person {
	return record.Person{LocalID: local, NHSNumber: nhs, FamilyName: "PENNINGTON", GivenName: "HATTIE", DateOfBirth: "1948-03-14",
		Sex: "female", Postcode: "PE15 8RN"}
}

func desmond(local, nhs string) record.Person {
	return record.Person{LocalID: local, NHSNumber: nhs, FamilyName: "OYELARAN", GivenName: "DESMOND", DateOfBirth: "1952-07-02",
		Sex: "male", Postcode: "CB4 1DL"}
}

// linkAt links one batch at org with a fresh matching Linker and fails the
// test on an error; it fills in the provenance.
func linkAt(t *testing.T, links *fakeLinks, runID int64, org string, recs ...record.Person) ([]store.StagedPerson, []store.Reject) {
	t.Helper()
	src := strings.ToLower(org) + "-patients"
	for i := range recs {
		recs[i].SourceID, recs[i].OrgCode, recs[i].File, recs[i].Line = src, org, "p.csv", i+2
	}
	linked, held, err := link.New(links, runID).WithMatcher(newMatcher(t), match.DefaultThresholds()).Link(context.Background(), src, org, recs)
	if err != nil {
		t.Fatal(err)
	}
	return linked, held
}

func pids(ps []store.StagedPerson) []int64 {
	out := make([]int64, len(ps))
	for i, p := range ps {
		out[i] = p.PatientID
	}
	return out
}

func TestMatchLinksRecordWithoutNHSNumber(t *testing.T) {
	t.Parallel()
	links := newFakeLinks()
	gp, _ := linkAt(t, links, 1, "D81001", hattie("100101", nhsB), desmond("100102", nhsC))
	// The hospital's record has no NHS number: it is matched to the GP's.
	h := hattie("M1", "")
	h.FamilyName, h.GivenName = "pennington", "Hattie" // the matcher folds case
	other := record.Person{LocalID: "M2", FamilyName: "QUIGLEY", GivenName: "FENELLA", DateOfBirth: "1996-07-07", Sex: "female"}
	hosp, held := linkAt(t, links, 2, "RGT", h, other)
	if len(held) != 0 || len(hosp) != 2 {
		t.Fatalf("linked %d, held %d", len(hosp), len(held))
	}
	if hosp[0].PatientID != gp[0].PatientID {
		t.Errorf("hospital record linked to %d, want the GP's patient %d", hosp[0].PatientID, gp[0].PatientID)
	}
	if p := hosp[1].PatientID; p == gp[0].PatientID || p == gp[1].PatientID {
		t.Errorf("an unrelated record linked to an existing patient %d", p)
	}
	if len(links.reviews) != 0 {
		t.Errorf("reviews %+v", links.reviews)
	}
	// Stable: the next delivery keeps the ids, even if the record changed.
	h.Postcode = "CB1 7AS"
	again, _ := linkAt(t, links, 3, "RGT", other, h)
	if again[0].PatientID != hosp[1].PatientID || again[1].PatientID != hosp[0].PatientID {
		t.Errorf("ids changed between deliveries: %v then %v", pids(hosp), pids(again))
	}
	if n := len(links.issued); n != 3 {
		t.Errorf("%d patient ids issued, want 3", n)
	}
	// Every record, NHS number or not, is in the match state, with its keys.
	for _, id := range []string{store.MatchID("D81001", "100101"), store.MatchID("RGT", "M1"), store.MatchID("RGT", "M2")} {
		r, ok := links.records[id]
		if !ok || len(r.Keys) == 0 {
			t.Errorf("match state of %q: %+v", id, r)
		}
	}
	if r := links.records[store.MatchID("RGT", "M1")]; r.Record.Postcode != "CB1 7AS" || r.PatientID != gp[0].PatientID {
		t.Errorf("match state not updated: %+v", r)
	}
}

func TestMatchWithinOrganisationDuplicates(t *testing.T) {
	t.Parallel()
	links := newFakeLinks()
	// Two local ids of one person in one batch, and a third in the next.
	linked, _ := linkAt(t, links, 1, "LA505", hattie("C1", ""), desmond("C2", ""), hattie("C3", ""))
	if linked[0].PatientID != linked[2].PatientID || linked[0].PatientID == linked[1].PatientID {
		t.Fatalf("patients %v: want C1 and C3 together, C2 apart", pids(linked))
	}
	next, _ := linkAt(t, links, 2, "LA505", hattie("C4", ""))
	if next[0].PatientID != linked[0].PatientID {
		t.Errorf("C4 got %d, want %d", next[0].PatientID, linked[0].PatientID)
	}
	// A record with an NHS number later in the batch is found too.
	links2 := newFakeLinks()
	l2, _ := linkAt(t, links2, 1, "LA505", hattie("C1", ""), hattie("C2", nhsB))
	if l2[0].PatientID != l2[1].PatientID {
		t.Errorf("patients %v: the record without an NHS number did not find the batch's record with one", pids(l2))
	}
	if len(links2.issued) != 1 {
		t.Errorf("%d ids issued", len(links2.issued))
	}
}

func TestMatchReviewBand(t *testing.T) {
	t.Parallel()
	links := newFakeLinks()
	gp, _ := linkAt(t, links, 1, "D81001", hattie("100101", nhsB))
	// Same names, no date of birth, a postcode in the same sector: a
	// possible match, not a certain one.
	maybe := hattie("C9", "")
	maybe.DateOfBirth, maybe.Postcode = "", "PE15 8RZ"
	linked, held := linkAt(t, links, 2, "LA505", maybe)
	if len(held) != 0 || len(linked) != 1 {
		t.Fatalf("linked %d held %d", len(linked), len(held))
	}
	if linked[0].PatientID == gp[0].PatientID {
		t.Fatal("a review-band record was merged automatically")
	}
	if len(links.reviews) != 1 {
		t.Fatalf("reviews %+v", links.reviews)
	}
	r := links.reviews[0]
	if r.PatientID != gp[0].PatientID || r.Assigned != linked[0].PatientID || r.LocalID != "C9" || r.OrgCode != "LA505" ||
		r.RunID != 2 || r.Line != 2 || !strings.HasPrefix(r.Reason, link.ReasonPossibleMatch) || r.NHSNumber != "" {
		t.Errorf("review %+v", r)
	}
	var ev struct {
		Decision    string
		Weight      float64
		Probability float64
		Candidate   struct {
			OrgCode string `json:"org_code"`
			LocalID string `json:"local_id"`
		} `json:"candidate"`
		Fields []struct {
			Field, Level string
			Weight       float64
		}
	}
	if err := json.Unmarshal([]byte(r.Evidence), &ev); err != nil {
		t.Fatalf("evidence %q: %v", r.Evidence, err)
	}
	if ev.Decision != "review" || ev.Probability < 0.5 || ev.Probability >= 0.99 || ev.Candidate.OrgCode != "D81001" ||
		ev.Candidate.LocalID != "100101" || len(ev.Fields) == 0 {
		t.Errorf("evidence %+v", ev)
	}
	levels := map[string]string{}
	for _, f := range ev.Fields {
		levels[f.Field] = f.Level
	}
	if levels["family_name"] != "exact" || levels["date_of_birth"] != "null" || levels["postcode"] != "sector" {
		t.Errorf("field levels %v", levels)
	}
	for _, v := range []string{"PENNINGTON", "HATTIE", "PE15", "1948"} {
		if strings.Contains(strings.ToUpper(r.Evidence), v) {
			t.Errorf("the evidence carries a patient value: %s", r.Evidence)
		}
	}
	// The review is not made again when the record comes back.
	linkAt(t, links, 3, "LA505", maybe)
	if len(links.reviews) != 1 {
		t.Errorf("%d reviews after the record came back", len(links.reviews))
	}
}

func TestMatchNeverJoinsDifferentNHSNumbers(t *testing.T) {
	t.Parallel()
	links := newFakeLinks()
	// Same demographics, two valid NHS numbers: two patients (the
	// deterministic rules never consult the matcher for a new NHS number).
	a, _ := linkAt(t, links, 1, "D81001", hattie("1", nhsB))
	b, _ := linkAt(t, links, 2, "RGT", hattie("M1", nhsD))
	if a[0].PatientID == b[0].PatientID {
		t.Fatal("two NHS numbers merged")
	}
	// A record without an NHS number that fits both is ambiguous: review.
	c, _ := linkAt(t, links, 3, "LA505", hattie("C1", ""))
	if c[0].PatientID == a[0].PatientID || c[0].PatientID == b[0].PatientID {
		t.Fatal("an ambiguous record was linked")
	}
	if len(links.reviews) != 1 || !strings.Contains(links.reviews[0].Reason, match.CautionAmbiguous) {
		t.Errorf("reviews %+v", links.reviews)
	}
}

func TestMatchPlaceholderIdentityNeverLinks(t *testing.T) {
	t.Parallel()
	links := newFakeLinks()
	unknown := func(local string) record.Person {
		return record.Person{LocalID: local, FamilyName: "UNKNOWN", GivenName: "ALPHA", DateOfBirth: "1970-01-01", Sex: "unknown",
			Postcode: "ZZ99 3WZ"}
	}
	a, _ := linkAt(t, links, 1, "RGT", unknown("M1"))
	b, _ := linkAt(t, links, 2, "RGT", unknown("M2"))
	if a[0].PatientID == b[0].PatientID {
		t.Fatal("two placeholder identities linked")
	}
}

func TestMatchNHSDemographicsConflict(t *testing.T) {
	t.Parallel()
	links := newFakeLinks()
	gp, _ := linkAt(t, links, 1, "D81001", hattie("100101", nhsB))
	// The same NHS number, no date of birth (so the DOB rule cannot see
	// it), and nothing else in common: held for review.
	wrong := record.Person{LocalID: "M7", NHSNumber: nhsB, FamilyName: "ELLERY", GivenName: "GRAHAM", Sex: "male", Postcode: "CB2 0QQ"}
	linked, held := linkAt(t, links, 2, "RGT", wrong, hattie("M8", nhsB))
	if len(held) != 1 || held[0].Reason != link.ReasonDemographicsConflict || held[0].Line != 2 {
		t.Fatalf("held %+v", held)
	}
	if len(linked) != 1 || linked[0].PatientID != gp[0].PatientID {
		t.Fatalf("linked %+v", linked)
	}
	if len(links.reviews) != 1 {
		t.Fatalf("reviews %+v", links.reviews)
	}
	r := links.reviews[0]
	if r.Reason != link.ReasonDemographicsConflict || r.PatientID != gp[0].PatientID || r.NHSNumber != nhsB || r.Assigned != 0 ||
		!strings.Contains(r.Evidence, `"demographic":-`) || strings.Contains(r.Evidence, "ELLERY") {
		t.Errorf("review %+v", r)
	}
	if _, ok := links.local["RGT"]["M7"]; ok {
		t.Error("the held record got a local link")
	}
	if _, ok := links.records[store.MatchID("RGT", "M7")]; ok {
		t.Error("the held record is in the match state")
	}
	// A record that changed its own demographics is not checked against
	// its own earlier version: it keeps its patient.
	moved := hattie("100101", nhsB)
	moved.FamilyName, moved.Postcode = "SMITH", "LS1 4AP"
	again, held := linkAt(t, links, 3, "D81001", moved)
	if len(held) != 0 || again[0].PatientID != gp[0].PatientID {
		t.Errorf("a changed record was held: %+v %+v", again, held)
	}
}

func TestMatchOneCandidateQueryPerBatch(t *testing.T) {
	t.Parallel()
	links := newFakeLinks()
	var batch []record.Person
	for i := range 50 {
		p := hattie("C"+string(rune('A'+i%26))+string(rune('A'+i/26)), "")
		if i%2 == 1 {
			p = desmond(p.LocalID, "")
		}
		batch = append(batch, p)
	}
	batch = append(batch, hattie("N1", nhsB))
	linked, _ := linkAt(t, links, 1, "LA505", batch...)
	if links.candidates != 1 {
		t.Errorf("%d candidate queries for one batch, want 1", links.candidates)
	}
	seen := map[int64]bool{}
	for _, p := range linked {
		seen[p.PatientID] = true
	}
	if len(seen) != 2 {
		t.Errorf("%d patients, want 2", len(seen))
	}
}

func TestMatchStoreErrors(t *testing.T) {
	t.Parallel()
	for _, method := range []string{"Candidates", "SaveMatch"} {
		t.Run(method, func(t *testing.T) {
			t.Parallel()
			links := newFakeLinks()
			links.fail = method
			_, _, err := link.New(links, 1).WithMatcher(newMatcher(t), match.DefaultThresholds()).Link(context.Background(), "rgt-patients", "RGT",
				[]record.Person{hattie("1", "")})
			var fe fakeError
			if !errors.As(err, &fe) || !strings.Contains(err.Error(), "rgt-patients") {
				t.Errorf("Link = %v, want the store's error naming the source", err)
			}
		})
	}
}

func TestPrepareRekeysWhenTheRulesChange(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	links := newFakeLinks()
	m := newMatcher(t)
	if n, err := link.Prepare(ctx, links, m, []byte(`{"v":1}`)); err != nil || n != 0 {
		t.Fatalf("Prepare on an empty store = %d, %v", n, err)
	}
	if links.meta == nil || links.meta.Signature != m.KeySignature() || string(links.meta.Model) != `{"v":1}` {
		t.Fatalf("meta %+v", links.meta)
	}
	linkAt(t, links, 1, "LA505", hattie("C1", ""), desmond("C2", ""))
	// Same rules: nothing to do.
	if n, err := link.Prepare(ctx, links, m, []byte(`{"v":1}`)); err != nil || n != 0 || links.rekeyed != 0 {
		t.Fatalf("Prepare with the same rules = %d, %v", n, err)
	}
	// New blocking rules: every record is filed again under the new keys.
	model := match.DefaultModel()
	model.Blocking = []match.BlockingRule{{Name: "dob", Parts: []string{"dob"}}}
	m2, err := match.NewMatcher(model, match.DefaultThresholds())
	if err != nil {
		t.Fatal(err)
	}
	n, err := link.Prepare(ctx, links, m2, []byte(`{"v":2}`))
	if err != nil || n != 2 || links.meta.Signature != m2.KeySignature() || string(links.meta.Model) != `{"v":2}` {
		t.Fatalf("Prepare with new rules = %d, %v; meta %+v", n, err, links.meta)
	}
	for _, r := range links.records {
		if len(r.Keys) != 1 || !strings.HasPrefix(r.Keys[0], "dob:") {
			t.Errorf("keys after rekeying: %d", len(r.Keys))
		}
	}
	// The new matcher finds the old records under the new keys.
	linked, _, err := link.New(links, 2).WithMatcher(m2, match.DefaultThresholds()).Link(ctx, "la505-clients", "LA505", []record.Person{hattie("C3", "")})
	if err != nil || linked[0].PatientID != links.local["LA505"]["C1"] {
		t.Errorf("after rekeying: %+v %v", linked, err)
	}
}

// TestMatchJoinsProvisionalPatients: within a batch, a record that links
// strongly to two new patients of the batch (split because they matched
// each other only weakly) joins them; an existing patient is never joined.
func TestMatchJoinsProvisionalPatients(t *testing.T) {
	t.Parallel()
	a := hattie("A", "")
	b := hattie("B", "") // no date of birth, a postcode in the sector: a possible match of A only
	b.DateOfBirth, b.Postcode = "", "PE15 8RZ"
	c := hattie("C", "") // no sex, B's postcode: strong with both
	c.Sex, c.Postcode = "", "PE15 8RZ"

	links := newFakeLinks()
	linker := link.New(links, 1).WithMatcher(newMatcher(t), match.DefaultThresholds())
	linked, _, err := linker.Link(context.Background(), "la505-clients", "LA505", []record.Person{a, b, c})
	if err != nil {
		t.Fatal(err)
	}
	if linked[0].PatientID != linked[1].PatientID || linked[1].PatientID != linked[2].PatientID {
		t.Errorf("patients %v: want one", pids(linked))
	}
	if st := linker.Stats(); st.Joined != 1 || st.Matched != 3 || st.New != 1 || st.Review != 1 {
		t.Errorf("stats %+v: want A new, B in review, C joining them", st)
	}
	if len(links.issued) != 1 {
		t.Errorf("%d ids issued, want 1", len(links.issued))
	}
	if len(links.reviews) != 0 {
		t.Errorf("reviews %+v: the batch linked the record it proposed", links.reviews)
	}

	// A already exists: B and C, new in the next batch, are held apart
	// from it (B in the review band, C ambiguous between A's patient and
	// B's new one).
	links = newFakeLinks()
	first, _ := linkAt(t, links, 1, "LA505", a)
	next, _ := linkAt(t, links, 2, "LA505", b, c)
	for i, p := range next {
		if p.PatientID == first[0].PatientID {
			t.Errorf("record %d joined the existing patient", i)
		}
	}
	if next[0].PatientID == next[1].PatientID {
		t.Error("an ambiguous record was joined to a new patient of the batch while an existing one also matched")
	}
	if len(links.reviews) != 2 || !strings.Contains(links.reviews[1].Reason, match.CautionAmbiguous) {
		t.Errorf("reviews %+v", links.reviews)
	}
}
