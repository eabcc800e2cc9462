package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/careindex/careindex/loader/store"
	"github.com/careindex/careindex/transform/audit"
)

// ErrNoPrevious means there is no kept version to roll back to.
var ErrNoPrevious = errors.New("no previous version to roll back to")

// ErrLeaks means the audit found published data that must not be.
var ErrLeaks = errors.New("the live version leaks")

// Rollback withdraws the live version and publishes, as a new version, the
// deliveries the previous kept version was built from, under the rules in
// force now: a rollback never re-exposes a patient who objected (or an item
// that became sensitive) since the previous version was published. Like a
// run, it fails closed when the rules cannot be read.
func Rollback(ctx context.Context, opts Options) (res Result, err error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	r := &runner{opts: opts, cfg: opts.Config, log: opts.Log}
	st := opts.Store
	runID, err := st.StartRun(ctx, store.RunInfo{Kind: "rollback", Started: opts.Now()})
	if err != nil {
		return Result{Status: store.RunFailed}, fmt.Errorf("starting rollback: %w", err)
	}
	r.runID, res.RunID = runID, runID
	r.log = r.log.With(zap.Int64("run_id", runID), zap.String("stage", "rollback"))
	var outcomes []store.SourceOutcome
	defer func() {
		if res.Status == "" {
			res.Status = store.RunFailed
		}
		if err != nil && res.Message == "" {
			res.Message = err.Error()
		}
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if ferr := st.FinishRun(fctx, runID, res.Status, res.Message, outcomes); ferr != nil {
			err = errors.Join(err, fmt.Errorf("recording end of rollback %d: %w", runID, ferr))
		}
	}()
	ru, err := r.loadRules(ctx)
	if err != nil {
		res.Status = store.RunBlocked
		return res, err
	}
	live, ok, err := st.Live(ctx)
	if err != nil {
		return res, err
	}
	if !ok {
		return res, ErrNoPrevious
	}
	prev, sources, ok, err := st.Previous(ctx)
	if err != nil {
		return res, err
	}
	if !ok {
		return res, ErrNoPrevious
	}
	bySource := map[string]store.VersionSource{}
	for _, vs := range sources {
		bySource[vs.SourceID] = vs
	}
	states := make([]sourceState, len(r.cfg.Sources))
	for i, src := range r.cfg.Sources {
		s := sourceState{src: src, rank: i, status: "rollback"}
		if vs, ok := bySource[src.ID]; ok {
			s.current = vs.Delivery
			if vs.Stale {
				s.status, s.err = "failed", errors.New(vs.StaleReason)
			}
		}
		states[i] = s
	}
	r.rollback = &store.Swap{RollbackFrom: live.Version, RollbackTo: prev.Version}
	pub, err := r.publish(ctx, ru, states)
	res.Version, res.Sources = pub.version, pub.outcomes
	res.Patients, res.WithheldPatients, res.Locations, res.Items = pub.patients, pub.withheld, pub.locations, pub.items
	outcomes = pub.outcomes
	if err != nil {
		return res, err
	}
	res.Status = store.RunSucceeded
	res.Message = fmt.Sprintf("rolled back: version %d withdrawn; version %d republishes the deliveries of version %d under the current rules",
		live.Version, pub.version, prev.Version)
	r.log.Info("rolled back", zap.Int64("withdrawn", live.Version), zap.Int64("republished", prev.Version), zap.Int64("version", pub.version))
	return res, nil
}

// Audit compares the live version with the rules in force now and
// returns every leak. It fails when the rules cannot be read.
func Audit(ctx context.Context, opts Options) ([]audit.Leak, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	r := &runner{opts: opts, cfg: opts.Config, log: opts.Log}
	ru, err := r.loadRules(ctx)
	if err != nil {
		return nil, err
	}
	rules := audit.Rules{Register: ru.register, Overrides: ru.overrides, Codes: ru.codes, Requests: ru.requests}
	var leaks []audit.Leak
	patients := 0
	err = opts.Store.StreamLive(ctx, func(p store.LivePatient) error {
		patients++
		leaks = append(leaks, rules.Check(p)...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	r.log.Info("audit finished", zap.Int("patients", patients), zap.Int("leaks", len(leaks)))
	if len(leaks) > 0 {
		return leaks, fmt.Errorf("%w: %d leak(s)", ErrLeaks, len(leaks))
	}
	return nil, nil
}
