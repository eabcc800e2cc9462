package rowsource_test

import (
	"encoding/csv"
	"strings"
	"testing"

	"github.com/careindex/careindex/extractors/rowsource"
)

// TestCSVRecord checks the quoting, and that encoding/csv reads every
// record back as the values it was made from.
func TestCSVRecord(t *testing.T) {
	tests := []struct {
		name   string
		values []string
		want   string
	}{
		{"plain", []string{"D81001", "SMITH", "1980-01-02"}, "D81001,SMITH,1980-01-02"},
		{"empty values", []string{"", "A", ""}, ",A,"},
		{"comma", []string{"1 High St, Ely"}, `"1 High St, Ely"`},
		{"quote", []string{`O"Brien`}, `"O""Brien"`},
		{"line break", []string{"a\r\nb", "c\nd"}, "\"a\r\nb\",\"c\nd\""},
		{"edge spaces", []string{" lead", "trail ", "in side"}, `" lead","trail ",in side`},
		{"no values", nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := rowsource.CSVRecord(tc.values)
			if got != tc.want {
				t.Fatalf("CSVRecord(%q) = %q, want %q", tc.values, got, tc.want)
			}
			if len(tc.values) == 0 {
				return
			}
			r := csv.NewReader(strings.NewReader(got))
			r.FieldsPerRecord = -1
			back, err := r.Read()
			if err != nil {
				t.Fatal(err)
			}
			for i := range back {
				back[i] = strings.ReplaceAll(back[i], "\r\n", "\n") // encoding/csv folds CRLF in quoted fields
			}
			for i, v := range tc.values {
				if want := strings.ReplaceAll(v, "\r\n", "\n"); i >= len(back) || back[i] != want {
					t.Errorf("read back %q, want %q", back, tc.values)
					break
				}
			}
		})
	}
}
