package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"

	"github.com/careindex/careindex/transform/match"
)

// Defaults of the matching settings.
const (
	DefaultAutoLink = 0.99
	DefaultReview   = 0.5
)

// Matching configures the probabilistic matching of person records that
// have no NHS number (transform/match through transform/link):
//
//	matching: {enabled: true, auto_link: 0.99, review: 0.5, model: model.json}
//
// A record whose best candidate patient scores a match probability of at
// least AutoLink is linked to that patient; one from Review up to AutoLink
// gets a new patient id and a review item, never an automatic link; below
// Review it is a new patient.
type Matching struct {
	// Enabled turns matching on (the default). Off, a record without an
	// NHS number is its own patient, as its organisation's local id was
	// before, and the match state is not kept.
	Enabled *bool `yaml:"enabled"`
	// AutoLink is the match probability at or above which a record links
	// automatically. Defaults to 0.99.
	AutoLink float64 `yaml:"auto_link"`
	// Review is the match probability from which a possible match goes to
	// review. Defaults to 0.5; at most AutoLink.
	Review float64 `yaml:"review"`
	// Model is a JSON file holding a match.Model (as match.Estimate makes
	// it, reviewed). Optional: match.DefaultModel by default.
	Model string `yaml:"model"`
	// NHSDemographicsMin is the least demographic evidence (bits) a record
	// must have against the patient its NHS number links to; below it the
	// record is held for review as a possible NHS number error. Defaults
	// to 0 (no more evidence against than for).
	NHSDemographicsMin float64 `yaml:"nhs_demographics_min"`
}

// On reports whether matching is enabled (it is unless enabled: false).
func (m Matching) On() bool { return m.Enabled == nil || *m.Enabled }

// Thresholds returns the matcher's thresholds (defaults for unset values).
func (m Matching) Thresholds() match.Thresholds {
	auto, review := m.AutoLink, m.Review
	if auto == 0 {
		auto = DefaultAutoLink
	}
	if review == 0 {
		review = DefaultReview
	}
	return match.Thresholds{AutoLink: match.Probability(auto), Review: match.Probability(review),
		NHSDemographicsMin: m.NHSDemographicsMin}
}

// LoadModel returns the configured model, or match.DefaultModel when none
// is configured, checked, with its JSON.
func (m Matching) LoadModel() (*match.Model, []byte, error) {
	if m.Model == "" {
		model := match.DefaultModel()
		b, err := json.Marshal(model)
		return model, b, err
	}
	raw, err := os.ReadFile(m.Model)
	if err != nil {
		return nil, nil, fmt.Errorf("matching.model: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var model match.Model
	if err := dec.Decode(&model); err != nil {
		return nil, nil, fmt.Errorf("matching.model: %s: not a match model: %w", m.Model, err)
	}
	if err := model.Validate(); err != nil {
		return nil, nil, fmt.Errorf("matching.model: %s: %w", m.Model, err)
	}
	b, err := json.Marshal(&model)
	return &model, b, err
}

func (c *Config) matchingDefaults() {
	m := &c.Matching
	if m.Enabled == nil {
		on := true
		m.Enabled = &on
	}
	if m.AutoLink == 0 {
		m.AutoLink = DefaultAutoLink
	}
	if m.Review == 0 {
		m.Review = DefaultReview
	}
	m.Model = c.resolve(m.Model)
}

func (c *Config) validateMatching() []string {
	m := c.Matching
	var bad []string
	prob := func(v float64) bool { return v > 0 && v < 1 }
	if !prob(m.AutoLink) {
		bad = append(bad, fmt.Sprintf("matching.auto_link: %v is not a probability strictly between 0 and 1", m.AutoLink))
	}
	if !prob(m.Review) {
		bad = append(bad, fmt.Sprintf("matching.review: %v is not a probability strictly between 0 and 1", m.Review))
	}
	if prob(m.AutoLink) && prob(m.Review) && m.Review > m.AutoLink {
		bad = append(bad, fmt.Sprintf("matching.review: %v is above matching.auto_link (%v)", m.Review, m.AutoLink))
	}
	if math.IsNaN(m.NHSDemographicsMin) || math.IsInf(m.NHSDemographicsMin, 0) {
		bad = append(bad, "matching.nhs_demographics_min: not a number")
	}
	if m.Model != "" && m.On() {
		if _, _, err := m.LoadModel(); err != nil {
			bad = append(bad, err.Error())
		}
	}
	return bad
}
