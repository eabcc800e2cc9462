// Package record defines the normalised shapes that flow from the
// transform stage to the loader: one organisation's demographics for a
// person (Person) and one organisation's care fact about a person (CareItem).
// Every value here has already been checked and normalised; dates are ISO
// 8601 calendar dates ("2006-01-02") or empty.
package record

// Provenance says where a normalised record came from.
type Provenance struct {
	SourceID string // configured source id
	OrgCode  string // ODS code of the organisation that holds the record
	File     string // file, sheet or query the row came from
	Line     int    // line in File
}

// Person is one organisation's demographics for one person, keyed by the
// organisation's local id.
type Person struct {
	Provenance
	LocalID     string
	NHSNumber   string // 10 digits, check digit valid, not deny-listed; or empty
	FamilyName  string // trimmed, inner white space folded, upper case
	GivenName   string // as FamilyName
	DateOfBirth string // "2006-01-02" or empty
	Sex         string // "male", "female", "other", "unknown"
	Postcode    string // normalised "AA9A 9AA", or a ZZ99 pseudo-postcode, or empty
	GPPractice  string // ODS code of the registered GP practice, or empty
	Sensitive   bool   // S-flag: address details must not be published
	// Objection is an objection the organisation recorded for this person:
	// "" none, "all", or ODS codes separated by ";".
	Objection string
	// Address is free text (house number, street, town), used for matching
	// only; it is never published.
	Address string
	// Email (trimmed, lower case) and Phone (trimmed) are contact details,
	// used for matching only; they are never published.
	Email string
	Phone string
	// Deleted marks a delta row that removes the local id.
	Deleted bool
}

// CareItem is one organisation's clinical or care fact about a person.
type CareItem struct {
	Provenance
	LocalID    string // the person's local id at the organisation
	ItemID     string // the organisation's own id for the item, if it sends one
	Kind       string // encounter, problem, medication, allergy, alert, care_plan, social_care
	CodeSystem string // e.g. "http://snomed.info/sct", "SNOMED", "READ2", "LOCAL"
	Code       string
	Display    string
	StartDate  string // "2006-01-02" or empty
	EndDate    string // "2006-01-02" or empty
	Status     string // active, inactive, resolved, completed, ...
	// Deleted marks a delta row that removes the item.
	Deleted bool
}

// Kinds lists the care item kinds careindex accepts.
var Kinds = []string{"encounter", "problem", "medication", "allergy", "alert", "care_plan", "social_care"}
