package daemon

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/go-co-op/gocron/v2"
	"github.com/google/uuid"
	"github.com/jonboulle/clockwork"
	"go.uber.org/zap"

	"github.com/careindex/careindex/loader/store"
	"github.com/careindex/careindex/schedules/alert"
	"github.com/careindex/careindex/schedules/config"
	"github.com/careindex/careindex/schedules/opstate"
	"github.com/careindex/careindex/schedules/pipeline"
)

// Observer hears what the daemon does, for metrics. Its methods are
// called from the jobs' goroutines and must not block.
type Observer interface {
	// RunFinished follows every run attempt.
	RunFinished(job Job, res pipeline.Result, err error, took time.Duration)
	// JobSkipped follows a run time that passed without a run: reason is
	// "locked" (another scheduler runs it), "running" (still running from
	// an earlier run time) or "done" (the ledger shows it already ran).
	JobSkipped(job Job, reason string)
	// Retrying follows a transient failure that will be retried.
	Retrying(job Job, attempt int, wait time.Duration)
	// AlertRaised follows every alert.
	AlertRaised(a alert.Alert)
}

// Options configure a Daemon. Config and Store are required.
type Options struct {
	Config *config.Config
	// Store is the open regional store every run uses.
	Store store.Store
	// Log receives the daemon's and the runs' logs. Defaults to none.
	Log *zap.Logger
	// Clock is the time source of schedules, retries and the runs.
	// Defaults to the real clock; tests pass a fake one.
	Clock clockwork.Clock
	// Locker keeps schedulers sharing the store from running a job at the
	// same time (a PGLocker). Nil: only this process is guarded, which is
	// right for a single scheduler.
	Locker gocron.Locker
	// Notifier sends alerts. Nil: alerts are only logged.
	Notifier alert.Notifier
	// Observer hears about runs, skips and alerts. Optional.
	Observer Observer
	// RunPipeline runs one job. Defaults to pipeline.Run.
	RunPipeline func(context.Context, pipeline.Options) (pipeline.Result, error)
	// StopTimeout is how long running jobs may go on after the daemon is
	// told to stop before their context is cancelled. Defaults to 2m.
	StopTimeout time.Duration
	// RecordTimeout is how long cancelled jobs get to record their end
	// in the ledger. Defaults to 40s.
	RecordTimeout time.Duration
	// MaxConcurrent is how many jobs may run at once; others wait their
	// turn. Defaults to 2.
	MaxConcurrent int
	// LedgerRuns is how many recent runs are read to find a job's last
	// run. Defaults to 100.
	LedgerRuns int
	// FreshnessEvery is how often sources' freshness is checked; negative
	// turns the check off. Defaults to 1m.
	FreshnessEvery time.Duration
	// NoCatchUp turns off running missed jobs at start-up.
	NoCatchUp bool
	// Jitter returns random numbers in [0, 1) for retry backoff. Defaults
	// to math/rand.
	Jitter func() float64
	// Instance names this process in alerts. Defaults to the host name.
	Instance string
}

// Daemon runs the configured jobs on their schedules until stopped.
type Daemon struct {
	opts  Options
	cfg   *config.Config
	log   *zap.Logger
	clock clockwork.Clock
	jobs  []*jobState
	sem   chan struct{}

	// soft ends when the daemon is told to stop: nothing new starts.
	// hard ends when running jobs must stop.
	soft       context.Context
	hard       context.Context
	hardCancel context.CancelFunc
	active     tracker

	levels map[string]opstate.Freshness // the freshness monitor's view
}

type jobState struct {
	Job
	running sync.Mutex // held while the job runs in this process
	gj      gocron.Job
}

