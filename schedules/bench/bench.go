package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/careindex/careindex/fixtures/regiongen"
)

// Backends.
const (
	Postgres = "postgres"
	SQLite   = "sqlite"
)

// DefaultAdminDSN is the PostgreSQL maintenance database the benchmark
// creates its databases from.
const DefaultAdminDSN = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// ErrInvalidOptions marks options Run cannot use.
var ErrInvalidOptions = errors.New("invalid options")

// Options says what to benchmark.
type Options struct {
	// Patients is the size of the generated region (night 1).
	Patients int
	// Seed of the generated region.
	Seed int64
	// Work is a folder for the region (Work/region, reused when its
	// summary.json matches Patients and Seed) and the run's scratch files.
	// Empty: a temporary folder, removed at the end unless Keep.
	Work string
	// AdminDSN is a PostgreSQL DSN whose user may create databases
	// (default DefaultAdminDSN). The benchmark's databases are created on
	// the same server.
	AdminDSN string
	// Backends to benchmark: Postgres, SQLite (default both, in that order).
	Backends []string
	// Binary is the careindex executable run as a child process.
	Binary string
	// ChildEnv is added to the children's environment.
	ChildEnv []string
	// Keep keeps the databases and scratch files (their names are in the
	// report).
	Keep bool
	// ProfileDir, when set, receives a CPU and a heap profile of each
	// stage's careindex process (BACKEND-STAGE.cpu.pprof and
	// BACKEND-STAGE.mem.pprof, through CAREINDEX_CPUPROFILE and
	// CAREINDEX_MEMPROFILE).
	ProfileDir string
	// Log receives progress (nil: none).
	Log *zap.Logger
}

// Report is what Run measured. Times are in seconds, memory in bytes.
type Report struct {
	Patients        int     `json:"patients"`
	Seed            int64   `json:"seed"`
	Orgs            int     `json:"orgs"`
	Region          string  `json:"region"`
	RegionReused    bool    `json:"region_reused"`
	GenerateSeconds float64 `json:"generate_seconds"`
	Machine         Machine `json:"machine"`
	// Nights describes the two generated nights (rows delivered).
	Nights []Night `json:"nights"`
	// MemoryLinkage is the linkage engine's rate and quality on night 1,
	// in memory (see MemoryLinkage).
	MemoryLinkage *MemoryLinkage  `json:"memory_linkage,omitempty"`
	Backends      []BackendReport `json:"backends"`
	// Kept lists the databases and files left behind (Options.Keep).
	Kept []string `json:"kept,omitempty"`
}

// Machine describes where the benchmark ran.
type Machine struct {
	CPUs          int    `json:"cpus"`
	CPUModel      string `json:"cpu_model,omitempty"`
	MemTotalBytes int64  `json:"mem_total_bytes,omitempty"`
	OS            string `json:"os"`
	GoVersion     string `json:"go_version"`
	PostgreSQL    string `json:"postgresql"`
	SQLite        string `json:"sqlite,omitempty"`
}

// Night is one generated night's deliveries.
type Night struct {
	Night         int    `json:"night"`
	Dir           string `json:"dir"`
	Rows          int    `json:"rows"`
	People        int    `json:"people"`
	PersonRecords int    `json:"person_records"`
	CareItems     int    `json:"care_items"`
	Changed       int    `json:"changed"`
	Refreshed     int    `json:"orgs_refreshed"`
}

// BackendReport is one store backend's numbers.
type BackendReport struct {
	Backend string `json:"backend"`
	// Store is the store's DSN (PostgreSQL, redacted) or path (SQLite).
	Store       string `json:"store"`
	Extract     Stage  `json:"extract"`
	Publish     Stage  `json:"publish"`
	FullNight   Stage  `json:"full_night"`
	Incremental Stage  `json:"incremental_night"`
	Raw         Raw    `json:"raw_copy"`
	// FullOverRaw is FullNight.Seconds / Raw.Seconds.
	FullOverRaw float64 `json:"full_night_over_raw_copy"`
	// Published counts the rows of the full night's version; Incremental
	// those of the incremental night's.
	Published            Counts  `json:"published"`
	PublishedIncremental Counts  `json:"published_incremental"`
	Ledger               Ledger  `json:"ledger"`
	Linkage              Linkage `json:"linkage"`
	LinkageIncremental   Linkage `json:"linkage_incremental"`
}

