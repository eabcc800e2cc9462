package xlsx_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/careindex/careindex/extractors/xlsx"
)

// FuzzOpen feeds damaged workbooks to Open: a bad delivery must give an
// error, never a panic or a row of the wrong width.
func FuzzOpen(f *testing.F) {
	seed, err := os.ReadFile(filepath.Join("testdata", "patients_20261124.xlsx"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed, "Patients")
	damaged, err := os.ReadFile(filepath.Join("testdata", "damaged_size.xlsx"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(damaged, "Patients")
	f.Add(seed, "")
	f.Add([]byte("PK\x03\x04"), "Sheet1")
	f.Fuzz(func(t *testing.T, book []byte, sheet string) {
		path := filepath.Join(t.TempDir(), "fuzz.xlsx")
		if err := os.WriteFile(path, book, 0o600); err != nil {
			t.Fatal(err)
		}
		r, err := xlsx.Open(context.Background(), path, sheet, xlsx.Options{})
		if err != nil {
			return
		}
		defer r.Close()
		width := len(r.Header())
		for r.Next(context.Background()) {
			if got := len(r.Row().Values); got != width {
				t.Fatalf("row %d: %d values, header has %d", r.Row().Line, got, width)
			}
		}
	})
}
