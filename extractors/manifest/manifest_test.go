package manifest_test

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/careindex/careindex/extractors/delimited"
	"github.com/careindex/careindex/extractors/manifest"
	"github.com/careindex/careindex/extractors/xlsx"
)

const (
	patientsSHA = "d8616bc4d15fdba7f42c6db2b7bd350469fef4bb77f1be1a2aa53b41335b6d13"
	problemsSHA = "37b7ea0163f9221da8af02842438efb36f1d6c5035cc60a7bbac087ec5505e42"
	zeroSHA     = "0000000000000000000000000000000000000000000000000000000000000000"
)

var delivery = filepath.Join("testdata", "delivery")

func TestParseFile(t *testing.T) {
	want := []manifest.File{
		{Name: "patients_20261124.csv", Rows: 17, SHA256: patientsSHA},
		{Name: "problems_20261124.csv", Rows: 3, SHA256: problemsSHA},
	}
	tests := []struct {
		file     string
		delivery string
		files    []manifest.File
	}{
		{"manifest_20261124.json", "20261124", want},
		// BOM, CRLF, a comment, columns in another order, an extra column,
		// an upper-case digest.
		{"manifest_20261124.csv", "", want},
		{"manifest_noheader.csv", "", want},
		// delivery as a number, rows as a string.
		{"manifest_formats.json", "20261124", []manifest.File{
			{Name: "encounters_20261124.tsv", Rows: 1, SHA256: "08a8f0ceb938213d6b6664224ef73708008b704ecd2b698ff0f31e158859e634"},
			{Name: "patients_20261124.xlsx", Rows: 2, SHA256: "c580d8aa863c61f3a5578a87d8c95d2bdc3317a956086dcc0e75a81437ca6b1e"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			m, err := manifest.ParseFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if m.Name != tt.file || m.Delivery != tt.delivery || !slices.Equal(m.Files, tt.files) {
				t.Errorf("ParseFile = %+v, want name %s delivery %q files %+v", m, tt.file, tt.delivery, tt.files)
			}
			if !m.Lists(tt.files[1].Name) || m.Lists("other.csv") {
				t.Errorf("Lists is wrong")
			}
		})
	}
	if _, err := manifest.ParseFile(filepath.Join("testdata", "nope.json")); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "nope.json") {
		t.Errorf("missing manifest: error %v, want ErrNotExist naming it", err)
	}
}