// Stage is one timed part of a night.
type Stage struct {
	Seconds float64 `json:"seconds"`
	// RowsRead are the ledger's rows in of the sources read (status new).
	RowsRead      int64   `json:"rows_read"`
	ReadPerSecond float64 `json:"rows_read_per_second"`
	// RowsPublished are the rows of the version the stage published.
	RowsPublished      int64   `json:"rows_published"`
	PublishedPerSecond float64 `json:"rows_published_per_second"`
	// PeakRSSBytes is the child process's peak resident set (the largest
	// of the stage's processes).
	PeakRSSBytes int64 `json:"peak_rss_bytes"`
	// PeakRSSFrom says how it was measured (see maxrss.go): ru_maxrss, or
	// sampled VmHWM when ru_maxrss is the benchmark's own peak.
	PeakRSSFrom string `json:"peak_rss_from"`
	// Runs are the ledger's runs of the stage.
	Runs []LedgerRun `json:"runs"`
}

// LedgerRun is one run of the ledger.
type LedgerRun struct {
	RunID     int64  `json:"run_id"`
	Kind      string `json:"kind"`
	Status    string `json:"status"`
	Version   int64  `json:"version,omitempty"`
	SourcesIn int    `json:"sources_read"`
}

// Raw is the raw baseline: loading the published rows into empty tables.
type Raw struct {
	Method             string  `json:"method"`
	Seconds            float64 `json:"seconds"`
	Rows               Counts  `json:"rows"`
	RowsTotal          int64   `json:"rows_total"`
	PublishedPerSecond float64 `json:"rows_per_second"`
	Bytes              int64   `json:"file_bytes"`
}

// Counts are rows per published table.
type Counts struct {
	Version         int64 `json:"version"`
	Patients        int64 `json:"patient"`
	WithheldMarkers int64 `json:"withheld_markers"`
	Locations       int64 `json:"record_location"`
	Items           int64 `json:"care_item"`
	Organisations   int64 `json:"organisation"`
}

// Total is the rows of the four tables.
func (c Counts) Total() int64 { return c.Patients + c.Locations + c.Items + c.Organisations }

// SameRows reports whether two counts have the same rows per table.
func (c Counts) SameRows(o Counts) bool {
	return c.Patients == o.Patients && c.Locations == o.Locations && c.Items == o.Items && c.Organisations == o.Organisations
}

// Ledger sums the run_source lines of every run in the store.
type Ledger struct {
	Runs        int   `json:"runs"`
	Lines       int   `json:"lines"`
	RowsIn      int64 `json:"rows_in"`
	Loaded      int64 `json:"loaded"`
	Quarantined int64 `json:"quarantined"`
	Withheld    int64 `json:"withheld"`
	Merged      int64 `json:"merged"`
	Pending     int64 `json:"pending"`
	// Unbalanced lists lines where rows in differ from loaded + quarantined
	// + withheld + merged + pending ("run/source: …").
	Unbalanced []string `json:"unbalanced"`
}

// Balanced reports whether every line balances.
func (l Ledger) Balanced() bool { return len(l.Unbalanced) == 0 && l.Lines > 0 }

