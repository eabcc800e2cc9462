package config

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Defaults of the operations settings.
const (
	DefaultRetryAttempts   = 3
	DefaultRetryBackoff    = 30 * time.Second
	DefaultRetryMaxBackoff = 10 * time.Minute
	DefaultRejectRate      = 0.1
)

// Retry says how the scheduler retries a job that failed for a transient
// reason (the store or a network unreachable, a timeout, another run
// holding the store). Bad data is never retried.
type Retry struct {
	// Attempts is how many times a job is tried, the first try included;
	// 1 turns retries off. Defaults to 3.
	Attempts int `yaml:"attempts"`
	// Backoff is the wait before the first retry. Each further retry waits
	// twice as long, and every wait is jittered by up to half its length
	// either way. Defaults to 30s.
	Backoff Duration `yaml:"backoff"`
	// MaxBackoff caps a wait. Defaults to 10m.
	MaxBackoff Duration `yaml:"max_backoff"`
}

// Alerts says where alerts go and what counts as too many rejected rows.
// An alert carries counts, source ids and run ids, never patient data.
type Alerts struct {
	// Webhook receives every alert as a JSON POST. Optional: without it
	// alerts are only logged.
	Webhook *Webhook `yaml:"webhook"`
	// RejectRate is the share of a delivery's rows that may be quarantined
	// (0 to 1) before an alert is raised; a source's RejectRateThreshold
	// overrides it. Defaults to 0.1.
	RejectRate float64 `yaml:"reject_rate"`
}

// Webhook is an HTTP endpoint that receives alerts.
type Webhook struct {
	// URL is the http:// or https:// address alerts are POSTed to. It may
	// hold a secret (as chat webhooks do): it is redacted when printed.
	URL string `yaml:"url"`
	// Headers are sent with every request, e.g. Authorization: "Bearer
	// ${ALERT_TOKEN}". Their values are redacted when printed.
	Headers map[string]string `yaml:"headers"`
}

// Freshness says how old a source's newest delivery may get. A source
// whose newest delivery is older than WarnAfter is late (a warning), older
// than ErrorAfter missing (an error). Either may be left out.
type Freshness struct {
	WarnAfter  Duration `yaml:"warn_after"`
	ErrorAfter Duration `yaml:"error_after"`
}

// cronParser reads the five standard cron fields, or six with a seconds
// field first, and the @daily-style descriptors.
var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseCron parses a schedule as Source.Schedule and Publish.Schedule are
// written: five cron fields (minute hour day-of-month month day-of-week),
// or six with seconds first ("*/5 * * * * *", for tests and short drills),
// or a descriptor such as @daily. The schedule's times are in the location
// the caller gives them (Config.Timezone); see the scheduler for how
// daylight saving changes are handled.
func ParseCron(expr string) (cron.Schedule, error) {
	return cronParser.Parse(expr)
}

// RejectRateThreshold is the reject rate above which src raises an alert.
func (c *Config) RejectRateThreshold(src Source) float64 {
	if src.RejectRateThreshold > 0 {
		return src.RejectRateThreshold
	}
	return c.Alerts.RejectRate
}

func (c *Config) operationsDefaults() {
	if c.Retry.Attempts == 0 {
		c.Retry.Attempts = DefaultRetryAttempts
	}
	if c.Retry.Backoff == 0 {
		c.Retry.Backoff = Duration(DefaultRetryBackoff)
	}
	if c.Retry.MaxBackoff == 0 {
		c.Retry.MaxBackoff = Duration(max(DefaultRetryMaxBackoff, time.Duration(c.Retry.Backoff)))
	}
	if c.Alerts.RejectRate == 0 {
		c.Alerts.RejectRate = DefaultRejectRate
	}
}

var headerName = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

// validateOperations checks the retry, alert and freshness settings.
func (c *Config) validateOperations() []error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...)))
	}
	if c.Retry.Attempts < 1 {
		bad("retry.attempts: at least 1 (the first try)")
	}
	if c.Retry.Backoff < 0 {
		bad("retry.backoff: must be positive")
	}
	if c.Retry.MaxBackoff < c.Retry.Backoff {
		bad("retry.max_backoff: %s is less than retry.backoff %s", time.Duration(c.Retry.MaxBackoff), time.Duration(c.Retry.Backoff))
	}
	if r := c.Alerts.RejectRate; r <= 0 || r > 1 {
		bad("alerts.reject_rate: %v is not a share between 0 and 1", r)
	}
	if w := c.Alerts.Webhook; w != nil {
		u, err := url.Parse(w.URL)
		switch {
		case w.URL == "":
			bad("alerts.webhook.url: required")
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			bad("alerts.webhook.url: %q is not an http:// or https:// address", redactURL(w.URL))
		}
		for name := range w.Headers {
			if !headerName.MatchString(name) {
				bad("alerts.webhook.headers: %q is not a header name", name)
			}
		}
	}
	for _, s := range c.Sources {
		name := fmt.Sprintf("source %q", s.ID)
		if r := s.RejectRateThreshold; r < 0 || r > 1 {
			bad("%s: reject_rate_threshold: %v is not a share between 0 and 1", name, r)
		}
		if f := s.Freshness; f != nil {
			switch {
			case f.WarnAfter < 0 || f.ErrorAfter < 0:
				bad("%s: freshness: durations must be positive", name)
			case f.WarnAfter == 0 && f.ErrorAfter == 0:
				bad("%s: freshness: give warn_after, error_after or both", name)
			case f.WarnAfter > 0 && f.ErrorAfter > 0 && f.ErrorAfter <= f.WarnAfter:
				bad("%s: freshness.error_after: %s is not after warn_after %s", name, time.Duration(f.ErrorAfter), time.Duration(f.WarnAfter))
			}
		}
	}
	return errs
}

// redacted hides the webhook's header values and everything in its URL
// but the scheme and host.
func (a Alerts) redacted() Alerts {
	if a.Webhook == nil {
		return a
	}
	w := Webhook{URL: redactURL(a.Webhook.URL)}
	if len(a.Webhook.Headers) > 0 {
		w.Headers = make(map[string]string, len(a.Webhook.Headers))
		for k := range a.Webhook.Headers {
			w.Headers[k] = "xxxxx"
		}
	}
	a.Webhook = &w
	return a
}

// redactURL keeps a URL's scheme and host: webhook paths and queries often
// carry tokens.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "xxxxx"
	}
	out := u.Scheme + "://" + u.Host
	if strings.Trim(u.Path, "/") != "" || u.RawQuery != "" {
		out += "/xxxxx"
	}
	return out
}
