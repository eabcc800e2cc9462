package config_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/careindex/careindex/schedules/config"
	"github.com/careindex/careindex/transform/match"
)

const matchingBase = `
objections:
  register: {path: drops/objections}
sources:
  - id: gp-patients
    org: D81001
    kind: persons
    from: {folder: {path: drops/gp, pattern: "p_*.csv"}}
    columns: {local_id: PatientID, email: Email, phone: Tel, address: "No + Street"}
`

func TestMatchingDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := config.Parse([]byte(matchingBase), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := cfg.Matching
	if !m.On() || m.Enabled == nil || m.AutoLink != 0.99 || m.Review != 0.5 || m.Model != "" || m.NHSDemographicsMin != 0 {
		t.Errorf("defaults %+v", m)
	}
	th := m.Thresholds()
	if th != (match.Thresholds{AutoLink: match.Probability(0.99), Review: match.Probability(0.5)}) {
		t.Errorf("thresholds %+v", th)
	}
	model, raw, err := m.LoadModel()
	if err != nil || model == nil || !json.Valid(raw) {
		t.Fatalf("LoadModel = %v, %v", model, err)
	}
	if model.Prior != match.DefaultModel().Prior {
		t.Errorf("the default model is not match.DefaultModel")
	}
	// A Matching written out in full (as a test might) is on by default.
	if !(config.Matching{}).On() || (config.Matching{}).Thresholds().AutoLink != match.Probability(0.99) {
		t.Error("the zero Matching is not the default")
	}
}

func TestMatchingModelFile(t *testing.T) {
	t.Parallel()
	d := t.TempDir()
	good := match.DefaultModel()
	good.Prior = 0.001
	b, _ := json.Marshal(good)
	if err := os.WriteFile(filepath.Join(d, "model.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	bad := match.DefaultModel()
	bad.Prior = 2
	b, _ = json.Marshal(bad)
	if err := os.WriteFile(filepath.Join(d, "invalid.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, "notjson.json"), []byte(`{"prior": 0.1, "colour": "blue"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	yml := matchingBase + "matching: {auto_link: 0.95, review: 0.6, model: model.json, nhs_demographics_min: -2}\n"
	cfg, err := config.Parse([]byte(yml), d, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := cfg.Matching
	if m.Model != filepath.Join(d, "model.json") || m.AutoLink != 0.95 || m.Review != 0.6 || m.NHSDemographicsMin != -2 {
		t.Errorf("matching %+v", m)
	}
	model, _, err := m.LoadModel()
	if err != nil || model.Prior != 0.001 {
		t.Errorf("LoadModel = %+v, %v", model, err)
	}
	for _, tc := range []struct{ file, want string }{
		{"missing.json", "no such file"},
		{"invalid.json", "prior 2"},
		{"notjson.json", "not a match model"},
	} {
		_, err := config.Parse([]byte(matchingBase+"matching: {model: "+tc.file+"}\n"), d, nil)
		if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), "matching.model") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Parse = %v, want ErrInvalid naming matching.model and %q", tc.file, err, tc.want)
		}
	}
	// Matching off: the model is not read.
	if _, err := config.Parse([]byte(matchingBase+"matching: {enabled: false, model: missing.json}\n"), d, nil); err != nil {
		t.Errorf("a missing model with matching off: %v", err)
	}
	cfg, _ = config.Parse([]byte(matchingBase+"matching: {enabled: false}\n"), d, nil)
	if cfg.Matching.On() {
		t.Error("enabled: false is on")
	}
}

func TestMatchingValidation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ yml, want string }{
		{"matching: {auto_link: 1.5}", "matching.auto_link: 1.5 is not a probability"},
		{"matching: {auto_link: -0.1}", "matching.auto_link: -0.1 is not a probability"},
		{"matching: {review: 1}", "matching.review: 1 is not a probability"},
		{"matching: {auto_link: 0.9, review: 0.95}", "matching.review: 0.95 is above matching.auto_link (0.9)"},
		{"matching: {colour: blue}", "field colour not found"},
	} {
		_, err := config.Parse([]byte(matchingBase+tc.yml+"\n"), dir, nil)
		if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Parse = %v, want %q", tc.yml, err, tc.want)
		}
	}
}

func TestPersonContactFields(t *testing.T) {
	t.Parallel()
	for _, f := range []string{"email", "phone"} {
		found := false
		for _, p := range config.PersonFields {
			found = found || p == f
		}
		if !found {
			t.Errorf("%s is not a person field", f)
		}
	}
}
