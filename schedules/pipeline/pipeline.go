// Package pipeline runs one careindex sync: it checks the objection
// register, extracts and stages every selected source's delivery, and
// publishes a new version of the index built from the latest good delivery
// of every source.
//
// The stages, in order, each under the run's context:
//
//  1. the objection register is read; if it is missing, unreadable or stale
//     the run stops there (status blocked) and nothing is published;
//  2. each selected source's newest delivery is found and hashed; a delivery
//     identical to the one already in the index is not read again; others
//     are streamed through normalisation and linking into the store's staging
//     area, bad rows to quarantine. Linking is deterministic on the NHS
//     number and, with matching on (config.Matching), probabilistic for
//     records without one (transform/link); the run first makes the store's
//     match state ready for the configured model. Person sources are staged
//     one at a time in configuration order; on a store that allows it
//     (store.ConcurrentStaging) care item sources are staged beside them.
//     A source that fails keeps its last good delivery in the index,
//     flagged stale;
//  3. if anything changed (a delivery, the register, a source's staleness,
//     or a review decision not yet published), a new version is assembled
//     from every source's current delivery (objections applied), checked
//     and swapped in; each source's within-organisation duplicates are
//     counted for the ledger.
//
// A run that publishes first applies the review decisions taken since the
// last one (store.Reviews.ApplyDecisions): merges move link state and
// staged rows to the surviving patient, and held records a decision
// released are staged into the delivery that held them.
//
// A dry run does stage 1 and reads and normalises every delivery, counting
// rows, without linking or writing anything.
package pipeline

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"go.uber.org/zap"

	"github.com/careindex/careindex/extractors/delimited"
	"github.com/careindex/careindex/extractors/folder"
	"github.com/careindex/careindex/extractors/manifest"
	"github.com/careindex/careindex/extractors/rowsource"
	"github.com/careindex/careindex/extractors/s3drop"
	"github.com/careindex/careindex/extractors/sqlquery"
	"github.com/careindex/careindex/extractors/xlsx"
	"github.com/careindex/careindex/loader/store"
	"github.com/careindex/careindex/schedules/config"
	"github.com/careindex/careindex/transform/link"
	"github.com/careindex/careindex/transform/match"
	"github.com/careindex/careindex/transform/normalise"
	"github.com/careindex/careindex/transform/record"
)

// batchSize is how many records are linked and staged at a time.
const batchSize = 5000

// ErrBlocked means publication was refused because the objection register
// is missing, unreadable or stale.
var ErrBlocked = errors.New("publication blocked")

// ErrSourcesFailed means the run published but one or more sources failed.
var ErrSourcesFailed = errors.New("one or more sources failed")

// archives reports whether a source moves processed deliveries away.
func archives(src config.Source) bool {
	return (src.From.Folder != nil && src.From.Folder.Archive != "") || (src.From.S3 != nil && len(src.From.S3.Tag) > 0)
}

// ErrHeld means a delivery was held for review instead of published.
var ErrHeld = errors.New("delivery held for review")

// shrunk says why a snapshot delivery must be held, or "".
func shrunk(src config.Source, current *store.Delivery, d store.Delivery) string {
	if src.Mode != "snapshot" || current == nil || src.ShrinkLimit >= 1 {
		return ""
	}
	before, now := current.RowsIn, d.RowsIn
	switch {
	case before == 0:
		return ""
	case now == 0:
		return fmt.Sprintf("an empty delivery would remove all %d rows of the organisation's records", before)
	case float64(now) < float64(before)*(1-src.ShrinkLimit):
		return fmt.Sprintf("%d rows where the last delivery had %d: more than %.0f%% fewer", now, before, src.ShrinkLimit*100)
	}
	return ""
}

// ErrUnknownSource means --source named a source the config lacks.
var ErrUnknownSource = errors.New("unknown source")

// Stage says which stages a run performs.
type Stage int

const (
	// StageAll extracts the selected sources, then publishes a version
	// built from every source's newest good delivery.
	StageAll Stage = iota
	// StageExtract extracts and stages the selected sources only; a later
	// publish picks their deliveries up. It needs no objection register.
	StageExtract
	// StagePublish extracts nothing and publishes every source's newest
	// good delivery (pending or already published).
	StagePublish
)

