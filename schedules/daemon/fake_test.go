package daemon_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/careindex/careindex/loader/store"
	"github.com/careindex/careindex/schedules/alert"
	"github.com/careindex/careindex/schedules/config"
	"github.com/careindex/careindex/schedules/daemon"
	"github.com/careindex/careindex/schedules/pipeline"
)

// fakeStore is an in-memory run ledger: enough of store.Store for the
// daemon and a fake pipeline. Other methods panic.
type fakeStore struct {
	store.Store

	mu         sync.Mutex
	runs       []store.RunSummary // oldest first
	deliveries map[string]store.Delivery
}

func newFakeStore() *fakeStore { return &fakeStore{deliveries: map[string]store.Delivery{}} }

func (s *fakeStore) StartRun(_ context.Context, info store.RunInfo) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := int64(len(s.runs) + 1)
	s.runs = append(s.runs, store.RunSummary{RunID: id, Kind: info.Kind, StartedAt: info.Started, Status: store.RunRunning})
	return id, nil
}

func (s *fakeStore) FinishRun(_ context.Context, runID int64, status store.RunStatus, message string, sources []store.SourceOutcome) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := &s.runs[runID-1]
	r.Status, r.Message, r.Sources = status, message, sources
	return nil
}

// addRun records a finished run, as if an earlier scheduler had run it.
func (s *fakeStore) addRun(kind string, started time.Time, sources ...string) {
	id, _ := s.StartRun(context.Background(), store.RunInfo{Kind: kind, Started: started})
	var outs []store.SourceOutcome
	for _, src := range sources {
		outs = append(outs, store.SourceOutcome{SourceID: src, Status: "unchanged"})
	}
	s.FinishRun(context.Background(), id, store.RunSucceeded, "earlier run", outs)
}

func (s *fakeStore) Status(_ context.Context, n int) (store.Status, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	runs := slices.Clone(s.runs)
	slices.Reverse(runs)
	if len(runs) > n {
		runs = runs[:n]
	}
	return store.Status{Runs: runs}, nil
}

func (s *fakeStore) CurrentDelivery(_ context.Context, id string) (store.Delivery, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.deliveries[id]
	return d, ok, nil
}

func (s *fakeStore) PendingDelivery(context.Context, string) (store.Delivery, bool, error) {
	return store.Delivery{}, false, nil
}

func (s *fakeStore) setDelivery(id string, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deliveries[id] = store.Delivery{ID: int64(len(s.deliveries) + 1), SourceID: id, Name: "delivery-" + at.Format("0102"), ReceivedAt: at}
}

func (s *fakeStore) ledger() []store.RunSummary {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.runs)
}

// call is one run of the fake pipeline.
type call struct {
	opts pipeline.Options
	at   time.Time
}

// fakePipeline records its calls in the ledger, as pipeline.Run does, and
// answers with result, which may look at the call number (from 1).
type fakePipeline struct {
	mu     sync.Mutex
	n      int
	calls  chan call
	result func(n int, opts pipeline.Options) (pipeline.Result, error)
	// block, when set, holds every run until it is closed or the run's
	// context ends.
	block chan struct{}
}

func newFakePipeline() *fakePipeline {
	return &fakePipeline{calls: make(chan call, 100)}
}

func (p *fakePipeline) run(ctx context.Context, opts pipeline.Options) (pipeline.Result, error) {
	p.mu.Lock()
	p.n++
	n := p.n
	p.mu.Unlock()
	at := opts.Now()
	kind := opts.Stage.String()
	id, err := opts.Store.StartRun(ctx, store.RunInfo{Kind: kind, Sources: opts.Sources, Started: at})
	if err != nil {
		return pipeline.Result{Status: store.RunFailed}, err
	}
	p.calls <- call{opts: opts, at: at}
	res := pipeline.Result{RunID: id, Status: store.RunSucceeded, Message: "done"}
	for _, src := range opts.Sources {
		res.Sources = append(res.Sources, store.SourceOutcome{SourceID: src, Status: "unchanged"})
	}
	var runErr error
	if p.result != nil {
		r, err := p.result(n, opts)
		r.RunID = id
		if r.Sources == nil {
			r.Sources = res.Sources
		}
		res, runErr = r, err
	}
	if p.block != nil {
		select {
		case <-p.block:
		case <-ctx.Done():
			res.Status, res.Message, runErr = store.RunFailed, "cancelled", ctx.Err()
		}
	}
	opts.Store.FinishRun(context.WithoutCancel(ctx), id, res.Status, res.Message, res.Sources)
	return res, runErr
}

// next waits for the next call.
func (p *fakePipeline) next(t *testing.T) call {
	t.Helper()
	select {
	case c := <-p.calls:
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("no run within 10s")
		return call{}
	}
}

// none checks that no call comes within a short while.
func (p *fakePipeline) none(t *testing.T) {
	t.Helper()
	select {
	case c := <-p.calls:
		t.Fatalf("unexpected run at %s (stage %s, sources %v)", c.at, c.opts.Stage, c.opts.Sources)
	case <-time.After(150 * time.Millisecond):
	}
}

// recorder is a Notifier and Observer that keeps what it hears.
type recorder struct {
	mu      sync.Mutex
	alerts  []alert.Alert
	skipped []string
	ch      chan alert.Alert
}

func newRecorder() *recorder { return &recorder{ch: make(chan alert.Alert, 100)} }

func (r *recorder) Notify(_ context.Context, a alert.Alert) {
	r.mu.Lock()
	r.alerts = append(r.alerts, a)
	r.mu.Unlock()
	r.ch <- a
}

func (r *recorder) RunFinished(daemon.Job, pipeline.Result, error, time.Duration) {}
func (r *recorder) Retrying(daemon.Job, int, time.Duration)                       {}
func (r *recorder) AlertRaised(alert.Alert)                                       {}
func (r *recorder) JobSkipped(j daemon.Job, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.skipped = append(r.skipped, j.Name+": "+reason)
}

func (r *recorder) nextAlert(t *testing.T) alert.Alert {
	t.Helper()
	select {
	case a := <-r.ch:
		return a
	case <-time.After(10 * time.Second):
		t.Fatal("no alert within 10s")
		return alert.Alert{}
	}
}

func (r *recorder) noAlert(t *testing.T) {
	t.Helper()
	select {
	case a := <-r.ch:
		t.Fatalf("unexpected alert %s: %s", a.Kind, a.Summary)
	case <-time.After(150 * time.Millisecond):
	}
}

// testConfig is a valid configuration with the given sources' schedules
// (id → cron) and publish schedule, in Europe/London.
func testConfig(t *testing.T, publish string, schedules ...string) *config.Config {
	t.Helper()
	y := "objections:\n  register: {path: drops/objections}\nsources:\n"
	for i := 0; i+1 < len(schedules); i += 2 {
		y += "  - id: " + schedules[i] + "\n    org: D81001\n    kind: persons\n" +
			"    from: {folder: {path: drops/d81001, pattern: \"patients_*.csv\"}}\n    columns: {local_id: PatientID}\n" +
			"    schedule: \"" + schedules[i+1] + "\"\n"
	}
	if publish != "" {
		y += "publish:\n  schedule: \"" + publish + "\"\n"
	}
	cfg, err := config.Parse([]byte(y), t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// start runs d until the test ends, and returns a function that stops it
// and waits for Run to return.
func start(t *testing.T, d *daemon.Daemon) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run = %v", err)
				}
			case <-time.After(20 * time.Second):
				t.Error("Run did not return within 20s of the stop")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}
