package daemon

import (
	"context"
	"fmt"
	"time"

	"github.com/go-co-op/gocron/v2"
	"go.uber.org/zap"

	"github.com/careindex/careindex/schedules/alert"
	"github.com/careindex/careindex/schedules/opstate"
)

// monitorLockKey is the lock that makes one scheduler of several the
// freshness monitor, so that each late delivery is announced once.
const monitorLockKey = "freshness monitor"

func (d *Daemon) monitored() bool {
	for _, s := range d.cfg.Sources {
		if s.Freshness != nil {
			return true
		}
	}
	return false
}

// monitor checks the sources' freshness every FreshnessEvery and raises
// an alert when a source becomes late or missing, and when it recovers.
// With a Locker, only the scheduler holding the monitor lock checks; it
// keeps the lock until it stops, and another takes over if it dies (and
// announces the problems still open, once).
func (d *Daemon) monitor() {
	var lead gocron.Lock
	defer func() {
		if lead != nil {
			lead.Unlock(d.hard)
		}
	}()
	for {
		if lead == nil && d.opts.Locker != nil {
			if l, err := d.opts.Locker.Lock(d.soft, monitorLockKey); err == nil {
				lead = l
				d.log.Info("this scheduler watches the sources' freshness")
			}
		}
		if lead != nil || d.opts.Locker == nil {
			d.checkFreshness()
		}
		select {
		case <-d.clock.After(d.opts.FreshnessEvery):
		case <-d.soft.Done():
			return
		}
	}
}

// checkFreshness compares each monitored source's freshness with the last
// check's and alerts on every change for the worse, and on recovery.
func (d *Daemon) checkFreshness() {
	ctx, cancel := context.WithTimeout(d.soft, 30*time.Second)
	defer cancel()
	snap, err := opstate.Read(ctx, opstate.Options{Config: d.cfg, Store: d.opts.Store, Now: d.clock.Now(), Runs: 1})
	if err != nil {
		d.log.Warn("could not check the sources' freshness", zap.Error(err))
		return
	}
	for _, s := range snap.Sources {
		if s.Freshness == opstate.Unmonitored {
			continue
		}
		prev, seen := d.levels[s.Config.ID]
		d.levels[s.Config.ID] = s.Freshness
		if seen && prev == s.Freshness {
			continue
		}
		a := alert.Alert{At: snap.At, Source: s.Config.ID, Org: s.Config.Org, Job: "extract " + s.Config.ID, Delivery: s.Delivery,
			AgeSeconds: int64(s.Age / time.Second)}
		if !s.DeliveredAt.IsZero() {
			at := s.DeliveredAt
			a.DeliveredAt = &at
		}
		rule := s.Config.Freshness
		switch {
		case s.Freshness == opstate.Late && (!seen || prev < opstate.Late):
			a.Kind, a.Severity = alert.DeliveryLate, alert.Warning
			a.Summary = fmt.Sprintf("%s (%s) is late: newest delivery %s is %s old (warn after %s).", s.Config.ID, s.Config.Org,
				s.Delivery, opstate.FormatAge(s.Age), time.Duration(rule.WarnAfter))
		case s.Freshness == opstate.Missing:
			a.Kind, a.Severity = alert.DeliveryMissing, alert.Error
			if s.DeliveredAt.IsZero() {
				a.Summary = fmt.Sprintf("%s (%s) has never delivered.", s.Config.ID, s.Config.Org)
			} else {
				a.Summary = fmt.Sprintf("%s (%s) is missing: newest delivery %s is %s old (error after %s).", s.Config.ID, s.Config.Org,
					s.Delivery, opstate.FormatAge(s.Age), time.Duration(rule.ErrorAfter))
			}
		case s.Freshness == opstate.Fresh && seen && prev >= opstate.Late:
			a.Kind, a.Severity = alert.DeliveryFresh, alert.Info
			a.Summary = fmt.Sprintf("%s (%s) delivered again: %s.", s.Config.ID, s.Config.Org, s.Delivery)
		default:
			continue
		}
		d.raise(a)
	}
}
