// Package storetest is the conformance suite of store.Store backends. It
// drives a backend through the contract directly (no pipeline) and reads
// what a viewer sees through the published views, so that every backend
// is held to the same behaviour as the reference, pgstore:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) *storetest.Backend { … })
//	}
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/careindex/careindex/loader/store"
	"github.com/careindex/careindex/transform/record"
)

// Backend is one store under test.
type Backend struct {
	// Store is a migrated store on a database of its own, empty.
	Store store.Store
	// Reopen opens another Store on the same database, as another process
	// would. The suite closes it (Close may be called twice).
	Reopen func(t *testing.T) store.Store
	// Published reads the published contract as a viewer does, on
	// connections of its own (see ReadSnapshot).
	Published func(t testing.TB) Snapshot
	// The backend's sentinel errors.
	ErrBusy, ErrCheck, ErrNoPublication error
}

// Run runs the conformance suite. newBackend is called once per test.
func Run(t *testing.T, newBackend func(t *testing.T) *Backend) {
	tests := []struct {
		name string
		fn   func(*testing.T, *Backend)
	}{
		{"Migrate", testMigrate},
		{"RunLedger", testRunLedger},
		{"BalanceCheck", testBalanceCheck},
		{"Busy", testBusy},
		{"Abandoned", testAbandoned},
		{"Stage", testStage},
		{"StageDeliveries", testStageDeliveries},
		{"HeldDeliveries", testHeldDeliveries},
		{"Publish", testPublish},
		{"SwapRefuses", testSwapRefuses},
		{"Previous", testPrevious},
		{"PreviousNothing", testPreviousNothing},
		{"RollbackAndKeep", testRollbackAndKeep},
		{"Compliance", testCompliance},
		{"AbortVersion", testAbortVersion},
		{"UnfinishedVersion", testUnfinishedVersion},
		{"Links", testLinks},
		{"MatchState", testMatchState},
		{"Filed", testFiled},
		{"ReviewEvidence", testReviewEvidence},
		{"Decisions", testDecisions},
		{"DeltaContact", testDeltaContact},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newBackend(t))
		})
	}
}

var (
	t0   = time.Date(2026, 3, 1, 1, 30, 0, 0, time.UTC)
	recv = time.Date(2026, 2, 28, 22, 15, 7, 123456000, time.UTC)
)

