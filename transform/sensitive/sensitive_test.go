package sensitive_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/careindex/careindex/transform/sensitive"
)

func TestLoadGoodList(t *testing.T) {
	t.Parallel()
	path := filepath.Join("testdata", "codes.csv")
	l, err := sensitive.Load(path)
	if err != nil {
		t.Fatalf("Load = %v", err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	if l.Hash != hex.EncodeToString(sum[:]) {
		t.Errorf("Hash = %s, want the file's SHA-256", l.Hash)
	}
	if l.File != path {
		t.Errorf("File = %q, want %q", l.File, path)
	}
	if l.Len() != 5 {
		t.Errorf("Len() = %d, want 5", l.Len())
	}
	tests := []struct {
		name, code, cat string
		ok              bool
	}{
		{"trimmed code and category", "386639001", "termination_of_pregnancy", true},
		{"after a blank line", "105629000", "sexually_transmitted_infection", true},
		{"row with extra fields", "93461009", "gender_related", true},
		{"last row", "52637005", "assisted_fertilisation", true},
		{"not listed", "22298006", "", false},
		{"codes compare exactly", " 8098009", "", false},
		{"empty code", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cat, ok := l.Category(tt.code)
			if cat != tt.cat || ok != tt.ok {
				t.Errorf("Category(%q) = %q, %v; want %q, %v", tt.code, cat, ok, tt.cat, tt.ok)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	t.Parallel()
	l, err := sensitive.Load(filepath.Join(t.TempDir(), "none.csv"))
	if l != nil || !errors.Is(err, sensitive.ErrUnreadable) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load = %v, %v; want ErrUnreadable wrapping ErrNotExist", l, err)
	}
}

func TestRead(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		csv   string
		n     int      // codes on a good list
		codes []string // codes that must be on it
		err   []string // substrings of the error; nil for a good list
	}{
		{name: "good", csv: "code,category\n386639001,termination_of_pregnancy\n8098009,sti\n", n: 2, codes: []string{"386639001", "8098009"}},
		{name: "header only", csv: "code,category\n", n: 0},
		{name: "upper case header", csv: "CODE,CATEGORY\n1,a\n", n: 1, codes: []string{"1"}},
		{name: "duplicate code keeps one", csv: "code,category\n1,a\n1,b\n", n: 1, codes: []string{"1"}},
		{name: "no trailing newline", csv: "code,category\n1,a", n: 1, codes: []string{"1"}},
		{name: "empty input", csv: "", err: []string{"l.csv: header"}},
		{name: "missing category column", csv: "code\n1\n", err: []string{"line 1", "code and category"}},
		{name: "missing code column", csv: "snomed,category\n1,a\n", err: []string{"line 1", "code and category"}},
		{name: "empty code", csv: "code,category\n1,a\n,b\n", err: []string{"l.csv: line 3", "empty code or category"}},
		{name: "blank code", csv: "code,category\n  ,b\n", err: []string{"line 2", "empty code or category"}},
		{name: "empty category", csv: "code,category\n1,\n", err: []string{"line 2", "empty code or category"}},
		{name: "short row", csv: "code,category\n1,a\n2\n", err: []string{"line 3", "missing fields"}},
		{name: "category column last and missing", csv: "category,x,code\na,b\n", err: []string{"line 2", "missing fields"}},
		{name: "bare quote", csv: "code,category\n1\"2,a\n", err: []string{"l.csv"}},
		{name: "bare quote in a later row", csv: "code,category\n1,a\n2,a\"b\n", err: []string{"l.csv"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l, err := sensitive.Read(strings.NewReader(tt.csv), "l.csv")
			if tt.err != nil {
				if l != nil || !errors.Is(err, sensitive.ErrUnreadable) {
					t.Fatalf("Read = %v, %v; want ErrUnreadable", l, err)
				}
				for _, w := range tt.err {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Read = %v", err)
			}
			if l.Len() != tt.n {
				t.Errorf("Len() = %d, want %d", l.Len(), tt.n)
			}
			for _, c := range tt.codes {
				if _, ok := l.Category(c); !ok {
					t.Errorf("Category(%q) not found", c)
				}
			}
			if l.File != "l.csv" || len(l.Hash) != 64 {
				t.Errorf("File, Hash = %q, %q", l.File, l.Hash)
			}
		})
	}
}

func TestNilAndZeroListWithholdNothing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		l    *sensitive.List
	}{
		{"nil", nil},
		{"zero", &sensitive.List{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if cat, ok := tt.l.Category("386639001"); ok || cat != "" {
				t.Errorf("Category = %q, %v; want nothing", cat, ok)
			}
			if tt.l.Len() != 0 {
				t.Errorf("Len() = %d", tt.l.Len())
			}
		})
	}
}

func TestHashStable(t *testing.T) {
	t.Parallel()
	csv := "code,category\n1,a\n2,b\n"
	a, err := sensitive.Read(strings.NewReader(csv), "a.csv")
	if err != nil {
		t.Fatal(err)
	}
	b, err := sensitive.Read(strings.NewReader(csv), "b.csv")
	if err != nil {
		t.Fatal(err)
	}
	c, err := sensitive.Read(strings.NewReader(csv+"3,c\n"), "a.csv")
	if err != nil {
		t.Fatal(err)
	}
	if a.Hash != b.Hash || a.Hash == c.Hash {
		t.Errorf("hashes %s %s %s: want the first two equal, the third different", a.Hash, b.Hash, c.Hash)
	}
}

// FuzzRead checks that Read never panics, fails only with ErrUnreadable and
// never returns a list holding an empty code or category.
func FuzzRead(f *testing.F) {
	raw, err := os.ReadFile(filepath.Join("testdata", "codes.csv"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(raw))
	f.Add("code,category\n1,a\n")
	f.Add("code,category\n,a\n")
	f.Add("code\n1\n")
	f.Add("code,category\n1\"2,a\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, csv string) {
		l, err := sensitive.Read(strings.NewReader(csv), "f.csv")
		if err != nil {
			if l != nil || !errors.Is(err, sensitive.ErrUnreadable) {
				t.Fatalf("Read = %v, %v", l, err)
			}
			return
		}
		if _, ok := l.Category(""); ok {
			t.Fatal("list holds an empty code")
		}
		if len(l.Hash) != 64 {
			t.Fatalf("Hash = %q", l.Hash)
		}
	})
}