func TestParseInvalid(t *testing.T) {
	sha := patientsSHA
	tests := []struct {
		name    string
		content string
		want    []string // substrings of the error
	}{
		{"empty", " \n", []string{"empty"}},
		{"bad JSON", `{"files": [`, []string{"not valid JSON"}},
		{"JSON trailing data", `{"files": [{"name":"a.csv","rows":1,"sha256":"` + sha + `"}]} {}`, []string{"more after"}},
		{"JSON no files", `{"delivery": "x", "files": []}`, []string{"lists no files"}},
		{"JSON files missing", `{"delivery": "x"}`, []string{"lists no files"}},
		{"JSON no name", `{"files": [{"rows": 1, "sha256": "` + sha + `"}]}`, []string{"file 1", "no file name"}},
		{"JSON no rows", `{"files": [{"name": "a.csv", "sha256": "` + sha + `"}]}`, []string{"file 1", `"a.csv"`, "no row count"}},
		{"JSON null sha", `{"files": [{"name": "a.csv", "rows": 1, "sha256": null}]}`, []string{`"a.csv"`, "no sha256"}},
		{"JSON rows not a number", `{"files": [{"name": "a.csv", "rows": true, "sha256": "` + sha + `"}]}`, []string{"file 1", "rows", "want a number"}},
		{"JSON rows negative", `{"files": [{"name": "a.csv", "rows": -1, "sha256": "` + sha + `"}]}`, []string{"row count \"-1\""}},
		{"JSON rows fractional", `{"files": [{"name": "a.csv", "rows": 1.5, "sha256": "` + sha + `"}]}`, []string{"row count \"1.5\""}},
		{"JSON name a number", `{"files": [{"name": 7, "rows": 1, "sha256": "` + sha + `"}]}`, []string{"name", "want a string"}},
		{"JSON short sha", `{"files": [{"name": "a.csv", "rows": 1, "sha256": "abc"}]}`, []string{`sha256 "abc"`, "64 hexadecimal"}},
		{"JSON sha not hex", `{"files": [{"name": "a.csv", "rows": 1, "sha256": "` + strings.Repeat("g", 64) + `"}]}`, []string{"64 hexadecimal"}},
		{"JSON path in name", `{"files": [{"name": "../etc/passwd", "rows": 1, "sha256": "` + sha + `"}]}`, []string{"without folders"}},
		{"JSON backslash in name", `{"files": [{"name": "sub\\a.csv", "rows": 1, "sha256": "` + sha + `"}]}`, []string{"without folders"}},
		{"JSON duplicate", `{"files": [{"name": "a.csv", "rows": 1, "sha256": "` + sha + `"}, {"name": "a.csv", "rows": 2, "sha256": "` + sha + `"}]}`, []string{"file 2", "already listed (file 1)"}},
		{"CSV missing column", "name,rows,sha256\na.csv,1\n", []string{"line 2", "no sha256"}},
		{"CSV bad rows", "a.csv,seventeen," + sha + "\n", []string{"line 1", `row count "seventeen"`}},
		{"CSV unusable header", "file,count,hash\na.csv,1," + sha + "\n", []string{"line 1", "header must name"}},
		{"CSV bad quoting", "a.csv,1,\"" + sha + "\n", []string{"not valid CSV"}},
		{"CSV only a header", "name,rows,sha256\n", []string{"lists no files"}},
		{"CSV duplicate", "a.csv,1," + sha + "\na.csv,1," + sha + "\n", []string{"line 2", "already listed (line 1)"}},
		{"too large", "a.csv,1," + sha + "\n" + strings.Repeat("#", manifest.MaxBytes), []string{"larger than"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := manifest.Parse("drops/manifest_x.json", strings.NewReader(tt.content))
			if !errors.Is(err, manifest.ErrInvalid) {
				t.Fatalf("Parse = %+v, %v; want ErrInvalid", m, err)
			}
			for _, s := range append(tt.want, "manifest manifest_x.json") {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
		})
	}
}

func TestParseReadError(t *testing.T) {
	boom := errors.New("boom")
	_, err := manifest.Parse("m.json", io.MultiReader(strings.NewReader("{"), errReader{boom}))
	if !errors.Is(err, boom) || errors.Is(err, manifest.ErrInvalid) {
		t.Errorf("error %v, want the read error and not ErrInvalid", err)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// openIn opens names in dir, like a folder delivery.
func openIn(dir string) func(string) (io.ReadCloser, error) {
	return func(name string) (io.ReadCloser, error) { return os.Open(filepath.Join(dir, name)) }
}

func TestVerify(t *testing.T) {
	ctx := context.Background()
	counter := manifest.Counter{}
	tests := []struct {
		name     string
		manifest string
		counter  manifest.Counter
		noCount  bool
		problems []manifest.Problem
	}{
		{name: "json matches", manifest: "manifest_20261124.json"},
		{name: "csv matches", manifest: "manifest_20261124.csv"},
		{name: "formats match with the source's options", manifest: "manifest_formats.json",
			counter: manifest.Counter{Delimited: delimited.Options{Delimiter: '\t'}, Sheet: "Patients", XLSX: xlsx.Options{HeaderRow: 3}}},
		{name: "formats counted with the wrong options", manifest: "manifest_formats.json", counter: counter, problems: []manifest.Problem{
			{File: "encounters_20261124.tsv", What: "has 2 data rows; the manifest says 1"},
			{File: "patients_20261124.xlsx", What: "has 3 data rows; the manifest says 2"},
		}},
		{name: "hashes only", manifest: "manifest_formats.json", noCount: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := manifest.ParseFile(filepath.Join("testdata", tt.manifest))
			if err != nil {
				t.Fatal(err)
			}
			count := tt.counter.InDir(ctx, delivery)
			if tt.noCount {
				count = nil
			}
			err = manifest.Verify(ctx, m, openIn(delivery), count)
			checkProblems(t, err, tt.manifest, tt.problems)
		})
	}
}

func TestVerifyMismatch(t *testing.T) {
	ctx := context.Background()
	m := &manifest.Manifest{Name: "manifest_20261124.json", Files: []manifest.File{
		{Name: "patients_20261124.csv", Rows: 17, SHA256: patientsSHA},             // agrees
		{Name: "problems_20261124.csv", Rows: 4, SHA256: problemsSHA},              // one row short
		{Name: "encounters_20261124.tsv", Rows: 1, SHA256: zeroSHA},                // other content, and 2 rows as CSV
		{Name: "allergies_20261124.csv", Rows: 0, SHA256: zeroSHA},                 // not delivered
		{Name: "patients_20261124.xlsx", Rows: 3, SHA256: strings.Repeat("c", 64)}, // other content, rows agree
	}}
	err := manifest.Verify(ctx, m, openIn(delivery), manifest.Counter{}.InDir(ctx, delivery))
	checkProblems(t, err, m.Name, []manifest.Problem{
		{File: "problems_20261124.csv", What: "has 3 data rows; the manifest says 4"},
		{File: "encounters_20261124.tsv", What: "SHA-256 is 08a8f0ceb938213d6b6664224ef73708008b704ecd2b698ff0f31e158859e634; the manifest says " + zeroSHA},
		{File: "encounters_20261124.tsv", What: "has 2 data rows; the manifest says 1"},
		{File: "allergies_20261124.csv", What: "listed but not delivered"},
		{File: "patients_20261124.xlsx", What: "SHA-256 is c580d8aa863c61f3a5578a87d8c95d2bdc3317a956086dcc0e75a81437ca6b1e; the manifest says " + strings.Repeat("c", 64)},
	})
	want := "manifest manifest_20261124.json: the delivery disagrees with it: problems_20261124.csv: has 3 data rows; the manifest says 4; encounters_20261124.tsv: SHA-256 is 08a8"
	if !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %q\nwant it to start %q", err, want)
	}
}

func checkProblems(t *testing.T, err error, name string, want []manifest.Problem) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		return
	}
	var me *manifest.MismatchError
	if !errors.As(err, &me) || !errors.Is(err, manifest.ErrMismatch) {
		t.Fatalf("Verify error = %v, want a *MismatchError wrapping ErrMismatch", err)
	}
	if me.Manifest != name || !slices.Equal(me.Problems, want) {
		t.Errorf("problems of %s:\n got %+v\nwant %+v", me.Manifest, me.Problems, want)
	}
	for _, p := range want {
		if !strings.Contains(err.Error(), p.File+": "+p.What) {
			t.Errorf("error %q does not say %q", err, p.File+": "+p.What)
		}
	}
}

