// Package alert tells people that careindex needs them: a run failed,
// publication was blocked by the objection register, a delivery is late or
// missing, or too many of a delivery's rows were quarantined.
//
// An Alert carries counts, source ids, organisation codes and run ids,
// never patient data. A Webhook POSTs each alert as JSON to a configured
// URL, in the background, retrying with backoff when the receiver is
// unreachable or answers with a server error:
//
//	hook := alert.NewWebhook(*cfg.Alerts.Webhook, alert.WebhookOptions{Log: log})
//	hook.Notify(ctx, alert.Alert{Kind: alert.RunFailed, Severity: alert.Error, ...})
//	...
//	hook.Close(ctx) // waits (bounded by ctx) for deliveries in flight
package alert

import (
	"context"
	"time"
)

// Kind says what happened.
type Kind string

// Alert kinds.
const (
	// RunFailed: a scheduled run failed (after its retries), or read a
	// source that failed.
	RunFailed Kind = "run_failed"
	// PublicationBlocked: the objection register or sensitive code list
	// is missing, unreadable or too old; nothing was published.
	PublicationBlocked Kind = "publication_blocked"
	// DeliveryLate: a source's newest delivery is older than its
	// freshness warn_after.
	DeliveryLate Kind = "delivery_late"
	// DeliveryMissing: older than error_after, or no delivery at all.
	DeliveryMissing Kind = "delivery_missing"
	// DeliveryFresh: a late or missing source delivered again.
	DeliveryFresh Kind = "delivery_fresh"
	// RejectRate: a new delivery's quarantined share of rows is above
	// the source's threshold.
	RejectRate Kind = "reject_rate"
)

// Severity says how urgent an alert is.
type Severity string

// Severities.
const (
	Info    Severity = "info"
	Warning Severity = "warning"
	Error   Severity = "error"
)

// Alert is one notification. Every field is safe to send outside the
// care record: no NHS number, name, date of birth or other patient value.
type Alert struct {
	Kind     Kind      `json:"kind"`
	Severity Severity  `json:"severity"`
	At       time.Time `json:"at"`
	// Summary is one line for a person to read.
	Summary string `json:"summary"`
	// Instance names the careindex process that raised the alert.
	Instance string `json:"instance,omitempty"`
	// Job is the scheduled job ("extract d81001-patients", "publish").
	Job string `json:"job,omitempty"`
	// Source and Org name the source concerned, if one is.
	Source string `json:"source,omitempty"`
	Org    string `json:"org,omitempty"`
	// RunID, RunStatus and Message describe the run concerned, if one is;
	// Attempts counts the tries of a retried job.
	RunID     int64  `json:"run_id,omitempty"`
	RunStatus string `json:"run_status,omitempty"`
	Message   string `json:"message,omitempty"`
	Attempts  int    `json:"attempts,omitempty"`
	// FailedSources lists the sources a run failed to read.
	FailedSources []string `json:"failed_sources,omitempty"`
	// Counts are a delivery's row counts.
	Counts *Counts `json:"counts,omitempty"`
	// RejectRate and Threshold, for a reject rate alert.
	RejectRate float64 `json:"reject_rate,omitempty"`
	Threshold  float64 `json:"threshold,omitempty"`
	// Delivery, DeliveredAt and AgeSeconds, for a freshness alert.
	Delivery    string     `json:"delivery,omitempty"`
	DeliveredAt *time.Time `json:"delivered_at,omitempty"`
	AgeSeconds  int64      `json:"age_seconds,omitempty"`
}

// Counts are a delivery's row counts as the run ledger records them.
type Counts struct {
	RowsIn      int `json:"rows_in"`
	Loaded      int `json:"loaded"`
	Quarantined int `json:"quarantined"`
	Withheld    int `json:"withheld"`
	Merged      int `json:"merged"`
	Pending     int `json:"pending"`
}

// Notifier sends alerts. Notify must not block for long: a slow receiver
// must never hold up a run.
type Notifier interface {
	Notify(ctx context.Context, a Alert)
}

// maxMessage bounds the length of a run's message in an alert.
const maxMessage = 500

// Truncate shortens s to at most n bytes on a rune boundary, marking the cut.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}
