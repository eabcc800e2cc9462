package daemon

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"sync"
	"time"

	"github.com/go-co-op/gocron/v2"
)

// jobLockClass namespaces the scheduler's advisory locks ("jobs"), apart
// from the store's own run locks.
const jobLockClass = 0x6a6f6273

// PGLocker is a gocron distributed job locker backed by PostgreSQL session
// advisory locks. Each held lock has a connection of its own, taken from
// the pool when the lock is taken and closed when it is released: if the
// process dies, the connection drops and PostgreSQL releases the lock, so
// another scheduler takes the job's next run.
//
// Lock never waits: if another session holds the key, it fails with
// ErrLockHeld at once and gocron skips that run time on this scheduler.
// Give the locker a pool of its own (not the store's), sized for one
// connection per job that may run at once.
type PGLocker struct {
	db *sql.DB
}

var _ gocron.Locker = (*PGLocker)(nil)

// NewPGLocker returns a locker on db.
func NewPGLocker(db *sql.DB) *PGLocker { return &PGLocker{db: db} }

// Lock takes the advisory lock named by key (a job name).
func (l *PGLocker) Lock(ctx context.Context, key string) (gocron.Lock, error) {
	conn, err := l.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("taking lock %q: %w", key, err)
	}
	var got bool
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1, hashtext($2))`, jobLockClass, key).Scan(&got); err != nil {
		discard(conn)
		return nil, fmt.Errorf("taking lock %q: %w", key, err)
	}
	if !got {
		conn.Close()
		return nil, fmt.Errorf("%w: %s", ErrLockHeld, key)
	}
	return &pgLock{conn: conn, key: key}, nil
}

type pgLock struct {
	conn *sql.Conn
	key  string
	once sync.Once
	err  error
}

// Unlock releases the lock. It works after ctx is cancelled (gocron
// unlocks with the job's context, which shutdown cancels). If the unlock
// cannot be confirmed the connection is discarded, which releases the lock.
func (l *pgLock) Unlock(ctx context.Context) error {
	l.once.Do(func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		var released bool
		err := l.conn.QueryRowContext(uctx, `SELECT pg_advisory_unlock($1, hashtext($2))`, jobLockClass, l.key).Scan(&released)
		if err != nil || !released {
			discard(l.conn)
			if err != nil {
				l.err = fmt.Errorf("releasing lock %q: %w", l.key, err)
			}
			return
		}
		l.err = l.conn.Close()
	})
	return l.err
}

// discard closes conn and keeps the pool from reusing it, so that any
// session lock on it goes with it.
func discard(conn *sql.Conn) {
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	conn.Close()
}
