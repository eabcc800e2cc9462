package match

import "math/bits"

// Fields compared, in a fixed order. Level 0 of every field is "null": one
// side or both lack the value, and the field gives no evidence.
const (
	fNHS = iota
	fFamily
	fGiven
	fDOB
	fSex
	fPostcode
	fAddress
	fGP
	fEmail
	fPhone
	numFields
)

// maxLevels bounds the number of levels of a field, null included.
const maxLevels = 8

// Name levels (family_name, given_name).
const (
	lvNameExact = 1 + iota
	lvNameJW92
	lvNameJW80
	lvNamePhonetic
	lvNameLetters
	lvNameSwapped
	lvNameDiff
)

// Date of birth levels.
const (
	lvDOBExact = 1 + iota
	lvDOBTransposed
	lvDOBOneComponent
	lvDOBWithinMonth
	lvDOBWithinYear
	lvDOBWithin10
	lvDOBDiff
)

// Postcode levels.
const (
	lvPCFull = 1 + iota
	lvPCSector
	lvPCDistrict
	lvPCDiff
)

// Address levels.
const (
	lvAddrExact = 1 + iota
	lvAddrHigh
	lvAddrSome
	lvAddrDiff
)

// Email levels.
const (
	lvEmailExact = 1 + iota
	lvEmailNear
	lvEmailDiff
)

// Levels of the two-way fields (nhs_number, sex, gp_practice, phone).
const (
	lvExact = 1
	lvDiff  = 2
)

type fieldDef struct {
	name   string
	levels []string // level names, index = level; [0] is "null"
}

var fieldDefs = [numFields]fieldDef{
	fNHS:      {"nhs_number", []string{"null", "exact", "different"}},
	fFamily:   {"family_name", []string{"null", "exact", "jw92", "jw80", "phonetic", "letters", "swapped", "different"}},
	fGiven:    {"given_name", []string{"null", "exact", "jw92", "jw80", "phonetic", "letters", "swapped", "different"}},
	fDOB:      {"date_of_birth", []string{"null", "exact", "transposed", "one_component", "within_month", "within_year", "within_10_years", "different"}},
	fSex:      {"sex", []string{"null", "exact", "different"}},
	fPostcode: {"postcode", []string{"null", "full", "sector", "district", "different"}},
	fAddress:  {"address", []string{"null", "exact", "high", "some", "different"}},
	fGP:       {"gp_practice", []string{"null", "exact", "different"}},
	fEmail:    {"email", []string{"null", "exact", "near", "different"}},
	fPhone:    {"phone", []string{"null", "exact", "different"}},
}

// tfFields are the fields whose exact agreement is weighted by the
// frequency of the value (a shared SMITH says less than a shared
// ZYBRANSKI).
var tfFields = []int{fFamily, fGiven, fDOB, fPostcode}

// gamma is a comparison vector: a level per field.
type gamma [numFields]uint8

// pair flags (safety rules)
const (
	pairDifferentNHS = 1 << iota // both records have valid NHS numbers and they differ
	pairPlaceholder              // a placeholder identity (placeholder names and 1 January or no birth date)
	pairSameNHS                  // the records share an NHS number
)

// minLettersLen is the shortest name compared by its letters alone (the
// letters level): in shorter names one letter in common proves little.
const minLettersLen = 4

// Name similarity thresholds.
const (
	jwHigh = 0.92
	jwLow  = 0.80
)

// compare compares rows a and b of d.
func (d *Dataset) compare(a, b *row, cc *cmpCache) (g gamma, flags uint8) {
	if a.nhs != 0 && b.nhs != 0 {
		if a.nhs == b.nhs {
			g[fNHS] = lvExact
			flags |= pairSameNHS
		} else {
			g[fNHS] = lvDiff
			flags |= pairDifferentNHS
		}
	}
	if (a.flags&flagPlaceholderName != 0 && a.flags&flagJan1 != 0) ||
		(b.flags&flagPlaceholderName != 0 && b.flags&flagJan1 != 0) {
		flags |= pairPlaceholder
	}
	g[fFamily], g[fGiven] = d.compareNames(a, b, cc)
	g[fDOB] = compareDOB(a.dob, b.dob)
	if a.sex != 0 && b.sex != 0 {
		g[fSex] = lvDiff
		if a.sex == b.sex {
			g[fSex] = lvExact
		}
	}
	if a.pc != 0 && b.pc != 0 {
		if a.pc == b.pc {
			g[fPostcode] = lvPCFull
		} else {
			g[fPostcode] = comparePostcode(&d.pcs[a.pc], &d.pcs[b.pc])
		}
	}
	g[fAddress] = d.compareAddress(a, b, cc)
	if a.gp != 0 && b.gp != 0 {
		g[fGP] = lvDiff
		if a.gp == b.gp {
			g[fGP] = lvExact
		}
	}
	if a.contact != 0 && b.contact != 0 {
		if ea, eb := d.email(a), d.email(b); ea != "" && eb != "" {
			switch {
			case ea == eb:
				g[fEmail] = lvEmailExact
			case JaroWinkler(ea, eb) >= 0.88:
				g[fEmail] = lvEmailNear
			default:
				g[fEmail] = lvEmailDiff
			}
		}
		if pa, pb := d.phone(a), d.phone(b); pa != 0 && pb != 0 {
			g[fPhone] = lvDiff
			if pa == pb {
				g[fPhone] = lvExact
			}
		}
	}
	return g, flags
}

