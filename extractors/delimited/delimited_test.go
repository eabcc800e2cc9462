package delimited_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/careindex/careindex/extractors/delimited"
	"github.com/careindex/careindex/extractors/rowsource"
)

// wantRow is the expected content of one row; a nil values skips the check.
type wantRow struct {
	line   int
	values []string
	raw    string
	err    error
}

func readAll(t *testing.T, r rowsource.Reader) []rowsource.Row {
	t.Helper()
	var rows []rowsource.Row
	for r.Next(context.Background()) {
		rows = append(rows, r.Row())
	}
	if err := r.Err(); err != nil {
		t.Fatalf("Err() = %v", err)
	}
	return rows
}

func TestOpen(t *testing.T) {
	tests := []struct {
		name   string
		file   string
		opts   delimited.Options
		header []string
		rows   []wantRow
	}{
		{
			name:   "utf-8 with BOM, CRLF, quoted fields",
			file:   "basic.csv",
			header: []string{"PatientID", "NHSNo", "Surname", "Forename", "DOB"},
			rows: []wantRow{
				{line: 2, values: []string{"100101", "5002977278", "Pennington", "Hattie", "14/03/1948"}, raw: "100101,5002977278,Pennington,Hattie,14/03/1948"},
				{line: 3, values: []string{"100104", "6278534940", "O'Neil, Jr", "Conall", "19/05/1975"}, raw: `100104,6278534940,"O'Neil, Jr",Conall,19/05/1975`},
				{line: 5, values: []string{"100105", "5048767691", `Say "Hi"`, "Two\nLines", "09/09/1988"}, raw: "100105,5048767691,\"Say \"\"Hi\"\"\",\"Two\r\nLines\",09/09/1988"},
				{line: 7, values: []string{"100106", "7353213760", "Wierzbicki", "Tomasz", "23/01/2001"}, raw: "100106,7353213760,Wierzbicki,Tomasz,23/01/2001"},
			},
		},
		{
			name:   "windows-1252 pipe-delimited with a long row",
			file:   "clients_cp1252.txt",
			opts:   delimited.Options{Delimiter: '|', Encoding: "cp1252"},
			header: []string{"ClientRef", "NHS_Number", "LastName", "FirstName", "BirthDate", "Sex", "PostCode"},
			rows: []wantRow{
				{line: 2, values: []string{"C20451", "5002977278", "Pennington", "Hattie", "19480314", "2", "PE15 8AQ"}},
				{line: 3},
				{line: 4, values: []string{"C20453", "636-881-3075", "Ashdown", "Margaret", "19390821", "2", "PE16 6AX"}},
				{line: 5, values: []string{"C20454", "4057476369", "D\u2019Arcy", "Zoë", "19440210", "2", "PE13 1JP"}, raw: "C20454|4057476369|D\u2019Arcy|Zoë|19440210|2|PE13 1JP"},
				{line: 6, values: []string{"C20455", "", "Lindström", "Renée", "19500505", "2", "PE13 2RH"}},
				{line: 7, values: []string{"C20456", "4435907755", "Gray", "Ellis", "Oswin", "19851111", "1"}, raw: "C20456|4435907755|Gray|Ellis|Oswin|19851111|1|PE14 9BN", err: delimited.ErrFieldCount},
			},
		},
		{
			name:   "FEBRL leading spaces trimmed",
			file:   "febrl.csv",
			opts:   delimited.Options{TrimSpace: true},
			header: []string{"rec_id", "given_name", "surname", "street_number", "address_1", "postcode"},
			rows: []wantRow{
				{line: 2, values: []string{"rec-0-org", "michaela", "neumann", "8", "stanley street", "2010"}},
				{line: 4, values: []string{"rec-1-dup-0", "courtney", "painter", "12", "pinkerton, circuit", "2600"}},
			},
		},
		{
			name:   "tab-separated",
			file:   "tabs.tsv",
			opts:   delimited.Options{Delimiter: '\t'},
			header: []string{"id", "name", "note"},
			rows: []wantRow{
				{line: 2, values: []string{"1", "Ann", "tab\there"}},
				{line: 3, values: []string{"2", "Bob", ""}},
			},
		},
		{
			name:   "latin1",
			file:   "latin1.csv",
			opts:   delimited.Options{Encoding: "ISO-8859-1"},
			header: []string{"id", "name", "town"},
			rows: []wantRow{
				{line: 2, values: []string{"1", "Renée", "Wisbech"}},
				{line: 3, values: []string{"2", "Jürgen", "München"}},
			},
		},
		{
			name:   "bad rows are reported and skipped over",
			file:   "bad.csv",
			header: []string{"id", "name", "dob"},
			rows: []wantRow{
				{line: 2, values: []string{"1", "Ann", "2001-01-01"}},
				{line: 3, values: []string{"2", "Bob", ""}, raw: "2,Bob", err: delimited.ErrFieldCount},
				{line: 4, values: []string{"3", "Cy", "2002-02-02"}, raw: "3,Cy,2002-02-02,extra", err: delimited.ErrFieldCount},
				{line: 5, raw: `4,Di"x,2003-03-03`, err: delimited.ErrBadQuote},
				{line: 6, raw: `5,"Ed"x,2004-04-04`, err: delimited.ErrBadQuote},
				{line: 7, values: []string{"6", "F\uFFFDy", "2005-05-05"}, raw: "6,F\uFFFDy,2005-05-05", err: delimited.ErrInvalidEncoding},
				{line: 10, values: []string{"7", "Gil", "2006-06-06"}},
				{line: 11, raw: `8,"Hal,2007-07-07`, err: delimited.ErrBadQuote},
				{line: 12, values: []string{"9", "Ivy", "2008-08-08"}},
			},
		},
		{
			name:   "lazy quotes accept a bare quote",
			file:   "bad.csv",
			opts:   delimited.Options{LazyQuotes: true},
			header: []string{"id", "name", "dob"},
			rows: []wantRow{
				{line: 2},
				{line: 3, err: delimited.ErrFieldCount},
				{line: 4, err: delimited.ErrFieldCount},
				{line: 5, values: []string{"4", `Di"x`, "2003-03-03"}},
				{line: 6, err: delimited.ErrBadQuote},
				{line: 7, err: delimited.ErrInvalidEncoding},
				{line: 10},
				{line: 11, err: delimited.ErrBadQuote},
				{line: 12},
			},
		},
		{
			name:   "unterminated quote costs one line",
			file:   "unterminated.csv",
			header: []string{"id", "name"},
			rows: []wantRow{
				{line: 2, values: []string{"", ""}, raw: `1,"never closed`, err: delimited.ErrBadQuote},
				{line: 3, values: []string{"2", "Bob"}},
				{line: 4, values: []string{"3", "Cy"}},
			},
		},
		{
			name:   "CR before end of file",
			file:   "eof_cr.csv",
			header: []string{"id", "name"},
			rows: []wantRow{
				{line: 2, values: []string{"1", "Ann"}},
				{line: 3, values: []string{"2", "é€"}, raw: "2,é€"},
			},
		},
		{
			name:   "NUL byte",
			file:   "nul.csv",
			header: []string{"id", "name"},
			rows: []wantRow{
				{line: 2, values: []string{"1", "A\uFFFDn"}, raw: "1,A\uFFFDn", err: delimited.ErrInvalidEncoding},
				{line: 3, values: []string{"2", "Bob"}},
			},
		},
		{
			name:   "bytes undefined in windows-1252",
			file:   "bad1252.csv",
			opts:   delimited.Options{Encoding: "Windows-1252"},
			header: []string{"id", "name"},
			rows: []wantRow{
				{line: 2, values: []string{"1", "B\uFFFDb"}, err: delimited.ErrInvalidEncoding},
				{line: 3, values: []string{"2", "Zöë"}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := delimited.Open(filepath.Join("testdata", tt.file), tt.opts)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer func() {
				if err := r.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			}()
			if got := r.Header(); !slices.Equal(got, tt.header) {
				t.Errorf("Header() = %q, want %q", got, tt.header)
			}
			rows := readAll(t, r)
			if len(rows) != len(tt.rows) {
				for _, row := range rows {
					t.Logf("line %d: %q err=%v", row.Line, row.Values, row.Err)
				}
				t.Fatalf("got %d rows, want %d", len(rows), len(tt.rows))
			}
			for i, want := range tt.rows {
				got := rows[i]
				if got.File != tt.file {
					t.Errorf("row %d: File = %q, want %q", i, got.File, tt.file)
				}
				if got.Line != want.line {
					t.Errorf("row %d: Line = %d, want %d", i, got.Line, want.line)
				}
				if len(got.Values) != len(tt.header) {
					t.Errorf("row %d: %d values, want %d", i, len(got.Values), len(tt.header))
				}
				if want.values != nil && !slices.Equal(got.Values, want.values) {
					t.Errorf("row %d: Values = %q, want %q", i, got.Values, want.values)
				}
				if want.raw != "" && got.Raw != want.raw {
					t.Errorf("row %d: Raw = %q, want %q", i, got.Raw, want.raw)
				}
				switch {
				case want.err == nil && got.Err != nil:
					t.Errorf("row %d: unexpected Err %v", i, got.Err)
				case want.err != nil && !errors.Is(got.Err, want.err):
					t.Errorf("row %d: Err = %v, want %v", i, got.Err, want.err)
				case got.Err != nil && !strings.HasPrefix(got.Err.Error(), tt.file+": line "):
					t.Errorf("row %d: Err %q does not name file and line", i, got.Err)
				}
			}
		})
	}
}

func TestRowErrorMessage(t *testing.T) {
	r, err := delimited.Open(filepath.Join("testdata", "bad.csv"), delimited.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rows := readAll(t, r)
	const want = "bad.csv: line 3: 2 fields, header has 3: wrong number of fields"
	if got := rows[1].Err.Error(); got != want {
		t.Errorf("Err = %q, want %q", got, want)
	}
}

func TestOpenErrors(t *testing.T) {
	tests := []struct {
		name string
		file string
		opts delimited.Options
		want error
	}{
		{"empty file", "empty.csv", delimited.Options{}, delimited.ErrNoHeader},
		{"blank lines only", "blank.csv", delimited.Options{}, delimited.ErrNoHeader},
		{"malformed header", "badheader.csv", delimited.Options{}, delimited.ErrBadQuote},
		{"unknown encoding", "basic.csv", delimited.Options{Encoding: "ebcdic"}, delimited.ErrUnsupportedEncoding},
		{"UTF-8 BOM declared windows-1252", "bom_as_1252.csv", delimited.Options{Encoding: "cp1252"}, delimited.ErrUnsupportedEncoding},
		{"UTF-16", "utf16.csv", delimited.Options{}, delimited.ErrUnsupportedEncoding},
		{"quote delimiter", "basic.csv", delimited.Options{Delimiter: '"'}, delimited.ErrBadDelimiter},
		{"newline delimiter", "basic.csv", delimited.Options{Delimiter: '\n'}, delimited.ErrBadDelimiter},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := delimited.Open(filepath.Join("testdata", tt.file), tt.opts)
			if err == nil {
				r.Close()
				t.Fatalf("Open succeeded, want %v", tt.want)
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("Open error = %v, want %v", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), tt.file+": ") && !strings.HasPrefix(err.Error(), "header: "+tt.file+": ") {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func TestOpenMissingFile(t *testing.T) {
	_, err := delimited.Open(filepath.Join("testdata", "nope.csv"), delimited.Options{})
	if err == nil || !strings.Contains(err.Error(), "nope.csv") {
		t.Fatalf("Open error = %v, want one naming nope.csv", err)
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name     string
		input    string
		opts     delimited.Options
		file     string
		values   [][]string
		rowLines []int
	}{
		{"LF", "a,b\n1,2\n3,4\n", delimited.Options{}, "x.csv", [][]string{{"1", "2"}, {"3", "4"}}, []int{2, 3}},
		{"no final newline", "a,b\n1,2", delimited.Options{}, "x.csv", [][]string{{"1", "2"}}, []int{2}},
		{"path name is reduced to base", "a\n1\n", delimited.Options{}, "/home/someone/drop/x.csv", [][]string{{"1"}}, []int{2}},
		{"multi-byte delimiter", "a§b\n1§2\n", delimited.Options{Delimiter: '§'}, "x.txt", [][]string{{"1", "2"}}, []int{2}},
		{"blank lines before header", "\n\r\na,b\n1,2\n", delimited.Options{}, "x.csv", [][]string{{"1", "2"}}, []int{4}},
		{"empty fields", "a,b,c\n,,\n", delimited.Options{}, "x.csv", [][]string{{"", "", ""}}, []int{2}},
		{"quoted blank line kept", "a,b\n\"x\n\ny\",2\n3,4\n", delimited.Options{}, "x.csv", [][]string{{"x\n\ny", "2"}, {"3", "4"}}, []int{2, 5}},
		{"trim around quotes", "a,b\n  \"x, y\"  , z \n", delimited.Options{TrimSpace: true}, "x.csv", [][]string{{"x, y", "z"}}, []int{2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := delimited.New(strings.NewReader(tt.input), tt.file, tt.opts)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			defer r.Close()
			rows := readAll(t, r)
			if len(rows) != len(tt.values) {
				t.Fatalf("got %d rows, want %d", len(rows), len(tt.values))
			}
			for i, row := range rows {
				if row.Err != nil {
					t.Errorf("row %d: Err = %v", i, row.Err)
				}
				if !slices.Equal(row.Values, tt.values[i]) {
					t.Errorf("row %d: Values = %q, want %q", i, row.Values, tt.values[i])
				}
				if row.Line != tt.rowLines[i] {
					t.Errorf("row %d: Line = %d, want %d", i, row.Line, tt.rowLines[i])
				}
				if row.File != filepath.Base(tt.file) {
					t.Errorf("row %d: File = %q", i, row.File)
				}
			}
		})
	}
}

func TestRecordTooLong(t *testing.T) {
	long := strings.Repeat("x", 200)
	tests := []struct {
		name  string
		input string
		want  []error
	}{
		{"long unquoted line", "a,b\n1," + long + "\n2,3\n", []error{delimited.ErrRecordTooLong, nil}},
		{"line longer than the read buffer", "a,b\n1," + strings.Repeat("y", 70000) + "\n2,3\n", []error{delimited.ErrRecordTooLong, nil}},
		{"quoted field runs on", "a,b\n1,\"" + strings.Repeat(strings.Repeat("x", 40)+"\n", 5) + "2,3\n", []error{delimited.ErrBadQuote, delimited.ErrFieldCount, delimited.ErrFieldCount, delimited.ErrFieldCount, delimited.ErrFieldCount, nil}},
		{"quoted field meets a long line", "a,b\n1,\"x\n" + long + "\n2,3\n", []error{delimited.ErrBadQuote, delimited.ErrRecordTooLong, nil}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := delimited.New(strings.NewReader(tt.input), "long.csv", delimited.Options{MaxRecordBytes: 100})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			rows := readAll(t, r)
			if len(rows) != len(tt.want) {
				t.Fatalf("got %d rows, want %d", len(rows), len(tt.want))
			}
			for i, row := range rows {
				if !errors.Is(row.Err, tt.want[i]) || (tt.want[i] == nil) != (row.Err == nil) {
					t.Errorf("row %d (line %d): Err = %v, want %v", i, row.Line, row.Err, tt.want[i])
				}
				if len(row.Raw) > 101 {
					t.Errorf("row %d: Raw has %d bytes, beyond the limit", i, len(row.Raw))
				}
			}
		})
	}
}

func TestNextStopsOnCancelledContext(t *testing.T) {
	r, err := delimited.Open(filepath.Join("testdata", "basic.csv"), delimited.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithCancel(context.Background())
	if !r.Next(ctx) {
		t.Fatal("first Next returned false")
	}
	cancel()
	if r.Next(ctx) {
		t.Fatal("Next returned true after cancel")
	}
	if !errors.Is(r.Err(), context.Canceled) {
		t.Errorf("Err() = %v, want context.Canceled", r.Err())
	}
	if r.Next(context.Background()) {
		t.Error("Next returned true after the stream ended")
	}
}
