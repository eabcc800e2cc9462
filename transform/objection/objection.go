// Package objection reads the objection register and answers, for one
// patient and one organisation, whether their records may be shared.
//
// The register is a CSV delivered to a folder, one row per objection:
//
//	nhs_number,scope,recorded,withdrawn
//	9434765919,all,2025-03-01,
//	9434765870,LA505;RGT,2025-06-11,
//	4010232137,all,2024-01-09,2026-02-02
//
// scope is "all" (no organisation's record is shared) or one or more ODS
// codes separated by ";" (only those organisations' parts are withheld).
// An objection is in force from its recorded date until its withdrawn date.
//
// The register fails closed: any row that cannot be read makes Load fail,
// because publishing with a partly read register could leak a record.
package objection

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/careindex/careindex/transform/nhsnumber"
)

// Sentinel errors; each is wrapped with the file and line it concerns.
var (
	// ErrMissing means no register file was found.
	ErrMissing = errors.New("objection register missing")
	// ErrUnreadable means the register could not be read or parsed.
	ErrUnreadable = errors.New("objection register unreadable")
	// ErrStale means the newest register is older than allowed.
	ErrStale = errors.New("objection register stale")
)

// Objection is one row of the register.
type Objection struct {
	NHSNumber string
	// Orgs lists the ODS codes the objection covers; empty means all.
	Orgs      []string
	Recorded  time.Time
	Withdrawn time.Time // zero while in force
	Line      int
}

// All reports whether the objection covers every organisation.
func (o Objection) All() bool { return len(o.Orgs) == 0 }

// InForce reports whether the objection applies at t.
func (o Objection) InForce(t time.Time) bool {
	if t.Before(o.Recorded) {
		return false
	}
	return o.Withdrawn.IsZero() || t.Before(o.Withdrawn)
}

// Register is a loaded objection register.
type Register struct {
	File    string // base name of the register file
	Hash    string // SHA-256 of the file's bytes, hex
	ModTime time.Time
	// byNHS holds every objection in force, by NHS number.
	byNHS map[string][]Objection
	rows  int
	// linked holds, for patients with an objection in force, every NHS
	// number linked to them (see SetLinked).
	linked map[int64][]string
}

// SetLinked tells the register which NHS numbers are linked to which
// patient, so that an objection follows the patient to records in a
// version that do not carry the NHS number it was recorded under.
func (r *Register) SetLinked(byPatient map[int64][]string) { r.linked = byPatient }

// Linked returns the NHS numbers linked to a patient, as set by SetLinked.
func (r *Register) Linked(patientID int64) []string { return r.linked[patientID] }

// StateHash identifies the objections in force: two registers, or one
// register on two days, with the same objections in force have the same
// state hash.
func (r *Register) StateHash() string {
	var b strings.Builder
	for _, n := range r.NHSNumbers() {
		for _, o := range r.byNHS[n] {
			fmt.Fprintf(&b, "%s|%s|%s\n", n, strings.Join(o.Orgs, ";"), o.Recorded.Format("2006-01-02"))
		}
	}
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:])
}

// Decision says what may be shared of one patient.
type Decision struct {
	// WithholdAll is true when an objection covers every organisation.
	WithholdAll bool
	// Orgs lists organisations whose part is withheld (when not WithholdAll).
	Orgs []string
	// Except lists organisations whose part is shared despite WithholdAll,
	// because an override sets the objection aside for them.
	Except []string
	// Overrides lists the overrides that set an objection aside.
	Overrides []Override
}

// Shares reports whether org's part of the patient's record may be shared.
func (d Decision) Shares(org string) bool {
	if d.WithholdAll {
		return slices.Contains(d.Except, org)
	}
	return !slices.Contains(d.Orgs, org)
}

// Any reports whether anything is withheld.
func (d Decision) Any() bool { return d.WithholdAll || len(d.Orgs) > 0 }

