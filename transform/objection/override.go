package objection

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/careindex/careindex/transform/nhsnumber"
)

// Override reasons: an objection is not upheld only for one of these.
const (
	ReasonSafeguarding   = "safeguarding"
	ReasonRiskOfHarm     = "risk_of_harm"
	ReasonPublicInterest = "public_interest"
	ReasonLegal          = "legal_requirement"
	ReasonCareNeeds      = "care_not_otherwise_possible"
)

// OverrideReasons lists the accepted override reasons.
var OverrideReasons = []string{ReasonSafeguarding, ReasonRiskOfHarm, ReasonPublicInterest, ReasonLegal, ReasonCareNeeds}

// ErrOverridesUnreadable means the override file could not be read whole.
var ErrOverridesUnreadable = errors.New("override register unreadable")

// Override is a recorded decision that a patient's objection is not upheld
// ("objection not upheld"), for the listed organisations or all of them,
// from ValidFrom until ValidTo.
type Override struct {
	NHSNumber    string
	Reason       string
	AuthorisedBy string
	ValidFrom    time.Time
	ValidTo      time.Time // zero: open-ended
	// Orgs lists the organisations whose part is shared despite the
	// objection; empty means all.
	Orgs []string
	Line int
}

// ValidAt reports whether the override applies at t.
func (o Override) ValidAt(t time.Time) bool {
	return !t.Before(o.ValidFrom) && (o.ValidTo.IsZero() || t.Before(o.ValidTo))
}

// Scope renders the organisations the override covers.
func (o Override) Scope() string {
	if len(o.Orgs) == 0 {
		return "all"
	}
	return strings.Join(o.Orgs, ";")
}

// Overrides is a loaded override register. A nil *Overrides has none.
type Overrides struct {
	File  string
	Hash  string
	byNHS map[string][]Override
	rows  int
}

var overrideColumns = []string{"nhs_number", "reason", "authorised_by", "valid_from", "valid_to", "scope"}

// LoadOverrides reads the newest override file in src (CSV or .xlsx with
// the columns nhs_number, reason, authorised_by, valid_from, valid_to,
// scope). Overrides not valid at now are kept out. A missing file means no
// overrides; an unreadable or partly invalid one is an error, because the
// register it modifies must be read whole.
func LoadOverrides(ctx context.Context, src Source, now time.Time) (*Overrides, error) {
	path, _, err := newest(src)
	if errors.Is(err, ErrMissing) {
		return &Overrides{byNHS: map[string][]Override{}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrOverridesUnreadable, err)
	}
	ov := &Overrides{File: filepath.Base(path), byNHS: map[string][]Override{}}
	add := func(line int, get func(string) string) error { return ov.add(line, get, now) }
	if isWorkbook(path) {
		ov.Hash, err = readWorkbook(ctx, path, overrideColumns, add)
	} else {
		var f *os.File
		if f, err = os.Open(path); err == nil {
			ov.Hash, err = readCSV(ctx, f, ov.File, overrideColumns, add)
			f.Close()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrOverridesUnreadable, err)
	}
	return ov, nil
}

func (ov *Overrides) add(line int, get func(string) string, now time.Time) error {
	o, err := parseOverride(get)
	if err != nil {
		return fmt.Errorf("%s: line %d: %w", ov.File, line, err)
	}
	o.Line = line
	ov.rows++
	if o.ValidAt(now) {
		ov.byNHS[o.NHSNumber] = append(ov.byNHS[o.NHSNumber], o)
	}
	return nil
}

func parseOverride(get func(string) string) (Override, error) {
	var o Override
	n, err := nhsnumber.Normalise(get("nhs_number"))
	if err != nil {
		return o, fmt.Errorf("nhs_number: %w", err)
	}
	o.NHSNumber = n
	o.Reason = strings.ToLower(get("reason"))
	if !slices.Contains(OverrideReasons, o.Reason) {
		return o, fmt.Errorf("reason: not one of %s", strings.Join(OverrideReasons, ", "))
	}
	if o.AuthorisedBy = get("authorised_by"); o.AuthorisedBy == "" {
		return o, errors.New("authorised_by: required")
	}
	if o.ValidFrom, err = time.Parse("2006-01-02", get("valid_from")); err != nil {
		return o, errors.New("valid_from: not a yyyy-mm-dd date")
	}
	if v := get("valid_to"); v != "" {
		if o.ValidTo, err = time.Parse("2006-01-02", v); err != nil {
			return o, errors.New("valid_to: not a yyyy-mm-dd date")
		}
		if !o.ValidTo.After(o.ValidFrom) {
			return o, errors.New("valid_to: not after valid_from")
		}
	}
	if o.Orgs, err = parseScope(get("scope")); err != nil {
		return o, err
	}
	return o, nil
}

// NHSNumbers returns the NHS numbers with an override valid now.
func (ov *Overrides) NHSNumbers() []string {
	if ov == nil {
		return nil
	}
	out := make([]string, 0, len(ov.byNHS))
	for n := range ov.byNHS {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// StateHash identifies the overrides valid now (see Register.StateHash).
func (ov *Overrides) StateHash() string {
	var b strings.Builder
	for _, n := range ov.NHSNumbers() {
		for _, o := range ov.byNHS[n] {
			fmt.Fprintf(&b, "%s|%s|%s|%s\n", n, o.Scope(), o.Reason, o.AuthorisedBy)
		}
	}
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:])
}

// Rows returns the number of override rows read.
func (ov *Overrides) Rows() int {
	if ov == nil {
		return 0
	}
	return ov.rows
}

// For returns the overrides valid for any of the NHS numbers.
func (ov *Overrides) For(nhsNumbers ...string) []Override {
	if ov == nil {
		return nil
	}
	var out []Override
	for _, n := range nhsNumbers {
		out = append(out, ov.byNHS[n]...)
	}
	return out
}
