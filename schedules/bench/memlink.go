package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"time"

	"github.com/careindex/careindex/fixtures/regiongen"
	"github.com/careindex/careindex/schedules/config"
	"github.com/careindex/careindex/schedules/pipeline"
	"github.com/careindex/careindex/transform/link"
	"github.com/careindex/careindex/transform/match"
	"github.com/careindex/careindex/transform/record"
)

// MemoryLinkage is the linkage engine's own rate and quality on the
// generated region: night 1's person records of every organisation, read
// as a run reads them (pipeline.Persons: the same extractors, mapping and
// normalisation; rows a run quarantines left out, each organisation's
// local id once), linked in one batch in memory by match.Link on both
// cores with the region's matching model and thresholds, and scored
// pairwise against the truth like the published linkage. No store is
// involved: the nightly linker files the same decisions in the store
// record by record, incrementally, which is what the nights' stages
// measure.
type MemoryLinkage struct {
	Records          int64   `json:"records"`
	ReadSeconds      float64 `json:"read_seconds"`
	LinkSeconds      float64 `json:"link_seconds"`
	RecordsPerMinute float64 `json:"records_per_minute"`
	// Pairs is how many candidate pairs were scored.
	Pairs   int64   `json:"pairs"`
	Linkage Linkage `json:"linkage"`
	// OnDisk is the same records read again and linked by
	// match.LinkOnDisk, which keeps them in temporary files.
	OnDisk OnDiskLinkage `json:"on_disk"`
}

// OnDiskLinkage is match.LinkOnDisk's run on the records of a
// MemoryLinkage.
type OnDiskLinkage struct {
	// Seconds covers reading the records again, preparing them into the
	// temporary files and linking: LinkOnDisk consumes the stream itself.
	Seconds float64 `json:"seconds"`
	// Same says whether its result (clusters, review list and statistics)
	// is exactly match.Link's.
	Same bool `json:"same"`
}

// memoryLinkage measures MemoryLinkage on night 1. Its community export
// is loaded into a database of its own first (untimed).
func (b *bench) memoryLinkage(ctx context.Context) (MemoryLinkage, error) {
	var out MemoryLinkage
	night := b.sum.Nights[0]
	exportDSN, err := b.createDatabase(ctx, "export_linkage")
	if err != nil {
		return out, err
	}
	if err := b.psqlFile(ctx, exportDSN, filepath.Join(b.region, night.Dir, "exports", "community.sql")); err != nil {
		return out, fmt.Errorf("loading night-01's export database: %w", err)
	}
	lookup := func(k string) (string, bool) {
		if k == regiongen.ExportDSNEnv {
			return exportDSN, true
		}
		return os.LookupEnv(k)
	}
	cfg, err := config.Load(filepath.Join(b.region, filepath.FromSlash(night.Config)), lookup)
	if err != nil {
		return out, fmt.Errorf("reading night-01's configuration: %w", err)
	}
	model, _, err := cfg.Matching.LoadModel()
	if err != nil {
		return out, err
	}
	tr, err := readTruth(filepath.Join(b.region, night.Dir, "truth", "persons.csv"))
	if err != nil {
		return out, fmt.Errorf("reading the truth: %w", err)
	}

	// persons[i] is record i's true person, -1 when the truth lacks it.
	var persons []int64
	seen := map[string]bool{}
	errStop := errors.New("stopped")
	var readErr error
	opts := pipeline.Options{Config: cfg, LookupEnv: lookup}
	recs := func(yield func(match.Record, error) bool) {
		persons, seen, readErr = persons[:0], map[string]bool{}, nil
		for _, src := range cfg.Sources {
			if src.Kind != "persons" {
				continue
			}
			_, err := pipeline.Persons(ctx, opts, src.ID, func(p record.Person) error {
				k := truthKey(src.Org, p.LocalID)
				if seen[k] {
					return nil
				}
				seen[k] = true
				person, ok := tr.records[k]
				if !ok {
					person = -1
				}
				persons = append(persons, person)
				if !yield(link.MatchRecord(src.Org, p), nil) {
					return errStop
				}
				return nil
			})
			if errors.Is(err, errStop) {
				return
			}
			if err != nil {
				readErr = fmt.Errorf("reading %s: %w", src.ID, err)
				yield(match.Record{}, readErr)
				return
			}
		}
	}
	started := time.Now()
	d, err := match.NewDataset(ctx, recs)
	if readErr != nil {
		return out, readErr
	}
	if err != nil {
		return out, err
	}
	out.ReadSeconds = time.Since(started).Seconds()
	started = time.Now()
	res, err := d.Link(ctx, model, cfg.Matching.Thresholds(), match.LinkOptions{})
	if err != nil {
		return out, fmt.Errorf("linking: %w", err)
	}
	out.LinkSeconds = time.Since(started).Seconds()
	started = time.Now()
	disk, err := match.LinkOnDisk(ctx, recs, model, cfg.Matching.Thresholds(), match.DiskOptions{Dir: b.scratch})
	if readErr != nil {
		return out, readErr
	}
	if err != nil {
		return out, fmt.Errorf("linking on disk: %w", err)
	}
	out.OnDisk = OnDiskLinkage{Seconds: time.Since(started).Seconds(), Same: reflect.DeepEqual(disk, res)}
	out.Records = int64(len(persons))
	out.Pairs = res.Stats.Compared
	if out.LinkSeconds > 0 {
		out.RecordsPerMinute = float64(out.Records) / out.LinkSeconds * 60
	}
	// A record in no cluster is a patient of its own.
	cluster := make([]int64, len(persons))
	for i := range cluster {
		cluster[i] = int64(len(res.Clusters) + i)
	}
	for ci, c := range res.Clusters {
		for _, r := range c.Records {
			cluster[r] = int64(ci)
		}
	}
	c := newContingency()
	var unknown int64
	for i, person := range persons {
		if person < 0 {
			unknown++
			continue
		}
		c.add(cluster[i], person)
	}
	out.Linkage = c.score()
	out.Linkage.Night, out.Linkage.Unknown = night.Night, unknown
	return out, nil
}
