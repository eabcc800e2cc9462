package manifest

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/careindex/careindex/extractors/delimited"
	"github.com/careindex/careindex/extractors/rowsource"
	"github.com/careindex/careindex/extractors/xlsx"
)

// Counter counts the data rows of delivered files the way the pipeline will
// read them, for Verify's count callback. A file whose name ends in .xlsx or
// .xlsm (any case) is read as a workbook with package xlsx (Sheet and XLSX);
// any other file with package delimited (Delimited). Set them from the
// source's format: the zero value counts comma-separated UTF-8 and the first
// sheet of a workbook.
//
// A data row is what the reader yields after the header: blank lines and
// empty spreadsheet rows are not counted; rows the reader marks as bad (a
// wrong number of fields, bad quoting) are, as they are rows of the delivery.
type Counter struct {
	Delimited delimited.Options
	Sheet     string
	XLSX      xlsx.Options
}

// IsWorkbook reports whether name is read as an Excel workbook.
func IsWorkbook(name string) bool {
	ext := strings.ToLower(filepath.Ext(name))
	return ext == ".xlsx" || ext == ".xlsm"
}

// CountFile counts the data rows of the file at path.
func (c Counter) CountFile(ctx context.Context, path string) (int, error) {
	if IsWorkbook(path) {
		r, err := xlsx.Open(ctx, path, c.Sheet, c.XLSX)
		if err != nil {
			return 0, err
		}
		return CountRows(ctx, r)
	}
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("%s: open: %w", filepath.Base(path), err)
	}
	defer f.Close()
	return c.CountReader(ctx, f, filepath.Base(path))
}

// CountReader counts the data rows of delimited text read from r; name names
// it in errors. A workbook cannot be read from a stream (it needs random
// access): use CountFile on a spooled copy.
func (c Counter) CountReader(ctx context.Context, r io.Reader, name string) (int, error) {
	if IsWorkbook(name) {
		return 0, fmt.Errorf("%s: a workbook must be counted from a file (CountFile), not a stream", name)
	}
	rd, err := delimited.New(r, name, c.Delimited)
	if err != nil {
		return 0, err
	}
	return CountRows(ctx, rd)
}

// InDir returns a count callback for Verify that counts the files in dir.
func (c Counter) InDir(ctx context.Context, dir string) func(name string) (int, error) {
	return func(name string) (int, error) {
		return c.CountFile(ctx, filepath.Join(dir, name))
	}
}

// CountRows reads r to the end, closes it, and returns the number of rows it
// yielded, or the error that stopped it.
func CountRows(ctx context.Context, r rowsource.Reader) (int, error) {
	n := 0
	for r.Next(ctx) {
		n++
	}
	err := r.Err()
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, err
	}
	return n, nil
}
