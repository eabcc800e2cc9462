package delimited_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/careindex/careindex/extractors/delimited"
	"github.com/careindex/careindex/extractors/rowsource"
)

// FuzzNew checks invariants that hold for any input and, where
// encoding/csv reads the input cleanly, that this reader agrees with it.
func FuzzNew(f *testing.F) {
	seeds, err := filepath.Glob(filepath.Join("testdata", "*"))
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range seeds {
		if info, err := os.Stat(s); err != nil || !info.Mode().IsRegular() {
			continue
		}
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, byte(0), false)
	}
	for _, s := range []string{
		"a,b\n1,2\n",
		"a,b\r\n\"x\"\"y\",\"p\r\nq\"\r\n",
		"a|b\n1|\"2|3\"\n",
		"a\tb\n\t\n",
		"a,b\n1,\"open\n2,3\n",
		"a,b\n 1 , \"2\" \n",
		"a,b\n\"\"\"\",\"\"\n",
		"\xef\xbb\xbfa\n\xff\n",
	} {
		f.Add([]byte(s), byte(0), false)
		f.Add([]byte(s), byte(1), true)
		f.Add([]byte(s), byte(2), false)
	}
	f.Fuzz(func(t *testing.T, input []byte, delimChoice byte, trim bool) {
		delims := []rune{',', '|', '\t', ';'}
		opts := delimited.Options{
			Delimiter:      delims[int(delimChoice)%len(delims)],
			TrimSpace:      trim,
			MaxRecordBytes: 4096,
		}
		r, err := delimited.New(bytes.NewReader(input), "fuzz.csv", opts)
		if err != nil {
			if !errors.Is(err, delimited.ErrNoHeader) && !errors.Is(err, delimited.ErrBadQuote) &&
				!errors.Is(err, delimited.ErrInvalidEncoding) && !errors.Is(err, delimited.ErrUnsupportedEncoding) &&
				!errors.Is(err, delimited.ErrRecordTooLong) {
				t.Fatalf("New: unexpected error %v", err)
			}
			return
		}
		defer r.Close()
		header := r.Header()
		var rows []rowsource.Row
		last := 1
		for r.Next(context.Background()) {
			row := r.Row()
			if row.Line <= last {
				t.Fatalf("line %d after line %d", row.Line, last)
			}
			last = row.Line
			if len(row.Values) != len(header) {
				t.Fatalf("line %d: %d values, header has %d", row.Line, len(row.Values), len(header))
			}
			if !utf8.ValidString(row.Raw) || strings.IndexByte(row.Raw, 0) >= 0 {
				t.Fatalf("line %d: Raw not valid UTF-8 without NUL", row.Line)
			}
			for _, v := range row.Values {
				if !utf8.ValidString(v) || strings.IndexByte(v, 0) >= 0 {
					t.Fatalf("line %d: value not valid UTF-8 without NUL", row.Line)
				}
			}
			if len(row.Raw) > opts.MaxRecordBytes*2 {
				t.Fatalf("line %d: Raw of %d bytes beyond twice the limit", row.Line, len(row.Raw))
			}
			rows = append(rows, row)
		}
		if err := r.Err(); err != nil {
			t.Fatalf("Err() = %v", err)
		}
		if trim || !utf8.Valid(input) || bytes.HasPrefix(input, []byte("\xef\xbb\xbf")) || bytes.IndexByte(input, 0) >= 0 {
			return
		}
		compareWithStdlib(t, input, opts.Delimiter, header, rows)
	})
}

// compareWithStdlib checks rows against encoding/csv when that reads input
// without any error.
func compareWithStdlib(t *testing.T, input []byte, delim rune, header []string, rows []rowsource.Row) {
	t.Helper()
	cr := csv.NewReader(bytes.NewReader(input))
	cr.Comma = delim
	want, err := cr.Read()
	if err != nil {
		return
	}
	for i := range want {
		want[i] = strings.TrimSpace(strings.TrimPrefix(want[i], "\uFEFF"))
	}
	var records [][]string
	var lines []int
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return
		}
		line, _ := cr.FieldPos(0)
		records = append(records, rec)
		lines = append(lines, line)
	}
	if len(bytes.Join(records2bytes(records), nil)) > 2048 {
		return // records near the size limit may differ by design
	}
	if !slices.Equal(header, want) {
		t.Fatalf("header %q, encoding/csv %q", header, want)
	}
	if len(rows) != len(records) {
		t.Fatalf("%d rows, encoding/csv %d", len(rows), len(records))
	}
	for i, row := range rows {
		if row.Err != nil {
			t.Fatalf("line %d: Err %v but encoding/csv read it", row.Line, row.Err)
		}
		if !slices.Equal(row.Values, records[i]) {
			t.Fatalf("line %d: %q, encoding/csv %q", row.Line, row.Values, records[i])
		}
		if row.Line != lines[i] {
			t.Fatalf("row %d: line %d, encoding/csv line %d", i, row.Line, lines[i])
		}
	}
}

func records2bytes(records [][]string) [][]byte {
	var out [][]byte
	for _, r := range records {
		out = append(out, []byte(strings.Join(r, ",")))
	}
	return out
}
