package xlsx_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xuri/excelize/v2"

	"github.com/careindex/careindex/extractors/rowsource"
	"github.com/careindex/careindex/extractors/xlsx"
)

// sheetData maps a sheet name to rows keyed by 1-based row number; nil
// cells are left empty.
type sheetData map[string]map[int][]any

// writeBook creates a workbook in a temporary directory and returns its
// path. The default sheet is renamed to the first name in order.
func writeBook(t *testing.T, name string, order []string, data sheetData) string {
	t.Helper()
	f := excelize.NewFile()
	defer f.Close()
	for i, sheet := range order {
		if i == 0 {
			if err := f.SetSheetName("Sheet1", sheet); err != nil {
				t.Fatal(err)
			}
		} else if _, err := f.NewSheet(sheet); err != nil {
			t.Fatal(err)
		}
		for rowNum, row := range data[sheet] {
			for col, v := range row {
				if v == nil {
					continue
				}
				cell, err := excelize.CoordinatesToCellName(col+1, rowNum)
				if err != nil {
					t.Fatal(err)
				}
				if err := f.SetCellValue(sheet, cell, v); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	path := filepath.Join(t.TempDir(), name)
	if err := f.SaveAs(path); err != nil {
		t.Fatal(err)
	}
	return path
}

type wantRow struct {
	line   int
	values []string
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
	dob := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	noon := time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		order  []string
		data   sheetData
		sheet  string
		opts   xlsx.Options
		file   string
		header []string
		rows   []wantRow
	}{
		{
			name:  "raw values: dates as serial numbers",
			order: []string{"Patients"},
			data: sheetData{"Patients": {
				1: {"PatientID", " NHSNo ", "DOB", "Seen", "Score", "Active"},
				2: {"100101", 5002977278, dob, noon, 0.1, true},
				3: {"100102", "0123", nil, nil, -2, false},
			}},
			sheet:  "Patients",
			file:   "Patients@book.xlsx",
			header: []string{"PatientID", "NHSNo", "DOB", "Seen", "Score", "Active"},
			rows: []wantRow{
				{line: 2, values: []string{"100101", "5002977278", "45292", "45292.5", "0.1", "1"}},
				{line: 3, values: []string{"100102", "0123", "", "", "-2", "0"}},
			},
		},
		{
			name:  "header after blank rows; empty rows skipped but counted",
			order: []string{"Data"},
			data: sheetData{"Data": {
				3: {"id", "name"},
				4: {"1", "Ann"},
				5: {"   "},
				7: {"2", nil},
				8: {nil, "Cy"},
			}},
			sheet:  "Data",
			file:   "Data@book.xlsx",
			header: []string{"id", "name"},
			rows: []wantRow{
				{line: 4, values: []string{"1", "Ann"}},
				{line: 7, values: []string{"2", ""}},
				{line: 8, values: []string{"", "Cy"}},
			},
		},
		{
			name:  "explicit header row below a title",
			order: []string{"Data"},
			data: sheetData{"Data": {
				1: {"Extract for D81001"},
				2: {"id", "name"},
				3: {"1", "Ann"},
			}},
			sheet:  "Data",
			opts:   xlsx.Options{HeaderRow: 2},
			file:   "Data@book.xlsx",
			header: []string{"id", "name"},
			rows:   []wantRow{{line: 3, values: []string{"1", "Ann"}}},
		},
		{
			name:  "value beyond the header",
			order: []string{"Data"},
			data: sheetData{"Data": {
				1: {"id", "name"},
				2: {"1", "Ann", "stray"},
				3: {"2", "Bob"},
			}},
			sheet:  "Data",
			file:   "Data@book.xlsx",
			header: []string{"id", "name"},
			rows: []wantRow{
				{line: 2, values: []string{"1", "Ann"}, err: xlsx.ErrFieldCount},
				{line: 3, values: []string{"2", "Bob"}},
			},
		},
		{
			name:  "sheet name matched without case; trim option",
			order: []string{"Notes", "Patients"},
			data: sheetData{"Notes": {1: {"x"}}, "Patients": {
				1: {"id", "name"},
				2: {"1", "  Ann  "},
			}},
			sheet:  "PATIENTS",
			opts:   xlsx.Options{TrimSpace: true},
			file:   "Patients@book.xlsx",
			header: []string{"id", "name"},
			rows:   []wantRow{{line: 2, values: []string{"1", "Ann"}}},
		},
		{
			name:   "empty sheet name selects the first sheet",
			order:  []string{"First", "Second"},
			data:   sheetData{"First": {1: {"a"}, 2: {"1"}}, "Second": {1: {"b"}}},
			file:   "First@book.xlsx",
			header: []string{"a"},
			rows:   []wantRow{{line: 2, values: []string{"1"}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeBook(t, "book.xlsx", tt.order, tt.data)
			r, err := xlsx.Open(context.Background(), path, tt.sheet, tt.opts)
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
					t.Logf("row %d: %q err=%v", row.Line, row.Values, row.Err)
				}
				t.Fatalf("got %d rows, want %d", len(rows), len(tt.rows))
			}
			for i, want := range tt.rows {
				got := rows[i]
				if got.File != tt.file || got.Line != want.line {
					t.Errorf("row %d: at %s:%d, want %s:%d", i, got.File, got.Line, tt.file, want.line)
				}
				if !slices.Equal(got.Values, want.values) {
					t.Errorf("row %d: Values = %q, want %q", i, got.Values, want.values)
				}
				if got.Raw == "" {
					t.Errorf("row %d: empty Raw", i)
				}
				if (want.err == nil) != (got.Err == nil) || !errors.Is(got.Err, want.err) {
					t.Errorf("row %d: Err = %v, want %v", i, got.Err, want.err)
				}
			}
		})
	}
}

func TestOpenCheckedInWorkbook(t *testing.T) {
	r, err := xlsx.Open(context.Background(), filepath.Join("testdata", "patients_20261124.xlsx"), "Patients", xlsx.Options{HeaderRow: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rows := readAll(t, r)
	want := [][]string{
		{"100101", "5002977278", "Pennington", "Hattie", "17606", "F"},
		{"100104", "6278534940", "O'Neil, Jr", "Conall", "27533", "M"},
	}
	if len(rows) != len(want) {
		t.Fatalf("got %d rows, want %d", len(rows), len(want))
	}
	for i, row := range rows {
		if !slices.Equal(row.Values, want[i]) || row.Line != i+4 || row.Err != nil {
			t.Errorf("row %d: line %d %q err=%v, want line %d %q", i, row.Line, row.Values, row.Err, i+4, want[i])
		}
	}
	if got, want := rows[1].Raw, `100104,6278534940,"O'Neil, Jr",Conall,27533,M`; got != want {
		t.Errorf("Raw = %q, want %q", got, want)
	}
	serial, _ := strconv.ParseFloat(rows[0].Values[4], 64)
	if d, err := excelize.ExcelDateToTime(serial, false); err != nil || !d.Equal(time.Date(1948, 3, 14, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("serial %s is %v (%v), want 1948-03-14", rows[0].Values[4], d, err)
	}
}

func TestOpenErrors(t *testing.T) {
	tests := []struct {
		name     string
		order    []string
		data     sheetData
		sheet    string
		opts     xlsx.Options
		want     error
		contains []string
	}{
		{
			name:     "missing sheet names sheet, book and the sheets it has",
			order:    []string{"Patients", "Notes"},
			data:     sheetData{"Patients": {1: {"id"}}},
			sheet:    "Problems",
			want:     xlsx.ErrSheetNotFound,
			contains: []string{`"Problems"`, "book.xlsx", `"Patients", "Notes"`},
		},
		{
			name:     "empty sheet",
			order:    []string{"Patients"},
			sheet:    "Patients",
			want:     xlsx.ErrNoHeader,
			contains: []string{"Patients@book.xlsx"},
		},
		{
			name:     "header row is blank",
			order:    []string{"Patients"},
			data:     sheetData{"Patients": {1: {"id"}, 3: {"1"}}},
			sheet:    "Patients",
			opts:     xlsx.Options{HeaderRow: 2},
			want:     xlsx.ErrNoHeader,
			contains: []string{"Patients@book.xlsx", "row 2"},
		},
		{
			name:     "header row past the end",
			order:    []string{"Patients"},
			data:     sheetData{"Patients": {1: {"id"}}},
			sheet:    "Patients",
			opts:     xlsx.Options{HeaderRow: 9},
			want:     xlsx.ErrNoHeader,
			contains: []string{"row 9"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeBook(t, "book.xlsx", tt.order, tt.data)
			r, err := xlsx.Open(context.Background(), path, tt.sheet, tt.opts)
			if err == nil {
				r.Close()
				t.Fatalf("Open succeeded, want %v", tt.want)
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("error %v, want %v", err, tt.want)
			}
			for _, s := range tt.contains {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
		})
	}
}

func TestOpenBadFiles(t *testing.T) {
	tests := []struct {
		name string
		file string
		want error // nil: any error naming the file
	}{
		{"missing file", "missing.xlsx", nil},
		{"CSV with an .xlsx name", "not_a_workbook.xlsx", nil},
		{"part declaring 1.7 GB", "damaged_size.xlsx", xlsx.ErrDamagedWorkbook},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := xlsx.Open(context.Background(), filepath.Join("testdata", tt.file), "Patients", xlsx.Options{})
			if err == nil {
				r.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.HasPrefix(err.Error(), tt.file+": ") {
				t.Errorf("error %q does not start with the file name", err)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("error %v, want %v", err, tt.want)
			}
		})
	}
}

func TestLargeSheetStreams(t *testing.T) {
	const n = 5000
	f := excelize.NewFile()
	sw, err := f.NewStreamWriter("Sheet1")
	if err != nil {
		t.Fatal(err)
	}
	if err := sw.SetRow("A1", []any{"id", "name"}); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		cell, _ := excelize.CoordinatesToCellName(1, i+2)
		if err := sw.SetRow(cell, []any{i, fmt.Sprintf("name %d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := sw.Flush(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "big.xlsx")
	if err := f.SaveAs(path); err != nil {
		t.Fatal(err)
	}
	f.Close()

	r, err := xlsx.Open(context.Background(), path, "Sheet1", xlsx.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rows := readAll(t, r)
	if len(rows) != n {
		t.Fatalf("got %d rows, want %d", len(rows), n)
	}
	last := rows[n-1]
	if last.Line != n+1 || last.Values[0] != fmt.Sprint(n-1) {
		t.Errorf("last row: line %d %q", last.Line, last.Values)
	}
}

func TestContextCancelled(t *testing.T) {
	path := writeBook(t, "book.xlsx", []string{"S"}, sheetData{"S": {1: {"a"}, 2: {"1"}, 3: {"2"}}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := xlsx.Open(ctx, path, "S", xlsx.Options{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Open with cancelled context: %v", err)
	}
	r, err := xlsx.Open(context.Background(), path, "S", xlsx.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Next(ctx) {
		t.Error("Next returned true with a cancelled context")
	}
	if !errors.Is(r.Err(), context.Canceled) {
		t.Errorf("Err() = %v", r.Err())
	}
}
