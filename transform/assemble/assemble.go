// Package assemble builds the published rows of a version from the linked
// records of every source, applying the objection register on the way.
//
// Persons arrive grouped by patient (ordered by patient id). For each
// patient the Assembler decides, from the objections in force for any of the
// patient's NHS numbers:
//
//   - an objection to all sharing: one marker row (status withheld, the NHS
//     number and nothing else); every record and care item is withheld;
//   - an objection scoped to organisations: those organisations' records and
//     items are withheld; the rest is published (and if nothing is left, the
//     marker row is published instead);
//   - otherwise everything is published.
//
// The shared patient row takes its demographics from the patient's records
// in rank order (GP practice first, then the configured order), each field
// from the first record that has it. A sensitive (S-flag) record anywhere
// hides the postcode.
//
// Care items then arrive ordered by patient; an item whose person is not in
// its organisation's delivery is rejected, and an item of a withheld part,
// or whose code is on the sensitive code list, is withheld. Every record gets exactly one outcome, counted per source.
package assemble

import (
	"cmp"
	"slices"
	"strings"

	"github.com/careindex/careindex/loader/store"
	"github.com/careindex/careindex/transform/objection"
	"github.com/careindex/careindex/transform/sensitive"
)

// ReasonNoPerson is the quarantine reason of a care item without a person.
const ReasonNoPerson = "local_id: no person with this local id in the organisation's delivery"

// Sink receives the published rows.
type Sink interface {
	AddPatient(store.Patient) error
	AddLocation(store.Location) error
	AddItem(store.Item) error
}

// Counts are one source's outcomes in a version.
type Counts struct {
	Loaded, Withheld, Quarantined int
}

// Assembler assembles one version.
type Assembler struct {
	sink     Sink
	register *objection.Register
	codes    *sensitive.List
	rank     map[string]int // source id → rank, lower first

	overrides *objection.Overrides
	requests  *sensitive.Requests

	group     []store.StagedPerson
	decisions map[int64]objection.Decision // only patients with something withheld
	counts    map[string]*Counts
	rejects   []store.Reject
	withheld  map[store.WithheldCount]int
	applied   []store.AppliedOverride

	Patients, WithheldPatients, Locations, Items int
	// Sensitive counts the care items withheld by sensitive category.
	Sensitive map[string]int
}

// Withheld reasons, as counted in the ledger and the compliance report.
const (
	ReasonObjection                   = "objection"        // a record or item of an objecting patient's withheld part
	ReasonObjectionAll                = "objection_all"    // a patient published as a marker only
	ReasonObjectionScoped             = "objection_scoped" // a patient with some organisations' parts withheld
	ReasonPatientRequest              = "patient_request"  // an item the patient asked to withhold
	ReasonSensitivePrefix             = "sensitive:"       // an item on the sensitive code list, by category
	kindPatient, kindRecord, kindItem = "patient", "record", "item"
)

// WithOverrides applies the override register.
func (a *Assembler) WithOverrides(ov *objection.Overrides) *Assembler {
	a.overrides = ov
	return a
}

// WithRequests withholds the care items patients asked to withhold.
func (a *Assembler) WithRequests(q *sensitive.Requests) *Assembler {
	a.requests = q
	return a
}

func (a *Assembler) withhold(source, kind, reason string) {
	a.withheld[store.WithheldCount{SourceID: source, Kind: kind, Reason: reason}]++
}

// WithheldCounts returns what was withheld, by source, kind and reason.
func (a *Assembler) WithheldCounts() []store.WithheldCount {
	out := make([]store.WithheldCount, 0, len(a.withheld))
	for k, n := range a.withheld {
		k.Count = n
		out = append(out, k)
	}
	slices.SortFunc(out, func(x, y store.WithheldCount) int {
		return cmp.Or(cmp.Compare(x.Kind, y.Kind), cmp.Compare(x.Reason, y.Reason), cmp.Compare(x.SourceID, y.SourceID))
	})
	return out
}

// AppliedOverrides returns the overrides that set an objection aside.
func (a *Assembler) AppliedOverrides() []store.AppliedOverride { return a.applied }

// New returns an assembler writing to sink. rank orders sources for the
// choice of demographics.
func New(sink Sink, register *objection.Register, codes *sensitive.List, rank map[string]int) *Assembler {
	return &Assembler{sink: sink, register: register, codes: codes, rank: rank,
		decisions: map[int64]objection.Decision{}, counts: map[string]*Counts{}, Sensitive: map[string]int{},
		withheld: map[store.WithheldCount]int{}}
}

func (a *Assembler) count(source string) *Counts {
	c, ok := a.counts[source]
	if !ok {
		c = &Counts{}
		a.counts[source] = c
	}
	return c
}

// Person takes the next person record; records must come ordered by patient.
func (a *Assembler) Person(p store.StagedPerson) error {
	if len(a.group) > 0 && a.group[0].PatientID != p.PatientID {
		if err := a.flush(); err != nil {
			return err
		}
	}
	a.group = append(a.group, p)
	return nil
}

// EndPersons publishes the last patient. Call it before the first Item.
func (a *Assembler) EndPersons() error { return a.flush() }

