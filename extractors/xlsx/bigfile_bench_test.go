package xlsx_test

import (
	"archive/zip"
	"bufio"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"testing"
	"time"

	"github.com/xuri/excelize/v2"

	"github.com/careindex/careindex/extractors/xlsx"
	"github.com/careindex/careindex/fixtures/memsample"
)

// BenchmarkBigXLSX200k reads a 200,000-row, ten-column workbook and reports
// rows per second and peak memory while reading:
//
//	go test -run '^$' -bench BigXLSX200k -benchtime 1x ./extractors/xlsx
//
// Two workbooks, each written once to a temporary folder before the timer
// starts:
//
//   - stream-writer: written with excelize's StreamWriter, whose text cells
//     are inline strings;
//   - shared-strings: laid out as Excel writes a workbook, every text cell a
//     reference into xl/sharedStrings.xml, with an address and a telephone
//     number unique to each row, so that the table is larger than excelize's
//     16 MB in-memory limit for a part.
//
// Metrics: rows/s; peak-heap-MB, the most heap held by live and not yet
// collected objects at any moment (runtime/metrics, sampled every
// millisecond); peak-runtime-MB, the most memory the Go runtime held from the
// OS; file-MB, the workbook's size; xml-MB, the size of its parts
// uncompressed.
//
// Reading the stream-writer workbook needs a few MB whatever the number of
// rows. A shared strings table costs about 40 bytes of live heap per
// distinct string (excelize's offset index; 412,000 strings here), which the
// garbage collector lets grow to about twice that. The benchmark fails if
// the heap ever holds more than 96 MB: decoding the table in memory, as
// excelize does by default for one of up to 16 MiB, took 230 MB.
func BenchmarkBigXLSX200k(b *testing.B) {
	const rows = 200_000
	for _, layout := range []struct {
		name  string
		write func(b *testing.B, path string, rows int)
	}{
		{"stream-writer", writeStreamWorkbook},
		{"shared-strings", writeSharedStringsWorkbook},
	} {
		b.Run(layout.name, func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "patients_20261124.xlsx")
			layout.write(b, path, rows)
			size, xmlSize := workbookSizes(b, path)
			ctx := context.Background()
			b.SetBytes(size)
			// Collect the generator's garbage (twice: the first leaves sync.Pool's
			// victim caches) and return it to the OS, so the peaks are the reader's.
			runtime.GC()
			debug.FreeOSMemory()
			sampler := memsample.Start(time.Millisecond)
			for b.Loop() {
				r, err := xlsx.Open(ctx, path, "Patients", xlsx.Options{})
				if err != nil {
					b.Fatal(err)
				}
				n := 0
				for r.Next(ctx) {
					if err := r.Row().Err; err != nil {
						b.Fatal(err)
					}
					n++
				}
				if err := r.Err(); err != nil {
					b.Fatal(err)
				}
				if err := r.Close(); err != nil {
					b.Fatal(err)
				}
				if n != rows {
					b.Fatalf("read %d rows, want %d", n, rows)
				}
			}
			peaks := sampler.Stop()
			heap, total := peaks.Heap, peaks.Total
			b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
			b.ReportMetric(float64(heap)/1e6, "peak-heap-MB")
			b.ReportMetric(float64(total)/1e6, "peak-runtime-MB")
			b.ReportMetric(float64(size)/1e6, "file-MB")
			b.ReportMetric(float64(xmlSize)/1e6, "xml-MB")
			if heap > 96<<20 {
				b.Errorf("peak heap %d bytes reading a workbook of %d bytes (%d uncompressed): not streaming", heap, size, xmlSize)
			}
		})
	}
}

var benchHeader = []string{"PatientID", "NHSNo", "Surname", "Forename", "DOB", "Gender", "Postcode", "Address", "GPPractice", "Phone"}

var (
	benchSurnames  = []string{"Smith", "Jones", "Williams", "Taylor", "Brown", "Davies", "Evans", "Wilson", "Thomas", "O'Neil", "D'Arcy", "Zoë-Ann"}
	benchForenames = []string{"Oliver", "Amelia", "George", "Isla", "Harry", "Ava", "Noah", "Mia", "Jack", "Sophia", "Hattie"}
)

// benchRow returns data row i: numbers for the id, NHS number and date of
// birth (an Excel serial), text for the rest.
func benchRow(i int) []any {
	return []any{
		1_000_000 + i,
		4_000_000_000 + i*7,
		benchSurnames[i%len(benchSurnames)] + strconv.Itoa(i%997),
		benchForenames[i%len(benchForenames)],
		11_000 + i%30_000,
		string("MFU"[i%3]),
		"PE" + strconv.Itoa(1+i%30) + " " + strconv.Itoa(i%10) + "AQ",
		"Flat " + strconv.Itoa(i%7) + ", " + strconv.Itoa(i) + " High Street, Riverside",
		"D8100" + strconv.Itoa(i%10),
		"01632 " + strconv.Itoa(100_000+i),
	}
}