func TestVerifyErrors(t *testing.T) {
	ctx := context.Background()
	m, err := manifest.ParseFile(filepath.Join("testdata", "manifest_20261124.json"))
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	t.Run("open fails", func(t *testing.T) {
		err := manifest.Verify(ctx, m, func(string) (io.ReadCloser, error) { return nil, boom }, nil)
		if !errors.Is(err, boom) || errors.Is(err, manifest.ErrMismatch) || !strings.Contains(err.Error(), "patients_20261124.csv") {
			t.Errorf("error %v, want boom naming the file, not a mismatch", err)
		}
	})
	t.Run("read fails", func(t *testing.T) {
		open := func(string) (io.ReadCloser, error) { return io.NopCloser(errReader{boom}), nil }
		if err := manifest.Verify(ctx, m, open, nil); !errors.Is(err, boom) || !strings.Contains(err.Error(), "hash") {
			t.Errorf("error %v, want boom", err)
		}
	})
	t.Run("count fails", func(t *testing.T) {
		count := func(string) (int, error) { return 0, boom }
		if err := manifest.Verify(ctx, m, openIn(delivery), count); !errors.Is(err, boom) || !strings.Contains(err.Error(), "count rows") {
			t.Errorf("error %v, want boom", err)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := manifest.Verify(ctx, m, openIn(delivery), nil); !errors.Is(err, context.Canceled) {
			t.Errorf("error %v, want context.Canceled", err)
		}
	})
}

func TestCounter(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		file    string
		counter manifest.Counter
		want    int
		err     error
	}{
		{"patients_20261124.csv", manifest.Counter{}, 17, nil},
		{"problems_20261124.csv", manifest.Counter{}, 3, nil}, // a quoted line break, a blank line
		{"encounters_20261124.tsv", manifest.Counter{Delimited: delimited.Options{Delimiter: '\t'}}, 1, nil},
		{"patients_20261124.xlsx", manifest.Counter{Sheet: "Patients", XLSX: xlsx.Options{HeaderRow: 3}}, 2, nil},
		{"patients_20261124.xlsx", manifest.Counter{Sheet: "Nope"}, 0, xlsx.ErrSheetNotFound},
		{"missing.csv", manifest.Counter{}, 0, fs.ErrNotExist},
	}
	for _, tt := range tests {
		n, err := tt.counter.CountFile(ctx, filepath.Join(delivery, tt.file))
		if n != tt.want || !errors.Is(err, tt.err) {
			t.Errorf("CountFile(%s) = %d, %v; want %d, %v", tt.file, n, err, tt.want, tt.err)
		}
	}
	if _, err := (manifest.Counter{}).CountReader(ctx, strings.NewReader(""), "book.XLSX"); err == nil {
		t.Error("CountReader of a workbook: no error")
	}
	if _, err := (manifest.Counter{}).CountReader(ctx, strings.NewReader(""), "empty.csv"); !errors.Is(err, delimited.ErrNoHeader) {
		t.Errorf("CountReader of an empty file: %v, want ErrNoHeader", err)
	}
}