func (s Stage) String() string {
	switch s {
	case StageExtract:
		return "extract"
	case StagePublish:
		return "publish"
	default:
		return "run"
	}
}

// Options configure one run.
type Options struct {
	Config *config.Config
	// Store is the open store; nil for a dry run.
	Store store.Store
	// Sources limits extraction to these source ids; empty means all.
	Sources []string
	// DryRun reads and checks without writing.
	DryRun bool
	// Stage limits the run to extracting or to publishing.
	Stage Stage
	// Now is the clock; defaults to time.Now.
	Now func() time.Time
	// Log receives progress; it never carries patient data.
	Log *zap.Logger
	// SQLOpen opens an export database; defaults to sql.Open.
	SQLOpen func(driver, dsn string) (*sql.DB, error)
	// LookupEnv resolves the environment variables a source names (S3
	// credentials); defaults to none set.
	LookupEnv func(string) (string, bool)
	// Progress, when set, is called about once a second while a source is
	// read, and once when it ends (done true), with the rows read so far.
	Progress func(p Progress)
}

// Progress reports how far the extraction of one source has got.
type Progress struct {
	SourceID string
	Rows     int
	Elapsed  time.Duration
	Done     bool
}

// Result is what a run did.
type Result struct {
	RunID   int64
	Status  store.RunStatus
	Message string
	// Version is the version published by this run (0: none).
	Version int64
	Sources []store.SourceOutcome
	// Patients and WithheldPatients count the published patient rows.
	Patients, WithheldPatients, Locations, Items int
}

// withDefaults fills in the options left unset: the clock, a silent log,
// OpenExportDB and no environment.
func (opts Options) withDefaults() Options {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	if opts.SQLOpen == nil {
		opts.SQLOpen = OpenExportDB
	}
	if opts.LookupEnv == nil {
		opts.LookupEnv = func(string) (string, bool) { return "", false }
	}
	return opts
}

// Run runs one sync. The error is nil only when every stage succeeded;
// the Result is filled in as far as the run got.
func Run(ctx context.Context, opts Options) (Result, error) {
	opts = opts.withDefaults()
	cfg := opts.Config
	for _, id := range opts.Sources {
		if _, ok := cfg.Source(id); !ok {
			return Result{Status: store.RunFailed}, fmt.Errorf("%w: %q is not in the configuration", ErrUnknownSource, id)
		}
	}
	opts.Progress = syncProgress(opts.Progress)
	r := &runner{opts: opts, cfg: cfg, log: opts.Log}
	if opts.DryRun {
		return r.dryRun(ctx)
	}
	return r.run(ctx)
}

type runner struct {
	opts  Options
	cfg   *config.Config
	log   *zap.Logger
	runID int64
	// matcher matches person records without an NHS number (nil when
	// matching is off, and in runs that stage nothing), with thresholds.
	matcher    *match.Matcher
	thresholds match.Thresholds
	// rollback, when set, marks the publish as a rollback.
	rollback *store.Swap
}

func (r *runner) selected(id string) bool {
	if r.opts.Stage == StagePublish {
		return false
	}
	return len(r.opts.Sources) == 0 || slices.Contains(r.opts.Sources, id)
}

