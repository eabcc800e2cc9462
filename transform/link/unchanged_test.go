package link_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/careindex/careindex/loader/store"
	"github.com/careindex/careindex/transform/link"
	"github.com/careindex/careindex/transform/match"
	"github.com/careindex/careindex/transform/record"
)

// filedLinks is fakeLinks that also reads back filed match records (a
// link.FiledReader), counting the keys looked up and the records saved.
type filedLinks struct {
	*fakeLinks
	keysAsked, saved int
}

func (f *filedLinks) Filed(_ context.Context, org string, localIDs []string) (map[string]store.MatchRecord, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]store.MatchRecord{}
	for _, id := range localIDs {
		if r, ok := f.records[store.MatchID(org, id)]; ok {
			out[id] = r
		}
	}
	return out, nil
}

func (f *filedLinks) Candidates(ctx context.Context, keys []string, limit int) (match.CandidateSet, error) {
	f.keysAsked += len(keys)
	return f.fakeLinks.Candidates(ctx, keys, limit)
}

func (f *filedLinks) SaveMatch(ctx context.Context, recs []store.MatchRecord) error {
	f.saved += len(recs)
	return f.fakeLinks.SaveMatch(ctx, recs)
}

var _ link.FiledReader = (*filedLinks)(nil)

// linkWith links one batch at org through links with a fresh matching
// Linker, like linkAt.
func linkWith(t *testing.T, links store.Links, runID int64, org string, recs ...record.Person) ([]store.StagedPerson, []store.Reject) {
	t.Helper()
	src := strings.ToLower(org) + "-patients"
	for i := range recs {
		recs[i].SourceID, recs[i].OrgCode, recs[i].File, recs[i].Line = src, org, "p.csv", i+2
	}
	linked, held, err := link.New(links, runID).WithMatcher(newMatcher(t), match.DefaultThresholds()).Link(context.Background(), src, org, recs)
	if err != nil {
		t.Fatal(err)
	}
	return linked, held
}

func TestUnchangedRecordsAreNotLinkedAgain(t *testing.T) {
	t.Parallel()
	night := func() []record.Person {
		return []record.Person{hattie("100101", nhsB), desmond("100102", ""), desmond("100103", "")}
	}
	cases := []struct {
		name string
		// change alters the second night's batch and the store before it.
		change    func(f *filedLinks, batch []record.Person) []record.Person
		wantKeys  bool // candidates looked up on the second night
		wantSaved int  // match records filed again
		wantHeld  int
	}{
		{name: "resent unchanged", change: func(_ *filedLinks, b []record.Person) []record.Person { return b }},
		{name: "one record moved house", wantKeys: true, wantSaved: 1, change: func(_ *filedLinks, b []record.Person) []record.Person {
			b[0].Postcode = "CB2 0QQ"
			return b
		}},
		{name: "a local id linked elsewhere since", wantKeys: false, wantSaved: 1, change: func(f *filedLinks, b []record.Person) []record.Person {
			f.local["D81001"]["100102"] = 5555 // a review decision moved it
			return b
		}},
		{name: "a new record with the NHS number disagrees", wantKeys: true, wantHeld: 1,
			change: func(_ *filedLinks, b []record.Person) []record.Person {
				wrong := record.Person{LocalID: "M7", NHSNumber: nhsB, FamilyName: "ELLERY", GivenName: "GRAHAM", Sex: "male", Postcode: "CB2 0QQ"}
				return append(b, wrong)
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := &filedLinks{fakeLinks: newFakeLinks()}
			first, _ := linkWith(t, f, 1, "D81001", night()...)
			f.keysAsked, f.saved = 0, 0
			second, held := linkWith(t, f, 2, "D81001", c.change(f, night())...)
			if (f.keysAsked > 0) != c.wantKeys {
				t.Errorf("%d keys looked up, want some: %v", f.keysAsked, c.wantKeys)
			}
			if f.saved != c.wantSaved {
				t.Errorf("%d match records filed again, want %d", f.saved, c.wantSaved)
			}
			if len(held) != c.wantHeld {
				t.Errorf("held %+v, want %d", held, c.wantHeld)
			}
			for i, p := range second[:len(first)] {
				want := first[i].PatientID
				if p.LocalID == "100102" && c.name == "a local id linked elsewhere since" {
					want = 5555
				}
				if p.PatientID != want {
					t.Errorf("%s: patient %d, want %d", p.LocalID, p.PatientID, want)
				}
			}
		})
	}
}

// BenchmarkLinkResentBatch links a batch of 5,000 records a second time
// with 1% of them changed, against an in-memory link state: the linker's
// own work for a snapshot resent with few changes.
func BenchmarkLinkResentBatch(b *testing.B) {
	const n = 5000
	batch := make([]record.Person, n)
	families := []string{"PENNINGTON", "OYELARAN", "ELLERY", "MACKINTOSH", "ABERNATHY", "KOWALSKA", "DUBOIS", "NAKAMURA"}
	for i := range batch {
		p := hattie(fmt.Sprintf("L%06d", i), "")
		if i%2 == 0 {
			p = desmond(p.LocalID, "")
		}
		p.FamilyName = families[i%len(families)]
		p.DateOfBirth = fmt.Sprintf("19%02d-%02d-%02d", 20+i%80, 1+i%12, 1+i%28)
		p.SourceID, p.OrgCode, p.File, p.Line = "d81001-patients", "D81001", "p.csv", i+2
		batch[i] = p
	}
	m := newMatcher(b)
	f := &filedLinks{fakeLinks: newFakeLinks()}
	ctx := context.Background()
	if _, _, err := link.New(f, 1).WithMatcher(m, match.DefaultThresholds()).Link(ctx, "d81001-patients", "D81001", batch); err != nil {
		b.Fatal(err)
	}
	night := 1
	for b.Loop() {
		// Every night 1% of the records move house.
		night++
		resent := slices.Clone(batch)
		for i := 0; i < n; i += 100 {
			resent[i].Postcode = []string{"CB2 0QQ", "CB4 1DL"}[night%2]
		}
		if _, _, err := link.New(f, int64(night)).WithMatcher(m, match.DefaultThresholds()).Link(ctx, "d81001-patients", "D81001", resent); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
