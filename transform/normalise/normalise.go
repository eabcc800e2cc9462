// Package normalise turns one source's raw rows into person records and
// care items, using the source's column mapping and date formats.
//
// A Mapper is built once per delivery from the delivery's header; a header
// missing a mapped column is an error for the whole delivery. After that
// each row either maps to a record or is rejected with a reason that names
// the field and the problem. Reasons never repeat the value itself, so
// they can be counted and logged without exposing patient data.
package normalise

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/careindex/careindex/extractors/rowsource"
	"github.com/careindex/careindex/transform/field"
	"github.com/careindex/careindex/transform/nhsnumber"
	"github.com/careindex/careindex/transform/postcode"
	"github.com/careindex/careindex/transform/record"
)

// ErrMissingColumn means a mapped column is not in the delivery's header.
var ErrMissingColumn = errors.New("mapped column missing from the delivery")

// Options describe one source.
type Options struct {
	SourceID string
	OrgCode  string
	// OrgType gp_practice makes the organisation the GP practice of the
	// people it sends when no gp_practice column is mapped.
	OrgType string
	// Columns maps careindex field names to the delivery's column names.
	Columns     map[string]string
	DateFormats []string
	// TestData allows NHS numbers in the 999 test range.
	TestData bool
	// ItemKind and CodeSystem apply to every care item whose row does not
	// carry them.
	ItemKind   string
	CodeSystem string
	// Now bounds dates of birth (none in the future).
	Now time.Time
}

// Mapper maps rows of one delivery.
type Mapper struct {
	opts Options
	idx  map[string]int
	// joined holds the columns of a field mapped to several columns
	// (address only), in order.
	joined map[string][]int
}

// Joinable lists the fields that may be mapped to several columns joined
// with "+" ("street_number + address_1 + suburb"): their values are joined
// with a space. A mapped name that is itself a column of the header is
// always that one column.
var Joinable = []string{"address"}

// NewMapper checks the header against the mapping.
func NewMapper(header []string, opts Options) (*Mapper, error) {
	pos := map[string]int{}
	for i, h := range header {
		pos[strings.ToLower(strings.TrimSpace(h))] = i
	}
	m := &Mapper{opts: opts, idx: map[string]int{}}
	var missing []string
	for f, col := range opts.Columns {
		i, ok := pos[strings.ToLower(strings.TrimSpace(col))]
		if !ok && slices.Contains(Joinable, f) && strings.Contains(col, "+") {
			var cols []int
			for _, part := range strings.Split(col, "+") {
				j, ok := pos[strings.ToLower(strings.TrimSpace(part))]
				if !ok {
					missing = append(missing, fmt.Sprintf("%s (for %s)", strings.TrimSpace(part), f))
					continue
				}
				cols = append(cols, j)
			}
			if m.joined == nil {
				m.joined = map[string][]int{}
			}
			m.joined[f] = cols
			continue
		}
		if !ok {
			missing = append(missing, fmt.Sprintf("%s (for %s)", col, f))
			continue
		}
		m.idx[f] = i
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return nil, fmt.Errorf("%w: %s", ErrMissingColumn, strings.Join(missing, ", "))
	}
	return m, nil
}

func (m *Mapper) get(row rowsource.Row, f string) string {
	if cols, ok := m.joined[f]; ok {
		parts := make([]string, 0, len(cols))
		for _, i := range cols {
			if i < len(row.Values) {
				if v := strings.TrimSpace(row.Values[i]); v != "" {
					parts = append(parts, v)
				}
			}
		}
		return strings.Join(parts, " ")
	}
	i, ok := m.idx[f]
	if !ok || i >= len(row.Values) {
		return ""
	}
	return strings.TrimSpace(row.Values[i])
}

// rowError is a rejected row's reason.
type rowError struct{ reason string }

func (e *rowError) Error() string { return e.reason }

func reject(f string, err error, raw string) error {
	msg := err.Error()
	// The value packages prefix their errors with their name; the field
	// name says it better.
	for _, prefix := range []string{"nhsnumber: ", "postcode: ", "field: ", f + ": "} {
		msg = strings.TrimPrefix(msg, prefix)
	}
	if raw != "" && strings.Contains(msg, raw) {
		// Never carry the value into a reason.
		msg = "not a valid value"
	}
	return &rowError{reason: f + ": " + msg}
}

func (m *Mapper) provenance(row rowsource.Row) record.Provenance {
	return record.Provenance{SourceID: m.opts.SourceID, OrgCode: m.opts.OrgCode, File: row.File, Line: row.Line}
}