// Flag is an objection an organisation sent in its own delivery, for the
// person record it holds.
type Flag struct {
	// Orgs lists the organisations the objection covers; empty means all.
	Orgs []string
}

// DecideWith combines the register's objections in force for any of the
// patient's NHS numbers, the organisations' own objection flags, and the
// overrides valid for the patient.
func (r *Register) DecideWith(ov *Overrides, flags []Flag, nhsNumbers ...string) Decision {
	d := r.Decide(nhsNumbers...)
	for _, f := range flags {
		if len(f.Orgs) == 0 {
			d.WithholdAll = true
		}
		for _, org := range f.Orgs {
			if !slices.Contains(d.Orgs, org) {
				d.Orgs = append(d.Orgs, org)
			}
		}
	}
	if d.WithholdAll {
		d.Orgs = nil
	}
	if !d.Any() {
		return d
	}
	for _, o := range ov.For(nhsNumbers...) {
		switch {
		case len(o.Orgs) == 0:
			d = Decision{Overrides: append(d.Overrides, o)}
			return d
		case d.WithholdAll:
			d.Except = append(d.Except, o.Orgs...)
		default:
			d.Orgs = slices.DeleteFunc(d.Orgs, func(org string) bool { return slices.Contains(o.Orgs, org) })
		}
		d.Overrides = append(d.Overrides, o)
	}
	slices.Sort(d.Orgs)
	slices.Sort(d.Except)
	d.Except = slices.Compact(d.Except)
	return d
}

// Source says where the register is delivered.
type Source struct {
	Dir     string
	Pattern string
	MaxAge  time.Duration
}

// newest returns the newest regular file matching src (by name order).
func newest(src Source) (string, os.FileInfo, error) {
	matches, err := filepath.Glob(filepath.Join(src.Dir, src.Pattern))
	if err != nil {
		return "", nil, fmt.Errorf("%w: pattern %q: %w", ErrUnreadable, src.Pattern, err)
	}
	var files []string
	for _, m := range matches {
		if fi, err := os.Stat(m); err == nil && fi.Mode().IsRegular() {
			files = append(files, m)
		}
	}
	if len(files) == 0 {
		return "", nil, fmt.Errorf("%w: no file matching %q in %s", ErrMissing, src.Pattern, src.Dir)
	}
	slices.Sort(files)
	path := files[len(files)-1]
	fi, err := os.Stat(path)
	if err != nil {
		return "", nil, fmt.Errorf("%w: %w", ErrUnreadable, err)
	}
	return path, fi, nil
}

// Load finds the newest register file in src (CSV, or an .xlsx workbook
// whose first sheet holds the same columns), checks its age against now,
// and reads it. Objections not in force at now are kept out of the result.
func Load(ctx context.Context, src Source, now time.Time) (*Register, error) {
	path, fi, err := newest(src)
	if err != nil {
		return nil, err
	}
	if src.MaxAge > 0 && now.Sub(fi.ModTime()) > src.MaxAge {
		return nil, fmt.Errorf("%w: %s was delivered %s ago, more than the %s allowed",
			ErrStale, filepath.Base(path), now.Sub(fi.ModTime()).Round(time.Minute), src.MaxAge)
	}
	var reg *Register
	if isWorkbook(path) {
		reg = newRegister(filepath.Base(path))
		reg.Hash, err = readWorkbook(ctx, path, registerColumns, func(line int, get func(string) string) error {
			return reg.add(line, get, now)
		})
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrUnreadable, err)
		}
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrUnreadable, err)
		}
		defer f.Close()
		if reg, err = Read(ctx, f, filepath.Base(path), now); err != nil {
			return nil, err
		}
	}
	reg.ModTime = fi.ModTime()
	return reg, nil
}

var registerColumns = []string{"nhs_number", "scope", "recorded", "withdrawn"}

func newRegister(name string) *Register {
	return &Register{File: name, byNHS: map[string][]Objection{}}
}

