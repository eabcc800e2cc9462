package delimited

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding/charmap"

	"github.com/careindex/careindex/extractors/rowsource"
)

// bufferSize is the read buffer size; lines longer than this are assembled
// in a separate buffer.
const bufferSize = 64 << 10

// Byte-order marks recognised at the start of a file.
var (
	bomUTF8    = []byte{0xEF, 0xBB, 0xBF}
	bomUTF16LE = []byte{0xFF, 0xFE}
	bomUTF16BE = []byte{0xFE, 0xFF}
)

// Open opens the delimited file at path and reads its header row. Rows name
// the file by its base name. The caller must Close the reader.
func Open(path string, opts Options) (rowsource.Reader, error) {
	name := filepath.Base(path)
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: open: %w", name, err)
	}
	r, err := newReader(f, name, opts)
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	r.closer = f
	return r, nil
}

// New reads delimited text from r and reads its header row. name is used as
// Row.File (its base name, if it is a path). Closing the returned reader does
// not close r.
func New(r io.Reader, name string, opts Options) (rowsource.Reader, error) {
	return newReader(r, filepath.Base(name), opts)
}

// physLine is one physical line of input, with its terminator.
type physLine struct {
	text []byte
	num  int
	// truncated is set when the line was longer than the record limit and
	// text holds only its start.
	truncated bool
}

// reader implements rowsource.Reader over delimited text.
type reader struct {
	file   string
	opts   Options
	enc    encoding
	max    int
	closer io.Closer
	br     *bufio.Reader

	header  []string
	nextNum int        // number of the next physical line read from br
	eof     bool       // br is exhausted
	pending []physLine // lines pushed back after a malformed record
	longBuf []byte     // assembles lines longer than the read buffer
	rec     []byte     // the current record's text
	p       parser

	row  rowsource.Row
	err  error
	done bool
}

var _ rowsource.Reader = (*reader)(nil)

func newReader(src io.Reader, name string, opts Options) (*reader, error) {
	enc, err := parseEncoding(opts.Encoding)
	if err != nil {
		return nil, fmt.Errorf("%s: encoding %w", name, err)
	}
	delim, err := delimiterBytes(opts.Delimiter)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	r := &reader{
		file:    name,
		opts:    opts,
		enc:     enc,
		max:     opts.MaxRecordBytes,
		nextNum: 1,
		p:       newParser(delim, opts.TrimSpace, opts.LazyQuotes),
	}
	if r.max <= 0 {
		r.max = DefaultMaxRecordBytes
	}

	raw := bufio.NewReaderSize(src, bufferSize)
	start, err := raw.Peek(3)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: read: %w", name, err)
	}
	switch {
	case bytes.HasPrefix(start, bomUTF8):
		if enc != encUTF8 {
			return nil, fmt.Errorf("%s: file starts with a UTF-8 byte-order mark but is declared %s: %w", name, enc, ErrUnsupportedEncoding)
		}
		_, _ = raw.Discard(len(bomUTF8))
	case bytes.HasPrefix(start, bomUTF16LE), bytes.HasPrefix(start, bomUTF16BE):
		return nil, fmt.Errorf("%s: file starts with a UTF-16 byte-order mark; UTF-16 is not supported: %w", name, ErrUnsupportedEncoding)
	}
	switch enc {
	case encWindows1252:
		r.br = bufio.NewReaderSize(charmap.Windows1252.NewDecoder().Reader(raw), bufferSize)
	case encLatin1:
		r.br = bufio.NewReaderSize(charmap.ISO8859_1.NewDecoder().Reader(raw), bufferSize)
	default:
		r.br = raw
	}

	ok, err := r.readRecord(0)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%s: %w", name, ErrNoHeader)
	}
	if r.row.Err != nil {
		return nil, fmt.Errorf("header: %w", r.row.Err)
	}
	r.header = make([]string, len(r.row.Values))
	for i, v := range r.row.Values {
		r.header[i] = strings.TrimSpace(strings.TrimPrefix(v, "\uFEFF"))
	}
	r.row = rowsource.Row{}
	return r, nil
}

// Header returns a copy of the column names.
func (r *reader) Header() []string {
	return append([]string(nil), r.header...)
}