func writeStreamWorkbook(b *testing.B, path string, rows int) {
	b.Helper()
	f := excelize.NewFile()
	defer f.Close()
	if err := f.SetSheetName("Sheet1", "Patients"); err != nil {
		b.Fatal(err)
	}
	sw, err := f.NewStreamWriter("Patients")
	if err != nil {
		b.Fatal(err)
	}
	header := make([]any, len(benchHeader))
	for i, h := range benchHeader {
		header[i] = h
	}
	if err := sw.SetRow("A1", header); err != nil {
		b.Fatal(err)
	}
	for i := range rows {
		cell, _ := excelize.CoordinatesToCellName(1, i+2)
		if err := sw.SetRow(cell, benchRow(i)); err != nil {
			b.Fatal(err)
		}
	}
	if err := sw.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := f.SaveAs(path); err != nil {
		b.Fatal(err)
	}
}

const (
	nsMain = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
	nsRel  = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
	nsPkg  = "http://schemas.openxmlformats.org/package/2006/relationships"
)

// writeSharedStringsWorkbook writes the parts of a workbook by hand, as
// Excel lays them out: text cells index a shared strings table.
func writeSharedStringsWorkbook(b *testing.B, path string, rows int) {
	b.Helper()
	out, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	zw := zip.NewWriter(out)
	part := func(name, content string) {
		w, err := zw.Create(name)
		if err != nil {
			b.Fatal(err)
		}
		io.WriteString(w, xml.Header+content)
	}
	part("[Content_Types].xml", `<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">`+
		`<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>`+
		`<Default Extension="xml" ContentType="application/xml"/>`+
		`<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>`+
		`<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>`+
		`<Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>`+
		`</Types>`)
	part("_rels/.rels", `<Relationships xmlns="`+nsPkg+`">`+
		`<Relationship Id="rId1" Type="`+nsRel+`/officeDocument" Target="xl/workbook.xml"/></Relationships>`)
	part("xl/workbook.xml", `<workbook xmlns="`+nsMain+`" xmlns:r="`+nsRel+`">`+
		`<sheets><sheet name="Patients" sheetId="1" r:id="rId1"/></sheets></workbook>`)
	part("xl/_rels/workbook.xml.rels", `<Relationships xmlns="`+nsPkg+`">`+
		`<Relationship Id="rId1" Type="`+nsRel+`/worksheet" Target="worksheets/sheet1.xml"/>`+
		`<Relationship Id="rId2" Type="`+nsRel+`/sharedStrings" Target="sharedStrings.xml"/></Relationships>`)

	index := map[string]int{}
	var sst []string
	cells := 0
	ref := func(s string) int {
		cells++
		if i, ok := index[s]; ok {
			return i
		}
		index[s] = len(sst)
		sst = append(sst, s)
		return len(sst) - 1
	}
	zf, err := zw.Create("xl/worksheets/sheet1.xml")
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(zf, 1<<20)
	w.WriteString(xml.Header + `<worksheet xmlns="` + nsMain + `" xmlns:r="` + nsRel + `"><dimension ref="A1:J` + strconv.Itoa(rows+1) + `"/><sheetData>`)
	writeRow := func(r int, values []any) {
		fmt.Fprintf(w, `<row r="%d">`, r)
		for c, v := range values {
			col, _ := excelize.ColumnNumberToName(c + 1)
			switch v := v.(type) {
			case string:
				fmt.Fprintf(w, `<c r="%s%d" t="s"><v>%d</v></c>`, col, r, ref(v))
			default:
				fmt.Fprintf(w, `<c r="%s%d"><v>%v</v></c>`, col, r, v)
			}
		}
		w.WriteString(`</row>`)
	}
	header := make([]any, len(benchHeader))
	for i, h := range benchHeader {
		header[i] = h
	}
	writeRow(1, header)
	for i := range rows {
		writeRow(i+2, benchRow(i))
	}
	w.WriteString(`</sheetData></worksheet>`)
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}

	zf, err = zw.Create("xl/sharedStrings.xml")
	if err != nil {
		b.Fatal(err)
	}
	w = bufio.NewWriterSize(zf, 1<<20)
	fmt.Fprintf(w, xml.Header+`<sst xmlns="%s" count="%d" uniqueCount="%d">`, nsMain, cells, len(sst))
	for _, s := range sst {
		w.WriteString("<si><t>")
		xml.EscapeText(w, []byte(s))
		w.WriteString("</t></si>")
	}
	w.WriteString("</sst>")
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		b.Fatal(err)
	}
	if err := out.Close(); err != nil {
		b.Fatal(err)
	}
}

// workbookSizes returns a workbook's size and the uncompressed size of its
// parts.
func workbookSizes(b *testing.B, path string) (size, xmlSize int64) {
	b.Helper()
	st, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	z, err := zip.OpenReader(path)
	if err != nil {
		b.Fatal(err)
	}
	defer z.Close()
	for _, f := range z.File {
		xmlSize += int64(f.UncompressedSize64)
	}
	return st.Size(), xmlSize
}
