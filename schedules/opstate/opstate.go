// Package opstate reads the operational state of a careindex region: each
// source's newest delivery and how fresh it is, each source's latest counts
// and reject rate, the recent runs and the live version. The scheduler
// (catch-up, freshness alerts), the status page and the metrics all read
// the state through this package, so they agree.
//
// Everything comes from the store's run ledger and deliveries, through the
// store.Store interface, and from the configuration; nothing is kept in
// memory between calls. A snapshot carries counts, source ids, file names
// and error messages, never patient data.
package opstate

import (
	"context"
	"fmt"
	"time"

	"github.com/careindex/careindex/loader/store"
	"github.com/careindex/careindex/schedules/config"
)

// Freshness is how a source's newest delivery compares with the source's
// freshness rule.
type Freshness int

// Freshness levels, from good to bad. Unmonitored means the source has no
// freshness rule.
const (
	Unmonitored Freshness = iota
	Fresh
	Late    // older than warn_after: a warning
	Missing // older than error_after, or no delivery at all: an error
)

func (f Freshness) String() string {
	switch f {
	case Fresh:
		return "fresh"
	case Late:
		return "late"
	case Missing:
		return "missing"
	default:
		return "not monitored"
	}
}

// Judge applies a freshness rule to a source whose newest delivery
// arrived at delivered (zero: never). A nil rule is Unmonitored.
func Judge(rule *config.Freshness, delivered, now time.Time) Freshness {
	if rule == nil {
		return Unmonitored
	}
	if delivered.IsZero() {
		return Missing
	}
	age := now.Sub(delivered)
	switch {
	case rule.ErrorAfter > 0 && age > time.Duration(rule.ErrorAfter):
		return Missing
	case rule.WarnAfter > 0 && age > time.Duration(rule.WarnAfter):
		return Late
	default:
		return Fresh
	}
}

// Source is one configured source's state.
type Source struct {
	Config config.Source
	// Delivery names the newest delivery (staged or in the live index);
	// empty when the source never delivered.
	Delivery string
	// DeliveredAt is when it was received: a file's modification time, a
	// query's run time. Zero when the source never delivered.
	DeliveredAt time.Time
	// Pending says the newest delivery is staged but not yet published.
	Pending bool
	// Age is how old the newest delivery is (0 when there is none).
	Age       time.Duration
	Freshness Freshness
	// Stale and StaleReason: the live index keeps an older delivery of
	// this source because the newest one failed.
	Stale       bool
	StaleReason string
	// LastRun is the newest run that extracted the source, and Outcome
	// its line for the source; nil when none is in the runs read.
	LastRun *store.RunSummary
	Outcome *store.SourceOutcome
	// Counts is the newest ledger line of the source that counted rows
	// (an extract or a publish); nil when none is in the runs read.
	Counts *store.SourceOutcome
	// RejectRate is Counts' quarantined share of rows in; RejectThreshold
	// the configured limit.
	RejectRate, RejectThreshold float64
}

// RejectHigh reports whether the latest counted delivery's reject rate
// is above the threshold.
func (s Source) RejectHigh() bool {
	return s.Counts != nil && s.Counts.RowsIn > 0 && s.RejectRate > s.RejectThreshold
}

// Failed reports whether the newest run that extracted the source failed
// to read it.
func (s Source) Failed() bool {
	return s.Outcome != nil && s.Outcome.Status == "failed"
}

// Snapshot is the region's state at one moment.
type Snapshot struct {
	At   time.Time
	Live *store.Publication
	// Sources follow the configuration's order.
	Sources []Source
	// Runs are the most recent runs, newest first.
	Runs []store.RunSummary
	// LastPublish is the newest run that published (or tried to).
	LastPublish *store.RunSummary
}

// Options say what to read.
type Options struct {
	Config *config.Config
	Store  store.Store
	// Now is the snapshot's time.
	Now time.Time
	// Runs is how many recent runs are read. Defaults to 20.
	Runs int
}