// Person maps a row of a persons source. The error, when not nil, is the
// reason the row goes to quarantine.
func (m *Mapper) Person(row rowsource.Row) (record.Person, error) {
	p := record.Person{Provenance: m.provenance(row)}
	if row.Err != nil {
		return p, &rowError{reason: row.Err.Error()}
	}
	p.LocalID = m.get(row, "local_id")
	if p.LocalID == "" {
		return p, &rowError{reason: "local_id: missing"}
	}
	if p.Deleted = deletion(m.get(row, "action")); p.Deleted {
		return p, nil
	}
	if raw := m.get(row, "nhs_number"); raw != "" {
		n, err := nhsnumber.Parse(raw, nhsnumber.Options{AllowTestRange: m.opts.TestData})
		if err != nil {
			return p, reject("nhs_number", err, raw)
		}
		p.NHSNumber = n
	}
	p.FamilyName = field.Name(m.get(row, "family_name"))
	p.GivenName = field.Name(m.get(row, "given_name"))
	if raw := m.get(row, "date_of_birth"); raw != "" {
		d, err := field.DateOfBirth(raw, m.opts.DateFormats, m.opts.Now)
		if err != nil {
			return p, reject("date_of_birth", err, raw)
		}
		p.DateOfBirth = d
	}
	sex, err := field.Sex(m.get(row, "sex"))
	if err != nil {
		return p, reject("sex", err, m.get(row, "sex"))
	}
	p.Sex = sex
	if raw := m.get(row, "postcode"); raw != "" {
		pc, err := postcode.Normalise(raw)
		if err != nil {
			return p, reject("postcode", err, raw)
		}
		p.Postcode = pc
	}
	if raw := m.get(row, "gp_practice"); raw != "" {
		code, err := field.ODSCode(raw)
		if err != nil {
			return p, reject("gp_practice", err, raw)
		}
		if code != "V81999" { // V81999: GP practice not known
			p.GPPractice = code
		}
	} else if m.opts.OrgType == "gp_practice" {
		p.GPPractice = m.opts.OrgCode
	}
	if raw := m.get(row, "sensitive"); raw != "" {
		s, err := flag(raw)
		if err != nil {
			return p, reject("sensitive", err, raw)
		}
		p.Sensitive = s
	}
	if raw := m.get(row, "objection"); raw != "" {
		o, err := objectionFlag(raw, m.opts.OrgCode)
		if err != nil {
			return p, reject("objection", err, raw)
		}
		p.Objection = o
	}
	p.Address = strings.Join(strings.Fields(strings.ToUpper(m.get(row, "address"))), " ")
	p.Email = strings.ToLower(m.get(row, "email"))
	p.Phone = strings.Join(strings.Fields(m.get(row, "phone")), " ")
	if p.NHSNumber == "" && p.FamilyName == "" && p.GivenName == "" && p.DateOfBirth == "" {
		return p, &rowError{reason: "no NHS number, name or date of birth: nothing to identify the person by"}
	}
	return p, nil
}

// objectionFlag reads an organisation's objection column: N/no/0/false for
// none; Y/yes/1/true/all for all organisations; org/local for this
// organisation only; or ODS codes separated by ";".
func objectionFlag(s, org string) (string, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "n", "no", "0", "false", "":
		return "", nil
	case "y", "yes", "1", "true", "all":
		return "all", nil
	case "org", "local", "this":
		return org, nil
	}
	var codes []string
	for _, c := range strings.Split(s, ";") {
		c = strings.ToUpper(strings.TrimSpace(c))
		if c == "" {
			continue
		}
		if _, err := field.ODSCode(c); err != nil {
			return "", errors.New("not Y/N, all, org or ODS codes separated by ;")
		}
		codes = append(codes, c)
	}
	if len(codes) == 0 {
		return "", errors.New("not Y/N, all, org or ODS codes separated by ;")
	}
	return strings.Join(codes, ";"), nil
}

// deletion reports whether a delta row's action removes the row.
func deletion(action string) bool {
	switch strings.ToLower(strings.TrimSpace(action)) {
	case "d", "del", "delete", "deleted", "remove":
		return true
	}
	return false
}

func flag(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "y", "yes", "true", "1", "s":
		return true, nil
	case "n", "no", "false", "0", "":
		return false, nil
	}
	return false, errors.New("not a yes/no flag")
}

// CareItem maps a row of a care_items source.
func (m *Mapper) CareItem(row rowsource.Row) (record.CareItem, error) {
	it := record.CareItem{Provenance: m.provenance(row)}
	if row.Err != nil {
		return it, &rowError{reason: row.Err.Error()}
	}
	it.LocalID = m.get(row, "local_id")
	if it.LocalID == "" {
		return it, &rowError{reason: "local_id: missing"}
	}
	it.ItemID = m.get(row, "item_id")
	if it.Deleted = deletion(m.get(row, "action")); it.Deleted {
		it.Kind, it.CodeSystem, it.Code = m.opts.ItemKind, m.opts.CodeSystem, "-"
		return it, nil
	}
	it.Kind = strings.ToLower(m.get(row, "kind"))
	if it.Kind == "" {
		it.Kind = m.opts.ItemKind
	}
	if !slices.Contains(record.Kinds, it.Kind) {
		return it, &rowError{reason: "kind: not one of " + strings.Join(record.Kinds, ", ")}
	}
	it.CodeSystem = m.get(row, "code_system")
	if it.CodeSystem == "" {
		it.CodeSystem = m.opts.CodeSystem
	}
	it.Code = m.get(row, "code")
	if it.Code == "" {
		return it, &rowError{reason: "code: missing"}
	}
	it.Display = strings.Join(strings.Fields(m.get(row, "display")), " ")
	for _, d := range []struct {
		name string
		dst  *string
	}{{"start_date", &it.StartDate}, {"end_date", &it.EndDate}} {
		raw := m.get(row, d.name)
		if raw == "" {
			continue
		}
		v, err := field.Date(raw, m.opts.DateFormats)
		if err != nil {
			return it, reject(d.name, err, raw)
		}
		*d.dst = v
	}
	if it.EndDate != "" && it.StartDate != "" && it.EndDate < it.StartDate {
		return it, &rowError{reason: "end_date: before start_date"}
	}
	it.Status = strings.ToLower(m.get(row, "status"))
	return it, nil
}
