package opsweb_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/careindex/careindex/loader/store"
	"github.com/careindex/careindex/schedules/config"
	"github.com/careindex/careindex/schedules/daemon"
	"github.com/careindex/careindex/schedules/opsweb"
	"github.com/careindex/careindex/schedules/pipeline"
)

// fakeStore answers the read-only questions the handler asks.
type fakeStore struct {
	store.Store
	mu         sync.Mutex
	down       bool
	status     store.Status
	current    map[string]store.Delivery
	pending    map[string]store.Delivery
	statusRuns int
}

var errDown = errors.New("dial tcp 127.0.0.1:5432: connect: connection refused")

func (s *fakeStore) Status(_ context.Context, n int) (store.Status, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return store.Status{}, errDown
	}
	st := s.status
	if len(st.Runs) > n {
		st.Runs = st.Runs[:n]
	}
	s.statusRuns = n
	return st, nil
}

func (s *fakeStore) Live(context.Context) (store.Publication, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return store.Publication{}, false, errDown
	}
	if s.status.Live == nil {
		return store.Publication{}, false, nil
	}
	return *s.status.Live, true, nil
}

func (s *fakeStore) CurrentDelivery(_ context.Context, id string) (store.Delivery, bool, error) {
	d, ok := s.current[id]
	return d, ok, nil
}

