package objection_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/careindex/careindex/transform/objection"
)

// Valid NHS numbers (Modulus 11).
const (
	nhsA = "9434765919"
	nhsB = "5002977278"
	nhsC = "7931098021"
	nhsD = "7408594116"
	nhsE = "4010232137"
	nhsF = "9434765870"
)

const header = "nhs_number,scope,recorded,withdrawn\n"

// now is the run time of most tests.
var now = time.Date(2026, time.June, 1, 12, 0, 0, 0, time.UTC)

func read(t testing.TB, csv string, at time.Time) (*objection.Register, error) {
	t.Helper()
	return objection.Read(context.Background(), strings.NewReader(csv), "reg.csv", at)
}

func mustRead(t testing.TB, csv string, at time.Time) *objection.Register {
	t.Helper()
	reg, err := read(t, csv, at)
	if err != nil {
		t.Fatalf("Read = %v", err)
	}
	return reg
}

func TestReadGolden(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join("testdata", "register.csv"))
	if err != nil {
		t.Fatal(err)
	}
	reg, err := objection.Read(context.Background(), strings.NewReader(string(raw)), "register.csv", now)
	if err != nil {
		t.Fatalf("Read(register.csv) = %v", err)
	}
	if reg.File != "register.csv" {
		t.Errorf("File = %q", reg.File)
	}
	sum := sha256.Sum256(raw)
	if reg.Hash != hex.EncodeToString(sum[:]) {
		t.Errorf("Hash = %s, want the SHA-256 of the file", reg.Hash)
	}
	if reg.Rows() != 7 {
		t.Errorf("Rows() = %d, want 7", reg.Rows())
	}
	if reg.InForce() != 4 {
		t.Errorf("InForce() = %d, want 4", reg.InForce())
	}
	if got, want := reg.NHSNumbers(), []string{nhsB, nhsC, nhsF, nhsA}; !slices.Equal(got, want) {
		t.Errorf("NHSNumbers() = %v, want %v", got, want)
	}
	tests := []struct {
		name string
		nhs  string
		want objection.Decision
	}{
		{"all, BOM and CRLF header", nhsA, objection.Decision{WithholdAll: true}},
		{"one org, spaced NHS number; the same-day withdrawn row does not count", nhsB, objection.Decision{Orgs: []string{"RGT"}}},
		{"several orgs, lower case and spaces", nhsC, objection.Decision{Orgs: []string{"LA505", "RGT"}}},
		{"withdrawn", nhsD, objection.Decision{}},
		{"recorded in the future", nhsE, objection.Decision{}},
		{"recorded today, dashed NHS number, ALL", nhsF, objection.Decision{WithholdAll: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := reg.Decide(tt.nhs); !equalDecision(got, tt.want) {
				t.Errorf("Decide(%s) = %+v, want %+v", tt.nhs, got, tt.want)
			}
		})
	}
}

func equalDecision(a, b objection.Decision) bool {
	return a.WithholdAll == b.WithholdAll && slices.Equal(a.Orgs, b.Orgs)
}

func TestReadScopes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		row   string
		at    time.Time
		want  objection.Decision
		force bool
	}{
		{name: "all", row: nhsA + ",all,2025-01-01,", at: now, want: objection.Decision{WithholdAll: true}, force: true},
		{name: "all upper case", row: nhsA + ",ALL,2025-01-01,", at: now, want: objection.Decision{WithholdAll: true}, force: true},
		{name: "one org", row: nhsA + ",RGT,2025-01-01,", at: now, want: objection.Decision{Orgs: []string{"RGT"}}, force: true},
		{name: "one org lower case", row: nhsA + ",d81001,2025-01-01,", at: now, want: objection.Decision{Orgs: []string{"D81001"}}, force: true},
		{name: "several orgs sorted", row: nhsA + ",RYV;LA505;RGT,2025-01-01,", at: now, want: objection.Decision{Orgs: []string{"LA505", "RGT", "RYV"}}, force: true},
		{name: "several orgs with blanks", row: nhsA + ",\" RGT ;; RYV ;\",2025-01-01,", at: now, want: objection.Decision{Orgs: []string{"RGT", "RYV"}}, force: true},
		{name: "withdrawn before now", row: nhsA + ",all,2025-01-01,2026-05-31", at: now},
		{name: "withdrawn today", row: nhsA + ",all,2025-01-01,2026-06-01", at: now},
		{name: "withdrawal still ahead", row: nhsA + ",all,2025-01-01,2026-06-02", at: now, want: objection.Decision{WithholdAll: true}, force: true},
		{name: "recorded in the future", row: nhsA + ",all,2026-06-02,", at: now},
		{name: "recorded at midnight today", row: nhsA + ",all,2026-06-01,", at: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC), want: objection.Decision{WithholdAll: true}, force: true},
		{name: "spaces around fields", row: " " + nhsA + " , all , 2025-01-01 , ", at: now, want: objection.Decision{WithholdAll: true}, force: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			reg := mustRead(t, header+tt.row+"\n", tt.at)
			if reg.Rows() != 1 {
				t.Errorf("Rows() = %d, want 1", reg.Rows())
			}
			wantInForce := 0
			if tt.force {
				wantInForce = 1
			}
			if reg.InForce() != wantInForce {
				t.Errorf("InForce() = %d, want %d", reg.InForce(), wantInForce)
			}
			got := reg.Decide(nhsA)
			if !equalDecision(got, tt.want) {
				t.Errorf("Decide = %+v, want %+v", got, tt.want)
			}
			if got.Any() != tt.force {
				t.Errorf("Any() = %v, want %v", got.Any(), tt.force)
			}
		})
	}
}

