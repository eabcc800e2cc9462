package decision

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/careindex/careindex/loader/store"
	"github.com/careindex/careindex/transform/record"
)

func TestSettle(t *testing.T) {
	merge := func(from, to int64) *store.PatientChange {
		return &store.PatientChange{Kind: store.ChangeMerge, From: from, To: to}
	}
	tests := []struct {
		name           string
		kind           store.DecisionKind
		cand, assigned int64
		merged         map[int64]int64
		patient, other int64
		change         *store.PatientChange
		status         string
	}{
		{"link a held record", store.DecideLink, 10, 0, nil, 10, 0, nil, store.ReviewLinked},
		{"link a record given its candidate", store.DecideLink, 10, 10, nil, 10, 0, nil, store.ReviewLinked},
		{"link a record given another patient merges it", store.DecideLink, 10, 20, nil, 10, 20, merge(20, 10), store.ReviewLinked},
		{"link follows merges", store.DecideLink, 10, 20, map[int64]int64{10: 11, 20: 21}, 11, 21, merge(21, 11), store.ReviewLinked},
		{"link after the two were merged merges nothing", store.DecideLink, 10, 20, map[int64]int64{20: 10}, 10, 0, nil,
			store.ReviewLinked},
		{"separate a record given another patient", store.DecideSeparate, 10, 20, nil, 20, 10, nil, store.ReviewSeparated},
		{"separate follows merges", store.DecideSeparate, 10, 20, map[int64]int64{10: 12, 20: 22}, 22, 12, nil,
			store.ReviewSeparated},
		{"separate a held record splits it", store.DecideSeparate, 10, 0, nil, 0, 10,
			&store.PatientChange{Kind: store.ChangeSplit, From: 10}, store.ReviewSeparated},
		{"a split is from the candidate's survivor", store.DecideSeparate, 10, 0, map[int64]int64{10: 13}, 0, 13,
			&store.PatientChange{Kind: store.ChangeSplit, From: 13}, store.ReviewSeparated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := store.Decision{ReviewID: 7, Kind: tt.kind, By: "dq", OrgCode: "A1", LocalID: "L1"}
			d, status := settle(in, Review{Status: store.ReviewOpen, Candidate: tt.cand, Assigned: tt.assigned}, tt.merged)
			if d.PatientID != tt.patient || d.OtherPatientID != tt.other || status != tt.status {
				t.Errorf("settle = patient %d, other %d, status %s; want %d, %d, %s",
					d.PatientID, d.OtherPatientID, status, tt.patient, tt.other, tt.status)
			}
			if !reflect.DeepEqual(d.Change, tt.change) {
				t.Errorf("settle change = %+v, want %+v", d.Change, tt.change)
			}
			if d.ReviewID != 7 || d.By != "dq" || d.OrgCode != "A1" || d.LocalID != "L1" {
				t.Errorf("settle changed the decision's own fields: %+v", d)
			}
		})
	}
}

func TestMoves(t *testing.T) {
	tests := []struct {
		name     string
		pending  []Pending
		merged   map[int64]int64
		from, to []int64
	}{
		{"none", nil, map[int64]int64{1: 2}, nil, nil},
		{"a merge moves its other patient", []Pending{{Merges: true, Other: 1}}, map[int64]int64{1: 2}, []int64{1}, []int64{2}},
		{"to the end of a chain", []Pending{{Merges: true, Other: 1}, {Merges: true, Other: 2}}, map[int64]int64{1: 3, 2: 3},
			[]int64{1, 2}, []int64{3, 3}},
		{"a separate moves nothing", []Pending{{Other: 1}}, map[int64]int64{1: 2}, nil, nil},
		{"a merge with no other patient moves nothing", []Pending{{Merges: true}}, map[int64]int64{0: 2}, nil, nil},
		{"a patient not merged stays", []Pending{{Merges: true, Other: 5}}, map[int64]int64{1: 2}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			from, to := moves(tt.pending, tt.merged)
			if !reflect.DeepEqual(from, tt.from) || !reflect.DeepEqual(to, tt.to) {
				t.Errorf("moves = %v → %v, want %v → %v", from, to, tt.from, tt.to)
			}
		})
	}
}