func ctxFor(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// result carries a call's value and error to must.
type result[T any] struct {
	v   T
	err error
}

func try[T any](v T, err error) result[T] { return result[T]{v, err} }

func (r result[T]) must(t testing.TB) T {
	t.Helper()
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.v
}

func noErr(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErr(t testing.TB, err, target error, what string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error, want %v", what, target)
	}
	if target != nil && !errors.Is(err, target) {
		t.Fatalf("%s: error %v does not wrap %v", what, err, target)
	}
}

func equal(t testing.TB, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

func startRun(t testing.TB, st store.Store, kind string, sources ...string) int64 {
	t.Helper()
	id, err := st.StartRun(ctxFor(t), store.RunInfo{Kind: kind, Sources: sources, Started: t0})
	if err != nil {
		t.Fatalf("starting a %s run: %v", kind, err)
	}
	if id <= 0 {
		t.Fatalf("run id %d", id)
	}
	return id
}

func finishRun(t testing.TB, st store.Store, runID int64, outcomes ...store.SourceOutcome) {
	t.Helper()
	noErr(t, st.FinishRun(ctxFor(t), runID, store.RunSucceeded, "", outcomes))
}

// eventually retries fn for a while: a killed session's locks go when the
// server notices, not at once.
func eventually(t testing.TB, what string, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func testMigrate(t *testing.T, b *Backend) {
	ctx := ctxFor(t)
	noErr(t, b.Store.Migrate(ctx))
	noErr(t, b.Store.Migrate(ctx))
	if _, ok, err := b.Store.Live(ctx); err != nil || ok {
		t.Fatalf("Live on an empty store: %v, %v", ok, err)
	}
	st := try(b.Store.Status(ctx, 10)).must(t)
	if st.Live != nil || st.Runs == nil || len(st.Runs) != 0 || len(st.Sources) != 0 {
		t.Fatalf("Status of an empty store: %+v", st)
	}
	equal(t, "published contract of an empty store", b.Published(t), Snapshot{})
	// A store opened again (as by another process) migrates as a no-op.
	other := b.Reopen(t)
	noErr(t, other.Migrate(ctx))
	noErr(t, other.Close())
}

func testRunLedger(t *testing.T, b *Backend) {
	ctx := ctxFor(t)
	s := b.Store
	before := time.Now()
	id := startRun(t, s, "run", "a", "b", "c")
	st := try(s.Status(ctx, 10)).must(t)
	if len(st.Runs) != 1 {
		t.Fatalf("runs %+v", st.Runs)
	}
	r := st.Runs[0]
	if r.RunID != id || r.Kind != "run" || r.Status != store.RunRunning || !r.StartedAt.Equal(t0) || r.FinishedAt != nil ||
		r.Sources == nil || len(r.Sources) != 0 || r.Version != 0 {
		t.Fatalf("open run %+v", r)
	}
	outcomes := []store.SourceOutcome{
		{SourceID: "b", OrgCode: "B82002", Status: "failed", Error: "b: file unreadable"},
		{SourceID: "a", OrgCode: "A81001", Status: "new", DeliveryID: 0, Delivery: "a.csv", RowsIn: 10, Loaded: 6, Quarantined: 1,
			Withheld: 2, Merged: 1, Duplicates: 2}, // duplicates are informational: outside the balance
		{SourceID: "c", OrgCode: "C83003", Status: "skipped"},
	}
	noErr(t, s.FinishRun(ctx, id, store.RunFailed, "1 source failed", outcomes))
	st = try(s.Status(ctx, 10)).must(t)
	r = st.Runs[0]
	if r.Status != store.RunFailed || r.Message != "1 source failed" || r.FinishedAt == nil || r.FinishedAt.Before(before.Add(-time.Second)) {
		t.Fatalf("finished run %+v", r)
	}
	equal(t, "run sources", r.Sources, []store.SourceOutcome{outcomes[1], outcomes[0], outcomes[2]})
	// The sources attempted have a state; a skipped one does not.
	if len(st.Sources) != 2 || st.Sources[0].SourceID != "a" || st.Sources[1].SourceID != "b" {
		t.Fatalf("source states %+v", st.Sources)
	}
	for _, ss := range st.Sources {
		if ss.LastAttemptAt == nil || ss.Delivery != "" || ss.LastDeliveryAt != nil || ss.Stale {
			t.Fatalf("source state %+v", ss)
		}
	}

	// The lock is released: the next run starts. Kind defaults to "run".
	id2 := try(s.StartRun(ctx, store.RunInfo{Started: t0.Add(time.Hour)})).must(t)
	if id2 <= id {
		t.Fatalf("run ids %d then %d", id, id2)
	}
	// An extract-only run records pending rows; they balance.
	extract := []store.SourceOutcome{{SourceID: "a", OrgCode: "A81001", Status: "staged", RowsIn: 9, Quarantined: 2, Merged: 1, Pending: 6}}
	noErr(t, s.FinishRun(ctx, id2, store.RunUnchanged, "", extract))
	st = try(s.Status(ctx, 1)).must(t)
	if len(st.Runs) != 1 || st.Runs[0].RunID != id2 || st.Runs[0].Kind != "run" || st.Runs[0].Status != store.RunUnchanged {
		t.Fatalf("Status(1): %+v", st.Runs)
	}
	equal(t, "extract outcomes", st.Runs[0].Sources, extract)
}

func testBalanceCheck(t *testing.T, b *Backend) {
	ctx := ctxFor(t)
	s := b.Store
	id := startRun(t, s, "run", "a")
	bad := store.SourceOutcome{SourceID: "a", OrgCode: "A81001", Status: "new", RowsIn: 10, Loaded: 8, Quarantined: 1}
	if err := s.FinishRun(ctx, id, store.RunSucceeded, "", []store.SourceOutcome{bad}); err == nil {
		t.Fatal("FinishRun recorded a source whose rows do not balance")
	}
	good := bad
	good.Merged = 1
	noErr(t, s.FinishRun(ctx, id, store.RunSucceeded, "", []store.SourceOutcome{good}))
	st := try(s.Status(ctx, 1)).must(t)
	equal(t, "outcomes", st.Runs[0].Sources, []store.SourceOutcome{good})
	if st.Runs[0].Status != store.RunSucceeded {
		t.Fatalf("run %+v", st.Runs[0])
	}
}

func testBusy(t *testing.T, b *Backend) {
	ctx := ctxFor(t)
	s := b.Store
	other := b.Reopen(t)
	defer other.Close()
	r1 := startRun(t, s, "run", "a")
	_, err := s.StartRun(ctx, store.RunInfo{Kind: "run", Started: t0})
	wantErr(t, err, b.ErrBusy, "a second publishing run in the same process")
	_, err = other.StartRun(ctx, store.RunInfo{Kind: "publish", Started: t0})
	wantErr(t, err, b.ErrBusy, "a publishing run in another process")
	_, err = other.StartRun(ctx, store.RunInfo{Kind: "extract", Sources: []string{"b", "a"}, Started: t0})
	wantErr(t, err, b.ErrBusy, "extracting a source another run extracts")
	// Extracting another source does not conflict.
	r2 := startRun(t, other, "extract", "b")
	_, err = s.StartRun(ctx, store.RunInfo{Kind: "extract", Sources: []string{"b"}, Started: t0})
	wantErr(t, err, b.ErrBusy, "extracting a source another process extracts")
	// A refused run releases what it took: "b" was refused, "c" was free.
	r3 := startRun(t, s, "extract", "c")
	finishRun(t, s, r3)

	finishRun(t, s, r1)
	// The publish lock is free again; r2 still holds b.
	r4 := startRun(t, other, "publish")
	_, err = s.StartRun(ctx, store.RunInfo{Kind: "run", Sources: []string{"a"}, Started: t0})
	wantErr(t, err, b.ErrBusy, "a publishing run while another publishes")
	finishRun(t, other, r4)
	finishRun(t, other, r2)
	r5 := startRun(t, s, "run", "a", "b", "c")
	st := try(s.Status(ctx, 10)).must(t)
	for _, r := range st.Runs {
		if r.RunID != r5 && r.Status != store.RunSucceeded {
			t.Fatalf("run %d is %s", r.RunID, r.Status)
		}
	}
	finishRun(t, s, r5)
}

func testAbandoned(t *testing.T, b *Backend) {
	ctx := ctxFor(t)
	s := b.Store
	// A run in a live process is not abandoned by a run that starts
	// beside it.
	alive := b.Reopen(t)
	defer alive.Close()
	rAlive := startRun(t, alive, "extract", "x")

	// A process that dies with a run open: its locks go, its run is
	// abandoned by the next run.
	dead := b.Reopen(t)
	rDead := startRun(t, dead, "run", "a")
	noErr(t, dead.Close())
	var rNext int64
	eventually(t, "starting a run after the holder died", func() error {
		id, err := s.StartRun(ctx, store.RunInfo{Kind: "run", Sources: []string{"a"}, Started: t0})
		if err != nil {
			return err
		}
		st, err := s.Status(ctx, 10)
		if err != nil {
			return err
		}
		for _, r := range st.Runs {
			if r.RunID == rDead && r.Status != store.RunAbandoned {
				noErr(t, s.FinishRun(ctx, id, store.RunFailed, "retrying", nil))
				return fmt.Errorf("the dead process's run is %s", r.Status)
			}
		}
		rNext = id
		return nil
	})
	st := try(s.Status(ctx, 10)).must(t)
	byID := map[int64]store.RunSummary{}
	for _, r := range st.Runs {
		byID[r.RunID] = r
	}
	if r := byID[rDead]; r.Status != store.RunAbandoned || r.FinishedAt == nil || r.Message == "" {
		t.Fatalf("dead run %+v", r)
	}
	if r := byID[rAlive]; r.Status != store.RunRunning {
		t.Fatalf("the run of a live process is %s", r.Status)
	}
	if r := byID[rNext]; r.Status != store.RunRunning {
		t.Fatalf("new run %+v", r)
	}
	finishRun(t, s, rNext)
	finishRun(t, alive, rAlive)
}

// person returns a staged person at org.
func person(src, org, local string, line int, pid int64, nhs, family string) store.StagedPerson {
	return store.StagedPerson{PatientID: pid, Person: record.Person{
		Provenance: record.Provenance{SourceID: src, OrgCode: org, File: "patients.csv", Line: line},
		LocalID:    local, NHSNumber: nhs, FamilyName: family, GivenName: "ANN", DateOfBirth: "1970-01-0" + fmt.Sprint(1+line%9),
		Sex: "female", Postcode: "LS1 4AP", GPPractice: "B86001"}}
}

func item(src, org, local string, line int, itemID, code, start string) record.CareItem {
	return record.CareItem{Provenance: record.Provenance{SourceID: src, OrgCode: org, File: "items.csv", Line: line},
		LocalID: local, ItemID: itemID, Kind: "problem", CodeSystem: "http://snomed.info/sct", Code: code, Display: "display " + code,
		StartDate: start, Status: "active"}
}

func stage(t testing.TB, s store.Store, runID int64, d store.Delivery, persons []store.StagedPerson, items []record.CareItem,
	rejects []store.Reject, rowsIn int) store.Delivery {
	t.Helper()
	ctx := ctxFor(t)
	st := try(s.BeginDelivery(ctx, runID, d)).must(t)
	// In batches, as the pipeline does.
	for i := 0; i < len(persons); i += 1000 {
		noErr(t, st.AddPersons(ctx, persons[i:min(i+1000, len(persons))]))
	}
	for i := 0; i < len(items); i += 1000 {
		noErr(t, st.AddItems(ctx, items[i:min(i+1000, len(items))]))
	}
	if len(rejects) > 0 {
		noErr(t, st.AddRejects(ctx, rejects))
	}
	return try(st.Commit(ctx, rowsIn)).must(t)
}

func streamPersons(t testing.TB, s store.Store, deliveries ...int64) []store.StagedPerson {
	t.Helper()
	var out []store.StagedPerson
	noErr(t, s.StreamPersons(ctxFor(t), deliveries, func(p store.StagedPerson) error { out = append(out, p); return nil }))
	return out
}

func streamItems(t testing.TB, s store.Store, items, persons []int64) []store.StagedItem {
	t.Helper()
	var out []store.StagedItem
	noErr(t, s.StreamItems(ctxFor(t), items, persons, func(i store.StagedItem) error { out = append(out, i); return nil }))
	return out
}

func testStage(t *testing.T, b *Backend) {
	ctx := ctxFor(t)
	s := b.Store
	run := startRun(t, s, "run", "gp", "gp-items")
	ids := try(s.Links().NewPatientIDs(ctx, 3)).must(t)
	p1, p2, p3 := ids[0], ids[1], ids[2]
	sensitive := person("gp", "A81001", "L3", 4, p3, "", "THIRD")
	sensitive.Sensitive, sensitive.Objection, sensitive.Address = true, "all", "1 HIGH STREET, LEEDS"
	sensitive.Email, sensitive.Phone = "third@example.org", "0113 496 0000"
	persons0 := person("gp", "A81001", "L2", 2, p2, "9434765919", "SECOND")
	persons0.Objection = "B82002;C83003"
	persons := []store.StagedPerson{
		persons0,
		person("gp", "A81001", "L1", 3, p1, "9434765870", "FIRST"),
		sensitive,
		person("gp", "A81001", "L1", 5, p1, "9434765870", "FIRST-DUPLICATE"),
		person("gp", "A81001", "L2", 6, p2, "9434765919", "SECOND-DUPLICATE"),
	}
	rejects := []store.Reject{{SourceID: "gp", File: "patients.csv", Line: 7, Reason: "nhs_number: bad check digit", Raw: "x,y"},
		{SourceID: "gp", File: "patients.csv", Line: 8, Reason: "date_of_birth: in the future", Raw: "z"}}
	want := store.Delivery{SourceID: "gp", OrgCode: "A81001", Kind: "persons", Name: "patients_20260228.csv", Hash: "h0", ReceivedAt: recv}
	st := try(s.BeginDelivery(ctx, run, want)).must(t)
	noErr(t, st.AddPersons(ctx, persons[:2]))
	noErr(t, st.AddRejects(ctx, rejects[:1]))
	noErr(t, st.AddPersons(ctx, persons[2:]))
	noErr(t, st.AddRejects(ctx, rejects[1:]))
	noErr(t, st.AddPersons(ctx, nil))
	noErr(t, st.SetHash(ctx, "h1"))
	pd := try(st.Commit(ctx, 7)).must(t)
	want.ID, want.Hash, want.RowsIn, want.Quarantined, want.Merged = pd.ID, "h1", 7, 2, 2
	if pd.ID <= 0 {
		t.Fatalf("delivery id %d", pd.ID)
	}
	sameDelivery(t, "committed delivery", pd, want)

	// Unmerged persons, by patient id; the first line of a key wins.
	got := streamPersons(t, s, pd.ID)
	wantP := []store.StagedPerson{persons[1], persons[0], persons[2]}
	for i := range wantP {
		wantP[i].DeliveryID = pd.ID
	}
	slices.SortFunc(wantP, func(a, b store.StagedPerson) int { return int(a.PatientID - b.PatientID) })
	equal(t, "streamed persons", got, wantP)
	if len(streamPersons(t, s)) != 0 {
		t.Fatal("StreamPersons of no deliveries streamed rows")
	}
	stop := errors.New("stop")
	if err := s.StreamPersons(ctx, []int64{pd.ID}, func(store.StagedPerson) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("StreamPersons returned %v, want the callback's error", err)
	}

	// Care items: duplicates by item id and by key are merged.
	items := []record.CareItem{
		item("gp-items", "A81001", "L1", 2, "X1", "100", "2020-01-01"),
		item("gp-items", "A81001", "L9", 3, "", "200", ""),
		item("gp-items", "A81001", "L1", 4, "X1", "101", "2020-02-02"), // same item id as line 2
		item("gp-items", "A81001", "L2", 5, "", "300", "2021-05-05"),
		item("gp-items", "A81001", "L2", 6, "", "300", "2021-05-05"), // same key as line 5
		item("gp-items", "A81001", "L2", 7, "", "300", "2021-06-06"), // another start date: another item
		item("gp-items", "A81001", "L3", 8, "I8", "400", ""),
	}
	items[6].EndDate = "2022-12-31"
	id := stage(t, s, run, store.Delivery{SourceID: "gp-items", OrgCode: "A81001", Kind: "care_items", Name: "items.csv", Hash: "ih",
		ReceivedAt: recv}, nil, items, nil, 7)
	if id.Merged != 2 || id.RowsIn != 7 || id.Quarantined != 0 {
		t.Fatalf("committed item delivery %+v", id)
	}
	si := func(i record.CareItem, pid int64) store.StagedItem {
		i.SourceID = "gp-items"
		return store.StagedItem{CareItem: i, DeliveryID: id.ID, PatientID: pid}
	}
	wantI := []store.StagedItem{si(items[1], 0), si(items[0], p1), si(items[3], p2), si(items[5], p2), si(items[6], p3)}
	equal(t, "streamed items", streamItems(t, s, []int64{id.ID}, []int64{pd.ID}), wantI)
	// Without person deliveries no item has a patient.
	for _, i := range streamItems(t, s, []int64{id.ID}, nil) {
		if i.PatientID != 0 {
			t.Fatalf("item %+v has a patient without person deliveries", i)
		}
	}
	finishRun(t, s, run)
}

func testStageDeliveries(t *testing.T, b *Backend) {
	ctx := ctxFor(t)
	s := b.Store
	pid := try(s.Links().NewPatientIDs(ctx, 1)).must(t)[0]
	d := func(name string) store.Delivery {
		return store.Delivery{SourceID: "gp", OrgCode: "A81001", Kind: "persons", Name: name, Hash: name, ReceivedAt: recv}
	}
	ps := []store.StagedPerson{person("gp", "A81001", "L1", 2, pid, "", "ONE")}

	// An extract-only run stages d1: it is pending.
	run := startRun(t, s, "extract", "gp")
	if _, ok, err := s.PendingDelivery(ctx, "gp"); err != nil || ok {
		t.Fatalf("PendingDelivery before staging: %v %v", ok, err)
	}
	d1 := stage(t, s, run, d("d1"), ps, nil, nil, 1)
	got, ok, err := s.PendingDelivery(ctx, "gp")
	if err != nil || !ok || got.ID != d1.ID {
		t.Fatalf("PendingDelivery %+v %v %v, want %d", got, ok, err, d1.ID)
	}
	sameDelivery(t, "pending delivery", got, d1)
	finishRun(t, s, run)

	// A delivery left half-staged (its run was killed) is discarded by
	// the next BeginDelivery of the source; a staged one is not.
	run = startRun(t, s, "extract", "gp")
	half := try(s.BeginDelivery(ctx, run, d("half"))).must(t)
	noErr(t, half.AddPersons(ctx, ps))
	d2 := stage(t, s, run, d("d2"), ps, nil, nil, 1)
	if len(streamPersons(t, s, d1.ID)) != 1 {
		t.Fatal("staging d2 discarded the staged d1")
	}
	got, _, _ = s.PendingDelivery(ctx, "gp")
	if got.ID != d2.ID {
		t.Fatalf("pending delivery %d, want the newest, %d", got.ID, d2.ID)
	}
	// An aborted delivery is discarded, and only it.
	ab := try(s.BeginDelivery(ctx, run, d("aborted"))).must(t)
	noErr(t, ab.AddPersons(ctx, ps))
	noErr(t, ab.Abort(ctx))
	got, _, _ = s.PendingDelivery(ctx, "gp")
	if got.ID != d2.ID || len(streamPersons(t, s, d2.ID)) != 1 {
		t.Fatalf("aborting a delivery disturbed the pending one: %+v", got)
	}
	finishRun(t, s, run)

	// Publishing d2 makes it current; d1, older than a published delivery,
	// is discarded and nothing is pending.
	run = startRun(t, s, "publish")
	v := try(s.BeginVersion(ctx, run)).must(t)
	noErr(t, v.AddPatient(store.Patient{PatientID: pid, Status: "shared"}))
	noErr(t, v.AddLocation(store.Location{PatientID: pid, OrgCode: "A81001", LocalID: "L1"}))
	noErr(t, v.Finish(ctx))
	if _, ok, _ := s.CurrentDelivery(ctx, "gp"); ok {
		t.Fatal("a current delivery before anything was published")
	}
	noErr(t, s.Swap(ctx, store.Swap{RunID: run, Version: v.Number(), Patients: 1, Locations: 1, Keep: 2,
		Sources: []store.SourceOutcome{{SourceID: "gp", OrgCode: "A81001", Status: "pending", DeliveryID: d2.ID, Delivery: "d2", RowsIn: 1, Loaded: 1}}}))
	cur, ok, err := s.CurrentDelivery(ctx, "gp")
	if err != nil || !ok {
		t.Fatalf("CurrentDelivery: %v %v", ok, err)
	}
	sameDelivery(t, "current delivery", cur, d2)
	if _, ok, _ := s.PendingDelivery(ctx, "gp"); ok {
		t.Fatal("a delivery is still pending after publishing the newest")
	}
	if len(streamPersons(t, s, d1.ID)) != 0 {
		t.Fatal("d1, older than the published d2, was not discarded")
	}
	if len(streamPersons(t, s, d2.ID)) != 1 {
		t.Fatal("the published delivery lost its staged rows")
	}
	finishRun(t, s, run)

	// Staging again leaves the published delivery alone.
	run = startRun(t, s, "run", "gp")
	d3 := stage(t, s, run, d("d3"), ps, nil, nil, 1)
	if len(streamPersons(t, s, d2.ID)) != 1 {
		t.Fatal("staging a new delivery discarded the published one")
	}
	if got, _, _ := s.PendingDelivery(ctx, "gp"); got.ID != d3.ID {
		t.Fatalf("pending %d, want %d", got.ID, d3.ID)
	}
	if cur, _, _ := s.CurrentDelivery(ctx, "gp"); cur.ID != d2.ID {
		t.Fatalf("current %d, want %d", cur.ID, d2.ID)
	}
	finishRun(t, s, run)
}

func testHeldDeliveries(t *testing.T, b *Backend) {
	ctx := ctxFor(t)
	s := b.Store
	pid := try(s.Links().NewPatientIDs(ctx, 1)).must(t)[0]
	ps := []store.StagedPerson{person("gp", "A81001", "L1", 2, pid, "", "ONE")}
	d := func(name string) store.Delivery {
		return store.Delivery{SourceID: "gp", OrgCode: "A81001", Kind: "persons", Name: name, Hash: name, ReceivedAt: recv}
	}
	noneHeld := func(what string) {
		t.Helper()
		if got, ok, err := s.AcceptHeld(ctx, "gp"); err != nil || ok {
			t.Fatalf("%s: AcceptHeld %+v %v %v, want none", what, got, ok, err)
		}
	}
	noneHeld("nothing staged")

	// A held delivery is not pending until accepted.
	run := startRun(t, s, "extract", "gp")
	d1 := stage(t, s, run, d("d1"), ps, nil, nil, 1)
	noErr(t, s.HoldDelivery(ctx, d1.ID, "a snapshot 90% smaller than the last"))
	if p, ok, err := s.PendingDelivery(ctx, "gp"); err != nil || ok {
		t.Fatalf("PendingDelivery of a held delivery: %+v %v %v", p, ok, err)
	}
	got, ok, err := s.AcceptHeld(ctx, "gp")
	if err != nil || !ok {
		t.Fatalf("AcceptHeld: %v %v", ok, err)
	}
	sameDelivery(t, "accepted delivery", got, d1)
	p, ok, err := s.PendingDelivery(ctx, "gp")
	if err != nil || !ok || p.ID != d1.ID {
		t.Fatalf("PendingDelivery after accepting: %+v %v %v", p, ok, err)
	}
	noneHeld("after accepting")
	finishRun(t, s, run)

	// Only a staged delivery can be held: a published one stays current.
	run = startRun(t, s, "publish")
	v := try(s.BeginVersion(ctx, run)).must(t)
	noErr(t, v.AddPatient(store.Patient{PatientID: pid, Status: "shared"}))
	noErr(t, v.AddLocation(store.Location{PatientID: pid, OrgCode: "A81001", LocalID: "L1"}))
	noErr(t, v.Finish(ctx))
	noErr(t, s.Swap(ctx, store.Swap{RunID: run, Version: v.Number(), Patients: 1, Locations: 1, Keep: 2,
		Sources: []store.SourceOutcome{{SourceID: "gp", OrgCode: "A81001", Status: "pending", DeliveryID: d1.ID, Delivery: "d1", RowsIn: 1, Loaded: 1}}}))
	finishRun(t, s, run)
	noErr(t, s.HoldDelivery(ctx, d1.ID, "too late"))
	noneHeld("holding a published delivery")
	if cur, ok, _ := s.CurrentDelivery(ctx, "gp"); !ok || cur.ID != d1.ID {
		t.Fatalf("current delivery %+v %v", cur, ok)
	}

	// A held delivery older than the one published next is dropped.
	run = startRun(t, s, "run", "gp")
	d2 := stage(t, s, run, d("d2"), ps, nil, nil, 1)
	noErr(t, s.HoldDelivery(ctx, d2.ID, "smaller"))
	d3 := stage(t, s, run, d("d3"), ps, nil, nil, 1)
	v = try(s.BeginVersion(ctx, run)).must(t)
	noErr(t, v.AddPatient(store.Patient{PatientID: pid, Status: "shared"}))
	noErr(t, v.AddLocation(store.Location{PatientID: pid, OrgCode: "A81001", LocalID: "L1"}))
	noErr(t, v.Finish(ctx))
	noErr(t, s.Swap(ctx, store.Swap{RunID: run, Version: v.Number(), Patients: 1, Locations: 1, Keep: 2,
		Sources: []store.SourceOutcome{{SourceID: "gp", OrgCode: "A81001", Status: "new", DeliveryID: d3.ID, Delivery: "d3", RowsIn: 1, Loaded: 1}}}))
	finishRun(t, s, run)
	noneHeld("a held delivery older than the published one")
	if len(streamPersons(t, s, d2.ID)) != 0 {
		t.Fatal("the dropped held delivery kept its staged rows")
	}
}

// content is what a test puts in a version.
type content struct {
	orgs      []store.Organisation
	patients  []store.Patient
	locations []store.Location
	items     []store.Item
}

// published is what a viewer should see of c once live.
func (c content) published() Snapshot {
	s := Snapshot{Organisations: c.orgs, Locations: c.locations, Items: c.items}
	for _, p := range c.patients {
		if p.Status == "withheld" {
			p = store.Patient{PatientID: p.PatientID, NHSNumber: p.NHSNumber, Status: p.Status}
		}
		s.Patients = append(s.Patients, p)
	}
	return s.Normalise()
}

func (c content) build(t testing.TB, s store.Store, run int64) store.Version {
	t.Helper()
	ctx := ctxFor(t)
	v := try(s.BeginVersion(ctx, run)).must(t)
	for _, o := range c.orgs {
		noErr(t, v.AddOrganisation(o))
	}
	for _, p := range c.patients {
		noErr(t, v.AddPatient(p))
	}
	for _, l := range c.locations {
		noErr(t, v.AddLocation(l))
	}
	for _, i := range c.items {
		noErr(t, v.AddItem(i))
	}
	noErr(t, v.Finish(ctx))
	return v
}

func (c content) swap(run, version int64) store.Swap {
	return store.Swap{RunID: run, Version: version, RegisterHash: "reg", Patients: len(c.patients), Locations: len(c.locations),
		Items: len(c.items), Keep: 2}
}

// sample is a small valid version; n varies its contents.
func sample(n int) content {
	org := store.Organisation{OrgCode: "A81001", Name: "THE SURGERY", OrgType: "gp_practice", LastDeliveryAt: recv}
	c := content{orgs: []store.Organisation{org}}
	for i := int64(1); i <= 3; i++ {
		pid := int64(n)*100 + i
		c.patients = append(c.patients, store.Patient{PatientID: pid, NHSNumber: fmt.Sprintf("94347659%02d", i), FamilyName: fmt.Sprintf("V%d", n),
			GivenName: "P", DateOfBirth: "1980-02-29", Sex: "male", Postcode: "LS1 4AP", GPPractice: "A81001", Status: "shared"})
		c.locations = append(c.locations, store.Location{PatientID: pid, OrgCode: "A81001", LocalID: fmt.Sprintf("L%d", pid)})
		c.items = append(c.items, store.Item{PatientID: pid, OrgCode: "A81001", Kind: "allergy", CodeSystem: "http://snomed.info/sct",
			Code: fmt.Sprint(n), Display: "allergy", StartDate: "2020-01-01", Status: "active"})
	}
	return c
}

// publishSample publishes sample(n) in a run of its own.
func publishSample(t testing.TB, s store.Store, n int) (run, version int64) {
	t.Helper()
	run = startRun(t, s, "publish")
	c := sample(n)
	v := c.build(t, s, run)
	noErr(t, s.Swap(ctxFor(t), c.swap(run, v.Number())))
	finishRun(t, s, run)
	return run, v.Number()
}

// checkLive checks that c is what a viewer sees, with version live.
func checkLive(t testing.TB, b *Backend, c content, version int64) {
	t.Helper()
	got := b.Published(t)
	want := c.published()
	equal(t, "published patients", got.Patients, want.Patients)
	equal(t, "published record locations", got.Locations, want.Locations)
	equal(t, "published care items", got.Items, want.Items)
	equal(t, "published organisations", got.Organisations, want.Organisations)
	var live []int64
	for _, p := range got.Publications {
		if p.Live {
			live = append(live, p.Version)
		}
		if p.PublishedAt.IsZero() || p.RunID == 0 {
			t.Fatalf("publication %+v", p)
		}
	}
	equal(t, "live publications", live, []int64{version})
	l, ok, err := b.Store.Live(ctxFor(t))
	if err != nil || !ok || l.Version != version {
		t.Fatalf("Live: %+v %v %v, want version %d", l, ok, err, version)
	}
}

func testPublish(t *testing.T, b *Backend) {
	ctx := ctxFor(t)
	s := b.Store
	run := startRun(t, s, "run", "a-patients", "a-items", "b-patients")

	// Stage a delivery of persons and one of care items, big enough that
	// the version is written while the streams are being read.
	const n = 1500
	ids := try(s.Links().NewPatientIDs(ctx, n)).must(t)
	var persons []store.StagedPerson
	for i, pid := range ids {
		persons = append(persons, person("a-patients", "A81001", fmt.Sprintf("L%04d", i), i+2, pid, "", fmt.Sprintf("F%04d", i)))
	}
	persons[5].Objection = "all" // an objection the organisation sent, for StreamLive's flags
	persons = append(persons, person("a-patients", "A81001", "L0003", n+2, ids[3], "", "DUPLICATE"))
	pd := stage(t, s, run, store.Delivery{SourceID: "a-patients", OrgCode: "A81001", Kind: "persons", Name: "p.csv", Hash: "p",
		ReceivedAt: recv}, persons, nil, []store.Reject{{SourceID: "a-patients", File: "p.csv", Line: n + 3, Reason: "bad"}}, n+2)
	var items []record.CareItem
	for i := 0; i < n; i++ {
		local := fmt.Sprintf("L%04d", i)
		items = append(items, item("a-items", "A81001", local, 2*i+2, "", fmt.Sprint(i), "2019-03-04"),
			item("a-items", "A81001", local, 2*i+3, fmt.Sprintf("I%d", i), "X", ""))
	}
	items = append(items, item("a-items", "A81001", "NOBODY", 2*n+2, "", "1", ""))
	id := stage(t, s, run, store.Delivery{SourceID: "a-items", OrgCode: "A81001", Kind: "care_items", Name: "i.csv", Hash: "i",
		ReceivedAt: recv.Add(time.Minute)}, nil, items, nil, len(items))

	// Build the version from the streams, as the pipeline does; one
	// patient is withheld.
	withheld := ids[7]
	ver := try(s.BeginVersion(ctx, run)).must(t)
	if ver.Number() <= 0 {
		t.Fatalf("version number %d", ver.Number())
	}
	var want content
	want.orgs = []store.Organisation{
		{OrgCode: "A81001", Name: "THE SURGERY", OrgType: "gp_practice", LastDeliveryAt: recv.Add(time.Minute)},
		{OrgCode: "B82002", Name: "THE HOSPITAL", OrgType: "acute_trust", Stale: true},
	}
	for _, o := range want.orgs {
		noErr(t, ver.AddOrganisation(o))
	}
	var loaded, withheldRows int
	noErr(t, s.StreamPersons(ctx, []int64{pd.ID}, func(p store.StagedPerson) error {
		if p.PatientID == withheld {
			withheldRows++
			return ver.AddPatient(store.Patient{PatientID: p.PatientID, NHSNumber: "9434765919", FamilyName: p.FamilyName, Status: "withheld"})
		}
		loaded++
		pat := store.Patient{PatientID: p.PatientID, NHSNumber: p.NHSNumber, FamilyName: p.FamilyName, GivenName: p.GivenName,
			DateOfBirth: p.DateOfBirth, Sex: p.Sex, Postcode: p.Postcode, GPPractice: p.GPPractice, Status: "shared"}
		loc := store.Location{PatientID: p.PatientID, OrgCode: p.OrgCode, LocalID: p.LocalID}
		want.patients = append(want.patients, pat)
		want.locations = append(want.locations, loc)
		if err := ver.AddPatient(pat); err != nil {
			return err
		}
		return ver.AddLocation(loc)
	}))
	want.patients = append(want.patients, store.Patient{PatientID: withheld, NHSNumber: "9434765919", FamilyName: "SECRET", Status: "withheld"})
	var rejects []store.Reject
	var itemsLoaded, itemsWithheld int
	noErr(t, s.StreamItems(ctx, []int64{id.ID}, []int64{pd.ID}, func(i store.StagedItem) error {
		switch i.PatientID {
		case 0:
			rejects = append(rejects, store.Reject{SourceID: i.SourceID, File: i.File, Line: i.Line, Reason: "no such person"})
			return nil
		case withheld:
			itemsWithheld++
			return nil
		}
		itemsLoaded++
		it := store.Item{PatientID: i.PatientID, OrgCode: i.OrgCode, ItemID: i.ItemID, Kind: i.Kind, CodeSystem: i.CodeSystem,
			Code: i.Code, Display: i.Display, StartDate: i.StartDate, EndDate: i.EndDate, Status: i.Status}
		want.items = append(want.items, it)
		return ver.AddItem(it)
	}))
	noErr(t, ver.Finish(ctx))
	if len(rejects) != 1 || loaded != n-1 || itemsLoaded != 2*(n-1) {
		t.Fatalf("streams: %d rejects, %d persons, %d items loaded", len(rejects), loaded, itemsLoaded)
	}

	// Nothing is visible before the swap.
	equal(t, "published contract before the swap", b.Published(t), Snapshot{})
	wantErr(t, s.StreamLive(ctx, func(store.LivePatient) error { return nil }), b.ErrNoPublication, "StreamLive before anything is live")
	if _, ok, _ := s.CurrentDelivery(ctx, "a-patients"); ok {
		t.Fatal("a current delivery before the swap")
	}

	outcomes := []store.SourceOutcome{
		{SourceID: "a-patients", OrgCode: "A81001", Status: "new", DeliveryID: pd.ID, Delivery: pd.Name, RowsIn: pd.RowsIn,
			Loaded: loaded, Quarantined: pd.Quarantined, Withheld: withheldRows, Merged: pd.Merged, Duplicates: 3},
		{SourceID: "a-items", OrgCode: "A81001", Status: "new", DeliveryID: id.ID, Delivery: id.Name, RowsIn: id.RowsIn,
			Loaded: itemsLoaded, Quarantined: 1, Withheld: itemsWithheld, Merged: id.Merged},
		{SourceID: "b-patients", OrgCode: "B82002", Status: "failed", Stale: true, Error: "no delivery yet"},
	}
	before := time.Now().Add(-time.Second)
	noErr(t, s.Swap(ctx, store.Swap{RunID: run, Version: ver.Number(), RegisterHash: "register-1", Sources: outcomes,
		Rejects: rejects, Patients: len(want.patients), Locations: len(want.locations), Items: len(want.items), Keep: 2}))
	checkLive(t, b, want, ver.Number())

	live := try(func() (store.Publication, error) { p, _, err := s.Live(ctx); return p, err }()).must(t)
	if live.RunID != run || live.RegisterHash != "register-1" || live.PublishedAt.Before(before) || live.PublishedAt.After(time.Now().Add(time.Second)) {
		t.Fatalf("live publication %+v", live)
	}
	equal(t, "stale sources", live.Stale, []string{"b-patients"})
	for _, d := range []store.Delivery{pd, id} {
		cur, ok, err := s.CurrentDelivery(ctx, d.SourceID)
		if err != nil || !ok {
			t.Fatalf("CurrentDelivery(%s): %v %v", d.SourceID, ok, err)
		}
		sameDelivery(t, "current delivery", cur, d)
	}
	if _, ok, _ := s.CurrentDelivery(ctx, "b-patients"); ok {
		t.Fatal("a source without a delivery has a current one")
	}

	checkStreamLive(t, s, want, withheld, ids[5])

	// FinishRun keeps the outcomes Swap recorded, as they were: the
	// pipeline passes them again.
	noErr(t, s.FinishRun(ctx, run, store.RunSucceeded, "published", outcomes))
	st := try(s.Status(ctx, 5)).must(t)
	if st.Live == nil || st.Live.Version != ver.Number() {
		t.Fatalf("Status live %+v", st.Live)
	}
	if r := st.Runs[0]; r.RunID != run || r.Version != ver.Number() || r.Status != store.RunSucceeded {
		t.Fatalf("Status run %+v", r)
	}
	wantOutcomes := slices.Clone(outcomes)
	slices.SortFunc(wantOutcomes, func(a, b store.SourceOutcome) int { return strings.Compare(a.SourceID, b.SourceID) })
	equal(t, "run outcomes", st.Runs[0].Sources, wantOutcomes)
	// Source states come from FinishRun, against the live version's
	// deliveries.
	if len(st.Sources) != 3 {
		t.Fatalf("source states %+v", st.Sources)
	}
	for i, d := range []store.Delivery{id, pd} {
		ss := st.Sources[i]
		if ss.SourceID != d.SourceID || ss.OrgCode != "A81001" || ss.Delivery != d.Name || ss.LastDeliveryAt == nil ||
			!ss.LastDeliveryAt.Equal(d.ReceivedAt) || ss.LastAttemptAt == nil || ss.Stale || ss.StaleReason != "" {
			t.Fatalf("source state %+v", ss)
		}
	}
	if bs := st.Sources[2]; bs.SourceID != "b-patients" || bs.Delivery != "" || bs.LastDeliveryAt != nil || bs.LastAttemptAt == nil ||
		!bs.Stale || bs.StaleReason != "no delivery yet" {
		t.Fatalf("source state %+v", bs)
	}

	// A later extract-only run records its attempts; the state still
	// describes the live version.
	run2 := startRun(t, s, "extract", "a-patients", "b-patients")
	noErr(t, s.FinishRun(ctx, run2, store.RunSucceeded, "", []store.SourceOutcome{
		{SourceID: "a-patients", OrgCode: "A81001", Status: "unchanged"},
		{SourceID: "b-patients", OrgCode: "B82002", Status: "failed", Error: "still nothing"}}))
	st2 := try(s.Status(ctx, 5)).must(t)
	if len(st2.Sources) != 3 || st2.Sources[1].Delivery != pd.Name || st2.Sources[1].LastAttemptAt.Before(*st.Sources[1].LastAttemptAt) ||
		!st2.Sources[2].Stale || st2.Sources[2].StaleReason != "no delivery yet" {
		t.Fatalf("source states after an extract-only run %+v", st2.Sources)
	}
}

// checkStreamLive checks the audit's view of the live version of
// testPublish: withheld is the withheld patient, flagged the one whose
// organisation sent an objection.
func checkStreamLive(t *testing.T, s store.Store, want content, withheld, flagged int64) {
	t.Helper()
	ctx := ctxFor(t)
	// NHS numbers linked to a patient are reported beside the published one.
	noErr(t, s.Links().SaveNHS(ctx, map[string]store.Link{"9434765919": {PatientID: withheld}, "9434765870": {PatientID: withheld}}))
	items := map[int64][]store.LiveItem{}
	for _, i := range want.items {
		items[i.PatientID] = append(items[i.PatientID], store.LiveItem{OrgCode: i.OrgCode, Code: i.Code, ItemID: i.ItemID})
	}
	sortItems := func(is []store.LiveItem) []store.LiveItem {
		is = slices.Clone(is)
		slices.SortFunc(is, func(a, b store.LiveItem) int {
			return strings.Compare(a.OrgCode+"\x00"+a.Code+"\x00"+a.ItemID, b.OrgCode+"\x00"+b.Code+"\x00"+b.ItemID)
		})
		return is
	}
	var got []store.LivePatient
	noErr(t, s.StreamLive(ctx, func(p store.LivePatient) error { got = append(got, p); return nil }))
	if len(got) != len(want.patients) {
		t.Fatalf("StreamLive: %d patients, want %d", len(got), len(want.patients))
	}
	for i, p := range got {
		if i > 0 && p.PatientID <= got[i-1].PatientID {
			t.Fatalf("StreamLive: patient %d after %d", p.PatientID, got[i-1].PatientID)
		}
		switch p.PatientID {
		case withheld:
			if p.Status != "withheld" || p.HasDemographics || len(p.Orgs) != 0 || len(p.Items) != 0 || len(p.Flags) != 0 {
				t.Fatalf("StreamLive: withheld patient %+v", p)
			}
			equal(t, "NHS numbers, the published one first", p.NHSNumbers, []string{"9434765919", "9434765870"})
			continue
		case flagged:
			equal(t, "objection flags", p.Flags, []string{"all"})
		default:
			if len(p.Flags) != 0 {
				t.Fatalf("StreamLive: patient %d flagged %v", p.PatientID, p.Flags)
			}
		}
		if p.Status != "shared" || !p.HasDemographics || len(p.NHSNumbers) != 0 {
			t.Fatalf("StreamLive: patient %+v", p)
		}
		equal(t, "organisations", p.Orgs, []string{"A81001"})
		equal(t, "items", sortItems(p.Items), sortItems(items[p.PatientID]))
	}
}

func testSwapRefuses(t *testing.T, b *Backend) {
	ctx := ctxFor(t)
	s := b.Store
	_, v1 := publishSample(t, s, 1)
	good := sample(1)
	checkLive(t, b, good, v1)

	withheldPatient := store.Patient{PatientID: 900, NHSNumber: "9434765919", Status: "withheld"}
	cases := []struct {
		name   string
		c      func() content
		adjust func(*store.Swap)
	}{
		{"patient count", sample2, func(sw *store.Swap) { sw.Patients++ }},
		{"location count", sample2, func(sw *store.Swap) { sw.Locations-- }},
		{"item count", sample2, func(sw *store.Swap) { sw.Items++ }},
		{"withheld patient with a location", func() content {
			c := sample2()
			c.patients = append(c.patients, withheldPatient)
			c.locations = append(c.locations, store.Location{PatientID: 900, OrgCode: "A81001", LocalID: "W"})
			return c
		}, nil},
		{"withheld patient with a care item", func() content {
			c := sample2()
			c.patients = append(c.patients, withheldPatient)
			c.items = append(c.items, store.Item{PatientID: 900, OrgCode: "A81001", Kind: "problem", Code: "1", Status: "active"})
			return c
		}, nil},
		{"location of a missing patient", func() content {
			c := sample2()
			c.locations = append(c.locations, store.Location{PatientID: 901, OrgCode: "A81001", LocalID: "M"})
			return c
		}, nil},
		{"item from an organisation without a location", func() content {
			c := sample2()
			c.items = append(c.items, store.Item{PatientID: c.patients[0].PatientID, OrgCode: "Z99999", Kind: "problem", Code: "1", Status: "active"})
			return c
		}, nil},
		{"unknown patient status", func() content {
			c := sample2()
			c.patients[0].Status = "maybe"
			return c
		}, nil},
		{"unbalanced source", sample2, func(sw *store.Swap) {
			sw.Sources = []store.SourceOutcome{{SourceID: "a", OrgCode: "A81001", Status: "new", RowsIn: 5, Loaded: 3}}
		}},
	}
	for _, tc := range cases {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			run := startRun(t, s, "publish")
			c := tc.c()
			v := c.build(t, s, run)
			sw := c.swap(run, v.Number())
			if tc.adjust != nil {
				tc.adjust(&sw)
			}
			wantErr(t, s.Swap(ctx, sw), b.ErrCheck, "Swap of a bad version")
			noErr(t, v.Abort(ctx))
			checkLive(t, b, good, v1)
			noErr(t, s.FinishRun(ctx, run, store.RunFailed, "refused", nil))
			st := try(s.Status(ctx, 1)).must(t)
			if len(st.Runs[0].Sources) != 0 || st.Runs[0].Version != 0 {
				t.Fatalf("a refused swap left ledger rows: %+v", st.Runs[0])
			}
		})
	}
	// The store still publishes.
	run := startRun(t, s, "publish")
	c := sample2()
	v := c.build(t, s, run)
	noErr(t, s.Swap(ctx, c.swap(run, v.Number())))
	finishRun(t, s, run)
	checkLive(t, b, c, v.Number())
}

func sample2() content { return sample(2) }

// published is one publishing run of a test.
type published struct {
	run, version int64
	delivery     store.Delivery
	content      content
}

// publishN publishes sample(n) in a run of its own, beside a stale source
// "late" with no delivery. The version is built from a delivery of source
// "gp" staged in the same run or, for a rollback (from and to set), from
// the delivery reuse, as the pipeline's rollback republishes the previous
// version's deliveries.
func publishN(t testing.TB, s store.Store, n, keep int, reuse *store.Delivery, from, to int64) published {
	t.Helper()
	p := published{content: sample(n)}
	if reuse != nil {
		p.run = startRun(t, s, "rollback")
		p.delivery = *reuse
	} else {
		p.run = startRun(t, s, "run", "gp")
		p.delivery = stage(t, s, p.run, store.Delivery{SourceID: "gp", OrgCode: "A81001", Kind: "persons", Name: fmt.Sprintf("d%d", n),
			Hash: fmt.Sprintf("h%d", n), ReceivedAt: recv.Add(time.Duration(n) * time.Hour)},
			[]store.StagedPerson{person("gp", "A81001", "L1", 2, int64(n)*100+1, "", "X")}, nil, nil, 1)
	}
	v := p.content.build(t, s, p.run)
	p.version = v.Number()
	sw := p.content.swap(p.run, p.version)
	sw.Keep, sw.RollbackFrom, sw.RollbackTo, sw.RegisterHash = keep, from, to, fmt.Sprintf("reg%d", n)
	sw.Sources = []store.SourceOutcome{
		{SourceID: "gp", OrgCode: "A81001", Status: "new", DeliveryID: p.delivery.ID, Delivery: p.delivery.Name, RowsIn: 1, Loaded: 1},
		{SourceID: "late", OrgCode: "B82002", Status: "failed", Stale: true, Error: "late again"},
	}
	noErr(t, s.Swap(ctxFor(t), sw))
	finishRun(t, s, p.run)
	return p
}

// rollback publishes again, as the pipeline's rollback does, the
// deliveries of the previous version (which must be prev) and withdraws
// the live one (which must be live).
func rollback(t testing.TB, s store.Store, live, prev published, keep int) published {
	t.Helper()
	p, _, ok, err := s.Previous(ctxFor(t))
	if err != nil || !ok || p.Version != prev.version {
		t.Fatalf("Previous: %+v %v %v, want version %d", p, ok, err, prev.version)
	}
	l, _, _ := s.Live(ctxFor(t))
	if l.Version != live.version {
		t.Fatalf("live version %d, want %d", l.Version, live.version)
	}
	n := int(prev.content.patients[0].PatientID / 100)
	return publishN(t, s, n, keep, &prev.delivery, live.version, prev.version)
}

func noPrevious(t testing.TB, s store.Store) {
	t.Helper()
	if p, src, ok, err := s.Previous(ctxFor(t)); err != nil || ok {
		t.Fatalf("Previous: %+v %+v %v %v, want none", p, src, ok, err)
	}
}

func testPreviousNothing(t *testing.T, b *Backend) {
	s := b.Store
	noPrevious(t, s)
	p1 := publishN(t, s, 1, 2, nil, 0, 0)
	noPrevious(t, s)
	checkLive(t, b, p1.content, p1.version)
}

func testPrevious(t *testing.T, b *Backend) {
	ctx := ctxFor(t)
	s := b.Store
	p1 := publishN(t, s, 1, 2, nil, 0, 0)
	p2 := publishN(t, s, 2, 2, nil, 0, 0)
	checkLive(t, b, p2.content, p2.version)

	prev, sources, ok, err := s.Previous(ctx)
	if err != nil || !ok {
		t.Fatalf("Previous: %v %v", ok, err)
	}
	if prev.Version != p1.version || prev.RunID != p1.run || prev.RegisterHash != "reg1" || prev.PublishedAt.IsZero() {
		t.Fatalf("Previous: %+v, want version %d of run %d", prev, p1.version, p1.run)
	}
	equal(t, "previous stale sources", prev.Stale, []string{"late"})
	if len(sources) != 2 || sources[0].SourceID != "gp" || sources[0].Delivery == nil || sources[0].Stale ||
		sources[1].SourceID != "late" || sources[1].Delivery != nil || !sources[1].Stale || sources[1].StaleReason != "late again" {
		t.Fatalf("previous sources %+v", sources)
	}
	sameDelivery(t, "previous delivery", *sources[0].Delivery, p1.delivery)

	// The rollback republishes v1's delivery as a new version: v2 is
	// withdrawn, v1 superseded, and there is nothing further to roll
	// back to.
	p3 := rollback(t, s, p2, p1, 2)
	if p3.version <= p2.version {
		t.Fatalf("rollback version %d after %d", p3.version, p2.version)
	}
	checkLive(t, b, p1.content, p3.version)
	noPrevious(t, s)
	cur, ok, err := s.CurrentDelivery(ctx, "gp")
	if err != nil || !ok {
		t.Fatalf("CurrentDelivery: %v %v", ok, err)
	}
	sameDelivery(t, "current delivery after the rollback", cur, p1.delivery)
	if len(streamPersons(t, s, p1.delivery.ID)) != 1 {
		t.Fatal("the republished delivery lost its staged rows")
	}
	if len(streamPersons(t, s, p2.delivery.ID)) != 0 {
		t.Fatal("the withdrawn version's delivery kept its staged rows")
	}
	pubs := b.Published(t).Publications
	if len(pubs) != 3 || pubs[2].Version != p3.version || !pubs[2].Live || pubs[0].Live || pubs[1].Live {
		t.Fatalf("publications %+v", pubs)
	}
	st := try(s.Status(ctx, 1)).must(t)
	if st.Runs[0].RunID != p3.run || st.Runs[0].Version != p3.version || st.Live.Version != p3.version {
		t.Fatalf("status after the rollback: %+v", st)
	}
	// A later publish makes the rollback's version the previous one.
	p4 := publishN(t, s, 4, 2, nil, 0, 0)
	prev, _, ok, _ = s.Previous(ctx)
	if !ok || prev.Version != p3.version {
		t.Fatalf("Previous %+v %v, want %d", prev, ok, p3.version)
	}
	checkLive(t, b, p4.content, p4.version)
}

func testRollbackAndKeep(t *testing.T, b *Backend) {
	s := b.Store
	p1 := publishN(t, s, 1, 3, nil, 0, 0)
	p2 := publishN(t, s, 2, 3, nil, 0, 0)
	p3 := publishN(t, s, 3, 3, nil, 0, 0)
	// Keep 3: v1 and v2 are kept. Rolling back from v3 to v2 leaves v1
	// as the previous version: withdrawn and superseded versions are
	// never offered.
	p4 := rollback(t, s, p3, p2, 3)
	checkLive(t, b, p2.content, p4.version)
	prev, _, ok, err := s.Previous(ctxFor(t))
	if err != nil || !ok || prev.Version != p1.version {
		t.Fatalf("Previous %+v %v %v, want %d", prev, ok, err, p1.version)
	}
	// Keep 2: one kept version beside the live one. Publishing v5 keeps v4
	// and retires v1 (and the withdrawn v3 and superseded v2).
	p5 := publishN(t, s, 5, 2, nil, 0, 0)
	p6 := rollback(t, s, p5, p4, 2)
	checkLive(t, b, p2.content, p6.version)
	noPrevious(t, s)
}

func testCompliance(t *testing.T, b *Backend) {
	ctx := ctxFor(t)
	s := b.Store
	_, err := s.Compliance(ctx, 0)
	wantErr(t, err, b.ErrNoPublication, "Compliance of an empty store")
	day := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 12, 0, 0, 0, time.UTC) }
	withheld := []store.WithheldCount{
		{Kind: "patient", Reason: "objection", Count: 2},
		{SourceID: "gp", Kind: "record", Reason: "objection", Count: 1},
		{SourceID: "gp", Kind: "item", Reason: "sensitive code", Count: 3},
		{SourceID: "acute", Kind: "item", Reason: "sensitive code", Count: 4},
	}
	overrides := []store.AppliedOverride{
		{PatientID: 5, Reason: "court order", AuthorisedBy: "Caldicott Guardian", ValidFrom: day(2026, 1, 1), Scope: "all"},
		{PatientID: 3, Reason: "safeguarding", AuthorisedBy: "Caldicott Guardian", ValidFrom: day(2026, 2, 1), ValidTo: day(2026, 12, 31),
			Scope: "A81001"},
	}
	publishWith := func(n int, w []store.WithheldCount, o []store.AppliedOverride) (run, version int64) {
		run = startRun(t, s, "publish")
		c := sample(n)
		v := c.build(t, s, run)
		sw := c.swap(run, v.Number())
		sw.Withheld, sw.Overrides = w, o
		noErr(t, s.Swap(ctx, sw))
		finishRun(t, s, run)
		return run, v.Number()
	}
	r1, v1 := publishWith(1, withheld, overrides)
	check := func(runID, wantRun, wantVersion int64, w []store.WithheldCount, o []store.AppliedOverride) {
		t.Helper()
		c, err := s.Compliance(ctx, runID)
		if err != nil {
			t.Fatalf("Compliance(%d): %v", runID, err)
		}
		if c.RunID != wantRun || c.Version != wantVersion || c.PublishedAt.IsZero() {
			t.Fatalf("Compliance(%d): run %d version %d at %v, want run %d version %d", runID, c.RunID, c.Version, c.PublishedAt, wantRun, wantVersion)
		}
		equal(t, "withheld counts", c.Withheld, w)
		if len(c.Overrides) != len(o) {
			t.Fatalf("overrides %+v, want %+v", c.Overrides, o)
		}
		date := func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return t.UTC().Format("2006-01-02")
		}
		for i, got := range c.Overrides {
			want := o[i]
			if got.PatientID != want.PatientID || got.Reason != want.Reason || got.AuthorisedBy != want.AuthorisedBy || got.Scope != want.Scope ||
				date(got.ValidFrom) != date(want.ValidFrom) || date(got.ValidTo) != date(want.ValidTo) {
				t.Fatalf("override %d: %+v, want %+v", i, got, want)
			}
		}
	}
	// Withheld by kind, reason, source; overrides by patient.
	sortedW := []store.WithheldCount{withheld[3], withheld[2], withheld[0], withheld[1]}
	sortedO := []store.AppliedOverride{overrides[1], overrides[0]}
	check(0, r1, v1, sortedW, sortedO)
	check(r1, r1, v1, sortedW, sortedO)

	r2, v2 := publishWith(2, withheld[:1], nil)
	check(0, r2, v2, withheld[:1], nil)
	check(r1, r1, v1, sortedW, sortedO)

	// A run that published nothing has no report.
	r3 := startRun(t, s, "extract", "gp")
	finishRun(t, s, r3)
	_, err = s.Compliance(ctx, r3)
	wantErr(t, err, b.ErrNoPublication, "Compliance of a run that did not publish")
	check(0, r2, v2, withheld[:1], nil)
}

