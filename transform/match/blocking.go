package match

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// BlockingRule is a blocking key: the concatenation of the named parts of
// a record. Two records become a candidate pair when they have the same
// key under at least one rule; a record that lacks any part has no key
// under that rule. Names that are emergency placeholders give no key.
//
// Parts:
//
//	nhs_number                              the NHS number
//	dob, birth_year, birth_month            date of birth, its year, its year and month
//	family_name, given_name                 the normalised name
//	family_phonetic, given_phonetic         NYSIIS code of the name's first word
//	family_initial, given_initial           first letter
//	name_phonetics                          both names' codes, in sorted order (so a
//	                                        record with names swapped shares the key)
//	postcode, postcode_sector, postcode_district   (sector and district: UK only)
//	sex, email, phone
//	email_user, email_domain                the email address's parts before and after the
//	                                        @ (so that a typing error in one still shares a key)
//	email_alnum                             the email address's letters and digits only (so
//	                                        that a lost @ or dot still shares a key)
//	address_key                             the address's first number and the word after
//	                                        it ("12|HERSCHELL"); none without a number
type BlockingRule struct {
	Name  string   `json:"name"`
	Parts []string `json:"parts"`
}

// DefaultBlocking returns the default rules. Together they find nearly
// every pair that agrees on one strong identifier, however the others are
// mistyped: same NHS number; same date of birth; similar-sounding family
// name and same birth year; same given initial and birth month (a mistyped
// or changed family name and a mistyped day); same postcode and given
// initial; similar-sounding names in either order; same postcode and
// family initial; same first number and street of the address; same email
// (its letters and digits); same phone; the same email before the @ (a
// mistyped domain); same given name, family initial and birth year; same
// family name and given initial (a mistyped date of birth and given name);
// the same email after the @ (a mistyped user name; a domain shared by
// more than MaxBlock records, a public mail service's, is skipped).
func DefaultBlocking() []BlockingRule {
	return []BlockingRule{
		{Name: "nhs", Parts: []string{"nhs_number"}},
		{Name: "dob", Parts: []string{"dob"}},
		{Name: "family_year", Parts: []string{"family_phonetic", "birth_year"}},
		{Name: "given_month", Parts: []string{"given_initial", "birth_month"}},
		{Name: "postcode_given", Parts: []string{"postcode", "given_initial"}},
		{Name: "names", Parts: []string{"name_phonetics"}},
		{Name: "postcode_family", Parts: []string{"postcode", "family_initial"}},
		{Name: "address", Parts: []string{"address_key"}},
		{Name: "email", Parts: []string{"email_alnum"}},
		{Name: "phone", Parts: []string{"phone"}},
		{Name: "email_user", Parts: []string{"email_user"}},
		{Name: "given_family_year", Parts: []string{"given_name", "family_initial", "birth_year"}},
		{Name: "family_given_initial", Parts: []string{"family_name", "given_initial"}},
		{Name: "email_domain", Parts: []string{"email_domain"}},
	}
}

type part uint8

const (
	pNHS part = iota
	pDOB
	pBirthYear
	pBirthMonth
	pFamilyName
	pGivenName
	pFamilyPhonetic
	pGivenPhonetic
	pFamilyInitial
	pGivenInitial
	pNamePhonetics
	pPostcode
	pPostcodeSector
	pPostcodeDistrict
	pSex
	pEmail
	pPhone
	pAddressKey
	pEmailUser
	pEmailDomain
	pEmailAlnum
	numParts
)

var partNames = [numParts]string{
	pNHS: "nhs_number", pDOB: "dob", pBirthYear: "birth_year", pBirthMonth: "birth_month",
	pFamilyName: "family_name", pGivenName: "given_name", pFamilyPhonetic: "family_phonetic",
	pGivenPhonetic: "given_phonetic", pFamilyInitial: "family_initial", pGivenInitial: "given_initial",
	pNamePhonetics: "name_phonetics", pPostcode: "postcode", pPostcodeSector: "postcode_sector",
	pPostcodeDistrict: "postcode_district", pSex: "sex", pEmail: "email", pPhone: "phone",
	pAddressKey: "address_key", pEmailUser: "email_user", pEmailDomain: "email_domain",
	pEmailAlnum: "email_alnum",
}

