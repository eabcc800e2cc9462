package bench

import (
	"errors"
	"strings"
)

// The COPY text format of PostgreSQL, for the rows exported from SQLite:
// one line per row, fields separated by tabs, \N for NULL, and backslash
// escapes for backslash, tab, newline and carriage return.

// appendCopyField appends one field, escaped.
func appendCopyField(buf []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			buf = append(buf, '\\', '\\')
		case '\t':
			buf = append(buf, '\\', 't')
		case '\n':
			buf = append(buf, '\\', 'n')
		case '\r':
			buf = append(buf, '\\', 'r')
		default:
			buf = append(buf, c)
		}
	}
	return buf
}

var errCopyEscape = errors.New("bad escape in COPY text")

// splitCopyLine splits a line (without its newline) into fields; a NULL
// field is returned as null[i] = true.
func splitCopyLine(line string, fields []string, null []bool) ([]string, []bool, error) {
	fields, null = fields[:0], null[:0]
	for {
		end := strings.IndexByte(line, '\t')
		f := line
		if end >= 0 {
			f = line[:end]
		}
		if f == `\N` {
			fields, null = append(fields, ""), append(null, true)
		} else {
			v, err := unescapeCopy(f)
			if err != nil {
				return fields, null, err
			}
			fields, null = append(fields, v), append(null, false)
		}
		if end < 0 {
			return fields, null, nil
		}
		line = line[end+1:]
	}
}

func unescapeCopy(f string) (string, error) {
	if strings.IndexByte(f, '\\') < 0 {
		return f, nil
	}
	var b strings.Builder
	for i := 0; i < len(f); i++ {
		c := f[i]
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		i++
		if i == len(f) {
			return "", errCopyEscape
		}
		switch f[i] {
		case '\\':
			b.WriteByte('\\')
		case 't':
			b.WriteByte('\t')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		default:
			return "", errCopyEscape
		}
	}
	return b.String(), nil
}
