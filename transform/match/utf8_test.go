package match_test

import (
	"testing"
	"unicode/utf8"

	"github.com/careindex/careindex/transform/match"
)

// Blocking keys go into database text columns: they must be valid UTF-8
// whatever the names hold.
func TestBlockingKeysAreValidUTF8(t *testing.T) {
	t.Parallel()
	m, err := match.NewMatcher(match.DefaultModel(), match.DefaultThresholds())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []match.Record{
		{ID: "1", FamilyName: "ÉLAN", GivenName: "ÖZGÜR", DateOfBirth: "1970-02-03", Postcode: "CB1 1AA"},
		{ID: "2", FamilyName: "ŁUKASZEWICZ", GivenName: "ZOË", DateOfBirth: "1980-04-05", Postcode: "PE15 8AQ"},
	} {
		for _, k := range m.BlockingKeys(r) {
			if !utf8.ValidString(k) {
				t.Errorf("record %s: blocking key is not valid UTF-8 (%q)", r.ID, k)
			}
		}
	}
}