// partFields says which compared field each part constrains: pairs found
// by a rule are biased on those fields, so EM does not estimate them from
// that rule's pairs.
var partFields = [numParts]int{
	pNHS: fNHS, pDOB: fDOB, pBirthYear: fDOB, pBirthMonth: fDOB,
	pFamilyName: fFamily, pGivenName: fGiven, pFamilyPhonetic: fFamily, pGivenPhonetic: fGiven,
	pFamilyInitial: fFamily, pGivenInitial: fGiven, pNamePhonetics: fFamily, pPostcode: fPostcode,
	pPostcodeSector: fPostcode, pPostcodeDistrict: fPostcode, pSex: fSex, pEmail: fEmail, pPhone: fPhone,
	pAddressKey: fAddress, pEmailUser: fEmail, pEmailDomain: fEmail, pEmailAlnum: fEmail,
}

type compiledRule struct {
	name   string
	parts  []part
	fields uint16 // bit per compared field the rule constrains
}

// maxRules bounds the number of blocking rules (a pair's rule mask is 16 bits).
const maxRules = 16

func compileRules(rules []BlockingRule) ([]compiledRule, error) {
	var errs []error
	if len(rules) == 0 {
		errs = append(errs, errors.New("blocking: no rules"))
	}
	if len(rules) > maxRules {
		errs = append(errs, fmt.Errorf("blocking: %d rules, at most %d", len(rules), maxRules))
	}
	out := make([]compiledRule, 0, len(rules))
	seen := map[string]bool{}
	for i, r := range rules {
		cr := compiledRule{name: r.Name}
		if r.Name == "" {
			errs = append(errs, fmt.Errorf("blocking rule %d: no name", i+1))
		} else if seen[r.Name] {
			errs = append(errs, fmt.Errorf("blocking rule %q: name used twice", r.Name))
		}
		seen[r.Name] = true
		if len(r.Parts) == 0 {
			errs = append(errs, fmt.Errorf("blocking rule %q: no parts", r.Name))
		}
		for _, pn := range r.Parts {
			p := slices.Index(partNames[:], pn)
			if p < 0 {
				errs = append(errs, fmt.Errorf("blocking rule %q: unknown part %q (want one of %v)", r.Name, pn, partNames))
				continue
			}
			cr.parts = append(cr.parts, part(p))
			cr.fields |= 1 << partFields[p]
			if part(p) == pNamePhonetics {
				cr.fields |= 1 << fGiven
			}
		}
		out = append(out, cr)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// appendKey appends the key of row r under rule cr to buf, and reports
// whether the row has one (every part present).
func (d *Dataset) appendKey(buf []byte, cr *compiledRule, r *row) ([]byte, bool) {
	placeholder := r.flags&flagPlaceholderName != 0
	for i, p := range cr.parts {
		if i > 0 {
			buf = append(buf, '|')
		}
		n := len(buf)
		switch p {
		case pNHS:
			if r.nhs != 0 {
				buf = appendPadded(buf, r.nhs, 10)
			}
		case pDOB:
			if r.dob != 0 {
				buf = strconv.AppendUint(buf, uint64(r.dob), 10)
			}
		case pBirthYear:
			if r.dob != 0 {
				buf = strconv.AppendUint(buf, uint64(r.dob/10000), 10)
			}
		case pBirthMonth:
			if r.dob != 0 {
				buf = strconv.AppendUint(buf, uint64(r.dob/100), 10)
			}
		case pFamilyName, pGivenName, pFamilyPhonetic, pGivenPhonetic, pFamilyInitial, pGivenInitial:
			if placeholder {
				break
			}
			id := r.family
			if p == pGivenName || p == pGivenPhonetic || p == pGivenInitial {
				id = r.given
			}
			if id == 0 {
				break
			}
			e := &d.names[id]
			switch p {
			case pFamilyName, pGivenName:
				buf = append(buf, e.s...)
			case pFamilyPhonetic, pGivenPhonetic:
				buf = append(buf, e.phon1...)
			default:
				// The initial is the first character, not the first byte:
				// keys must stay valid UTF-8 (ÉVA's initial is É).
				_, size := utf8.DecodeRuneInString(e.s)
				buf = append(buf, e.s[:size]...)
			}
		case pNamePhonetics:
			if placeholder || r.family == 0 || r.given == 0 {
				break
			}
			a, b := d.names[r.family].phon1, d.names[r.given].phon1
			if a == "" || b == "" {
				break
			}
			if b < a {
				a, b = b, a
			}
			buf = append(append(append(buf, a...), '+'), b...)
		case pPostcode:
			if r.pc != 0 {
				buf = d.pcs[r.pc].appendDisplay(buf)
			}
		case pPostcodeSector:
			if pc := &d.pcs[r.pc]; pc.kind == pcUK {
				buf = append(append(append(buf, pc.b[:pc.out]...), ' '), pc.b[pc.out])
			}
		case pPostcodeDistrict:
			if pc := &d.pcs[r.pc]; pc.kind == pcUK {
				buf = append(buf, pc.b[:pc.dist]...)
			}
		case pSex:
			if r.sex != 0 {
				buf = append(buf, "?MFO"[r.sex])
			}
		case pEmail:
			buf = append(buf, d.email(r)...)
		case pEmailAlnum:
			for _, c := range []byte(d.email(r)) {
				if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c >= 0x80 {
					buf = append(buf, c)
				}
			}
		case pEmailUser:
			if e := d.email(r); strings.IndexByte(e, '@') > 0 {
				buf = append(buf, e[:strings.IndexByte(e, '@')]...)
			}
		case pEmailDomain:
			if e := d.email(r); strings.IndexByte(e, '@') >= 0 && strings.IndexByte(e, '@') < len(e)-1 {
				buf = append(buf, e[strings.IndexByte(e, '@')+1:]...)
			}
		case pPhone:
			if p := d.phone(r); p != 0 {
				buf = appendPadded(buf, p&(1<<62-1), 10)
			}
		case pAddressKey:
			buf = d.appendAddressKey(buf, r)
		}
		if len(buf) == n {
			return buf, false
		}
	}
	return buf, true
}

func appendPadded(buf []byte, v uint64, width int) []byte {
	var tmp [20]byte
	s := strconv.AppendUint(tmp[:0], v, 10)
	for i := len(s); i < width; i++ {
		buf = append(buf, '0')
	}
	return append(buf, s...)
}

// hashKey hashes a rule index and a key to 32 bits (never 0, which means
// "no key"). Distinct keys that collide only merge two blocks: the pairs
// are still compared on their merits.
func hashKey(rule int, key []byte) uint32 {
	h := uint32(2166136261)
	h ^= uint32(rule)
	h *= 16777619
	for _, c := range key {
		h ^= uint32(c)
		h *= 16777619
	}
	if h == 0 {
		h = 1
	}
	return h
}

// recordKeys returns the string keys of one prepared row.
func (d *Dataset) recordKeys(rules []compiledRule, i int) []string {
	var out []string
	var buf []byte
	for r := range rules {
		var ok bool
		buf = append(buf[:0], rules[r].name...)
		buf = append(buf, ':')
		buf, ok = d.appendKey(buf, &rules[r], d.row(uint32(i)))
		if ok {
			out = append(out, string(buf))
		}
	}
	return out
}

// appendAddressKey appends the first number of the address and the first
// word of letters after it.
func (d *Dataset) appendAddressKey(buf []byte, r *row) []byte {
	words := d.addr[r.addrOff : r.addrOff+uint32(r.addrLen)]
	for i, w := range words {
		if !isNumber(d.tokens[w]) {
			continue
		}
		for _, v := range words[i+1:] {
			if s := d.tokens[v]; !isNumber(s) {
				return append(append(append(buf, d.tokens[w]...), '|'), s...)
			}
		}
		return buf
	}
	return buf
}