func TestReadMalformed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		csv  string
		want []string // substrings of the error
	}{
		{name: "bad check digit", csv: header + nhsA + ",all,2025-01-01,\n9434765918,all,2025-01-01,\n", want: []string{"reg.csv: line 3: nhs_number"}},
		{name: "letters in NHS number", csv: header + "94347X5919,all,2025-01-01,\n", want: []string{"line 2: nhs_number"}},
		{name: "short NHS number", csv: header + "943476591,all,2025-01-01,\n", want: []string{"line 2: nhs_number"}},
		{name: "empty NHS number", csv: header + ",all,2025-01-01,\n", want: []string{"line 2: nhs_number"}},
		{name: "placeholder NHS number", csv: header + "1111111111,all,2025-01-01,\n", want: []string{"line 2: nhs_number"}},
		{name: "test range NHS number", csv: header + "9990000018,all,2025-01-01,\n", want: []string{"line 2: nhs_number"}},
		{name: "empty scope", csv: header + nhsA + ",,2025-01-01,\n", want: []string{"line 2: scope: empty"}},
		{name: "scope of separators only", csv: header + nhsA + ",;;,2025-01-01,\n", want: []string{"line 2: scope: no ODS code"}},
		{name: "ODS code with a dash", csv: header + nhsA + ",R-T,2025-01-01,\n", want: []string{"line 2: scope:", `"R-T" is not an ODS code`}},
		{name: "ODS code too short", csv: header + nhsA + ",RGT;AB,2025-01-01,\n", want: []string{"line 2: scope:", `"AB"`}},
		{name: "ODS code too long", csv: header + nhsA + ",ABCDEFGHIJK,2025-01-01,\n", want: []string{"line 2: scope:"}},
		{name: "recorded not ISO", csv: header + nhsA + ",all,01/03/2025,\n", want: []string{"line 2: recorded:"}},
		{name: "recorded empty", csv: header + nhsA + ",all,,\n", want: []string{"line 2: recorded:"}},
		{name: "recorded impossible", csv: header + nhsA + ",all,2025-02-30,\n", want: []string{"line 2: recorded:"}},
		{name: "withdrawn not ISO", csv: header + nhsA + ",all,2025-01-01,soon\n", want: []string{"line 2: withdrawn:"}},
		{name: "withdrawn before recorded", csv: header + nhsA + ",all,2025-01-01,2024-12-31\n", want: []string{"line 2: withdrawn: before recorded"}},
		{name: "short row", csv: header + nhsA + ",all\n", want: []string{"line 2: recorded:"}},
		{name: "missing column", csv: "nhs_number,scope,recorded\n" + nhsA + ",all,2025-01-01\n", want: []string{"reg.csv: line 1:", `"withdrawn" missing`}},
		{name: "missing nhs_number column", csv: "nhs,scope,recorded,withdrawn\n" + nhsA + ",all,2025-01-01,\n", want: []string{"line 1:", `"nhs_number" missing`}},
		{name: "empty file", csv: "", want: []string{"reg.csv: header"}},
		{name: "unterminated quote in a later field", csv: header + nhsA + ",\"all,2025-01-01,\n", want: []string{"reg.csv"}},
		{name: "line counted after a blank line", csv: header + nhsA + ",all,2025-01-01,\n\n" + nhsB + ",,2025-01-01,\n", want: []string{"line 4: scope"}},
		{name: "every bad row reported", csv: string(mustReadFile(t, "bad_rows.csv")), want: []string{
			"bad_rows.csv: line 3: nhs_number", "line 4: scope: empty", "line 5: scope:", "line 6: recorded:", "line 7: withdrawn: before recorded"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			name := "reg.csv"
			if strings.HasPrefix(tt.name, "every") {
				name = "bad_rows.csv"
			}
			reg, err := objection.Read(context.Background(), strings.NewReader(tt.csv), name, now)
			if reg != nil || !errors.Is(err, objection.ErrUnreadable) {
				t.Fatalf("Read = %v, %v; want ErrUnreadable", reg, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func mustReadFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestReadBadQuoteInFirstField: a CSV syntax error in the first field of a
// row must fail closed with ErrUnreadable, not panic.
func TestReadBadQuoteInFirstField(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, csv string
	}{
		{"bare quote", header + "94\"34765919,all,2025-01-01,\n"},
		{"unterminated quote", header + "\"" + nhsA + ",all,2025-01-01,\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("Read panicked: %v", r)
				}
			}()
			if _, err := read(t, tt.csv, now); !errors.Is(err, objection.ErrUnreadable) {
				t.Errorf("Read = %v, want ErrUnreadable", err)
			}
		})
	}
}

func TestReadErrorsDoNotRepeatNHSNumbers(t *testing.T) {
	t.Parallel()
	_, err := read(t, header+"9434765918,all,2025-01-01,\n"+nhsB+",R-T,2025-01-01,\n", now)
	if err == nil {
		t.Fatal("Read succeeded")
	}
	for _, n := range []string{"9434765918", nhsB} {
		if strings.Contains(err.Error(), n) {
			t.Errorf("error %q repeats the NHS number %s", err, n)
		}
	}
}

func TestReadCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := objection.Read(ctx, strings.NewReader(header+nhsA+",all,2025-01-01,\n"), "reg.csv", now)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Read = %v, want context.Canceled", err)
	}
}

