package storetest

import (
	"testing"

	"github.com/careindex/careindex/loader/store"
	"github.com/careindex/careindex/transform/link"
	"github.com/careindex/careindex/transform/match"
)

// testFiled checks that the link state reads back what SaveMatch filed,
// so that the linker can skip records filed unchanged.
func testFiled(t *testing.T, b *Backend) {
	ctx := ctxFor(t)
	links := b.Store.Links()
	fr, ok := links.(link.FiledReader)
	if !ok {
		t.Fatal("the link state is not a link.FiledReader")
	}
	rec := store.MatchRecord{OrgCode: "D81001", LocalID: "100101", PatientID: 42, Keys: []string{"k2", "k1"},
		Record: match.Record{NHSNumber: "9434765919", FamilyName: "PENNINGTON", GivenName: "HATTIE", DateOfBirth: "1948-03-14",
			Sex: "female", Postcode: "PE15 8RN", Address: "1 HIGH STREET", GPPractice: "D81001", Email: "h@example.org", Phone: "01234"}}
	other := rec
	other.OrgCode = "RGT"
	noErr(t, links.SaveMatch(ctx, []store.MatchRecord{rec, other}))
	got := try(fr.Filed(ctx, "D81001", []string{"100101", "100102"})).must(t)
	if len(got) != 1 {
		t.Fatalf("Filed = %d records, want 1: %+v", len(got), got)
	}
	f := got["100101"]
	want := rec.Record
	want.ID = store.MatchID("D81001", "100101")
	if f.OrgCode != "D81001" || f.LocalID != "100101" || f.PatientID != 42 || f.Record != want {
		t.Errorf("Filed = %+v, want %+v", f, rec)
	}
}

// CheckRekeyAfterTextKeys checks a store just migrated from one whose
// blocking keys were filed as text: the key signature is cleared, so that
// Rekey files every record again, and Candidates then finds the one record
// the test saved (family name X, patient 7) under its new keys only.
// Each backend's migration test sets up the old store and calls it.
func CheckRekeyAfterTextKeys(t *testing.T, l store.Links) {
	t.Helper()
	ctx := ctxFor(t)
	meta, ok, err := l.MatchMeta(ctx)
	if err != nil || !ok || meta.Signature != "" {
		t.Fatalf("meta after migrating: %+v %v %v, want an empty signature", meta, ok, err)
	}
	keysOf := func(r match.Record) []string { return []string{"fam:" + r.FamilyName, "other"} }
	if got, err := l.Rekey(ctx, "sig1", keysOf); err != nil || got != 1 {
		t.Fatalf("Rekey: %d %v, want 1 record", got, err)
	}
	set := try(l.Candidates(ctx, []string{"fam:X", "other", "old"}, 10)).must(t)
	for _, k := range []string{"fam:X", "other"} {
		if c := set.ByKey[k]; len(c) != 1 || c[0].PatientID != 7 {
			t.Errorf("candidates under %q: %+v", k, c)
		}
	}
	if c := set.ByKey["old"]; len(c) != 0 {
		t.Errorf("candidates under a key no longer filed: %+v", c)
	}
}
