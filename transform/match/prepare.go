package match

import (
	"context"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/careindex/careindex/transform/nhsnumber"
	"github.com/careindex/careindex/transform/postcode"
)

// Dataset is a set of records prepared for matching: each record is kept
// as a compact row (about 60 bytes with its share of the interned names,
// address words and ids), not as a Record, so that a million records take
// well under the memory of their source text. Build one with NewDataset;
// it is read-only afterwards and safe for concurrent use.
type Dataset struct {
	chunks [][]row // rows in chunks of 1<<chunkBits, so that growing never copies them
	n      int
	// small, when above 0, is the expected number of rows of a small
	// dataset (the Matcher's one record and its candidates): its one chunk
	// starts at that size instead of a full 1<<chunkBits rows, which would
	// cost megabytes per call. Such a chunk may be copied when it grows;
	// rows are only addressed once every record has been added.
	small int

	names   []nameEntry // interned names; index 0 is "missing"
	nameIdx map[string]uint32
	tokens  []string // interned address words; index 0 unused
	tokMask []uint64 // letterMask of each word
	tokIdx  map[string]uint32
	gps     []string
	gpIdx   map[string]uint32
	pcs     []pcode // interned postcodes; index 0 is "missing"
	pcIdx   map[pcode]uint32

	addr    []uint32 // address word ids, per row addrOff..addrOff+addrLen
	contact []byte   // contact arena: per row with contact details, phone (8 bytes), email length, email
	ids     []byte   // record id arena
	idEnd   []uint32 // ids[idEnd[i-1]:idEnd[i]] is row i's id

	counts [numFields]*spaceSaving // value frequencies, for term-frequency adjustment

	// scratch for preparing records
	buf []byte
}

// row is one prepared record (40 bytes).
type row struct {
	nhs     uint64 // NHS number as an integer; 0 missing
	pc      uint32 // postcode id; 0 missing
	family  uint32 // name id; 0 missing
	given   uint32
	dob     uint32 // yyyymmdd; 0 missing
	gp      uint32 // practice id; 0 missing
	contact uint32 // offset+1 of the contact details in Dataset.contact; 0 none
	addrOff uint32
	addrLen uint8
	sex     uint8 // 0 missing, 1 male, 2 female, 3 other
	flags   uint8
}

const chunkBits = 16

// row returns the i-th row.
func (d *Dataset) row(i uint32) *row { return &d.chunks[i>>chunkBits][i&(1<<chunkBits-1)] }

// phone returns a row's phone (last ten digits, 0 missing).
func (d *Dataset) phone(r *row) uint64 {
	if r.contact == 0 {
		return 0
	}
	return binary.LittleEndian.Uint64(d.contact[r.contact-1:])
}

// email returns a row's normalised email ("" missing).
func (d *Dataset) email(r *row) string {
	if r.contact == 0 {
		return ""
	}
	o := r.contact - 1 + 8
	n := uint32(d.contact[o])
	return string(d.contact[o+1 : o+1+n])
}

// row flags
const (
	flagPlaceholderName = 1 << iota // names are emergency placeholders: no name evidence
	flagJan1                        // date of birth is 1 January, or missing
)

// pcode is a postcode packed for comparison.
type pcode struct {
	b    [8]byte // compact form (no space), zero padded; or a hash of a long opaque code
	n    uint8   // length used in b
	out  uint8   // UK: outward code length
	dist uint8   // UK: district length
	kind uint8   // pcNone, pcUK, pcOpaque, pcOpaqueHashed
}

const (
	pcNone = iota
	pcUK
	pcOpaque
	pcOpaqueHashed
)

// nameEntry is an interned, normalised name.
type nameEntry struct {
	s     string // normalised: upper case letters, single spaces
	phon  string // NYSIIS of the whole name
	phon1 string // NYSIIS of the first word, at most blockPhoneticLen letters (for blocking)
	place uint8  // placeholder class: 0 none, 1 phonetic alphabet word, 2 unknown-name word
	multi bool   // more than one word
	ascii bool
	mask  uint64 // letterMask(s)
}

// blockPhoneticLen is the length phonetic codes are cut to for blocking,
// so that an error late in a long name still leaves the key alone.
const blockPhoneticLen = 4

// maximum address words kept per record
const maxAddrWords = 12

// NewDataset reads records once and prepares them. It stops at the first
// error from the stream or when ctx is done.
func NewDataset(ctx context.Context, recs Records) (*Dataset, error) {
	d := newDataset(0)
	n := 0
	for r, err := range recs {
		if err != nil {
			return nil, fmt.Errorf("match: reading records: %w", err)
		}
		if n++; n%65536 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		d.add(r)
	}
	return d, nil
}