func TestReadHashStable(t *testing.T) {
	t.Parallel()
	csv := header + nhsA + ",all,2025-01-01,\n" + nhsB + ",RGT,2025-01-01,\n"
	a := mustRead(t, csv, now)
	b := mustRead(t, csv, now.Add(400*24*time.Hour)) // a different run date does not change the hash
	c := mustRead(t, csv+nhsC+",all,2025-01-01,\n", now)
	if a.Hash != b.Hash {
		t.Errorf("hash of the same bytes differs: %s, %s", a.Hash, b.Hash)
	}
	if a.Hash == c.Hash {
		t.Error("hash of different bytes is the same")
	}
	if len(a.Hash) != 64 {
		t.Errorf("Hash = %q, want 64 hex digits", a.Hash)
	}
}

func TestDecide(t *testing.T) {
	t.Parallel()
	reg := mustRead(t, header+
		nhsA+",RGT,2025-01-01,\n"+
		nhsA+",LA505;RGT,2025-01-01,\n"+
		nhsB+",RYV,2025-01-01,\n"+
		nhsC+",all,2025-01-01,\n"+
		nhsD+",all,2025-01-01,2025-06-01\n"+
		nhsE+",D81001,2025-01-01,\n", now)
	tests := []struct {
		name string
		nhs  []string
		want objection.Decision
	}{
		{"none", nil, objection.Decision{}},
		{"no objection", []string{nhsF}, objection.Decision{}},
		{"withdrawn", []string{nhsD}, objection.Decision{}},
		{"two rows for one number merge", []string{nhsA}, objection.Decision{Orgs: []string{"LA505", "RGT"}}},
		{"two numbers merge orgs", []string{nhsE, nhsB}, objection.Decision{Orgs: []string{"D81001", "RYV"}}},
		{"three numbers, sorted and unique", []string{nhsB, nhsA, nhsE}, objection.Decision{Orgs: []string{"D81001", "LA505", "RGT", "RYV"}}},
		{"all wins and clears orgs", []string{nhsA, nhsC}, objection.Decision{WithholdAll: true}},
		{"all after orgs", []string{nhsB, nhsC, nhsE}, objection.Decision{WithholdAll: true}},
		{"same number twice", []string{nhsB, nhsB}, objection.Decision{Orgs: []string{"RYV"}}},
		{"unformatted number does not match", []string{"500 297 7278"}, objection.Decision{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := reg.Decide(tt.nhs...); !equalDecision(got, tt.want) {
				t.Errorf("Decide(%v) = %+v, want %+v", tt.nhs, got, tt.want)
			}
		})
	}
}