func TestReleaseRules(t *testing.T) {
	tests := []struct {
		name string
		p    Pending
		want bool
	}{
		{"held with its delivery", Pending{Held: `{}`, DeliveryID: 3}, true},
		{"given a patient meanwhile", Pending{Held: `{}`, DeliveryID: 3, Assigned: 9}, false},
		{"no held record", Pending{DeliveryID: 3}, false},
		{"no delivery", Pending{Held: `{}`}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.p.releases(); got != tt.want {
				t.Errorf("releases = %v, want %v", got, tt.want)
			}
		})
	}
	held := []struct {
		status      string
		quarantined int
		want        bool
	}{
		{"staged", 1, true}, {"published", 2, true}, {"held", 1, true},
		{"staged", 0, false}, {"superseded", 1, false}, {"failed", 1, false}, {"", 1, false},
	}
	for _, tt := range held {
		if got := stillHeld(tt.status, tt.quarantined); got != tt.want {
			t.Errorf("stillHeld(%q, %d) = %v, want %v", tt.status, tt.quarantined, got, tt.want)
		}
	}
}

// fakeTx records the calls of the rules, with canned answers.
type fakeTx struct {
	review   Review
	noReview bool
	changes  []store.PatientChange
	apart    bool
	nextID   int64
	pending  []Pending
	delivery map[int64]struct {
		status      string
		quarantined int
	}
	staged map[int64]bool
	fail   string // the call that fails
	calls  []string
	saved  *store.Decision
	status string
}

func (f *fakeTx) call(c string) error {
	f.calls = append(f.calls, c)
	if f.fail != "" && f.fail == c {
		return errors.New("boom")
	}
	return nil
}

func (f *fakeTx) LockReview(context.Context, int64) error { return f.call("lock") }
func (f *fakeTx) Review(context.Context, int64) (Review, error) {
	if f.noReview {
		return Review{}, sql.ErrNoRows
	}
	return f.review, f.call("review")
}
func (f *fakeTx) Changes(context.Context) ([]store.PatientChange, error) {
	return f.changes, f.call("changes")
}
func (f *fakeTx) KeptApart(_ context.Context, a, b int64) (bool, error) {
	return f.apart, f.call(fmt.Sprintf("apart %d %d", a, b))
}
func (f *fakeTx) NewPatientID(context.Context) (int64, error) { return f.nextID, f.call("newid") }
func (f *fakeTx) SaveDecision(_ context.Context, d store.Decision, status string) error {
	f.saved, f.status = &d, status
	return f.call("save")
}
func (f *fakeTx) LockPending(context.Context) error          { return f.call("lock") }
func (f *fakeTx) Pending(context.Context) ([]Pending, error) { return f.pending, f.call("pending") }
func (f *fakeTx) MovePatients(_ context.Context, table, col string, from, to []int64) error {
	return f.call(fmt.Sprintf("move %s.%s %v→%v", table, col, from, to))
}
func (f *fakeTx) SetSurvivor(_ context.Context, from, to int64) error {
	return f.call(fmt.Sprintf("survivor %d→%d", from, to))
}
func (f *fakeTx) Pin(_ context.Context, org, local string, p int64) error {
	return f.call(fmt.Sprintf("pin %s/%s %d", org, local, p))
}
func (f *fakeTx) Delivery(_ context.Context, id int64) (string, int, error) {
	d, ok := f.delivery[id]
	if !ok {
		return "", 0, sql.ErrNoRows
	}
	return d.status, d.quarantined, f.call(fmt.Sprintf("delivery %d", id))
}
func (f *fakeTx) HasStaged(_ context.Context, id int64, org, local string) (bool, error) {
	return f.staged[id], f.call(fmt.Sprintf("has %d", id))
}
func (f *fakeTx) FoldHeld(_ context.Context, id int64) error {
	return f.call(fmt.Sprintf("fold %d", id))
}
func (f *fakeTx) StageHeld(_ context.Context, p Pending, rec record.Person, patient int64) error {
	return f.call(fmt.Sprintf("stage %d %s %d", p.DeliveryID, rec.FamilyName, patient))
}
func (f *fakeTx) MarkApplied(_ context.Context, reviewID, runID, patient int64) error {
	return f.call(fmt.Sprintf("applied %d run %d %d", reviewID, runID, patient))
}

