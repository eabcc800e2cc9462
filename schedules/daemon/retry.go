package daemon

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/lib/pq"

	"github.com/careindex/careindex/loader/pgstore"
	"github.com/careindex/careindex/schedules/config"
	"github.com/careindex/careindex/schedules/pipeline"
)

// IsTransient reports whether a failed run is worth trying again: the
// failure came from the store or the network rather than from the data.
//
// Transient: another run holding the store (pgstore.ErrBusy); PostgreSQL
// unavailable or restarting (SQLSTATE class 08, 57P01 to 57P03, 53300 too
// many connections, 40001 and 40P01 serialisation failure and deadlock,
// 57014 statement timeout); a broken connection; network errors (refused,
// reset, unreachable, DNS); timeouts (context.DeadlineExceeded, any error
// whose Timeout method says so); an S3 or other HTTP service answering
// 5xx, 429 or a throttling code.
//
// Never transient, even when joined with a transient error: an invalid
// configuration (config.ErrInvalid), publication blocked by the objection
// register (pipeline.ErrBlocked), sources that failed to read
// (pipeline.ErrSourcesFailed: a bad delivery stays bad), a delivery held
// for review or a gap in a delta sequence (both wait for a person), a
// leaking version, an unknown source, and cancellation. An error not
// recognised is not transient.
func IsTransient(err error) bool {
	if err == nil {
		return false
	}
	for _, permanent := range []error{config.ErrInvalid, pipeline.ErrBlocked, pipeline.ErrSourcesFailed,
		pipeline.ErrHeld, pipeline.ErrDeltaGap, pipeline.ErrLeaks, pipeline.ErrUnknownSource, context.Canceled} {
		if errors.Is(err, permanent) {
			return false
		}
	}
	if errors.Is(err, pgstore.ErrBusy) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, driver.ErrBadConn) || errors.Is(err, sql.ErrConnDone) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	var pqErr *pq.Error
	if errors.As(err, &pqErr) {
		return transientSQLState(string(pqErr.Code))
	}
	var sqlState interface{ SQLState() string }
	if errors.As(err, &sqlState) {
		return transientSQLState(sqlState.SQLState())
	}
	for _, errno := range []syscall.Errno{syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED,
		syscall.EPIPE, syscall.ETIMEDOUT, syscall.EHOSTUNREACH, syscall.ENETUNREACH, syscall.ENETDOWN} {
		if errors.Is(err, errno) {
			return true
		}
	}
	var timeout interface{ Timeout() bool }
	if errors.As(err, &timeout) && timeout.Timeout() {
		return true
	}
	var opErr *net.OpError
	var dnsErr *net.DNSError
	if errors.As(err, &opErr) || errors.As(err, &dnsErr) {
		return true
	}
	var status interface{ HTTPStatusCode() int }
	if errors.As(err, &status) {
		code := status.HTTPStatusCode()
		return code >= 500 || code == 429 || code == 408
	}
	var api interface{ ErrorCode() string }
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "SlowDown", "RequestTimeout", "RequestTimeoutException", "InternalError", "ServiceUnavailable",
			"Throttling", "ThrottlingException", "RequestThrottled":
			return true
		}
	}
	return false
}

// transientSQLState reports whether a PostgreSQL error code means the
// server or connection was briefly unavailable.
func transientSQLState(code string) bool {
	switch {
	case strings.HasPrefix(code, "08"): // connection exception
		return true
	}
	switch code {
	case "57P01", "57P02", "57P03", // admin shutdown, crash shutdown, cannot connect now
		"53300",          // too many connections
		"40001", "40P01", // serialisation failure, deadlock
		"57014": // query cancelled (statement timeout)
		return true
	}
	return false
}

// Backoff is the wait before retry number n (1 for the first retry):
// base doubled n-1 times, at most maxWait, scaled by a jitter factor
// between 0.5 and 1.5 (jitter is a random number in [0, 1)).
func Backoff(base, maxWait time.Duration, n int, jitter float64) time.Duration {
	wait := base
	for i := 1; i < n && wait < maxWait; i++ {
		wait *= 2
	}
	wait = min(wait, maxWait)
	return time.Duration(float64(wait) * (0.5 + jitter))
}