func TestDecisionShares(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		d    objection.Decision
		org  string
		want bool
		any  bool
	}{
		{"nothing withheld", objection.Decision{}, "RGT", true, false},
		{"withhold all", objection.Decision{WithholdAll: true}, "RGT", false, true},
		{"withhold all, any org", objection.Decision{WithholdAll: true}, "D81001", false, true},
		{"listed org", objection.Decision{Orgs: []string{"LA505", "RGT"}}, "RGT", false, true},
		{"other org", objection.Decision{Orgs: []string{"LA505", "RGT"}}, "RYV", true, true},
		{"org codes compare exactly", objection.Decision{Orgs: []string{"RGT"}}, "rgt", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.d.Shares(tt.org); got != tt.want {
				t.Errorf("Shares(%q) = %v, want %v", tt.org, got, tt.want)
			}
			if got := tt.d.Any(); got != tt.any {
				t.Errorf("Any() = %v, want %v", got, tt.any)
			}
		})
	}
}

func TestObjectionInForce(t *testing.T) {
	t.Parallel()
	rec := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	wd := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		o    objection.Objection
		at   time.Time
		want bool
	}{
		{"before recorded", objection.Objection{Recorded: rec}, rec.Add(-time.Nanosecond), false},
		{"at recorded", objection.Objection{Recorded: rec}, rec, true},
		{"open ended", objection.Objection{Recorded: rec}, rec.AddDate(50, 0, 0), true},
		{"before withdrawn", objection.Objection{Recorded: rec, Withdrawn: wd}, wd.Add(-time.Nanosecond), true},
		{"at withdrawn", objection.Objection{Recorded: rec, Withdrawn: wd}, wd, false},
		{"after withdrawn", objection.Objection{Recorded: rec, Withdrawn: wd}, wd.AddDate(0, 0, 1), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.o.InForce(tt.at); got != tt.want {
				t.Errorf("InForce(%v) = %v, want %v", tt.at, got, tt.want)
			}
		})
	}
	if !(objection.Objection{}).All() || (objection.Objection{Orgs: []string{"RGT"}}).All() {
		t.Error("All() is wrong")
	}
}

