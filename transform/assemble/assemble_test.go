package assemble_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/careindex/careindex/loader/store"
	"github.com/careindex/careindex/transform/assemble"
	"github.com/careindex/careindex/transform/objection"
	"github.com/careindex/careindex/transform/record"
	"github.com/careindex/careindex/transform/sensitive"
)

// Valid NHS numbers (Modulus 11).
const (
	nhsA = "9434765919"
	nhsB = "5002977278"
	nhsC = "7931098021"
	nhsD = "7408594116"
)

var now = time.Date(2026, time.June, 1, 12, 0, 0, 0, time.UTC)

// sink collects the published rows.
type sink struct {
	patients  []store.Patient
	locations []store.Location
	items     []store.Item
	fail      error
}

func (s *sink) AddPatient(p store.Patient) error {
	if s.fail != nil {
		return s.fail
	}
	s.patients = append(s.patients, p)
	return nil
}

func (s *sink) AddLocation(l store.Location) error {
	if s.fail != nil {
		return s.fail
	}
	s.locations = append(s.locations, l)
	return nil
}

func (s *sink) AddItem(i store.Item) error {
	if s.fail != nil {
		return s.fail
	}
	s.items = append(s.items, i)
	return nil
}

// Sources: the GP practice ranks first, then the hospital, then social care.
const (
	gp     = "d81001-patients"
	gpItem = "d81001-problems"
	hosp   = "rgt-patients"
	hospIt = "rgt-encounters"
	social = "la505-clients"
	socIt  = "la505-involvements"
	gp2    = "d81001-patients-2" // a second persons feed from the GP practice
)

var orgOf = map[string]string{gp: "D81001", gpItem: "D81001", gp2: "D81001", hosp: "RGT", hospIt: "RGT", social: "LA505", socIt: "LA505"}

var rank = map[string]int{gp: 0, gp2: 1, hosp: 2, social: 3}

func register(t testing.TB, rows ...string) *objection.Register {
	t.Helper()
	csv := "nhs_number,scope,recorded,withdrawn\n" + strings.Join(rows, "\n") + "\n"
	reg, err := objection.Read(context.Background(), strings.NewReader(csv), "objections.csv", now)
	if err != nil {
		t.Fatalf("objection.Read = %v", err)
	}
	return reg
}

