package daemon_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/lib/pq"

	"github.com/careindex/careindex/loader/pgstore"
	"github.com/careindex/careindex/schedules/config"
	"github.com/careindex/careindex/schedules/daemon"
	"github.com/careindex/careindex/schedules/pipeline"
)

// httpError looks like an AWS SDK response error (smithy-go's
// ResponseError has HTTPStatusCode).
type httpError struct{ code int }

func (e httpError) Error() string       { return fmt.Sprintf("http %d", e.code) }
func (e httpError) HTTPStatusCode() int { return e.code }

// apiError looks like a smithy APIError.
type apiError struct{ code string }

func (e apiError) Error() string     { return e.code }
func (e apiError) ErrorCode() string { return e.code }

func TestIsTransient(t *testing.T) {
	t.Parallel()
	dial := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"store busy", fmt.Errorf("starting run: %w", pgstore.ErrBusy), true},
		{"connection refused", fmt.Errorf("connecting to postgres store: %w", dial), true},
		{"connection reset", fmt.Errorf("reading: %w", syscall.ECONNRESET), true},
		{"dns", &net.DNSError{Err: "no such host", Name: "db", IsTemporary: true}, true},
		{"broken connection", fmt.Errorf("query: %w", driver.ErrBadConn), true},
		{"connection done", sql.ErrConnDone, true},
		{"unexpected EOF", fmt.Errorf("reading reply: %w", io.ErrUnexpectedEOF), true},
		{"deadline", fmt.Errorf("copy: %w", context.DeadlineExceeded), true},
		{"net timeout", &net.OpError{Op: "read", Err: timeoutErr{}}, true},
		{"08006 connection failure", &pq.Error{Code: "08006"}, true},
		{"08001 cannot connect", fmt.Errorf("x: %w", &pq.Error{Code: "08001"}), true},
		{"57P01 admin shutdown", &pq.Error{Code: "57P01"}, true},
		{"57P02 crash shutdown", &pq.Error{Code: "57P02"}, true},
		{"57P03 cannot connect now", &pq.Error{Code: "57P03"}, true},
		{"53300 too many connections", &pq.Error{Code: "53300"}, true},
		{"40001 serialization failure", &pq.Error{Code: "40001"}, true},
		{"40P01 deadlock", &pq.Error{Code: "40P01"}, true},
		{"57014 statement timeout", &pq.Error{Code: "57014"}, true},
		{"23505 unique violation", &pq.Error{Code: "23505"}, false},
		{"23514 check violation (ledger balance)", &pq.Error{Code: "23514"}, false},
		{"42P01 undefined table", &pq.Error{Code: "42P01"}, false},
		{"S3 503", fmt.Errorf("listing drop: %w", httpError{503}), true},
		{"S3 500", httpError{500}, true},
		{"S3 429", httpError{429}, true},
		{"S3 403", httpError{403}, false},
		{"S3 404", httpError{404}, false},
		{"S3 SlowDown", apiError{"SlowDown"}, true},
		{"S3 AccessDenied", apiError{"AccessDenied"}, false},
		{"blocked", fmt.Errorf("%w: register too old", pipeline.ErrBlocked), false},
		{"source failed", fmt.Errorf("%w: gp-patients", pipeline.ErrSourcesFailed), false},
		{"source failed and ledger unreachable", errors.Join(fmt.Errorf("%w: x", pipeline.ErrSourcesFailed), fmt.Errorf("recording: %w", dial)), false},
		{"unknown source", pipeline.ErrUnknownSource, false},
		{"held for review", fmt.Errorf("extracting x: %w: smaller snapshot", pipeline.ErrHeld), false},
		{"delta gap", fmt.Errorf("%w: seq 7", pipeline.ErrDeltaGap), false},
		{"invalid config", fmt.Errorf("%w: x", config.ErrInvalid), false},
		{"cancelled", fmt.Errorf("run: %w", context.Canceled), false},
		{"plain error", errors.New("header lacks column PatientID"), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := daemon.IsTransient(tc.err); got != tc.want {
				t.Errorf("IsTransient(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestBackoff(t *testing.T) {
	t.Parallel()
	tests := []struct {
		n      int
		jitter float64
		want   time.Duration
	}{
		{1, 0.5, 30 * time.Second},
		{2, 0.5, time.Minute},
		{3, 0.5, 2 * time.Minute},
		{10, 0.5, 10 * time.Minute},
		{1, 0, 15 * time.Second},
		{1, 0.999, 44970 * time.Millisecond},
		{10, 0, 5 * time.Minute},
	}
	for _, tc := range tests {
		if got := daemon.Backoff(30*time.Second, 10*time.Minute, tc.n, tc.jitter); got != tc.want {
			t.Errorf("Backoff(30s, 10m, %d, %v) = %s, want %s", tc.n, tc.jitter, got, tc.want)
		}
	}
}