// New checks the options and builds the jobs.
func New(opts Options) (*Daemon, error) {
	if opts.Config == nil || opts.Store == nil {
		return nil, errors.New("daemon: Config and Store are required")
	}
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	if opts.Clock == nil {
		opts.Clock = clockwork.NewRealClock()
	}
	if opts.Observer == nil {
		opts.Observer = nopObserver{}
	}
	if opts.RunPipeline == nil {
		opts.RunPipeline = pipeline.Run
	}
	if opts.StopTimeout <= 0 {
		opts.StopTimeout = 2 * time.Minute
	}
	if opts.RecordTimeout <= 0 {
		opts.RecordTimeout = 40 * time.Second
	}
	if opts.MaxConcurrent <= 0 {
		opts.MaxConcurrent = 2
	}
	if opts.LedgerRuns <= 0 {
		opts.LedgerRuns = 100
	}
	if opts.FreshnessEvery == 0 {
		opts.FreshnessEvery = time.Minute
	}
	if opts.Jitter == nil {
		opts.Jitter = rand.Float64
	}
	if opts.Instance == "" {
		opts.Instance, _ = os.Hostname()
	}
	jobs, err := Jobs(opts.Config)
	if err != nil {
		return nil, err
	}
	if len(jobs) == 0 {
		return nil, fmt.Errorf("%w: give the sources or publish a schedule", ErrNoJobs)
	}
	d := &Daemon{opts: opts, cfg: opts.Config, log: opts.Log, clock: opts.Clock,
		sem: make(chan struct{}, opts.MaxConcurrent), levels: map[string]opstate.Freshness{}}
	for _, j := range jobs {
		d.jobs = append(d.jobs, &jobState{Job: j})
	}
	return d, nil
}

// Jobs returns the daemon's jobs.
func (d *Daemon) Jobs() []Job {
	out := make([]Job, len(d.jobs))
	for i, js := range d.jobs {
		out[i] = js.Job
	}
	return out
}

// Run schedules the jobs, runs any missed at start-up once, watches the
// sources' freshness, and returns when ctx ends and the jobs have stopped:
// running jobs get StopTimeout to finish, then their context is cancelled
// and they get RecordTimeout to record how they ended.
func (d *Daemon) Run(ctx context.Context) error {
	if d.soft != nil {
		return errors.New("daemon: Run called twice")
	}
	d.soft = ctx
	d.hard, d.hardCancel = context.WithCancel(context.WithoutCancel(ctx))
	defer d.hardCancel()
	loc, err := d.cfg.Location()
	if err != nil {
		return err
	}
	sched, err := gocron.NewScheduler(
		gocron.WithClock(d.clock),
		gocron.WithLocation(loc),
		gocron.WithLogger(gocronLogger{d.log.Sugar()}),
		gocron.WithStopTimeout(d.opts.StopTimeout+d.opts.RecordTimeout+5*time.Second),
	)
	if err != nil {
		return fmt.Errorf("starting scheduler: %w", err)
	}
	for _, js := range d.jobs {
		opts := []gocron.JobOption{
			gocron.WithName(js.Name),
			gocron.WithSingletonMode(gocron.LimitModeReschedule),
			gocron.WithCronImplementation(gocronCron{js.Schedule}),
			gocron.WithEventListeners(gocron.AfterLockError(func(_ uuid.UUID, _ string, err error) {
				d.skip(js, "locked", d.log.With(zap.String("job", js.Name)), zap.Error(err))
			})),
		}
		if d.opts.Locker != nil {
			opts = append(opts, gocron.WithDistributedJobLocker(d.opts.Locker))
		}
		task := gocron.NewTask(func() { d.execute(js, slotOf(js.Schedule, d.clock.Now()), false, false) })
		if js.gj, err = sched.NewJob(gocron.CronJob(js.Schedule.String(), false), task, opts...); err != nil {
			return fmt.Errorf("scheduling %s: %w", js.Name, err)
		}
	}
	sched.Start()
	for _, js := range d.jobs {
		d.log.Info("job scheduled", zap.String("job", js.Name), zap.String("schedule", js.Schedule.String()),
			zap.Time("next_run", js.Schedule.Next(d.clock.Now())))
	}

	var bg sync.WaitGroup
	if !d.opts.NoCatchUp {
		bg.Go(d.catchUp)
	}
	if d.opts.FreshnessEvery > 0 && d.monitored() {
		bg.Go(d.monitor)
	}

	<-ctx.Done()
	d.log.Info("stopping: no new runs start; running jobs may finish", zap.Duration("stop_timeout", d.opts.StopTimeout))
	shutdown := make(chan error, 1)
	go func() { shutdown <- sched.Shutdown() }()
	if !d.waitIdle(d.opts.StopTimeout) {
		d.log.Warn("jobs still running at the stop timeout: cancelling them (their runs are recorded failed; the live index is untouched)")
		d.hardCancel()
		if !d.waitIdle(d.opts.RecordTimeout) {
			d.log.Error("jobs did not end after cancellation; stopping anyway")
		}
	}
	bgDone := make(chan struct{})
	go func() { bg.Wait(); close(bgDone) }()
	select {
	case <-bgDone:
	case <-d.clock.After(d.opts.RecordTimeout):
	}
	select {
	case err := <-shutdown:
		if err != nil && !errors.Is(err, gocron.ErrStopJobsTimedOut) {
			d.log.Warn("scheduler shutdown", zap.Error(err))
		}
	case <-d.clock.After(5 * time.Second):
	}
	d.log.Info("stopped")
	return nil
}