func (f *fakeTx) run(ctx context.Context, fn func(Tx) error) error { return fn(f) }

func TestDecide(t *testing.T) {
	at := time.Date(2026, 3, 1, 9, 30, 0, 1234567, time.UTC)
	open := Review{Status: store.ReviewOpen, OrgCode: "A1", LocalID: "L1", Candidate: 10}
	tests := []struct {
		name    string
		kind    store.DecisionKind
		tx      fakeTx
		wantErr error // nil: no error; errAny: some other error
		calls   []string
		patient int64
		change  *store.PatientChange
	}{
		{"unknown kind", "maybe", fakeTx{review: open}, errAny, nil, 0, nil},
		{"no review", store.DecideLink, fakeTx{noReview: true}, store.ErrNoReview, []string{"lock"}, 0, nil},
		{"decided already", store.DecideLink, fakeTx{review: Review{Status: store.ReviewLinked}}, store.ErrDecided,
			[]string{"lock", "review"}, 0, nil},
		{"link a held record", store.DecideLink, fakeTx{review: open}, nil,
			[]string{"lock", "review", "changes", "save"}, 10, nil},
		{"link that merges", store.DecideLink, fakeTx{review: Review{Status: store.ReviewOpen, Candidate: 10, Assigned: 20}}, nil,
			[]string{"lock", "review", "changes", "apart 20 10", "save"}, 10,
			&store.PatientChange{Kind: store.ChangeMerge, From: 20, To: 10, ReviewID: 5, By: "dq", At: at.Truncate(time.Microsecond)}},
		{"link kept apart", store.DecideLink,
			fakeTx{review: Review{Status: store.ReviewOpen, Candidate: 10, Assigned: 20}, apart: true}, store.ErrDecisionConflict,
			[]string{"lock", "review", "changes", "apart 20 10"}, 0, nil},
		{"separate a held record splits it", store.DecideSeparate, fakeTx{review: open, nextID: 99}, nil,
			[]string{"lock", "review", "changes", "newid", "save"}, 99,
			&store.PatientChange{Kind: store.ChangeSplit, From: 10, To: 99, ReviewID: 5, By: "dq", At: at.Truncate(time.Microsecond)}},
		{"a failing statement is wrapped", store.DecideSeparate, fakeTx{review: open, fail: "save"}, errAny,
			[]string{"lock", "review", "changes", "newid", "save"}, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.tx
			d, err := Decide(context.Background(), f.run, store.Decision{ReviewID: 5, Kind: tt.kind, By: "dq", At: at})
			checkErr(t, err, tt.wantErr)
			if !reflect.DeepEqual(f.calls, tt.calls) {
				t.Errorf("calls = %q, want %q", f.calls, tt.calls)
			}
			if tt.wantErr != nil {
				return
			}
			if d.PatientID != tt.patient || !reflect.DeepEqual(d.Change, tt.change) {
				t.Errorf("Decide = patient %d change %+v, want %d %+v", d.PatientID, d.Change, tt.patient, tt.change)
			}
			if !d.At.Equal(at.Truncate(time.Microsecond)) || d.OrgCode != f.review.OrgCode || d.LocalID != f.review.LocalID {
				t.Errorf("Decide = %+v", d)
			}
			if f.saved == nil || f.saved.PatientID != d.PatientID {
				t.Errorf("saved %+v, returned %+v", f.saved, d)
			}
		})
	}
}

// errAny stands for an error other than the sentinels.
var errAny = errors.New("any error")

func checkErr(t *testing.T, err, want error) {
	t.Helper()
	switch {
	case want == nil && err != nil:
		t.Fatalf("error %v", err)
	case want == errAny && err == nil, want != nil && want != errAny && !errors.Is(err, want):
		t.Fatalf("error %v, want %v", err, want)
	}
}

