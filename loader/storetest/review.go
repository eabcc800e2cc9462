package storetest

import (
	"testing"
	"time"

	"github.com/careindex/careindex/loader/store"
	"github.com/careindex/careindex/transform/record"
)

// decisionsDelivery stages the delivery of testDecisions: L1 linked to x,
// L2 given the new patient a (a possible match of x), L3 and L4 held
// (their NHS number is x's, their dates of birth are not), L5 given the
// new patient b.
func decisionsDelivery(t testing.TB, s store.Store, run, x, a, b int64) (store.Delivery, []store.StagedPerson) {
	t.Helper()
	ctx := ctxFor(t)
	const nhs = "9434765919"
	l1 := person("gp", "A81001", "L1", 2, x, nhs, "ONE")
	l2 := person("gp", "A81001", "L2", 3, a, "", "TWO")
	l3 := person("gp", "A81001", "L3", 4, 0, nhs, "THREE")
	l4 := person("gp", "A81001", "L4", 5, 0, nhs, "FOUR")
	l5 := person("gp", "A81001", "L5", 6, b, "", "FIVE")
	st := try(s.BeginDelivery(ctx, run, store.Delivery{SourceID: "gp", OrgCode: "A81001", Kind: "persons", Name: "p1.csv", Hash: "h1",
		ReceivedAt: recv})).must(t)
	did := st.DeliveryID()
	if did <= 0 {
		t.Fatalf("DeliveryID = %d", did)
	}
	noErr(t, st.AddPersons(ctx, []store.StagedPerson{l1, l2, l5}))
	reason := "held for review"
	noErr(t, st.AddRejects(ctx, []store.Reject{{SourceID: "gp", File: l3.File, Line: l3.Line, Reason: reason},
		{SourceID: "gp", File: l4.File, Line: l4.Line, Reason: reason}}))
	l := s.Links()
	noErr(t, l.SaveNHS(ctx, map[string]store.Link{nhs: {PatientID: x, DateOfBirth: "1970-01-01"}}))
	noErr(t, l.SaveLocal(ctx, "A81001", map[string]int64{"L1": x, "L2": a, "L5": b}))
	noErr(t, l.SaveMatch(ctx, []store.MatchRecord{matchRec("A81001", "L1", x, 1, "k:x"), matchRec("A81001", "L2", a, 2, "k:x")}))
	ev := `{"weight":3.2,"probability":0.9,"fields":[{"field":"family_name","level":"exact","weight":4.1}]}`
	held3, held4 := l3.Person, l4.Person
	noErr(t, l.AddReviews(ctx, []store.Review{
		{RunID: run, SourceID: "gp", OrgCode: "A81001", LocalID: "L2", PatientID: x, Assigned: a, Reason: "possible match",
			File: l2.File, Line: l2.Line, Evidence: ev, DeliveryID: did},
		{RunID: run, SourceID: "gp", OrgCode: "A81001", LocalID: "L3", NHSNumber: nhs, PatientID: x, Reason: reason,
			File: l3.File, Line: l3.Line, DeliveryID: did, Held: &held3},
		{RunID: run, SourceID: "gp", OrgCode: "A81001", LocalID: "L4", NHSNumber: nhs, PatientID: x, Reason: reason,
			File: l4.File, Line: l4.Line, DeliveryID: did, Held: &held4},
		{RunID: run, SourceID: "gp", OrgCode: "A81001", LocalID: "L5", PatientID: a, Assigned: b, Reason: "possible match",
			File: l5.File, Line: l5.Line, Evidence: ev, DeliveryID: did},
	}))
	d := try(st.Commit(ctx, 5)).must(t)
	equal(t, "counts of the staged delivery", []int{d.RowsIn, d.Quarantined, d.Merged}, []int{5, 2, 0})
	return d, []store.StagedPerson{l1, l2, l3, l4, l5}
}