func (r *runner) run(ctx context.Context) (res Result, err error) {
	st := r.opts.Store
	var ids []string
	for _, s := range r.cfg.Sources {
		if r.selected(s.ID) {
			ids = append(ids, s.ID)
		}
	}
	runID, err := st.StartRun(ctx, store.RunInfo{Kind: r.opts.Stage.String(), Sources: ids, Started: r.opts.Now()})
	if err != nil {
		return Result{Status: store.RunFailed}, fmt.Errorf("starting run: %w", err)
	}
	r.runID, res.RunID = runID, runID
	r.log = r.log.With(zap.Int64("run_id", runID))
	r.log.Info("run started", zap.Int("sources", len(ids)))
	var outcomes []store.SourceOutcome
	defer func() {
		if res.Status == "" {
			res.Status = store.RunFailed
		}
		if err != nil && res.Message == "" {
			res.Message = err.Error()
		}
		// Record the end even when ctx was cancelled: the run must not be
		// left "running" in the ledger by a graceful stop.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if ferr := st.FinishRun(fctx, runID, res.Status, res.Message, outcomes); ferr != nil {
			err = errors.Join(err, fmt.Errorf("recording end of run %d: %w", runID, ferr))
		}
		r.log.Info("run finished", zap.String("status", string(res.Status)), zap.Int64("version", res.Version))
	}()

	var ru *rules
	if r.opts.Stage != StageExtract {
		if ru, err = r.loadRules(ctx); err != nil {
			res.Status = store.RunBlocked
			r.log.Error("publication blocked", zap.Error(err))
			return res, err
		}
	}

	if r.opts.Stage != StageExtract {
		// Decisions on review items take effect before anything is linked,
		// under the publish lock this run holds.
		n, err := st.Reviews().ApplyDecisions(ctx, runID)
		if err != nil {
			return res, err
		}
		if n > 0 {
			r.log.Info("review decisions applied", zap.Int("decisions", n))
		}
	}

	if len(ids) > 0 && r.opts.Stage != StagePublish {
		if err := r.prepareMatching(ctx); err != nil {
			r.log.Error("matching could not start", zap.Error(err))
			return res, err
		}
	}

	// Stage every selected source. A source not extracted now carries its
	// newest good delivery: one staged by an extract-only run, if newer
	// than the published one.
	states := make([]sourceState, len(r.cfg.Sources))
	for i, s := range r.cfg.Sources {
		states[i] = sourceState{src: s, rank: i}
	}
	changed := false
	var extract []int
	for i := range states {
		s := &states[i]
		cur, ok, err := st.CurrentDelivery(ctx, s.src.ID)
		if err != nil {
			return res, err
		}
		if ok {
			s.current = &cur
		}
		s.status = "carried"
		pending, ok, err := st.PendingDelivery(ctx, s.src.ID)
		if err != nil {
			return res, err
		}
		if ok && (s.current == nil || pending.ID > s.current.ID) {
			s.current, s.status = &pending, "pending"
			changed = true
		}
		if !r.selected(s.src.ID) {
			// Not extracted now: stale if its last extraction failed.
			if s.lastErr, err = st.LastError(ctx, s.src.ID); err != nil {
				return res, err
			}
			continue
		}
		extract = append(extract, i)
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	results := r.stageAll(ctx, states, extract)
	if err := ctx.Err(); err != nil {
		return res, err
	}
	for _, i := range extract {
		s := &states[i]
		d, status, err := results[i].delivery, results[i].status, results[i].err
		switch {
		case err != nil && ctx.Err() != nil:
			return res, ctx.Err()
		case errors.Is(err, ErrDeltaGap) && d.ID != 0:
			// Published up to the gap, and stale.
			s.status, s.err, s.current = "failed", err, &d
			changed = true
			r.log.Error("delta missing; the source is published up to the gap and stays stale", zap.String("source", s.src.ID), zap.Error(err))
		case err != nil:
			s.status, s.err = "failed", err
			r.log.Error("source failed; its last good delivery stays in the index", zap.String("source", s.src.ID), zap.Error(err))
		case status == "unchanged":
			if s.status != "pending" {
				s.status = status
			}
		default:
			s.status, s.current = status, &d
			changed = true
		}
	}

	var failed []string
	for _, s := range states {
		if s.status == "failed" {
			failed = append(failed, s.src.ID)
		}
	}
	failure := func(what string) (Result, error) {
		res.Status = store.RunFailed
		res.Message = fmt.Sprintf("%s, but %d source(s) failed: %s", what, len(failed), strings.Join(failed, ", "))
		return res, fmt.Errorf("%w: %s", ErrSourcesFailed, strings.Join(failed, ", "))
	}

	if r.opts.Stage == StageExtract {
		outcomes = extractOutcomes(states, r.selected)
		res.Sources = outcomes
		if len(failed) > 0 {
			return failure("extracted")
		}
		res.Status, res.Message = store.RunSucceeded, "extracted; the next publish picks the deliveries up"
		return res, nil
	}

	if !changed {
		// A decision not yet in a published version forces a new one.
		n, err := st.Reviews().PendingDecisions(ctx)
		if err != nil {
			return res, err
		}
		if n > 0 {
			r.log.Info("review decisions to publish", zap.Int("decisions", n))
			changed = true
		}
	}
	live, haveLive, err := st.Live(ctx)
	if err != nil {
		return res, err
	}
	if haveLive && !changed && live.RegisterHash == ru.hash() && sameStale(live.Stale, states) {
		for _, s := range states {
			outcomes = append(outcomes, store.SourceOutcome{SourceID: s.src.ID, OrgCode: s.src.Org, Status: s.status,
				DeliveryID: s.deliveryID(), Delivery: s.deliveryName(), Stale: s.stale(), Error: errText(s.err)})
		}
		res.Sources = outcomes
		r.log.Info("nothing changed; the live version stays", zap.Int64("version", live.Version))
		if len(failed) > 0 {
			return failure(fmt.Sprintf("nothing new to publish; version %d stays live", live.Version))
		}
		res.Status, res.Message = store.RunUnchanged, "no new deliveries and no change to the objection register: nothing to publish"
		return res, nil
	}

	pub, err := r.publish(ctx, ru, states)
	res.Version, res.Sources = pub.version, pub.outcomes
	res.Patients, res.WithheldPatients, res.Locations, res.Items = pub.patients, pub.withheld, pub.locations, pub.items
	outcomes = pub.outcomes
	if err != nil {
		return res, err
	}
	if len(failed) > 0 {
		return failure(fmt.Sprintf("published version %d", pub.version))
	}
	res.Status, res.Message = store.RunSucceeded, fmt.Sprintf("published version %d", pub.version)
	return res, nil
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// extractOutcomes are the ledger lines of an extract-only run: what was
// staged is pending until a publish loads or withholds it.
func extractOutcomes(states []sourceState, selected func(string) bool) []store.SourceOutcome {
	var out []store.SourceOutcome
	for _, s := range states {
		if !selected(s.src.ID) {
			continue
		}
		o := store.SourceOutcome{SourceID: s.src.ID, OrgCode: s.src.Org, Status: s.status, Stale: s.status == "failed",
			Error: errText(s.err)}
		if s.status == "new" && s.current != nil {
			d := s.current
			o.DeliveryID, o.Delivery = d.ID, d.Name
			o.RowsIn, o.Quarantined, o.Merged = d.RowsIn, d.Quarantined, d.Merged
			o.Pending = d.RowsIn - d.Quarantined - d.Merged
		}
		out = append(out, o)
	}
	return out
}

// sourceState is one source during a run.
type sourceState struct {
	src     config.Source
	rank    int
	status  string // new, unchanged, failed, carried
	err     error
	current *store.Delivery // the delivery in the new version
	// lastErr is why the last extraction of a source not extracted in
	// this run failed.
	lastErr string
}

func (s sourceState) stale() bool { return s.status == "failed" || s.current == nil || s.lastErr != "" }

func (s sourceState) deliveryID() int64 {
	if s.current == nil {
		return 0
	}
	return s.current.ID
}

func (s sourceState) deliveryName() string {
	if s.current == nil {
		return ""
	}
	return s.current.Name
}

func sameStale(live []string, states []sourceState) bool {
	var now []string
	for _, s := range states {
		if s.stale() {
			now = append(now, s.src.ID)
		}
	}
	slices.Sort(now)
	l := slices.Clone(live)
	slices.Sort(l)
	return slices.Equal(l, now)
}

// delivery is a source's opened delivery.
type delivery struct {
	reader rowsource.Reader
	path   string // a folder delivery's file
	name   string
	hash   string // empty until read, for query sources
	at     time.Time
	hasher *folder.Hasher
	close  func()
	bucket *s3drop.Bucket // an S3 delivery's bucket
	key    string         // and its object key
	// processed, when set, archives or tags the delivery once staged.
	processed func() error
}

// completeness builds a source's completeness policy.
func completeness(src config.Source, c *config.Complete, archive string) folder.Completeness {
	out := folder.Completeness{ArchiveDir: archive}
	if c != nil {
		out.Marker, out.Manifest, out.StableFor = c.Marker, c.Manifest, time.Duration(c.StableFor)
		out.Count = manifest.Counter{Delimited: delimitedOptions(src), Sheet: src.Format.Sheet}
	}
	return out
}

func delimitedOptions(src config.Source) delimited.Options {
	delim := map[string]rune{"csv": ',', "tsv": '\t', "pipe": '|'}[src.Format.Type]
	if src.Format.Delimiter != "" {
		delim = []rune(src.Format.Delimiter)[0]
	}
	return delimited.Options{Delimiter: delim, Encoding: src.Format.Encoding, TrimSpace: src.Format.TrimSpace}
}

// open finds and opens a source's newest delivery.
func (r *runner) open(ctx context.Context, src config.Source) (*delivery, error) {
	if f := src.From.Folder; f != nil {
		c := completeness(src, f.Complete, f.Archive)
		found, err := c.Find(f.Path, f.Pattern)
		if err != nil {
			return nil, err
		}
		if err := c.Check(ctx, f.Path, found, r.opts.Now()); err != nil {
			return nil, fmt.Errorf("%s: %w", found.Name, err)
		}
		hash, err := folder.Hash(ctx, found.Path)
		if err != nil {
			return nil, err
		}
		d := &delivery{path: found.Path, name: found.Name, hash: hash, at: found.ModTime}
		d.close = func() {}
		if f.Archive != "" {
			d.processed = func() error { _, err := c.Archive(found); return err }
		}
		return d, nil
	}
	if b := src.From.S3; b != nil {
		bucket, err := s3drop.New(ctx, s3drop.Options{Bucket: b.Bucket, Prefix: b.Prefix, Pattern: b.Pattern, Endpoint: b.Endpoint,
			Region: b.Region, PathStyle: b.PathStyle, AccessKeyEnv: b.AccessKeyEnv, SecretKeyEnv: b.SecretKeyEnv}, r.opts.LookupEnv)
		if err != nil {
			return nil, err
		}
		c := completeness(src, b.Complete, "")
		obj, err := bucket.FindDelivery(ctx, c)
		if err != nil {
			return nil, err
		}
		if err := bucket.Check(ctx, c, obj, r.opts.Now()); err != nil {
			return nil, fmt.Errorf("%s: %w", obj.Name, err)
		}
		hash, err := bucket.Hash(ctx, obj.Key)
		if err != nil {
			return nil, err
		}
		d := &delivery{name: obj.Name, hash: hash, at: obj.LastModified, bucket: bucket, key: obj.Key, close: func() {}}
		if len(b.Tag) > 0 {
			d.processed = func() error { return bucket.Tag(ctx, obj.Key, b.Tag) }
		}
		return d, nil
	}
	q := src.From.SQL
	db, err := r.opts.SQLOpen(q.Driver, q.DSN)
	if err != nil {
		return nil, fmt.Errorf("connecting to export database: %w", err)
	}
	rd, err := sqlquery.Open(ctx, db, src.ID, q.Query)
	if err != nil {
		db.Close()
		return nil, err
	}
	return &delivery{reader: rd, name: "query:" + src.ID, at: r.opts.Now(), hasher: folder.NewHasher(),
		close: func() { rd.Close(); db.Close() }}, nil
}

// openFile opens a file delivery's reader (after the hash check), from a
// folder or an S3 bucket.
func openFile(ctx context.Context, src config.Source, d *delivery) (rowsource.Reader, error) {
	opts := delimitedOptions(src)
	switch {
	case d.bucket != nil && src.Format.Type == "xlsx":
		return d.bucket.OpenXLSX(ctx, d.key, src.Format.Sheet, xlsx.Options{})
	case d.bucket != nil:
		return d.bucket.OpenDelimited(ctx, d.key, opts)
	case src.Format.Type == "xlsx":
		return xlsx.Open(ctx, d.path, src.Format.Sheet, xlsx.Options{})
	default:
		return delimited.Open(d.path, opts)
	}
}

// OpenExportDB opens an organisation's export database. MySQL and MariaDB
// DSNs get parseTime=true, loc=UTC and time_zone='+00:00' unless they say
// otherwise, so that dates and times read as they do from PostgreSQL.
func OpenExportDB(driver, dsn string) (*sql.DB, error) {
	if driver != "mysql" {
		return sql.Open(driver, dsn)
	}
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("mysql dsn: %w", err)
	}
	if !strings.Contains(dsn, "parseTime=") {
		cfg.ParseTime = true
	}
	if !strings.Contains(dsn, "loc=") {
		cfg.Loc = time.UTC
	}
	if _, ok := cfg.Params["time_zone"]; !ok {
		if cfg.Params == nil {
			cfg.Params = map[string]string{}
		}
		cfg.Params["time_zone"] = "'+00:00'"
	}
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("mysql dsn: %w", err)
	}
	return sql.OpenDB(conn), nil
}

