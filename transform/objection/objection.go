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
	"encoding/csv"
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
}

// Decision says what may be shared of one patient.
type Decision struct {
	// WithholdAll is true when an objection covers every organisation.
	WithholdAll bool
	// Orgs lists organisations whose part is withheld (when not WithholdAll).
	Orgs []string
}

// Shares reports whether org's part of the patient's record may be shared.
func (d Decision) Shares(org string) bool {
	return !d.WithholdAll && !slices.Contains(d.Orgs, org)
}

// Any reports whether anything is withheld.
func (d Decision) Any() bool { return d.WithholdAll || len(d.Orgs) > 0 }

// Source says where the register is delivered.
type Source struct {
	Dir     string
	Pattern string
	MaxAge  time.Duration
}

// Load finds the newest register file in src, checks its age against now,
// and reads it. Objections not in force at now are kept out of the result.
func Load(ctx context.Context, src Source, now time.Time) (*Register, error) {
	matches, err := filepath.Glob(filepath.Join(src.Dir, src.Pattern))
	if err != nil {
		return nil, fmt.Errorf("%w: pattern %q: %w", ErrUnreadable, src.Pattern, err)
	}
	var files []string
	for _, m := range matches {
		if fi, err := os.Stat(m); err == nil && fi.Mode().IsRegular() {
			files = append(files, m)
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%w: no file matching %q in %s", ErrMissing, src.Pattern, src.Dir)
	}
	slices.Sort(files)
	path := files[len(files)-1]
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnreadable, err)
	}
	if src.MaxAge > 0 && now.Sub(fi.ModTime()) > src.MaxAge {
		return nil, fmt.Errorf("%w: %s was delivered %s ago, more than the %s allowed",
			ErrStale, filepath.Base(path), now.Sub(fi.ModTime()).Round(time.Minute), src.MaxAge)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnreadable, err)
	}
	defer f.Close()
	reg, err := Read(ctx, f, filepath.Base(path), now)
	if err != nil {
		return nil, err
	}
	reg.ModTime = fi.ModTime()
	return reg, nil
}

// Read parses a register from r. name is used in error messages.
func Read(ctx context.Context, r io.Reader, name string, now time.Time) (*Register, error) {
	h := sha256.New()
	cr := csv.NewReader(io.TeeReader(r, h))
	cr.FieldsPerRecord = -1
	reg := &Register{File: name, byNHS: map[string][]Objection{}}
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("%w: %s: header: %w", ErrUnreadable, name, err)
	}
	col := map[string]int{}
	for i, hname := range header {
		col[strings.ToLower(strings.TrimSpace(strings.TrimPrefix(hname, "\ufeff")))] = i
	}
	for _, need := range []string{"nhs_number", "scope", "recorded", "withdrawn"} {
		if _, ok := col[need]; !ok {
			return nil, fmt.Errorf("%w: %s: line 1: column %q missing", ErrUnreadable, name, need)
		}
	}
	var errs []error
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrUnreadable, name, err)
		}
		line, _ := cr.FieldPos(0)
		get := func(k string) string {
			if i := col[k]; i < len(rec) {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		o, err := parseRow(get("nhs_number"), get("scope"), get("recorded"), get("withdrawn"))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: line %d: %w", name, line, err))
			continue
		}
		o.Line = line
		reg.rows++
		if o.InForce(now) {
			reg.byNHS[o.NHSNumber] = append(reg.byNHS[o.NHSNumber], o)
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrUnreadable, errors.Join(errs...))
	}
	reg.Hash = hex.EncodeToString(h.Sum(nil))
	return reg, nil
}

func parseRow(nhs, scope, recorded, withdrawn string) (Objection, error) {
	var o Objection
	n, err := nhsnumber.Normalise(nhs)
	if err != nil {
		return o, fmt.Errorf("nhs_number: %w", err)
	}
	o.NHSNumber = n
	all := false
	switch strings.ToLower(scope) {
	case "all":
	case "":
		return o, errors.New("scope: empty (write all, or ODS codes separated by ;)")
	default:
		for _, c := range strings.Split(scope, ";") {
			c = strings.ToUpper(strings.TrimSpace(c))
			if c == "" {
				continue
			}
			if c == "ALL" {
				// "all" anywhere in the list covers every organisation.
				all = true
				continue
			}
			if len(c) < 3 || len(c) > 10 || strings.IndexFunc(c, func(r rune) bool {
				return !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
			}) >= 0 {
				return o, fmt.Errorf("scope: %q is not an ODS code", c)
			}
			o.Orgs = append(o.Orgs, c)
		}
		if all {
			o.Orgs = nil
		} else if len(o.Orgs) == 0 {
			return o, errors.New("scope: no ODS code")
		}
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
