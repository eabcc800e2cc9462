package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
	"go.uber.org/zap"

	"github.com/careindex/careindex/schedules/config"
)

// WebhookOptions tune a Webhook. The zero value is usable.
type WebhookOptions struct {
	// Client sends the requests. Defaults to a client with a 10s timeout.
	Client *http.Client
	// Attempts is how many times one alert is tried. Defaults to 5.
	Attempts int
	// Backoff is the wait before the first retry, doubled for each
	// further one and jittered by up to half either way. Defaults to 2s.
	Backoff time.Duration
	// MaxBackoff caps a wait. Defaults to 1m.
	MaxBackoff time.Duration
	// Clock times the waits. Defaults to the real clock.
	Clock clockwork.Clock
	// Log hears about failed deliveries. Defaults to no logging.
	Log *zap.Logger
}

// Webhook POSTs alerts as JSON to a URL, each in the background with
// retries. It is safe for concurrent use.
type Webhook struct {
	url     string
	headers map[string]string
	opts    WebhookOptions

	mu      sync.Mutex
	closed  bool
	pending sync.WaitGroup
	stop    chan struct{} // closed by Close when its context ends
	stopped sync.Once
}

// NewWebhook returns a Webhook for the configured URL and headers.
func NewWebhook(cfg config.Webhook, opts WebhookOptions) *Webhook {
	if opts.Client == nil {
		opts.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if opts.Attempts <= 0 {
		opts.Attempts = 5
	}
	if opts.Backoff <= 0 {
		opts.Backoff = 2 * time.Second
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = time.Minute
	}
	if opts.Clock == nil {
		opts.Clock = clockwork.NewRealClock()
	}
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	return &Webhook{url: cfg.URL, headers: cfg.Headers, opts: opts, stop: make(chan struct{})}
}

// Notify queues a for delivery and returns at once. After Close it only
// logs.
func (w *Webhook) Notify(ctx context.Context, a Alert) {
	a.Message = Truncate(a.Message, maxMessage)
	body, err := json.Marshal(a)
	if err != nil {
		w.opts.Log.Error("alert not sent: encoding", zap.String("kind", string(a.Kind)), zap.Error(err))
		return
	}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		w.opts.Log.Warn("alert not sent: the webhook is closed", zap.String("kind", string(a.Kind)))
		return
	}
	w.pending.Add(1)
	w.mu.Unlock()
	go func() {
		defer w.pending.Done()
		if err := w.deliver(context.WithoutCancel(ctx), body); err != nil {
			w.opts.Log.Error("alert not delivered", zap.String("kind", string(a.Kind)), zap.String("source", a.Source), zap.Error(err))
		}
	}()
}

// Send delivers a now, with retries, and returns the final error.
func (w *Webhook) Send(ctx context.Context, a Alert) error {
	a.Message = Truncate(a.Message, maxMessage)
	body, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("encoding alert: %w", err)
	}
	return w.deliver(ctx, body)
}

// Close stops accepting alerts and waits for those in flight until ctx
// ends; then it abandons their retries.
func (w *Webhook) Close(ctx context.Context) error {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	done := make(chan struct{})
	go func() { w.pending.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		w.stopped.Do(func() { close(w.stop) })
		return fmt.Errorf("alerts still being delivered: %w", ctx.Err())
	}
}

// errPermanent marks an answer that retrying cannot change.
var errPermanent = errors.New("refused")

func (w *Webhook) deliver(ctx context.Context, body []byte) error {
	var err error
	for attempt := 1; attempt <= w.opts.Attempts; attempt++ {
		if err = w.post(ctx, body); err == nil || errors.Is(err, errPermanent) {
			return err
		}
		if attempt == w.opts.Attempts {
			break
		}
		wait := min(w.opts.Backoff<<(attempt-1), w.opts.MaxBackoff)
		wait = time.Duration(float64(wait) * (0.5 + rand.Float64()))
		w.opts.Log.Warn("alert delivery failed; retrying", zap.Int("attempt", attempt), zap.Duration("wait", wait), zap.Error(err))
		select {
		case <-w.opts.Clock.After(wait):
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-w.stop:
			return fmt.Errorf("%w (given up at shutdown)", err)
		}
	}
	return fmt.Errorf("after %d attempts: %w", w.opts.Attempts, err)
}

func (w *Webhook) post(ctx context.Context, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%w: %w", errPermanent, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "careindex-alert/1")
	for k, v := range w.headers {
		req.Header.Set(k, v)
	}
	resp, err := w.opts.Client.Do(req)
	if err != nil {
		// The URL may carry a token: report the failure without it.
		var uerr interface{ Unwrap() error }
		if errors.As(err, &uerr) {
			err = uerr.Unwrap()
		}
		return fmt.Errorf("posting alert: %w", err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode >= 500, resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode == http.StatusRequestTimeout:
		return fmt.Errorf("alert receiver answered %s", resp.Status)
	default:
		return fmt.Errorf("%w: alert receiver answered %s", errPermanent, resp.Status)
	}
}
