package opsweb

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/careindex/careindex/loader/store"
	"github.com/careindex/careindex/schedules/daemon"
	"github.com/careindex/careindex/schedules/opstate"
)

// badge is a coloured label: Class is ok, warn, bad, info or muted.
type badge struct{ Class, Text string }

type pageView struct {
	Generated  string
	Zone       string
	Scheduler  bool
	StoreError string
	Overall    badge
	Problems   []string
	// Fresh of Monitored sources are fresh.
	Fresh, Monitored int
	// Stale sources: kept at an older delivery, or overdue.
	Stale   int
	Live    *liveView
	Sources []sourceView
	Runs    []runView
	Jobs    []jobView
}

type liveView struct {
	Version   int64
	Published string
	Ago       string
	RunID     int64
}

type sourceView struct {
	ID, Org, OrgName, Kind string
	Delivery               string
	Delivered, Age         string
	Pending                bool
	Freshness              badge
	Rule                   string
	Index                  badge
	StaleReason            string
	LastRun                string
	LastStatus             badge
	Error                  string
	Counts                 *store.SourceOutcome
	Reject                 string
	RejectClass            string
	Threshold              string
}

type runView struct {
	ID       int64
	Kind     string
	Started  string
	Took     string
	Status   badge
	Message  string
	Version  int64
	Failures []string
}

type jobView struct{ Name, Schedule, Next, In string }

func (h *handler) when(t time.Time) string {
	return t.In(h.loc).Format("Mon 2 Jan 15:04")
}

func (h *handler) ago(t time.Time) string {
	d := h.opts.Clock.Now().Sub(t)
	if d < 0 {
		return "in " + opstate.FormatAge(-d)
	}
	return opstate.FormatAge(d) + " ago"
}

func runBadge(s store.RunStatus) badge {
	switch s {
	case store.RunSucceeded:
		return badge{"ok", "succeeded"}
	case store.RunUnchanged:
		return badge{"ok", "unchanged"}
	case store.RunRunning:
		return badge{"info", "running"}
	case store.RunAbandoned:
		return badge{"warn", "abandoned"}
	case store.RunBlocked:
		return badge{"bad", "blocked"}
	default:
		return badge{"bad", string(s)}
	}
}

func freshBadge(f opstate.Freshness) badge {
	switch f {
	case opstate.Fresh:
		return badge{"ok", "fresh"}
	case opstate.Late:
		return badge{"warn", "late"}
	case opstate.Missing:
		return badge{"bad", "missing"}
	default:
		return badge{"muted", "not monitored"}
	}
}