func (d *Daemon) waitIdle(timeout time.Duration) bool {
	select {
	case <-d.active.idle():
		return true
	case <-d.clock.After(timeout):
		return false
	}
}

// execute runs a job for the run time slot. lock says to take the
// distributed lock (gocron takes it for scheduled runs).
func (d *Daemon) execute(js *jobState, slot time.Time, catchUp, lock bool) {
	d.active.begin()
	defer d.active.end()
	if d.soft.Err() != nil {
		return
	}
	log := d.log.With(zap.String("job", js.Name), zap.Time("run_time", slot))
	if !js.running.TryLock() {
		d.skip(js, "running", log)
		return
	}
	defer js.running.Unlock()
	if lock && d.opts.Locker != nil {
		l, err := d.opts.Locker.Lock(d.soft, js.Name)
		if err != nil {
			d.skip(js, "locked", log, zap.Error(err))
			return
		}
		defer l.Unlock(d.hard)
	}
	select {
	case d.sem <- struct{}{}:
	case <-d.soft.Done():
		return
	}
	defer func() { <-d.sem }()

	// Another scheduler may have run this run time already, its run over
	// before this one took the lock.
	lctx, cancel := context.WithTimeout(d.soft, 30*time.Second)
	st, err := d.opts.Store.Status(lctx, d.opts.LedgerRuns)
	cancel()
	if err != nil {
		log.Warn("could not read the run ledger; running the job anyway", zap.Error(err))
	} else if last, ok := opstate.LastRun(st.Runs, js.Source); ok && covers(js.Schedule, last.StartedAt, slot) {
		d.skip(js, "done", log, zap.Int64("run_id", last.RunID), zap.Time("started", last.StartedAt))
		return
	}
	d.runWithRetries(js, slot, catchUp, log)
}

func (d *Daemon) skip(js *jobState, reason string, log *zap.Logger, fields ...zap.Field) {
	msg := map[string]string{
		"locked":  "run time skipped: another scheduler is running the job",
		"running": "run time skipped: the job is still running",
		"done":    "run time skipped: the ledger shows it already ran",
	}[reason]
	log.Info(msg, fields...)
	d.opts.Observer.JobSkipped(js.Job, reason)
}

