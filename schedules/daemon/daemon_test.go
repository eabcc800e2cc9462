package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/careindex/careindex/loader/pgstore"
	"github.com/careindex/careindex/loader/store"
	"github.com/careindex/careindex/schedules/alert"
	"github.com/careindex/careindex/schedules/config"
	"github.com/careindex/careindex/schedules/daemon"
	"github.com/careindex/careindex/schedules/pipeline"
)

type testBundle struct {
	clock    *clockwork.FakeClock
	store    *fakeStore
	pipeline *fakePipeline
	rec      *recorder
	cfg      *config.Config
}

func setup(t *testing.T, at time.Time, cfg *config.Config) *testBundle {
	t.Helper()
	return &testBundle{clock: clockwork.NewFakeClockAt(at), store: newFakeStore(), pipeline: newFakePipeline(), rec: newRecorder(), cfg: cfg}
}

func (b *testBundle) options() daemon.Options {
	return daemon.Options{Config: b.cfg, Store: b.store, Clock: b.clock, RunPipeline: b.pipeline.run, Notifier: b.rec, Observer: b.rec,
		NoCatchUp: true, FreshnessEvery: -1, Jitter: func() float64 { return 0.5 }}
}

func (b *testBundle) start(t *testing.T, opts daemon.Options) (stop func()) {
	t.Helper()
	d, err := daemon.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return start(t, d)
}

// advanceTo moves the fake clock to at, once the scheduler has set its
// timers (waiters of them).
func (b *testBundle) advanceTo(t *testing.T, at time.Time, waiters int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.clock.BlockUntilContext(ctx, waiters); err != nil {
		t.Fatalf("the scheduler set no timer: %v", err)
	}
	b.clock.Advance(at.Sub(b.clock.Now()))
}

// The spring-forward and fall-back nights of 2026, through gocron on a
// fake clock: the 01:30 job runs exactly once each night.
func TestDaylightSavingNightsRunOnce(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		start     time.Time
		want      []string // run times, UTC
		end       time.Time
		wantLocal []string
	}{
		{"spring forward", utc("2026-03-28T12:00:00Z"), []string{"2026-03-29T01:30:00Z", "2026-03-30T00:30:00Z"}, utc("2026-03-30T12:00:00Z"),
			[]string{"2026-03-29 02:30 BST", "2026-03-30 01:30 BST"}},
		{"fall back", utc("2026-10-24T12:00:00Z"), []string{"2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"}, utc("2026-10-26T12:00:00Z"),
			[]string{"2026-10-25 01:30 BST", "2026-10-26 01:30 GMT"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, tc.start, testConfig(t, "", "gp-patients", "30 1 * * *"))
			b.start(t, b.options())
			for i, w := range tc.want {
				b.advanceTo(t, utc(w).Add(-time.Second), 1)
				b.pipeline.none(t)
				b.advanceTo(t, utc(w), 1)
				c := b.pipeline.next(t)
				if !c.at.Equal(utc(w)) {
					t.Fatalf("run %d at %s, want %s", i+1, c.at.UTC(), w)
				}
				if got := c.at.In(london(t)).Format("2006-01-02 15:04 MST"); got != tc.wantLocal[i] {
					t.Errorf("run %d at %s, want %s", i+1, got, tc.wantLocal[i])
				}
				if c.opts.Stage != pipeline.StageExtract || strings.Join(c.opts.Sources, ",") != "gp-patients" {
					t.Errorf("run %d: stage %s sources %v, want extract of gp-patients", i+1, c.opts.Stage, c.opts.Sources)
				}
			}
			b.advanceTo(t, tc.end, 1)
			b.pipeline.none(t)
			if n := len(b.store.ledger()); n != len(tc.want) {
				t.Errorf("ledger has %d runs, want %d", n, len(tc.want))
			}
		})
	}
}