func TestApply(t *testing.T) {
	held := func(review, delivery int64) Pending {
		return Pending{ReviewID: review, OrgCode: "A1", LocalID: "L1", Patient: 30, Other: 10, DeliveryID: delivery,
			Held: `{"FamilyName":"X"}`}
	}
	type del = struct {
		status      string
		quarantined int
	}
	tests := []struct {
		name    string
		tx      fakeTx
		wantErr bool
		applied int
		calls   []string
	}{
		{"nothing pending", fakeTx{}, false, 0, []string{"lock", "pending"}},
		{"a merge moves every column", fakeTx{
			pending: []Pending{{ReviewID: 1, OrgCode: "A1", LocalID: "L1", Patient: 10, Other: 20, Merges: true}},
			changes: []store.PatientChange{{Kind: store.ChangeMerge, From: 20, To: 10}},
		}, false, 1, []string{"lock", "pending", "changes",
			"move local_link.patient_id [20]→[10]", "move nhs_link.patient_id [20]→[10]", "move match_record.patient_id [20]→[10]",
			"move staged_person.patient_id [20]→[10]", "move review.patient_id [20]→[10]", "move review.assigned_patient_id [20]→[10]",
			"move decision.patient_id [20]→[10]", "move decision.other_patient_id [20]→[10]",
			"survivor 20→10", "pin A1/L1 10", "applied 1 run 4 10"}},
		{"the pin follows a later merge", fakeTx{
			pending: []Pending{{ReviewID: 1, OrgCode: "A1", LocalID: "L1", Patient: 10, Other: 11}},
			changes: []store.PatientChange{{Kind: store.ChangeMerge, From: 10, To: 12}},
		}, false, 1, []string{"lock", "pending", "changes", "survivor 10→12", "pin A1/L1 12", "applied 1 run 4 12"}},
		{"a held record is staged", fakeTx{
			pending: []Pending{held(2, 3)}, delivery: map[int64]del{3: {"staged", 1}},
		}, false, 1, []string{"lock", "pending", "changes", "pin A1/L1 30", "delivery 3", "has 3", "stage 3 X 30", "applied 2 run 4 30"}},
		{"a held record folds into its delivery's row", fakeTx{
			pending: []Pending{held(2, 3)}, delivery: map[int64]del{3: {"held", 1}}, staged: map[int64]bool{3: true},
		}, false, 1, []string{"lock", "pending", "changes", "pin A1/L1 30", "delivery 3", "has 3", "fold 3", "applied 2 run 4 30"}},
		{"a delivery gone releases nothing", fakeTx{pending: []Pending{held(2, 3)}}, false, 1,
			[]string{"lock", "pending", "changes", "pin A1/L1 30", "applied 2 run 4 30"}},
		{"a delivery with nothing quarantined releases nothing", fakeTx{
			pending: []Pending{held(2, 3)}, delivery: map[int64]del{3: {"staged", 0}},
		}, false, 1, []string{"lock", "pending", "changes", "pin A1/L1 30", "delivery 3", "applied 2 run 4 30"}},
		{"a failing pin fails all", fakeTx{pending: []Pending{held(2, 3)}, fail: "pin A1/L1 30"}, true, 0,
			[]string{"lock", "pending", "changes", "pin A1/L1 30"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.tx
			n, err := Apply(context.Background(), f.run, 4)
			if (err != nil) != tt.wantErr || n != tt.applied {
				t.Errorf("Apply = %d, %v; want %d, error %v", n, err, tt.applied, tt.wantErr)
			}
			if !reflect.DeepEqual(f.calls, tt.calls) {
				t.Errorf("calls =\n%q\nwant\n%q", f.calls, tt.calls)
			}
		})
	}
}

func TestHeldJSON(t *testing.T) {
	if s, err := HeldJSON(nil); s != "" || err != nil {
		t.Errorf("HeldJSON(nil) = %q, %v", s, err)
	}
	s, err := HeldJSON(&record.Person{FamilyName: "X", LocalID: "L1"})
	if err != nil {
		t.Fatal(err)
	}
	// What HeldJSON writes, release reads back.
	f := fakeTx{delivery: map[int64]struct {
		status      string
		quarantined int
	}{3: {"staged", 1}}}
	if err := release(context.Background(), &f, Pending{Held: s, DeliveryID: 3}, 8); err != nil {
		t.Fatal(err)
	}
	if want := "stage 3 X 8"; f.calls[len(f.calls)-1] != want {
		t.Errorf("released %q, want %q", f.calls, want)
	}
}
