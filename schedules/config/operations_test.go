package config_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/careindex/careindex/schedules/config"
)

func TestOperationsDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := config.Parse(readTestdata(t, "minimal.yaml"), dir, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"retry attempts", cfg.Retry.Attempts, 3},
		{"retry backoff", time.Duration(cfg.Retry.Backoff), 30 * time.Second},
		{"retry max backoff", time.Duration(cfg.Retry.MaxBackoff), 10 * time.Minute},
		{"reject rate", cfg.Alerts.RejectRate, 0.1},
		{"no webhook", cfg.Alerts.Webhook == nil, true},
		{"no freshness rule", cfg.Sources[0].Freshness == nil, true},
		{"source threshold falls back", cfg.RejectRateThreshold(cfg.Sources[0]), 0.1},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestOperationsParse(t *testing.T) {
	t.Parallel()
	yml := `
objections:
  register: {path: drops/objections}
retry: {attempts: 5, backoff: 1m, max_backoff: 20m}
alerts:
  webhook:
    url: https://hooks.example.nhs.uk/services/T0/B0/${HOOK_TOKEN}
    headers: {Authorization: "Bearer ${ALERT_TOKEN}"}
  reject_rate: 0.2
sources:
  - id: gp-patients
    org: D81001
    kind: persons
    from: {folder: {path: drops/gp, pattern: "p_*.csv"}}
    columns: {local_id: PatientID}
    schedule: "*/5 * * * * *"
    freshness: {warn_after: 26h, error_after: 50h}
    reject_rate_threshold: 0.05
publish:
  schedule: "0 0 5 * * *"
`
	cfg, err := config.Parse([]byte(yml), dir, env(map[string]string{"HOOK_TOKEN": "hooktoken123", "ALERT_TOKEN": "bearertoken456"}))
	if err != nil {
		t.Fatalf("Parse = %v", err)
	}
	s := cfg.Sources[0]
	if cfg.Retry.Attempts != 5 || time.Duration(cfg.Retry.Backoff) != time.Minute || time.Duration(cfg.Retry.MaxBackoff) != 20*time.Minute {
		t.Errorf("retry = %+v", cfg.Retry)
	}
	if s.Freshness == nil || time.Duration(s.Freshness.WarnAfter) != 26*time.Hour || time.Duration(s.Freshness.ErrorAfter) != 50*time.Hour {
		t.Errorf("freshness = %+v", s.Freshness)
	}
	if got := cfg.RejectRateThreshold(s); got != 0.05 {
		t.Errorf("RejectRateThreshold = %v, want the source's 0.05", got)
	}
	if w := cfg.Alerts.Webhook; w == nil || !strings.HasSuffix(w.URL, "hooktoken123") || w.Headers["Authorization"] != "Bearer bearertoken456" {
		t.Errorf("webhook = %+v", w)
	}
	r := cfg.Redacted()
	if r.Alerts.Webhook.URL != "https://hooks.example.nhs.uk/xxxxx" || r.Alerts.Webhook.Headers["Authorization"] != "xxxxx" {
		t.Errorf("redacted webhook = %+v", r.Alerts.Webhook)
	}
	if !strings.HasSuffix(cfg.Alerts.Webhook.URL, "hooktoken123") {
		t.Error("Redacted changed the configuration it copied")
	}
}

func TestParseCron(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		expr string
		ok   bool
	}{
		{"30 1 * * *", true},
		{"*/3 * * * * *", true},
		{"0 30 1 * * *", true},
		{"@daily", true},
		{"61 * * * *", false},
		{"* * * *", false},
		{"0 0 0 1 1 * 2026", false},
		{"every night", false},
	} {
		if _, err := config.ParseCron(tc.expr); (err == nil) != tc.ok {
			t.Errorf("ParseCron(%q) = %v, want ok %v", tc.expr, err, tc.ok)
		}
	}
}

func TestValidateOperations(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(c *config.Config)
		want   string
	}{
		{"attempts", func(c *config.Config) { c.Retry.Attempts = -1 }, "retry.attempts: at least 1"},
		{"backoff", func(c *config.Config) { c.Retry.Backoff = config.Duration(-time.Second) }, "retry.backoff: must be positive"},
		{"max backoff", func(c *config.Config) { c.Retry.MaxBackoff = config.Duration(time.Second) }, "retry.max_backoff: 1s is less than retry.backoff 30s"},
		{"reject rate", func(c *config.Config) { c.Alerts.RejectRate = 1.5 }, "alerts.reject_rate: 1.5 is not a share"},
		{"webhook url", func(c *config.Config) { c.Alerts.Webhook = &config.Webhook{URL: "ftp://h/p?token=s3cret"} }, `alerts.webhook.url: "ftp://h/xxxxx" is not an http`},
		{"webhook url required", func(c *config.Config) { c.Alerts.Webhook = &config.Webhook{} }, "alerts.webhook.url: required"},
		{"webhook header", func(c *config.Config) {
			c.Alerts.Webhook = &config.Webhook{URL: "https://h/x", Headers: map[string]string{"Bad Header": "v"}}
		}, `alerts.webhook.headers: "Bad Header" is not a header name`},
		{"source threshold", func(c *config.Config) { c.Sources[0].RejectRateThreshold = 2 }, `source "gp-patients": reject_rate_threshold: 2 is not a share`},
		{"freshness empty", func(c *config.Config) { c.Sources[0].Freshness = &config.Freshness{} }, `source "gp-patients": freshness: give warn_after`},
		{"freshness order", func(c *config.Config) {
			c.Sources[0].Freshness = &config.Freshness{WarnAfter: config.Duration(50 * time.Hour), ErrorAfter: config.Duration(26 * time.Hour)}
		}, "freshness.error_after: 26h0m0s is not after warn_after 50h0m0s"},
		{"freshness negative", func(c *config.Config) {
			c.Sources[0].Freshness = &config.Freshness{WarnAfter: config.Duration(-time.Hour)}
		},
			"freshness: durations must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := validConfig(t)
			tt.mutate(c)
			err := c.Validate()
			if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("Validate() shows a secret: %v", err)
			}
			if n := len(unwrapAll(err)); n != 1 {
				t.Errorf("Validate() reported %d problems, want 1: %v", n, err)
			}
		})
	}
}