// Each source's extract job and the publish job run on their own schedules.
func TestJobsRunOnTheirSchedules(t *testing.T) {
	t.Parallel()
	b := setup(t, utc("2026-11-23T12:00:00Z"), testConfig(t, "0 5 * * *", "gp-patients", "30 1 * * *", "gp-problems", "35 1 * * *"))
	b.start(t, b.options())
	want := []struct {
		at      string
		stage   pipeline.Stage
		sources string
	}{
		{"2026-11-24T01:30:00Z", pipeline.StageExtract, "gp-patients"},
		{"2026-11-24T01:35:00Z", pipeline.StageExtract, "gp-problems"},
		{"2026-11-24T05:00:00Z", pipeline.StagePublish, ""},
	}
	for _, w := range want {
		b.advanceTo(t, utc(w.at), 3)
		c := b.pipeline.next(t)
		if !c.at.Equal(utc(w.at)) || c.opts.Stage != w.stage || strings.Join(c.opts.Sources, ",") != w.sources {
			t.Errorf("run at %s stage %s sources %v, want %s %s %q", c.at.UTC(), c.opts.Stage, c.opts.Sources, w.at, w.stage, w.sources)
		}
	}
	runs := b.store.ledger()
	if len(runs) != 3 || runs[2].Kind != "publish" || runs[0].Kind != "extract" {
		t.Errorf("ledger = %+v, want two extract runs and a publish run", runs)
	}
}

// A transient failure is retried with exponential backoff; each attempt
// is a run in the ledger, noted as a retry.
func TestTransientFailuresAreRetried(t *testing.T) {
	t.Parallel()
	b := setup(t, utc("2026-11-23T12:00:00Z"), testConfig(t, "", "gp-patients", "30 1 * * *"))
	b.pipeline.result = func(n int, _ pipeline.Options) (pipeline.Result, error) {
		if n < 3 {
			return pipeline.Result{Status: store.RunFailed, Message: "connection refused"}, fmt.Errorf("starting run: %w", pgstore.ErrBusy)
		}
		return pipeline.Result{Status: store.RunSucceeded, Message: "extracted"}, nil
	}
	b.start(t, b.options())
	b.advanceTo(t, utc("2026-11-24T01:30:00Z"), 1)
	b.pipeline.next(t)
	// The first retry waits the 30s backoff (jitter 0.5 is exact), the
	// second twice that. Both waits and the scheduler's timer are waiters.
	b.advanceTo(t, utc("2026-11-24T01:30:29Z"), 2)
	b.pipeline.none(t)
	b.advanceTo(t, utc("2026-11-24T01:30:30Z"), 2)
	if c := b.pipeline.next(t); !c.at.Equal(utc("2026-11-24T01:30:30Z")) {
		t.Errorf("second attempt at %s, want 01:30:30", c.at.UTC())
	}
	b.advanceTo(t, utc("2026-11-24T01:31:30Z"), 2)
	if c := b.pipeline.next(t); !c.at.Equal(utc("2026-11-24T01:31:30Z")) {
		t.Errorf("third attempt at %s, want 01:31:30", c.at.UTC())
	}
	b.pipeline.none(t)
	runs := b.store.ledger()
	wantMsgs := []string{"connection refused", "retry 1 of 2: connection refused", "retry 2 of 2: extracted"}
	if len(runs) != 3 {
		t.Fatalf("ledger has %d runs, want 3", len(runs))
	}
	for i, w := range wantMsgs {
		if runs[i].Message != w {
			t.Errorf("run %d message %q, want %q", i+1, runs[i].Message, w)
		}
	}
	b.rec.noAlert(t)
}

func TestRetriesAreBoundedThenAlert(t *testing.T) {
	t.Parallel()
	b := setup(t, utc("2026-11-23T12:00:00Z"), testConfig(t, "", "gp-patients", "30 1 * * *"))
	b.pipeline.result = func(int, pipeline.Options) (pipeline.Result, error) {
		return pipeline.Result{Status: store.RunFailed}, fmt.Errorf("starting run: %w", pgstore.ErrBusy)
	}
	b.cfg.Retry.Attempts = 2
	b.start(t, b.options())
	b.advanceTo(t, utc("2026-11-24T01:30:00Z"), 1)
	b.pipeline.next(t)
	b.advanceTo(t, utc("2026-11-24T01:30:30Z"), 2)
	b.pipeline.next(t)
	a := b.rec.nextAlert(t)
	if a.Kind != alert.RunFailed || a.Severity != alert.Error || a.Attempts != 2 || a.Job != "extract gp-patients" || a.Source != "gp-patients" {
		t.Errorf("alert = %+v, want run_failed after 2 attempts of extract gp-patients", a)
	}
	b.advanceTo(t, utc("2026-11-24T12:00:00Z"), 1)
	b.pipeline.none(t)
}

