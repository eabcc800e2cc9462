package delimited

import (
	"bytes"
	"fmt"
)

// span locates one field in a record buffer.
type span struct {
	start, end int
	// quoted is set for a field written in quotes; start and end then
	// exclude the quotes.
	quoted bool
	// unescape is set when the quoted text holds a doubled quote or a CRLF
	// that the value must not keep.
	unescape bool
}

// Parser states.
const (
	sFieldStart = iota
	sUnquoted
	sQuoted
	sAfterQuote
)

// Results of parser.run.
const (
	// stDone: the record is complete.
	stDone = iota
	// stMore: the record continues on the next physical line (inside a
	// quoted field).
	stMore
	// stBad: the record is malformed; parser.bad says why.
	stBad
)

// parser splits one record into fields. It is resumable: when a quoted field
// runs past the end of the buffer, run returns stMore, the caller appends the
// next physical line and calls run again, and parsing carries on where it
// stopped, so a record is scanned once however many lines it spans.
//
// The buffer always holds whole physical lines, each ending in '\n' except
// the file's last, so an unquoted end of buffer means end of file.
type parser struct {
	delim  []byte
	d0     byte
	trim   bool
	lazy   bool
	state  int
	pos    int
	cur    span
	fields []span
	bad    string
}

func newParser(delim []byte, trim, lazy bool) parser {
	return parser{delim: delim, d0: delim[0], trim: trim, lazy: lazy}
}

// reset prepares the parser for a new record.
func (p *parser) reset() {
	p.state, p.pos, p.fields, p.bad = sFieldStart, 0, p.fields[:0], ""
}

// isDelim reports whether the delimiter starts at b[i].
func (p *parser) isDelim(b []byte, i int) bool {
	if b[i] != p.d0 {
		return false
	}
	return len(p.delim) == 1 || bytes.HasPrefix(b[i:], p.delim)
}

// isPad reports whether b[i] is a blank that TrimSpace may skip around a
// quoted field.
func (p *parser) isPad(b []byte, i int) bool {
	return (b[i] == ' ' || b[i] == '\t') && !p.isDelim(b, i)
}

// endField closes the current field.
func (p *parser) endField(end int) {
	p.cur.end = end
	p.fields = append(p.fields, p.cur)
}

// run parses b from where the last call stopped. On stDone, end is the
// length of the record text, excluding its line terminator.
func (p *parser) run(b []byte) (status, end int) {
	for {
		switch p.state {
		case sFieldStart:
			i := p.pos
			if p.trim {
				for i < len(b) && p.isPad(b, i) {
					i++
				}
			}
			if i < len(b) && b[i] == '"' {
				p.cur = span{start: i + 1, quoted: true}
				p.pos = i + 1
				p.state = sQuoted
			} else {
				p.cur = span{start: p.pos}
				p.state = sUnquoted
			}

		case sUnquoted:
			i := p.pos
			for ; i < len(b); i++ {
				c := b[i]
				if c == p.d0 && p.isDelim(b, i) {
					break
				}
				if c == '\n' {
					e := i
					if e > p.cur.start && b[e-1] == '\r' {
						e--
					}
					p.endField(e)
					return stDone, e
				}
				if c == '"' && !p.lazy {
					p.bad = fmt.Sprintf(`field %d: bare " in an unquoted field`, len(p.fields)+1)
					return stBad, 0
				}
			}
			if i == len(b) { // end of file
				p.endField(i)
				return stDone, i
			}
			p.endField(i)
			p.pos = i + len(p.delim)
			p.state = sFieldStart

		case sQuoted:
			j := bytes.IndexByte(b[p.pos:], '"')
			if j < 0 {
				p.pos = len(b)
				return stMore, 0
			}
			i := p.pos + j + 1
			if i < len(b) && b[i] == '"' {
				p.cur.unescape = true
				p.pos = i + 1
				continue
			}
			p.cur.end = i - 1
			if !p.cur.unescape && bytes.IndexByte(b[p.cur.start:p.cur.end], '\r') >= 0 {
				p.cur.unescape = true
			}
			p.pos = i
			p.state = sAfterQuote

		case sAfterQuote:
			i := p.pos
			if p.trim {
				for i < len(b) && p.isPad(b, i) {
					i++
				}
			}
			switch {
			case i == len(b): // end of file
				p.fields = append(p.fields, p.cur)
				return stDone, i
			case p.isDelim(b, i):
				p.fields = append(p.fields, p.cur)
				p.pos = i + len(p.delim)
				p.state = sFieldStart
			case b[i] == '\n':
				p.fields = append(p.fields, p.cur)
				return stDone, i
			case b[i] == '\r' && i+1 < len(b) && b[i+1] == '\n':
				p.fields = append(p.fields, p.cur)
				return stDone, i
			default:
				p.bad = fmt.Sprintf(`field %d: text after a closing quote (a quote inside a quoted field must be doubled)`, len(p.fields)+1)
				return stBad, 0
			}
		}
	}
}
