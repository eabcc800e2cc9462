// Package pgstore is the PostgreSQL backend of the regional store.
//
// The published index lives in list-partitioned tables in the schema
// careindex_data, one partition per version, and readers query the views in
// the schema careindex, which show the rows of the version named in the
// one-row table careindex_data.live. A new version is copied into tables of
// its own (COPY … FROM STDIN through lib/pq), indexed, checked, and then, in
// one transaction, attached as partitions while the live pointer moves to
// it. PostgreSQL's MVCC gives every reader either the old version or the new
// one whole. The previous version stays attached for rollback.
//
// The role careindex_reader gets USAGE on careindex and SELECT on its views
// and nothing else; viewers' login roles are granted careindex_reader.
//
// Runs are serialised with session advisory locks that StartRun takes and
// FinishRun releases (PostgreSQL releases them when a killed process's
// connection drops): one per extracted source, and one for publishing.
package pgstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/lib/pq"
	"go.uber.org/zap"

	"github.com/careindex/careindex/loader/store"
)

// runLockKey is the advisory lock key that serialises publishing runs on
// one database; sourceLockClass namespaces the per-source locks.
const (
	runLockKey      = 0x63617265696e6478 // "careindx"
	sourceLockClass = 0x63617265         // "care"
)

// ErrBusy means another run holds the store.
var ErrBusy = errors.New("another careindex run is using this store")

// Store is a PostgreSQL regional store.
type Store struct {
	db  *sql.DB
	log *zap.Logger

	mu    sync.Mutex
	locks map[int64]*sql.Conn // run id → the connection holding its advisory locks

	stats linkStats // when the link tables' statistics were last checked
}

var _ store.Store = (*Store)(nil)

// Open connects to the database at dsn (a postgres:// URL; say
// sslmode=disable for a local server) and checks the connection.
func Open(ctx context.Context, dsn string, log *zap.Logger) (*Store, error) {
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		return nil, fmt.Errorf("opening postgres store: %w", err)
	}
	// Two deliveries may stage at once (StagesConcurrently), each copying
	// persons or items, and rejects, over connections of its own while
	// linking reads the match state.
	db.SetMaxOpenConns(12)
	db.SetMaxIdleConns(8)
	db.SetConnMaxIdleTime(time.Minute)
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connecting to postgres store: %w", err)
	}
	return &Store{db: db, log: log, locks: map[int64]*sql.Conn{}}, nil
}

// DB returns the underlying pool, for tests and tools.
func (s *Store) DB() *sql.DB { return s.db }

// StagesConcurrently reports that deliveries of different sources may be
// staged at the same time (store.ConcurrentStaging): each stager copies
// over connections of its own.
func (s *Store) StagesConcurrently() bool { return true }

// Close releases the connections and any run lock still held.
func (s *Store) Close() error {
	s.mu.Lock()
	for id, c := range s.locks {
		c.Close()
		delete(s.locks, id)
	}
	s.mu.Unlock()
	return s.db.Close()
}

// Migrate creates the schemas, tables, views and the reader role.
func (s *Store) Migrate(ctx context.Context) error {
	if err := s.ensureRole(ctx); err != nil {
		return err
	}
	// Serialise concurrent migrations of one database.
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, runLockKey+1); err != nil {
			return fmt.Errorf("locking for migration: %w", err)
		}
		if _, err := tx.ExecContext(ctx, schemaSQL); err != nil {
			return fmt.Errorf("creating schema: %w", err)
		}
		return nil
	})
}

