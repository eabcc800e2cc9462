package pipeline

import (
	"context"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/careindex/careindex/transform/objection"
	"github.com/careindex/careindex/transform/sensitive"
)

// rules are what decides what may be published: the objection register,
// the overrides, the sensitive code list and the items patients asked to
// withhold. They are read whole before anything is published, and any of
// them failing to read blocks publication (fail closed).
type rules struct {
	register  *objection.Register
	overrides *objection.Overrides
	codes     *sensitive.List
	requests  *sensitive.Requests
}

// hash identifies the rules a version was built with: when neither they
// nor any delivery changed, there is nothing to publish. The register and
// overrides count by what is in force on the run's date (objections
// recorded or withdrawn, overrides starting or expiring), not by their
// files' bytes, so a day that changes what is in force republishes.
func (ru *rules) hash() string {
	parts := []string{"r:" + ru.register.StateHash()}
	if ru.overrides != nil {
		parts = append(parts, "o:"+ru.overrides.StateHash())
	}
	if ru.codes != nil && ru.codes.Hash != "" {
		parts = append(parts, "c:"+ru.codes.Hash)
	}
	if ru.requests != nil && ru.requests.Hash != "" {
		parts = append(parts, "r:"+ru.requests.Hash)
	}
	return strings.Join(parts, "+")
}

// loadRules reads every rule file; any failure wraps ErrBlocked.
func (r *runner) loadRules(ctx context.Context) (*rules, error) {
	ob := r.cfg.Objections
	now := r.opts.Now()
	reg, err := objection.Load(ctx, objection.Source{Dir: ob.Register.Path, Pattern: ob.Register.Pattern,
		MaxAge: time.Duration(ob.MaxAge)}, now)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBlocked, err)
	}
	r.log.Info("objection register read", zap.String("file", reg.File), zap.Int("rows", reg.Rows()), zap.Int("in_force", reg.InForce()))
	ru := &rules{register: reg}
	if ob.Overrides != nil {
		if ru.overrides, err = objection.LoadOverrides(ctx, objection.Source{Dir: ob.Overrides.Path, Pattern: ob.Overrides.Pattern}, now); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBlocked, err)
		}
		r.log.Info("override register read", zap.Int("rows", ru.overrides.Rows()))
	}
	if ob.SensitiveCodes != "" || len(ob.SensitiveRefsets) > 0 {
		ru.codes = &sensitive.List{}
		if ob.SensitiveCodes != "" {
			if ru.codes, err = sensitive.Load(ob.SensitiveCodes); err != nil {
				return nil, fmt.Errorf("%w: %w", ErrBlocked, err)
			}
		}
		cats := ob.RefsetCategories
		if len(cats) == 0 {
			cats = sensitive.DefaultRefsets
		}
		for _, p := range ob.SensitiveRefsets {
			if err := ru.codes.LoadRF2(p, cats); err != nil {
				return nil, fmt.Errorf("%w: %w", ErrBlocked, err)
			}
		}
		r.log.Info("sensitive code list read", zap.Int("codes", ru.codes.Len()))
	}
	if err := r.linkObjectors(ctx, ru); err != nil {
		return nil, err
	}
	if ob.WithheldItems != "" {
		if ru.requests, err = sensitive.LoadRequests(ob.WithheldItems); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBlocked, err)
		}
		r.log.Info("withheld item requests read", zap.Int("items", ru.requests.Len()))
	}
	return ru, nil
}

// linkObjectors tells the register every NHS number linked to each patient
// with an objection or override, so that the objection follows the
// patient to records without the NHS number it was recorded under.
func (r *runner) linkObjectors(ctx context.Context, ru *rules) error {
	if r.opts.Store == nil {
		return nil
	}
	links := r.opts.Store.Links()
	numbers := append(ru.register.NHSNumbers(), ru.overrides.NHSNumbers()...)
	found, err := links.ByNHS(ctx, numbers)
	if err != nil {
		return fmt.Errorf("%w: linking objections to patients: %w", ErrBlocked, err)
	}
	patients := map[int64]bool{}
	for _, l := range found {
		patients[l.PatientID] = true
	}
	if len(patients) == 0 {
		return nil
	}
	ids := make([]int64, 0, len(patients))
	for id := range patients {
		ids = append(ids, id)
	}
	byPatient, err := links.NHSOfPatients(ctx, ids)
	if err != nil {
		return fmt.Errorf("%w: linking objections to patients: %w", ErrBlocked, err)
	}
	ru.register.SetLinked(byPatient)
	return nil
}