// Read takes a snapshot.
func Read(ctx context.Context, opts Options) (Snapshot, error) {
	if opts.Runs <= 0 {
		opts.Runs = 20
	}
	st, err := opts.Store.Status(ctx, opts.Runs)
	if err != nil {
		return Snapshot{}, err
	}
	snap := Snapshot{At: opts.Now, Live: st.Live, Runs: st.Runs}
	if r, ok := LastRun(st.Runs, ""); ok {
		snap.LastPublish = &r
	}
	states := map[string]store.SourceState{}
	for _, s := range st.Sources {
		states[s.SourceID] = s
	}
	for _, cs := range opts.Config.Sources {
		s := Source{Config: cs, RejectThreshold: opts.Config.RejectRateThreshold(cs)}
		cur, haveCur, err := opts.Store.CurrentDelivery(ctx, cs.ID)
		if err != nil {
			return Snapshot{}, err
		}
		pend, havePend, err := opts.Store.PendingDelivery(ctx, cs.ID)
		if err != nil {
			return Snapshot{}, err
		}
		switch {
		case havePend && (!haveCur || pend.ID > cur.ID):
			s.Delivery, s.DeliveredAt, s.Pending = pend.Name, pend.ReceivedAt, true
		case haveCur:
			s.Delivery, s.DeliveredAt = cur.Name, cur.ReceivedAt
		}
		if !s.DeliveredAt.IsZero() {
			s.Age = max(opts.Now.Sub(s.DeliveredAt), 0)
		}
		s.Freshness = Judge(cs.Freshness, s.DeliveredAt, opts.Now)
		if ss, ok := states[cs.ID]; ok {
			s.Stale, s.StaleReason = ss.Stale, ss.StaleReason
		}
		if r, ok := LastRun(st.Runs, cs.ID); ok {
			s.LastRun = &r
			if o, ok := outcome(r, cs.ID); ok {
				s.Outcome = &o
			}
		}
		if o, ok := lastCounts(st.Runs, cs.ID); ok {
			s.Counts = &o
			s.RejectRate = float64(o.Quarantined) / float64(o.RowsIn)
		}
		snap.Sources = append(snap.Sources, s)
	}
	return snap, nil
}

// extracted are the ledger statuses of a source that a run read.
var extracted = map[string]bool{"new": true, "unchanged": true, "failed": true}

// LastRun returns the newest run in runs (newest first, as Store.Status
// returns them) that did a job: for a source's extract job (source set), a
// run that read the source (an extract run, or a full run in which the
// source was new, unchanged or failed); for the publish job (source ""), a
// publish run or a full run. A run that failed before recording any source
// cannot be told apart and is not counted for a source.
func LastRun(runs []store.RunSummary, source string) (store.RunSummary, bool) {
	for _, r := range runs {
		if source == "" {
			if r.Kind == "publish" || r.Kind == "run" {
				return r, true
			}
			continue
		}
		if r.Kind != "extract" && r.Kind != "run" {
			continue
		}
		if o, ok := outcome(r, source); ok && (r.Kind == "extract" || extracted[o.Status]) {
			return r, true
		}
	}
	return store.RunSummary{}, false
}

func outcome(r store.RunSummary, source string) (store.SourceOutcome, bool) {
	for _, o := range r.Sources {
		if o.SourceID == source {
			return o, true
		}
	}
	return store.SourceOutcome{}, false
}

// lastCounts is the newest ledger line of source that counted rows.
func lastCounts(runs []store.RunSummary, source string) (store.SourceOutcome, bool) {
	for _, r := range runs {
		if o, ok := outcome(r, source); ok && o.RowsIn > 0 {
			return o, true
		}
	}
	return store.SourceOutcome{}, false
}

// FormatAge writes a duration as a person reads it: "3 min", "5 h 20 min",
// "2 d 4 h".
func FormatAge(d time.Duration) string {
	d = d.Round(time.Minute)
	switch {
	case d < time.Minute:
		return "under a minute"
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d.Minutes()))
	case d < 48*time.Hour:
		h := int(d.Hours())
		if m := int(d.Minutes()) % 60; m != 0 {
			return fmt.Sprintf("%d h %d min", h, m)
		}
		return fmt.Sprintf("%d h", h)
	default:
		days := int(d.Hours()) / 24
		if h := int(d.Hours()) % 24; h != 0 {
			return fmt.Sprintf("%d d %d h", days, h)
		}
		return fmt.Sprintf("%d d", days)
	}
}
