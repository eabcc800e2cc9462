package xlsx

import (
	"archive/zip"
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/xuri/excelize/v2"

	"github.com/careindex/careindex/extractors/rowsource"
)

// Options adjusts how a sheet is read.
type Options struct {
	// HeaderRow is the 1-based spreadsheet row holding the column names.
	// Zero means the first row with a non-blank cell. Rows above the header
	// are ignored.
	HeaderRow int
	// TrimSpace trims leading and trailing white space from every value.
	// Header names are always trimmed.
	TrimSpace bool
	// MaxUnzipBytes bounds the total uncompressed size the workbook's parts
	// may declare. Zero means DefaultMaxUnzipBytes.
	MaxUnzipBytes int64
}

// DefaultMaxUnzipBytes is the uncompressed size limit used when
// Options.MaxUnzipBytes is zero.
const DefaultMaxUnzipBytes = 4 << 30

// maxXMLInMemory is excelize's UnzipXMLSizeLimit: a worksheet or shared
// strings table larger than this (uncompressed) is unzipped to a temporary
// file and read from there, never held in memory. excelize's default (16 MiB)
// is far too high for the shared strings table: below the limit excelize
// decodes the whole table into structures and a map, about 550 bytes of heap
// per distinct string (a 16 MB table of 400,000 strings, as Excel writes for a
// 200,000-row sheet with an address per row, took 230 MB of heap). From a
// temporary file it keeps only an offset index, about 35 bytes per distinct
// string, and reads each string as it is needed; worksheets stream as XML
// either way. At 1 MiB whatever is decoded in memory stays small and reading
// is no slower (BenchmarkBigXLSX200k).
const maxXMLInMemory = 1 << 20

// maxInMemoryPart bounds the declared size of a workbook part that excelize
// reads into memory whole (every part but large worksheets and the shared
// strings table, which it streams through temporary files).
const maxInMemoryPart = 64 << 20

// reader implements rowsource.Reader over one worksheet.
type reader struct {
	file   string // "Sheet@book.xlsx"
	opts   Options
	wb     *excelize.File
	rows   *excelize.Rows
	header []string
	rowNum int // spreadsheet row number of the current iterator position

	row  rowsource.Row
	err  error
	done bool
}

var _ rowsource.Reader = (*reader)(nil)

// Open opens the workbook at path and reads the header of the named sheet.
// Sheet names are matched without regard to case, as Excel does; an empty
// sheet name selects the workbook's first sheet. The caller must Close the
// reader. See the package documentation for how cell values are read.
func Open(ctx context.Context, path, sheet string, opts Options) (rowsource.Reader, error) {
	book := filepath.Base(path)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", book, err)
	}
	if opts.HeaderRow < 0 {
		return nil, fmt.Errorf("%s: header row %d: %w", book, opts.HeaderRow, ErrNoHeader)
	}
	limit := opts.MaxUnzipBytes
	if limit <= 0 {
		limit = DefaultMaxUnzipBytes
	}
	if err := checkParts(path, book); err != nil {
		return nil, err
	}
	wb, err := excelize.OpenFile(path, excelize.Options{RawCellValue: true, UnzipSizeLimit: limit, UnzipXMLSizeLimit: min(limit, maxXMLInMemory)})
	if err != nil {
		return nil, fmt.Errorf("%s: open workbook: %w", book, err)
	}
	r, err := open(wb, book, sheet, opts)
	if err != nil {
		_ = wb.Close()
		return nil, err
	}
	return r, nil
}

// checkParts refuses a workbook whose zip directory declares an implausibly
// large part that excelize would read into memory whole: excelize allocates
// the declared size up front, so a damaged or hostile file could otherwise
// exhaust memory before any check fails.
func checkParts(path, book string) error {
	z, err := zip.OpenReader(path)
	if err != nil {
		return fmt.Errorf("%s: open workbook: %w", book, err)
	}
	defer z.Close()
	for _, f := range z.File {
		name := strings.ToLower(strings.ReplaceAll(f.Name, "\\", "/"))
		if strings.HasPrefix(name, "xl/worksheets/sheet") || name == "xl/sharedstrings.xml" {
			continue
		}
		if f.UncompressedSize64 > maxInMemoryPart {
			return fmt.Errorf("%s: open workbook: part %q declares %d bytes uncompressed, over the %d-byte limit: %w", book, f.Name, f.UncompressedSize64, maxInMemoryPart, ErrDamagedWorkbook)
		}
	}
	return nil
}

func open(wb *excelize.File, book, sheet string, opts Options) (*reader, error) {
	name, err := findSheet(wb, book, sheet)
	if err != nil {
		return nil, err
	}
	r := &reader{file: name + "@" + book, opts: opts, wb: wb}
	r.rows, err = wb.Rows(name)
	if err != nil {
		return nil, fmt.Errorf("%s: read sheet: %w", r.file, err)
	}
	for {
		cells, ok, err := r.nextRow()
		if err != nil {
			_ = r.rows.Close()
			return nil, err
		}
		if !ok {
			_ = r.rows.Close()
			if opts.HeaderRow > 0 {
				return nil, fmt.Errorf("%s: row %d: sheet ends before it: %w", r.file, opts.HeaderRow, ErrNoHeader)
			}
			return nil, fmt.Errorf("%s: sheet is empty: %w", r.file, ErrNoHeader)
		}
		if opts.HeaderRow > 0 && r.rowNum < opts.HeaderRow {
			continue
		}
		if isBlank(cells) {
			if opts.HeaderRow > 0 {
				_ = r.rows.Close()
				return nil, fmt.Errorf("%s: row %d: header row is empty: %w", r.file, r.rowNum, ErrNoHeader)
			}
			continue
		}
		// Drop blank trailing cells (formula cells with an empty result).
		for len(cells) > 0 && strings.TrimSpace(cells[len(cells)-1]) == "" {
			cells = cells[:len(cells)-1]
		}
		r.header = make([]string, len(cells))
		for i, c := range cells {
			r.header[i] = strings.TrimSpace(strings.TrimPrefix(c, "\uFEFF"))
		}
		return r, nil
	}
}

