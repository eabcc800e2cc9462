package match

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// contactRecords are records with phones, emails, NHS numbers, long and
// non-ASCII names and addresses: every part of a spilled record.
func contactRecords() []Record {
	base := []Record{
		{ID: "a1", NHSNumber: "9434765919", FamilyName: "O'Brien", GivenName: "Siobhán Mary", DateOfBirth: "1980-03-14", Sex: "female",
			Postcode: "LS1 4AP", Address: "Flat 3, 12 Park Row, Leeds", GPPractice: "B86001", Email: "s.obrien@example.org", Phone: "0113 496 0000"},
		{ID: "a2", FamilyName: "OBRIEN", GivenName: "SIOBHAN", DateOfBirth: "1980-14-03", Sex: "F",
			Postcode: "LS14AP", Address: "12 Park Row Leeds", Email: "s.obrien@example.org", Phone: "+44 113 496 0000"},
		{ID: "a3", NHSNumber: "9434765870", FamilyName: "Øster-Gaard", GivenName: "Åse", DateOfBirth: "1955-07-01", Sex: "female",
			Postcode: "BD1 1AA", Address: strings.Repeat("Long Lane ", 20), GPPractice: "V81999", Email: "ase@example.net"},
		{ID: "a4", FamilyName: "Oster Gaard", GivenName: "Ase", DateOfBirth: "1955-07-01", Sex: "female",
			Postcode: "BD1 1AB", Address: "Long Lane", Phone: "01274 000000"},
		{ID: "a5", FamilyName: "UNKNOWN", GivenName: "ALPHA", DateOfBirth: "2000-01-01", Postcode: "ZZ99 3VZ"},
		{ID: "a6", FamilyName: "UNKNOWN", GivenName: "ALPHA", DateOfBirth: "2000-01-01", Postcode: "ZZ99 3VZ"},
		{ID: strings.Repeat("x", 300), FamilyName: "Smith", GivenName: "John", DateOfBirth: "1990-05-06", Email: "john@example.com"},
		{ID: "a8", FamilyName: "Smith", GivenName: "Jon", DateOfBirth: "1990-05-06", Email: "jon@example.com", Postcode: "3000"},
	}
	var out []Record
	for k := range 40 { // enough of them for term frequencies to count
		for _, r := range base {
			r.ID += "-" + string(rune('a'+k%26)) + strings.Repeat("z", k/26)
			out = append(out, r)
		}
	}
	return out
}