func codes(t testing.TB) *sensitive.List {
	t.Helper()
	l, err := sensitive.Read(strings.NewReader("code,category\n386639001,termination_of_pregnancy\n8098009,sexually_transmitted_infection\n105629000,sexually_transmitted_infection\n"), "codes.csv")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

var line atomic.Int64

// sp builds a staged person of source src for patient pid.
func sp(src string, pid int64, local string, p record.Person) store.StagedPerson {
	p.SourceID, p.OrgCode, p.File, p.Line, p.LocalID = src, orgOf[src], src+".csv", int(line.Add(1)), local
	if p.Sex == "" {
		p.Sex = "unknown"
	}
	return store.StagedPerson{Person: p, PatientID: pid, DeliveryID: int64(len(src))}
}

// si builds a staged care item of source src for patient pid.
func si(src string, pid int64, local, code string) store.StagedItem {
	return store.StagedItem{CareItem: record.CareItem{
		Provenance: record.Provenance{SourceID: src, OrgCode: orgOf[src], File: src + ".csv", Line: int(line.Add(1))},
		LocalID:    local, Kind: "problem", CodeSystem: "http://snomed.info/sct", Code: code, Display: "d " + code,
		StartDate: "2020-01-01", Status: "active",
	}, PatientID: pid}
}

type result struct {
	sink *sink
	a    *assemble.Assembler
}

func run(t *testing.T, reg *objection.Register, persons []store.StagedPerson, items []store.StagedItem) result {
	t.Helper()
	s := &sink{}
	a := assemble.New(s, reg, codes(t), rank)
	for _, p := range persons {
		if err := a.Person(p); err != nil {
			t.Fatalf("Person = %v", err)
		}
	}
	if err := a.EndPersons(); err != nil {
		t.Fatalf("EndPersons = %v", err)
	}
	for _, i := range items {
		if err := a.Item(i); err != nil {
			t.Fatalf("Item = %v", err)
		}
	}
	// The assembler's own counters agree with what reached the sink.
	if a.Patients != len(s.patients) || a.Locations != len(s.locations) || a.Items != len(s.items) {
		t.Errorf("counters %d/%d/%d, sink %d/%d/%d", a.Patients, a.Locations, a.Items, len(s.patients), len(s.locations), len(s.items))
	}
	withheld := 0
	for _, p := range s.patients {
		if p.Status == "withheld" {
			withheld++
		}
	}
	if a.WithheldPatients != withheld {
		t.Errorf("WithheldPatients = %d, sink has %d markers", a.WithheldPatients, withheld)
	}
	checkBalance(t, a, persons, items)
	return result{sink: s, a: a}
}

// checkBalance: every input record has exactly one outcome in its
// source's counts.
func checkBalance(t *testing.T, a *assemble.Assembler, persons []store.StagedPerson, items []store.StagedItem) {
	t.Helper()
	in := map[string]int{}
	for _, p := range persons {
		in[p.SourceID]++
	}
	for _, i := range items {
		in[i.SourceID]++
	}
	for _, src := range slices.Sorted(maps.Keys(in)) {
		c := a.Counts(src)
		if c.Loaded+c.Withheld+c.Quarantined != in[src] {
			t.Errorf("source %s: %+v does not balance %d records in", src, c, in[src])
		}
	}
}

func marker(pid int64, nhs string) store.Patient {
	return store.Patient{PatientID: pid, NHSNumber: nhs, Status: "withheld"}
}

func TestDemographicsByRank(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		persons []store.StagedPerson
		want    store.Patient
	}{
		{name: "GP first, then fill in from the others",
			persons: []store.StagedPerson{
				sp(hosp, 7, "M1", record.Person{NHSNumber: nhsA, FamilyName: "HOSPNAME", GivenName: "ANNE", DateOfBirth: "1970-01-02", Sex: "female", Postcode: "CB2 0QQ"}),
				sp(social, 7, "C1", record.Person{NHSNumber: nhsA, FamilyName: "SOCNAME", GivenName: "ANNIE", DateOfBirth: "1970-01-03", Sex: "male", Postcode: "PE13 1AA", GPPractice: "B82005"}),
				sp(gp, 7, "G1", record.Person{NHSNumber: nhsA, FamilyName: "GPNAME", DateOfBirth: "1970-01-01", GPPractice: "D81001"}),
			},
			want: store.Patient{PatientID: 7, NHSNumber: nhsA, FamilyName: "GPNAME", GivenName: "ANNE", DateOfBirth: "1970-01-01",
				Sex: "female", Postcode: "CB2 0QQ", GPPractice: "D81001", Status: "shared"}},
		{name: "lower rank only fills what is empty",
			persons: []store.StagedPerson{
				sp(social, 8, "C1", record.Person{FamilyName: "SOC", GivenName: "S", DateOfBirth: "1950-05-05", Sex: "male", Postcode: "PE13 1AA", GPPractice: "B82005"}),
				sp(hosp, 8, "M1", record.Person{FamilyName: "HOSP"}),
			},
			want: store.Patient{PatientID: 8, FamilyName: "HOSP", GivenName: "S", DateOfBirth: "1950-05-05", Sex: "male", Postcode: "PE13 1AA", GPPractice: "B82005", Status: "shared"}},
		{name: "unknown sex skipped for a known one",
			persons: []store.StagedPerson{
				sp(gp, 9, "G1", record.Person{FamilyName: "A", Sex: "unknown"}),
				sp(hosp, 9, "M1", record.Person{FamilyName: "B", Sex: "other"}),
			},
			want: store.Patient{PatientID: 9, FamilyName: "A", Sex: "other", Status: "shared"}},
		{name: "sex unknown when nobody knows",
			persons: []store.StagedPerson{
				sp(gp, 10, "G1", record.Person{FamilyName: "A", Sex: "unknown"}),
				sp(hosp, 10, "M1", record.Person{FamilyName: "B"}),
			},
			want: store.Patient{PatientID: 10, FamilyName: "A", Sex: "unknown", Status: "shared"}},
		{name: "S-flag hides the postcode",
			persons: []store.StagedPerson{
				sp(gp, 11, "G1", record.Person{NHSNumber: nhsB, FamilyName: "A", Postcode: "CB2 0QQ"}),
				sp(social, 11, "C1", record.Person{NHSNumber: nhsB, Postcode: "PE13 1AA", Sensitive: true}),
			},
			want: store.Patient{PatientID: 11, NHSNumber: nhsB, FamilyName: "A", Sex: "unknown", Status: "shared"}},
		{name: "S-flag on the top record hides the postcode",
			persons: []store.StagedPerson{
				sp(gp, 12, "G1", record.Person{FamilyName: "A", Postcode: "CB2 0QQ", Sensitive: true}),
			},
			want: store.Patient{PatientID: 12, FamilyName: "A", Sex: "unknown", Status: "shared"}},
		{name: "no NHS number",
			persons: []store.StagedPerson{
				sp(social, 13, "C9", record.Person{FamilyName: "NONHS", DateOfBirth: "2001-01-01", Sex: "female"}),
			},
			want: store.Patient{PatientID: 13, FamilyName: "NONHS", DateOfBirth: "2001-01-01", Sex: "female", Status: "shared"}},
		{name: "NHS number by rank when a patient has two",
			persons: []store.StagedPerson{
				sp(hosp, 14, "M1", record.Person{NHSNumber: nhsC, FamilyName: "X"}),
				sp(gp, 14, "G1", record.Person{NHSNumber: nhsD}),
			},
			want: store.Patient{PatientID: 14, NHSNumber: nhsD, FamilyName: "X", Sex: "unknown", Status: "shared"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := run(t, register(t), tt.persons, nil)
			if len(r.sink.patients) != 1 || r.sink.patients[0] != tt.want {
				t.Fatalf("patients = %+v\nwant %+v", r.sink.patients, tt.want)
			}
			if len(r.sink.locations) != len(tt.persons) {
				t.Errorf("%d locations, want %d", len(r.sink.locations), len(tt.persons))
			}
			for _, p := range tt.persons {
				want := store.Location{PatientID: p.PatientID, OrgCode: p.OrgCode, LocalID: p.LocalID}
				if !slices.Contains(r.sink.locations, want) {
					t.Errorf("location %+v missing", want)
				}
				if c := r.a.Counts(p.SourceID); c.Loaded != 1 || c.Withheld != 0 {
					t.Errorf("source %s counts %+v", p.SourceID, c)
				}
			}
		})
	}
}