// findSheet resolves the sheet name as the workbook spells it.
func findSheet(wb *excelize.File, book, sheet string) (string, error) {
	sheets := wb.GetSheetList()
	if sheet == "" {
		if len(sheets) == 0 {
			return "", fmt.Errorf("%s: workbook has no sheets: %w", book, ErrSheetNotFound)
		}
		return sheets[0], nil
	}
	for _, s := range sheets {
		if s == sheet {
			return s, nil
		}
	}
	for _, s := range sheets {
		if strings.EqualFold(s, sheet) {
			return s, nil
		}
	}
	quoted := make([]string, len(sheets))
	for i, s := range sheets {
		quoted[i] = fmt.Sprintf("%q", s)
	}
	return "", fmt.Errorf("%s: no sheet %q (the workbook has %s): %w", book, sheet, strings.Join(quoted, ", "), ErrSheetNotFound)
}

// nextRow advances the iterator one spreadsheet row and returns its cells.
// A cell error is returned as err only when the iterator itself failed; a
// row whose cells could not be read comes back with ok and a row error set
// in r.row.Err by the caller via cellErr.
func (r *reader) nextRow() (cells []string, ok bool, err error) {
	if !r.rows.Next() {
		if err := r.rows.Error(); err != nil {
			return nil, false, fmt.Errorf("%s: after row %d: %w", r.file, r.rowNum, err)
		}
		return nil, false, nil
	}
	// excelize's iterator yields every row number in turn, including
	// rows absent from the sheet's XML, so counting calls gives the
	// spreadsheet row number.
	r.rowNum++
	cells, err = r.rows.Columns()
	if err != nil {
		return nil, true, fmt.Errorf("%s: row %d: %w: %w", r.file, r.rowNum, ErrBadCell, err)
	}
	return cells, true, nil
}

// isBlank reports whether every cell is empty or white space.
func isBlank(cells []string) bool {
	for _, c := range cells {
		if strings.TrimSpace(c) != "" {
			return false
		}
	}
	return true
}

// Header returns a copy of the column names.
func (r *reader) Header() []string {
	return append([]string(nil), r.header...)
}

// Next advances to the next non-empty row.
func (r *reader) Next(ctx context.Context) bool {
	if r.done {
		return false
	}
	if err := ctx.Err(); err != nil {
		r.stop(fmt.Errorf("%s: %w", r.file, err))
		return false
	}
	for {
		cells, ok, err := r.nextRow()
		if !ok {
			r.stop(err)
			return false
		}
		if err != nil {
			// The cells of this row could not be read; the iterator
			// carries on at the next row.
			r.row = rowsource.Row{File: r.file, Line: r.rowNum, Values: make([]string, len(r.header)), Raw: rowsource.CSVRecord(cells), Err: err}
			return true
		}
		if isBlank(cells) {
			continue
		}
		r.setRow(cells)
		return true
	}
}

// setRow sets r.row from the cells of the current row.
func (r *reader) setRow(cells []string) {
	values := make([]string, len(r.header))
	copy(values, cells)
	if r.opts.TrimSpace {
		for i, v := range values {
			values[i] = strings.TrimSpace(v)
		}
	}
	r.row = rowsource.Row{File: r.file, Line: r.rowNum, Values: values, Raw: rowsource.CSVRecord(cells)}
	for i := len(r.header); i < len(cells); i++ {
		if strings.TrimSpace(cells[i]) != "" {
			col, _ := excelize.ColumnNumberToName(i + 1)
			r.row.Err = fmt.Errorf("%s: row %d: column %s has a value but the header has %d columns: %w", r.file, r.rowNum, col, len(r.header), ErrFieldCount)
			break
		}
	}
}

func (r *reader) stop(err error) {
	r.done, r.err, r.row = true, err, rowsource.Row{}
}

// Row returns the current row.
func (r *reader) Row() rowsource.Row { return r.row }

// Err returns the error that ended the stream early, if any.
func (r *reader) Err() error { return r.err }

// Close releases the sheet iterator and the workbook, removing any temporary
// files excelize made. It is safe to call more than once.
func (r *reader) Close() error {
	r.done = true
	if r.wb == nil {
		return nil
	}
	rowsErr := r.rows.Close()
	wbErr := r.wb.Close()
	r.wb = nil
	if rowsErr != nil {
		return fmt.Errorf("%s: close: %w", r.file, rowsErr)
	}
	if wbErr != nil {
		return fmt.Errorf("%s: close: %w", r.file, wbErr)
	}
	return nil
}
