package store_test

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/careindex/careindex/loader/store"
)

// TestEachMatchPage reads a table of records with page sizes below,
// at and above its size and at a divisor of it (the last page full, so
// one more query finds nothing): every record once, in order.
func TestEachMatchPage(t *testing.T) {
	ctx := context.Background()
	const cols = `org_code, local_id, patient_id, nhs_number, family_name, given_name, date_of_birth, sex, postcode, address, gp_practice, email, phone`
	db := sqliteDB(t, `CREATE TABLE r (`+cols+`)`)
	var want []store.MatchRecord
	for i := range 6 {
		var r store.MatchRecord
		r.OrgCode, r.LocalID, r.PatientID = fmt.Sprintf("ORG%d", i%2), fmt.Sprintf("L%d", i), int64(100+i)
		r.Record.FamilyName, r.Record.DateOfBirth = fmt.Sprintf("NAME%d", i), "1970-01-01"
		m := r.Record
		if _, err := db.ExecContext(ctx, `INSERT INTO r VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)`, r.OrgCode, r.LocalID, r.PatientID,
			m.NHSNumber, m.FamilyName, m.GivenName, m.DateOfBirth, m.Sex, m.Postcode, m.Address, m.GPPractice, m.Email, m.Phone); err != nil {
			t.Fatal(err)
		}
		want = append(want, r)
	}
	slices.SortFunc(want, func(a, b store.MatchRecord) int {
		return cmp.Or(strings.Compare(a.OrgCode, b.OrgCode), strings.Compare(a.LocalID, b.LocalID))
	})
	first := `SELECT ` + cols + ` FROM r ORDER BY org_code, local_id LIMIT ?`
	next := `SELECT ` + cols + ` FROM r WHERE (org_code, local_id) > (?, ?) ORDER BY org_code, local_id LIMIT ?`
	for _, page := range []int{1, 2, 3, 4, 6, 7, 100} {
		t.Run(fmt.Sprintf("page %d", page), func(t *testing.T) {
			var got []store.MatchRecord
			pages := 0
			err := store.EachMatchPage(ctx, db, first, next, page, func(recs []store.MatchRecord) error {
				if len(recs) == 0 || len(recs) > page {
					t.Errorf("a page of %d records (page size %d)", len(recs), page)
				}
				pages++
				got = append(got, recs...)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if wantPages := (len(want) + page - 1) / page; pages != wantPages {
				t.Errorf("%d pages, want %d", pages, wantPages)
			}
			if !slices.EqualFunc(got, want, func(a, b store.MatchRecord) bool { return fmt.Sprint(a) == fmt.Sprint(b) }) {
				t.Errorf("got %v\nwant %v", got, want)
			}
		})
	}
}