// Run runs the benchmark.
func Run(ctx context.Context, opts Options) (rep Report, err error) {
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	if opts.AdminDSN == "" {
		opts.AdminDSN = DefaultAdminDSN
	}
	if len(opts.Backends) == 0 {
		opts.Backends = []string{Postgres, SQLite}
	}
	var problems []string
	if opts.Patients < 1 {
		problems = append(problems, "patients: at least 1")
	}
	for _, b := range opts.Backends {
		if b != Postgres && b != SQLite {
			problems = append(problems, fmt.Sprintf("backend %q: want %s or %s", b, Postgres, SQLite))
		}
	}
	if opts.Binary == "" {
		problems = append(problems, "binary: the careindex executable is required")
	}
	if len(problems) > 0 {
		return rep, fmt.Errorf("bench: %w: %s", ErrInvalidOptions, strings.Join(problems, "; "))
	}
	if _, err := exec.LookPath("psql"); err != nil {
		return rep, fmt.Errorf("bench: psql is required (it loads the export scripts and runs the raw COPY): install postgresql-client: %w", err)
	}
	log := opts.Log
	b := &bench{opts: opts, log: log}
	defer func() {
		cerr := b.cleanup()
		rep.Kept = b.kept
		err = errors.Join(err, cerr)
	}()
	if err := b.connectAdmin(ctx); err != nil {
		return rep, err
	}

	work := opts.Work
	if work == "" {
		if work, err = os.MkdirTemp("", "careindex-bench-"); err != nil {
			return rep, fmt.Errorf("bench: %w", err)
		}
		b.remove(work)
	} else if err := os.MkdirAll(work, 0o755); err != nil {
		return rep, fmt.Errorf("bench: %w", err)
	}
	if opts.ProfileDir != "" {
		if err := os.MkdirAll(opts.ProfileDir, 0o755); err != nil {
			return rep, fmt.Errorf("bench: %w", err)
		}
	}
	if b.scratch, err = os.MkdirTemp(work, "run-"); err != nil {
		return rep, fmt.Errorf("bench: %w", err)
	}
	b.remove(b.scratch)
	id := make([]byte, 4)
	if _, err := rand.Read(id); err != nil {
		return rep, fmt.Errorf("bench: %w", err)
	}
	b.prefix = "careindex_bench_" + hex.EncodeToString(id)

	rep = Report{Patients: opts.Patients, Seed: opts.Seed, Machine: b.machine(ctx)}
	region := filepath.Join(work, "region")
	sum, reused := reusable(region, opts)
	if reused {
		log.Info("reusing the generated region", zap.String("region", region))
	} else {
		log.Info("generating the region", zap.String("region", region), zap.Int("patients", opts.Patients), zap.Int64("seed", opts.Seed))
		start := time.Now()
		sum, err = regiongen.Generate(ctx, regiongen.Options{Patients: opts.Patients, Nights: 2, Seed: opts.Seed, Out: region}, log)
		if err != nil {
			return rep, fmt.Errorf("bench: generating the region: %w", err)
		}
		rep.GenerateSeconds = time.Since(start).Seconds()
	}
	b.region, b.sum = region, sum
	rep.Region, rep.RegionReused, rep.Orgs = region, reused, sum.Orgs
	for _, n := range sum.Nights[:2] {
		rep.Nights = append(rep.Nights, Night{Night: n.Night, Dir: n.Dir, Rows: n.Rows(), People: n.People,
			PersonRecords: n.PersonRecords, CareItems: n.CareItems, Changed: n.Changed, Refreshed: len(n.Refreshed)})
	}
	log.Info("in-memory linkage (night-01)")
	ml, err := b.memoryLinkage(ctx)
	if err != nil {
		return rep, fmt.Errorf("bench: in-memory linkage: %w", err)
	}
	rep.MemoryLinkage = &ml
	log.Info("in-memory linkage done", zap.Int64("records", ml.Records), zap.Float64("read_seconds", ml.ReadSeconds),
		zap.Float64("link_seconds", ml.LinkSeconds), zap.Float64("records_per_minute", ml.RecordsPerMinute),
		zap.Float64("precision", ml.Linkage.Precision), zap.Float64("recall", ml.Linkage.Recall), zap.Float64("f1", ml.Linkage.F1))
	for _, name := range opts.Backends {
		br, err := b.backend(ctx, name)
		rep.Backends = append(rep.Backends, br)
		if err != nil {
			return rep, fmt.Errorf("bench: %s: %w", name, err)
		}
	}
	return rep, nil
}