func (h *handler) page(snap opstate.Snapshot, err error) pageView {
	now := h.opts.Clock.Now()
	p := pageView{Generated: now.In(h.loc).Format("Mon 2 Jan 2006 15:04:05 MST"), Zone: h.opts.Config.Timezone, Scheduler: h.opts.Scheduler}
	jobs := slices.Clone(h.opts.Jobs)
	slices.SortStableFunc(jobs, func(a, b daemon.Job) int { return a.Schedule.Next(now).Compare(b.Schedule.Next(now)) })
	for _, j := range jobs {
		next := j.Schedule.Next(now)
		p.Jobs = append(p.Jobs, jobView{Name: j.Name, Schedule: j.Schedule.String(), Next: h.when(next), In: h.ago(next)})
	}
	if err != nil {
		p.StoreError = "The store did not answer: " + err.Error()
		p.Overall = badge{"bad", "Store unreachable"}
		return p
	}
	if l := snap.Live; l != nil {
		p.Live = &liveView{Version: l.Version, Published: h.when(l.PublishedAt), Ago: h.ago(l.PublishedAt), RunID: l.RunID}
	}
	var bad, warn []string
	for _, s := range snap.Sources {
		v := sourceView{ID: s.Config.ID, Org: s.Config.Org, OrgName: s.Config.OrgName, Kind: strings.ReplaceAll(s.Config.Kind, "_", " "),
			Delivery: s.Delivery, Pending: s.Pending, Freshness: freshBadge(s.Freshness), StaleReason: s.StaleReason,
			Threshold: fmt.Sprintf("%.0f%%", 100*s.RejectThreshold)}
		if !s.DeliveredAt.IsZero() {
			v.Delivered, v.Age = h.when(s.DeliveredAt), opstate.FormatAge(s.Age)
		}
		if f := s.Config.Freshness; f != nil {
			var parts []string
			if f.WarnAfter > 0 {
				parts = append(parts, "late after "+opstate.FormatAge(time.Duration(f.WarnAfter)))
			}
			if f.ErrorAfter > 0 {
				parts = append(parts, "missing after "+opstate.FormatAge(time.Duration(f.ErrorAfter)))
			}
			v.Rule = strings.Join(parts, ", ")
		}
		switch {
		case s.Stale:
			v.Index = badge{"warn", "stale"}
		case s.Delivery != "" && (s.Freshness == opstate.Late || s.Freshness == opstate.Missing):
			// The index holds the newest delivery there is, but it is overdue.
			v.Index = badge{"warn", "stale"}
			v.StaleReason = "overdue"
		case s.Delivery == "":
			v.Index = badge{"muted", "none yet"}
		case s.Pending:
			v.Index = badge{"info", "to publish"}
		default:
			v.Index = badge{"ok", "current"}
		}
		if r := s.LastRun; r != nil {
			v.LastRun = fmt.Sprintf("run %d · %s", r.RunID, h.ago(r.StartedAt))
			v.LastStatus = runBadge(r.Status)
			if o := s.Outcome; o != nil {
				v.LastStatus = outcomeBadge(o.Status, r.Status)
				v.Error = o.Error
			}
		}
		if c := s.Counts; c != nil {
			v.Counts = c
			v.Reject = fmt.Sprintf("%.1f%%", 100*s.RejectRate)
			if s.RejectHigh() {
				v.RejectClass = "bad"
			}
		}
		switch {
		case s.Freshness == opstate.Missing && s.Delivery == "":
			bad = append(bad, s.Config.ID+": no delivery yet")
		case s.Freshness == opstate.Missing:
			bad = append(bad, fmt.Sprintf("%s: delivery missing (newest is %s old)", s.Config.ID, v.Age))
		case s.Freshness == opstate.Late:
			warn = append(warn, fmt.Sprintf("%s: delivery late (newest is %s old)", s.Config.ID, v.Age))
		}
		if s.Failed() {
			bad = append(bad, s.Config.ID+": the last extract failed")
		} else if s.Stale {
			warn = append(warn, s.Config.ID+": stale in the index")
		}
		if s.RejectHigh() {
			warn = append(warn, fmt.Sprintf("%s: %s of rows quarantined (threshold %s)", s.Config.ID, v.Reject, v.Threshold))
		}
		p.Sources = append(p.Sources, v)
	}
	if r := snap.LastPublish; r != nil && (r.Status == store.RunFailed || r.Status == store.RunBlocked) {
		bad = append(bad, fmt.Sprintf("the last publish (run %d) %s", r.RunID, r.Status))
	}
	if p.Live == nil {
		warn = append(warn, "nothing published yet")
	}
	for _, r := range snap.Runs {
		v := runView{ID: r.RunID, Kind: r.Kind, Started: h.when(r.StartedAt), Status: runBadge(r.Status), Message: r.Message, Version: r.Version}
		if r.FinishedAt != nil {
			v.Took = formatTook(r.FinishedAt.Sub(r.StartedAt))
		}
		for _, o := range r.Sources {
			if o.Error != "" {
				v.Failures = append(v.Failures, o.SourceID+": "+o.Error)
			}
		}
		p.Runs = append(p.Runs, v)
	}
	p.Problems = append(bad, warn...)
	switch {
	case len(bad) > 0:
		p.Overall = badge{"bad", "Needs attention"}
	case len(warn) > 0:
		p.Overall = badge{"warn", "Running, with warnings"}
	default:
		p.Overall = badge{"ok", "All well: every source fresh, last publish succeeded"}
	}
	for _, s := range p.Sources {
		if s.Freshness.Class == "ok" {
			p.Fresh++
		}
		if s.Freshness.Class != "muted" {
			p.Monitored++
		}
		if s.Index.Text == "stale" {
			p.Stale++
		}
	}
	return p
}

func outcomeBadge(status string, run store.RunStatus) badge {
	switch status {
	case "failed":
		return badge{"bad", "failed"}
	case "new":
		return badge{"ok", "new delivery"}
	case "unchanged":
		return badge{"ok", "unchanged"}
	}
	return runBadge(run)
}

func formatTook(d time.Duration) string {
	switch {
	case d < time.Second:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1f s", d.Seconds())
	default:
		return fmt.Sprintf("%d min %d s", int(d.Minutes()), int(d.Seconds())%60)
	}
}