// TestObjections runs one patient (id 1) with records at the GP practice,
// the hospital and social care, and items at each, against a register.
func TestObjections(t *testing.T) {
	t.Parallel()
	persons := func() []store.StagedPerson {
		return []store.StagedPerson{
			sp(gp, 1, "G1", record.Person{NHSNumber: nhsA, FamilyName: "GPNAME", GivenName: "G", DateOfBirth: "1970-01-01", Sex: "female", Postcode: "CB2 0QQ", GPPractice: "D81001"}),
			sp(hosp, 1, "M1", record.Person{NHSNumber: nhsA, FamilyName: "HOSPNAME", GivenName: "H", Postcode: "CB1 1AA"}),
			sp(social, 1, "C1", record.Person{NHSNumber: nhsA, FamilyName: "SOCNAME", DateOfBirth: "1970-01-01"}),
		}
	}
	items := func() []store.StagedItem {
		return []store.StagedItem{
			si(gpItem, 1, "G1", "44054006"), si(gpItem, 1, "G1", "195967001"),
			si(hospIt, 1, "M1", "185347001"),
			si(socIt, 1, "C1", "SC1"),
		}
	}
	shared := store.Patient{PatientID: 1, NHSNumber: nhsA, FamilyName: "GPNAME", GivenName: "G", DateOfBirth: "1970-01-01",
		Sex: "female", Postcode: "CB2 0QQ", GPPractice: "D81001", Status: "shared"}
	tests := []struct {
		name      string
		register  []string
		persons   []store.StagedPerson // default persons()
		items     []store.StagedItem   // default items()
		want      store.Patient
		orgs      []string // organisations whose locations and items are published
		withheld  []string // sources with everything withheld
		markerRow bool
	}{
		{name: "no objection", want: shared, orgs: []string{"D81001", "RGT", "LA505"}},
		{name: "objection for someone else", register: []string{nhsB + ",all,2025-01-01,"}, want: shared, orgs: []string{"D81001", "RGT", "LA505"}},
		{name: "withdrawn objection", register: []string{nhsA + ",all,2025-01-01,2026-01-01"}, want: shared, orgs: []string{"D81001", "RGT", "LA505"}},
		{name: "future objection", register: []string{nhsA + ",all,2026-07-01,"}, want: shared, orgs: []string{"D81001", "RGT", "LA505"}},
		{name: "objection to all", register: []string{nhsA + ",all,2025-01-01,"},
			want: marker(1, nhsA), withheld: []string{gp, hosp, social, gpItem, hospIt, socIt}, markerRow: true},
		{name: "objection scoped to the hospital", register: []string{nhsA + ",RGT,2025-01-01,"},
			want: shared, orgs: []string{"D81001", "LA505"}, withheld: []string{hosp, hospIt}},
		{name: "objection scoped to the GP practice", register: []string{nhsA + ",D81001,2025-01-01,"},
			want:     store.Patient{PatientID: 1, NHSNumber: nhsA, FamilyName: "HOSPNAME", GivenName: "H", DateOfBirth: "1970-01-01", Sex: "unknown", Postcode: "CB1 1AA", Status: "shared"},
			orgs:     []string{"RGT", "LA505"},
			withheld: []string{gp, gpItem}},
		{name: "objection scoped to two organisations", register: []string{nhsA + ",D81001;RGT,2025-01-01,"},
			want: store.Patient{PatientID: 1, NHSNumber: nhsA, FamilyName: "SOCNAME", DateOfBirth: "1970-01-01", Sex: "unknown", Status: "shared"},
			orgs: []string{"LA505"}, withheld: []string{gp, gpItem, hosp, hospIt}},
		{name: "objection scoped to every organisation", register: []string{nhsA + ",D81001;RGT;LA505,2025-01-01,"},
			want: marker(1, nhsA), withheld: []string{gp, hosp, social, gpItem, hospIt, socIt}, markerRow: true},
		{name: "objection scoped to the only organisation", register: []string{nhsA + ",RGT,2025-01-01,"},
			persons:   []store.StagedPerson{sp(hosp, 1, "M1", record.Person{NHSNumber: nhsA, FamilyName: "HOSPNAME", GivenName: "H"})},
			items:     []store.StagedItem{si(hospIt, 1, "M1", "185347001"), si(hospIt, 1, "M1", "44054006")},
			want:      marker(1, nhsA),
			withheld:  []string{hosp, hospIt},
			markerRow: true},
		{name: "objection on a second NHS number of the patient", register: []string{nhsC + ",all,2025-01-01,"},
			persons: []store.StagedPerson{
				sp(gp, 1, "G1", record.Person{NHSNumber: nhsA, FamilyName: "GPNAME"}),
				sp(hosp, 1, "M1", record.Person{NHSNumber: nhsC, FamilyName: "HOSPNAME"}),
			},
			want: marker(1, nhsA), withheld: []string{gp, hosp, gpItem, hospIt, socIt}, markerRow: true},
		{name: "scoped objections on two NHS numbers combine", register: []string{nhsA + ",RGT,2025-01-01,", nhsC + ",LA505,2025-01-01,"},
			persons: []store.StagedPerson{
				sp(gp, 1, "G1", record.Person{NHSNumber: nhsA, FamilyName: "GPNAME"}),
				sp(hosp, 1, "M1", record.Person{NHSNumber: nhsA, FamilyName: "HOSPNAME"}),
				sp(social, 1, "C1", record.Person{NHSNumber: nhsC, FamilyName: "SOCNAME"}),
			},
			want: store.Patient{PatientID: 1, NHSNumber: nhsA, FamilyName: "GPNAME", Sex: "unknown", Status: "shared"},
			orgs: []string{"D81001"}, withheld: []string{hosp, social, hospIt, socIt}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ps := tt.persons
			if ps == nil {
				ps = persons()
			}
			is := tt.items
			if is == nil {
				is = items()
			}
			r := run(t, register(t, tt.register...), ps, is)
			if len(r.sink.patients) != 1 || r.sink.patients[0] != tt.want {
				t.Fatalf("patients = %+v\nwant %+v", r.sink.patients, tt.want)
			}
			if tt.markerRow {
				if len(r.sink.locations) != 0 {
					t.Errorf("marker patient has locations %+v", r.sink.locations)
				}
				if r.a.WithheldPatients != 1 {
					t.Errorf("WithheldPatients = %d", r.a.WithheldPatients)
				}
			}
			for _, l := range r.sink.locations {
				if !slices.Contains(tt.orgs, l.OrgCode) {
					t.Errorf("location at %s published", l.OrgCode)
				}
			}
			for _, p := range ps {
				published := slices.Contains(r.sink.locations, store.Location{PatientID: 1, OrgCode: p.OrgCode, LocalID: p.LocalID})
				if published == slices.Contains(tt.withheld, p.SourceID) {
					t.Errorf("record of %s published = %v", p.SourceID, published)
				}
			}
			for _, it := range r.sink.items {
				if !slices.Contains(tt.orgs, it.OrgCode) || tt.markerRow {
					t.Errorf("item at %s published", it.OrgCode)
				}
			}
			for _, src := range tt.withheld {
				c := r.a.Counts(src)
				if c.Loaded != 0 || c.Withheld == 0 {
					t.Errorf("source %s: %+v, want everything withheld", src, c)
				}
			}
			for _, src := range []string{gp, hosp, social, gpItem, hospIt, socIt} {
				if slices.Contains(tt.withheld, src) {
					continue
				}
				if c := r.a.Counts(src); c.Withheld != 0 {
					t.Errorf("source %s: %+v, want nothing withheld", src, c)
				}
			}
		})
	}
}