// reusable returns the summary of the region in dir when it was generated
// with the options' patients and seed, the default organisations and
// date, and has at least two nights on disk.
func reusable(dir string, opts Options) (regiongen.Summary, bool) {
	raw, err := os.ReadFile(filepath.Join(dir, "summary.json"))
	if err != nil {
		return regiongen.Summary{}, false
	}
	var sum regiongen.Summary
	if json.Unmarshal(raw, &sum) != nil {
		return regiongen.Summary{}, false
	}
	if sum.Patients != opts.Patients || sum.Seed != opts.Seed || sum.Orgs != regiongen.DefaultOrgs ||
		sum.Now != regiongen.DefaultNow.Format(time.DateOnly) || len(sum.Nights) < 2 {
		return regiongen.Summary{}, false
	}
	for _, n := range sum.Nights[:2] {
		for _, p := range []string{n.Config, filepath.Join(n.Dir, "exports", "community.sql"), filepath.Join(n.Dir, "truth", "persons.csv")} {
			if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(p))); err != nil {
				return regiongen.Summary{}, false
			}
		}
	}
	return sum, true
}

// backend benchmarks one store backend.
func (b *bench) backend(ctx context.Context, name string) (br BackendReport, err error) {
	log := b.log.With(zap.String("backend", name))
	br.Backend = name
	exportDSN, err := b.createDatabase(ctx, "export_"+name)
	if err != nil {
		return br, err
	}
	var st target
	switch name {
	case Postgres:
		dsn, err := b.createDatabase(ctx, "store")
		if err != nil {
			return br, err
		}
		st, err = openPG(ctx, dsn)
		if err != nil {
			return br, err
		}
	case SQLite:
		dir := filepath.Join(b.scratch, "sqlite")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return br, err
		}
		st = &sqliteTarget{path: filepath.Join(dir, "careindex.db")}
	}
	defer st.close()
	br.Store = st.describe()
	night1, night2 := b.sum.Nights[0], b.sum.Nights[1]
	cfg1 := filepath.Join(b.region, filepath.FromSlash(night1.Config))
	cfg2 := filepath.Join(b.region, filepath.FromSlash(night2.Config))
	env := []string{regiongen.ExportDSNEnv + "=" + exportDSN}

	// The full night: extract, then publish.
	if err := b.psqlFile(ctx, exportDSN, filepath.Join(b.region, night1.Dir, "exports", "community.sql")); err != nil {
		return br, fmt.Errorf("loading night-01's export database: %w", err)
	}
	log.Info("extract stage (night-01)")
	if br.Extract, err = b.stage(ctx, st, name+"-extract", env, "run", "--extract-only", "--config", cfg1, "--store", st.storeArg()); err != nil {
		return br, fmt.Errorf("extract stage: %w", err)
	}
	log.Info("extract stage done", zap.Float64("seconds", br.Extract.Seconds), zap.Int64("rows_read", br.Extract.RowsRead))
	log.Info("publish stage (night-01)")
	if br.Publish, err = b.stage(ctx, st, name+"-publish", env, "publish", "--config", cfg1, "--store", st.storeArg()); err != nil {
		return br, fmt.Errorf("publish stage: %w", err)
	}
	if br.Published, err = st.published(ctx); err != nil {
		return br, err
	}
	if br.Published.Version == 0 || !slices.ContainsFunc(br.Publish.Runs, func(r LedgerRun) bool { return r.Version == br.Published.Version }) {
		return br, fmt.Errorf("publish stage: the live version (%d) is not the publish run's", br.Published.Version)
	}
	br.Publish.RowsPublished = br.Published.Total()
	br.Publish.PublishedPerSecond = perSecond(br.Publish.RowsPublished, br.Publish.Seconds)
	log.Info("publish stage done", zap.Float64("seconds", br.Publish.Seconds), zap.Int64("rows_published", br.Publish.RowsPublished))
	br.FullNight = Stage{
		Seconds:       br.Extract.Seconds + br.Publish.Seconds,
		RowsRead:      br.Extract.RowsRead,
		RowsPublished: br.Publish.RowsPublished,
		PeakRSSBytes:  br.Extract.PeakRSSBytes,
		PeakRSSFrom:   br.Extract.PeakRSSFrom,
		Runs:          append(slices.Clone(br.Extract.Runs), br.Publish.Runs...),
	}
	if br.Publish.PeakRSSBytes > br.FullNight.PeakRSSBytes {
		br.FullNight.PeakRSSBytes, br.FullNight.PeakRSSFrom = br.Publish.PeakRSSBytes, br.Publish.PeakRSSFrom
	}
	br.FullNight.ReadPerSecond = perSecond(br.FullNight.RowsRead, br.FullNight.Seconds)
	br.FullNight.PublishedPerSecond = perSecond(br.FullNight.RowsPublished, br.FullNight.Seconds)

	// The raw baseline, on the full night's rows.
	exportDir := filepath.Join(b.scratch, name+"-published")
	if err := os.MkdirAll(exportDir, 0o755); err != nil {
		return br, err
	}
	log.Info("exporting the published rows", zap.Int64("version", br.Published.Version))
	ex, err := st.export(ctx, b, br.Published.Version, exportDir)
	if err != nil {
		return br, fmt.Errorf("exporting the published rows: %w", err)
	}
	log.Info("raw load of the published rows")
	if br.Raw, err = b.raw(ctx, name, ex); err != nil {
		return br, fmt.Errorf("raw baseline: %w", err)
	}
	br.Raw.RowsTotal = br.Raw.Rows.Total()
	br.Raw.PublishedPerSecond = perSecond(br.Raw.RowsTotal, br.Raw.Seconds)
	br.FullOverRaw = br.FullNight.Seconds / br.Raw.Seconds
	log.Info("raw load done", zap.Float64("seconds", br.Raw.Seconds), zap.Int64("rows", br.Raw.RowsTotal))
	if br.Linkage, err = b.linkage(ctx, st, night1); err != nil {
		return br, err
	}

	// The incremental night.
	if err := b.psqlFile(ctx, exportDSN, filepath.Join(b.region, night2.Dir, "exports", "community.sql")); err != nil {
		return br, fmt.Errorf("loading night-02's export database: %w", err)
	}
	log.Info("incremental night (night-02)")
	if br.Incremental, err = b.stage(ctx, st, name+"-incremental", env, "run", "--config", cfg2, "--store", st.storeArg()); err != nil {
		return br, fmt.Errorf("incremental night: %w", err)
	}
	if br.PublishedIncremental, err = st.published(ctx); err != nil {
		return br, err
	}
	if br.PublishedIncremental.Version != br.Published.Version {
		br.Incremental.RowsPublished = br.PublishedIncremental.Total()
		br.Incremental.PublishedPerSecond = perSecond(br.Incremental.RowsPublished, br.Incremental.Seconds)
	}
	log.Info("incremental night done", zap.Float64("seconds", br.Incremental.Seconds), zap.Int64("rows_read", br.Incremental.RowsRead))
	if br.LinkageIncremental, err = b.linkage(ctx, st, night2); err != nil {
		return br, err
	}
	if br.Ledger, err = st.ledger(ctx); err != nil {
		return br, err
	}
	return br, nil
}

