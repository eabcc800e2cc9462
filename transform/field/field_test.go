package field_test

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/careindex/careindex/transform/field"
)

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func TestSex(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{name: "M", in: "M", want: field.SexMale},
		{name: "m lower", in: "m", want: field.SexMale},
		{name: "Male", in: "Male", want: field.SexMale},
		{name: "MALE padded", in: "  MALE ", want: field.SexMale},
		{name: "1", in: "1", want: field.SexMale},
		{name: "F", in: "F", want: field.SexFemale},
		{name: "female", in: "female", want: field.SexFemale},
		{name: "2", in: "2", want: field.SexFemale},
		{name: "9", in: "9", want: field.SexUnknown},
		{name: "U", in: "U", want: field.SexUnknown},
		{name: "Unknown", in: "Unknown", want: field.SexUnknown},
		{name: "not known", in: "Not Known", want: field.SexUnknown},
		{name: "not known with odd spacing", in: " not \t known ", want: field.SexUnknown},
		{name: "0", in: "0", want: field.SexUnknown},
		{name: "empty", in: "", want: field.SexUnknown},
		{name: "white space only", in: "  ", want: field.SexUnknown},
		{name: "I", in: "I", want: field.SexOther},
		{name: "Indeterminate", in: "INDETERMINATE", want: field.SexOther},
		{name: "X", in: "x", want: field.SexOther},
		{name: "Other", in: "Other", want: field.SexOther},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := field.Sex(tt.in)
			if err != nil || got != tt.want {
				t.Fatalf("Sex(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestSexRejects(t *testing.T) {
	for _, tt := range []struct{ name, in string }{
		{name: "unmapped letter", in: "N"},
		{name: "unmapped digit", in: "3"},
		{name: "word", in: "woman"},
		{name: "notknown run together", in: "notknown"},
		{name: "misplaced name column", in: "SMITH"},
		{name: "Turkish dotless i not folded", in: "\u0131"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := field.Sex(tt.in)
			if !errors.Is(err, field.ErrSex) || got != "" {
				t.Fatalf("Sex(%q) = %q, %v; want ErrSex", tt.in, got, err)
			}
			if contains(err.Error(), tt.in) {
				t.Fatalf("error %q repeats the input", err)
			}
		})
	}
}

func TestODSCode(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
		err  error
	}{
		{name: "trust", in: "RR8", want: "RR8"},
		{name: "practice lower case padded", in: " v81999 ", want: "V81999"},
		{name: "site", in: "RR813", want: "RR813"},
		{name: "ten characters", in: "ABCDE12345", want: "ABCDE12345"},
		{name: "empty", in: "", err: field.ErrEmpty},
		{name: "white space only", in: " \t", err: field.ErrEmpty},
		{name: "too short", in: "R1", err: field.ErrODSCode},
		{name: "too long", in: "ABCDE123456", err: field.ErrODSCode},
		{name: "inner space", in: "V81 999", err: field.ErrODSCode},
		{name: "dash", in: "RR8-01", err: field.ErrODSCode},
		{name: "non-ASCII letter", in: "RRÉ", err: field.ErrODSCode},
		{name: "full-width", in: "ＲＲ８", err: field.ErrODSCode},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := field.ODSCode(tt.in)
			if tt.err != nil {
				if !errors.Is(err, tt.err) || got != "" {
					t.Fatalf("ODSCode(%q) = %q, %v; want error %v", tt.in, got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ODSCode(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

// nameCase is one line of testdata/names.txt.
type nameCase struct {
	line                 int
	name                 string
	in, want, wantDigits string
}

// readNameCases reads testdata/names.txt: tab-separated case name, input,
// Name(input) and NameWithoutDigits(input), the last three as Go quoted
// strings so that white space and invisible characters show. Lines that
// are blank or start with # are skipped.
func readNameCases(tb testing.TB) []nameCase {
	tb.Helper()
	f, err := os.Open(filepath.Join("testdata", "names.txt"))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var cases []nameCase
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		cols := strings.Split(line, "\t")
		if len(cols) != 4 {
			tb.Fatalf("names.txt:%d: %d columns, want 4", n, len(cols))
		}
		c := nameCase{line: n, name: cols[0]}
		for i, dst := range []*string{&c.in, &c.want, &c.wantDigits} {
			if *dst, err = strconv.Unquote(cols[i+1]); err != nil {
				tb.Fatalf("names.txt:%d: column %d: %v", n, i+2, err)
			}
		}
		cases = append(cases, c)
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	if len(cases) == 0 {
		tb.Fatal("names.txt: no cases")
	}
	return cases
}

func TestName(t *testing.T) {
	for _, c := range readNameCases(t) {
		t.Run(c.name, func(t *testing.T) {
			if got := field.Name(c.in); got != c.want {
				t.Errorf("names.txt:%d: Name(%q) = %q, want %q", c.line, c.in, got, c.want)
			}
			if got := field.NameWithoutDigits(c.in); got != c.wantDigits {
				t.Errorf("names.txt:%d: NameWithoutDigits(%q) = %q, want %q", c.line, c.in, got, c.wantDigits)
			}
		})
	}
}