// Bad data is never retried: a blocked publication, a failed source, an
// invalid configuration.
func TestPermanentFailuresAreNotRetried(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		err       error
		sources   []store.SourceOutcome
		wantKind  alert.Kind
		wantFails []string
	}{
		{"blocked", fmt.Errorf("%w: objection register is 40h old", pipeline.ErrBlocked), nil, alert.PublicationBlocked, nil},
		{"source failed", fmt.Errorf("%w: gp-patients", pipeline.ErrSourcesFailed),
			[]store.SourceOutcome{{SourceID: "gp-patients", Status: "failed", Error: "header lacks PatientID"}}, alert.RunFailed, []string{"gp-patients"}},
		{"invalid config", fmt.Errorf("%w: bad", config.ErrInvalid), nil, alert.RunFailed, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, at := testConfig(t, "", "gp-patients", "30 1 * * *"), "2026-11-24T01:30:00Z"
			if tc.wantKind == alert.PublicationBlocked {
				cfg, at = testConfig(t, "0 5 * * *", "gp-patients", ""), "2026-11-24T05:00:00Z"
			}
			b := setup(t, utc("2026-11-23T12:00:00Z"), cfg)
			b.pipeline.result = func(int, pipeline.Options) (pipeline.Result, error) {
				return pipeline.Result{Status: store.RunFailed, Sources: tc.sources}, tc.err
			}
			b.start(t, b.options())
			b.advanceTo(t, utc(at), 1)
			b.pipeline.next(t)
			a := b.rec.nextAlert(t)
			if a.Kind != tc.wantKind || strings.Join(a.FailedSources, ",") != strings.Join(tc.wantFails, ",") || a.Attempts != 1 {
				t.Errorf("alert = %+v, want %s with failed sources %v after 1 attempt", a, tc.wantKind, tc.wantFails)
			}
			b.advanceTo(t, utc(at).Add(20*time.Minute), 1)
			b.pipeline.none(t)
		})
	}
}

// A daemon that was down when jobs were due runs each missed job once at
// start-up (extracts first, then publish), noting it in the ledger; jobs
// that ran, or never ran, wait for their run time.
func TestCatchUpRunsMissedJobsOnce(t *testing.T) {
	t.Parallel()
	now := utc("2026-11-26T10:00:00Z")
	b := setup(t, now, testConfig(t, "0 5 * * *", "gp-patients", "30 1 * * *", "gp-problems", "35 1 * * *", "la-clients", "0 2 * * *"))
	// gp-patients last ran three nights ago; gp-problems ran last night;
	// la-clients never ran; publish last ran three nights ago.
	b.store.addRun("extract", utc("2026-11-23T01:30:00.2Z"), "gp-patients")
	b.store.addRun("publish", utc("2026-11-23T05:00:01Z"))
	b.store.addRun("extract", utc("2026-11-26T01:35:00.1Z"), "gp-problems")
	opts := b.options()
	opts.NoCatchUp = false
	b.start(t, opts)

	first := b.pipeline.next(t)
	second := b.pipeline.next(t)
	b.pipeline.none(t)
	if first.opts.Stage != pipeline.StageExtract || strings.Join(first.opts.Sources, ",") != "gp-patients" {
		t.Errorf("first catch-up run: %s %v, want extract gp-patients", first.opts.Stage, first.opts.Sources)
	}
	if second.opts.Stage != pipeline.StagePublish {
		t.Errorf("second catch-up run: %s, want publish", second.opts.Stage)
	}
	runs := b.store.ledger()[3:]
	want := []string{"catch-up of the run due 2026-11-26 01:30 GMT: done", "catch-up of the run due 2026-11-26 05:00 GMT: done"}
	for i, r := range runs {
		if r.Message != want[i] {
			t.Errorf("catch-up run %d message %q, want %q", i+1, r.Message, want[i])
		}
	}
	// Tonight everything runs on schedule, once.
	b.advanceTo(t, utc("2026-11-27T05:00:00Z"), 4)
	for range 4 {
		b.pipeline.next(t)
	}
	b.pipeline.none(t)
}

