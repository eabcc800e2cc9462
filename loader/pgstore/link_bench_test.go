package pgstore_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/careindex/careindex/loader/pgstore/pgtest"
	"github.com/careindex/careindex/transform/link"
	"github.com/careindex/careindex/transform/match"
	"github.com/careindex/careindex/transform/record"
)

// linkBatchSize is the pipeline's batch size.
const linkBatchSize = 5000

// benchPersons makes n invented person records of one organisation, most
// with a valid NHS number, from a fixed seed.
func benchPersons(n int) []record.Person {
	rng := rand.New(rand.NewPCG(7, 11))
	families := []string{"PENNINGTON", "OYELARAN", "ELLERY", "MACKINTOSH", "ABERNATHY", "KOWALSKA", "DUBOIS", "NAKAMURA", "OKAFOR", "LINDQVIST"}
	givens := []string{"HATTIE", "DESMOND", "GRAHAM", "PRIYA", "TOMASZ", "AOIFE", "KWAME", "INGRID", "YUKI", "MATEO"}
	sexes := []string{"female", "male"}
	out := make([]record.Person, n)
	for i := range out {
		p := record.Person{Provenance: record.Provenance{SourceID: "d81001-patients", OrgCode: "D81001", File: "patients.csv", Line: i + 2},
			LocalID: fmt.Sprintf("L%07d", i), FamilyName: families[rng.IntN(len(families))], GivenName: givens[rng.IntN(len(givens))],
			DateOfBirth: fmt.Sprintf("19%02d-%02d-%02d", 20+rng.IntN(80), 1+rng.IntN(12), 1+rng.IntN(28)), Sex: sexes[rng.IntN(2)],
			Postcode: fmt.Sprintf("PE%d %d%c%c", 1+rng.IntN(30), rng.IntN(10), 'A'+rng.IntN(26), 'A'+rng.IntN(26))}
		if i%10 != 0 {
			p.NHSNumber = validNHS(uint64(400000000 + i*7))
		}
		out[i] = p
	}
	return out
}

// validNHS gives the nine digits of base a Modulus 11 check digit, or
// moves on to the next base that has one.
func validNHS(base uint64) string {
	for ; ; base++ {
		s := fmt.Sprintf("%09d", base%1_000_000_000)
		sum := 0
		for i, c := range s {
			sum += int(c-'0') * (10 - i)
		}
		check := 11 - sum%11
		if check == 11 {
			check = 0
		}
		if check != 10 {
			return s + fmt.Sprint(check)
		}
	}
}

// BenchmarkLinkBatch links one batch of a GP practice's records with
// matching on into a PostgreSQL store: new records (the first night: every
// record matched or linked and filed) and the same records resent (filed
// unchanged: a few lookups).
func BenchmarkLinkBatch(b *testing.B) {
	ctx := context.Background()
	batch := benchPersons(linkBatchSize)
	m, err := match.NewMatcher(match.DefaultModel(), match.DefaultThresholds())
	if err != nil {
		b.Fatal(err)
	}
	run := func(b *testing.B, resent bool) {
		for b.Loop() {
			b.StopTimer()
			st := open(b, pgtest.NewDatabase(b, "careindex_bench"))
			if _, err := link.Prepare(ctx, st.Links(), m, []byte("{}")); err != nil {
				b.Fatal(err)
			}
			linker := link.New(st.Links(), 1).WithMatcher(m, match.DefaultThresholds())
			if resent {
				if _, _, err := linker.Link(ctx, "d81001-patients", "D81001", batch); err != nil {
					b.Fatal(err)
				}
			}
			b.StartTimer()
			linked, _, err := linker.Link(ctx, "d81001-patients", "D81001", batch)
			if err != nil {
				b.Fatal(err)
			}
			if len(linked) < linkBatchSize*9/10 {
				b.Fatalf("%d of %d records linked", len(linked), linkBatchSize)
			}
		}
		b.ReportMetric(float64(linkBatchSize)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
	}
	b.Run("new", func(b *testing.B) { run(b, false) })
	b.Run("resent", func(b *testing.B) { run(b, true) })
}
