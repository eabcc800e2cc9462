package pipeline

import (
	"context"
	"fmt"

	"go.uber.org/zap"

	"github.com/careindex/careindex/loader/store"
)

// dryRun checks the register and reads and normalises every selected
// delivery, counting what would load and what would be quarantined.
// Nothing is linked, staged or published.
func (r *runner) dryRun(ctx context.Context) (Result, error) {
	res := Result{Status: store.RunSucceeded}
	if _, err := r.loadRules(ctx); err != nil {
		res.Status, res.Message = store.RunBlocked, err.Error()
		return res, err
	}
	var failed []string
	for _, src := range r.cfg.Sources {
		if !r.selected(src.ID) {
			continue
		}
		o, err := r.check(ctx, src)
		if err != nil {
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
			o = store.SourceOutcome{SourceID: src.ID, OrgCode: src.Org, Status: "failed", Error: err.Error(), Stale: true}
			failed = append(failed, src.ID)
			r.log.Error("source would fail", zap.String("source", src.ID), zap.Error(err))
		}
		res.Sources = append(res.Sources, o)
	}
	if len(failed) > 0 {
		res.Status = store.RunFailed
		res.Message = fmt.Sprintf("%d source(s) would fail", len(failed))
		return res, fmt.Errorf("%w: %v", ErrSourcesFailed, failed)
	}
	res.Message = "every delivery read"
	return res, nil
}

func (r *runner) check(ctx context.Context, src sourceConfig) (store.SourceOutcome, error) {
	o := store.SourceOutcome{SourceID: src.ID, OrgCode: src.Org, Status: "checked"}
	d, err := r.open(ctx, src)
	if err != nil {
		return o, fmt.Errorf("extracting %s: %w", src.ID, err)
	}
	defer d.close()
	o.Delivery = d.name
	m, closeReader, err := r.mapped(ctx, src, d)
	if err != nil {
		return o, err
	}
	defer closeReader()
	for d.reader.Next(ctx) {
		row := d.reader.Row()
		o.RowsIn++
		var rerr error
		if src.Kind == "persons" {
			_, rerr = m.Person(row)
		} else {
			_, rerr = m.CareItem(row)
		}
		if rerr != nil {
			o.Quarantined++
		} else {
			o.Loaded++
		}
	}
	if err := d.reader.Err(); err != nil {
		return o, fmt.Errorf("extracting %s: %s: %w", src.ID, d.name, err)
	}
	return o, nil
}