func (r *runner) mapperOptions(src config.Source) normalise.Options {
	return normalise.Options{SourceID: src.ID, OrgCode: src.Org, OrgType: src.OrgType, Columns: src.Columns,
		DateFormats: src.DateFormats, TestData: src.TestData, ItemKind: src.ItemKind, CodeSystem: src.CodeSystem, Now: r.opts.Now()}
}

// stage extracts one source into the store. status is new or unchanged.
func (r *runner) stage(ctx context.Context, src config.Source, current *store.Delivery) (store.Delivery, string, error) {
	if src.Mode == "delta" {
		return r.stageDeltas(ctx, src, current)
	}
	log := r.log.With(zap.String("source", src.ID), zap.String("stage", "extract"))
	d, err := r.open(ctx, src)
	switch {
	case current != nil && errors.Is(err, folder.ErrIncomplete):
		log.Info("the newest delivery is not complete yet; the current one stays", zap.Error(err))
		return *current, "unchanged", nil
	case current != nil && errors.Is(err, folder.ErrNoDelivery) && archives(src):
		// Processed deliveries were archived: nothing new has arrived.
		return *current, "unchanged", nil
	case err != nil:
		return store.Delivery{}, "", fmt.Errorf("extracting %s: %w", src.ID, err)
	}
	defer d.close()
	if d.hash != "" && current != nil && current.Hash == d.hash {
		log.Info("delivery already in the index; not read again", zap.String("delivery", d.name))
		return *current, "unchanged", nil
	}
	return r.stageFile(ctx, src, d, current, nil, 0)
}

