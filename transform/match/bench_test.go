package match

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/careindex/careindex/fixtures/memsample"
)

// dataBytes is the size of the records as CSV text.
func dataBytes(recs Records) int64 {
	var n int64
	for r := range recs {
		n += int64(len(r.ID) + len(r.NHSNumber) + len(r.FamilyName) + len(r.GivenName) + len(r.DateOfBirth) +
			len(r.Sex) + len(r.Postcode) + len(r.Address) + len(r.GPPractice) + len(r.Email) + len(r.Phone) + 11)
	}
	return n
}

// linkFunc is Link or LinkOnDisk.
type linkFunc func(ctx context.Context, recs Records, model *Model, th Thresholds) (*Result, error)

func benchmarkLink(b *testing.B, n int, link linkFunc) {
	s := newSynth(n, 42)
	size := dataBytes(s.records(n, nil))
	model := DefaultModel()
	ctx := context.Background()
	var res *Result
	truth := make([]int32, 0, n)
	runtime.GC()
	b.ResetTimer()
	var peak, live uint64
	for i := 0; i < b.N; i++ {
		truth = truth[:0]
		sampler := memsample.Start(25 * time.Millisecond)
		var err error
		res, err = link(ctx, s.records(n, &truth), model, DefaultThresholds())
		if err != nil {
			b.Fatal(err)
		}
		p := sampler.Stop()
		peak, live = max(peak, p.Heap), max(live, p.Live)
	}
	b.StopTimer()
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
	b.ReportMetric(float64(live)/(1<<20), "peak-live-MB")
	b.ReportMetric(float64(size)/(1<<20), "data-MB")
	b.ReportMetric(float64(res.Stats.Compared), "pairs")
	tp, fp, fn := synthPairwise(res, truth)
	b.ReportMetric(float64(tp)/float64(max(tp+fp, 1)), "precision")
	b.ReportMetric(float64(tp)/float64(max(tp+fn, 1)), "recall")
	if testing.Verbose() {
		for _, r := range res.Stats.Rules {
			b.Logf("rule %-20s keyed %8d blocks %7d pairs %10d compared %10d skipped %v", r.Rule, r.Keyed, r.Blocks, r.Pairs, r.Compared, r.SkippedBlocks)
		}
	}
}

// synthPairwise counts true positive, false positive and false negative
// pairs of the clusters against the synthetic truth.
func synthPairwise(res *Result, truth []int32) (tp, fp, fn int) {
	for _, c := range res.Clusters {
		for a := 0; a < len(c.Records); a++ {
			for b := a + 1; b < len(c.Records); b++ {
				if truth[c.Records[a]] == truth[c.Records[b]] {
					tp++
				} else {
					fp++
				}
			}
		}
	}
	count := map[int32]int{}
	for _, p := range truth {
		count[p]++
	}
	actual := 0
	for _, c := range count {
		actual += c * (c - 1) / 2
	}
	return tp, fp, actual - tp
}

func BenchmarkLink100k(b *testing.B) { benchmarkLink(b, 100_000, Link) }
func BenchmarkLink1M(b *testing.B)   { benchmarkLink(b, 1_000_000, Link) }

// onDisk is LinkOnDisk with its temporary files in the benchmark's
// temporary directory.
func onDisk(b *testing.B) linkFunc {
	dir := b.TempDir()
	return func(ctx context.Context, recs Records, model *Model, th Thresholds) (*Result, error) {
		return LinkOnDisk(ctx, recs, model, th, DiskOptions{Dir: dir})
	}
}

func BenchmarkLinkOnDisk100k(b *testing.B) { benchmarkLink(b, 100_000, onDisk(b)) }
func BenchmarkLinkOnDisk1M(b *testing.B)   { benchmarkLink(b, 1_000_000, onDisk(b)) }

func benchmarkEstimate(b *testing.B, n int) {
	s := newSynth(n, 42)
	ctx := context.Background()
	d, err := NewDataset(ctx, s.records(n, nil))
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	var rep *EstimateReport
	for i := 0; i < b.N; i++ {
		_, rep, err = d.Estimate(ctx, EstimateOptions{})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(rep.RandomPairs), "random-pairs")
}

func BenchmarkEstimate100k(b *testing.B) { benchmarkEstimate(b, 100_000) }
func BenchmarkEstimate1M(b *testing.B)   { benchmarkEstimate(b, 1_000_000) }
