package alert_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/careindex/careindex/schedules/alert"
	"github.com/careindex/careindex/schedules/config"
)

// receiver is an alert endpoint that answers with the statuses given,
// in turn (then 200), and keeps every request.
type receiver struct {
	mu       sync.Mutex
	statuses []int
	requests []*http.Request
	bodies   [][]byte
	got      chan struct{}
	delay    time.Duration
}

func newReceiver(t *testing.T, statuses ...int) (*receiver, *httptest.Server) {
	r := &receiver{statuses: statuses, got: make(chan struct{}, 100)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		time.Sleep(r.delay)
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.requests = append(r.requests, req)
		r.bodies = append(r.bodies, body)
		status := http.StatusOK
		if len(r.statuses) > 0 {
			status, r.statuses = r.statuses[0], r.statuses[1:]
		}
		r.mu.Unlock()
		w.WriteHeader(status)
		r.got <- struct{}{}
	}))
	t.Cleanup(srv.Close)
	return r, srv
}

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.requests)
}

var sample = alert.Alert{Kind: alert.RejectRate, Severity: alert.Warning, At: time.Date(2026, 11, 24, 1, 30, 2, 0, time.UTC),
	Summary: "d81001-patients: 7 of 17 rows quarantined", Source: "d81001-patients", Org: "D81001", RunID: 42,
	Counts: &alert.Counts{RowsIn: 17, Loaded: 9, Quarantined: 7, Withheld: 1}, RejectRate: 7.0 / 17, Threshold: 0.1}

func fast() alert.WebhookOptions {
	return alert.WebhookOptions{Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}
}

func TestWebhookRetriesServerErrorsThenDelivers(t *testing.T) {
	t.Parallel()
	r, srv := newReceiver(t, http.StatusServiceUnavailable, http.StatusBadGateway)
	hook := alert.NewWebhook(config.Webhook{URL: srv.URL + "/hooks/careindex", Headers: map[string]string{"Authorization": "Bearer s3cret"}}, fast())
	if err := hook.Send(context.Background(), sample); err != nil {
		t.Fatalf("Send = %v", err)
	}
	if n := r.count(); n != 3 {
		t.Fatalf("receiver got %d requests, want 3 (two 5xx, then delivered)", n)
	}
	req := r.requests[2]
	if req.Method != http.MethodPost || req.URL.Path != "/hooks/careindex" || req.Header.Get("Content-Type") != "application/json" ||
		req.Header.Get("Authorization") != "Bearer s3cret" {
		t.Errorf("request: %s %s content-type %q authorization %q", req.Method, req.URL.Path, req.Header.Get("Content-Type"), req.Header.Get("Authorization"))
	}
	var got map[string]any
	if err := json.Unmarshal(r.bodies[2], &got); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"kind": "reject_rate", "severity": "warning", "source": "d81001-patients", "org": "D81001",
		"run_id": 42.0, "at": "2026-11-24T01:30:02Z", "threshold": 0.1} {
		if got[k] != want {
			t.Errorf("body %s = %v, want %v", k, got[k], want)
		}
	}
	if c := got["counts"].(map[string]any); c["rows_in"] != 17.0 || c["quarantined"] != 7.0 {
		t.Errorf("body counts = %v", c)
	}
}

func TestWebhookDoesNotRetryRefusals(t *testing.T) {
	t.Parallel()
	r, srv := newReceiver(t, http.StatusBadRequest)
	err := alert.NewWebhook(config.Webhook{URL: srv.URL}, fast()).Send(context.Background(), sample)
	if err == nil || !strings.Contains(err.Error(), "400") {
		t.Errorf("Send = %v, want the 400 refusal", err)
	}
	if n := r.count(); n != 1 {
		t.Errorf("receiver got %d requests, want 1", n)
	}
}

func TestWebhookGivesUpAfterItsAttempts(t *testing.T) {
	t.Parallel()
	r, srv := newReceiver(t, 500, 500, 500, 500, 500, 500)
	opts := fast()
	opts.Attempts = 3
	err := alert.NewWebhook(config.Webhook{URL: srv.URL}, opts).Send(context.Background(), sample)
	if err == nil || !strings.Contains(err.Error(), "after 3 attempts") {
		t.Errorf("Send = %v, want an error after 3 attempts", err)
	}
	if n := r.count(); n != 3 {
		t.Errorf("receiver got %d requests, want 3", n)
	}
}

// Notify never holds up its caller; Close waits for deliveries in flight.
func TestNotifyInBackgroundCloseWaits(t *testing.T) {
	t.Parallel()
	r, srv := newReceiver(t, http.StatusServiceUnavailable)
	r.delay = 100 * time.Millisecond
	hook := alert.NewWebhook(config.Webhook{URL: srv.URL}, fast())
	began := time.Now()
	hook.Notify(context.Background(), sample)
	hook.Notify(context.Background(), sample)
	if took := time.Since(began); took > 50*time.Millisecond {
		t.Errorf("Notify took %s, want it to return at once", took)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hook.Close(ctx); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if n := r.count(); n != 3 {
		t.Errorf("receiver got %d requests, want 3 (one alert retried once)", n)
	}
	hook.Notify(context.Background(), sample) // after Close: dropped, logged
	time.Sleep(50 * time.Millisecond)
	if n := r.count(); n != 3 {
		t.Errorf("receiver got %d requests after Close, want no more", n)
	}
}

// An unreachable receiver's error does not repeat the URL, whose path or
// query may be a secret token.
func TestWebhookErrorHidesTheURL(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL + "/services/T000/B000/s3cretT0ken"
	srv.Close()
	opts := fast()
	opts.Attempts = 2
	err := alert.NewWebhook(config.Webhook{URL: url}, opts).Send(context.Background(), sample)
	if err == nil || strings.Contains(err.Error(), "s3cretT0ken") {
		t.Errorf("Send = %v, want an error without the token", err)
	}
}

func TestTruncate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"a longer message", 8, "a longer…"},
		{"naïve", 3, "na…"},
	} {
		if got := alert.Truncate(tc.in, tc.n); got != tc.want {
			t.Errorf("Truncate(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}