// sameDelivery compares deliveries, times as instants.
func sameDelivery(t testing.TB, what string, got, want store.Delivery) {
	t.Helper()
	got.ReceivedAt, want.ReceivedAt = got.ReceivedAt.UTC(), want.ReceivedAt.UTC()
	equal(t, what, got, want)
}

func testAbortVersion(t *testing.T, b *Backend) {
	ctx := ctxFor(t)
	s := b.Store
	_, v1 := publishSample(t, s, 1)
	run := startRun(t, s, "publish")
	// Aborted while building.
	c := sample(2)
	v := try(s.BeginVersion(ctx, run)).must(t)
	noErr(t, v.AddOrganisation(c.orgs[0]))
	noErr(t, v.AddPatient(c.patients[0]))
	noErr(t, v.Abort(ctx))
	checkLive(t, b, sample(1), v1)
	// Aborted once finished.
	v = c.build(t, s, run)
	noErr(t, v.Abort(ctx))
	checkLive(t, b, sample(1), v1)
	// The next version builds and goes live.
	c = sample(3)
	v3 := c.build(t, s, run)
	if v3.Number() <= v.Number() {
		t.Fatalf("version %d after %d", v3.Number(), v.Number())
	}
	noErr(t, s.Swap(ctx, c.swap(run, v3.Number())))
	finishRun(t, s, run)
	checkLive(t, b, c, v3.Number())
}