// runWithRetries runs the job, retrying transient failures with backoff;
// every attempt is a run in the ledger.
func (d *Daemon) runWithRetries(js *jobState, slot time.Time, catchUp bool, log *zap.Logger) {
	attempts := max(d.cfg.Retry.Attempts, 1)
	var sources []string
	if js.Source != "" {
		sources = []string{js.Source}
	}
	var res pipeline.Result
	var err error
	n := 0
attempt:
	for n = 1; ; n++ {
		var notes []string
		if catchUp {
			notes = append(notes, "catch-up of the run due "+slot.In(js.Schedule.Location()).Format("2006-01-02 15:04 MST"))
			if n == 1 {
				log.Info("catch-up: the job missed its last run time while no scheduler was running; running it once now")
			}
		}
		if n > 1 {
			notes = append(notes, fmt.Sprintf("retry %d of %d", n-1, attempts-1))
		}
		st := d.opts.Store
		if len(notes) > 0 {
			st = notedStore{Store: st, note: strings.Join(notes, ", ")}
		}
		alog := log.With(zap.Int("attempt", n))
		started := d.clock.Now()
		alog.Info("job started")
		res, err = d.opts.RunPipeline(d.hard, pipeline.Options{Config: d.cfg, Store: st, Sources: sources, Stage: js.Stage,
			Now: d.clock.Now, Log: alog})
		took := d.clock.Since(started)
		d.opts.Observer.RunFinished(js.Job, res, err, took)
		fields := []zap.Field{zap.Int64("run_id", res.RunID), zap.String("status", string(res.Status)), zap.Duration("took", took)}
		if err == nil {
			alog.Info("job finished", fields...)
			break
		}
		transient := IsTransient(err)
		if !transient || n >= attempts || d.hard.Err() != nil {
			alog.Error("job failed", append(fields, zap.Bool("transient", transient), zap.Error(err))...)
			break
		}
		wait := Backoff(time.Duration(d.cfg.Retry.Backoff), time.Duration(d.cfg.Retry.MaxBackoff), n, d.opts.Jitter())
		alog.Warn("job failed for a transient reason; retrying", append(fields, zap.Duration("wait", wait), zap.Error(err))...)
		d.opts.Observer.Retrying(js.Job, n, wait)
		select {
		case <-d.clock.After(wait):
		case <-d.soft.Done():
			alog.Warn("stopping: the job is not retried")
			break attempt
		}
	}
	d.alertAfterRun(js, res, err, n)
}

// notedStore adds a note to the message a run records in the ledger
// ("catch-up of the run due …", "retry 1 of 2").
type notedStore struct {
	store.Store
	note string
}

func (s notedStore) FinishRun(ctx context.Context, runID int64, status store.RunStatus, message string, sources []store.SourceOutcome) error {
	if message == "" {
		message = s.note
	} else {
		message = s.note + ": " + message
	}
	return s.Store.FinishRun(ctx, runID, status, message, sources)
}

// alertAfterRun raises the alerts a finished job calls for.
func (d *Daemon) alertAfterRun(js *jobState, res pipeline.Result, err error, attempts int) {
	now := d.clock.Now()
	if err != nil {
		a := alert.Alert{Kind: alert.RunFailed, Severity: alert.Error, At: now, Job: js.Name, Source: js.Source,
			RunID: res.RunID, RunStatus: string(res.Status), Message: errText(res, err), Attempts: attempts}
		for _, o := range res.Sources {
			if o.Status == "failed" {
				a.FailedSources = append(a.FailedSources, o.SourceID)
			}
		}
		if src, ok := d.cfg.Source(js.Source); ok {
			a.Org = src.Org
		}
		switch {
		case errors.Is(err, pipeline.ErrBlocked):
			a.Kind = alert.PublicationBlocked
			a.Summary = fmt.Sprintf("Publication blocked (run %d): the objection register or sensitive code list is missing, unreadable or too old; the live version stays.", res.RunID)
		case len(a.FailedSources) > 0:
			a.Summary = fmt.Sprintf("%s: run %d failed to read %d source(s): %s.", js.Name, res.RunID, len(a.FailedSources), strings.Join(a.FailedSources, ", "))
		default:
			a.Summary = fmt.Sprintf("%s failed after %d attempt(s)", js.Name, attempts)
			if res.RunID != 0 {
				a.Summary += fmt.Sprintf(" (run %d)", res.RunID)
			}
			a.Summary += "."
		}
		d.raise(a)
	}
	for _, o := range res.Sources {
		if o.Status != "new" || o.RowsIn == 0 {
			continue
		}
		src, ok := d.cfg.Source(o.SourceID)
		if !ok {
			continue
		}
		rate, limit := float64(o.Quarantined)/float64(o.RowsIn), d.cfg.RejectRateThreshold(src)
		if rate <= limit {
			continue
		}
		d.raise(alert.Alert{Kind: alert.RejectRate, Severity: alert.Warning, At: now, Job: js.Name, Source: o.SourceID, Org: o.OrgCode,
			RunID: res.RunID, RunStatus: string(res.Status), Delivery: o.Delivery, RejectRate: rate, Threshold: limit,
			Counts: &alert.Counts{RowsIn: o.RowsIn, Loaded: o.Loaded, Quarantined: o.Quarantined, Withheld: o.Withheld, Merged: o.Merged, Pending: o.Pending},
			Summary: fmt.Sprintf("%s: %d of %d rows of %s quarantined (%.1f%%, threshold %.1f%%).", o.SourceID, o.Quarantined, o.RowsIn,
				o.Delivery, 100*rate, 100*limit)})
	}
}

