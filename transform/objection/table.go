package objection

import (
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/careindex/careindex/extractors/folder"
	"github.com/careindex/careindex/extractors/xlsx"
)

// rowFunc handles one data row; get returns a column's trimmed value.
type rowFunc func(line int, get func(string) string) error

// maxRowErrors bounds how many bad rows one error reports.
const maxRowErrors = 20

func isWorkbook(path string) bool {
	return strings.EqualFold(filepath.Ext(path), ".xlsx")
}

// columnIndex maps lower-cased header names to positions and checks the
// needed columns are there.
func columnIndex(name string, header []string, need []string) (map[string]int, error) {
	col := map[string]int{}
	for i, h := range header {
		col[strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))] = i
	}
	for _, n := range need {
		if _, ok := col[n]; !ok {
			return nil, fmt.Errorf("%s: line 1: column %q missing", name, n)
		}
	}
	return col, nil
}

func getter(col map[string]int, rec []string) func(string) string {
	return func(k string) string {
		if i, ok := col[k]; ok && i < len(rec) {
			return strings.TrimSpace(rec[i])
		}
		return ""
	}
}

// readCSV reads a CSV table, calling fn for each row, and returns the
// SHA-256 of the bytes. Every bad row is reported (up to a limit).
func readCSV(ctx context.Context, r io.Reader, name string, need []string, fn rowFunc) (string, error) {
	h := sha256.New()
	cr := csv.NewReader(io.TeeReader(r, h))
	cr.FieldsPerRecord = -1
	header, err := cr.Read()
	if err != nil {
		return "", fmt.Errorf("%s: header: %w", name, err)
	}
	col, err := columnIndex(name, header, need)
	if err != nil {
		return "", err
	}
	var errs []error
	for {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", fmt.Errorf("%s: %w", name, err)
		}
		line, _ := cr.FieldPos(0)
		if err := fn(line, getter(col, rec)); err != nil {
			errs = append(errs, err)
			if len(errs) >= maxRowErrors {
				break
			}
		}
	}
	if len(errs) > 0 {
		return "", errors.Join(errs...)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// readWorkbook reads the first sheet of an .xlsx workbook as a table.
func readWorkbook(ctx context.Context, path string, need []string, fn rowFunc) (string, error) {
	name := filepath.Base(path)
	hash, err := folder.Hash(ctx, path)
	if err != nil {
		return "", err
	}
	rd, err := xlsx.Open(ctx, path, "", xlsx.Options{TrimSpace: true})
	if err != nil {
		return "", err
	}
	defer rd.Close()
	col, err := columnIndex(name, rd.Header(), need)
	if err != nil {
		return "", err
	}
	var errs []error
	for rd.Next(ctx) {
		row := rd.Row()
		if row.Err != nil {
			errs = append(errs, row.Err)
		} else if err := fn(row.Line, getter(col, row.Values)); err != nil {
			errs = append(errs, err)
		}
		if len(errs) >= maxRowErrors {
			break
		}
	}
	if err := rd.Err(); err != nil {
		return "", err
	}
	if len(errs) > 0 {
		return "", errors.Join(errs...)
	}
	return hash, nil
}