func newDataset(capacity int) *Dataset {
	d := &Dataset{
		names:   []nameEntry{{}},
		pcs:     []pcode{{}},
		pcIdx:   map[pcode]uint32{},
		nameIdx: map[string]uint32{},
		tokens:  []string{""},
		tokMask: []uint64{0},
		tokIdx:  map[string]uint32{},
		gps:     []string{""},
		gpIdx:   map[string]uint32{},
		idEnd:   make([]uint32, 0, capacity),
	}
	if capacity > 0 && capacity < 1<<chunkBits {
		d.small = capacity
	}
	for _, f := range tfFields {
		d.counts[f] = newSpaceSaving(defaultTFCapacity)
	}
	return d
}

// Len returns the number of records.
func (d *Dataset) Len() int { return d.n }

// ID returns the id of the i-th record.
func (d *Dataset) ID(i int) string {
	start := uint32(0)
	if i > 0 {
		start = d.idEnd[i-1]
	}
	return string(d.ids[start:d.idEnd[i]])
}

func (d *Dataset) add(r Record) {
	var w row
	d.ids = append(d.ids, r.ID...)
	d.idEnd = append(d.idEnd, uint32(len(d.ids)))
	w.nhs = parseNHS(r.NHSNumber)
	w.family = d.internName(r.FamilyName)
	w.given = d.internName(r.GivenName)
	w.dob = parseDOB(r.DateOfBirth)
	w.sex = parseSex(r.Sex)
	w.pc = d.internPostcode(r.Postcode)
	w.gp = d.internGP(r.GPPractice)
	if phone, e := parsePhone(r.Phone), normEmail(r.Email); phone != 0 || e != "" {
		w.contact = uint32(len(d.contact)) + 1
		d.contact = binary.LittleEndian.AppendUint64(d.contact, phone)
		d.contact = append(append(d.contact, byte(len(e))), e...)
	}
	w.addrOff = uint32(len(d.addr))
	d.buf = d.addWords(r.Address, d.buf[:0])
	w.addrLen = uint8(len(d.addr) - int(w.addrOff))
	if placeholderNames(&d.names[w.family], &d.names[w.given], w.family, w.given) {
		w.flags |= flagPlaceholderName
	}
	if w.dob == 0 || w.dob%10000 == 101 {
		w.flags |= flagJan1
	}
	if w.flags&flagPlaceholderName == 0 {
		d.counts[fFamily].add(uint64(w.family))
		d.counts[fGiven].add(uint64(w.given))
	}
	d.counts[fDOB].add(uint64(w.dob))
	d.counts[fPostcode].add(uint64(w.pc))
	if d.n>>chunkBits == len(d.chunks) {
		size := 1 << chunkBits
		if d.small > 0 && len(d.chunks) == 0 {
			size = d.small
		}
		d.chunks = append(d.chunks, make([]row, 0, size))
	}
	c := &d.chunks[d.n>>chunkBits]
	*c = append(*c, w)
	d.n++
}

func (d *Dataset) internPostcode(s string) uint32 {
	p := parsePostcode(s)
	if p.kind == pcNone {
		return 0
	}
	id, ok := d.pcIdx[p]
	if !ok {
		id = uint32(len(d.pcs))
		d.pcs = append(d.pcs, p)
		d.pcIdx[p] = id
	}
	return id
}

// normName folds a name for comparison: upper case letters and digits,
// apostrophes dropped, every other run of characters one space.
func normName(s string) string {
	simple := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z') && !(c == ' ' && i > 0 && i < len(s)-1 && s[i-1] != ' ') {
			simple = false
			break
		}
	}
	if simple {
		return s
	}
	var b strings.Builder
	space := false
	for _, r := range s {
		switch {
		case r == '\'' || r == '\u2019' || r == '`':
			continue
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			if space && b.Len() > 0 {
				b.WriteByte(' ')
			}
			space = false
			b.WriteRune(unicode.ToUpper(r))
		default:
			space = true
		}
	}
	return b.String()
}