func (a *Assembler) flush() error {
	if len(a.group) == 0 {
		return nil
	}
	g := a.group
	a.group = a.group[:0]
	pid := g[0].PatientID
	var nhs []string
	for _, p := range g {
		if p.NHSNumber != "" && !slices.Contains(nhs, p.NHSNumber) {
			nhs = append(nhs, p.NHSNumber)
		}
	}
	onRecords := len(nhs)
	// The objection follows the patient: NHS numbers linked to the
	// patient count even when no record in this version carries them.
	for _, n := range a.register.Linked(pid) {
		if !slices.Contains(nhs, n) {
			nhs = append(nhs, n)
		}
	}
	var flags []objection.Flag
	for _, p := range g {
		switch {
		case p.Objection == "":
		case p.Objection == "all":
			flags = append(flags, objection.Flag{})
		default:
			flags = append(flags, objection.Flag{Orgs: strings.Split(p.Objection, ";")})
		}
	}
	d := a.register.DecideWith(a.overrides, flags, nhs...)
	for _, o := range d.Overrides {
		a.applied = append(a.applied, store.AppliedOverride{PatientID: pid, Reason: o.Reason, AuthorisedBy: o.AuthorisedBy,
			ValidFrom: o.ValidFrom, ValidTo: o.ValidTo, Scope: o.Scope()})
	}
	var keep []store.StagedPerson
	sensitive := false
	for _, p := range g {
		// An S-flag on any record, shared or not, hides the address.
		sensitive = sensitive || p.Sensitive
		if d.Shares(p.OrgCode) {
			keep = append(keep, p)
		} else {
			a.count(p.SourceID).Withheld++
			a.withhold(p.SourceID, kindRecord, ReasonObjection)
		}
	}
	if d.Any() {
		a.decisions[pid] = d
	}
	if len(keep) == 0 {
		// Nothing may be shared: publish the marker only.
		a.decisions[pid] = objection.Decision{WithholdAll: true}
		a.withhold("", kindPatient, ReasonObjectionAll)
		marker := store.Patient{PatientID: pid, Status: "withheld"}
		if onRecords > 0 {
			// The marker carries the NHS number the records carry.
			marker.NHSNumber = nhs[0]
		}
		a.Patients++
		a.WithheldPatients++
		return a.sink.AddPatient(marker)
	}
	slices.SortStableFunc(keep, func(x, y store.StagedPerson) int {
		return cmp.Compare(a.rank[x.SourceID], a.rank[y.SourceID])
	})
	row := store.Patient{PatientID: pid, Status: "shared"}
	for _, p := range keep {
		fill(&row.NHSNumber, p.NHSNumber)
		fill(&row.FamilyName, p.FamilyName)
		fill(&row.GivenName, p.GivenName)
		fill(&row.DateOfBirth, p.DateOfBirth)
		if p.Sex != "unknown" {
			fill(&row.Sex, p.Sex)
		}
		fill(&row.Postcode, p.Postcode)
		fill(&row.GPPractice, p.GPPractice)
	}
	if row.Sex == "" {
		row.Sex = "unknown"
	}
	if sensitive {
		row.Postcode = ""
	}
	if d.Any() {
		a.withhold("", kindPatient, ReasonObjectionScoped)
	}
	a.Patients++
	if err := a.sink.AddPatient(row); err != nil {
		return err
	}
	seen := map[[2]string]bool{}
	for _, p := range keep {
		key := [2]string{p.OrgCode, p.LocalID}
		if seen[key] {
			// The same local id sent by two sources of one organisation.
			a.count(p.SourceID).Loaded++
			continue
		}
		seen[key] = true
		a.Locations++
		a.count(p.SourceID).Loaded++
		if err := a.sink.AddLocation(store.Location{PatientID: pid, OrgCode: p.OrgCode, LocalID: p.LocalID}); err != nil {
			return err
		}
	}
	return nil
}

func fill(dst *string, v string) {
	if *dst == "" {
		*dst = v
	}
}

// Item takes the next care item.
func (a *Assembler) Item(i store.StagedItem) error {
	if i.PatientID == 0 {
		a.count(i.SourceID).Quarantined++
		a.rejects = append(a.rejects, store.Reject{SourceID: i.SourceID, File: i.File, Line: i.Line, Reason: ReasonNoPerson})
		return nil
	}
	if d, ok := a.decisions[i.PatientID]; ok && !d.Shares(i.OrgCode) {
		a.count(i.SourceID).Withheld++
		a.withhold(i.SourceID, kindItem, ReasonObjection)
		return nil
	}
	if cat, ok := a.codes.Category(i.Code); ok {
		a.count(i.SourceID).Withheld++
		a.Sensitive[cat]++
		a.withhold(i.SourceID, kindItem, ReasonSensitivePrefix+cat)
		return nil
	}
	if a.requests.Withheld(i.OrgCode, i.ItemID) {
		a.count(i.SourceID).Withheld++
		a.withhold(i.SourceID, kindItem, ReasonPatientRequest)
		return nil
	}
	a.count(i.SourceID).Loaded++
	a.Items++
	return a.sink.AddItem(store.Item{PatientID: i.PatientID, OrgCode: i.OrgCode, ItemID: i.ItemID, Kind: i.Kind, CodeSystem: i.CodeSystem,
		Code: i.Code, Display: i.Display, StartDate: i.StartDate, EndDate: i.EndDate, Status: i.Status})
}

// Counts returns the outcomes of source's records in this version.
func (a *Assembler) Counts(source string) Counts {
	if c, ok := a.counts[source]; ok {
		return *c
	}
	return Counts{}
}

// Rejects returns the items rejected while assembling.
func (a *Assembler) Rejects() []store.Reject { return a.rejects }
