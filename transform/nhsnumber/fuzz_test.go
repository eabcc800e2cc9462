package nhsnumber_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/careindex/careindex/transform/nhsnumber"
)

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"9434765919", "943 476 5919", "943-476-5919", " 9434765919 ", "",
		"0000000000", "9990000018", "1234567890", "123456789", "12345678901",
		"943476591O", "９４３４７６５９１９", "\u00a0943 476 5919", "----------",
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	for _, r := range readVectors(f, "nhs_numbers.csv") {
		f.Add(r.Col["nhs_number"], false)
	}
	for _, r := range readVectors(f, "nhs_number_formats.csv") {
		f.Add(r.Col["input"], false)
	}
	sentinels := []error{nhsnumber.ErrFormat, nhsnumber.ErrCheckDigit, nhsnumber.ErrPlaceholder, nhsnumber.ErrTestRange}
	f.Fuzz(func(t *testing.T, s string, allowTest bool) {
		opts := nhsnumber.Options{AllowTestRange: allowTest}
		got, err := nhsnumber.Parse(s, opts)
		if err != nil {
			if got != "" {
				t.Fatalf("Parse(%q) = %q with error %v", s, got, err)
			}
			n := 0
			for _, e := range sentinels {
				if errors.Is(err, e) {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("Parse(%q) error %v matches %d sentinels, want 1", s, err, n)
			}
			if nhsnumber.Valid(s) && errors.Is(err, nhsnumber.ErrCheckDigit) {
				t.Fatalf("Valid(%q) but Parse says %v", s, err)
			}
			return
		}
		if !nhsnumber.Valid(got) {
			t.Fatalf("Parse(%q) = %q, not Valid", s, got)
		}
		if strings.Count(got, got[:1]) == 10 {
			t.Fatalf("Parse(%q) = placeholder %q", s, got)
		}
		if !allowTest && strings.HasPrefix(got, "999") {
			t.Fatalf("Parse(%q) = test-range %q", s, got)
		}
		if again, err := nhsnumber.Parse(got, opts); err != nil || again != got {
			t.Fatalf("not idempotent: Parse(%q) = %q, %v", got, again, err)
		}
		formatted := nhsnumber.Format(got)
		if len(formatted) != 12 {
			t.Fatalf("Format(%q) = %q", got, formatted)
		}
		if back, err := nhsnumber.Parse(formatted, opts); err != nil || back != got {
			t.Fatalf("Parse(Format(%q)) = %q, %v", got, back, err)
		}
		if !allowTest {
			if loose, err := nhsnumber.Parse(s, nhsnumber.Options{AllowTestRange: true}); err != nil || loose != got {
				t.Fatalf("AllowTestRange refuses what the strict policy accepts: %q, %v", loose, err)
			}
		}
	})
}