func (d *Dataset) internName(s string) uint32 {
	n := normName(s) // s itself when already normalised: no allocation
	if n == "" {
		return 0
	}
	id, ok := d.nameIdx[n]
	if !ok {
		e := nameEntry{s: n, phon: NYSIIS(n), place: placeholderClass(n), multi: strings.IndexByte(n, ' ') >= 0, ascii: isASCII(n), mask: letterMask(n)}
		e.phon1 = e.phon
		if e.multi {
			e.phon1 = NYSIIS(n[:strings.IndexByte(n, ' ')])
		}
		if len(e.phon1) > blockPhoneticLen {
			e.phon1 = e.phon1[:blockPhoneticLen]
		}
		id = uint32(len(d.names))
		d.names = append(d.names, e)
		d.nameIdx[n] = id
	}
	return id
}

func (d *Dataset) internGP(s string) uint32 {
	s = strings.ToUpper(strings.TrimSpace(s))
	if s == "" || s == "V81999" {
		return 0
	}
	id, ok := d.gpIdx[s]
	if !ok {
		id = uint32(len(d.gps))
		d.gps = append(d.gps, s)
		d.gpIdx[s] = id
	}
	return id
}

// addressStop lists words that say what kind of street or building a
// place is: too common to tell two addresses apart.
var addressStop = map[string]bool{
	"ROAD": true, "RD": true, "STREET": true, "ST": true, "AVENUE": true, "AVE": true, "AV": true,
	"LANE": true, "LN": true, "CLOSE": true, "CL": true, "DRIVE": true, "DR": true, "COURT": true,
	"CT": true, "CRESCENT": true, "CRES": true, "PLACE": true, "PL": true, "WAY": true,
	"GARDENS": true, "GDNS": true, "TERRACE": true, "TCE": true, "GROVE": true, "GR": true,
	"SQUARE": true, "SQ": true, "FLAT": true, "APARTMENT": true, "APT": true, "THE": true,
	"OF": true, "AND": true, "HOUSE": true, "PARADE": true, "PDE": true, "CIRCUIT": true,
	"CCT": true, "HIGHWAY": true, "HWY": true, "PARK": true, "WALK": true, "VIEW": true,
	"HILL": true, "MEWS": true, "ROW": true, "RISE": true, "COVE": true, "BOULEVARD": true,
	"UNIT": true, "NORTH": true, "SOUTH": true, "EAST": true, "WEST": true,
}

// addWords splits an address into upper-case words of letters and digits,
// drops stop words and duplicates, and appends their ids to d.addr.
func (d *Dataset) addWords(s string, buf []byte) []byte {
	start := len(d.addr)
	flush := func() {
		if len(buf) == 0 {
			return
		}
		w := string(buf)
		buf = buf[:0]
		if addressStop[w] || len(d.addr)-start >= maxAddrWords {
			return
		}
		id, ok := d.tokIdx[w]
		if !ok {
			id = uint32(len(d.tokens))
			d.tokens = append(d.tokens, w)
			d.tokMask = append(d.tokMask, letterMask(w))
			d.tokIdx[w] = id
		}
		for _, x := range d.addr[start:] {
			if x == id {
				return
			}
		}
		d.addr = append(d.addr, id)
	}
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		switch {
		case r >= 'a' && r <= 'z':
			buf = append(buf, byte(r-'a'+'A'))
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			buf = append(buf, byte(r))
		case r == '\'':
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			buf = utf8.AppendRune(buf, unicode.ToUpper(r))
		default:
			flush()
		}
	}
	flush()
	return buf
}

// phoneticAlphabet holds the NATO phonetic alphabet words that emergency
// departments give unknown patients as names.
var phoneticAlphabet = map[string]bool{
	"ALPHA": true, "ALFA": true, "BRAVO": true, "CHARLIE": true, "DELTA": true, "ECHO": true,
	"FOXTROT": true, "GOLF": true, "HOTEL": true, "INDIA": true, "JULIET": true, "JULIETT": true,
	"KILO": true, "LIMA": true, "MIKE": true, "NOVEMBER": true, "OSCAR": true, "PAPA": true,
	"QUEBEC": true, "ROMEO": true, "SIERRA": true, "TANGO": true, "UNIFORM": true, "VICTOR": true,
	"WHISKEY": true, "WHISKY": true, "XRAY": true, "X RAY": true, "YANKEE": true, "ZULU": true,
}

// unknownWords are words that stand for "name not known".
var unknownWords = map[string]bool{
	"UNKNOWN": true, "UNK": true, "NOTKNOWN": true, "UNNAMED": true, "NONAME": true,
	"ANON": true, "ANONYMOUS": true, "NK": true,
}