func TestMarkerRowCarriesNoMore(t *testing.T) {
	t.Parallel()
	persons := []store.StagedPerson{
		sp(gp, 5, "G1", record.Person{NHSNumber: nhsD, FamilyName: "SECRET", GivenName: "S", DateOfBirth: "1960-06-06", Sex: "male", Postcode: "CB2 0QQ", GPPractice: "D81001", Sensitive: true}),
	}
	r := run(t, register(t, nhsD+",all,2024-01-01,"), persons, []store.StagedItem{si(gpItem, 5, "G1", "8098009"), si(gpItem, 5, "G1", "44054006")})
	if got := r.sink.patients; len(got) != 1 || got[0] != marker(5, nhsD) {
		t.Fatalf("patients = %+v, want only the marker", got)
	}
	if len(r.sink.locations)+len(r.sink.items) != 0 {
		t.Errorf("marker published locations %v and items %v", r.sink.locations, r.sink.items)
	}
	if c := r.a.Counts(gpItem); c.Withheld != 2 {
		t.Errorf("item counts %+v, want 2 withheld", c)
	}
	if len(r.a.Sensitive) != 0 {
		t.Errorf("items withheld by objection counted as sensitive: %v", r.a.Sensitive)
	}
}

func TestItems(t *testing.T) {
	t.Parallel()
	persons := []store.StagedPerson{
		sp(gp, 1, "G1", record.Person{NHSNumber: nhsA, FamilyName: "A"}),
		sp(gp, 2, "G2", record.Person{NHSNumber: nhsB, FamilyName: "B"}),
		sp(hosp, 2, "M2", record.Person{NHSNumber: nhsB, FamilyName: "B"}),
	}
	orphan := si(gpItem, 0, "G404", "44054006")
	items := []store.StagedItem{
		orphan,
		si(gpItem, 1, "G1", "44054006"),
		si(gpItem, 1, "G1", "386639001"), // termination of pregnancy
		si(gpItem, 1, "G1", "8098009"),   // STI
		si(gpItem, 2, "G2", "105629000"), // STI
		si(hospIt, 2, "M2", "185347001"),
		si(hospIt, 2, "M2", "8098009"), // STI, but the hospital part is withheld first
		si(hospIt, 0, "M404", "185347001"),
	}
	r := run(t, register(t, nhsB+",RGT,2025-01-01,"), persons, items)

	wantCounts := map[string]assemble.Counts{
		gp:     {Loaded: 2},
		hosp:   {Withheld: 1},
		gpItem: {Loaded: 1, Withheld: 3, Quarantined: 1},
		hospIt: {Withheld: 2, Quarantined: 1},
		"none": {},
	}
	for src, want := range wantCounts {
		if got := r.a.Counts(src); got != want {
			t.Errorf("Counts(%s) = %+v, want %+v", src, got, want)
		}
	}
	if want := map[string]int{"termination_of_pregnancy": 1, "sexually_transmitted_infection": 2}; !maps.Equal(r.a.Sensitive, want) {
		t.Errorf("Sensitive = %v, want %v", r.a.Sensitive, want)
	}
	wantItem := store.Item{PatientID: 1, OrgCode: "D81001", Kind: "problem", CodeSystem: "http://snomed.info/sct", Code: "44054006",
		Display: "d 44054006", StartDate: "2020-01-01", Status: "active"}
	if len(r.sink.items) != 1 || r.sink.items[0] != wantItem {
		t.Errorf("items = %+v, want %+v", r.sink.items, wantItem)
	}
	rejects := r.a.Rejects()
	if len(rejects) != 2 {
		t.Fatalf("rejects = %+v, want 2", rejects)
	}
	if want := (store.Reject{SourceID: gpItem, File: orphan.File, Line: orphan.Line, Reason: assemble.ReasonNoPerson}); rejects[0] != want {
		t.Errorf("reject = %+v, want %+v", rejects[0], want)
	}
	if rejects[1].SourceID != hospIt || rejects[1].Reason != assemble.ReasonNoPerson {
		t.Errorf("reject = %+v", rejects[1])
	}
}