func testUnfinishedVersion(t *testing.T, b *Backend) {
	ctx := ctxFor(t)
	s := b.Store
	_, v1 := publishSample(t, s, 1)
	// A version finished but never swapped (the run died): the next
	// BeginVersion clears it away, and it cannot be swapped in after.
	run := startRun(t, s, "publish")
	c := sample(2)
	old := c.build(t, s, run)
	finishRun(t, s, run)
	run = startRun(t, s, "publish")
	c3 := sample(3)
	v3 := c3.build(t, s, run)
	if err := s.Swap(ctx, c.swap(run, old.Number())); err == nil {
		t.Fatal("a version cleared away was swapped in")
	}
	checkLive(t, b, sample(1), v1)
	noErr(t, s.Swap(ctx, c3.swap(run, v3.Number())))
	finishRun(t, s, run)
	checkLive(t, b, c3, v3.Number())
}

func testLinks(t *testing.T, b *Backend) {
	ctx := ctxFor(t)
	l := b.Store.Links()
	if m, err := l.ByNHS(ctx, nil); err != nil || m == nil || len(m) != 0 {
		t.Fatalf("ByNHS(nil): %v %v", m, err)
	}
	if m, err := l.ByLocal(ctx, "A81001", nil); err != nil || m == nil || len(m) != 0 {
		t.Fatalf("ByLocal(nil): %v %v", m, err)
	}
	if ids, err := l.NewPatientIDs(ctx, 0); err != nil || len(ids) != 0 {
		t.Fatalf("NewPatientIDs(0): %v %v", ids, err)
	}
	ids := try(l.NewPatientIDs(ctx, 5)).must(t)
	more := try(l.NewPatientIDs(ctx, 3)).must(t)
	all := append(slices.Clone(ids), more...)
	if len(ids) != 5 || len(more) != 3 || !slices.IsSorted(all) || len(slices.Compact(slices.Clone(all))) != 8 || all[0] <= 0 {
		t.Fatalf("patient ids %v then %v: want unique and increasing", ids, more)
	}

	noErr(t, l.SaveNHS(ctx, map[string]store.Link{
		"9434765919": {PatientID: ids[0], DateOfBirth: "1980-01-02"},
		"9434765870": {PatientID: ids[1]},
	}))
	got := try(l.ByNHS(ctx, []string{"9434765919", "9434765870", "4010232137"})).must(t)
	equal(t, "NHS links", got, map[string]store.Link{
		"9434765919": {PatientID: ids[0], DateOfBirth: "1980-01-02"},
		"9434765870": {PatientID: ids[1]},
	})
	// An NHS number keeps its patient; a missing date of birth is filled.
	noErr(t, l.SaveNHS(ctx, map[string]store.Link{
		"9434765919": {PatientID: ids[4], DateOfBirth: "1999-09-09"},
		"9434765870": {PatientID: ids[4], DateOfBirth: "1970-05-05"},
	}))
	got = try(l.ByNHS(ctx, []string{"9434765919", "9434765870"})).must(t)
	equal(t, "NHS links after saving again", got, map[string]store.Link{
		"9434765919": {PatientID: ids[0], DateOfBirth: "1980-01-02"},
		"9434765870": {PatientID: ids[1], DateOfBirth: "1970-05-05"},
	})
	noErr(t, l.SaveNHS(ctx, nil))

	noErr(t, l.SaveLocal(ctx, "A81001", map[string]int64{"L1": ids[0], "L2": ids[1]}))
	noErr(t, l.SaveLocal(ctx, "B82002", map[string]int64{"L1": ids[2]}))
	equal(t, "local links", try(l.ByLocal(ctx, "A81001", []string{"L1", "L2", "L3"})).must(t), map[string]int64{"L1": ids[0], "L2": ids[1]})
	// A local id moves to the patient saved last.
	noErr(t, l.SaveLocal(ctx, "A81001", map[string]int64{"L1": ids[3]}))
	equal(t, "moved local link", try(l.ByLocal(ctx, "A81001", []string{"L1"})).must(t), map[string]int64{"L1": ids[3]})
	equal(t, "other organisation", try(l.ByLocal(ctx, "B82002", []string{"L1", "L2"})).must(t), map[string]int64{"L1": ids[2]})
	noErr(t, l.SaveLocal(ctx, "A81001", nil))

	reviews := []store.Review{{RunID: 1, SourceID: "gp", OrgCode: "A81001", LocalID: "L7", NHSNumber: "9434765919", PatientID: ids[0],
		Reason: "held for review", File: "p.csv", Line: 7}}
	noErr(t, l.AddReviews(ctx, reviews))
	noErr(t, l.AddReviews(ctx, reviews))
	noErr(t, l.AddReviews(ctx, nil))

	// Batches as big as the linker's and more.
	big := map[string]store.Link{}
	var keys []string
	bigIDs := try(l.NewPatientIDs(ctx, 6000)).must(t)
	for i, id := range bigIDs {
		k := fmt.Sprintf("7%09d", i)
		big[k] = store.Link{PatientID: id}
		keys = append(keys, k)
	}
	noErr(t, l.SaveNHS(ctx, big))
	equal(t, "big batch", try(l.ByNHS(ctx, keys)).must(t), big)

	// Links and the sequence persist: another Store sees them.
	other := b.Reopen(t)
	defer other.Close()
	equal(t, "links seen by another store", try(other.Links().ByLocal(ctx, "A81001", []string{"L1", "L2"})).must(t),
		map[string]int64{"L1": ids[3], "L2": ids[1]})
	next := try(other.Links().NewPatientIDs(ctx, 1)).must(t)
	if next[0] <= bigIDs[len(bigIDs)-1] {
		t.Fatalf("patient id %d reused (last was %d)", next[0], bigIDs[len(bigIDs)-1])
	}
}