// stageFile reads an opened delivery into the store. A delta (base not
// nil) is applied on top of the base delivery.
func (r *runner) stageFile(ctx context.Context, src config.Source, d *delivery, current, base *store.Delivery, seq int64) (store.Delivery, string, error) {
	log := r.log.With(zap.String("source", src.ID), zap.String("stage", "extract"))
	mapper, closeReader, err := r.mapped(ctx, src, d)
	if err != nil {
		return store.Delivery{}, "", err
	}
	defer closeReader()
	nd := store.Delivery{SourceID: src.ID, OrgCode: src.Org, Kind: src.Kind, Name: d.name, Hash: d.hash, ReceivedAt: d.at, Seq: seq}
	if base != nil {
		nd.Base = base.ID
	}
	stager, err := r.opts.Store.BeginDelivery(ctx, r.runID, nd)
	if err != nil {
		return store.Delivery{}, "", err
	}
	committed := false
	defer func() {
		if !committed {
			stager.Abort(ctx)
		}
	}()
	linker := link.New(r.opts.Store.Links(), r.runID).WithDelivery(stager.DeliveryID())
	if r.matcher != nil && src.Kind == "persons" {
		linker.WithMatcher(r.matcher, r.thresholds)
	}
	// Batches are linked and staged by a worker while the next one is read:
	// reading and normalising overlap with the store's work.
	var persons []record.Person
	var items []record.CareItem
	var rejects []store.Reject
	rowsIn := 0
	stageBatch := func(b stagingBatch) error {
		if len(b.persons) > 0 {
			// Deletions of a delta are staged as they are; the rest is linked.
			var deletions []store.StagedPerson
			live := b.persons[:0]
			for _, p := range b.persons {
				if p.Deleted {
					deletions = append(deletions, store.StagedPerson{Person: p})
				} else {
					live = append(live, p)
				}
			}
			if err := stager.AddPersons(ctx, deletions); err != nil {
				return err
			}
			linked, held, err := linker.Link(ctx, src.ID, src.Org, live)
			if err != nil {
				return err
			}
			b.rejects = append(b.rejects, held...)
			if err := stager.AddPersons(ctx, linked); err != nil {
				return err
			}
		}
		if len(b.items) > 0 {
			if err := stager.AddItems(ctx, b.items); err != nil {
				return err
			}
		}
		if len(b.rejects) > 0 {
			if err := stager.AddRejects(ctx, b.rejects); err != nil {
				return err
			}
		}
		return nil
	}
	worker := newStagingWorker(stageBatch)
	defer worker.stop()
	flush := func() error {
		err := worker.send(stagingBatch{persons: persons, items: items, rejects: rejects})
		persons, items, rejects = nil, nil, nil
		return err
	}
	reasons := map[string]int{}
	started := time.Now()
	lastProgress := started
	progress := func(done bool) {
		if r.opts.Progress != nil {
			r.opts.Progress(Progress{SourceID: src.ID, Rows: rowsIn, Elapsed: time.Since(started), Done: done})
		}
	}
	for d.reader.Next(ctx) {
		row := d.reader.Row()
		rowsIn++
		if rowsIn%4096 == 0 && r.opts.Progress != nil && time.Since(lastProgress) > time.Second {
			lastProgress = time.Now()
			progress(false)
		}
		if d.hasher != nil {
			d.hasher.Add(row.Values)
		}
		var rerr error
		if src.Kind == "persons" {
			var p record.Person
			if p, rerr = mapper.Person(row); rerr == nil {
				persons = append(persons, p)
			}
		} else {
			var it record.CareItem
			if it, rerr = mapper.CareItem(row); rerr == nil {
				items = append(items, it)
			}
		}
		if rerr != nil {
			reasons[reasonKind(rerr.Error())]++
			rejects = append(rejects, store.Reject{SourceID: src.ID, File: row.File, Line: row.Line, Reason: rerr.Error(), Raw: row.Raw})
		}
		if len(persons)+len(items)+len(rejects) >= batchSize {
			if err := flush(); err != nil {
				return store.Delivery{}, "", fmt.Errorf("extracting %s: %w", src.ID, err)
			}
		}
	}
	if err := d.reader.Err(); err != nil {
		return store.Delivery{}, "", fmt.Errorf("extracting %s: %s: %w", src.ID, d.name, err)
	}
	if d.hasher != nil {
		d.hash = d.hasher.Sum()
		if current != nil && current.Hash == d.hash {
			log.Info("query result identical to the one in the index; not staged again")
			return *current, "unchanged", nil
		}
		if err := stager.SetHash(ctx, d.hash); err != nil {
			return store.Delivery{}, "", err
		}
	}
	if err := flush(); err != nil {
		return store.Delivery{}, "", fmt.Errorf("extracting %s: %w", src.ID, err)
	}
	if err := worker.stop(); err != nil {
		return store.Delivery{}, "", fmt.Errorf("extracting %s: %w", src.ID, err)
	}
	staged, err := stager.Commit(ctx, rowsIn)
	if err != nil {
		return store.Delivery{}, "", err
	}
	committed = true
	progress(true)
	if d.processed != nil {
		if err := d.processed(); err != nil {
			log.Warn("could not archive or tag the processed delivery", zap.String("delivery", d.name), zap.Error(err))
		}
	}
	if reason := shrunk(src, current, staged); base == nil && reason != "" {
		if err := r.opts.Store.HoldDelivery(ctx, staged.ID, reason); err != nil {
			return store.Delivery{}, "", err
		}
		log.Warn("delivery held for review; the last good delivery stays in the index", zap.String("delivery", d.name),
			zap.Int("rows_in", rowsIn))
		return store.Delivery{}, "", fmt.Errorf("%w: %s: %s (careindex accept --source %s publishes it)", ErrHeld, d.name, reason, src.ID)
	}
	fields := []zap.Field{zap.String("delivery", d.name), zap.Int("rows_in", rowsIn), zap.Int("quarantined", staged.Quarantined),
		zap.Int("merged", staged.Merged)}
	for reason, n := range reasons {
		fields = append(fields, zap.Int("rejected: "+reason, n))
	}
	if ms := linker.Stats(); r.matcher != nil && src.Kind == "persons" {
		// Counts only: keys and fields are patient data.
		fields = append(fields, zap.Int("matched", ms.Matched), zap.Int("matched_linked", ms.Linked), zap.Int("matched_joined", ms.Joined),
			zap.Int("matched_review", ms.Review), zap.Int("matched_new", ms.New), zap.Int("held_nhs_demographics", ms.HeldNHS),
			zap.Int("match_candidates", ms.Candidates), zap.Int("match_oversized_keys", ms.OversizedKeys))
	}
	log.Info("delivery staged", fields...)
	return staged, "new", nil
}