func TestNilSensitiveListWithholdsNothing(t *testing.T) {
	t.Parallel()
	s := &sink{}
	a := assemble.New(s, register(t), nil, rank)
	if err := a.Person(sp(gp, 1, "G1", record.Person{FamilyName: "A"})); err != nil {
		t.Fatal(err)
	}
	if err := a.EndPersons(); err != nil {
		t.Fatal(err)
	}
	if err := a.Item(si(gpItem, 1, "G1", "8098009")); err != nil {
		t.Fatal(err)
	}
	if len(s.items) != 1 || a.Counts(gpItem) != (assemble.Counts{Loaded: 1}) {
		t.Errorf("items %v counts %+v", s.items, a.Counts(gpItem))
	}
}

func TestGroupingAndBalance(t *testing.T) {
	t.Parallel()
	persons := []store.StagedPerson{
		sp(gp, 1, "G1", record.Person{NHSNumber: nhsA, FamilyName: "A"}),
		sp(hosp, 1, "M1", record.Person{NHSNumber: nhsA, FamilyName: "A"}),
		sp(gp, 2, "G2", record.Person{NHSNumber: nhsB, FamilyName: "B"}),
		sp(social, 3, "C3", record.Person{FamilyName: "C"}),
		sp(hosp, 4, "M4", record.Person{NHSNumber: nhsC, FamilyName: "D"}),
		sp(social, 4, "C4", record.Person{NHSNumber: nhsC, FamilyName: "D"}),
		sp(gp, 5, "G5", record.Person{NHSNumber: nhsD, FamilyName: "E"}),
	}
	items := []store.StagedItem{
		si(gpItem, 0, "GX", "1"),
		si(gpItem, 1, "G1", "1"), si(hospIt, 1, "M1", "2"),
		si(gpItem, 2, "G2", "386639001"),
		si(socIt, 3, "C3", "3"),
		si(hospIt, 4, "M4", "4"), si(socIt, 4, "C4", "5"),
		si(gpItem, 5, "G5", "6"),
	}
	r := run(t, register(t, nhsC+",LA505,2025-01-01,", nhsD+",all,2025-01-01,"), persons, items)
	var got []int64
	for _, p := range r.sink.patients {
		got = append(got, p.PatientID)
	}
	if !slices.Equal(got, []int64{1, 2, 3, 4, 5}) {
		t.Errorf("patient rows %v, want one per patient in order", got)
	}
	if r.a.Patients != 5 || r.a.WithheldPatients != 1 || r.a.Locations != 5 || r.a.Items != 4 {
		t.Errorf("Patients %d, WithheldPatients %d, Locations %d, Items %d; want 5, 1, 5, 4",
			r.a.Patients, r.a.WithheldPatients, r.a.Locations, r.a.Items)
	}
	want := map[string]assemble.Counts{
		gp:     {Loaded: 2, Withheld: 1},
		hosp:   {Loaded: 2},
		social: {Loaded: 1, Withheld: 1},
		gpItem: {Loaded: 1, Withheld: 2, Quarantined: 1},
		hospIt: {Loaded: 2},
		socIt:  {Loaded: 1, Withheld: 1},
	}
	for src, w := range want {
		if c := r.a.Counts(src); c != w {
			t.Errorf("Counts(%s) = %+v, want %+v", src, c, w)
		}
	}
}