// publishPersons publishes a version of the persons streamed from d, each
// its own patient row, and returns the version.
func publishPersons(t testing.TB, s store.Store, run int64, d store.Delivery) int64 {
	t.Helper()
	ctx := ctxFor(t)
	cur := d
	if got, ok, err := s.CurrentDelivery(ctx, "gp"); err != nil {
		t.Fatal(err)
	} else if ok && got.ID == d.ID {
		cur = got
	}
	v := try(s.BeginVersion(ctx, run)).must(t)
	noErr(t, v.AddOrganisation(store.Organisation{OrgCode: "A81001", Name: "THE SURGERY", OrgType: "gp_practice", LastDeliveryAt: recv}))
	persons := streamPersons(t, s, d.ID)
	seen := map[int64]bool{}
	for _, p := range persons {
		if !seen[p.PatientID] {
			seen[p.PatientID] = true
			noErr(t, v.AddPatient(store.Patient{PatientID: p.PatientID, FamilyName: p.FamilyName, Status: "shared"}))
		}
		noErr(t, v.AddLocation(store.Location{PatientID: p.PatientID, OrgCode: p.OrgCode, LocalID: p.LocalID}))
	}
	noErr(t, v.Finish(ctx))
	o := store.SourceOutcome{SourceID: "gp", OrgCode: "A81001", Status: "new", DeliveryID: d.ID, Delivery: d.Name, RowsIn: cur.RowsIn,
		Loaded: len(persons), Quarantined: cur.Quarantined, Merged: cur.Merged}
	noErr(t, s.Swap(ctx, store.Swap{RunID: run, Version: v.Number(), Patients: len(seen), Locations: len(persons), Keep: 2,
		Sources: []store.SourceOutcome{o}}))
	return v.Number()
}