// ensureRole creates the cluster-wide reader role once. Roles are shared by
// every database of a cluster, so two stores migrating at once may race:
// a duplicate is fine.
func (s *Store) ensureRole(ctx context.Context) error {
	var exists bool
	if err := s.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'careindex_reader')`).Scan(&exists); err != nil {
		return fmt.Errorf("checking reader role: %w", err)
	}
	if exists {
		return nil
	}
	_, err := s.db.ExecContext(ctx, `CREATE ROLE careindex_reader NOLOGIN`)
	var pqErr *pq.Error
	if err != nil && !(errors.As(err, &pqErr) && (pqErr.Code == "42710" || pqErr.Code == "23505" || pqErr.Code == "XX000")) {
		return fmt.Errorf("creating role careindex_reader: %w", err)
	}
	return nil
}

func (s *Store) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	return store.InTx(ctx, s.db, fn)
}

// StartRun takes the run's advisory locks and records a new run. Every run
// locks the sources it extracts; a run that publishes (every kind but
// "extract") also locks the store's publish lock. Locks are tried, not
// waited for: a conflict is ErrBusy.
func (s *Store) StartRun(ctx context.Context, info store.RunInfo) (int64, error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return 0, fmt.Errorf("starting run: %w", err)
	}
	release := func() {
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock_all()`)
		conn.Close()
	}
	kind := info.Kind
	if kind == "" {
		kind = "run"
	}
	if kind != "extract" {
		var got bool
		if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1)`, runLockKey).Scan(&got); err != nil {
			release()
			return 0, fmt.Errorf("taking the publish lock: %w", err)
		}
		if !got {
			release()
			return 0, fmt.Errorf("%w: another run is publishing", ErrBusy)
		}
	}
	for _, src := range info.Sources {
		var got bool
		if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1, hashtext($2))`, sourceLockClass, src).Scan(&got); err != nil {
			release()
			return 0, fmt.Errorf("taking the lock of source %s: %w", src, err)
		}
		if !got {
			release()
			return 0, fmt.Errorf("%w: another run is extracting source %s", ErrBusy, src)
		}
	}
	var id int64
	err = conn.QueryRowContext(ctx, `INSERT INTO careindex_ops.run (kind, started_at, sources, backend_pid, backend_start)
		SELECT $1, $2, $3, pid, backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()
		RETURNING run_id`, kind, info.Started, strings.Join(info.Sources, ",")).Scan(&id)
	if err != nil {
		release()
		return 0, fmt.Errorf("recording run: %w", err)
	}
	// A run whose connection is gone was killed before it finished.
	if _, err := s.db.ExecContext(ctx, `UPDATE careindex_ops.run r SET status = 'abandoned', finished_at = now(),
		message = 'the process ended before the run finished'
		WHERE r.status = 'running' AND r.run_id <> $1 AND NOT EXISTS (
			SELECT 1 FROM pg_stat_activity a WHERE a.pid = r.backend_pid AND a.backend_start = r.backend_start)`, id); err != nil {
		release()
		return 0, fmt.Errorf("closing abandoned runs: %w", err)
	}
	s.mu.Lock()
	s.locks[id] = conn
	s.mu.Unlock()
	return id, nil
}

// FinishRun records the run's end and the sources' outcomes (if the run did
// not already record them when it published), then releases its locks.
func (s *Store) FinishRun(ctx context.Context, runID int64, status store.RunStatus, message string, sources []store.SourceOutcome) error {
	defer s.releaseLocks(runID)
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE careindex_ops.run SET status = $2, message = $3, finished_at = now() WHERE run_id = $1`,
			runID, string(status), message); err != nil {
			return fmt.Errorf("finishing run %d: %w", runID, err)
		}
		var have int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM careindex_ops.run_source WHERE run_id = $1`, runID).Scan(&have); err != nil {
			return fmt.Errorf("finishing run %d: %w", runID, err)
		}
		if have == 0 {
			if err := insertOutcomes(ctx, tx, runID, sources); err != nil {
				return err
			}
		}
		return touchSources(ctx, tx, sources)
	})
}

func (s *Store) releaseLocks(runID int64) {
	s.mu.Lock()
	conn, ok := s.locks[runID]
	delete(s.locks, runID)
	s.mu.Unlock()
	if !ok {
		return
	}
	_, _ = conn.ExecContext(context.Background(), `SELECT pg_advisory_unlock_all()`)
	conn.Close()
}

func insertOutcomes(ctx context.Context, tx *sql.Tx, runID int64, sources []store.SourceOutcome) error {
	for _, o := range sources {
		var did any
		if o.DeliveryID != 0 {
			did = o.DeliveryID
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO careindex_ops.run_source
			(run_id, source_id, org_code, status, delivery_id, delivery, rows_in, loaded, quarantined, withheld, merged, pending, stale, error,
				duplicates)
			VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15)`,
			runID, o.SourceID, o.OrgCode, o.Status, did, o.Delivery, o.RowsIn, o.Loaded, o.Quarantined, o.Withheld, o.Merged, o.Pending, o.Stale, o.Error,
			o.Duplicates); err != nil {
			return fmt.Errorf("recording source %s of run %d: %w", o.SourceID, runID, err)
		}
	}
	return nil
}

func touchSources(ctx context.Context, tx *sql.Tx, sources []store.SourceOutcome) error {
	for _, o := range sources {
		if !store.Extracted(o.Status) {
			continue
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO careindex_ops.source_state (source_id, org_code, last_attempt_at, last_error)
			VALUES ($1, $2, now(), $3)
			ON CONFLICT (source_id) DO UPDATE SET org_code = EXCLUDED.org_code, last_attempt_at = now(), last_error = EXCLUDED.last_error`,
			o.SourceID, o.OrgCode, o.Error); err != nil {
			return fmt.Errorf("recording state of source %s: %w", o.SourceID, err)
		}
	}
	return nil
}