// TestLinkOnDiskSameAsLink checks that LinkOnDisk gives exactly Link's
// result (clusters, review list and every statistic) on data that covers
// each part of a spilled record, more records than one offset chunk, giant
// blocks, a model with frequency tables, one or several workers and one
// or several buckets; and
// that it leaves no file behind.
func TestLinkOnDiskSameAsLink(t *testing.T) {
	ctx := context.Background()
	estimated := func(t testing.TB, recs []Record) *Model {
		d, err := NewDataset(ctx, FromSlice(recs))
		if err != nil {
			t.Fatal(err)
		}
		m, _, err := d.Estimate(ctx, EstimateOptions{RandomPairs: 200_000})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	synthetic := func(n int, seed uint64) []Record {
		var out []Record
		for r := range newSynth(n, seed).records(n, nil) {
			out = append(out, r)
		}
		return out
	}
	smallBlocks := DefaultModel()
	smallBlocks.MaxBlock = 6
	cases := []struct {
		name    string
		recs    func(t testing.TB) []Record
		model   func(t testing.TB, recs []Record) *Model
		workers int
		bucket  int  // records a bucket, about
		giant   bool // some blocks must be skipped
	}{
		{"more records than a chunk", func(testing.TB) []Record { return synthetic(1<<chunkBits+5000, 7) }, nil, 0, 0, false},
		{"many buckets", func(testing.TB) []Record { return synthetic(20000, 9) }, nil, 0, 3000, false},
		{"one worker, giant blocks, buckets", func(testing.TB) []Record { return synthetic(5000, 8) }, func(testing.TB, []Record) *Model { return smallBlocks }, 1, 1000, true},
		{"contact details", func(testing.TB) []Record { return contactRecords() }, nil, 3, 0, false},
		{"splink fake_1000, estimated model", func(t testing.TB) []Record { r, _ := splink(t, "fake_1000.csv"); return r }, estimated, 0, 0, false},
		{"febrl dataset 3, estimated model", func(t testing.TB) []Record { r, _ := febrl(t, "dataset3.csv"); return r }, estimated, 2, 1000, false},
		{"no records", func(testing.TB) []Record { return nil }, nil, 0, 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			recs := tc.recs(t)
			model := DefaultModel()
			if tc.model != nil {
				model = tc.model(t, recs)
			}
			want, err := Link(ctx, FromSlice(recs), model, DefaultThresholds())
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			got, err := LinkOnDisk(ctx, FromSlice(recs), model, DefaultThresholds(), DiskOptions{Dir: dir, Workers: tc.workers, bucketRecords: tc.bucket})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("LinkOnDisk differs from Link: %d clusters, %d to review, stats %+v; want %d, %d, %+v",
					len(got.Clusters), len(got.Review), got.Stats, len(want.Clusters), len(want.Review), want.Stats)
			}
			if len(recs) > 0 && len(want.Clusters) == 0 {
				t.Error("nothing linked: the comparison proves little")
			}
			skipped := 0
			for _, r := range got.Stats.Rules {
				skipped += len(r.SkippedBlocks)
			}
			if tc.giant != (skipped > 0) {
				t.Errorf("%d giant blocks skipped", skipped)
			}
			assertEmpty(t, dir)
		})
	}
}

func assertEmpty(t *testing.T, dir string) {
	t.Helper()
	left, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Errorf("%d temporary files left in %s", len(left), dir)
	}
}

func TestLinkOnDiskErrors(t *testing.T) {
	ctx := context.Background()
	errStream := errors.New("source went away")
	failing := func(yield func(Record, error) bool) {
		for _, r := range contactRecords()[:5] {
			if !yield(r, nil) {
				return
			}
		}
		yield(Record{}, errStream)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	cases := []struct {
		name string
		ctx  context.Context
		recs Records
		dir  func(dir string) string
		want func(error) bool
		msg  string
	}{
		{"stream fails", ctx, failing, nil, func(err error) bool { return errors.Is(err, errStream) }, "reading records"},
		{"cancelled", cancelled, FromSlice(contactRecords()), nil, func(err error) bool { return errors.Is(err, context.Canceled) }, ""},
		{"id too long", ctx, FromSlice([]Record{{ID: "ok", FamilyName: "A"}, {ID: strings.Repeat("i", 5000), FamilyName: "A"}}), nil, nil, "record 1: id of 5000 bytes, longer than 4096"},
		{"no such directory", ctx, FromSlice(contactRecords()), func(dir string) string { return filepath.Join(dir, "missing") },
			func(err error) bool { return errors.Is(err, os.ErrNotExist) }, "temporary files"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			use := dir
			if tc.dir != nil {
				use = tc.dir(dir)
			}
			res, err := LinkOnDisk(tc.ctx, tc.recs, DefaultModel(), DefaultThresholds(), DiskOptions{Dir: use})
			if err == nil || res != nil {
				t.Fatalf("got %v, %v; want an error", res, err)
			}
			if tc.want != nil && !tc.want(err) {
				t.Errorf("error %v", err)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not say %q", err, tc.msg)
			}
			assertEmpty(t, dir)
		})
	}
	if _, err := LinkOnDisk(ctx, FromSlice(nil), DefaultModel(), Thresholds{}, DiskOptions{}); err == nil {
		t.Error("invalid thresholds accepted")
	}
}