// testDecisions: decisions on review items are recorded once, pin their
// records, and, applied, merge patients, release held records into the
// delivery that held them and publish the merges for viewers.
func testDecisions(t *testing.T, b *Backend) {
	ctx := ctxFor(t)
	s := b.Store
	rv := s.Reviews()
	ids := try(s.Links().NewPatientIDs(ctx, 3)).must(t)
	x, a, bb := ids[0], ids[1], ids[2]
	run := startRun(t, s, "run", "gp")
	d, ps := decisionsDelivery(t, s, run, x, a, bb)
	v1 := publishPersons(t, s, run, d)
	finishRun(t, s, run)

	open := try(rv.ListReviews(ctx, false)).must(t)
	if len(open) != 4 {
		t.Fatalf("%d open review items, want 4", len(open))
	}
	byLocal := map[string]store.ReviewItem{}
	for _, r := range open {
		byLocal[r.LocalID] = r
		if r.Status != store.ReviewOpen || r.SourceID != "gp" || r.OrgCode != "A81001" || r.DeliveryID != d.ID || r.CreatedAt.IsZero() {
			t.Fatalf("review item %+v", r)
		}
	}
	r2, r3, r4, r5 := byLocal["L2"], byLocal["L3"], byLocal["L4"], byLocal["L5"]
	equal(t, "possible match item", []any{r2.PatientID, r2.Assigned, r2.Held(), r2.Line}, []any{x, a, false, 3})
	equal(t, "held item", []any{r3.PatientID, r3.Assigned, r3.Held()}, []any{x, int64(0), true})
	ri := try(rv.ReviewItem(ctx, r2.ID)).must(t)
	equal(t, "candidate locations", ri.Candidates, []store.Location{{PatientID: x, OrgCode: "A81001", LocalID: "L1"}})
	if ri.Evidence == "" || ri.Decision != nil {
		t.Fatalf("review item %+v", ri)
	}
	_, err := rv.ReviewItem(ctx, 987654)
	wantErr(t, err, store.ErrNoReview, "an unknown review item")

	at := time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)
	decide := func(id int64, kind store.DecisionKind) store.Decision {
		t.Helper()
		return try(rv.Decide(ctx, store.Decision{ReviewID: id, Kind: kind, By: "reviewer", At: at, Note: "checked"})).must(t)
	}
	link2 := decide(r2.ID, store.DecideLink)
	equal(t, "link of a possible match", link2, store.Decision{ReviewID: r2.ID, Kind: store.DecideLink, OrgCode: "A81001", LocalID: "L2",
		PatientID: x, OtherPatientID: a, By: "reviewer", At: at, Note: "checked",
		Change: &store.PatientChange{Kind: store.ChangeMerge, From: a, To: x, ReviewID: r2.ID, By: "reviewer", At: at}})
	_, err = rv.Decide(ctx, store.Decision{ReviewID: r2.ID, Kind: store.DecideSeparate, By: "other"})
	wantErr(t, err, store.ErrDecided, "deciding a decided item")
	_, err = rv.Decide(ctx, store.Decision{ReviewID: 987654, Kind: store.DecideLink, By: "other"})
	wantErr(t, err, store.ErrNoReview, "deciding an unknown item")
	link3 := decide(r3.ID, store.DecideLink)
	equal(t, "link of a held record", []any{link3.PatientID, link3.OtherPatientID, link3.Change == nil}, []any{x, int64(0), true})
	sep4 := decide(r4.ID, store.DecideSeparate)
	q := sep4.PatientID
	if q <= bb || sep4.OtherPatientID != x || sep4.Change == nil || *sep4.Change != (store.PatientChange{Kind: store.ChangeSplit, From: x, To: q,
		ReviewID: r4.ID, By: "reviewer", At: at}) {
		t.Fatalf("separate of a held record: %+v (change %+v): want a new patient split from %d", sep4, sep4.Change, x)
	}
	// r5 names a as its candidate; a is merged into x, so linking r5
	// merges b into x, the survivor.
	link5 := decide(r5.ID, store.DecideLink)
	equal(t, "link to a merged candidate", []any{link5.PatientID, link5.OtherPatientID}, []any{x, bb})

	equal(t, "open items after deciding", len(try(rv.ListReviews(ctx, false)).must(t)), 0)
	all := try(rv.ListReviews(ctx, true)).must(t)
	var statuses []string
	for _, r := range all {
		statuses = append(statuses, r.Status)
	}
	equal(t, "statuses", statuses, []string{store.ReviewLinked, store.ReviewLinked, store.ReviewSeparated, store.ReviewLinked})
	pins := try(s.Links().Pins(ctx, "A81001", []string{"L1", "L2", "L3", "L4", "L5"})).must(t)
	equal(t, "pins", pins, map[string]int64{"L2": x, "L3": x, "L4": q, "L5": x})
	equal(t, "pending decisions", try(rv.PendingDecisions(ctx)).must(t), 4)

	// A publishing run applies them.
	run = startRun(t, s, "publish")
	equal(t, "decisions applied", try(rv.ApplyDecisions(ctx, run)).must(t), 4)
	equal(t, "decisions applied again", try(rv.ApplyDecisions(ctx, run)).must(t), 0)
	equal(t, "local links", try(s.Links().ByLocal(ctx, "A81001", []string{"L1", "L2", "L3", "L4", "L5"})).must(t),
		map[string]int64{"L1": x, "L2": x, "L3": x, "L4": q, "L5": x})
	set := try(s.Links().Candidates(ctx, []string{"k:x"}, 10)).must(t)
	for _, c := range set.ByKey["k:x"] {
		if c.PatientID != x {
			t.Fatalf("match record %s kept patient %d, want %d", c.Record.ID, c.PatientID, x)
		}
	}
	got := streamPersons(t, s, d.ID)
	want := []store.StagedPerson{}
	for _, p := range ps {
		p.DeliveryID = d.ID
		switch p.LocalID {
		case "L4":
			p.PatientID = q
		default:
			p.PatientID = x
		}
		want = append(want, p)
	}
	// Ordered by patient, then line.
	want = []store.StagedPerson{want[0], want[1], want[2], want[4], want[3]}
	equal(t, "staged persons after the decisions", got, want)
	dd, ok, err := s.CurrentDelivery(ctx, "gp")
	if err != nil || !ok {
		t.Fatalf("CurrentDelivery: %v %v", ok, err)
	}
	equal(t, "counts after releasing the held records", []int{dd.RowsIn, dd.Quarantined, dd.Merged}, []int{5, 0, 0})

	v2 := publishPersons(t, s, run, d)
	finishRun(t, s, run)
	if v2 <= v1 {
		t.Fatalf("version %d after %d", v2, v1)
	}
	equal(t, "pending decisions after publishing", try(rv.PendingDecisions(ctx)).must(t), 0)
	snap := b.Published(t)
	equal(t, "published merges", snap.Merges, []MergeRow{{OldPatientID: a, PatientID: x, MergedAt: at}, {OldPatientID: bb, PatientID: x, MergedAt: at}})
	ri = try(rv.ReviewItem(ctx, r4.ID)).must(t)
	if ri.Decision == nil || ri.Decision.AppliedRun != run || ri.Decision.PublishedVersion != v2 || ri.Decision.Change == nil {
		t.Fatalf("decision after publishing: %+v", ri.Decision)
	}
	changes := try(rv.PatientChanges(ctx)).must(t)
	var kinds []string
	for _, c := range changes {
		kinds = append(kinds, c.Kind+":"+c.By)
	}
	equal(t, "patient changes", kinds, []string{"merge:reviewer", "split:reviewer", "merge:reviewer"})

	// A row staged later with a merged patient's id (a concurrent
	// extract-only run that read the links before the merge) is streamed
	// under the survivor, and so are its care items.
	run = startRun(t, s, "run", "gp2")
	late := person("gp2", "B82001", "L7", 2, a, "", "SEVEN")
	d2 := stage(t, s, run, store.Delivery{SourceID: "gp2", OrgCode: "B82001", Kind: "persons", Name: "p2.csv", Hash: "h2", ReceivedAt: recv},
		[]store.StagedPerson{late}, nil, nil, 1)
	items := stage(t, s, run, store.Delivery{SourceID: "gp2-items", OrgCode: "B82001", Kind: "care_items", Name: "i2.csv", Hash: "i2",
		ReceivedAt: recv}, nil, []record.CareItem{item("gp2-items", "B82001", "L7", 2, "I1", "C1", "2026-01-01")}, nil, 1)
	finishRun(t, s, run)
	late.DeliveryID, late.PatientID = d2.ID, x
	equal(t, "a late row of a merged patient", streamPersons(t, s, d2.ID), []store.StagedPerson{late})
	if got := streamItems(t, s, []int64{items.ID}, []int64{d2.ID}); len(got) != 1 || got[0].PatientID != x {
		t.Fatalf("care items of a late row of a merged patient: %+v, want patient %d", got, x)
	}

	// A link that would merge patients a decision kept apart is refused.
	noErr(t, s.Links().AddReviews(ctx, []store.Review{{RunID: run, SourceID: "gp", OrgCode: "A81001", LocalID: "L9", PatientID: x, Assigned: q,
		Reason: "possible match", File: "p.csv", Line: 9}}))
	var r9 int64
	for _, r := range try(rv.ListReviews(ctx, false)).must(t) {
		r9 = r.ID
	}
	_, err = rv.Decide(ctx, store.Decision{ReviewID: r9, Kind: store.DecideLink, By: "reviewer"})
	wantErr(t, err, store.ErrDecisionConflict, "linking patients a decision kept apart")
	equal(t, "the refused item stays open", len(try(rv.ListReviews(ctx, false)).must(t)), 1)
}