// placeholderClass returns 2 when a normalised name holds an
// unknown-name word (UNKNOWN, NOT KNOWN, ...), 1 when it is a phonetic
// alphabet word, 0 otherwise.
func placeholderClass(n string) uint8 {
	if phoneticAlphabet[n] {
		return 1
	}
	if n == "NOT KNOWN" || n == "NO NAME" {
		return 2
	}
	for w := range strings.FieldsSeq(n) {
		if unknownWords[w] {
			return 2
		}
	}
	return 0
}

// placeholderNames reports whether a record's names are an emergency
// placeholder: an unknown-name word in either name, or phonetic alphabet
// words (or nothing) in both. A real Charlie with a real surname is not a
// placeholder.
func placeholderNames(fam, giv *nameEntry, famID, givID uint32) bool {
	if fam.place == 2 || giv.place == 2 {
		return true
	}
	if famID == 0 && givID == 0 {
		return false
	}
	return (fam.place == 1 || famID == 0) && (giv.place == 1 || givID == 0)
}

func parseNHS(s string) uint64 {
	if s == "" {
		return 0
	}
	if len(s) != 10 {
		s = strings.Map(func(r rune) rune {
			if r == ' ' || r == '-' {
				return -1
			}
			return r
		}, strings.TrimSpace(s))
	}
	if !nhsnumber.Valid(s) {
		return 0
	}
	n, _ := strconv.ParseUint(s, 10, 64)
	if n == 0 {
		return 0
	}
	return n
}

func parsePhone(s string) uint64 {
	var n uint64
	digits := 0
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= '0' && c <= '9' {
			n = (n*10 + uint64(c-'0')) % 1e10 // keep the last ten digits
			digits++
		}
	}
	if digits < 7 {
		return 0
	}
	return n | 1<<62 // so that 0000000000 is not "missing"
}

// parseDOB reads "2006-01-02" (or "20060102") as yyyymmdd; anything else,
// including impossible dates, is missing.
func parseDOB(s string) uint32 {
	var y, m, dd int
	switch len(s) {
	case 10:
		if s[4] != '-' || s[7] != '-' {
			return 0
		}
		y, m, dd = atoi(s[0:4]), atoi(s[5:7]), atoi(s[8:10])
	case 8:
		y, m, dd = atoi(s[0:4]), atoi(s[4:6]), atoi(s[6:8])
	default:
		return 0
	}
	if y < 1800 || y > 2200 || m < 1 || m > 12 || dd < 1 || dd > daysIn(y, m) {
		return 0
	}
	return uint32(y*10000 + m*100 + dd)
}

func atoi(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int(c-'0')
	}
	return n
}

func daysIn(y, m int) int {
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// dayNumber returns a day count for yyyymmdd (days since a fixed epoch).
func dayNumber(v uint32) int {
	y, m, d := int(v/10000), int(v/100%100), int(v%100)
	// days from civil, Howard Hinnant's algorithm
	if m <= 2 {
		y--
	}
	era := y / 400
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe
}

func parseSex(s string) uint8 {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "male", "m":
		return 1
	case "female", "f":
		return 2
	case "other", "i", "indeterminate":
		return 3
	}
	return 0
}

func normEmail(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	if len(s) > 255 {
		s = s[:255]
	}
	return s
}

// parsePostcode packs a postcode: UK postcodes with their outward code and
// district lengths; ZZ99 pseudo-postcodes and empty values as missing;
// anything else as an opaque code (upper case letters and digits).
func parsePostcode(s string) pcode {
	var p pcode
	if s == "" {
		return p
	}
	if parts, err := postcode.Parse(s); err == nil {
		if parts.Pseudo {
			return p
		}
		c := parts.Outcode + parts.Incode
		p.kind = pcUK
		p.n = uint8(copy(p.b[:], c))
		p.out = uint8(len(parts.Outcode))
		p.dist = uint8(len(parts.District))
		return p
	}
	var c []byte
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch >= 'a' && ch <= 'z':
			c = append(c, ch-'a'+'A')
		case ch >= 'A' && ch <= 'Z', ch >= '0' && ch <= '9':
			c = append(c, ch)
		}
	}
	if len(c) == 0 || (len(c) >= 4 && string(c[:4]) == "ZZ99") {
		return p // empty or a malformed pseudo-postcode: never agree
	}
	if len(c) <= 8 {
		p.kind = pcOpaque
		p.n = uint8(copy(p.b[:], c))
		return p
	}
	h := uint64(14695981039346656037)
	for _, ch := range c {
		h ^= uint64(ch)
		h *= 1099511628211
	}
	p.kind = pcOpaqueHashed
	p.n = 8
	for i := range 8 {
		p.b[i] = byte(h >> (8 * i))
	}
	return p
}
