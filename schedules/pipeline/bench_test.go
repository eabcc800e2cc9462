package pipeline_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/careindex/careindex/fixtures/regiongen"
	"github.com/careindex/careindex/loader/pgstore"
	"github.com/careindex/careindex/loader/pgstore/pgtest"
	"github.com/careindex/careindex/loader/sqlitestore"
	"github.com/careindex/careindex/loader/store"
	"github.com/careindex/careindex/schedules/config"
	"github.com/careindex/careindex/schedules/pipeline"
)

// benchPeople is the size of the region the stage benchmarks generate.
const benchPeople = 5000

// benchGPSource is the generated region's first GP practice's persons
// source: about a fifth of the people, with NHS numbers.
const benchGPSource = "d81001-patients"

// benchRegion is a generated two-night region.
type benchRegion struct {
	dir string
	sum regiongen.Summary
}

// newRegion generates a two-night region of benchPeople people.
func newRegion(b *testing.B) benchRegion {
	b.Helper()
	r := benchRegion{dir: b.TempDir()}
	var err error
	if r.sum, err = regiongen.Generate(context.Background(), regiongen.Options{Patients: benchPeople, Nights: 2, Seed: 1, Out: r.dir}, nil); err != nil {
		b.Fatalf("generating the region: %v", err)
	}
	return r
}

// night loads night n's configuration (1-based) and its clock.
func (r benchRegion) night(b *testing.B, n int) (*config.Config, time.Time) {
	b.Helper()
	night := r.sum.Nights[n-1]
	cfg, err := config.Load(filepath.Join(r.dir, filepath.FromSlash(night.Config)), func(string) (string, bool) { return "", false })
	if err != nil {
		b.Fatal(err)
	}
	now, err := time.Parse(time.DateOnly, night.Date)
	if err != nil {
		b.Fatal(err)
	}
	return cfg, now.Add(6 * time.Hour)
}

// benchBackends open a fresh, migrated store of each backend.
var benchBackends = []struct {
	name string
	open func(b *testing.B) store.Store
}{
	{"sqlite", func(b *testing.B) store.Store {
		st, err := sqlitestore.Open(context.Background(), filepath.Join(b.TempDir(), "careindex.db"), nil)
		if err != nil {
			b.Fatal(err)
		}
		return migrated(b, st)
	}},
	{"postgres", func(b *testing.B) store.Store {
		st, err := pgstore.Open(context.Background(), pgtest.NewDatabase(b, "careindex_bench"), nil)
		if err != nil {
			b.Fatal(err)
		}
		return migrated(b, st)
	}},
}

func migrated(b *testing.B, st interface {
	store.Store
	Migrate(context.Context) error
	Close() error
}) store.Store {
	b.Helper()
	b.Cleanup(func() { st.Close() })
	if err := st.Migrate(context.Background()); err != nil {
		b.Fatal(err)
	}
	return st
}

// extract stages the GP practice's delivery of night n into st.
func (r benchRegion) extract(b *testing.B, st store.Store, n int) pipeline.Result {
	b.Helper()
	cfg, now := r.night(b, n)
	res, err := pipeline.Run(context.Background(), pipeline.Options{Config: cfg, Store: st, Stage: pipeline.StageExtract,
		Sources: []string{benchGPSource}, Now: func() time.Time { return now }})
	if err != nil {
		b.Fatalf("extracting night %d: %v", n, err)
	}
	if len(res.Sources) != 1 || res.Sources[0].Status != "new" {
		b.Fatalf("extracting night %d: %+v", n, res.Sources)
	}
	return res
}

// BenchmarkExtractGPDelivery stages a generated GP practice's persons
// delivery (normalise, link with matching on, stage) into an empty store.
func BenchmarkExtractGPDelivery(b *testing.B) {
	r := newRegion(b)
	for _, be := range benchBackends {
		b.Run(be.name, func(b *testing.B) {
			rows := 0
			for b.Loop() {
				b.StopTimer()
				st := be.open(b)
				b.StartTimer()
				rows = r.extract(b, st, 1).Sources[0].RowsIn
			}
			b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

// BenchmarkResendGPDelivery stages the GP practice's second night, a full
// snapshot with about 1% of the people changed, on top of the first.
func BenchmarkResendGPDelivery(b *testing.B) {
	r := newRegion(b)
	for _, be := range benchBackends {
		b.Run(be.name, func(b *testing.B) {
			rows := 0
			for b.Loop() {
				b.StopTimer()
				st := be.open(b)
				r.extract(b, st, 1)
				b.StartTimer()
				rows = r.extract(b, st, 2).Sources[0].RowsIn
			}
			b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