// Next advances to the next record.
func (r *reader) Next(ctx context.Context) bool {
	if r.done {
		return false
	}
	if err := ctx.Err(); err != nil {
		r.stop(fmt.Errorf("%s: %w", r.file, err))
		return false
	}
	ok, err := r.readRecord(len(r.header))
	if err != nil {
		r.stop(err)
		return false
	}
	if !ok {
		r.stop(nil)
		return false
	}
	return true
}

// stop ends the stream with err (nil at a clean end).
func (r *reader) stop(err error) {
	r.done, r.err, r.row = true, err, rowsource.Row{}
}

// Row returns the current row.
func (r *reader) Row() rowsource.Row { return r.row }

// Err returns the error that ended the stream early, if any.
func (r *reader) Err() error { return r.err }

// Close closes the file opened by Open. It is safe to call more than once.
func (r *reader) Close() error {
	r.done = true
	if r.closer == nil {
		return nil
	}
	c := r.closer
	r.closer = nil
	if err := c.Close(); err != nil {
		return fmt.Errorf("%s: close: %w", r.file, err)
	}
	return nil
}

// readLine returns the next physical line, with its terminator, from the
// pushed-back lines or the input. The text is valid until the next call.
// It returns io.EOF when the input is exhausted.
func (r *reader) readLine() (physLine, error) {
	if len(r.pending) > 0 {
		l := r.pending[0]
		r.pending = r.pending[1:]
		return l, nil
	}
	if r.eof {
		return physLine{}, io.EOF
	}
	line, err := r.br.ReadSlice('\n')
	truncated := false
	if errors.Is(err, bufio.ErrBufferFull) {
		buf := r.longBuf[:0]
		total := 0
		for {
			total += len(line)
			if room := r.max - len(buf); room > 0 {
				buf = append(buf, line[:min(room, len(line))]...)
			}
			if !errors.Is(err, bufio.ErrBufferFull) {
				break
			}
			line, err = r.br.ReadSlice('\n')
		}
		truncated = total > r.max
		r.longBuf = buf
		line = buf
	} else if len(line) > r.max {
		truncated = true
		line = line[:r.max]
	}
	switch {
	case err == nil:
	case errors.Is(err, io.EOF):
		r.eof = true
		if len(line) == 0 {
			return physLine{}, io.EOF
		}
		// As encoding/csv does, a CR before the end of file ends the line.
		if line[len(line)-1] == '\r' {
			line = line[:len(line)-1]
		}
	default:
		return physLine{}, fmt.Errorf("%s: line %d: read: %w", r.file, r.nextNum, err)
	}
	num := r.nextNum
	r.nextNum++
	return physLine{text: line, num: num, truncated: truncated}, nil
}

// isBlank reports whether a physical line is blank and so skipped: empty
// apart from its line end or, with TrimSpace, holding only blanks.
func (r *reader) isBlank(line []byte) bool {
	line = trimEOL(line)
	if !r.opts.TrimSpace {
		return len(line) == 0
	}
	for i := range line {
		if !r.p.isPad(line, i) {
			return false
		}
	}
	return true
}

// readRecord reads the next record into r.row. want is the number of fields
// expected (0 for the header, which sets it). It returns false at the end of
// the input, and an error only for a failure that ends the stream.
func (r *reader) readRecord(want int) (bool, error) {
	var first physLine
	for {
		l, err := r.readLine()
		if errors.Is(err, io.EOF) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if !r.isBlank(l.text) {
			first = l
			break
		}
	}
	start := first.num
	if first.truncated {
		r.badRow(start, trimEOL(first.text), fmt.Errorf("%s: line %d: longer than %d bytes: %w", r.file, start, r.max, ErrRecordTooLong))
		return true, nil
	}

	r.rec = append(r.rec[:0], first.text...)
	firstLen := len(r.rec)
	r.p.reset()
	for {
		status, end := r.p.run(r.rec)
		switch status {
		case stDone:
			r.buildRow(start, end, want)
			return true, nil
		case stBad:
			r.quoteError(start, firstLen, nil, r.p.bad)
			return true, nil
		}
		// stMore: the record goes on inside a quoted field.
		if len(r.rec) >= r.max {
			r.quoteError(start, firstLen, nil, fmt.Sprintf("field %d: quoted field not closed within %d bytes", len(r.p.fields)+1, r.max))
			return true, nil
		}
		l, err := r.readLine()
		if errors.Is(err, io.EOF) {
			r.quoteError(start, firstLen, nil, fmt.Sprintf("field %d: quoted field not closed before the end of the file", len(r.p.fields)+1))
			return true, nil
		}
		if err != nil {
			return false, err
		}
		if l.truncated {
			r.quoteError(start, firstLen, &l, fmt.Sprintf("field %d: quoted field not closed within %d bytes", len(r.p.fields)+1, r.max))
			return true, nil
		}
		r.rec = append(r.rec, l.text...)
	}
}