// A run of the job recorded after the run time (by another scheduler) means
// this one skips it.
func TestRunTimeAlreadyRunElsewhereIsSkipped(t *testing.T) {
	t.Parallel()
	b := setup(t, utc("2026-11-23T12:00:00Z"), testConfig(t, "", "gp-patients", "30 1 * * *"))
	b.start(t, b.options())
	b.advanceTo(t, utc("2026-11-24T01:29:00Z"), 1)
	b.store.addRun("extract", utc("2026-11-24T01:29:59.9Z"), "gp-patients") // its clock is a little ahead
	b.advanceTo(t, utc("2026-11-24T01:30:00Z"), 1)
	b.pipeline.none(t)
	b.rec.mu.Lock()
	defer b.rec.mu.Unlock()
	if strings.Join(b.rec.skipped, ";") != "extract gp-patients: done" {
		t.Errorf("skipped = %v, want the run time skipped as done", b.rec.skipped)
	}
}

// A job never overlaps itself: run times that come while it runs are skipped.
func TestJobNeverOverlapsItself(t *testing.T) {
	t.Parallel()
	b := setup(t, utc("2026-11-23T12:00:00Z"), testConfig(t, "", "gp-patients", "*/10 * * * * *"))
	b.pipeline.block = make(chan struct{})
	b.start(t, b.options())
	b.advanceTo(t, utc("2026-11-23T12:00:10Z"), 1)
	b.pipeline.next(t)
	for _, at := range []string{"2026-11-23T12:00:20Z", "2026-11-23T12:00:30Z", "2026-11-23T12:00:40Z"} {
		b.advanceTo(t, utc(at), 1)
		b.pipeline.none(t)
	}
	close(b.pipeline.block)
	waitFor(t, func() bool { return b.store.ledger()[0].Status == store.RunSucceeded })
	// The next run time after the run ended runs again (allowing the
	// scheduler a moment to see the run end).
	for i := range 3 {
		b.advanceTo(t, utc("2026-11-23T12:00:50Z").Add(time.Duration(i)*10*time.Second), 1)
		select {
		case c := <-b.pipeline.calls:
			if c.at.Before(utc("2026-11-23T12:00:50Z")) {
				t.Errorf("next run at %s, want after the first ended", c.at.UTC())
			}
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
	t.Error("the job did not run again after its first run ended")
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for range 500 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("condition not met within 5s")
}

// A stop lets a running job finish within the stop timeout; past it, the
// job's context is cancelled and Run returns once the job has recorded its end.
func TestGracefulStop(t *testing.T) {
	t.Parallel()
	for _, finish := range []bool{true, false} {
		t.Run(fmt.Sprintf("finishes in time %v", finish), func(t *testing.T) {
			t.Parallel()
			b := setup(t, time.Now(), testConfig(t, "", "gp-patients", "* * * * * *"))
			clock := clockwork.NewRealClock()
			b.pipeline.block = make(chan struct{})
			opts := b.options()
			opts.Clock = clock
			opts.StopTimeout = 300 * time.Millisecond
			stop := b.start(t, opts)
			b.pipeline.next(t)
			if finish {
				time.AfterFunc(100*time.Millisecond, func() { close(b.pipeline.block) })
			}
			began := time.Now()
			stop()
			took := time.Since(began)
			runs := b.store.ledger()
			if len(runs) != 1 {
				t.Fatalf("ledger has %d runs, want 1", len(runs))
			}
			if finish {
				if runs[0].Status != store.RunSucceeded || took > 290*time.Millisecond {
					t.Errorf("run %s after %s, want succeeded before the stop timeout", runs[0].Status, took)
				}
			} else if runs[0].Status != store.RunFailed || took < 300*time.Millisecond {
				t.Errorf("run %s after %s, want failed (cancelled) after the stop timeout", runs[0].Status, took)
			}
		})
	}
}

// Late and missing deliveries raise a warning, then an error, and recover.
func TestFreshnessAlerts(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, "", "gp-patients", "30 1 * * *", "la-clients", "0 2 * * *")
	cfg.Sources[0].Freshness = &config.Freshness{WarnAfter: config.Duration(26 * time.Hour), ErrorAfter: config.Duration(50 * time.Hour)}
	b := setup(t, utc("2026-11-24T10:00:00Z"), cfg)
	b.store.setDelivery("gp-patients", utc("2026-11-23T01:00:00Z")) // 33h old: late
	b.store.setDelivery("la-clients", utc("2026-11-20T01:00:00Z"))  // not monitored
	opts := b.options()
	opts.FreshnessEvery = time.Hour
	b.start(t, opts)
	a := b.rec.nextAlert(t)
	if a.Kind != alert.DeliveryLate || a.Severity != alert.Warning || a.Source != "gp-patients" || a.AgeSeconds != 33*3600 {
		t.Errorf("first alert = %+v, want gp-patients late, 33h old", a)
	}
	// Still late an hour later: no second alert.
	b.advanceTo(t, utc("2026-11-24T11:00:00Z"), 2)
	b.rec.noAlert(t)
	// 51h old: missing.
	b.advanceTo(t, utc("2026-11-25T04:00:00Z"), 2)
	if a := b.rec.nextAlert(t); a.Kind != alert.DeliveryMissing || a.Severity != alert.Error {
		t.Errorf("alert = %+v, want delivery missing", a)
	}
	b.store.setDelivery("gp-patients", utc("2026-11-25T04:30:00Z"))
	b.advanceTo(t, utc("2026-11-25T05:00:00Z"), 2)
	if a := b.rec.nextAlert(t); a.Kind != alert.DeliveryFresh || a.Severity != alert.Info {
		t.Errorf("alert = %+v, want delivery fresh again", a)
	}
}

// A new delivery whose reject rate is above the threshold raises an alert
// with counts and source ids only.
func TestRejectRateAlert(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, "", "gp-patients", "30 1 * * *", "la-clients", "30 1 * * *")
	cfg.Sources[1].RejectRateThreshold = 0.5
	b := setup(t, utc("2026-11-23T12:00:00Z"), cfg)
	b.pipeline.result = func(_ int, opts pipeline.Options) (pipeline.Result, error) {
		o := store.SourceOutcome{SourceID: opts.Sources[0], OrgCode: "D81001", Status: "new", Delivery: "patients_20261124.csv",
			RowsIn: 100, Quarantined: 30, Merged: 2, Pending: 68}
		return pipeline.Result{Status: store.RunSucceeded, Sources: []store.SourceOutcome{o}}, nil
	}
	b.start(t, b.options())
	b.advanceTo(t, utc("2026-11-24T01:30:00Z"), 2)
	b.pipeline.next(t)
	b.pipeline.next(t)
	a := b.rec.nextAlert(t)
	if a.Kind != alert.RejectRate || a.Source != "gp-patients" || a.RejectRate != 0.3 || a.Threshold != 0.1 ||
		a.Counts == nil || a.Counts.RowsIn != 100 || a.Counts.Quarantined != 30 {
		t.Errorf("alert = %+v, want gp-patients reject rate 0.3 over 0.1 with counts", a)
	}
	b.rec.noAlert(t) // la-clients' threshold is 0.5
}

func TestNewRejectsNothingScheduled(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, "", "gp-patients", "30 1 * * *")
	cfg.Sources[0].Schedule = ""
	_, err := daemon.New(daemon.Options{Config: cfg, Store: newFakeStore()})
	if !errors.Is(err, daemon.ErrNoJobs) {
		t.Errorf("New = %v, want ErrNoJobs", err)
	}
}