func TestDuplicateLocalIDFromTwoSources(t *testing.T) {
	t.Parallel()
	persons := []store.StagedPerson{
		sp(gp, 3, "G1", record.Person{NHSNumber: nhsA, FamilyName: "FIRST"}),
		sp(gp2, 3, "G1", record.Person{NHSNumber: nhsA, FamilyName: "SECOND", GivenName: "FILL"}),
	}
	r := run(t, register(t), persons, nil)
	if len(r.sink.locations) != 1 || r.sink.locations[0] != (store.Location{PatientID: 3, OrgCode: "D81001", LocalID: "G1"}) {
		t.Errorf("locations = %+v, want one", r.sink.locations)
	}
	for _, src := range []string{gp, gp2} {
		if c := r.a.Counts(src); c != (assemble.Counts{Loaded: 1}) {
			t.Errorf("Counts(%s) = %+v, want loaded once", src, c)
		}
	}
	if p := r.sink.patients[0]; p.FamilyName != "FIRST" || p.GivenName != "FILL" {
		t.Errorf("patient = %+v", p)
	}
}

func TestSinkErrors(t *testing.T) {
	t.Parallel()
	boom := errors.New("disk full")
	tests := []struct {
		name string
		call func(a *assemble.Assembler) error
	}{
		{"patient row on the next patient", func(a *assemble.Assembler) error {
			if err := a.Person(sp(gp, 1, "G1", record.Person{FamilyName: "A"})); err != nil {
				return err
			}
			return a.Person(sp(gp, 2, "G2", record.Person{FamilyName: "B"}))
		}},
		{"patient row at EndPersons", func(a *assemble.Assembler) error {
			if err := a.Person(sp(gp, 1, "G1", record.Person{FamilyName: "A"})); err != nil {
				return err
			}
			return a.EndPersons()
		}},
		{"marker row", func(a *assemble.Assembler) error {
			if err := a.Person(sp(gp, 1, "G1", record.Person{NHSNumber: nhsA})); err != nil {
				return err
			}
			return a.EndPersons()
		}},
		{"item", func(a *assemble.Assembler) error {
			return a.Item(si(gpItem, 1, "G1", "44054006"))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := &sink{fail: boom}
			a := assemble.New(s, register(t, nhsA+",all,2025-01-01,"), codes(t), rank)
			if err := tt.call(a); !errors.Is(err, boom) {
				t.Errorf("error = %v, want the sink's", err)
			}
		})
	}
}