// compareName compares two interned names.
func (d *Dataset) compareName(x, y uint32, cc *cmpCache) uint8 {
	if x == 0 || y == 0 {
		return 0
	}
	if x == y {
		return lvNameExact
	}
	if cc != nil {
		if l, ok := cc.names.get(x, y); ok {
			return l
		}
		l := d.compareNameSlow(x, y)
		cc.names.put(x, y, l)
		return l
	}
	return d.compareNameSlow(x, y)
}

func (d *Dataset) compareNameSlow(x, y uint32) uint8 {
	a, b := &d.names[x], &d.names[y]
	var jw float64
	if a.ascii && b.ascii {
		if jwBound(a.s, b.s, a.mask, b.mask) >= jwLow {
			jw = jaroWinkler(a.s, b.s)
		}
	} else {
		jw = JaroWinkler(a.s, b.s)
	}
	switch {
	case jw >= jwHigh:
		return lvNameJW92
	case jw >= jwLow:
		return lvNameJW80
	case a.phon != "" && a.phon == b.phon:
		return lvNamePhonetic
	case (a.multi || b.multi) && shareWord(a.s, b.s):
		return lvNameJW80 // "SMITH JONES" and "JONES"
	case lettersAlike(a, b):
		return lvNameLetters
	}
	return lvNameDiff
}

// lettersAlike reports whether two names of at least minLettersLen bytes
// are at most one letter apart in any order (bag distance ≤ 1). Lengths
// and letter sets rule out nearly every pair before the letters are
// counted: each name may have at most one letter the other lacks.
func lettersAlike(a, b *nameEntry) bool {
	la, lb := len(a.s), len(b.s)
	if min(la, lb) < minLettersLen || la > lb+1 || lb > la+1 {
		return false
	}
	if bits.OnesCount64(a.mask&^b.mask) > 1 || bits.OnesCount64(b.mask&^a.mask) > 1 {
		return false
	}
	return bagDistance(a.s, b.s) <= 1
}

// shareWord reports whether two names have a word in common.
func shareWord(a, b string) bool {
	for i := 0; i < len(a); {
		j := i
		for j < len(a) && a[j] != ' ' {
			j++
		}
		w := a[i:j]
		for k := 0; k < len(b); {
			l := k
			for l < len(b) && b[l] != ' ' {
				l++
			}
			if b[k:l] == w && len(w) > 1 {
				return true
			}
			k = l + 1
		}
		i = j + 1
	}
	return false
}

// compareNames compares family and given names, recognising names given
// the wrong way round (family name in the given name field and the
// reverse, or one name in the other's field when the other is missing).
func (d *Dataset) compareNames(a, b *row, cc *cmpCache) (fam, giv uint8) {
	if a.flags&flagPlaceholderName != 0 || b.flags&flagPlaceholderName != 0 {
		return 0, 0 // placeholder names are no evidence
	}
	fam = d.compareName(a.family, b.family, cc)
	giv = d.compareName(a.given, b.given, cc)
	// Only a merely similar (jw80), phonetic or different pair of names
	// is looked at the other way round: "LOGAN MORGAN" and "MORGAN LOGAN"
	// are similar both ways, but much more so crossed.
	weak := func(l uint8) bool { return l == 0 || l >= lvNameJW80 }
	if !weak(fam) || !weak(giv) {
		return fam, giv
	}
	crossF := d.compareName(a.family, b.given, cc)
	crossG := d.compareName(a.given, b.family, cc)
	strong := func(l uint8) bool { return l == lvNameExact || l == lvNameJW92 }
	bad := func(l uint8) bool { return l != 0 && l > lvNameJW80 }
	if (strong(crossF) || strong(crossG)) && !bad(crossF) && !bad(crossG) {
		// One name crossed over counts once, on a field that does not
		// depend on which record comes first (the same pair the other way
		// round crosses the other way): family name, unless only the given
		// names were both present.
		switch {
		case strong(crossF) && strong(crossG):
			fam, giv = lvNameSwapped, lvNameSwapped
		case fam != 0:
			fam = lvNameSwapped
		default:
			giv = lvNameSwapped
		}
	}
	return fam, giv
}

// compareDOB compares two yyyymmdd dates.
func compareDOB(a, b uint32) uint8 {
	if a == 0 || b == 0 {
		return 0
	}
	if a == b {
		return lvDOBExact
	}
	ya, ma, da := a/10000, a/100%100, a%100
	yb, mb, db := b/10000, b/100%100, b%100
	if ya == yb && ma == db && da == mb {
		return lvDOBTransposed
	}
	same := 0
	if ya == yb {
		same++
	}
	if ma == mb {
		same++
	}
	if da == db {
		same++
	}
	if same == 2 {
		return lvDOBOneComponent
	}
	if ya <= yb+1 && yb <= ya+1 {
		diff := dayNumber(a) - dayNumber(b)
		if diff < 0 {
			diff = -diff
		}
		switch {
		case diff <= 31:
			return lvDOBWithinMonth
		case diff <= 366:
			return lvDOBWithinYear
		}
	}
	if ya <= yb+10 && yb <= ya+10 {
		return lvDOBWithin10
	}
	return lvDOBDiff
}