// writeRegister writes a register file into dir with the given mtime.
func writeRegister(t *testing.T, dir, name, content string, mtime time.Time) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoad(t *testing.T) {
	t.Parallel()
	older := header + nhsA + ",all,2025-01-01,\n"
	newer := header + nhsB + ",RGT,2025-01-01,\n"
	tests := []struct {
		name    string
		files   map[string]time.Duration // name → age of the file at now
		dirs    []string                 // folders matching the pattern
		pattern string
		maxAge  time.Duration
		err     error
		want    string // file picked
	}{
		{name: "newest by name", files: map[string]time.Duration{"objections_20260530.csv": time.Hour, "objections_20260531.csv": 2 * time.Hour},
			pattern: "objections_*.csv", maxAge: 36 * time.Hour, want: "objections_20260531.csv"},
		{name: "other files ignored", files: map[string]time.Duration{"objections_20260531.csv": time.Hour, "zzz.txt": time.Hour},
			pattern: "objections_*.csv", maxAge: 36 * time.Hour, want: "objections_20260531.csv"},
		{name: "matching folder ignored", files: map[string]time.Duration{"objections_20260531.csv": time.Hour},
			dirs: []string{"objections_20991231.csv"}, pattern: "objections_*.csv", maxAge: 36 * time.Hour, want: "objections_20260531.csv"},
		{name: "empty folder", pattern: "objections_*.csv", maxAge: 36 * time.Hour, err: objection.ErrMissing},
		{name: "no file matches", files: map[string]time.Duration{"register.csv": time.Hour}, pattern: "objections_*.csv", err: objection.ErrMissing},
		{name: "only a folder matches", dirs: []string{"objections_20260531.csv"}, pattern: "objections_*.csv", err: objection.ErrMissing},
		{name: "stale", files: map[string]time.Duration{"objections_20260530.csv": 37 * time.Hour}, pattern: "objections_*.csv", maxAge: 36 * time.Hour, err: objection.ErrStale},
		{name: "newest is stale though an older name is fresh", files: map[string]time.Duration{"objections_20260530.csv": time.Hour, "objections_20260531.csv": 48 * time.Hour},
			pattern: "objections_*.csv", maxAge: 36 * time.Hour, err: objection.ErrStale},
		{name: "just within max age", files: map[string]time.Duration{"objections_20260530.csv": 35 * time.Hour}, pattern: "objections_*.csv", maxAge: 36 * time.Hour, want: "objections_20260530.csv"},
		{name: "no max age", files: map[string]time.Duration{"objections_20200101.csv": 5 * 365 * 24 * time.Hour}, pattern: "objections_*.csv", want: "objections_20200101.csv"},
		{name: "bad pattern", files: map[string]time.Duration{"objections_20260530.csv": time.Hour}, pattern: "objections_[.csv", err: objection.ErrUnreadable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			for name, age := range tt.files {
				content := older
				if name == "objections_20260531.csv" {
					content = newer
				}
				writeRegister(t, dir, name, content, now.Add(-age))
			}
			for _, d := range tt.dirs {
				if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			reg, err := objection.Load(context.Background(), objection.Source{Dir: dir, Pattern: tt.pattern, MaxAge: tt.maxAge}, now)
			if tt.err != nil {
				if reg != nil || !errors.Is(err, tt.err) {
					t.Fatalf("Load = %v, %v; want %v", reg, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load = %v", err)
			}
			if reg.File != tt.want {
				t.Errorf("File = %q, want %q", reg.File, tt.want)
			}
			age := tt.files[tt.want]
			if !reg.ModTime.Equal(now.Add(-age)) {
				t.Errorf("ModTime = %v, want %v", reg.ModTime, now.Add(-age))
			}
			raw := mustReadPath(t, filepath.Join(dir, tt.want))
			sum := sha256.Sum256(raw)
			if reg.Hash != hex.EncodeToString(sum[:]) {
				t.Errorf("Hash = %s, want the file's SHA-256", reg.Hash)
			}
		})
	}
}

func mustReadPath(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLoadStaleNamesFileAndAge(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeRegister(t, dir, "objections_20260529.csv", header, now.Add(-72*time.Hour))
	_, err := objection.Load(context.Background(), objection.Source{Dir: dir, Pattern: "*.csv", MaxAge: 36 * time.Hour}, now)
	if !errors.Is(err, objection.ErrStale) {
		t.Fatalf("Load = %v, want ErrStale", err)
	}
	for _, w := range []string{"objections_20260529.csv", "72h0m0s", "36h0m0s"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
}

func TestLoadUnreadable(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeRegister(t, dir, "objections_20260531.csv", header+nhsA+",all,2025-01-01,\n9434765918,all,2025-01-01,\n", now.Add(-time.Hour))
	reg, err := objection.Load(context.Background(), objection.Source{Dir: dir, Pattern: "*.csv", MaxAge: 36 * time.Hour}, now)
	if reg != nil || !errors.Is(err, objection.ErrUnreadable) {
		t.Fatalf("Load = %v, %v; want ErrUnreadable", reg, err)
	}
	if !strings.Contains(err.Error(), "objections_20260531.csv: line 3") {
		t.Errorf("error %q does not name the file and line", err)
	}
	if strings.Contains(err.Error(), dir) {
		t.Errorf("error %q names the full path rather than the base name", err)
	}
}

func TestLoadHashStable(t *testing.T) {
	t.Parallel()
	content := header + nhsA + ",all,2025-01-01,\n" + nhsC + ",RGT;RYV,2025-02-01,\n"
	var hashes []string
	for i := range 2 {
		dir := t.TempDir()
		writeRegister(t, dir, fmt.Sprintf("objections_2026053%d.csv", i), content, now.Add(-time.Duration(i+1)*time.Hour))
		reg, err := objection.Load(context.Background(), objection.Source{Dir: dir, Pattern: "*.csv", MaxAge: time.Hour * 36}, now)
		if err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, reg.Hash)
		if reg.Rows() != 2 || reg.InForce() != 2 {
			t.Errorf("Rows, InForce = %d, %d", reg.Rows(), reg.InForce())
		}
	}
	if hashes[0] != hashes[1] {
		t.Errorf("same content, different hashes: %v", hashes)
	}
}

// TestReadScopeAllWithSeparators: "all" written with a separator or beside
// ODS codes must not quietly become an objection scoped to an organisation
// called ALL, which withholds nothing real. Either reading it as all or
// refusing the register (fail closed) is acceptable; sharing is not.
func TestReadScopeAllWithSeparators(t *testing.T) {
	t.Parallel()
	for _, scope := range []string{"all;", "All; ", "all;RGT", "RGT;all"} {
		t.Run(scope, func(t *testing.T) {
			t.Parallel()
			reg, err := read(t, header+nhsA+",\""+scope+"\",2025-01-01,\n", now)
			if errors.Is(err, objection.ErrUnreadable) {
				return // refused: fails closed
			}
			if err != nil {
				t.Fatalf("Read = %v", err)
			}
			if d := reg.Decide(nhsA); d.Shares("RYV") {
				t.Errorf("scope %q: Decide = %+v shares with RYV", scope, d)
			}
		})
	}
}
