package normalise_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/careindex/careindex/extractors/rowsource"
	"github.com/careindex/careindex/transform/normalise"
	"github.com/careindex/careindex/transform/record"
)

var now = time.Date(2026, time.June, 1, 9, 0, 0, 0, time.UTC)

// personHeader is the header of the persons deliveries in these tests; the
// column names differ from the field names, in case and spacing.
var personHeader = []string{"PatientID", "NHS No", "Surname", "Forename", "DOB", "Gender", "Post Code", "GP", "SFlag"}

var personColumns = map[string]string{
	"local_id":      "patientid",
	"nhs_number":    "NHS No",
	"family_name":   "Surname",
	"given_name":    "Forename",
	"date_of_birth": "DOB",
	"sex":           "Gender",
	"postcode":      " post code ",
	"gp_practice":   "GP",
	"sensitive":     "SFlag",
}

func personOptions() normalise.Options {
	return normalise.Options{
		SourceID:    "rgt-patients",
		OrgCode:     "RGT",
		OrgType:     "hospital",
		Columns:     personColumns,
		DateFormats: []string{"02/01/2006", "2006-01-02"},
		Now:         now,
	}
}

// goodPerson is a row every field of which maps.
func goodPerson() map[string]string {
	return map[string]string{
		"PatientID": "MRN001",
		"NHS No":    "943 476 5919",
		"Surname":   "  o’brien ",
		"Forename":  "mary  ann",
		"DOB":       "12/04/1955",
		"Gender":    "F",
		"Post Code": "cb2 0qq",
		"GP":        "d81001",
		"SFlag":     "N",
	}
}

func row(header []string, values map[string]string) rowsource.Row {
	vs := make([]string, len(header))
	for i, h := range header {
		vs[i] = values[h]
	}
	return rowsource.Row{File: "patients_20260601.csv", Line: 7, Values: vs, Raw: strings.Join(vs, ",")}
}

func mapper(t *testing.T, header []string, opts normalise.Options) *normalise.Mapper {
	t.Helper()
	m, err := normalise.NewMapper(header, opts)
	if err != nil {
		t.Fatalf("NewMapper = %v", err)
	}
	return m
}

