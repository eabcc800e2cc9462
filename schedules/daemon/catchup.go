package daemon

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/careindex/careindex/schedules/opstate"
	"github.com/careindex/careindex/schedules/pipeline"
)

// catchUp runs, once each, the jobs whose last run time passed while no
// scheduler was running: a job whose newest run in the ledger started
// before its previous run time. A scheduler down for a week runs each job
// once, not once per missed night. Missed extract jobs run first, then a
// missed publish, so that it publishes what they staged. A job with no run
// in the ledger at all waits for its first run time.
func (d *Daemon) catchUp() {
	now := d.clock.Now()
	ctx, cancel := context.WithTimeout(d.soft, time.Minute)
	st, err := d.opts.Store.Status(ctx, d.opts.LedgerRuns)
	cancel()
	if err != nil {
		d.log.Warn("could not read the run ledger: no catch-up of missed runs", zap.Error(err))
		return
	}
	// With a full window, a job not in it last ran before its oldest run.
	var oldest time.Time
	if len(st.Runs) >= d.opts.LedgerRuns {
		oldest = st.Runs[len(st.Runs)-1].StartedAt
	}
	type missed struct {
		js   *jobState
		slot time.Time
	}
	var extracts, publish []missed
	for _, js := range d.jobs {
		slot := Prev(js.Schedule, now)
		if slot.IsZero() {
			continue
		}
		log := d.log.With(zap.String("job", js.Name), zap.Time("run_time", slot))
		last, ok := opstate.LastRun(st.Runs, js.Source)
		switch {
		case ok && covers(js.Schedule, last.StartedAt, slot):
			continue
		case ok:
			log.Info("missed run time found in the ledger", zap.Int64("last_run_id", last.RunID), zap.Time("last_run", last.StartedAt))
		case !oldest.IsZero() && !covers(js.Schedule, oldest, slot):
			log.Info("missed run time: no run of the job among the ledger's recent runs", zap.Int("runs_read", len(st.Runs)))
		default:
			log.Info("no earlier run of the job in the ledger: it first runs at its next run time")
			continue
		}
		if js.Stage == pipeline.StagePublish {
			publish = append(publish, missed{js, slot})
		} else {
			extracts = append(extracts, missed{js, slot})
		}
	}
	for _, group := range [][]missed{extracts, publish} {
		var wg sync.WaitGroup
		for _, m := range group {
			wg.Go(func() { d.execute(m.js, m.slot, true, true) })
		}
		wg.Wait()
	}
}