func TestEmpty(t *testing.T) {
	t.Parallel()
	r := run(t, register(t), nil, nil)
	if len(r.sink.patients)+len(r.sink.locations)+len(r.sink.items) != 0 || len(r.a.Rejects()) != 0 {
		t.Errorf("empty input published %+v", r.sink)
	}
	if c := r.a.Counts(gp); c != (assemble.Counts{}) {
		t.Errorf("Counts = %+v", c)
	}
}

// TestSensitiveRecordAnywhereHidesPostcode: the package promises that "a
// sensitive (S-flag) record anywhere hides the postcode", including a record
// that an organisation-scoped objection withholds.
func TestSensitiveRecordAnywhereHidesPostcode(t *testing.T) {
	t.Parallel()
	persons := []store.StagedPerson{
		sp(gp, 1, "G1", record.Person{NHSNumber: nhsA, FamilyName: "A", Postcode: "CB2 0QQ", Sensitive: true}),
		sp(hosp, 1, "M1", record.Person{NHSNumber: nhsA, FamilyName: "A", Postcode: "CB2 0QQ"}),
	}
	r := run(t, register(t, nhsA+",D81001,2025-01-01,"), persons, nil)
	if len(r.sink.patients) != 1 {
		t.Fatalf("patients = %+v", r.sink.patients)
	}
	if pc := r.sink.patients[0].Postcode; pc != "" {
		t.Errorf("postcode %q published for a patient with an S-flagged record", pc)
	}
}