// CurrentDelivery returns the delivery of sourceID in the live version.
func (s *Store) CurrentDelivery(ctx context.Context, sourceID string) (store.Delivery, bool, error) {
	var d store.Delivery
	err := s.db.QueryRowContext(ctx, `SELECT d.delivery_id, d.source_id, d.org_code, d.kind, d.name, d.hash, d.received_at,
			d.rows_in, d.quarantined, d.merged, d.seq
		FROM careindex_data.live l
		JOIN careindex_ops.version_delivery vd ON vd.version = l.version AND vd.source_id = $1
		JOIN careindex_ops.delivery d ON d.delivery_id = vd.delivery_id`, sourceID).
		Scan(&d.ID, &d.SourceID, &d.OrgCode, &d.Kind, &d.Name, &d.Hash, &d.ReceivedAt, &d.RowsIn, &d.Quarantined, &d.Merged, &d.Seq)
	if errors.Is(err, sql.ErrNoRows) {
		return d, false, nil
	}
	if err != nil {
		return d, false, fmt.Errorf("reading current delivery of %s: %w", sourceID, err)
	}
	return d, true, nil
}

// PendingDelivery returns the newest staged, unpublished delivery.
func (s *Store) PendingDelivery(ctx context.Context, sourceID string) (store.Delivery, bool, error) {
	var d store.Delivery
	err := s.db.QueryRowContext(ctx, `SELECT d.delivery_id, d.source_id, d.org_code, d.kind, d.name, d.hash, d.received_at,
			d.rows_in, d.quarantined, d.merged, d.seq
		FROM careindex_ops.delivery d WHERE d.source_id = $1 AND d.status = 'staged'
		ORDER BY d.delivery_id DESC LIMIT 1`, sourceID).
		Scan(&d.ID, &d.SourceID, &d.OrgCode, &d.Kind, &d.Name, &d.Hash, &d.ReceivedAt, &d.RowsIn, &d.Quarantined, &d.Merged, &d.Seq)
	if errors.Is(err, sql.ErrNoRows) {
		return d, false, nil
	}
	if err != nil {
		return d, false, fmt.Errorf("reading pending delivery of %s: %w", sourceID, err)
	}
	return d, true, nil
}

// LastError returns the error of the source's last extraction attempt.
func (s *Store) LastError(ctx context.Context, sourceID string) (string, error) {
	var msg string
	err := s.db.QueryRowContext(ctx, `SELECT last_error FROM careindex_ops.source_state WHERE source_id = $1`, sourceID).Scan(&msg)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading the state of source %s: %w", sourceID, err)
	}
	return msg, nil
}

// HoldDelivery sets a staged delivery aside for review.
func (s *Store) HoldDelivery(ctx context.Context, deliveryID int64, reason string) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE careindex_ops.delivery SET status = 'held', hold_reason = $2
		WHERE delivery_id = $1 AND status = 'staged'`, deliveryID, reason); err != nil {
		return fmt.Errorf("holding delivery %d: %w", deliveryID, err)
	}
	return nil
}

// AcceptHeld releases the newest held delivery of a source.
func (s *Store) AcceptHeld(ctx context.Context, sourceID string) (store.Delivery, bool, error) {
	var d store.Delivery
	err := s.db.QueryRowContext(ctx, `UPDATE careindex_ops.delivery SET status = 'staged'
		WHERE delivery_id = (SELECT delivery_id FROM careindex_ops.delivery WHERE source_id = $1 AND status = 'held'
			ORDER BY delivery_id DESC LIMIT 1)
		RETURNING delivery_id, source_id, org_code, kind, name, hash, received_at, rows_in, quarantined, merged`, sourceID).
		Scan(&d.ID, &d.SourceID, &d.OrgCode, &d.Kind, &d.Name, &d.Hash, &d.ReceivedAt, &d.RowsIn, &d.Quarantined, &d.Merged)
	if errors.Is(err, sql.ErrNoRows) {
		return d, false, nil
	}
	if err != nil {
		return d, false, fmt.Errorf("accepting the held delivery of %s: %w", sourceID, err)
	}
	return d, true, nil
}

// Live returns the live publication.
func (s *Store) Live(ctx context.Context) (store.Publication, bool, error) {
	var p store.Publication
	var stale string
	err := s.db.QueryRowContext(ctx, `SELECT v.version, v.run_id, v.published_at, v.register_hash, v.stale_sources
		FROM careindex_data.live l JOIN careindex_data.version v ON v.version = l.version`).
		Scan(&p.Version, &p.RunID, &p.PublishedAt, &p.RegisterHash, &stale)
	if errors.Is(err, sql.ErrNoRows) {
		return p, false, nil
	}
	if err != nil {
		return p, false, fmt.Errorf("reading live version: %w", err)
	}
	if stale != "" {
		p.Stale = strings.Split(stale, ",")
	}
	return p, true, nil
}