// comparePostcode compares packed postcodes: UK ones in full, by sector and
// by district; opaque ones equal or one keying error apart.
func comparePostcode(a, b *pcode) uint8 {
	if a.kind == pcNone || b.kind == pcNone {
		return 0
	}
	if a.kind != b.kind && !(a.kind >= pcOpaque && b.kind >= pcOpaque) {
		return lvPCDiff
	}
	if a.b == b.b && a.kind == b.kind {
		return lvPCFull
	}
	switch a.kind {
	case pcUK:
		if a.out == b.out && string(a.b[:a.out+1]) == string(b.b[:b.out+1]) {
			return lvPCSector
		}
		if a.dist == b.dist && string(a.b[:a.dist]) == string(b.b[:b.dist]) {
			return lvPCDistrict
		}
	case pcOpaque:
		if b.kind == pcOpaque && damerauOne(string(a.b[:a.n]), string(b.b[:b.n])) {
			return lvPCSector
		}
	}
	return lvPCDiff
}

// compareAddress compares address word sets: words that are equal, or
// (for words of four or more letters) within typing distance, count as
// shared; the Dice coefficient of the sets picks the level.
func (d *Dataset) compareAddress(a, b *row, cc *cmpCache) uint8 {
	if a.addrLen == 0 || b.addrLen == 0 {
		return 0
	}
	wa := d.addr[a.addrOff : a.addrOff+uint32(a.addrLen)]
	wb := d.addr[b.addrOff : b.addrOff+uint32(b.addrLen)]
	var usedB uint16
	shared := 0
	var unmatchedA uint16
	for i, x := range wa {
		found := false
		for j, y := range wb {
			if usedB&(1<<j) == 0 && x == y {
				usedB |= 1 << j
				found = true
				break
			}
		}
		if found {
			shared++
		} else {
			unmatchedA |= 1 << i
		}
	}
	if shared == len(wa) && shared == len(wb) {
		return lvAddrExact
	}
	for i, x := range wa {
		if unmatchedA&(1<<i) == 0 {
			continue
		}
		sx := d.tokens[x]
		if len(sx) < 4 || isNumber(sx) {
			continue
		}
		for j, y := range wb {
			if usedB&(1<<j) != 0 {
				continue
			}
			sy := d.tokens[y]
			if len(sy) < 4 || isNumber(sy) {
				continue
			}
			if d.similarWords(x, y, sx, sy, cc) {
				usedB |= 1 << j
				shared++
				break
			}
		}
	}
	dice := 2 * float64(shared) / float64(len(wa)+len(wb))
	switch {
	case dice >= 0.66:
		return lvAddrHigh
	case shared > 0:
		return lvAddrSome
	}
	return lvAddrDiff
}

func isNumber(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// similarWords reports whether two address words (ids x, y) are within
// typing distance (Jaro–Winkler ≥ 0.9).
func (d *Dataset) similarWords(x, y uint32, sx, sy string, cc *cmpCache) bool {
	if cc != nil {
		if l, ok := cc.words.get(x, y); ok {
			return l == 1
		}
	}
	ok := jwBound(sx, sy, d.tokMask[x], d.tokMask[y]) >= 0.9 && JaroWinkler(sx, sy) >= 0.9
	if cc != nil {
		l := uint8(0)
		if ok {
			l = 1
		}
		cc.words.put(x, y, l)
	}
	return ok
}

// cmpCache remembers comparisons of interned values for one goroutine:
// the same pairs of common names are compared millions of times.
type cmpCache struct {
	names, words pairCache
}

func newCmpCache() *cmpCache {
	return &cmpCache{names: newPairCache(12), words: newPairCache(12)}
}

// pairCache is a direct-mapped cache from an unordered pair of non-zero
// ids to a small value.
type pairCache struct {
	keys []uint64
	vals []uint8
	bits uint
}

func newPairCache(bits uint) pairCache {
	return pairCache{keys: make([]uint64, 1<<bits), vals: make([]uint8, 1<<bits), bits: bits}
}

func pairKey(x, y uint32) uint64 {
	if x > y {
		x, y = y, x
	}
	return uint64(x)<<32 | uint64(y)
}

func (c *pairCache) slot(k uint64) uint64 { return (k * 0x9e3779b97f4a7c15) >> (64 - c.bits) }

func (c *pairCache) get(x, y uint32) (uint8, bool) {
	k := pairKey(x, y)
	i := c.slot(k)
	if c.keys[i] == k {
		return c.vals[i], true
	}
	return 0, false
}

func (c *pairCache) put(x, y uint32, v uint8) {
	k := pairKey(x, y)
	i := c.slot(k)
	c.keys[i], c.vals[i] = k, v
}
