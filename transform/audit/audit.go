// Package audit checks a published version against the rules in force now:
// the objection register, the overrides, the organisations' own objection
// flags, the sensitive code list and the items patients asked to withhold.
// It reports every leak by patient id — never by NHS number or name — so
// its output can go to an incident ticket.
package audit

import (
	"fmt"
	"strings"

	"github.com/careindex/careindex/loader/store"
	"github.com/careindex/careindex/transform/objection"
	"github.com/careindex/careindex/transform/sensitive"
)

// Rules are what decides what may be published.
type Rules struct {
	Register  *objection.Register
	Overrides *objection.Overrides
	Codes     *sensitive.List
	Requests  *sensitive.Requests
}

// Leak is one thing published that must not be.
type Leak struct {
	PatientID int64  `json:"patient_id"`
	What      string `json:"what"`
}

func (l Leak) String() string { return fmt.Sprintf("patient %d: %s", l.PatientID, l.What) }

// Check returns the leaks of one published patient.
func (r Rules) Check(p store.LivePatient) []Leak {
	var leaks []Leak
	leak := func(format string, args ...any) {
		leaks = append(leaks, Leak{PatientID: p.PatientID, What: fmt.Sprintf(format, args...)})
	}
	if p.Status == "withheld" {
		if p.HasDemographics {
			leak("withheld patient published with demographics")
		}
		if len(p.Orgs) > 0 {
			leak("withheld patient published with %d record location(s)", len(p.Orgs))
		}
		if len(p.Items) > 0 {
			leak("withheld patient published with %d care item(s)", len(p.Items))
		}
		return leaks
	}
	var flags []objection.Flag
	for _, f := range p.Flags {
		if f == "all" {
			flags = append(flags, objection.Flag{})
		} else {
			flags = append(flags, objection.Flag{Orgs: strings.Split(f, ";")})
		}
	}
	d := r.Register.DecideWith(r.Overrides, flags, p.NHSNumbers...)
	if d.WithholdAll && len(d.Except) == 0 {
		leak("patient objects to all sharing but is published as shared")
	}
	for _, org := range p.Orgs {
		if !d.Shares(org) {
			leak("record location at %s published despite an objection", org)
		}
	}
	for _, it := range p.Items {
		switch {
		case !d.Shares(it.OrgCode):
			leak("care item from %s published despite an objection", it.OrgCode)
		case r.Requests.Withheld(it.OrgCode, it.ItemID):
			leak("care item %s from %s published although the patient asked to withhold it", it.ItemID, it.OrgCode)
		default:
			if cat, ok := r.Codes.Category(it.Code); ok {
				leak("sensitive care item (%s) from %s published", cat, it.OrgCode)
			}
		}
	}
	return leaks
}
