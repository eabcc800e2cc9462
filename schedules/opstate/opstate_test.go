package opstate_test

import (
	"context"
	"testing"
	"time"

	"github.com/careindex/careindex/loader/store"
	"github.com/careindex/careindex/schedules/config"
	"github.com/careindex/careindex/schedules/opstate"
)

var now = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)

func TestJudge(t *testing.T) {
	t.Parallel()
	both := &config.Freshness{WarnAfter: config.Duration(26 * time.Hour), ErrorAfter: config.Duration(50 * time.Hour)}
	warnOnly := &config.Freshness{WarnAfter: config.Duration(26 * time.Hour)}
	errorOnly := &config.Freshness{ErrorAfter: config.Duration(50 * time.Hour)}
	tests := []struct {
		name string
		rule *config.Freshness
		age  time.Duration // -1: never delivered
		want opstate.Freshness
	}{
		{"no rule", nil, 100 * time.Hour, opstate.Unmonitored},
		{"fresh", both, 25 * time.Hour, opstate.Fresh},
		{"at warn_after still fresh", both, 26 * time.Hour, opstate.Fresh},
		{"late", both, 27 * time.Hour, opstate.Late},
		{"missing", both, 51 * time.Hour, opstate.Missing},
		{"never delivered", both, -1, opstate.Missing},
		{"warn only, very old", warnOnly, 500 * time.Hour, opstate.Late},
		{"error only, a day and a half", errorOnly, 36 * time.Hour, opstate.Fresh},
		{"error only, old", errorOnly, 51 * time.Hour, opstate.Missing},
	}
	for _, tc := range tests {
		var delivered time.Time
		if tc.age >= 0 {
			delivered = now.Add(-tc.age)
		}
		if got := opstate.Judge(tc.rule, delivered, now); got != tc.want {
			t.Errorf("%s: Judge = %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestLastRun(t *testing.T) {
	t.Parallel()
	runs := []store.RunSummary{ // newest first
		{RunID: 9, Kind: "rollback"},
		{RunID: 8, Kind: "run", Sources: []store.SourceOutcome{{SourceID: "a", Status: "carried"}, {SourceID: "b", Status: "new"}}},
		{RunID: 7, Kind: "publish", Sources: []store.SourceOutcome{{SourceID: "a", Status: "pending"}}},
		{RunID: 6, Kind: "extract", Sources: []store.SourceOutcome{{SourceID: "a", Status: "failed"}}},
		{RunID: 5, Kind: "extract"}, // failed before recording sources
		{RunID: 4, Kind: "extract", Sources: []store.SourceOutcome{{SourceID: "c", Status: "unchanged"}}},
	}
	for _, tc := range []struct {
		source string
		want   int64
	}{{"", 8}, {"a", 6}, {"b", 8}, {"c", 4}, {"d", 0}} {
		r, ok := opstate.LastRun(runs, tc.source)
		if (tc.want == 0) == ok || r.RunID != tc.want {
			t.Errorf("LastRun(%q) = run %d, %v; want run %d", tc.source, r.RunID, ok, tc.want)
		}
	}
}

type fakeStore struct {
	store.Store
	status           store.Status
	current, pending map[string]store.Delivery
}

func (s fakeStore) Status(context.Context, int) (store.Status, error) { return s.status, nil }
func (s fakeStore) CurrentDelivery(_ context.Context, id string) (store.Delivery, bool, error) {
	d, ok := s.current[id]
	return d, ok, nil
}
func (s fakeStore) PendingDelivery(_ context.Context, id string) (store.Delivery, bool, error) {
	d, ok := s.pending[id]
	return d, ok, nil
}

func TestRead(t *testing.T) {
	t.Parallel()
	rule := &config.Freshness{WarnAfter: config.Duration(26 * time.Hour), ErrorAfter: config.Duration(50 * time.Hour)}
	cfg := &config.Config{Alerts: config.Alerts{RejectRate: 0.1}, Sources: []config.Source{
		{ID: "gp", Org: "D81001", Freshness: rule},
		{ID: "la", Org: "LA505", Freshness: rule, RejectRateThreshold: 0.5},
		{ID: "new", Org: "RYV", Freshness: rule},
	}}
	st := fakeStore{
		current: map[string]store.Delivery{
			"gp": {ID: 1, Name: "p_1123.csv", ReceivedAt: now.Add(-30 * time.Hour)},
			"la": {ID: 2, Name: "c_1121.txt", ReceivedAt: now.Add(-60 * time.Hour)},
		},
		pending: map[string]store.Delivery{"gp": {ID: 3, Name: "p_1124.csv", ReceivedAt: now.Add(-9 * time.Hour)}},
		status: store.Status{
			Live: &store.Publication{Version: 4},
			Runs: []store.RunSummary{
				{RunID: 12, Kind: "extract", Status: store.RunSucceeded, Sources: []store.SourceOutcome{{SourceID: "gp", Status: "new", RowsIn: 20, Quarantined: 4, Pending: 16}}},
				{RunID: 11, Kind: "publish", Status: store.RunSucceeded, Sources: []store.SourceOutcome{
					{SourceID: "gp", Status: "pending", RowsIn: 10, Loaded: 10}, {SourceID: "la", Status: "carried", RowsIn: 10, Loaded: 6, Quarantined: 4}}},
				{RunID: 10, Kind: "extract", Status: store.RunFailed, Sources: []store.SourceOutcome{{SourceID: "la", Status: "failed", Error: "header lacks ClientRef"}}},
			},
			Sources: []store.SourceState{{SourceID: "la", Stale: true, StaleReason: "header lacks ClientRef"}},
		},
	}
	snap, err := opstate.Read(context.Background(), opstate.Options{Config: cfg, Store: st, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	gp, la, nw := snap.Sources[0], snap.Sources[1], snap.Sources[2]
	if gp.Delivery != "p_1124.csv" || !gp.Pending || gp.Age != 9*time.Hour || gp.Freshness != opstate.Fresh {
		t.Errorf("gp = %s pending %v age %s %s; want the pending p_1124.csv, 9h, fresh", gp.Delivery, gp.Pending, gp.Age, gp.Freshness)
	}
	if gp.LastRun == nil || gp.LastRun.RunID != 12 || gp.RejectRate != 0.2 || !gp.RejectHigh() {
		t.Errorf("gp: last run %v reject %v high %v; want run 12, 0.2, high", gp.LastRun, gp.RejectRate, gp.RejectHigh())
	}
	if la.Freshness != opstate.Missing || !la.Stale || !la.Failed() || la.RejectRate != 0.4 || la.RejectHigh() {
		t.Errorf("la: %s stale %v failed %v reject %v high %v; want missing, stale, failed, 0.4 under 0.5",
			la.Freshness, la.Stale, la.Failed(), la.RejectRate, la.RejectHigh())
	}
	if nw.Freshness != opstate.Missing || nw.Delivery != "" || nw.Counts != nil || nw.LastRun != nil {
		t.Errorf("new source: %+v; want missing with nothing delivered", nw)
	}
	if snap.LastPublish == nil || snap.LastPublish.RunID != 11 || snap.Live.Version != 4 {
		t.Errorf("last publish %v, live %v", snap.LastPublish, snap.Live)
	}
}

func TestFormatAge(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		20 * time.Second:                            "under a minute",
		7 * time.Minute:                             "7 min",
		5 * time.Hour:                               "5 h",
		36*time.Hour + 5*time.Minute:                "36 h 5 min",
		59*time.Hour + 10*time.Minute:               "2 d 11 h",
		72 * time.Hour:                              "3 d",
		26*time.Hour + 29*time.Second:               "26 h",
		47*time.Hour + 59*time.Minute:               "47 h 59 min",
		48*time.Hour + 30*time.Second:               "2 d",
		time.Hour + 59*time.Minute + 31*time.Second: "2 h",
	} {
		if got := opstate.FormatAge(d); got != want {
			t.Errorf("FormatAge(%s) = %q, want %q", d, got, want)
		}
	}
}