func (s *fakeStore) PendingDelivery(_ context.Context, id string) (store.Delivery, bool, error) {
	d, ok := s.pending[id]
	return d, ok, nil
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func ptr[T any](v T) *T { return &v }

// now is the moment the tests look at the region.
var now = at("2026-11-24T10:00:00Z")

// region is the fixture region's configuration with freshness rules, and
// a store whose ledger tells of an ordinary night with some trouble:
// la505-clients late, la505-involvements missing, ryv-contacts failing
// to reach its export database, d81001-patients' reject rate high.
func region(t *testing.T) (*config.Config, *fakeStore) {
	t.Helper()
	cfg, err := config.Load(filepath.Join(repoRoot(), "fixtures", "region.yaml"), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	rule := &config.Freshness{WarnAfter: config.Duration(26 * time.Hour), ErrorAfter: config.Duration(50 * time.Hour)}
	for i := range cfg.Sources {
		cfg.Sources[i].Freshness = rule
	}
	cfg.Sources[1].RejectRateThreshold = 0.2
	d := func(id int64, src, name, received string, in, q, m int) store.Delivery {
		return store.Delivery{ID: id, SourceID: src, Name: name, ReceivedAt: at(received), RowsIn: in, Quarantined: q, Merged: m}
	}
	st := &fakeStore{
		current: map[string]store.Delivery{
			"d81001-patients":    d(31, "d81001-patients", "patients_20261124.csv", "2026-11-24T00:41:00Z", 17, 7, 0),
			"d81001-problems":    d(32, "d81001-problems", "problems_20261124.csv", "2026-11-24T00:42:00Z", 16, 2, 0),
			"rgt-patients":       d(33, "rgt-patients", "Patients@hospital_20261124.xlsx", "2026-11-23T23:10:00Z", 9, 2, 0),
			"rgt-encounters":     d(34, "rgt-encounters", "Encounters@hospital_20261124.xlsx", "2026-11-23T23:10:00Z", 9, 1, 0),
			"la505-clients":      d(21, "la505-clients", "clients_20261122.txt", "2026-11-22T21:55:00Z", 6, 1, 0),
			"la505-involvements": d(12, "la505-involvements", "involvements_20261121.txt", "2026-11-21T22:05:00Z", 7, 0, 0),
			"ryv-patients":       d(29, "ryv-patients", "query:ryv-patients", "2026-11-23T03:00:00Z", 6, 1, 0),
			"ryv-contacts":       d(30, "ryv-contacts", "query:ryv-contacts", "2026-11-22T03:05:00Z", 7, 1, 0),
		},
		pending: map[string]store.Delivery{
			"ryv-patients": d(35, "ryv-patients", "query:ryv-patients", "2026-11-24T03:00:02Z", 6, 1, 0),
		},
	}
	cfg.Alerts.RejectRate = 0.25
	fin := func(s string) *time.Time { return ptr(at(s)) }
	pub := store.Publication{Version: 7, RunID: 118, PublishedAt: at("2026-11-24T05:00:41Z"), Stale: []string{"ryv-contacts"}}
	extract := func(id int64, started, took, msg string, o store.SourceOutcome) store.RunSummary {
		status := store.RunSucceeded
		if o.Status == "failed" {
			status = store.RunFailed
		}
		d, _ := time.ParseDuration(took)
		return store.RunSummary{RunID: id, Kind: "extract", StartedAt: at(started), FinishedAt: ptr(at(started).Add(d)), Status: status,
			Message: msg, Sources: []store.SourceOutcome{o}}
	}
	const staged = "extracted; the next publish picks the deliveries up"
	st.status = store.Status{
		Live: &pub,
		Runs: []store.RunSummary{
			{RunID: 118, Kind: "publish", StartedAt: at("2026-11-24T05:00:00Z"), FinishedAt: fin("2026-11-24T05:00:41Z"), Status: store.RunSucceeded, Version: 7,
				Message: "published version 7",
				Sources: []store.SourceOutcome{
					{SourceID: "d81001-patients", Status: "pending", RowsIn: 17, Loaded: 9, Quarantined: 7, Withheld: 1},
					{SourceID: "d81001-problems", Status: "pending", RowsIn: 16, Loaded: 8, Quarantined: 2, Withheld: 6},
					{SourceID: "rgt-patients", Status: "pending", RowsIn: 9, Loaded: 6, Quarantined: 2, Withheld: 1},
					{SourceID: "rgt-encounters", Status: "pending", RowsIn: 9, Loaded: 5, Quarantined: 1, Withheld: 3},
					{SourceID: "la505-clients", Status: "carried", RowsIn: 6, Loaded: 3, Quarantined: 1, Withheld: 2},
					{SourceID: "la505-involvements", Status: "carried", RowsIn: 7, Loaded: 4, Withheld: 3},
					{SourceID: "ryv-patients", Status: "pending", RowsIn: 6, Loaded: 4, Quarantined: 1, Withheld: 1},
					{SourceID: "ryv-contacts", Status: "carried", RowsIn: 7, Loaded: 3, Quarantined: 1, Withheld: 3, Stale: true},
				}},
			extract(117, "2026-11-24T03:05:00Z", "1.2s", "extracted, but 1 source(s) failed: ryv-contacts",
				store.SourceOutcome{SourceID: "ryv-contacts", Status: "failed", Stale: true,
					Error: "extracting ryv-contacts: connecting to export database: dial tcp 10.20.4.7:5432: connect: connection refused"}),
			extract(116, "2026-11-24T03:00:00Z", "2.1s", staged, store.SourceOutcome{SourceID: "ryv-patients", Status: "new", RowsIn: 6, Quarantined: 1, Pending: 5}),
			extract(115, "2026-11-24T02:35:00Z", "0.3s", staged, store.SourceOutcome{SourceID: "la505-involvements", Status: "unchanged"}),
			extract(114, "2026-11-24T02:30:00Z", "0.3s", staged, store.SourceOutcome{SourceID: "la505-clients", Status: "unchanged"}),
			extract(113, "2026-11-24T02:20:07Z", "3.4s", "catch-up of the run due 2026-11-24 02:05 GMT: "+staged,
				store.SourceOutcome{SourceID: "rgt-encounters", Status: "new", RowsIn: 9, Quarantined: 1, Pending: 8}),
			extract(112, "2026-11-24T02:00:30Z", "3.1s", "retry 1 of 2: "+staged, store.SourceOutcome{SourceID: "rgt-patients", Status: "new", RowsIn: 9, Quarantined: 2, Pending: 7}),
			extract(111, "2026-11-24T01:35:00Z", "1.9s", staged, store.SourceOutcome{SourceID: "d81001-problems", Status: "new", RowsIn: 16, Quarantined: 2, Pending: 14}),
			extract(110, "2026-11-24T01:30:00Z", "2.2s", staged, store.SourceOutcome{SourceID: "d81001-patients", Status: "new", RowsIn: 17, Quarantined: 7, Pending: 10}),
			{RunID: 109, Kind: "extract", StartedAt: at("2026-11-23T03:05:00Z"), FinishedAt: fin("2026-11-23T03:40:12Z"), Status: store.RunAbandoned,
				Message: "the process ended before the run finished"},
		},
		Sources: []store.SourceState{{SourceID: "ryv-contacts", Stale: true, StaleReason: "export database unreachable"}},
	}
	return cfg, st
}

func newServer(t *testing.T, cfg *config.Config, st *fakeStore) (*httptest.Server, *opsweb.Metrics) {
	t.Helper()
	clock := clockwork.NewFakeClockAt(now)
	metrics := opsweb.NewMetrics(opsweb.State(cfg, st, clock, 20))
	metrics.RunFinished(daemon.Job{Name: "extract d81001-patients", Stage: pipeline.StageExtract, Source: "d81001-patients"},
		pipeline.Result{Status: store.RunSucceeded, Sources: []store.SourceOutcome{{SourceID: "d81001-patients", Status: "new", RowsIn: 17, Quarantined: 7, Pending: 10}}},
		nil, 2*time.Second)
	h, err := opsweb.NewHandler(opsweb.Options{Config: cfg, Store: st, Metrics: metrics, Clock: clock, Scheduler: true})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, metrics
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestHealthAndReadiness(t *testing.T) {
	t.Parallel()
	cfg, st := region(t)
	srv, _ := newServer(t, cfg, st)
	if code, body := get(t, srv.URL+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz = %d %q", code, body)
	}
	if code, _ := get(t, srv.URL+"/readyz"); code != 200 {
		t.Errorf("/readyz = %d, want 200", code)
	}
	st.mu.Lock()
	st.down = true
	st.mu.Unlock()
	if code, _ := get(t, srv.URL+"/readyz"); code != 503 {
		t.Errorf("/readyz with the store down = %d, want 503", code)
	}
	if code, _ := get(t, srv.URL+"/healthz"); code != 200 {
		t.Errorf("/healthz with the store down = %d, want 200 (the process is alive)", code)
	}
	code, body := get(t, srv.URL+"/")
	if code != 503 || !strings.Contains(body, "Store unreachable") {
		t.Errorf("/ with the store down = %d, want 503 and a page saying the store is unreachable", code)
	}
	if code, body := get(t, srv.URL+"/metrics"); code != 200 || !strings.Contains(body, "careindex_store_up 0") {
		t.Errorf("/metrics with the store down = %d, want careindex_store_up 0", code)
	}
	if code, _ := get(t, srv.URL+"/nothing"); code != 404 {
		t.Errorf("/nothing = %d, want 404", code)
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	cfg, st := region(t)
	srv, _ := newServer(t, cfg, st)
	code, body := get(t, srv.URL+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics = %d", code)
	}
	lines := strings.Split(body, "\n")
	for _, want := range []string{
		`careindex_runs_total{job="extract d81001-patients",kind="extract",status="succeeded"} 1`,
		`careindex_run_duration_seconds_count{kind="extract"} 1`,
		`careindex_rows_total{outcome="quarantined",source="d81001-patients"} 7`,
		`careindex_rows_total{outcome="rows_in",source="d81001-patients"} 17`,
		`careindex_store_up 1`,
		`careindex_live_version 7`,
		`careindex_last_publish_timestamp_seconds 1.795496441e+09`,
		`careindex_source_freshness_seconds{source="la505-clients"} 129900`,
		`careindex_source_freshness{source="la505-clients",state="late"} 1`,
		`careindex_source_freshness{source="la505-involvements",state="missing"} 1`,
		`careindex_source_freshness{source="d81001-patients",state="fresh"} 1`,
		`careindex_source_stale{source="ryv-contacts"} 1`,
		`careindex_source_rows{outcome="loaded",source="d81001-patients"} 9`,
		`careindex_source_reject_ratio{source="d81001-patients"} 0.4117647058823529`,
		`careindex_last_run_timestamp_seconds{kind="extract",status="failed"} 1.7954895e+09`,
		`go_goroutines`,
	} {
		if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, want) }) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(body, "promhttp_metric_handler") {
		t.Error("/metrics serves the global default registry's metrics")
	}
}

func TestStatusPageHTML(t *testing.T) {
	t.Parallel()
	cfg, st := region(t)
	srv, _ := newServer(t, cfg, st)
	code, body := get(t, srv.URL+"/")
	if code != 200 {
		t.Fatalf("/ = %d", code)
	}
	for _, want := range []string{
		"Needs attention", "la505-involvements: delivery missing", "la505-clients: delivery late",
		"ryv-contacts: the last extract failed", "d81001-patients: 41.2% of rows quarantined (threshold 25%)",
		"v7", "connection refused", "catch-up of the run due", "export database unreachable",
		"to publish", "extract ryv-contacts", "Tue 24 Nov 05:00",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("status page lacks %q", want)
		}
	}
}

// A region with nothing scheduled and nothing run yet still renders.
func TestStatusPageEmptyRegion(t *testing.T) {
	t.Parallel()
	cfg, _ := region(t)
	for i := range cfg.Sources {
		cfg.Sources[i].Schedule = ""
	}
	cfg.Publish.Schedule = ""
	st := &fakeStore{}
	h, err := opsweb.NewHandler(opsweb.Options{Config: cfg, Store: st, Clock: clockwork.NewFakeClockAt(now)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	code, body := get(t, srv.URL+"/")
	for _, want := range []string{"nothing is scheduled", "nothing published yet", "No runs yet.", "d81001-patients: no delivery yet"} {
		if !strings.Contains(body, want) {
			t.Errorf("empty region page (%d) lacks %q", code, want)
		}
	}
	if code != 200 {
		t.Errorf("/ = %d, want 200", code)
	}
}
