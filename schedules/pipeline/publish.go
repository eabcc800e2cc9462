package pipeline

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/careindex/careindex/loader/store"
	"github.com/careindex/careindex/transform/assemble"
)

type published struct {
	version                              int64
	outcomes                             []store.SourceOutcome
	patients, withheld, locations, items int
}

// publish assembles a version from every source's current delivery,
// applies the register and swaps the version in.
func (r *runner) publish(ctx context.Context, ru *rules, states []sourceState) (pub published, err error) {
	st := r.opts.Store
	log := r.log.With(zap.String("stage", "publish"))
	ver, err := st.BeginVersion(ctx, r.runID)
	if err != nil {
		return pub, err
	}
	pub.version = ver.Number()
	defer func() {
		if err != nil {
			pub.version = 0
			if aerr := ver.Abort(ctx); aerr != nil {
				log.Warn("could not drop the unfinished version; the next run will", zap.Error(aerr))
			}
		}
	}()

	// Organisations: one row per organisation with any source.
	type orgInfo struct {
		o     store.Organisation
		order int
	}
	orgs := map[string]*orgInfo{}
	var orgOrder []string
	rank := map[string]int{}
	var personDeliveries, itemDeliveries []int64
	for _, s := range states {
		rank[s.src.ID] = s.rank
		if s.src.OrgType != "gp_practice" {
			rank[s.src.ID] += len(states) // GP practices' demographics first
		}
		oi, ok := orgs[s.src.Org]
		if !ok {
			oi = &orgInfo{o: store.Organisation{OrgCode: s.src.Org, Name: s.src.OrgName, OrgType: s.src.OrgType}}
			orgs[s.src.Org] = oi
			orgOrder = append(orgOrder, s.src.Org)
		}
		if s.stale() {
			oi.o.Stale = true
		}
		if s.current == nil {
			continue
		}
		if s.current.ReceivedAt.After(oi.o.LastDeliveryAt) {
			oi.o.LastDeliveryAt = s.current.ReceivedAt
		}
		if s.src.Kind == "persons" {
			personDeliveries = append(personDeliveries, s.current.ID)
		} else {
			itemDeliveries = append(itemDeliveries, s.current.ID)
		}
	}
	for _, code := range orgOrder {
		if err := ver.AddOrganisation(orgs[code].o); err != nil {
			return pub, err
		}
	}

	started := time.Now()
	asm := assemble.New(ver, ru.register, ru.codes, rank).WithOverrides(ru.overrides).WithRequests(ru.requests)
	dups := newDuplicates(rank)
	if err := st.StreamPersons(ctx, personDeliveries, func(p store.StagedPerson) error {
		dups.add(p)
		return asm.Person(p)
	}); err != nil {
		return pub, fmt.Errorf("assembling patients: %w", err)
	}
	dups.flush()
	if err := asm.EndPersons(); err != nil {
		return pub, fmt.Errorf("assembling patients: %w", err)
	}
	if len(itemDeliveries) > 0 {
		if err := st.StreamItems(ctx, itemDeliveries, personDeliveries, asm.Item); err != nil {
			return pub, fmt.Errorf("assembling care items: %w", err)
		}
	}
	if err := ver.Finish(ctx); err != nil {
		return pub, err
	}
	for cat, n := range asm.Sensitive {
		log.Info("sensitive care items withheld", zap.String("category", cat), zap.Int("items", n))
	}
	if n := len(asm.AppliedOverrides()); n > 0 {
		log.Info("overrides applied", zap.Int("patients", n))
	}
	log.Info("version built", zap.Int64("version", pub.version), zap.Int("patients", asm.Patients),
		zap.Int("withheld_patients", asm.WithheldPatients), zap.Int("record_locations", asm.Locations),
		zap.Int("care_items", asm.Items), zap.Duration("took", time.Since(started)))

	for _, s := range states {
		o := store.SourceOutcome{SourceID: s.src.ID, OrgCode: s.src.Org, Status: s.status, Stale: s.stale()}
		if s.err != nil {
			o.Error = errText(s.err)
		} else if s.lastErr != "" {
			o.Error = "last extraction failed: " + s.lastErr
		} else if s.current == nil {
			o.Error = "no delivery yet"
		}
		if s.current != nil {
			c := asm.Counts(s.src.ID)
			o.DeliveryID, o.Delivery = s.current.ID, s.current.Name
			o.RowsIn = s.current.RowsIn
			o.Merged = s.current.Merged
			o.Quarantined = s.current.Quarantined + c.Quarantined
			o.Loaded, o.Withheld = c.Loaded, c.Withheld
			o.Duplicates = dups.bySource[s.src.ID]
		}
		pub.outcomes = append(pub.outcomes, o)
	}
	err = st.Swap(ctx, store.Swap{RunID: r.runID, Version: pub.version, RegisterHash: ru.hash(), Withheld: asm.WithheldCounts(), Overrides: asm.AppliedOverrides(), Sources: pub.outcomes,
		Rejects: asm.Rejects(), Patients: asm.Patients, Locations: asm.Locations, Items: asm.Items,
		Keep: r.cfg.Publish.KeepVersions, RollbackFrom: rollbackFrom(r.rollback), RollbackTo: rollbackTo(r.rollback)})
	if err != nil {
		return pub, fmt.Errorf("publishing version %d: %w", pub.version, err)
	}
	pub.patients, pub.withheld, pub.locations, pub.items = asm.Patients, asm.WithheldPatients, asm.Locations, asm.Items
	log.Info("version published", zap.Int64("version", pub.version))
	return pub, nil
}

func rollbackFrom(s *store.Swap) int64 {
	if s == nil {
		return 0
	}
	return s.RollbackFrom
}

func rollbackTo(s *store.Swap) int64 {
	if s == nil {
		return 0
	}
	return s.RollbackTo
}

// duplicates counts, per source, the records linked to a patient who has
// another record at the same organisation (two local ids, one person): a
// data quality figure, outside the balance. Persons stream ordered by
// patient, so one patient's records are counted together; of a patient's
// records at one organisation, the first (by source rank, then delivery
// and line) is the original and each other is a duplicate of its source.
type duplicates struct {
	rank     map[string]int
	bySource map[string]int
	pid      int64
	current  []store.StagedPerson
}

func newDuplicates(rank map[string]int) *duplicates {
	return &duplicates{rank: rank, bySource: map[string]int{}}
}

func (d *duplicates) add(p store.StagedPerson) {
	if p.PatientID != d.pid {
		d.flush()
		d.pid = p.PatientID
	}
	d.current = append(d.current, p)
}

func (d *duplicates) flush() {
	if len(d.current) > 1 {
		first := map[string]store.StagedPerson{} // org → its original record
		for _, p := range d.current {
			f, ok := first[p.OrgCode]
			switch {
			case !ok:
				first[p.OrgCode] = p
				continue
			case d.before(p, f):
				first[p.OrgCode] = p
				p = f
			}
			d.bySource[p.SourceID]++
		}
	}
	d.current = d.current[:0]
}

// before orders records of one organisation: source rank, delivery, line.
func (d *duplicates) before(a, b store.StagedPerson) bool {
	if ra, rb := d.rank[a.SourceID], d.rank[b.SourceID]; ra != rb {
		return ra < rb
	}
	if a.DeliveryID != b.DeliveryID {
		return a.DeliveryID < b.DeliveryID
	}
	return a.Line < b.Line
}