// stagingBatch is one batch of a delivery's rows to link and stage.
type stagingBatch struct {
	persons []record.Person
	items   []record.CareItem
	rejects []store.Reject
}

// stagingWorker stages batches one at a time, in order, on a goroutine of
// its own, while the caller reads the next batch. The first error stops
// it: later batches are dropped and the error is returned by send and
// stop.
type stagingWorker struct {
	batches chan stagingBatch
	failed  chan struct{} // closed when a batch fails, after err is set
	done    chan struct{} // closed when the worker has ended
	err     error
	stopped bool
}

func newStagingWorker(stage func(stagingBatch) error) *stagingWorker {
	w := &stagingWorker{batches: make(chan stagingBatch, 1), failed: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for b := range w.batches {
			if w.err != nil {
				continue
			}
			if err := stage(b); err != nil {
				w.err = err
				close(w.failed)
			}
		}
	}()
	return w
}

// send queues a batch (waiting while one is queued already) and returns
// the error of an earlier batch, if one failed.
func (w *stagingWorker) send(b stagingBatch) error {
	select {
	case <-w.failed:
		return w.err
	default:
	}
	if len(b.persons)+len(b.items)+len(b.rejects) == 0 {
		return nil
	}
	select {
	case w.batches <- b:
		return nil
	case <-w.failed:
		return w.err
	}
}