// quoteError reports the record's first physical line as a bad row and
// pushes the record's later lines (and extra, a line already read) back to
// be parsed afresh, so a stray quote costs only the line it is on.
func (r *reader) quoteError(start, firstLen int, extra *physLine, reason string) {
	var back []physLine
	rest := r.rec[firstLen:]
	num := start + 1
	for len(rest) > 0 {
		n := bytes.IndexByte(rest, '\n') + 1
		if n == 0 {
			n = len(rest)
		}
		back = append(back, physLine{text: bytes.Clone(rest[:n]), num: num})
		rest = rest[n:]
		num++
	}
	if extra != nil {
		e := *extra
		e.text = bytes.Clone(e.text)
		back = append(back, e)
	}
	if len(back) > 0 {
		r.pending = append(back, r.pending...)
	}
	r.badRow(start, trimEOL(r.rec[:firstLen]), fmt.Errorf("%s: line %d: %s: %w", r.file, start, reason, ErrBadQuote))
}

// badRow sets r.row to a row that could not be split into fields.
func (r *reader) badRow(line int, text []byte, err error) {
	r.row = rowsource.Row{
		File:   r.file,
		Line:   line,
		Values: make([]string, len(r.header)),
		Raw:    sanitize(string(text)),
		Err:    err,
	}
}

// trimEOL drops a trailing LF or CRLF.
func trimEOL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		if n > 1 && b[n-2] == '\r' {
			return b[:n-2]
		}
		return b[:n-1]
	}
	return b
}

// buildRow sets r.row from a parsed record of length end starting on line
// start.
func (r *reader) buildRow(start, end, want int) {
	raw := string(r.rec[:end])
	n := len(r.p.fields)
	size := want
	if want == 0 {
		size = n
	}
	values := make([]string, size)
	for i, f := range r.p.fields[:min(n, size)] {
		v := raw[f.start:f.end]
		if f.unescape {
			v = strings.ReplaceAll(v, `""`, `"`)
			v = strings.ReplaceAll(v, "\r\n", "\n")
		}
		if r.opts.TrimSpace {
			v = strings.TrimSpace(v)
		}
		values[i] = v
	}
	r.row = rowsource.Row{File: r.file, Line: start, Values: values, Raw: raw}

	switch {
	case r.enc == encUTF8 && !utf8.ValidString(raw):
		r.sanitize()
		r.row.Err = fmt.Errorf("%s: line %d: invalid UTF-8 at byte %d of the record: %w", r.file, start, invalidAt(raw), ErrInvalidEncoding)
	case r.enc == encWindows1252 && strings.ContainsRune(raw, utf8.RuneError):
		r.row.Err = fmt.Errorf("%s: line %d: byte undefined in windows-1252 at byte %d of the decoded record: %w", r.file, start, strings.IndexRune(raw, utf8.RuneError), ErrInvalidEncoding)
	case strings.IndexByte(raw, 0) >= 0:
		at := strings.IndexByte(raw, 0)
		r.sanitize()
		r.row.Err = fmt.Errorf("%s: line %d: NUL byte at byte %d of the record (is the file UTF-16?): %w", r.file, start, at, ErrInvalidEncoding)
	case want > 0 && n != want:
		r.row.Err = fmt.Errorf("%s: line %d: %d fields, header has %d: %w", r.file, start, n, want, ErrFieldCount)
	}
}

// sanitize replaces invalid UTF-8 and NUL bytes in the current row with
// U+FFFD, so that the row can be stored (PostgreSQL text holds neither).
func (r *reader) sanitize() {
	r.row.Raw = sanitize(r.row.Raw)
	for i, v := range r.row.Values {
		r.row.Values[i] = sanitize(v)
	}
}

func sanitize(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// invalidAt returns the byte offset of the first invalid UTF-8 in s.
func invalidAt(s string) int {
	for i, c := range s {
		if c == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 {
				return i
			}
		}
	}
	return len(s)
}