func errText(res pipeline.Result, err error) string {
	if res.Message != "" {
		return res.Message
	}
	return err.Error()
}

// raise logs an alert and sends it.
func (d *Daemon) raise(a alert.Alert) {
	a.Instance = d.opts.Instance
	fields := []zap.Field{zap.String("alert", string(a.Kind))}
	if a.Source != "" {
		fields = append(fields, zap.String("source", a.Source))
	}
	if a.RunID != 0 {
		fields = append(fields, zap.Int64("run_id", a.RunID))
	}
	switch a.Severity {
	case alert.Error:
		d.log.Error(a.Summary, fields...)
	case alert.Warning:
		d.log.Warn(a.Summary, fields...)
	default:
		d.log.Info(a.Summary, fields...)
	}
	d.opts.Observer.AlertRaised(a)
	if d.opts.Notifier != nil {
		d.opts.Notifier.Notify(d.hard, a)
	}
}

// tracker counts the jobs executing, to wait for them at shutdown.
type tracker struct {
	mu   sync.Mutex
	n    int
	zero chan struct{} // closed when n drops to 0
}

func (t *tracker) begin() {
	t.mu.Lock()
	if t.n == 0 {
		t.zero = make(chan struct{})
	}
	t.n++
	t.mu.Unlock()
}

func (t *tracker) end() {
	t.mu.Lock()
	t.n--
	if t.n == 0 {
		close(t.zero)
	}
	t.mu.Unlock()
}

func (t *tracker) idle() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.n == 0 {
		c := make(chan struct{})
		close(c)
		return c
	}
	return t.zero
}

// gocronCron plugs a Schedule into gocron.
type gocronCron struct{ s *Cron }

func (c gocronCron) IsValid(string, *time.Location, time.Time) error { return nil }
func (c gocronCron) Next(t time.Time) time.Time                      { return c.s.Next(t) }

// gocronLogger sends gocron's own messages to zap at debug level, its
// errors at error level.
type gocronLogger struct{ s *zap.SugaredLogger }

func (l gocronLogger) Debug(msg string, args ...any) { l.s.Debugw(msg, args...) }
func (l gocronLogger) Info(msg string, args ...any)  { l.s.Debugw(msg, args...) }
func (l gocronLogger) Warn(msg string, args ...any)  { l.s.Warnw(msg, args...) }
func (l gocronLogger) Error(msg string, args ...any) { l.s.Errorw(msg, args...) }

type nopObserver struct{}

func (nopObserver) RunFinished(Job, pipeline.Result, error, time.Duration) {}
func (nopObserver) JobSkipped(Job, string)                                 {}
func (nopObserver) Retrying(Job, int, time.Duration)                       {}
func (nopObserver) AlertRaised(alert.Alert)                                {}
