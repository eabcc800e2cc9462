package xlsx_test

import (
	"archive/zip"
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/xuri/excelize/v2"

	"github.com/careindex/careindex/extractors/xlsx"
)

// TestLargeSharedStringsTable reads a workbook whose shared strings table is
// larger than the size up to which excelize decodes it in memory, so that the
// strings come from excelize's temporary file, and checks every value,
// including ones that need escaping, rich text and surrounding blanks.
func TestLargeSharedStringsTable(t *testing.T) {
	const n = 20_000
	f := excelize.NewFile()
	defer f.Close()
	set := func(cell string, v any) {
		t.Helper()
		if err := f.SetCellValue("Sheet1", cell, v); err != nil {
			t.Fatal(err)
		}
	}
	set("A1", "PatientID")
	set("B1", "Address")
	set("C1", "Note")
	special := []string{"O'Neil & Sons <Ltd>", " leading and trailing ", "Zoë D’Arcy", "line\nbreak", `quote "x"`}
	want := make([][]string, n)
	for i := range n {
		r := strconv.Itoa(i + 2)
		addr := fmt.Sprintf("Flat %d, %d High Street, Riverside, PE%d %dAQ", i%7, i, 1+i%30, i%10)
		note := special[i%len(special)] + " " + strconv.Itoa(i)
		set("A"+r, strconv.Itoa(100000+i)) // text: a shared string too
		set("B"+r, addr)
		set("C"+r, note)
		want[i] = []string{strconv.Itoa(100000 + i), addr, note}
	}
	rich := []excelize.RichTextRun{{Text: "bold "}, {Text: "plain", Font: &excelize.Font{Italic: true}}}
	if err := f.SetCellRichText("Sheet1", "C2", rich); err != nil {
		t.Fatal(err)
	}
	want[0][2] = "bold plain"
	path := filepath.Join(t.TempDir(), "big_sst.xlsx")
	if err := f.SaveAs(path); err != nil {
		t.Fatal(err)
	}

	z, err := zip.OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	var sst uint64
	for _, zf := range z.File {
		if strings.EqualFold(zf.Name, "xl/sharedStrings.xml") {
			sst = zf.UncompressedSize64
		}
	}
	z.Close()
	if sst <= 1<<20 {
		t.Fatalf("shared strings table is %d bytes: too small to test reading it from a temporary file", sst)
	}

	ctx := context.Background()
	r, err := xlsx.Open(ctx, path, "", xlsx.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	i := 0
	for r.Next(ctx) {
		row := r.Row()
		if row.Err != nil {
			t.Fatalf("row %d: %v", row.Line, row.Err)
		}
		if i < n && (row.Line != i+2 || strings.Join(row.Values, "|") != strings.Join(want[i], "|")) {
			t.Fatalf("row %d: line %d %q, want %q", i, row.Line, row.Values, want[i])
		}
		i++
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	if i != n {
		t.Errorf("read %d rows, want %d", i, n)
	}
}