// stop waits for the queued batches to be staged and returns the first
// error. It may be called more than once.
func (w *stagingWorker) stop() error {
	if !w.stopped {
		w.stopped = true
		close(w.batches)
	}
	<-w.done
	return w.err
}

// reasonKind is the field part of a reject reason ("date_of_birth"), for
// counting in logs.
func reasonKind(reason string) string {
	if i := strings.Index(reason, ":"); i > 0 && i < 40 {
		return reason[:i]
	}
	return "row"
}

// sourceConfig is one configured source.
type sourceConfig = config.Source

// mapped opens an opened delivery's rows (a query source comes with its
// reader; a file is opened now) and the mapper of the source's columns.
// The returned func closes a reader opened here.
func (r *runner) mapped(ctx context.Context, src config.Source, d *delivery) (*normalise.Mapper, func(), error) {
	closeReader := func() {}
	if d.reader == nil {
		rd, err := openFile(ctx, src, d)
		if err != nil {
			return nil, nil, fmt.Errorf("extracting %s: %w", src.ID, err)
		}
		d.reader, closeReader = rd, func() { rd.Close() }
	}
	m, err := newMapper(d, r.mapperOptions(src))
	if err != nil {
		closeReader()
		return nil, nil, fmt.Errorf("extracting %s: %w", src.ID, err)
	}
	return m, closeReader, nil
}

func newMapper(d *delivery, opts normalise.Options) (*normalise.Mapper, error) {
	m, err := normalise.NewMapper(d.reader.Header(), opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", d.name, err)
	}
	return m, nil
}

// prepareMatching loads the configured model, builds the run's matcher and
// makes the store's match state ready for it (re-filing every record when
// the blocking rules changed). Matching off, it does nothing.
func (r *runner) prepareMatching(ctx context.Context) error {
	mc := r.cfg.Matching
	if !mc.On() {
		return nil
	}
	model, raw, err := mc.LoadModel()
	if err != nil {
		return err
	}
	m, err := match.NewMatcher(model, mc.Thresholds())
	if err != nil {
		return fmt.Errorf("matching: %w", err)
	}
	started := time.Now()
	n, err := link.Prepare(ctx, r.opts.Store.Links(), m, raw)
	if err != nil {
		return fmt.Errorf("preparing the match state: %w", err)
	}
	if n > 0 {
		r.log.Info("blocking rules changed: match records filed under the new keys", zap.Int("records", n),
			zap.Duration("took", time.Since(started)))
	}
	r.matcher, r.thresholds = m, mc.Thresholds()
	return nil
}
