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
// nor any delivery changed, there is nothing to publish.
func (ru *rules) hash() string {
	parts := []string{ru.register.Hash}
	if ru.overrides != nil && ru.overrides.Hash != "" {
		parts = append(parts, "o:"+ru.overrides.Hash)
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
	if ob.WithheldItems != "" {
		if ru.requests, err = sensitive.LoadRequests(ob.WithheldItems); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBlocked, err)
		}
		r.log.Info("withheld item requests read", zap.Int("items", ru.requests.Len()))
	}
	return ru, nil
}