func TestNewMapper(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		header  []string
		columns map[string]string
		want    []string // substrings of the error; nil for success
	}{
		{name: "all present", header: personHeader, columns: personColumns},
		{name: "case and spaces ignored", header: []string{" patientid ", "NHS NO"}, columns: map[string]string{"local_id": "PatientID", "nhs_number": "nhs no"}},
		{name: "no mapping", header: personHeader, columns: nil},
		{name: "extra header columns", header: append([]string{"Extra"}, personHeader...), columns: personColumns},
		{name: "one missing", header: []string{"PatientID"}, columns: map[string]string{"local_id": "PatientID", "nhs_number": "NHSNo"},
			want: []string{"NHSNo (for nhs_number)"}},
		{name: "every missing column listed, sorted", header: []string{"PatientID", "Surname"},
			columns: map[string]string{"local_id": "PatientID", "nhs_number": "NHSNo", "date_of_birth": "DOB", "family_name": "Surname", "sex": "Gender"},
			want:    []string{"DOB (for date_of_birth), Gender (for sex), NHSNo (for nhs_number)"}},
		{name: "empty header", header: nil, columns: map[string]string{"local_id": "ID"}, want: []string{"ID (for local_id)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opts := personOptions()
			opts.Columns = tt.columns
			m, err := normalise.NewMapper(tt.header, opts)
			if tt.want == nil {
				if err != nil || m == nil {
					t.Fatalf("NewMapper = %v, %v", m, err)
				}
				return
			}
			if m != nil || !errors.Is(err, normalise.ErrMissingColumn) {
				t.Fatalf("NewMapper = %v, %v; want ErrMissingColumn", m, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestPerson(t *testing.T) {
	t.Parallel()
	base := record.Person{
		Provenance:  record.Provenance{SourceID: "rgt-patients", OrgCode: "RGT", File: "patients_20260601.csv", Line: 7},
		LocalID:     "MRN001",
		NHSNumber:   "9434765919",
		FamilyName:  "O'BRIEN",
		GivenName:   "MARY ANN",
		DateOfBirth: "1955-04-12",
		Sex:         "female",
		Postcode:    "CB2 0QQ",
		GPPractice:  "D81001",
	}
	tests := []struct {
		name   string
		set    map[string]string // overrides of goodPerson
		opts   func(*normalise.Options)
		rowErr error
		want   func(*record.Person) // changes to base; nil with reason
		reason string               // prefix of the reason, for a rejected row
	}{
		{name: "good", want: func(*record.Person) {}},
		// NHS number
		{name: "NHS number with dashes", set: map[string]string{"NHS No": "943-476-5919"}, want: func(*record.Person) {}},
		{name: "NHS number plain", set: map[string]string{"NHS No": "9434765919"}, want: func(*record.Person) {}},
		{name: "NHS number with outer spaces", set: map[string]string{"NHS No": " 943 476 5919 "}, want: func(*record.Person) {}},
		{name: "NHS number absent", set: map[string]string{"NHS No": ""}, want: func(p *record.Person) { p.NHSNumber = "" }},
		{name: "NHS number check digit", set: map[string]string{"NHS No": "9434765918"}, reason: "nhs_number:"},
		{name: "NHS number too short", set: map[string]string{"NHS No": "943476591"}, reason: "nhs_number:"},
		{name: "NHS number with letters", set: map[string]string{"NHS No": "NHS9434765919"}, reason: "nhs_number:"},
		{name: "NHS number placeholder", set: map[string]string{"NHS No": "0000000000"}, reason: "nhs_number:"},
		{name: "NHS test range refused", set: map[string]string{"NHS No": "999 000 0018"}, reason: "nhs_number:"},
		{name: "NHS test range with TestData", set: map[string]string{"NHS No": "999 000 0018"}, opts: func(o *normalise.Options) { o.TestData = true },
			want: func(p *record.Person) { p.NHSNumber = "9990000018" }},
		// dates of birth
		{name: "DOB second layout", set: map[string]string{"DOB": "1955-04-12"}, want: func(*record.Person) {}},
		{name: "DOB Excel serial", set: map[string]string{"DOB": "20191"}, want: func(*record.Person) {}},
		{name: "DOB Excel serial with time", set: map[string]string{"DOB": "20191.5"}, want: func(*record.Person) {}},
		{name: "DOB today", set: map[string]string{"DOB": "01/06/2026"}, want: func(p *record.Person) { p.DateOfBirth = "2026-06-01" }},
		{name: "DOB absent", set: map[string]string{"DOB": ""}, want: func(p *record.Person) { p.DateOfBirth = "" }},
		{name: "DOB tomorrow", set: map[string]string{"DOB": "02/06/2026"}, reason: "date_of_birth:"},
		{name: "DOB far future", set: map[string]string{"DOB": "2099-01-01"}, reason: "date_of_birth:"},
		{name: "DOB impossible", set: map[string]string{"DOB": "31/02/1961"}, reason: "date_of_birth:"},
		{name: "DOB US layout", set: map[string]string{"DOB": "04/13/1955"}, reason: "date_of_birth:"},
		{name: "DOB too early", set: map[string]string{"DOB": "01/01/1850"}, reason: "date_of_birth:"},
		{name: "DOB junk", set: map[string]string{"DOB": "unknown"}, reason: "date_of_birth:"},
		// sex
		{name: "sex M", set: map[string]string{"Gender": "M"}, want: func(p *record.Person) { p.Sex = "male" }},
		{name: "sex 1", set: map[string]string{"Gender": "1"}, want: func(p *record.Person) { p.Sex = "male" }},
		{name: "sex female", set: map[string]string{"Gender": "Female"}, want: func(*record.Person) {}},
		{name: "sex 2", set: map[string]string{"Gender": "2"}, want: func(*record.Person) {}},
		{name: "sex indeterminate", set: map[string]string{"Gender": "I"}, want: func(p *record.Person) { p.Sex = "other" }},
		{name: "sex 9", set: map[string]string{"Gender": "9"}, want: func(p *record.Person) { p.Sex = "unknown" }},
		{name: "sex blank", set: map[string]string{"Gender": ""}, want: func(p *record.Person) { p.Sex = "unknown" }},
		{name: "sex unrecognised", set: map[string]string{"Gender": "Q"}, reason: "sex:"},
		// postcode
		{name: "postcode without space", set: map[string]string{"Post Code": "cb20qq"}, want: func(*record.Person) {}},
		{name: "postcode pseudo kept", set: map[string]string{"Post Code": "zz99 3vz"}, want: func(p *record.Person) { p.Postcode = "ZZ99 3VZ" }},
		{name: "postcode absent", set: map[string]string{"Post Code": ""}, want: func(p *record.Person) { p.Postcode = "" }},
		{name: "postcode invalid", set: map[string]string{"Post Code": "CB2 0Q"}, reason: "postcode:"},
		{name: "postcode letter rule", set: map[string]string{"Post Code": "QB2 0QQ"}, reason: "postcode:"},
		{name: "postcode junk", set: map[string]string{"Post Code": "not known"}, reason: "postcode:"},
		// GP practice
		{name: "GP from column upper-cased", set: map[string]string{"GP": " b82005 "}, want: func(p *record.Person) { p.GPPractice = "B82005" }},
		{name: "GP V81999 means not known", set: map[string]string{"GP": "V81999"}, want: func(p *record.Person) { p.GPPractice = "" }},
		{name: "GP v81999 lower case", set: map[string]string{"GP": "v81999"}, want: func(p *record.Person) { p.GPPractice = "" }},
		{name: "GP absent at a hospital", set: map[string]string{"GP": ""}, want: func(p *record.Person) { p.GPPractice = "" }},
		{name: "GP invalid", set: map[string]string{"GP": "D8"}, reason: "gp_practice:"},
		{name: "GP with punctuation", set: map[string]string{"GP": "D81-001"}, reason: "gp_practice:"},
		{name: "GP practice source without GP column", opts: func(o *normalise.Options) {
			o.OrgCode, o.OrgType = "D81001", "gp_practice"
			o.Columns = without(o.Columns, "gp_practice")
		}, set: map[string]string{"GP": "B82005"}, want: func(p *record.Person) { p.OrgCode = "D81001"; p.GPPractice = "D81001" }},
		{name: "GP practice source, column wins", opts: func(o *normalise.Options) { o.OrgCode, o.OrgType = "D81001", "gp_practice" },
			set: map[string]string{"GP": "B82005"}, want: func(p *record.Person) { p.OrgCode = "D81001"; p.GPPractice = "B82005" }},
		{name: "hospital without GP column", opts: func(o *normalise.Options) { o.Columns = without(o.Columns, "gp_practice") },
			want: func(p *record.Person) { p.GPPractice = "" }},
		// sensitive flag
		{name: "sensitive Y", set: map[string]string{"SFlag": "Y"}, want: func(p *record.Person) { p.Sensitive = true }},
		{name: "sensitive yes", set: map[string]string{"SFlag": "Yes"}, want: func(p *record.Person) { p.Sensitive = true }},
		{name: "sensitive TRUE", set: map[string]string{"SFlag": "TRUE"}, want: func(p *record.Person) { p.Sensitive = true }},
		{name: "sensitive 1", set: map[string]string{"SFlag": "1"}, want: func(p *record.Person) { p.Sensitive = true }},
		{name: "sensitive S", set: map[string]string{"SFlag": "S"}, want: func(p *record.Person) { p.Sensitive = true }},
		{name: "sensitive no", set: map[string]string{"SFlag": "no"}, want: func(*record.Person) {}},
		{name: "sensitive 0", set: map[string]string{"SFlag": "0"}, want: func(*record.Person) {}},
		{name: "sensitive false", set: map[string]string{"SFlag": "False"}, want: func(*record.Person) {}},
		{name: "sensitive blank", set: map[string]string{"SFlag": ""}, want: func(*record.Person) {}},
		{name: "sensitive unrecognised", set: map[string]string{"SFlag": "maybe"}, reason: "sensitive: not a yes/no flag"},
		// names
		{name: "names folded and upper-cased", set: map[string]string{"Surname": "smith-\tjones", "Forename": " jo "},
			want: func(p *record.Person) { p.FamilyName = "SMITH- JONES"; p.GivenName = "JO" }},
		// whole row
		{name: "row error propagated", rowErr: errors.New("line has 3 fields, want 9"), reason: "line has 3 fields, want 9"},
		{name: "local id missing", set: map[string]string{"PatientID": " "}, reason: "local_id: missing"},
		{name: "nothing to identify", set: map[string]string{"NHS No": "", "Surname": "", "Forename": "", "DOB": ""}, reason: "no NHS number, name or date of birth"},
		{name: "NHS number alone identifies", set: map[string]string{"Surname": "", "Forename": "", "DOB": ""},
			want: func(p *record.Person) { p.FamilyName, p.GivenName, p.DateOfBirth = "", "", "" }},
		{name: "name alone identifies", set: map[string]string{"NHS No": "", "Forename": "", "DOB": ""},
			want: func(p *record.Person) { p.NHSNumber, p.GivenName, p.DateOfBirth = "", "", "" }},
		{name: "date of birth alone identifies", set: map[string]string{"NHS No": "", "Surname": "", "Forename": ""},
			want: func(p *record.Person) { p.NHSNumber, p.FamilyName, p.GivenName = "", "", "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opts := personOptions()
			if tt.opts != nil {
				tt.opts(&opts)
			}
			values := goodPerson()
			for k, v := range tt.set {
				values[k] = v
			}
			r := row(personHeader, values)
			r.Err = tt.rowErr
			got, err := mapper(t, personHeader, opts).Person(r)
			if tt.want == nil {
				if err == nil {
					t.Fatalf("Person = %+v, want a reject %q", got, tt.reason)
				}
				if !strings.HasPrefix(err.Error(), tt.reason) {
					t.Errorf("reason = %q, want prefix %q", err, tt.reason)
				}
				if got.File != r.File || got.Line != r.Line || got.SourceID != opts.SourceID {
					t.Errorf("rejected record lost its provenance: %+v", got.Provenance)
				}
				return
			}
			if err != nil {
				t.Fatalf("Person = %v", err)
			}
			want := base
			tt.want(&want)
			if got != want {
				t.Errorf("Person =\n %+v\nwant\n %+v", got, want)
			}
		})
	}
}

func without(m map[string]string, key string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		if k != key {
			out[k] = v
		}
	}
	return out
}

func TestPersonShortRow(t *testing.T) {
	t.Parallel()
	m := mapper(t, personHeader, personOptions())
	p, err := m.Person(rowsource.Row{File: "f", Line: 2, Values: []string{"MRN9", "9434765919"}})
	if err != nil {
		t.Fatalf("Person = %v", err)
	}
	if p.LocalID != "MRN9" || p.NHSNumber != "9434765919" || p.Sex != "unknown" || p.Postcode != "" {
		t.Errorf("Person = %+v", p)
	}
}

// TestReasonsDoNotRepeatValues: a reason is counted and logged, so it must
// never carry the patient data that caused it.
func TestReasonsDoNotRepeatValues(t *testing.T) {
	t.Parallel()
	tests := []struct {
		column, raw string
	}{
		{"NHS No", "9434765918"},
		{"NHS No", "943 476 591"},
		{"NHS No", "94347659190"},
		{"NHS No", "1111111111"},
		{"NHS No", "9990000018"},
		{"NHS No", "943476591X"},
		{"DOB", "31/02/1961"},
		{"DOB", "13/13/1955"},
		{"DOB", "2099-01-01"},
		{"DOB", "01/01/1066"},
		{"DOB", "100000"},
		{"DOB", "60"},
		{"DOB", "born 1955"},
		{"Gender", "Q"},
		{"Gender", "femal"},
		{"Post Code", "CB2 0Q"},
		{"Post Code", "QB2 0QQ"},
		{"Post Code", "BFPO 105"},
		{"Post Code", "SW1A"},
		{"GP", "D8"},
		{"GP", "D81 001"},
		{"GP", "GP-PRACTICE-WITH-LONG-NAME"},
		{"SFlag", "maybe"},
	}
	for _, tt := range tests {
		t.Run(tt.column+"="+tt.raw, func(t *testing.T) {
			t.Parallel()
			values := goodPerson()
			values[tt.column] = tt.raw
			_, err := mapper(t, personHeader, personOptions()).Person(row(personHeader, values))
			if err == nil {
				t.Fatalf("Person accepted %s=%q", tt.column, tt.raw)
			}
			reason := err.Error()
			field, _, ok := strings.Cut(reason, ": ")
			if !ok || field == "" {
				t.Errorf("reason %q does not start with a field name", reason)
			}
			if strings.Contains(strings.TrimPrefix(reason, field+": "), tt.raw) {
				t.Errorf("reason %q repeats the value %q", reason, tt.raw)
			}
		})
	}
}

var itemHeader = []string{"PatientID", "ItemID", "Kind", "System", "Code", "Term", "Start", "End", "Status"}

var itemColumns = map[string]string{
	"local_id":    "PatientID",
	"item_id":     "ItemID",
	"kind":        "Kind",
	"code_system": "System",
	"code":        "Code",
	"display":     "Term",
	"start_date":  "Start",
	"end_date":    "End",
	"status":      "Status",
}

func itemOptions() normalise.Options {
	return normalise.Options{
		SourceID:    "d81001-problems",
		OrgCode:     "D81001",
		OrgType:     "gp_practice",
		Columns:     itemColumns,
		DateFormats: []string{"02/01/2006"},
		ItemKind:    "problem",
		CodeSystem:  "http://snomed.info/sct",
		Now:         now,
	}
}

func goodItem() map[string]string {
	return map[string]string{
		"PatientID": "P001",
		"ItemID":    "I-1",
		"Kind":      "",
		"System":    "",
		"Code":      "44054006",
		"Term":      "  Type 2\tdiabetes \n mellitus ",
		"Start":     "01/02/2019",
		"End":       "",
		"Status":    "Active",
	}
}

func TestCareItem(t *testing.T) {
	t.Parallel()
	base := record.CareItem{
		Provenance: record.Provenance{SourceID: "d81001-problems", OrgCode: "D81001", File: "patients_20260601.csv", Line: 7},
		LocalID:    "P001",
		ItemID:     "I-1",
		Kind:       "problem",
		CodeSystem: "http://snomed.info/sct",
		Code:       "44054006",
		Display:    "Type 2 diabetes mellitus",
		StartDate:  "2019-02-01",
		Status:     "active",
	}
	tests := []struct {
		name   string
		set    map[string]string
		opts   func(*normalise.Options)
		rowErr error
		want   func(*record.CareItem)
		reason string
	}{
		{name: "good", want: func(*record.CareItem) {}},
		// kind
		{name: "kind from column", set: map[string]string{"Kind": "Medication"}, want: func(i *record.CareItem) { i.Kind = "medication" }},
		{name: "kind from column beats ItemKind", set: map[string]string{"Kind": "care_plan"}, want: func(i *record.CareItem) { i.Kind = "care_plan" }},
		{name: "kind from ItemKind when column empty", set: map[string]string{"Kind": ""}, want: func(*record.CareItem) {}},
		{name: "kind from ItemKind when not mapped", opts: func(o *normalise.Options) { o.Columns = without(o.Columns, "kind") },
			set: map[string]string{"Kind": "alert"}, want: func(*record.CareItem) {}},
		{name: "unknown kind", set: map[string]string{"Kind": "gossip"}, reason: "kind: not one of"},
		{name: "no kind at all", opts: func(o *normalise.Options) { o.ItemKind = "" }, reason: "kind: not one of"},
		{name: "unknown ItemKind", opts: func(o *normalise.Options) { o.ItemKind = "gossip" }, reason: "kind: not one of"},
		// code and code system
		{name: "code missing", set: map[string]string{"Code": "  "}, reason: "code: missing"},
		{name: "code system from column", set: map[string]string{"System": "READ2"}, want: func(i *record.CareItem) { i.CodeSystem = "READ2" }},
		{name: "code system default", set: map[string]string{"System": ""}, want: func(*record.CareItem) {}},
		{name: "no code system at all", opts: func(o *normalise.Options) { o.CodeSystem = "" }, want: func(i *record.CareItem) { i.CodeSystem = "" }},
		{name: "code trimmed", set: map[string]string{"Code": " 44054006 "}, want: func(*record.CareItem) {}},
		// dates
		{name: "start date absent", set: map[string]string{"Start": ""}, want: func(i *record.CareItem) { i.StartDate = "" }},
		{name: "start date Excel serial", set: map[string]string{"Start": "43497"}, want: func(*record.CareItem) {}},
		{name: "start date in the future allowed", set: map[string]string{"Start": "01/01/2030"}, want: func(i *record.CareItem) { i.StartDate = "2030-01-01" }},
		{name: "start date bad", set: map[string]string{"Start": "2019-02-01"}, reason: "start_date:"},
		{name: "start date impossible", set: map[string]string{"Start": "30/02/2019"}, reason: "start_date:"},
		{name: "end date", set: map[string]string{"End": "03/02/2019"}, want: func(i *record.CareItem) { i.EndDate = "2019-02-03" }},
		{name: "end date same day", set: map[string]string{"End": "01/02/2019"}, want: func(i *record.CareItem) { i.EndDate = "2019-02-01" }},
		{name: "end date without start", set: map[string]string{"Start": "", "End": "01/02/2019"}, want: func(i *record.CareItem) { i.StartDate, i.EndDate = "", "2019-02-01" }},
		{name: "end date bad", set: map[string]string{"End": "soon"}, reason: "end_date:"},
		{name: "end before start", set: map[string]string{"End": "31/01/2019"}, reason: "end_date: before start_date"},
		// status and display
		{name: "status lower-cased", set: map[string]string{"Status": "RESOLVED"}, want: func(i *record.CareItem) { i.Status = "resolved" }},
		{name: "status absent", set: map[string]string{"Status": ""}, want: func(i *record.CareItem) { i.Status = "" }},
		{name: "display absent", set: map[string]string{"Term": ""}, want: func(i *record.CareItem) { i.Display = "" }},
		{name: "display single word", set: map[string]string{"Term": "\tAsthma\r\n"}, want: func(i *record.CareItem) { i.Display = "Asthma" }},
		{name: "item id absent", set: map[string]string{"ItemID": ""}, want: func(i *record.CareItem) { i.ItemID = "" }},
		// whole row
		{name: "row error propagated", rowErr: errors.New("bare quote in field 3"), reason: "bare quote in field 3"},
		{name: "local id missing", set: map[string]string{"PatientID": ""}, reason: "local_id: missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opts := itemOptions()
			if tt.opts != nil {
				tt.opts(&opts)
			}
			values := goodItem()
			for k, v := range tt.set {
				values[k] = v
			}
			r := row(itemHeader, values)
			r.Err = tt.rowErr
			got, err := mapper(t, itemHeader, opts).CareItem(r)
			if tt.want == nil {
				if err == nil {
					t.Fatalf("CareItem = %+v, want a reject %q", got, tt.reason)
				}
				if !strings.HasPrefix(err.Error(), tt.reason) {
					t.Errorf("reason = %q, want prefix %q", err, tt.reason)
				}
				for _, v := range tt.set {
					if len(v) > 3 && strings.Contains(err.Error(), v) {
						t.Errorf("reason %q repeats the value %q", err, v)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("CareItem = %v", err)
			}
			want := base
			tt.want(&want)
			if got != want {
				t.Errorf("CareItem =\n %+v\nwant\n %+v", got, want)
			}
		})
	}
}
