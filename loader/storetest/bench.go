package storetest

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/careindex/careindex/loader/store"
)

// Bench measures publishing: every iteration builds a version of n
// patients, each with one record location and five care items (n is
// CAREINDEX_BENCH_PATIENTS, default 20000), swaps it in and retires the
// oldest, and reports the rows loaded per second.
func Bench(b *testing.B, newStore func(b *testing.B) store.Store) {
	n := 20000
	if v, err := strconv.Atoi(os.Getenv("CAREINDEX_BENCH_PATIENTS")); err == nil && v > 0 {
		n = v
	}
	s := newStore(b)
	ctx := context.Background()
	org := store.Organisation{OrgCode: "A81001", Name: "THE SURGERY", OrgType: "gp_practice", LastDeliveryAt: time.Now()}
	rows := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		run, err := s.StartRun(ctx, store.RunInfo{Kind: "publish", Started: time.Now()})
		if err != nil {
			b.Fatal(err)
		}
		v, err := s.BeginVersion(ctx, run)
		if err != nil {
			b.Fatal(err)
		}
		if err := v.AddOrganisation(org); err != nil {
			b.Fatal(err)
		}
		for p := int64(1); p <= int64(n); p++ {
			if err := v.AddPatient(store.Patient{PatientID: p, NHSNumber: fmt.Sprintf("9%09d", p), FamilyName: "SURNAME", GivenName: "GIVEN",
				DateOfBirth: "1970-01-01", Sex: "female", Postcode: "LS1 4AP", GPPractice: "A81001", Status: "shared"}); err != nil {
				b.Fatal(err)
			}
			if err := v.AddLocation(store.Location{PatientID: p, OrgCode: "A81001", LocalID: fmt.Sprintf("L%d", p*7919%1000003)}); err != nil {
				b.Fatal(err)
			}
			for k := 0; k < 5; k++ {
				if err := v.AddItem(store.Item{PatientID: p, OrgCode: "A81001", Kind: "problem", CodeSystem: "http://snomed.info/sct",
					Code: strconv.Itoa(k), Display: "a problem", StartDate: "2020-01-01", Status: "active"}); err != nil {
					b.Fatal(err)
				}
			}
		}
		if err := v.Finish(ctx); err != nil {
			b.Fatal(err)
		}
		if err := s.Swap(ctx, store.Swap{RunID: run, Version: v.Number(), Patients: n, Locations: n, Items: 5 * n, Keep: 2}); err != nil {
			b.Fatal(err)
		}
		if err := s.FinishRun(ctx, run, store.RunSucceeded, "", nil); err != nil {
			b.Fatal(err)
		}
		rows += 7*n + 1
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
}