func perSecond(rows int64, seconds float64) float64 {
	if seconds <= 0 {
		return 0
	}
	return float64(rows) / seconds
}

// stage runs the careindex binary once (name, BACKEND-STAGE, names its
// profiles) and reads what its runs did from
// the ledger.
func (b *bench) stage(ctx context.Context, st target, name string, env []string, args ...string) (Stage, error) {
	before, err := st.lastRun(ctx)
	if err != nil {
		return Stage{}, err
	}
	if dir := b.opts.ProfileDir; dir != "" {
		base := filepath.Join(dir, name)
		env = append(slices.Clone(env), "CAREINDEX_CPUPROFILE="+base+".cpu.pprof", "CAREINDEX_MEMPROFILE="+base+".mem.pprof")
	}
	res, err := b.child(ctx, env, append(args, "--log-format", "json", "--log-level", "warn")...)
	if err != nil {
		return Stage{}, err
	}
	s := Stage{Seconds: res.elapsed.Seconds(), PeakRSSBytes: res.maxRSS, PeakRSSFrom: res.rssFrom}
	if s.Runs, s.RowsRead, err = st.runs(ctx, before); err != nil {
		return s, err
	}
	if len(s.Runs) == 0 {
		return s, fmt.Errorf("careindex %s recorded no run in the ledger", args[0])
	}
	for _, r := range s.Runs {
		if r.Status != "succeeded" {
			return s, fmt.Errorf("careindex %s: run %d is %s\n%s", args[0], r.RunID, r.Status, res.output())
		}
	}
	s.ReadPerSecond = perSecond(s.RowsRead, s.Seconds)
	return s, nil
}