// add parses one register row.
func (r *Register) add(line int, get func(string) string, now time.Time) error {
	o, err := parseRow(get("nhs_number"), get("scope"), get("recorded"), get("withdrawn"))
	if err != nil {
		return fmt.Errorf("%s: line %d: %w", r.File, line, err)
	}
	o.Line = line
	r.rows++
	if o.InForce(now) {
		r.byNHS[o.NHSNumber] = append(r.byNHS[o.NHSNumber], o)
	}
	return nil
}

// Read parses a CSV register from r. name is used in error messages.
func Read(ctx context.Context, r io.Reader, name string, now time.Time) (*Register, error) {
	reg := newRegister(name)
	hash, err := readCSV(ctx, r, name, registerColumns, func(line int, get func(string) string) error {
		return reg.add(line, get, now)
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnreadable, err)
	}
	reg.Hash = hash
	return reg, nil
}

// parseScope reads "all" (nil) or ODS codes separated by ";". "all"
// anywhere in the list covers every organisation.
func parseScope(scope string) ([]string, error) {
	if strings.TrimSpace(scope) == "" {
		return nil, errors.New("scope: empty (write all, or ODS codes separated by ;)")
	}
	var orgs []string
	for _, c := range strings.Split(scope, ";") {
		c = strings.ToUpper(strings.TrimSpace(c))
		switch {
		case c == "":
			continue
		case c == "ALL":
			return nil, nil
		case len(c) < 3 || len(c) > 10 || strings.IndexFunc(c, func(r rune) bool {
			return !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
		}) >= 0:
			return nil, fmt.Errorf("scope: %q is not an ODS code", c)
		}
		if !slices.Contains(orgs, c) {
			orgs = append(orgs, c)
		}
	}
	if len(orgs) == 0 {
		return nil, errors.New("scope: no ODS code")
	}
	return orgs, nil
}

func parseRow(nhs, scope, recorded, withdrawn string) (Objection, error) {
	var o Objection
	n, err := nhsnumber.Normalise(nhs)
	if err != nil {
		return o, fmt.Errorf("nhs_number: %w", err)
	}
	o.NHSNumber = n
	if o.Orgs, err = parseScope(scope); err != nil {
		return o, err
	}
	if o.Recorded, err = time.Parse("2006-01-02", recorded); err != nil {
		return o, fmt.Errorf("recorded: %q is not a yyyy-mm-dd date", recorded)
	}
	if withdrawn != "" {
		if o.Withdrawn, err = time.Parse("2006-01-02", withdrawn); err != nil {
			return o, fmt.Errorf("withdrawn: %q is not a yyyy-mm-dd date", withdrawn)
		}
		if o.Withdrawn.Before(o.Recorded) {
			return o, errors.New("withdrawn: before recorded")
		}
	}
	return o, nil
}

// Rows returns the number of register rows read (in force or not).
func (r *Register) Rows() int { return r.rows }

// InForce returns the number of NHS numbers with an objection in force.
func (r *Register) InForce() int { return len(r.byNHS) }

// NHSNumbers returns the NHS numbers with an objection in force, sorted.
func (r *Register) NHSNumbers() []string {
	out := make([]string, 0, len(r.byNHS))
	for n := range r.byNHS {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// Decide combines the objections in force for any of a patient's NHS
// numbers into one decision.
func (r *Register) Decide(nhsNumbers ...string) Decision {
	var d Decision
	for _, n := range nhsNumbers {
		for _, o := range r.byNHS[n] {
			if o.All() {
				d.WithholdAll = true
			}
			for _, org := range o.Orgs {
				if !slices.Contains(d.Orgs, org) {
					d.Orgs = append(d.Orgs, org)
				}
			}
		}
	}
	if d.WithholdAll {
		d.Orgs = nil
	}
	slices.Sort(d.Orgs)
	return d
}
