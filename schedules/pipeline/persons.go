package pipeline

import (
	"context"
	"fmt"

	"github.com/careindex/careindex/transform/record"
)

// PersonsRead counts what Persons read from a delivery.
type PersonsRead struct {
	Delivery    string // the delivery's name
	Rows        int    // data rows read
	Quarantined int    // rows a run would quarantine (left out)
}

// Persons reads the newest delivery of a persons source as a run reads it
// (the same extractor, completeness check, column mapping and
// normalisation) and calls fn with each person record a run would load,
// in delivery order; rows a run would quarantine are left out. For a
// delta source it is the newest delivery the source's pattern finds.
// Nothing is staged, linked or archived, and no store is needed
// (opts.Store is not used). An error from fn stops the reading and is
// returned.
func Persons(ctx context.Context, opts Options, sourceID string, fn func(record.Person) error) (PersonsRead, error) {
	opts = opts.withDefaults()
	var out PersonsRead
	src, ok := opts.Config.Source(sourceID)
	if !ok {
		return out, fmt.Errorf("%w: %q is not in the configuration", ErrUnknownSource, sourceID)
	}
	if src.Kind != "persons" {
		return out, fmt.Errorf("%w: %q is a %s source, not persons", ErrUnknownSource, sourceID, src.Kind)
	}
	r := &runner{opts: opts, cfg: opts.Config, log: opts.Log}
	d, err := r.open(ctx, src)
	if err != nil {
		return out, fmt.Errorf("extracting %s: %w", src.ID, err)
	}
	defer d.close()
	out.Delivery = d.name
	m, closeReader, err := r.mapped(ctx, src, d)
	if err != nil {
		return out, err
	}
	defer closeReader()
	for d.reader.Next(ctx) {
		out.Rows++
		p, err := m.Person(d.reader.Row())
		if err != nil {
			out.Quarantined++
			continue
		}
		if p.Deleted {
			continue
		}
		if err := fn(p); err != nil {
			return out, err
		}
	}
	if err := d.reader.Err(); err != nil {
		return out, fmt.Errorf("extracting %s: %s: %w", src.ID, d.name, err)
	}
	return out, ctx.Err()
}
